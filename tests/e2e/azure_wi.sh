#!/usr/bin/env bash
# End to end with Azure Workload Identity on the local stack: demo-azure-wi has no
# account key and no database password. The program exchanges the ServiceAccount's
# federated token (AZURE_FEDERATED_TOKEN_FILE) at the Entra ID stand-in for bearer
# tokens for Blob Storage (Azurite) and for the database (the Entra PostgreSQL front),
# a valid token for every connection and child, in PGPASSWORD only. Covers: backup
# and restore --stop-app with the proof; tokens that expire mid-run are fetched again;
# no Workload Identity, an identity without a federated credential for the token, and
# an identity the database does not map fail with errors that say what to check.
# Needs MXPC_STACK_ENV; reseeds before and after.
. "$(dirname "$0")/lib.sh" "$@"
config=$MXPC_ENTRA_DIR/config.json
cp "$config" "$work/config.json.orig"
cleanup() { cp "$work/config.json.orig" "$config"; rm -rf "$work"; reseed >/dev/null; }
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
check "... the children got the token in PGPASSWORD (a JWT)" 'grep -q "^pg_dump PGPASSWORD: eyJ" "$work/children" && grep -q "^psql PGPASSWORD: eyJ" "$work/children"'
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
finish
