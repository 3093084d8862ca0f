#!/bin/sh
# tests/fuzz.sh: the fuzz targets over built-in inputs, for `make check`.
#
# Runs tests/fuzz-replay --selftest (tests/fuzz/replay.c), which needs no
# libFuzzer: the test data files, small valid files it builds, their
# prefixes and byte changes, random inputs from fixed seeds and the saved
# regressions in tests/fuzz/regress/.  Its TAP goes to automake's driver as
# is.  Built with --enable-sanitizers, memory errors in the parsers fail it.
# About 40 s with ASan and UBSan.
prog=${BL_BUILDDIR:-.}/tests/fuzz-replay
if [ ! -x "$prog" ]; then
    echo "1..0 # SKIP $prog is not built"
    exit 0
fi
LC_ALL=C OMP_NUM_THREADS=1
export LC_ALL OMP_NUM_THREADS
exec "$prog" --selftest
