#!/usr/bin/env bash
# copy --from NS/ENV --to NS/ENV on the local stack: demo-app into demo-copy (one
# endpoint: server-side), into demo-https (another endpoint over https: streamed),
# demo-irsa on either side; each proved table by table and object by object. The
# anonymisation example with copy, watched from another connection; refusals (self-copy,
# bad values); failures (the source refuses a GET or its pg_dump fails mid-copy, the
# target refuses a PUT) and SIGINT/SIGTERM at every phase, also while the files are
# copied (through bench/latency_proxy.py, server-side and streamed, with a multipart
# upload open): the target's database as it was, no unfinished multipart upload, the app
# running, a clear error, the source untouched.
# Needs MXPC_STACK_ENV; reseeds the namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
policy() { # policy BUCKET JSON|-: sets (or with -, deletes) the bucket's policy with the stack's own user
  python3 - "$@" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["SRC"], "tests", "stack"))
import stacklib
s3 = stacklib.S3(os.environ["MXPC_S3_ENDPOINT"], os.environ["MXPC_S3_ACCESS_KEY"], os.environ["MXPC_S3_SECRET_KEY"])
bucket, doc = sys.argv[1], sys.argv[2]
if doc == "-":
    s3.request("DELETE", bucket, query=[("policy", "")])
else:
    s3.request("PUT", bucket, query=[("policy", "")], body=doc.encode())
PY
}
export SRC=$src
proxy_pid=
trap '[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null; policy demo-copy-files - 2>/dev/null
  policy mendix-shared - 2>/dev/null; rm -rf "$work"; reseed >/dev/null' EXIT
export SSL_CERT_FILE=$MXPC_S3_CA

reseed >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
prove() { "$bin" run "$src/tests/e2e/proof.lua" "$seed_json" "$1" "$2" >"$work/proof" 2>&1; }
sql_copy() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 \
  -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_copy -c "$1"; }
sql_app() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 \
  -p "$MXPC_PG_TLS_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_app -c "$1"; }
