#!/usr/bin/env bash
# End to end with AWS IRSA on the local stack: demo-irsa has no static credentials at
# all. The program gets temporary credentials from the STS stand-in with the jump pod's
# service account token (web identity), reaches the bucket with them, and logs in to the
# database through the RDS IAM stand-in with a fresh token per connection and per child.
# Covers: backup and restore with the proof; credentials that expire mid-run (and a
# token file the "kubelet" rotates) are fetched again; a wrong role, a wrong audience,
# an expired token, and a role without permissions fail with errors that say what to
# check; EKS Pod Identity (container credentials) and IMDSv2 work too. Needs MXPC_STACK_ENV; reseeds the namespace before and after.
set -uo pipefail
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "${MXPC_STACK_ENV:-}" ] || { echo "FAIL: MXPC_STACK_ENV is not set (start tests/stack/up)"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1090
. "$MXPC_STACK_ENV"
for v in MXPC_STS_ENDPOINT MXPC_STS_DIR MXPC_IRSA_ROLE_ARN MXPC_IRSA_TOKEN_FILE MXPC_RDS_PORT MXPC_RDS_DIR; do
  [ -n "${!v:-}" ] || { echo "FAIL: $v is not set: the stack has no IRSA stand-ins (restart it with tests/stack/up)"; echo "0 passed, 1 failed"; exit 1; }
done
work=$(mktemp -d)
roles=$MXPC_STS_DIR/roles.json
cp "$roles" "$work/roles.json.orig"
rotator=
cleanup() {
  [ -n "$rotator" ] && kill "$rotator" 2>/dev/null
  cp "$work/roles.json.orig" "$roles"
  rm -rf "$work"
  "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
}
trap cleanup EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$work/err" ] && sed 's/^/  /' "$work/err" | tail -8; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# Nothing static: no AWS keys in the environment, no shared credentials file, the
# restricted Kubernetes user; only what EKS puts into an IRSA pod.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE \
  AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_ENDPOINT_URL \
  AWS_EC2_METADATA_SERVICE_ENDPOINT AWS_EC2_METADATA_DISABLED
export HOME=$work KUBECONFIG=$MXPC_KUBECONFIG_RESTRICTED MXPC_SCRIPTS= MXPC_DATADIR=
export AWS_ROLE_ARN=$MXPC_IRSA_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE=$work/token AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_STS=$MXPC_STS_ENDPOINT PGSSLROOTCERT=$MXPC_PG_CA
cp "$MXPC_IRSA_TOKEN_FILE" "$work/token"
token() { python3 "$src/tests/stack/k8s_emulator.py" token "$MXPC_STACK_DIR/k8s" "$@"; }
set_role() {   # set_role ROLE-ARN KEY JSON-VALUE: change the STS stand-in's role table
  python3 - "$roles" "$1" "$2" "$3" <<'EOF'
import json, os, sys
path, role, key, value = sys.argv[1:]
with open(path) as f:
    doc = json.load(f)
doc["roles"][role][key] = json.loads(value)
with open(path + ".tmp", "w") as f:
    json.dump(doc, f)
os.replace(path + ".tmp", path)
EOF
}
run() {   # run NAME EXPECTED-EXIT ARGS...
  local name=$1 want=$2
  shift 2
  "$bin" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name (exit $got, expected $want)"; fi
}
expect_err() { if grep -qE -- "$2" "$work/err"; then ok "$1"; else bad "$1: stderr has no /$2/"; fi; }
sts_calls() { grep -c "AssumeRoleWithWebIdentity role=" "$MXPC_STS_DIR/access.log"; }
sql() { PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_irsa -c "$1"; }

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

# pg_dump, pg_restore and psql through a wrapper that records how they were started:
# the token must be in PGPASSWORD, never on the command line.
mkdir "$work/bin"
real_bindir=$MXPC_PG_BINDIR
for p in pg_dump pg_restore psql; do
  printf '#!/bin/sh\necho "%s argv: $*" >>"%s/children"\necho "%s PGPASSWORD: ${PGPASSWORD%%%%X-Amz-Signature=*}" >>"%s/children"\nexec "%s/%s" "$@"\n' \
    "$p" "$work" "$p" "$work" "$real_bindir" "$p" >"$work/bin/$p"
  chmod +x "$work/bin/$p"
done
export MXPC_PG_BINDIR=$work/bin

# ---- backup and restore through the chain -------------------------------------------
calls0=$(sts_calls)
run "backup demo-irsa with web identity and RDS IAM" 0 -v backup -n mendix -e demo-irsa -f "$work/irsa.tar.gz"
expect_err "... the credentials come from the web identity, named in -v" "AWS credentials obtained from web identity \(role $MXPC_IRSA_ROLE_ARN\)"
expect_err "... the database login uses IAM tokens over verified TLS" "database login with RDS IAM tokens .*sslmode=verify-full"
check "... one STS call for the whole run" '[ $(( $(sts_calls) - calls0 )) = 1 ]'
check "... the RDS stand-in accepted the role's tokens" 'grep -q "accepted user=demo_irsa role=$MXPC_IRSA_ROLE_ARN" "$MXPC_RDS_DIR/access.log"'
check "... pg_dump got its token in PGPASSWORD" 'grep -q "^pg_dump PGPASSWORD: 127.0.0.1:$MXPC_RDS_PORT/?Action=connect&DBUser=demo_irsa&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA" "$work/children"'
check "... and never on its command line" '! grep "argv:" "$work/children" | grep -q "X-Amz"'
grep -q "5 files" "$work/out" && ok "... with demo-irsa's 5 files" || bad "backup reports 5 files: $(cat "$work/out")"

# damage the environment, then restore it from the archive
sql 'delete from "myfirstmodule$order"' >/dev/null
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["irsa_environments"]["demo-irsa"]["files"][0]["key"])' "$MXPC_STACK_DIR/seed.json")
"$bin" run /dev/stdin >/dev/null 2>&1 <<EOF
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = "$MXPC_S3_ENDPOINT", access_key = "$MXPC_S3_ACCESS_KEY", secret_key = "$MXPC_S3_SECRET_KEY" })
assert(c:delete("demo-irsa-files", "$key"))
EOF
if "$bin" run "$src/tests/e2e/proof.lua" "$MXPC_STACK_DIR/seed.json" demo-irsa demo-irsa >"$work/proof" 2>&1; then
  bad "the proof sees the damage"; else ok "the proof sees the damage"; fi
