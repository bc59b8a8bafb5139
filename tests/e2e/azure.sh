#!/usr/bin/env bash
# End to end with Azure Blob Storage on the local stack (Azurite over https, the
# account key of a key-per-value Secret): demo-azure is backed up, its files and
# database are then changed (a blob deleted, one replaced, one added, rows
# deleted), and a restore --stop-app brings it back, proved by proof.lua (every
# table, every blob byte for byte); --delete-extra-files removes the added blob,
# --dry-run changes nothing, and a missing container fails clearly with nothing
# written. A SAS token in place of the key shows the refusals (a read-only one
# for a restore, one without list for --delete-extra-files) and their wording.
# Archives: -f azblob://ACCOUNT/CONTAINER/BLOB, and a schedule's place there
# (backup -f azblob://.../PREFIX/, list, prune, restore --at).
# Needs MXPC_STACK_ENV; reseeds before and after.
. "$(dirname "$0")/lib.sh" "$@"
trap 'rm -rf "$work"; reseed >/dev/null' EXIT
export SSL_CERT_FILE=$MXPC_AZURE_CA_BUNDLE
container=demo-azure-files

blobs() {   # the container's blobs: name size, sorted
  "$bin" run /dev/stdin "$container" <<'LUA'
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
for _, o in ipairs(assert(c:list(arg[1], ""))) do print(o.key, o.size) end
LUA
}
blob() {   # blob put|delete NAME [DATA]
  "$bin" run /dev/stdin "$container" "$@" <<'LUA'
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
if arg[2] == "put" then assert(c:put(arg[1], arg[3], arg[4])) else assert(c:delete(arg[1], arg[3])) end
LUA
}
sql() { PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_TLS_PORT" \
  -U "$MXPC_PG_SUPERUSER" -d demo_azure -c "$1"; }
proof_azure() { "$bin" run "$src/tests/e2e/proof.lua" "$seed_json" demo-azure demo-azure >"$work/proof" 2>&1 || { tail -5 "$work/proof"; false; }; }

reseed >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
check "the seeded demo-azure passes the proof" proof_azure
run "backup demo-azure" 0 backup -n mendix -e demo-azure -f "$work/azure.tar.gz"
nfiles=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["azure_environments"]["demo-azure"]["files"]))' "$seed_json")
check "the archive holds the $nfiles files" '[ "$(tar -tzf "$work/azure.tar.gz" | grep -c "^tree/")" -ge "$nfiles" ]'

# change the environment: a blob gone, one replaced, one added, rows gone
first=$(blobs | head -1 | cut -f1)
second=$(blobs | sed -n 2p | cut -f1)
blob delete "$first"
blob put "$second" "not the seeded bytes"
blob put "0e0e0e0e-0000-4000-8000-00000000beef" "extra"
sql 'delete from "myfirstmodule$order"' >/dev/null
check "... rows deleted" '[ "$(sql '"'"'select count(*) from "myfirstmodule$order"'"'"')" = 0 ]'
check "the changed demo-azure fails the proof" '! proof_azure'

blobs >"$work/before.dry"
run "restore --dry-run" 0 restore -n mendix -e demo-azure -f "$work/azure.tar.gz" --stop-app --delete-extra-files --dry-run
blobs >"$work/after.dry"
check "... changes no blob" 'cmp -s "$work/before.dry" "$work/after.dry"'
check "... says it would delete the blobs the archive lacks" \
  'grep -qE "^  [0-9]+ files in storage are not in the archive: --delete-extra-files would delete them" "$work/out"'

run "restore --stop-app --delete-extra-files into demo-azure" 0 restore -n mendix -e demo-azure -f "$work/azure.tar.gz" \
  --stop-app --delete-extra-files
check "... proved: every table, every blob byte for byte" proof_azure
check "... the extra blob is deleted" '! blobs | grep -q "^0e0e0e0e-0000-4000-8000-00000000beef"'