# every table of demo_copy's schema public with the md5 of its sorted rows
fingerprint() {
  local t
  for t in $(sql_copy "select tablename from pg_tables where schemaname = 'public' order by 1"); do
    printf '%s %s\n' "$t" "$(sql_copy "select count(*) || ':' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from public.\"$t\" x")"
  done
}
cat >"$work/uploads.lua" <<'EOF'
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
print(#assert(c:list_multipart_uploads("demo-copy-files")))
EOF
uploads() { "$bin" run "$work/uploads.lua"; }
cat >"$work/head.lua" <<'EOF'
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
local h, err = c:head(arg[1], arg[2])
print(h and "present" or err.code)
EOF

# --- refused before anything is done: exit 2 ---------------------------------------------------
run "self-copy is refused" 2 copy --from mendix/demo-app --to mendix/demo-app
expect_err "... saying so" "--from and --to are the same environment"
run "self-copy through another kubeconfig is refused" 2 copy --from mendix/demo-app --to mendix/demo-app \
  --to-kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
expect_err "... naming the cluster" "same environment: mendix/demo-app in the cluster at https://"
for v in demo-app mendix/Demo mendix/ /demo-app a/b/c; do
  run "--from $v is refused" 2 copy --from "$v" --to mendix/demo-copy
done
expect_err "... saying what is expected" "expected NAMESPACE/ENVIRONMENT"
run "--to missing is refused" 2 copy --from mendix/demo-app
run "--copy-mode bogus is refused" 2 copy --from mendix/demo-app --to mendix/demo-copy --copy-mode bogus
run "--database-only --files-only is refused" 2 copy --from mendix/demo-app --to mendix/demo-copy --database-only \
  --files-only
run "--delete-extra-files --database-only is refused" 2 copy --from mendix/demo-app --to mendix/demo-copy \
  --database-only --delete-extra-files
before=$(fingerprint)

# --- checks, dry run ------------------------------------------------------------------------------
run "copy refuses a running target" 1 copy --from mendix/demo-app --to mendix/demo-copy
expect_err "... naming --stop-app" "stop-app"
run "--dry-run checks both sides" 0 copy --from mendix/demo-app --to mendix/demo-copy --stop-app --dry-run
grep -q "environment mendix/demo-app" "$work/out" && grep -q "environment mendix/demo-copy" "$work/out" \
  && grep -q "would copy 20 files" "$work/out" && ok "... and says what it would copy" || bad "dry run plan: $(cat "$work/out")"
check "... changing nothing" '[ "$(fingerprint)" = "$before" ] && [ "$(replicas)" = 1 ]'
touch "$work/exists.tar.gz"
run "--dry-run with a --safety-backup file that exists says it would not start" 1 copy --from mendix/demo-app \
  --to mendix/demo-copy --stop-app --dry-run --safety-backup "$work/exists.tar.gz"
grep -q "safety-backup: .*already exists" "$work/out" && ok "... naming the file" || bad "... naming the file: $(cat "$work/out")"

# --- demo-app into demo-copy: one endpoint ----------------------------------------------------------
run "copy demo-app into demo-copy" 0 -v copy --from mendix/demo-app --to mendix/demo-copy --stop-app --log-format json
if prove demo-app demo-copy; then ok "... proved: tables, sequences and every file"; else bad "proof"; cat "$work/proof"; fi
check "... the app runs again" '[ "$(replicas)" = 1 ]'
check "... a JSON summary event" 'grep -q "\"event\":\"summary\".*\"files\":20" "$work/err"'
summary=$(grep '"event":"summary"' "$work/err")
received=$(sed -n 's/.*"received":\([0-9]*\).*/\1/p' <<<"$summary")
check "... server-side: the same endpoint, and the target's keys read the source" 'grep -q "\"mode\":\"server\"" <<<"$summary"'
check "... -v names the check that decided" 'grep -q "target.s credentials can read the source.s objects (HEAD s3://mendix-shared/demo-app/" "$work/err"'
check "... and no file's bytes passed through the tool ($received bytes of answers for 1595222 of files)" \
  '[ -n "$received" ] && [ "$received" -lt 65536 ]'
check "... no working directory left" '[ -z "$(ls -A "${TMPDIR:-/tmp}" 2>/dev/null | grep "^\.mxpc-work-" | while read -r d; do
  [ "$(stat -c %Y "${TMPDIR:-/tmp}/$d")" -ge "$(date -d "-1 min" +%s)" ] && echo "$d"; done)" ]'

# --- demo-app into demo-https: another endpoint, over https --------------------------------------------
run "copy demo-app into demo-https (stopped) over https" 0 copy --from mendix/demo-app --to mendix/demo-https
grep -q "stream" "$work/out" && ok "... streamed" || bad "... streamed: $(cat "$work/out")"
run "--copy-mode stream on one endpoint streams" 0 --log-format json copy --from mendix/demo-app --to mendix/demo-copy \
  --stop-app --copy-mode stream
received=$(sed -n 's/.*"event":"summary".*"received":\([0-9]*\).*/\1/p' "$work/err")
check "... every byte through the tool ($received received)" '[ -n "$received" ] && [ "$received" -ge 1595222 ]'
if prove demo-app demo-copy; then ok "... proved"; else bad "proof stream"; cat "$work/proof"; fi
if prove demo-app demo-https; then ok "... proved"; else bad "proof demo-https"; cat "$work/proof"; fi
SSL_CERT_FILE= SSL_CERT_DIR= run "without the CA for https the copy fails before any change" 1 \
  copy --from mendix/demo-app --to mendix/demo-https
expect_err "... pointing at SSL_CERT_FILE" "SSL_CERT_FILE"

# --- the selection and --delete-extra-files --------------------------------------------------------------
reseed >/dev/null
own=$(sql_copy 'select __uuid__ from "system$filedocument" where hascontents order by 1 limit 1')
run "copy --files-only --files-larger-than 100k --delete-extra-files" 0 copy --from mendix/demo-app \
  --to mendix/demo-copy --stop-app --files-only --files-larger-than 100k --delete-extra-files
