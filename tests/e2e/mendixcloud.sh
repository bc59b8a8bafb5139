#!/usr/bin/env bash
# End to end against the stack's Mendix Cloud stand-in (Deploy API v1 and Backups
# API v2, docs/mendix-cloud.md): `list mendix-cloud://APP/ENVIRONMENT` in text and
# JSON, by names and ids, with credentials from the environment and from a file;
# every documented error code worded with what to do; a snapshot whose archive is
# our own backup of demo-app, requested, polled to completed and fetched from its
# presigned RGW url; a job that fails, one that never ends (the timeout), Ctrl-C
# while polling; and the API key in no output or log (also -vv, --log-format json).
# Needs MXPC_STACK_ENV (seeded); changes nothing in the namespace.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
admin() {   # admin PATH [JSON]: the stand-in's test knobs
  curl -sf -X POST -H "X-Admin-Token: $(cat "$MXPC_MENDIX_CLOUD_DIR/admin-token")" \
    --data "${2:-{\}}" "$MXPC_MENDIX_CLOUD_URL/_admin/$1" >/dev/null
}
trap 'kill $(jobs -p) 2>/dev/null; admin reset; rm -rf "$work"' EXIT
export MXPC_MENDIX_API_URL=$MXPC_MENDIX_CLOUD_URL MENDIX_USERNAME=$MXPC_MENDIX_USERNAME \
  MENDIX_API_KEY=$MXPC_MENDIX_API_KEY
key=$MXPC_MENDIX_API_KEY
prod=$MXPC_MENDIX_PRODUCTION_ID
app=mendix-cloud://$MXPC_MENDIX_PROJECT_ID
admin reset || { echo "FAIL: the Mendix Cloud stand-in does not answer ($MXPC_MENDIX_CLOUD_URL)"; echo "0 passed, 1 failed"; exit 1; }
: >"$work/all"
# every output of the program is kept, to look for the key at the end
before_run() { cat "$work/out" "$work/err" >>"$work/all" 2>/dev/null || true; }

