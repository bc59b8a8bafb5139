#!/usr/bin/env bash
# Ctrl-C during a backup and during a restore, on the local stack with larger
# files (so there is time to interrupt): exit 130, no partial archive or
# working directory left, the app started again, the database untouched.
# Needs MXPC_STACK_ENV; reseeds the namespace before and after.
set -uo pipefail
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "${MXPC_STACK_ENV:-}" ] || { echo "FAIL: MXPC_STACK_ENV is not set (start tests/stack/up)"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1090
. "$MXPC_STACK_ENV"
export KUBECONFIG=$MXPC_KUBECONFIG PGSSLROOTCERT=$MXPC_PG_CA MXPC_SCRIPTS= MXPC_DATADIR=
work=$(mktemp -d)
trap 'rm -rf "$work"; "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/  /' "$work/err" 2>/dev/null | tail -5; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
wait_for() { for _ in $(seq 1 600); do eval "$1" && return 0; sleep 0.05; done; return 1; }
replicas() { kubectl -n mendix get mendixapp demo-copy -o jsonpath='{.spec.replicas}'; }
orders() { PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" \
  -d demo_copy -c 'select count(*) from "myfirstmodule$order"'; }

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" --files 40 --file-size-dist 4m:1 >"$work/seed.log" 2>&1 \
  || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

# backup: interrupt while the files are being copied into the archive
mkdir "$work/out"
"$bin" backup -n mendix -e demo-app -f "$work/out/demo.tar.gz" 2>"$work/err" & pid=$!
wait_for 'grep -q "database dumped" "$work/err"' || bad "backup reached the copy"
kill -INT $pid; wait $pid; code=$?
check "interrupted backup exits 130" '[ $code = 130 ]'
check "... with one error line" 'grep -q "^error: interrupted by SIGINT$" "$work/err"'
check "... and leaves nothing in the output directory" '[ -z "$(ls -A "$work/out")" ]'

# a complete archive to restore from
"$bin" -q backup -n mendix -e demo-app -f "$work/full.tar.gz" 2>"$work/err" >/dev/null
check "a full backup for the restore" '[ -s "$work/full.tar.gz" ]'
before=$(orders)

# restore: interrupt while the files are uploaded, with the app stopped for us
"$bin" restore -n mendix -e demo-copy -f "$work/full.tar.gz" --stop-app 2>"$work/err" & pid=$!
wait_for 'grep -q "connected to the database" "$work/err"' || bad "restore reached the upload"
kill -INT $pid; wait $pid; code=$?
check "interrupted restore exits 130" '[ $code = 130 ]'
check "... starts the app again" '[ "$(replicas)" = 1 ] && grep -q "starting the app again" "$work/err"'
check "... and leaves the database untouched" '[ "$(orders)" = "$before" ]'
check "... and no working directory" '[ -z "$(ls -A "$work" | grep "^\.mxpc-work")" ]'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
