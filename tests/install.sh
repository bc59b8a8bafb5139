#!/usr/bin/env bash
# `cmake --install` puts the binary, the stock Lua files, the manual page and
# the completion scripts in place, and the installed binary loads its scripts
# from the installed files.
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
bin=$prefix/bin/mxpc-data-migration
data=$prefix/share/mxpc-data-migration
[ -x "$bin" ] || fail "no installed binary"
for f in lua/mxpc/main.lua scripts/backup.lua scripts/restore.lua; do
  [ -f "$data/$f" ] || fail "not installed: $f"
done
# the installed binary was built for another prefix, so point it at this one
list=$(MXPC_SCRIPTS= MXPC_DATADIR="$data" "$bin" scripts list)
echo "$list" | grep -q "^scripts/backup.lua  *$data/scripts/backup.lua$" || fail "backup.lua not loaded from $data: $list"
echo "$list" | grep -q "^lua/mxpc/main.lua  *$data/lua/mxpc/main.lua$" || fail "main.lua not loaded from $data"
# the manual page and the completion scripts, as the program generates them
export MXPC_DATADIR=
cmp -s "$prefix/share/man/man1/mxpc-data-migration.1" <("$bin" help --man) || fail "man page not installed or stale"
cmp -s "$prefix/share/bash-completion/completions/mxpc-data-migration" <("$bin" completion bash) ||
  fail "bash completion not installed or stale"
cmp -s "$prefix/share/zsh/site-functions/_mxpc-data-migration" <("$bin" completion zsh) ||
  fail "zsh completion not installed or stale"
MANPATH=$prefix/share/man man -w mxpc-data-migration | grep -qx "$prefix/share/man/man1/mxpc-data-migration.1" ||
  fail "man does not find the installed page"
# the docs that messages and --help name (docs/hooks.md, ...), and where --help says they are
src=$(cd "$(dirname "$0")/.." && pwd)
for doc in $(grep -rhoE 'docs/[a-z0-9-]+\.md' "$src/lua" "$src/src" "$src/scripts" | sort -u); do
  [ -f "$prefix/share/doc/mxpc-data-migration/$doc" ] || fail "the program names $doc, which is not installed"
done
[ -f "$prefix/share/doc/mxpc-data-migration/README.md" ] || fail "README.md not installed"
"$bin" --help | grep -q "share/doc/mxpc-data-migration/docs/" || fail "--help does not say where the docs are"
echo "1 passed, 0 failed"
