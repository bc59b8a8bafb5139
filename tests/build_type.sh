#!/usr/bin/env bash
# A configure without CMAKE_BUILD_TYPE builds optimised (RelWithDebInfo); one
# that names a type keeps it.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }
cmake -S "$src" -B "$tmp/default" >/dev/null || fail "configure failed"
grep -qx 'CMAKE_BUILD_TYPE:STRING=RelWithDebInfo' "$tmp/default/CMakeCache.txt" ||
  fail "default build type: $(grep '^CMAKE_BUILD_TYPE' "$tmp/default/CMakeCache.txt")"
grep -q -- '-O2' "$tmp/default/CMakeFiles/mxpc-data-migration.dir/flags.make" ||
  fail "no -O2 in the default build's flags"
cmake -S "$src" -B "$tmp/debug" -DCMAKE_BUILD_TYPE=Debug >/dev/null || fail "configure failed"
grep -qx 'CMAKE_BUILD_TYPE:STRING=Debug' "$tmp/debug/CMakeCache.txt" || fail "Debug not kept"
echo "1 passed, 0 failed"