# ---- a refused role: Azurite checks no RBAC roles, but it refuses what a SAS token
# does not permit. The file Secret gets a SAS token instead of the account key.
use_sas() {   # use_sas PERMISSIONS (e.g. rl): a container SAS made by the Azure SDK
  local sas
  sas=$(/usr/bin/python3 -c '
import datetime, os, sys
from azure.storage.blob import generate_container_sas
print(generate_container_sas(os.environ["MXPC_AZURE_ACCOUNT_NAME"], sys.argv[1],
    account_key=os.environ["MXPC_AZURE_ACCOUNT_KEY"], permission=sys.argv[2],
    expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1)))' "$container" "$1") || return 1
  kubectl -n mendix patch secret demo-azure-file-credentials --type merge -p "{\"data\":{\"storage-azure-account-key\":null,
    \"storage-azure-shared-access-signature\":\"$(printf %s "$sas" | base64 -w0)\"}}" >/dev/null
}
check "the file Secret holds a read and list SAS token instead of the key" 'use_sas rl'
run "backup with a read-only SAS token (a backup only reads)" 0 backup -n mendix -e demo-azure -f "$work/sas.tar.gz"
check "... the archive holds the $nfiles files" '[ "$(tar -tzf "$work/sas.tar.gz" | grep -c "^tree/")" -ge "$nfiles" ]'
blob delete "$first"
sql 'delete from "myfirstmodule$order"' >/dev/null
blobs >"$work/before.sas"
run "restore with a read-only SAS token is refused" 1 restore -n mendix -e demo-azure -f "$work/azure.tar.gz" --stop-app
expect_err "... naming the operation, the identity in use and what it needs" \
  "access denied: Put Blob azblob://$container/[^ ]+ \(AuthorizationPermissionMismatch\).*the SAS token in use does not allow it: it needs the permission w \(write\) \(an identity would need the role Storage Blob Data Contributor\)"
expect_err "... and which SAS token would do" "rwdlc"
blobs >"$work/after.sas"
check "... no blob changed" 'cmp -s "$work/before.sas" "$work/after.sas"'
check "... the database untouched" '[ "$(sql '"'"'select count(*) from "myfirstmodule$order"'"'"')" = 0 ]'
check "the file Secret holds a SAS token without list (rwd)" 'use_sas rwd'
run "restore --delete-extra-files without list permission is refused" 1 restore -n mendix -e demo-azure \
  -f "$work/azure.tar.gz" --stop-app --delete-extra-files
expect_err "... naming the listing and what it needs" \
  "listing azblob://$container/? was refused \(AuthorizationPermissionMismatch\): the SAS token in use does not allow it: it needs the permission l \(list\) \(an identity would need the role Storage Blob Data Reader\)"
blobs >"$work/after.sas"
check "... before any blob changed" 'cmp -s "$work/before.sas" "$work/after.sas"'
check "... and the database untouched" '[ "$(sql '"'"'select count(*) from "myfirstmodule$order"'"'"')" = 0 ]'
check "the file Secret holds a SAS token that allows a restore (rwdl)" 'use_sas rwdl'
run "restore --stop-app --delete-extra-files with it" 0 restore -n mendix -e demo-azure -f "$work/azure.tar.gz" \
  --stop-app --delete-extra-files
check "... proved" proof_azure
reseed >"$work/seed.log" 2>&1 || bad "reseeding"

# ---- archives in Azure Blob Storage: -f azblob://ACCOUNT/CONTAINER/BLOB --------------
"$bin" run /dev/stdin <<'LUA' >/dev/null 2>&1
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
c:create_bucket("archives")
for _, p in ipairs { "e2e/", "nightly/" } do
  for _, o in ipairs(assert(c:list("archives", p))) do assert(c:delete("archives", o.key)) end