accepted0=$(grep -c "accepted user=demo_irsa role=$MXPC_IRSA_ROLE_ARN" "$MXPC_RDS_DIR/access.log")
run "restore demo-irsa with web identity and RDS IAM" 0 -v restore -n mendix -e demo-irsa -f "$work/irsa.tar.gz"
check "... its connections (the restore's own among them) logged in with the role's tokens" \
  '[ "$(grep -c "accepted user=demo_irsa role=$MXPC_IRSA_ROLE_ARN" "$MXPC_RDS_DIR/access.log")" -ge $((accepted0 + 2)) ]'
if "$bin" run "$src/tests/e2e/proof.lua" "$MXPC_STACK_DIR/seed.json" demo-irsa demo-irsa >"$work/proof" 2>&1; then
  ok "proof: demo-irsa holds its seeded database and files again"
else bad "proof after the restore"; sed 's/^/  /' "$work/proof" | tail -5; fi

# ---- credentials that expire mid-run ----------------------------------------------------
# The role's sessions last 6 s (refreshed 1.5 s before their end); the STS stand-in
# removes expired keys from RGW, so a run that kept its first credentials would fail.
# The token file holds 20-second tokens that a "kubelet" rewrites every 2 s: each
# refresh must read the file again. The files are fetched while pg_dump runs, so an
# 8-second lock on system$filedocument (which the listing of the files waits for)
# makes them copied with credentials fetched after the first ones expired.
set_role "$MXPC_IRSA_ROLE_ARN" duration 6
rotate() { while :; do token --lifetime 20 >"$work/token.new" && mv "$work/token.new" "$work/token"; sleep 2; done; }
rotate & rotator=$!
sleep 0.5
sql 'begin; lock table "system$filedocument" in access exclusive mode; select pg_sleep(8); commit' >/dev/null & locker=$!
sleep 0.5
calls0=$(sts_calls)
run "backup while the credentials expire mid-run" 0 -v backup -n mendix -e demo-irsa -f "$work/irsa2.tar.gz"
wait "$locker"
expect_err "... the credentials were refreshed" "AWS credentials refreshed from web identity"
check "... with more STS calls than one" '[ $(( $(sts_calls) - calls0 )) -ge 2 ]'
iats=$(grep "AssumeRoleWithWebIdentity role=" "$MXPC_STS_DIR/access.log" | tail -n "$(( $(sts_calls) - calls0 ))" | sed 's/.*token_iat=\([0-9]*\).*/\1/' | sort -u | wc -l)
check "... each refresh read the rotated token file again ($iats different tokens)" '[ "$iats" -ge 2 ]'
first_key=$(grep "AssumeRoleWithWebIdentity role=" "$MXPC_STS_DIR/access.log" | tail -n "$(( $(sts_calls) - calls0 ))" | head -1 | sed 's/.* key=\([A-Z0-9]*\).*/\1/')
sleep 1
out=$("$bin" run /dev/stdin 2>&1 <<EOF
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = "$MXPC_S3_ENDPOINT", access_key = "$first_key", secret_key = "x" })
local _, err = c:get_string("demo-irsa-files", "$key")
print(err and err.code, err)
EOF
)
case $out in forbidden*"does not know the access key"*) ok "... and the first credentials no longer work in RGW" ;; *) bad "first credentials revoked: $out" ;; esac
"$bin" verify "$work/irsa2.tar.gz" >/dev/null 2>&1 && ok "... the archive verifies" || bad "the archive of the refreshed run verifies"
kill "$rotator" 2>/dev/null; wait "$rotator" 2>/dev/null; rotator=
cp "$work/roles.json.orig" "$roles"
cp "$MXPC_IRSA_TOKEN_FILE" "$work/token"

