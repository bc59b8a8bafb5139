#!/usr/bin/env bash
# End to end on the local stack: a schedule's archives in a bucket (the stack's RGW).
# backup -f s3://BUCKET/PREFIX/ writes PREFIX/NS/ENV/<UTC time>.tar.gz and its index;
# list s3:// shows them newest first (text, --json) from the index objects; --max-age
# names the environments whose newest archive is too old; prune keeps what the policy
# keeps, never the objects it did not write, and --dry-run changes nothing; restore
# -f s3://.../NS/ENV/ --at TIME picks the archive and restores it (with the proof); a
# failed scheduled run leaves no object and no unfinished upload.
# Needs MXPC_STACK_ENV; reseeds the namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
export TMPDIR=$work/tmp
mkdir "$TMPDIR"
bucket=mxpc-scheduled-$$-$RANDOM
export AWS_ACCESS_KEY_ID=$MXPC_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MXPC_S3_SECRET_KEY AWS_REGION=$MXPC_S3_REGION
unset AWS_PROFILE AWS_SESSION_TOKEN
ep=(--archive-endpoint "$MXPC_S3_ENDPOINT")
# s3 ACTION ARGS...: the bucket as a plain S3 client sees it
s3() {
  "$bin" run /dev/stdin "$bucket" "$@" <<'LUA'
local s3 = require "mxpc.s3"
local store = require "mxpc.backup_store"
local bucket, action, a, b, c = ...
local cl = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT") })
if action == "create" then assert(cl:create_bucket(bucket))
elseif action == "keys" then -- keys under a prefix, one a line
  for _, o in ipairs(assert(cl:list(bucket, a or ""))) do print(o.key) end
elseif action == "uploads" then print(#assert(cl:list_multipart_uploads(bucket)))
elseif action == "copy" then -- copy KEY to PREFIX/NS/ENV/STAMP.tar.gz with an index ("ours"), without one
  -- ("bare"), or with an index of another object ("forged")
  local src, dst, how = a, b, c
  local data = assert(cl:get_string(bucket, src))
  local head = assert(cl:put(bucket, dst, data))
  if how ~= "bare" then
    local ns, env, stamp = dst:match("([^/]+)/([^/]+)/(%w+)%.tar%.gz$")
    assert(store.write_index(cl, bucket, dst, how == "forged" and { size = head.size, etag = "0123" } or head,
      { namespace = ns, environment = env, time = store.parse_stamp(stamp), files = 20, model_version = "1.0.0.42",
        mendix_cloud = true }))
  end
elseif action == "drop" then
  for _, u in ipairs(cl:list_multipart_uploads(bucket) or {}) do cl:abort_multipart(bucket, u.key, u.upload_id) end
  local keys = {}
  for _, o in ipairs(cl:list(bucket, "") or {}) do keys[#keys + 1] = o.key end
  if #keys > 0 then cl:delete_many(bucket, keys) end
  assert(cl:delete_bucket(bucket))
end
return 0
LUA
}
trap 's3 drop >/dev/null 2>&1; rm -rf "$work"; "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null' EXIT

reseed >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
s3 create || { echo "FAIL: creating bucket $bucket"; echo "0 passed, 1 failed"; exit 1; }

# --- a scheduled backup ----------------------------------------------------------------
run "backup -f s3://BUCKET/PREFIX/ (a schedule's place)" 0 backup -n mendix -e demo-app -f "s3://$bucket/nightly/" \
  "${ep[@]}" --log-format json
new=$(s3 keys nightly/ | grep '\.tar\.gz$')
check "... writes nightly/mendix/demo-app/<UTC time>.tar.gz" \
  '[[ $new =~ ^nightly/mendix/demo-app/[0-9]{8}T[0-9]{6}Z\.tar\.gz$ ]]'
check "... and its index beside it" 's3 keys nightly/ | grep -qx "${new%.tar.gz}.json"'
expect_err "... logging JSON events: the archive indexed" '"event":"indexed".*"files":20'
run "--keep-* without a schedule's place is refused" 2 backup -n mendix -e demo-app -f "s3://$bucket/x.tar.gz" \
  --keep-last 2 "${ep[@]}"

# eleven nights of demo-app before it, two of another environment long ago, and two objects
# that are not ours: one without an index, one whose index describes another object
for d in 01 02 03 04 05 06 07 08 09 10 11; do s3 copy "$new" "nightly/mendix/demo-app/202601${d}T020000Z.tar.gz"; done
s3 copy "$new" nightly/mendix/old-env/20250101T020000Z.tar.gz
s3 copy "$new" nightly/mendix/old-env/20250102T020000Z.tar.gz
s3 copy "$new" nightly/mendix/demo-app/20251201T020000Z.tar.gz bare
s3 copy "$new" nightly/mendix/demo-app/20251202T020000Z.tar.gz forged

# --- list -----------------------------------------------------------------------------------
run "list s3://BUCKET/PREFIX" 0 list "s3://$bucket/nightly" "${ep[@]}"
check "... one line per archive and a heading" '[ $(wc -l < "$work/out") = 17 ]'
check "... newest first, with environment, size, files, database, model, Mendix Cloud" \
  'sed -n 2p "$work/out" | grep -qE "^[0-9T:-]+Z +mendix/demo-app +[0-9.]+ MiB +20 +[0-9.]+ MiB +1\.0\.0\.42 +yes$" &&
   sed -n 3p "$work/out" | grep -q "^2026-01-11T02:00:00Z"'
check "... an archive without our index shows dashes" 'grep -E "^2025-12-01T02:00:00Z +mendix/demo-app .* - +- +- +-$" "$work/out" >/dev/null'
run "list s3://BUCKET/PREFIX/NS/ENV --json" 0 list "s3://$bucket/nightly/mendix/old-env" --json "${ep[@]}"
check "... the environment's archives only, as JSON" \
  'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); a=d[\"archives\"]; assert [x[\"time\"] for x in a]==[\"2025-01-02T02:00:00Z\",\"2025-01-01T02:00:00Z\"], a; assert a[0][\"files\"]==20 and a[0][\"url\"].startswith(\"s3://\") and a[0][\"mendix_cloud\"] is True" "$work/out"'
run "list --max-age 26h names the stale environment" 1 list "s3://$bucket/nightly" --max-age 26h "${ep[@]}"
expect_err "... old-env, with its newest archive's time" '^stale: mendix/old-env: the newest archive is from 2025-01-02T02:00:00Z'
check "... and only it" '[ $(grep -c "^stale:" "$work/err") = 1 ]'
run "list --max-age of a fresh environment exits 0" 0 list "s3://$bucket/nightly/mendix/demo-app" --max-age 26h "${ep[@]}"

# --- restore from the schedule ---------------------------------------------------------------
run "restore -f s3://.../NS/ENV/ --at TIME" 0 restore -n mendix -e demo-copy -f "s3://$bucket/nightly/mendix/demo-app/" \
  --at 2026-01-05T12:00:00Z --stop-app "${ep[@]}"
expect_err "... says which archive it picked: the newest at or before TIME" \
  "restoring s3://$bucket/nightly/mendix/demo-app/20260105T020000Z.tar.gz \(of 2026-01-05T02:00:00Z\)"
if proof; then ok "demo-copy holds demo-app's tables, sequences and files"; else bad "proof"; cat "$work/proof"; fi
run "restore --at before the first archive" 1 restore -n mendix -e demo-copy \
  -f "s3://$bucket/nightly/mendix/old-env/" --at 2024-06-01 "${ep[@]}"
expect_err "... says so" "has no archive at or before 2024-06-01T00:00:00Z \(the oldest is from 2025-01-01T02:00:00Z\)"
run "--at without a schedule's place is refused" 2 restore -n mendix -e demo-copy -f "s3://$bucket/$new" --at 2026-01-01 \
  "${ep[@]}"

# --- prune ----------------------------------------------------------------------------------
before=$(s3 keys nightly/ | sort)
run "prune --dry-run" 0 prune "s3://$bucket/nightly" --keep-last 3 --dry-run "${ep[@]}"
check "... changes nothing" '[ "$(s3 keys nightly/ | sort)" = "$before" ]'
check "... says what it would delete" '[ $(grep -c "^would delete" "$work/out") = 9 ]'
run "prune --keep-last 3" 0 prune "s3://$bucket/nightly" --keep-last 3 "${ep[@]}"
after=$(s3 keys nightly/ | sort)
check "... keeps the 3 newest of demo-app and both of old-env, with their indexes" \
  '[ $(echo "$after" | grep -c "\.json$") = 6 ] && echo "$after" | grep -q 20260111T020000Z.tar.gz &&
   echo "$after" | grep -q 20260110T020000Z.json && ! echo "$after" | grep -q 20260109T020000Z'
check "... never the objects it did not write" \
  'echo "$after" | grep -q 20251201T020000Z.tar.gz && echo "$after" | grep -q 20251202T020000Z.tar.gz'
check "... and says why it skipped them" 'grep -q "^skip .*20251202T020000Z.tar.gz: its index describes another object" "$work/out"'
run "prune --keep-daily 1: still the newest of each environment" 0 prune "s3://$bucket/nightly" \
  --keep-daily 1 "${ep[@]}"
check "... old-env's newest stays" 's3 keys nightly/mendix/old-env/ | grep -q 20250102T020000Z.tar.gz'
run "prune without a policy is refused" 2 prune "s3://$bucket/nightly" "${ep[@]}"

# --- a failed scheduled run ---------------------------------------------------------------------
s3 copy "$new" failing/mendix/demo-app/20250601T020000Z.tar.gz
mkdir "$work/bin"
printf '#!/bin/sh\necho "pg_dump: error: connection lost" >&2\nexit 1\n' > "$work/bin/pg_dump"
chmod +x "$work/bin/pg_dump"
ln -s "$MXPC_PG_BINDIR/pg_restore" "$MXPC_PG_BINDIR/psql" "$work/bin/"
MXPC_PG_BINDIR=$work/bin run "a scheduled run whose pg_dump fails" 1 backup -n mendix -e demo-app \
  -f "s3://$bucket/failing/" --keep-last 1 "${ep[@]}"
check "... leaves no object" '[ "$(s3 keys failing/)" = "$(printf "%s\n%s" failing/mendix/demo-app/20250601T020000Z.json failing/mendix/demo-app/20250601T020000Z.tar.gz)" ]'
check "... and no unfinished upload" '[ "$(s3 uploads)" = 0 ]'
run "list --max-age then names the environment" 1 list "s3://$bucket/failing" --max-age 26h "${ep[@]}"
expect_err "... with its newest archive, from before the failed run" '^stale: mendix/demo-app: the newest archive is from 2025-06-01T02:00:00Z'

finish