end
LUA
arch=azblob://$MXPC_AZURE_ACCOUNT_NAME/archives/e2e/demo-azure.tar.gz
ae=(--archive-endpoint "$MXPC_AZURE_BLOB_ENDPOINT")
AZURE_STORAGE_KEY= run "-f azblob:// without credentials" 1 backup -n mendix -e demo-azure -f "$arch" "${ae[@]}"
expect_err "... says which to give" "no credentials for the storage account $MXPC_AZURE_ACCOUNT_NAME.*|AZURE_STORAGE_KEY"
export AZURE_STORAGE_KEY=$MXPC_AZURE_ACCOUNT_KEY
run "backup -f azblob://ACCOUNT/CONTAINER/BLOB" 0 backup -n mendix -e demo-azure -f "$arch" "${ae[@]}"
run "... refuses to overwrite it" 1 backup -n mendix -e demo-azure -f "$arch" "${ae[@]}"
expect_err "... saying so" "$arch already exists"
sql 'delete from "myfirstmodule$order"' >/dev/null
run "restore --stop-app from azblob://" 0 restore -n mendix -e demo-azure -f "$arch" "${ae[@]}" --stop-app
check "... proved" proof_azure
run "backup --database-only -f azblob://" 0 backup -n mendix -e demo-azure -f "${arch%.tar.gz}.backup" --database-only "${ae[@]}"
run "... and restore it" 0 restore -n mendix -e demo-azure -f "${arch%.tar.gz}.backup" "${ae[@]}" --stop-app
# ---- a schedule's place in Azure: backup -f azblob://ACCOUNT/CONTAINER/PREFIX/, list, prune, restore --at
place=azblob://$MXPC_AZURE_ACCOUNT_NAME/archives/nightly
sched() {   # sched keys | copy SRC DST: the schedule's blobs, or a copy of an archive with its index
  "$bin" run /dev/stdin "$@" <<'LUA'
local store = require "mxpc.backup_store"
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
if arg[1] == "keys" then
  for _, o in ipairs(assert(c:list("archives", "nightly/"))) do print(o.key) end
else
  local head = assert(c:put("archives", arg[3], assert(c:get_string("archives", arg[2]))))
  local ns, env, stamp = arg[3]:match("([^/]+)/([^/]+)/(%w+)%.tar%.gz$")
  assert(store.write_index(c, "archives", arg[3], head, { namespace = ns, environment = env,
    time = store.parse_stamp(stamp), files = 3, model_version = "1.0.0.44", mendix_cloud = true }))
end
LUA
}
run "backup -f azblob://ACCOUNT/CONTAINER/PREFIX/ (a schedule's place)" 0 backup -n mendix -e demo-azure \
  -f "$place/" "${ae[@]}" --log-format json
new=$(sched keys | grep '\.tar\.gz$')
check "... writes nightly/mendix/demo-azure/<UTC time>.tar.gz" '[[ $new =~ ^nightly/mendix/demo-azure/[0-9]{8}T[0-9]{6}Z\.tar\.gz$ ]]'
check "... and its index beside it" 'sched keys >"$work/keys" && grep -qx "${new%.tar.gz}.json" "$work/keys"'
for d in 01 02 03; do sched copy "$new" "nightly/mendix/demo-azure/202601${d}T020000Z.tar.gz"; done
run "list azblob://ACCOUNT/CONTAINER/PREFIX" 0 list "$place" "${ae[@]}"
check "... one line per archive and a heading, newest first" \
  '[ $(wc -l < "$work/out") = 5 ] && sed -n 3p "$work/out" | grep -qE "^2026-01-03T02:00:00Z +mendix/demo-azure +"'
run "list --json" 0 list "$place/mendix/demo-azure" --json "${ae[@]}"
check "... names each archive by its azblob:// URL" \
  'python3 -c "import json,sys; a=json.load(open(sys.argv[1]))[\"archives\"]; assert len(a)==4 and a[1][\"url\"]==\"$place/mendix/demo-azure/20260103T020000Z.tar.gz\", a" "$work/out"'
