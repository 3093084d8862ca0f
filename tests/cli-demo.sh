#!/bin/sh
# placeholder
. "$BL_SRCDIR/tests/setup"
skip_all "not written yet"