want=$(sql_app 'select count(*) from "system$filedocument" where hascontents and size > 102400')
grep -q " $want files" "$work/out" && ok "... copies the $want larger files" || bad "... the larger files: $(cat "$work/out")"
grep -qE "[1-9][0-9]* files the source lacks deleted" "$work/out" && ok "... deletes the target's own" \
  || bad "... deletes the target's own: $(cat "$work/out")"
check "... (its file $own is gone)" '[ "$("$bin" run "$work/head.lua" demo-copy-files "$own")" = not_found ]'
check "... leaves the database" '[ "$(sql_copy "select count(*) from \"system\$filedocument\" where __uuid__ = '"'$own'"'")" = 1 ]'

# --- the anonymisation example: no committed state ever shows a clear address ----------------------------
reseed >/dev/null
# the source's addresses that the target does not hold already
sql_copy 'select email from "myfirstmodule$customer"' | sort -u >"$work/own"
sql_app 'select email from "myfirstmodule$customer" where email <> $$$$' | sort -u | comm -23 - "$work/own" >"$work/clear"
watch_target() {
  : >"$work/seen"
  while [ ! -e "$work/done" ]; do sql_copy 'select email from "myfirstmodule$customer"' >>"$work/seen" 2>/dev/null; done
  sql_copy 'select email from "myfirstmodule$customer"' >>"$work/seen"
}
rm -f "$work/done"
watch_target & watcher=$!
run "copy with scripts/examples/anonymise_emails.lua (and --safety-backup)" 0 copy --from mendix/demo-app \
  --to mendix/demo-copy --stop-app --hooks "$src/scripts/examples/anonymise_emails.lua" --safety-backup "$work/safety.tar.gz"
touch "$work/done"; wait $watcher
"$bin" inspect "$work/safety.tar.gz" >"$work/inspect" 2>&1
check "... the safety backup holds the target as it was (model 1.0.0.41)" 'grep -q "modelVersion=1.0.0.41" "$work/inspect"'
check "... the target was read while it ran ($(wc -l <"$work/seen") rows seen)" '[ "$(wc -l <"$work/seen")" -gt 100 ]'
check "... some addresses differ from the target's own ($(wc -l <"$work/clear"))" '[ "$(wc -l <"$work/clear")" -ge 10 ]'
check "... and never showed one of the $(wc -l <"$work/clear") clear addresses" '! grep -qxFf "$work/clear" "$work/seen"'
anonymised=$(sql_copy 'select count(*) from "myfirstmodule$customer" where email = $$customer-$$ || id || $$@example.invalid$$')
check "... every address is anonymised ($anonymised)" '[ "$anonymised" = 50 ]'

# --- failures: the target's database as it was, the app running, no unfinished upload --------------------------
reseed >/dev/null
before=$(fingerprint)
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["environments"]["demo-app"]["files"][9]["key"])' "$seed_json")
policy mendix-shared "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":\"*\",
  \"Action\":[\"s3:GetObject\"],\"Resource\":[\"arn:aws:s3:::mendix-shared/$key\"]}]}"
for mode in server stream; do
  run "the source refusing its 10th object fails the copy ($mode: a ${mode/server/CopyObject}${mode/stream/ GET} refused)" 1 \
    copy --from mendix/demo-app --to mendix/demo-copy --stop-app --copy-mode $mode
  expect_err "... naming the refusal" "error: .*(403|forbidden|denied|Denied)"
  check "... the target's database as it was" '[ "$(fingerprint)" = "$before" ]'
  check "... the app runs" '[ "$(replicas)" = 1 ]'
  check "... no unfinished upload" '[ "$(uploads)" = 0 ]'
done
policy mendix-shared -

policy demo-copy-files '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",
  "Action":["s3:PutObject"],"Resource":["arn:aws:s3:::demo-copy-files/*"]}]}'
run "the target refusing a PUT fails the copy" 1 copy --from mendix/demo-app --to mendix/demo-copy --stop-app
policy demo-copy-files -
expect_err "... naming the refusal" "error: .*(403|forbidden|denied|Denied)"
check "... the target's database as it was" '[ "$(fingerprint)" = "$before" ]'
check "... the app runs" '[ "$(replicas)" = 1 ]'
check "... no unfinished upload" '[ "$(uploads)" = 0 ]'