# ---- STS refuses while the credentials are in their refresh margin ----------------------
# (20-second sessions, renewed 5 s before their end): they serve until their end, with a
# warning, and then the refusal is the error
set_role "$MXPC_IRSA_ROLE_ARN" duration 20
"$bin" run "$src/tests/e2e/irsa_advisory.lua" "$roles" "$MXPC_IRSA_ROLE_ARN" demo-irsa-files "$key" \
  >"$work/out" 2>"$work/err"
check "credentials in their margin serve on when STS refuses" 'grep -q "^in the margin: served, same key: true" "$work/out"'
expect_err "... with a warning naming the source and STS's answer" \
  "warn: could not renew the AWS credentials from web identity \(role $MXPC_IRSA_ROLE_ARN\); using them for their last [0-9]+ s: STS refused AssumeRoleWithWebIdentity"
check "... and past their end the refusal is the error" \
  'grep -q "^after the end: credentials: .*cannot renew the AWS credentials: STS refused AssumeRoleWithWebIdentity for role $MXPC_IRSA_ROLE_ARN (AccessDenied" "$work/out"'
cp "$work/roles.json.orig" "$roles"

# ---- refusals that say what to check --------------------------------------------------------
AWS_ROLE_ARN=arn:aws:iam::000000000000:role/not-trusted run "a role that does not trust the token fails" 1 \
  backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... naming the role" "role arn:aws:iam::000000000000:role/not-trusted \(AccessDenied"
expect_err "... the token's issuer and audience" "issuer https://127.0.0.1:[0-9]+, audience sts.amazonaws.com, subject system:serviceaccount:mendix:mendix-backup-restore"
expect_err "... and the trust policy's conditions" "hint: check the role's trust policy.*127.0.0.1:[0-9]+:aud\": \"sts.amazonaws.com\""
check "... and writes no archive" '[ ! -e "$work/no.tar.gz" ]'

token --aud https://kubernetes.default.svc >"$work/token"
run "a token for another audience fails" 1 backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... naming the audience it has" "InvalidIdentityToken: Incorrect token audience.*audience https://kubernetes.default.svc"

token --lifetime -30 >"$work/token"
run "an expired token fails" 1 backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... saying so" "ExpiredTokenException.*the token expired [0-9]+ s ago"
cp "$MXPC_IRSA_TOKEN_FILE" "$work/token"

AWS_ROLE_ARN=$MXPC_IRSA_ROLE_NOTHING_ARN run "a role without rds-db:connect fails at the database" 1 \
  backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... naming the role and rds-db:connect" "hint: the role $MXPC_IRSA_ROLE_NOTHING_ARN needs rds-db:connect on arn:aws:rds-db:us-east-1:000000000000:dbuser:<DbiResourceId>/demo_irsa"
set_role "$MXPC_IRSA_ROLE_NOTHING_ARN" rds_users '["demo_irsa"]'
AWS_ROLE_ARN=$MXPC_IRSA_ROLE_NOTHING_ARN run "a role without the bucket's permissions fails at S3" 1 \
  backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... naming the role and the missing action" "access denied: (GET|HEAD) s3://demo-irsa-files/[0-9a-f-]+.*the role needs s3:GetObject there \(credentials from web identity \(role $MXPC_IRSA_ROLE_NOTHING_ARN\)\)"
check "... and writes no archive" '[ ! -e "$work/no.tar.gz" ]'
# ---- EKS Pod Identity: the container credentials endpoint ---------------------------------
unset AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
export AWS_CONTAINER_CREDENTIALS_FULL_URI=$MXPC_STS_ENDPOINT/v1/credentials
export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$work/pod-token
token --aud pods.eks.amazonaws.com >"$work/pod-token"
run "backup demo-irsa with EKS Pod Identity" 0 -v backup -n mendix -e demo-irsa -f "$work/pod.tar.gz"
expect_err "... the credentials come from the agent, named in -v" \
  "AWS credentials obtained from container credentials \(http://127.0.0.1:[0-9]+/v1/credentials\)"
token >"$work/pod-token"   # audience sts.amazonaws.com: the agent refuses it
run "a pod identity token for another audience fails" 1 backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... naming the agent and its answer" "container credentials from http://127.0.0.1:[0-9]+/v1/credentials: HTTP 400.*Incorrect token audience"
unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
export AWS_ROLE_ARN=$MXPC_IRSA_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE=$work/token

# ---- the EC2 instance metadata service (IMDSv2), last in the chain ---------------------------
unset AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
export AWS_EC2_METADATA_SERVICE_ENDPOINT=$MXPC_STS_ENDPOINT
run "backup demo-irsa with the instance profile (IMDSv2)" 0 -v backup -n mendix -e demo-irsa -f "$work/imds.tar.gz"
expect_err "... the credentials come from the instance metadata, named in -v" \
  "AWS credentials obtained from instance profile \(role mxpc-irsa, IMDSv2\)"
AWS_EC2_METADATA_DISABLED=true run "AWS_EC2_METADATA_DISABLED=true turns it off" 1 \
  backup -n mendix -e demo-irsa -f "$work/no.tar.gz"
expect_err "... and then nothing is found" "no AWS credentials: .*no instance profile \(IMDSv2\)"
unset AWS_EC2_METADATA_SERVICE_ENDPOINT
export AWS_ROLE_ARN=$MXPC_IRSA_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE=$work/token

check "no secret in any message" '! grep -qE "X-Amz-Signature=[0-9a-f]|mxpc-sts-" "$work/err"'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
