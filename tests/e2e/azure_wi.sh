#!/usr/bin/env bash
# End to end with Azure Workload Identity on the local stack: demo-azure-wi has no
# account key and no database password. The program exchanges the ServiceAccount's
# federated token (AZURE_FEDERATED_TOKEN_FILE) at the Entra ID stand-in for bearer
# tokens for Blob Storage (Azurite) and for the database (the Entra PostgreSQL front),
# a valid token for every connection and child, in PGPASSWORD only. Covers: backup
# and restore --stop-app with the proof; tokens that expire mid-run are fetched again;
# no Workload Identity, an identity without a federated credential for the token, and
# an identity the database does not map fail with errors that say what to check.
# A refused role (the stack's Azure RBAC front): demo-azure-reader's identity holds only
# Storage Blob Data Reader, so its backup works and a restore is refused before
# anything is written, naming the identity and the role; without a role even the
# backup is refused, naming Storage Blob Data Reader.
# Needs MXPC_STACK_ENV; reseeds before and after.
. "$(dirname "$0")/lib.sh" "$@"
config=$MXPC_ENTRA_DIR/config.json rbac=$MXPC_AZURE_RBAC_DIR/config.json
cp "$config" "$work/config.json.orig"
cp "$rbac" "$work/rbac.json.orig"
cleanup() { cp "$work/config.json.orig" "$config"; cp "$work/rbac.json.orig" "$rbac"; rm -rf "$work"; reseed >/dev/null; }
trap cleanup EXIT
export SSL_CERT_FILE=$MXPC_AZURE_CA_BUNDLE
unset AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AZURE_CLIENT_SECRET
export AZURE_AUTHORITY_HOST=$MXPC_AZURE_AUTHORITY_HOST AZURE_TENANT_ID=$MXPC_AZURE_TENANT_ID
export AZURE_CLIENT_ID=$MXPC_AZURE_WI_CLIENT_ID AZURE_FEDERATED_TOKEN_FILE=$work/token
token() { python3 "$src/tests/stack/k8s_emulator.py" token "$MXPC_STACK_DIR/k8s" --sa demo-azure-wi --aud api://AzureADTokenExchange "$@"; }
token >"$work/token"
issued() { grep -c " issued app=demo-azure-wi" "$MXPC_ENTRA_DIR/access.log"; }
sql() { PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" \
  -U "$MXPC_PG_SUPERUSER" -d demo_azure_wi -c "$1"; }
proof_wi() { "$bin" run "$src/tests/e2e/proof.lua" "$seed_json" demo-azure-wi demo-azure-wi >"$work/proof" 2>&1; }

reseed >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

# pg_dump, pg_restore and psql through a wrapper that records how they were started
mkdir "$work/bin"
for p in pg_dump pg_restore psql; do
  printf '#!/bin/sh\necho "%s argv: $*" >>"%s/children"\necho "%s PGPASSWORD: $(printf %%s "$PGPASSWORD" | cut -c1-3)" >>"%s/children"\nexec "%s/%s" "$@"\n' \
    "$p" "$work" "$p" "$work" "$MXPC_PG_BINDIR" "$p" >"$work/bin/$p"
  chmod +x "$work/bin/$p"
done
real_bindir=$MXPC_PG_BINDIR
before_run() { export MXPC_PG_BINDIR=$work/bin; }

run "backup demo-azure-wi with Workload Identity" 0 backup -n mendix -e demo-azure-wi -f "$work/wi.tar.gz"
expect_err "... the database logs in with Entra tokens" "database login with Entra ID tokens"
sql 'delete from "myfirstmodule$order"' >/dev/null
run "restore --stop-app into demo-azure-wi" 0 restore -n mendix -e demo-azure-wi -f "$work/wi.tar.gz" --stop-app
MXPC_PG_BINDIR=$real_bindir
check "... proved: every table, every blob byte for byte" proof_wi
check "... pg_dump got the token in PGPASSWORD (a JWT)" 'grep -q "^pg_dump PGPASSWORD: eyJ" "$work/children"'
check "... and never on a command line" '! grep "argv:" "$work/children" | grep -q "eyJ"'

# ---- tokens that expire mid-run ---------------------------------------------------
# Tokens last 6 s (renewed 1.5 s before their end); Azurite and the PostgreSQL front
# refuse expired ones. An 8-second lock on system$filedocument (which the listing of
# the files waits for) makes the files copied with tokens fetched after the first ones
# expired.
entra_lifetime 6
sql 'begin; lock table "system$filedocument" in access exclusive mode; select pg_sleep(8); commit' >/dev/null & locker=$!
sleep 0.5
n0=$(issued)
run "backup while the tokens expire mid-run" 0 -v backup -n mendix -e demo-azure-wi -f "$work/wi2.tar.gz"
wait "$locker"
expect_err "... the storage token was renewed" "Azure token for https://storage.azure.com/.default refreshed"
check "... with more tokens issued than one per scope" '[ $(( $(issued) - n0 )) -ge 3 ]'
"$bin" verify "$work/wi2.tar.gz" >/dev/null 2>&1 && ok "... the archive verifies" || bad "the archive of the renewed run verifies"
entra_lifetime 3600

# ---- failures ------------------------------------------------------------------------
AZURE_FEDERATED_TOKEN_FILE= run "without Workload Identity" 1 backup -n mendix -e demo-azure-wi -f "$work/no.tar.gz"
expect_err "... says what is missing" "AZURE_FEDERATED_TOKEN_FILE is not set"
check "... writing no archive" '[ ! -e "$work/no.tar.gz" ]'
AZURE_CLIENT_ID=$MXPC_AZURE_CLIENT_ID run "an identity without a federated credential for this ServiceAccount" 1 \
  backup -n mendix -e demo-azure-wi -f "$work/no.tar.gz"
expect_err "... Entra's refusal, with the token's subject" "Entra ID refused a token .* to the managed identity $MXPC_AZURE_CLIENT_ID .*AADSTS.*subject system:serviceaccount:mendix:demo-azure-wi"
AZURE_CLIENT_ID=$MXPC_AZURE_CLIENT_ID AZURE_FEDERATED_TOKEN_FILE=$MXPC_AZURE_FEDERATED_TOKEN_FILE \
  run "an identity the database does not map" 1 backup -n mendix -e demo-azure-wi -f "$work/no.tar.gz"
expect_err "... the database refusal names the identity" "refused the Entra ID token of the managed identity $MXPC_AZURE_CLIENT_ID for user demo_azure_wi"
expect_err "... and how to map the role" "pgaadauth"
check "... writing no archive" '[ ! -e "$work/no.tar.gz" ]'

# ---- a refused role -------------------------------------------------------------------
# demo-azure-reader's blob endpoint is the RBAC front, where its identity is a Reader.
reader=(AZURE_CLIENT_ID="$MXPC_AZURE_READER_CLIENT_ID" AZURE_FEDERATED_TOKEN_FILE="$work/reader-token")
python3 "$src/tests/stack/k8s_emulator.py" token "$MXPC_STACK_DIR/k8s" --sa demo-azure-reader \
  --aud api://AzureADTokenExchange >"$work/reader-token"
reader_blobs() {   # the container's blobs (name size), read with the account key at Azurite
  "$bin" run /dev/stdin <<'LUA'
local c = assert(require("mxpc.azure").client{endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"), ca_file = os.getenv("MXPC_AZURE_CA")})
if arg[1] then assert(c:delete("demo-azure-reader-files", arg[1])) end
for _, o in ipairs(assert(c:list("demo-azure-reader-files", ""))) do print(o.key, o.size) end
LUA
}
reader_orders() { PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" \
  -U "$MXPC_PG_SUPERUSER" -d demo_azure_reader -c "$1"; }
set_roles() {   # set_roles PRINCIPAL ROLE|-: the RBAC front's role assignment
  python3 - "$rbac" "$1" "$2" <<'PY'
import json, os, sys
path, oid, role = sys.argv[1:]
with open(path) as f:
    doc = json.load(f)
doc["roles"].pop(oid, None) if role == "-" else doc["roles"].__setitem__(oid, role)
with open(path + ".tmp", "w") as f:
    json.dump(doc, f)
os.replace(path + ".tmp", path)
PY
}
run_env "backup demo-azure-reader as its identity, a Storage Blob Data Reader" 0 "${reader[@]}" -- \
  backup -n mendix -e demo-azure-reader -f "$work/reader.tar.gz"
"$bin" verify "$work/reader.tar.gz" >/dev/null 2>&1 && ok "... the archive verifies" || bad "the reader's archive verifies"
first=$(reader_blobs | head -1 | cut -f1)
reader_blobs "$first" >"$work/reader.before"
reader_orders 'delete from "myfirstmodule$order"' >/dev/null
run_env "restore into it is refused: its identity may not write" 1 "${reader[@]}" -- \
  restore -n mendix -e demo-azure-reader -f "$work/reader.tar.gz" --stop-app
expect_err "... naming the operation, the identity in use and the role it needs" \
  "access denied: Put Blob azblob://demo-azure-reader-files/[^ ]+ \(AuthorizationPermissionMismatch\).*the identity in use \(managed identity $MXPC_AZURE_READER_CLIENT_ID\) needs the role Storage Blob Data Contributor on the storage account $MXPC_AZURE_ACCOUNT_NAME"
expect_err "... and how to assign it to that identity" \
  "az role assignment create --role \"Storage Blob Data Contributor\" --assignee $MXPC_AZURE_READER_CLIENT_ID"
check "... Azure's refusal came from the RBAC front" 'grep -q "refused PUT /$MXPC_AZURE_ACCOUNT_NAME/demo-azure-reader-files/.*role=Storage Blob Data Reader" "$MXPC_AZURE_RBAC_DIR/access.log"'
check "... no blob written" 'reader_blobs >"$work/reader.after" && cmp -s "$work/reader.before" "$work/reader.after"'
check "... the database unchanged" '[ "$(reader_orders '"'"'select count(*) from "myfirstmodule$order"'"'"')" = 0 ]'
check "... the app still running" '[ "$(kubectl -n mendix get mendixapp demo-azure-reader -o jsonpath={.spec.replicas})" = 1 ]'
set_roles "$MXPC_AZURE_READER_PRINCIPAL_ID" -
run_env "without a role on the account even its backup is refused" 1 "${reader[@]}" -- \
  backup -n mendix -e demo-azure-reader -f "$work/none.tar.gz"
expect_err "... naming the identity and Storage Blob Data Reader" \
  "\(AuthorizationPermissionMismatch\).*the identity in use \(managed identity $MXPC_AZURE_READER_CLIENT_ID\) needs the role Storage Blob Data Reader"
check "... writing no archive" '[ ! -e "$work/none.tar.gz" ]'
set_roles "$MXPC_AZURE_READER_PRINCIPAL_ID" "Storage Blob Data Reader"
finish