mkdir "$work/bin"
real=$(command -v pg_dump)
printf '#!/bin/sh\n%s "$@" | head -c 3000\necho "pg_dump: error: simulated: the source went away" >&2\nexit 1\n' "$real" >"$work/bin/pg_dump"
chmod +x "$work/bin/pg_dump"
for p in psql; do ln -s "$(command -v $p)" "$work/bin/$p"; done
MXPC_PG_BINDIR=$work/bin run "pg_dump failing mid-copy fails the copy" 1 copy --from mendix/demo-app \
  --to mendix/demo-copy --stop-app
expect_err "... with pg_dump's message" "simulated: the source went away"
check "... the target's database as it was" '[ "$(fingerprint)" = "$before" ]'
check "... the app runs" '[ "$(replicas)" = 1 ]'

# a file the source's database references but its storage lacks: skipped and said, or with --strict an error
cat >"$work/delete.lua" <<'EOF'
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
assert(c:delete(arg[1], arg[2]))
EOF
"$bin" run "$work/delete.lua" mendix-shared "$key"
run "copy --strict with a file missing from the source's storage fails" 1 copy --from mendix/demo-app \
  --to mendix/demo-copy --stop-app --strict
expect_err "... naming the file" "is missing from storage"
check "... the target's database as it was" '[ "$(fingerprint)" = "$before" ]'
check "... the app runs" '[ "$(replicas)" = 1 ]'
run "without --strict it is skipped" 0 copy --from mendix/demo-app --to mendix/demo-copy --stop-app
grep -q "19 files .*1 files missing from the source's storage skipped" "$work/out" && ok "... and said" \
  || bad "... and said: $(cat "$work/out")"
before=$(fingerprint)

# --- signals at every phase ---------------------------------------------------------------------------------
cat >"$work/pause.lua" <<'EOF'
-- waits at the hook point COPY_PAUSE_AT (after touching COPY_MARKER) until a signal comes
local at, marker = os.getenv("COPY_PAUSE_AT"), os.getenv("COPY_MARKER")
local function pause(name)
  if name ~= at then return end
  io.open(marker, "w"):close()
  require("mxpc.runtime").sleep(60)
end
return {
  before_backup = function() pause("before_backup") end,
  select_file = function() pause("select_file"); return true end,
  before_restore = function() pause("before_restore") end,
  after_backup = function() pause("after_backup") end,
  restore_sql = function() pause("restore_sql") end,
}
EOF
for at in before_backup select_file before_restore after_backup restore_sql; do
  for sig in INT TERM; do
    rm -f "$work/marker"
    COPY_PAUSE_AT=$at COPY_MARKER=$work/marker "$bin" copy --from mendix/demo-app --to mendix/demo-copy --stop-app \
      --hooks "$work/pause.lua" >"$work/out" 2>"$work/err" & pid=$!
    wait_for '[ -e "$work/marker" ]' 60 || bad "the copy reached $at"
    kill -$sig $pid; wait $pid; code=$?
    want=$([ $sig = INT ] && echo 130 || echo 143)
    check "SIG$sig at $at: exit $want ($code)" '[ "$code" = "$want" ]'
    check "... the target's database as it was" '[ "$(fingerprint)" = "$before" ]'
    check "... the app runs again" '[ "$(replicas)" = 1 ]'
    check "... no unfinished upload" '[ "$(uploads)" = 0 ]'
    expect_err "... one error line" "^error: interrupted by SIG$sig"
  done
done

# --- one point in time: a file added to the source after the listing is not in the copied database --------
late=00000000-0000-4000-8000-00000000c0de
cat >"$work/late.lua" <<'EOF'
-- after the files were listed, before the database is read: a new file in the source
return { before_restore = function() assert(os.execute(os.getenv("ADD_ROW"))) end }
EOF
ADD_ROW="PGOPTIONS='-c client_min_messages=warning' PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 \
  -p $MXPC_PG_TLS_PORT -U $MXPC_PG_SUPERUSER -d demo_app -c \"create temp table x as select * from \\\"system\\\$filedocument\\\"
  order by id limit 1; update x set id = id + 987654321, fileid = fileid + 987654321, __uuid__ = '$late'; insert into \\\"system\\\$filedocument\\\"
  select * from x\"" run "copy while a file is added to the source" 0 copy --from mendix/demo-app --to mendix/demo-copy \
  --stop-app --hooks "$work/late.lua"
