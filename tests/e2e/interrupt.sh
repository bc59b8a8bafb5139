#!/usr/bin/env bash
# Ctrl-C during a backup and during a restore, on the local stack with larger
# files (so there is time to interrupt): exit 130, no partial archive or
# working directory left, the app started again, the database untouched.
# Needs MXPC_STACK_ENV; reseeds the namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
trap 'rm -rf "$work"; reseed >/dev/null' EXIT

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

# restore: interrupt while the files are uploaded; --stop-app stops the app
# only for the database phase, so it runs on meanwhile
"$bin" restore -n mendix -e demo-copy -f "$work/full.tar.gz" --stop-app 2>"$work/err" & pid=$!
wait_for 'grep -q "connected to the database" "$work/err"' || bad "restore reached the upload"
kill -INT $pid; wait $pid; code=$?
check "interrupted restore exits 130" '[ $code = 130 ]'
check "... the app ran on, never stopped" '[ "$(replicas)" = 1 ] && ! grep -q "stopping the app" "$work/err"'
check "... and leaves the database untouched" '[ "$(orders)" = "$before" ]'
check "... and no working directory" '[ -z "$(ls -A "$work" | grep "^\.mxpc-work")" ]'

# with --safety-backup the app is stopped first (a consistent safety backup),
# and started again when the run is interrupted
"$bin" restore -n mendix -e demo-copy -f "$work/full.tar.gz" --stop-app --safety-backup "$work/safety.tar.gz" \
  2>"$work/err" & pid=$!
wait_for 'grep -q "connected to the database" "$work/err"' || bad "restore reached the safety backup"
kill -INT $pid; wait $pid; code=$?
check "interrupted restore --safety-backup exits 130" '[ $code = 130 ]'
check "... had stopped the app and starts it again" \
  'grep -q "app stopped" "$work/err" && [ "$(replicas)" = 1 ] && grep -q "starting the app again" "$work/err"'
check "... and leaves the database untouched" '[ "$(orders)" = "$before" ]'

finish