run "list --max-age 26h of a fresh environment" 0 list "$place" --max-age 26h "${ae[@]}"
sql 'delete from "myfirstmodule$order"' >/dev/null
run "restore -f azblob://.../NS/ENV/ --at TIME" 0 restore -n mendix -e demo-azure -f "$place/mendix/demo-azure/" \
  --at 2026-01-02T12:00:00Z --stop-app "${ae[@]}"
expect_err "... picks the newest archive at or before TIME" \
  "restoring $place/mendix/demo-azure/20260102T020000Z.tar.gz \(of 2026-01-02T02:00:00Z\)"
check "... proved" proof_azure
before=$(sched keys)
run "prune --keep-last 2 --dry-run" 0 prune "$place" --keep-last 2 --dry-run "${ae[@]}"
check "... deletes nothing" '[ "$(sched keys)" = "$before" ] && [ $(grep -c "^would delete" "$work/out") = 2 ]'
run "prune --keep-last 2" 0 prune "$place" --keep-last 2 "${ae[@]}"
check "... keeps the two newest with their indexes" \
  '[ "$(sched keys | sort)" = "$(printf "%s\n" "$new" "${new%.tar.gz}.json" nightly/mendix/demo-azure/20260103T020000Z.json nightly/mendix/demo-azure/20260103T020000Z.tar.gz | sort)" ]'
run "a scheduled backup with --keep-last 1 prunes after it" 0 backup -n mendix -e demo-azure -f "$place/" --keep-last 1 \
  "${ae[@]}"
check "... one archive and its index are left" 'sched keys >"$work/keys" && [ $(wc -l <"$work/keys") = 2 ] && ! grep -q 20260103T020000Z "$work/keys"'

run "a malformed azblob:// location" 2 backup -n mendix -e demo-azure -f "azblob://$MXPC_AZURE_ACCOUNT_NAME/archives"
run "backup into a missing archive container" 1 backup -n mendix -e demo-azure -f "azblob://$MXPC_AZURE_ACCOUNT_NAME/no-such-container/x.tar.gz" "${ae[@]}"
expect_err "... names it" "no such container: no-such-container"
unset AZURE_STORAGE_KEY

# ---- a blob that is gone ---------------------------------------------------------------
gone=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["azure_environments"]["demo-azure"]["files"][0]["uuid"])' "$seed_json")
blob delete "$gone"
run "backup with a blob gone" 0 backup -n mendix -e demo-azure -f "$work/gone.tar.gz"
expect_err "... reports it, skipped" "file not found in storage, skipped.*$gone|$gone.*not found"
run "backup --strict with a blob gone" 1 backup -n mendix -e demo-azure -f "$work/strict.tar.gz" --strict
expect_err "... fails naming it" "file $gone is missing from storage"
check "... writing no archive" '[ ! -e "$work/strict.tar.gz" ]'

# a restore that cannot reach its container writes nothing
sql 'delete from "myfirstmodule$order" where id in (select id from "myfirstmodule$order" limit 1)'
sql 'select count(*) from "myfirstmodule$order"' >"$work/rows.before"
"$bin" run /dev/stdin <<'LUA' >/dev/null 2>&1
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
for _, o in ipairs(assert(c:list("demo-azure-files", ""))) do assert(c:delete("demo-azure-files", o.key)) end
assert(c:delete_bucket("demo-azure-files"))
LUA
run "restore into a missing container fails" 1 restore -n mendix -e demo-azure -f "$work/azure.tar.gz" --stop-app
expect_err "... naming the container" "no such container: demo-azure-files in the storage account $MXPC_AZURE_ACCOUNT_NAME"
sql 'select count(*) from "myfirstmodule$order"' >"$work/rows.after"
check "... before the database was touched" 'cmp -s "$work/rows.before" "$work/rows.after"'
run "backup from a missing container fails" 1 backup -n mendix -e demo-azure -f "$work/none.tar.gz"
check "... writing no archive" '[ ! -e "$work/none.tar.gz" ]'
finish