check "... (it was added)" '[ "$(sql_app "select count(*) from \"system\$filedocument\" where __uuid__ = '"'$late'"'")" = 1 ]'
check "... the copied database lists the files copied, not the new one" \
  '[ "$(sql_copy "select count(*) from \"system\$filedocument\" where __uuid__ = '"'$late'"'")" = 0 ]'
grep -q "database snapshot exported" "$work/err" && ok "... from the snapshot it exported" || bad "... snapshot"

# --- IRSA on either side ----------------------------------------------------------------------------------
reseed >/dev/null
cp "$MXPC_IRSA_TOKEN_FILE" "$work/token"
irsa() { env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE AWS_ROLE_ARN="$MXPC_IRSA_ROLE_ARN" \
  AWS_WEB_IDENTITY_TOKEN_FILE="$work/token" AWS_REGION=us-east-1 AWS_ENDPOINT_URL_STS="$MXPC_STS_ENDPOINT" \
  HOME="$work" "$bin" "$@" >"$work/out" 2>"$work/err"; }
irsa copy --from mendix/demo-irsa --to mendix/demo-copy --stop-app; code=$?
check "copy from demo-irsa (web identity, RDS IAM) into demo-copy (static keys)" '[ $code = 0 ]'
if prove demo-irsa demo-copy; then ok "... proved"; else bad "proof irsa -> copy"; cat "$work/proof"; fi
irsa copy --from mendix/demo-app --to mendix/demo-irsa; code=$?
check "copy from demo-app (static keys) into demo-irsa (web identity, RDS IAM)" '[ $code = 0 ]'
if prove demo-app demo-irsa; then ok "... proved"; else bad "proof app -> irsa"; cat "$work/proof"; fi

# --- signals while the files are copied ------------------------------------------------------------------------
# Both environments reach S3 through bench/latency_proxy.py (150 ms each way), so the
# files take seconds to copy and a signal lands while requests are in flight. The last
# file the copy takes (the highest UUID) becomes 24 MiB: copied in parts, server-side
# (UploadPartCopy; the hooks file lowers file_copy's 5 GiB threshold for the test, as
# tests/lua/test_file_copy.lua does) and streamed (a multipart upload of 16 MiB parts).
# "objects": the signal comes once the JSON progress shows files done (CopyObject, or
# GET -> PUT, of the small files in flight, two at a time); "parts": once the target's
# bucket holds an unfinished multipart upload (only the large file is selected).
python3 "$src/bench/latency_proxy.py" --target "${MXPC_S3_ENDPOINT#http://}" --delay 150 >"$work/proxy.out" &
proxy_pid=$!
wait_for 'grep -q listening "$work/proxy.out"' 10
proxy=$(sed -n 's/^listening on //p' "$work/proxy.out")
sed "s|^export MXPC_S3_ENDPOINT=.*|export MXPC_S3_ENDPOINT=http://$proxy|" "$MXPC_STACK_ENV" >"$work/slow.env"
"$src/tests/stack/seed" --env-file "$work/slow.env" --out "$work/slow.json" >"$work/seed.log" 2>&1 \
  || bad "seeding through the latency proxy: $(tail -3 "$work/seed.log")"
