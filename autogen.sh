#!/bin/sh
# Generate ./configure and the build-aux scripts from configure.ac and
# Makefile.am.  Nothing generated is committed; the tarball from
# `make dist` carries it all.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux m4
# automake installs its TAP driver only on request: copy it from automake's
# own files (it is part of automake, like install-sh).
am_dir=$(automake --print-libdir)
cp -f "$am_dir/tap-driver.sh" build-aux/tap-driver.sh
autoreconf -fi