# --- list ------------------------------------------------------------------------------
run "list mendix-cloud://PROJECT/Production" 0 list "$app/Production"
check "... a header and three snapshots" '[ "$(wc -l <"$work/out")" = 4 ] && head -1 "$work/out" | grep -q "^SNAPSHOT  *CREATED  *MODEL  *STATE  *EXPIRES  *COMMENT$"'
check "... newest first" '[ "$(sed 1d "$work/out" | awk "{print \$2}" | sort -r)" = "$(sed 1d "$work/out" | awk "{print \$2}")" ]'
check "... with the model version, state and comment" 'grep -q "1.0.0.40  completed  .*Before the release" "$work/out"'
run "list by the AppId and the environment's name in another case" 0 list "mendix-cloud://$MXPC_MENDIX_APP_ID/acceptance"
check "... the Acceptance environment's snapshots" '[ "$(wc -l <"$work/out")" = 4 ]'
run "list --json by ids" 0 list "$app/$prod" --json
check "... one JSON object: the ids and the snapshots, newest first" 'python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
s = d[\"snapshots\"]
assert d[\"project\"] == sys.argv[2] and d[\"environment\"] == sys.argv[3], d
assert len(s) == 3 and [x[\"created\"] for x in s] == sorted((x[\"created\"] for x in s), reverse=True), s
assert set(s[0]) >= {\"id\", \"created\", \"model_version\", \"comment\", \"state\", \"expires\"}, s[0]
" "$work/out" "$MXPC_MENDIX_PROJECT_ID" "$prod"'
printf 'MENDIX_USERNAME=%s\nMENDIX_API_KEY=%s\n' "$MXPC_MENDIX_USERNAME" "$key" >"$work/creds"
run_env "list --mendix-credentials FILE (nothing in the environment)" 0 -u MENDIX_USERNAME -u MENDIX_API_KEY -- \
  list "$app/Production" --mendix-credentials "$work/creds"
check "... lists" '[ "$(wc -l <"$work/out")" = 4 ]'
expect_err "... warns that others can read the file (0644)" "credentials file can be read by others: chmod 600 it"
chmod 600 "$work/creds"
run_env "... and not once it is 0600" 0 -u MENDIX_USERNAME -u MENDIX_API_KEY -- \
  list "$app/Production" --mendix-credentials "$work/creds"
check "... (no warning)" '! grep -q "read by others" "$work/err"'
run_env "list without credentials" 1 -u MENDIX_API_KEY -- list "$app/Production"
expect_err "... says which variable is missing and where to put it" "MENDIX_API_KEY is not set in the environment"
expect_err "... never on the command line" "never on the command line"
run "list of another scheme" 2 list ftp://host/path
expect_err "... says which it supports" "list supports mendix-cloud://APP/ENVIRONMENT, s3://BUCKET/PREFIX and azblob://ACCOUNT/CONTAINER/PREFIX locations; ftp:// is not one"
run "list with a snapshot id" 2 list "$app/Production/51dc7872-771e-4c3e-853b-352359444db6"
expect_err "... says how to write it" "without a snapshot"
run "list of a malformed location" 2 list mendix-cloud://only-an-app
expect_err "... says what is missing" "ENVIRONMENT is missing"

admin "snapshot/$MXPC_MENDIX_ACCEPTANCE_ID" '{"comment": "\u001b[31mred\u001b]0;title\u0007 text"}'
run "a comment with escape sequences" 0 list "mendix-cloud://$MXPC_MENDIX_APP_ID/Acceptance"
check "... is shown escaped (no ESC or BEL reaches the terminal)" '! grep -q "$(printf "\033")" "$work/out" && ! grep -q "$(printf "\007")" "$work/out" && grep -q "red.*text" "$work/out"'
run "... and in JSON" 0 list "mendix-cloud://$MXPC_MENDIX_APP_ID/Acceptance" --json
check "... as JSON escapes" '! grep -q "$(printf "\033")" "$work/out" && grep -qF "\u001b[31mred" "$work/out"'
admin reset

# --- every error code list can meet, worded ---------------------------------------------
run_env "a wrong API key" 1 MENDIX_API_KEY=wrong-key-0123456789 -- list "$app/Production"
expect_err "... rejected credentials" "^error: Mendix Cloud rejected the API credentials of $MXPC_MENDIX_USERNAME"
expect_err "... which to check" "^hint: check MENDIX_USERNAME .* and MENDIX_API_KEY"
check "... the wrong key is not printed either" '! grep -q wrong-key-0123456789 "$work/err"'
run_env "NO_ACCESS" 1 MENDIX_USERNAME="$MXPC_MENDIX_NO_BACKUPS_USER" \
  MENDIX_API_KEY="$MXPC_MENDIX_NO_BACKUPS_API_KEY" -- list "$app/Production"
expect_err "... names the environment" "has no access to the backups of environment Production \($prod\)"
expect_err "... and the permissions to give" "^hint: .*'API Rights' and 'Access to Backups'"
run "ENVIRONMENT_NOT_FOUND" 1 list "$app/00000000-0000-0000-0000-000000000000"
expect_err "... what APP and ENVIRONMENT are" "has no environment 00000000-0000-0000-0000-000000000000"
run "an unknown environment name" 1 list "$app/Staging"
expect_err "... lists the names there are" "has no environment named Staging \(it has: Production, Acceptance\)"
for spec in "not_supported:NOT_SUPPORTED:is not in Mendix Cloud.*backup -n NAMESPACE" \
            "unavailable:SERVICE_UNAVAILABLE:could not do it.*contact Mendix Support" \
            "listing_fails:SNAPSHOT_LISTING_FAILED:could not list the snapshots.*contact Mendix Support"; do
  knob=${spec%%:*}; rest=${spec#*:}; code=${rest%%:*}; words=${rest#*:}
  admin reset; admin "environment/$prod" "{\"$knob\": true}"
  run "$code" 1 list "$app/$prod"
  if tr '\n' ' ' <"$work/err" | grep -qE "$words"; then ok "... worded, with what to do"; else bad "... worded: /$words/"; fi
done
admin reset

# --- snapshots and archives through the module (restore: e2e.mendix-restore) ---
"$bin" -q backup -n mendix -e demo-app -f "$work/demo.tar.gz" >/dev/null 2>"$work/err"
check "a backup of demo-app to serve as a Mendix Cloud snapshot" '[ -s "$work/demo.tar.gz" ]'
admin "snapshot/$prod" "{\"archive\": \"$work/demo.tar.gz\", \"comment\": \"our own backup of demo-app\"}"
# cloud ACTION TIMEOUT [GLOBAL-OPTIONS]: the module, as restore will use it
cloud() {
  "$bin" "${@:3}" run /dev/stdin "$1" "$2" "$app/Production" <<'LUA'
local mc = require "mxpc.mendix_cloud"
local action, timeout, loc = arg[1], tonumber(arg[2]), arg[3]
local client = mc.client { credentials = assert(mc.credentials()) }
local where = assert(client:resolve(assert(mc.parse_location(loc))))
local function ok(v, err) if not v then error(err, 0) end return v end
if action == "create" then
  local snap = ok(client:create_snapshot(where, mc.snapshot_comment("mendix/demo-copy")))
  print(ok(client:wait_snapshot(where, snap, { interval = 0.1 })).comment)
  return 0
end
local got = ok(client:prepare_archive(where, { data_type = action, interval = 0.1, timeout = timeout }))
print(got.url)
return 0
LUA
}
before_run
cloud files_and_database 60 -v >"$work/out" 2>"$work/err"; code=$?
check "an archive of the newest snapshot: polled to completed (exit $code)" '[ $code = 0 ] && grep -q "archive of snapshot .*: running" "$work/err" && grep -q ": completed" "$work/err"'
check "... its url is a presigned RGW GET" 'grep -q "^$MXPC_S3_ENDPOINT/mendix-cloud-archives/.*X-Amz-Signature=" "$work/out"'
curl -sf -o "$work/got.tar.gz" "$(cat "$work/out")"
check "... which serves our backup, byte for byte" 'cmp -s "$work/got.tar.gz" "$work/demo.tar.gz"'
check "... and it verifies" '"$bin" verify "$work/got.tar.gz" >/dev/null 2>&1'
before_run
cloud database_only 60 >"$work/out" 2>"$work/err"; code=$?
curl -sf -o "$work/db.backup" "$(cat "$work/out")"
check "database_only: a bare dump (PGDMP)" '[ $code = 0 ] && [ "$(head -c5 "$work/db.backup")" = PGDMP ]'
before_run
cloud create 60 >"$work/out" 2>"$work/err"; code=$?
check "a new snapshot, its comment naming the tool and the target" '[ $code = 0 ] && grep -q "^mxpc-data-migration .*: snapshot for a restore into mendix/demo-copy$" "$work/out"'
admin "environment/$prod" '{"busy": true}'
before_run
cloud create 60 >"$work/out" 2>"$work/err"; code=$?
check "ENVIRONMENT_BUSY on a new snapshot: exit 1, try again later" '[ $code = 1 ] && grep -q "is busy.*" "$work/err" && grep -q "try again later" "$work/err"'
admin reset; admin "environment/$prod" '{"maintenance": true}'
before_run
cloud create 60 >"$work/out" 2>"$work/err"; code=$?
check "INVALID_STATE: a maintenance action, wait" '[ $code = 1 ] && grep -q "wait until it is finished" "$work/err"'
admin reset; admin "environment/$prod" '{"fail_jobs": true}'
before_run
cloud files_and_database 60 >"$work/out" 2>"$work/err"; code=$?
check "a job that fails: exit 1, Mendix Cloud reports it failed" '[ $code = 1 ] && grep -q "Mendix Cloud reports that the archive of snapshot .* failed" "$work/err"'
admin reset; admin "environment/$prod" '{"never_finish": true}'
before_run
start=$EPOCHREALTIME
cloud files_and_database 2 >"$work/out" 2>"$work/err"; code=$?
took=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
check "a job that never ends: the timeout, exit 1 ($took ms)" '[ $code = 1 ] && grep -q "did not finish within 2 s (state: running)" "$work/err" && [ $took -lt 6000 ]'
before_run
"$bin" run /dev/stdin "$app/Production" >"$work/out" 2>"$work/err" <<'LUA' & pid=$!
local mc = require "mxpc.mendix_cloud"
local client = mc.client { credentials = assert(mc.credentials()) }
local where = assert(client:resolve(assert(mc.parse_location(arg[1]))))
local snap = mc.newest_completed(assert(client:list_snapshots(where)))
local job = assert(client:request_archive(where, snap.snapshot_id))
io.stderr:write("polling\n")
assert(client:wait_archive(where, job, { interval = 5 }))
LUA
wait_for 'grep -q polling "$work/err"' 10 || bad "the poll started"
sleep 0.3
start=$EPOCHREALTIME
kill -INT $pid; wait $pid; code=$?
took=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
check "Ctrl-C while polling: exit 130 at once ($took ms)" '[ $code = 130 ] && [ $took -lt 1000 ] && grep -q "^error: interrupted by SIGINT$" "$work/err"'
admin reset

# --- the key is in no output or log ------------------------------------------------------
run "list -vv" 0 -vv list "$app/Production"
run "list --log-format json -vv" 0 --log-format json -vv list "$app/Production" --json
check "... every stderr line is JSON" 'python3 -c "
import json, sys
[json.loads(l) for l in open(sys.argv[1]) if l.strip()]" "$work/err"'
run "list -vv with the credentials file" 0 -vv list "$app/Production" --mendix-credentials "$work/creds"
run "an error under -vv --log-format json" 1 -vv --log-format json list "$app/00000000-0000-0000-0000-000000000000"
before_run
check "the API key appears in no output or log of any run above" '! grep -qF "$key" "$work/all"'
check "... and the runs above did talk to the API (the check sees their output)" 'grep -q "Mendix Cloud request" "$work/all"'
finish