big=$(sql_app 'select __uuid__ from "system$filedocument" where hascontents and __uuid__ is not null order by 1 desc limit 1')
sql_app "update \"system\$filedocument\" set size = 25165824 where __uuid__ = '$big'" >/dev/null
cat >"$work/big.lua" <<'LUA'
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
assert(c:put("mendix-shared", "demo-app/" .. arg[1], ("0123456789abcdef"):rep(1572864)))
LUA
"$bin" run "$work/big.lua" "$big" || bad "the large source object"
cat >"$work/parts.lua" <<'LUA'
-- (test only) objects above 6 MiB are copied server-side in parts of 5 MiB
local file_copy = require "mxpc.file_copy"
file_copy.PART_THRESHOLD, file_copy.PART_SIZE = 6 * 1048576, 5 * 1048576
return {}
LUA
cat >"$work/source.lua" <<'LUA'
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
for _, o in ipairs(assert(c:list("mendix-shared", "demo-app/"))) do print(o.key, o.size, o.etag) end
LUA
# the source: every table of demo_app with the md5 of its rows, and its objects with their ETags
source_state() {
  local t
  for t in $(sql_app "select tablename from pg_tables where schemaname = 'public' order by 1"); do
    printf '%s %s\n' "$t" "$(sql_app "select count(*) || ':' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from public.\"$t\" x")"
  done
  "$bin" run "$work/source.lua"
}
customers() { sql_copy 'select count(*) || md5(string_agg(name || email, $$,$$ order by id)) from "myfirstmodule$customer"'; }
# the highest "done" of the JSON progress events of the copy phase so far
copied_so_far() { jq -r 'select(.event == "progress" and .phase == "copy") | .done' "$work/err" 2>/dev/null | sort -n | tail -1; }
before=$(fingerprint) source_before=$(source_state) customers_before=$(customers)
check "(the large file is in the source: $big)" '[ "$("$bin" run "$work/head.lua" mendix-shared "demo-app/$big")" = present ]'
# each mode gets both signals, and a signal both while small files and while parts are copied
for run in server:objects:INT server:parts:TERM stream:objects:TERM stream:parts:INT; do
  IFS=: read -r mode when sig <<<"$run"
  rm -f "$work/done"
  ( : >"$work/seen"; while [ ! -e "$work/done" ]; do customers >>"$work/seen" 2>/dev/null; done ) & watcher=$!
  sel=(); [ "$when" = parts ] && sel=(--files-larger-than 8M)
  MXPC_PROGRESS_INTERVAL=0.1 "$bin" -vv --log-format json copy --from mendix/demo-app --to mendix/demo-copy \
    --stop-app --copy-mode "$mode" --concurrency 2 --hooks "$work/parts.lua" "${sel[@]}" >"$work/out" 2>"$work/err" &
  pid=$!
  if [ "$when" = objects ]; then
    wait_for '[ "$(copied_so_far)" -ge 1 ] 2>/dev/null' 60 || bad "$mode: no file was copied"
  else
    wait_for '[ "$(uploads)" -ge 1 ]' 60 || bad "$mode: no multipart upload began"
  fi
  kill -"$sig" "$pid"; wait "$pid"; code=$?
  touch "$work/done"; wait "$watcher"
  want=$([ "$sig" = INT ] && echo 130 || echo 143)
  check "SIG$sig while the files are copied ($mode, $when): exit $want ($code)" '[ "$code" = "$want" ]'
  if [ "$when" = objects ]; then
    done_files=$(copied_so_far)
    check "... mid-copy: $done_files of 20 files done" '[ "$done_files" -ge 1 ] && [ "$done_files" -lt 19 ]'
  else
    check "... mid-copy: the upload of the large file in parts was open, and aborted" \
      'grep -qE "aborted the (multipart upload|upload in parts) of s3://demo-copy-files/$big" "$work/err"'
  fi
  errors=$(jq -r 'select(.level == "error") | .msg' "$work/err")
  check "... one error line: $errors" '[ "$(wc -l <<<"$errors")" = 1 ] && [ "$errors" = "interrupted by SIG$sig" ]'
  check "... the target's database as it was" '[ "$(fingerprint)" = "$before" ]'
  check "... and never committed otherwise ($(wc -l <"$work/seen") reads from another connection)" \
    '[ -s "$work/seen" ] && [ "$(sort -u "$work/seen")" = "$customers_before" ]'
  check "... no unfinished upload" '[ "$(uploads)" = 0 ]'
  check "... the app runs again" '[ "$(replicas)" = 1 ]'
  check "... the source untouched" '[ "$(source_state)" = "$source_before" ]'
done

finish
