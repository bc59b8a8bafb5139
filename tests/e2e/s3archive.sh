#!/usr/bin/env bash
# End to end on the local stack: archives kept in an S3 bucket (the stack's
# RGW, as any S3 would be). backup -f s3://BUCKET/KEY (multipart, streamed as
# it is written) and restore from it, with the proof; credentials from the
# environment and from a shared credentials file profile; and failures and
# Ctrl-C that must leave no object and no unfinished multipart upload, nor
# change anything when the object is damaged. Needs MXPC_STACK_ENV; reseeds
# the namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
export TMPDIR=$work/tmp
mkdir "$TMPDIR"
bucket=mxpc-archives-$$-$RANDOM
# the archive's bucket is reached with the caller's AWS credentials, not the environment's
export AWS_ACCESS_KEY_ID=$MXPC_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MXPC_S3_SECRET_KEY AWS_REGION=$MXPC_S3_REGION
unset AWS_PROFILE AWS_SESSION_TOKEN
ep=(--archive-endpoint "$MXPC_S3_ENDPOINT")
tmp_empty() { [ -z "$(ls -A "$TMPDIR")" ]; }
# s3 ACTION [KEY [FILE]]: the bucket as seen by a plain S3 client
s3() {
  "$bin" run /dev/stdin "$bucket" "$@" <<'LUA'
local s3 = require "mxpc.s3"
local bucket, action, key, file = ...
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT") })
if action == "create" then assert(c:create_bucket(bucket))
elseif action == "uploads" then print(#assert(c:list_multipart_uploads(bucket)))
elseif action == "exists" then return c:head(bucket, key) and 0 or 1
elseif action == "size" then print(assert(c:head(bucket, key)).size)
elseif action == "get" then assert(c:get(bucket, key, file, { force = true }))
elseif action == "put" then assert(c:put(bucket, key, { path = file }))
elseif action == "drop" then
  for _, u in ipairs(c:list_multipart_uploads(bucket) or {}) do c:abort_multipart(bucket, u.key, u.upload_id) end
  for _, k in ipairs { "app.tar.gz", "big.tar.gz", "cut.tar.gz", "db.backup", "profile.tar.gz", "stopped.tar.gz" } do
    c:delete(bucket, k)
  end
  assert(c:delete_bucket(bucket))
end
return 0
LUA
}
trap 'kill $(jobs -p) 2>/dev/null; s3 drop >/dev/null 2>&1; rm -rf "$work"; "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null' EXIT

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
s3 create || { echo "FAIL: creating bucket $bucket"; echo "0 passed, 1 failed"; exit 1; }

# --- round trip ---------------------------------------------------------------------
run "backup -f s3://" 0 backup -n mendix -e demo-app -f "s3://$bucket/app.tar.gz" "${ep[@]}"
check "... reports where" 'grep -q "written to s3://$bucket/app.tar.gz: database [0-9]* bytes, 20 files" "$work/out"'
check "... the object is there" 's3 exists app.tar.gz'
s3 get app.tar.gz "$work/app.tar.gz"
check "... and is a valid archive" '"$bin" verify "$work/app.tar.gz" >/dev/null 2>&1'
check "... no working directory left" tmp_empty
run "verify -f s3:// reads the archive where it is" 0 verify "s3://$bucket/app.tar.gz" "${ep[@]}"
check "... and names it" 'grep -q "^OK: s3://$bucket/app.tar.gz would restore" "$work/out" && grep -q "^files: *20," "$work/out"'
check "... no working directory left" tmp_empty
run "inspect s3:// of a key that does not exist" 1 inspect "s3://$bucket/none.tar.gz" "${ep[@]}"
check "... says so" 'grep -q "^error: .*none.tar.gz" "$work/err"'
run "restore -f s3://" 0 restore -n mendix -e demo-copy -f "s3://$bucket/app.tar.gz" --stop-app "${ep[@]}"
check "... reads it twice: the check, then the restore" 'grep -q "archive is good" "$work/err" && grep -q "restored s3://$bucket/app.tar.gz into mendix/demo-copy: database, 20 files" "$work/out"'
if proof; then ok "demo-copy holds demo-app's tables, sequences and files"; else bad "proof"; cat "$work/proof"; fi
check "... no working directory left" tmp_empty

run "backup -f s3:// refuses an existing key" 1 backup -n mendix -e demo-app -f "s3://$bucket/app.tar.gz" "${ep[@]}"
check "... before any work, saying how to replace it" 'grep -q "already exists" "$work/err" && grep -q -- "--force" "$work/err" && ! grep -q "dumping" "$work/err"'
run "backup --dry-run -f s3:// to an existing key would not start" 1 backup -n mendix -e demo-app \
  -f "s3://$bucket/app.tar.gz" "${ep[@]}" --dry-run
check "... saying why" 'grep -q "already exists" "$work/out" "$work/err"'
run "backup --dry-run -f s3:// to a new key would start, and writes nothing" 0 backup -n mendix -e demo-app \
  -f "s3://$bucket/dry.tar.gz" "${ep[@]}" --dry-run
check "... it says the key can be written" 'grep -q "archive: s3://$bucket/dry.tar.gz can be written" "$work/out"'
check "... and there is no object and no upload" '! s3 exists dry.tar.gz && [ "$(s3 uploads)" = 0 ]'
run "backup -f s3:// --force replaces it" 0 backup -n mendix -e demo-app -f "s3://$bucket/app.tar.gz" "${ep[@]}" --force
run "backup -f s3:// --database-only" 0 backup -n mendix -e demo-app -f "s3://$bucket/db.backup" "${ep[@]}" --database-only
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "inspect s3:// of a database-only backup" 0 inspect "s3://$bucket/db.backup" "${ep[@]}"
check "... knows it" 'grep -q "^kind: *database-only backup" "$work/out"'
run "restore -f s3:// of a database-only backup" 0 restore -n mendix -e demo-copy -f "s3://$bucket/db.backup" --stop-app "${ep[@]}"
check "... restores the database" 'grep -q "database, 0 files" "$work/out" && [ "$(orders)" = 100 ]'
check "... and removes its download" tmp_empty

# credentials from a shared credentials file, chosen with --archive-profile
printf '[archive]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$MXPC_S3_ACCESS_KEY" "$MXPC_S3_SECRET_KEY" >"$work/credentials"
AWS_SHARED_CREDENTIALS_FILE=$work/credentials env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
  "$bin" backup -n mendix -e demo-app -f "s3://$bucket/profile.tar.gz" "${ep[@]}" --archive-profile archive \
  --archive-region "$MXPC_S3_REGION" >"$work/out" 2>"$work/err"
check "backup -f s3:// with the credentials of --archive-profile" '[ $? = 0 ] && s3 exists profile.tar.gz'
AWS_SHARED_CREDENTIALS_FILE=$work/credentials env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
  "$bin" backup -n mendix -e demo-app -f "s3://$bucket/none.tar.gz" "${ep[@]}" --archive-profile nosuch \
  >"$work/out" 2>"$work/err"
check "an unknown profile is refused, naming it" '[ $? = 1 ] && grep -q "nosuch" "$work/err"'
# (s3://BUCKET/ with its slash is a schedule's place: docs/schedule.md, e2e.scheduled)
run "a malformed s3:// location is a usage error" 2 backup -n mendix -e demo-app -f "s3://$bucket" "${ep[@]}"
check "... saying how to write it" 'grep -q "s3://BUCKET/KEY" "$work/err"'

# --- damaged objects change nothing ---------------------------------------------------
head -c 300000 "$work/app.tar.gz" >"$work/cut.tar.gz"
s3 put cut.tar.gz "$work/cut.tar.gz"
before=$(orders)
run "restore -f s3:// of a truncated archive is refused" 1 restore -n mendix -e demo-copy -f "s3://$bucket/cut.tar.gz" --stop-app "${ep[@]}"
check "... naming the problem" 'grep -q "s3://$bucket/cut.tar.gz: .*truncated" "$work/err"'
check "... before the app is stopped" '[ "$(replicas)" = 1 ] && ! grep -q "stopping the app" "$work/err" && [ "$(orders)" = "$before" ]'
run "restore -f s3:// of a missing key" 1 restore -n mendix -e demo-copy -f "s3://$bucket/nothing.tar.gz" "${ep[@]}"
check "... says so" 'grep -q "no such key" "$work/err"'

# --- a multipart backup, interrupted and failed ------------------------------------------
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" --files 24 --file-size-dist 4m:1 >"$work/seed.log" 2>&1 || bad "seeding larger files"
run "a larger backup -f s3:// goes in parts" 0 -v backup -n mendix -e demo-app -f "s3://$bucket/big.tar.gz" "${ep[@]}"
check "... a multipart upload" 'grep -q "multipart upload of s3://$bucket/big.tar.gz begun" "$work/err"'
check "... of the whole archive" '[ "$(s3 size big.tar.gz)" -gt $((48 * 1024 * 1024)) ] && [ "$(s3 uploads)" = 0 ]'
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore of the multipart archive" 0 restore -n mendix -e demo-copy -f "s3://$bucket/big.tar.gz" --stop-app "${ep[@]}"
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" --files 24 --file-size-dist 4m:1 >/dev/null 2>&1

for sig in INT TERM; do
  "$bin" -v backup -n mendix -e demo-app -f "s3://$bucket/stopped.tar.gz" "${ep[@]}" >"$work/out" 2>"$work/err" & pid=$!
  wait_for 'grep -q "multipart upload of s3://$bucket/stopped.tar.gz begun" "$work/err"' 180 || bad "the upload began"
  check "SIG$sig during the upload: an unfinished multipart upload exists before" '[ "$(s3 uploads)" = 1 ]'
  kill -$sig $pid; wait $pid; code=$?
  check "... exit $([ $sig = INT ] && echo 130 || echo 143)" '[ $code = $([ $sig = INT ] && echo 130 || echo 143) ]'
  check "... no unfinished multipart upload left" '[ "$(s3 uploads)" = 0 ]'
  check "... no object" '! s3 exists stopped.tar.gz'
  check "... no working directory" tmp_empty
done

# a failure that is no signal: the database dump cannot be read halfway
# (pg_dump is replaced by one that writes part of a dump and fails)
mkdir "$work/bin"
printf '#!/bin/sh\n%s "$@" | head -c 2000\necho "pg_dump: error: simulated failure" >&2\nexit 1\n' "$(command -v pg_dump)" >"$work/bin/pg_dump"
chmod +x "$work/bin/pg_dump"
MXPC_PG_BINDIR=$work/bin run "a failing backup -f s3:// exits 1" 1 backup -n mendix -e demo-app -f "s3://$bucket/stopped.tar.gz" "${ep[@]}"
check "... with the cause" 'grep -q "simulated failure" "$work/err"'
check "... and leaves no object and no upload" '! s3 exists stopped.tar.gz && [ "$(s3 uploads)" = 0 ]'

# a failure while the archive streams out: the bucket (behind
# tests/faults/s3_fault_proxy.py) refuses the archive's third part, after the
# multipart upload began and while later parts are on their way
printf '[{"method": "PUT", "key": "partNumber=3", "action": "status", "status": 403, "times": -1}]\n' >"$work/rules.json"
python3 "$src/tests/faults/s3_fault_proxy.py" --target "${MXPC_S3_ENDPOINT#http://}" --rules "$work/rules.json" \
  --log "$work/proxy.log" >"$work/proxy.out" 2>&1 &
wait_for 'grep -q "listening on" "$work/proxy.out"' 10 || bad "the fault proxy started"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/proxy.out")
run "a backup -f s3:// whose third part is refused exits 1" 1 -v backup -n mendix -e demo-app \
  -f "s3://$bucket/stopped.tar.gz" --archive-endpoint "http://127.0.0.1:$port"
expect_err "... saying why" "access denied: PUT s3://$bucket/stopped.tar.gz"
check "... after the upload began" 'grep -q "multipart upload of s3://$bucket/stopped.tar.gz begun" "$work/err"'
check "... and leaves no object and no upload" '! s3 exists stopped.tar.gz && [ "$(s3 uploads)" = 0 ]'
check "... nor a working directory" tmp_empty

finish
