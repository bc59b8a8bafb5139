#!/usr/bin/env bash
# End to end with credentials in secret stores (Secrets Store CSI Driver): demo-sm (AWS
# Secrets Manager), demo-vault (HashiCorp Vault), demo-kv (Azure Key Vault) have no
# credentials Secret, only a SecretProviderClass named after the MendixApp.
# Covers: backup and restore of each with the proof, as the environment's identity (a
# TokenRequest of its ServiceAccount: STS web identity, Vault Kubernetes login, Entra
# exchange) and as the tool's own (AWS keys, VAULT_TOKEN, Workload Identity variables);
# refusals with clear errors (a store that denies, a missing key, an unsupported
# jmesPath, a ServiceAccount token we may not request, a Vault role bound to another
# ServiceAccount, expired tokens); no store value in any log, JSON event, REPL output or
# child command line. Needs MXPC_STACK_ENV; reseeds the namespace before and after.
. "$(dirname "$0")/lib.sh" "$@"
for v in MXPC_SM_ENDPOINT MXPC_VAULT_ADDR MXPC_KEYVAULT_URL; do
  [ -n "${!v:-}" ] || { echo "FAIL: $v is not set: the stack has no secret stores (restart it with tests/stack/up)"; echo "0 passed, 1 failed"; exit 1; }
done
vault_conf=$MXPC_VAULT_DIR/config.json
cp "$vault_conf" "$work/vault.json.orig"
cleanup() {
  cp "$work/vault.json.orig" "$vault_conf"
  kubectl -n mendix delete rolebinding,role mxpc-stores-test >/dev/null 2>&1
  rm -rf "$work"
  reseed >/dev/null
}
trap cleanup EXIT
reseed >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
kv_log_start=$(wc -l <"$MXPC_KEYVAULT_DIR/access.log")

unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN \
  AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_ENDPOINT_URL VAULT_TOKEN AZURE_CLIENT_ID AZURE_TENANT_ID \
  AZURE_FEDERATED_TOKEN_FILE
export HOME=$work AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_SHARED_CREDENTIALS_FILE=$work/none
export AWS_ENDPOINT_URL_STS=$MXPC_STS_ENDPOINT AWS_ENDPOINT_URL_SECRETS_MANAGER=$MXPC_SM_ENDPOINT
export AZURE_AUTHORITY_HOST=$MXPC_AZURE_AUTHORITY_HOST MXPC_KEYVAULT_ENDPOINT=$MXPC_KEYVAULT_URL
# Vault's CA as for the vault CLI; Entra's and Key Vault's as for any https
export VAULT_CACERT=$MXPC_VAULT_CA SSL_CERT_FILE=$MXPC_AZURE_CA_BUNDLE

# pg_dump, pg_restore and psql through a wrapper that records how they were started
mkdir "$work/bin"
for p in pg_dump pg_restore psql; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/children"\nexec "%s/%s" "$@"\n' "$p" "$work" "$MXPC_PG_BINDIR" "$p" >"$work/bin/$p"
  chmod +x "$work/bin/$p"
done
export MXPC_PG_BINDIR=$work/bin
: >"$work/all"   # everything the program printed, for the leak check
before_run() { [ -f "$work/err" ] && cat "$work/out" "$work/err" >>"$work/all" 2>/dev/null; rm -f "$work/no.tar.gz"; :; }

seed_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["store_environments"][sys.argv[2]]; print(eval(sys.argv[3]))' "$seed_json" "$@"; }
damage() {   # damage ENV: the orders gone and one file deleted
  local db=${1//-/_} key
  PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_TLS_PORT" -U "$MXPC_PG_SUPERUSER" \
    -d "$db" -c 'delete from "myfirstmodule$order"' >/dev/null
  key=$(seed_field "$1" 'd["files"][0]["key"]')
  "$bin" run /dev/stdin >/dev/null 2>&1 <<EOF
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = "$MXPC_S3_ENDPOINT", access_key = "$MXPC_S3_ACCESS_KEY", secret_key = "$MXPC_S3_SECRET_KEY" })
assert(c:delete("$1-files", "$key"))
EOF
}
prove() { "$bin" run "$src/tests/e2e/proof.lua" "$seed_json" "$1" "$1" >"$work/proof" 2>&1; }

roundtrip() {   # roundtrip ENV IDENTITY [VAR=VALUE...]: backup, damage, restore, proof
  local e=$1 who=$2
  shift 2
  run "backup $e as the $who's identity" 0 env "$@" "$bin" -v backup -n mendix -e "$e" -f "$work/$e-$who.tar.gz" --identity "$who"
  expect_err "... -v says where each value came from" "secret store value from=.*(Secrets Manager|Vault|Key Vault).* key=database-password"
  damage "$e"
  if prove "$e"; then bad "the proof sees the damage in $e"; else ok "the proof sees the damage in $e"; fi
  run "restore $e as the $who's identity" 0 env "$@" "$bin" --log-format json -v restore -n mendix -e "$e" \
    -f "$work/$e-$who.tar.gz" --identity "$who"
  if prove "$e"; then ok "proof: $e holds its seeded database and files again"
  else bad "proof after restoring $e"; sed 's/^/  /' "$work/proof" | tail -5; fi
}
# run NAME EXIT COMMAND...: here the command is given whole (env VARS... program ...)
run() {
  local name=$1 want=$2
  shift 2
  before_run
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name (exit $got, expected $want)"; fi
}
r() { run "$1" "$2" "$bin" "${@:3}"; }   # r NAME EXIT ARGS: the program itself

# ---- round trips as the environment and as the tool -------------------------------------
roundtrip demo-sm environment
grep -q "AssumeRoleWithWebIdentity role=$MXPC_SM_ROLE_ARN .*sub=system:serviceaccount:mendix:demo-sm" \
  "$MXPC_STS_DIR/access.log" && ok "... Secrets Manager was read as demo-sm's role" || bad "STS saw no web identity of demo-sm"
roundtrip demo-sm tool AWS_ACCESS_KEY_ID="$MXPC_SM_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$MXPC_SM_SECRET_KEY"
grep -q "GetSecretValue secret=$MXPC_SM_SECRET_NAME by=arn:aws:iam::000000000000:user/mxpc-backup-restore" \
  "$MXPC_SM_DIR/access.log" && ok "... and as the tool's IAM user" || bad "Secrets Manager saw no read by the tool's user"
roundtrip demo-vault environment
grep -q "login role=demo-vault sa=mendix/demo-vault" "$MXPC_VAULT_DIR/access.log" &&
  ok "... Vault logged demo-vault's ServiceAccount in" || bad "Vault saw no login of demo-vault"
roundtrip demo-vault tool VAULT_TOKEN="$MXPC_VAULT_TOOL_TOKEN"
roundtrip demo-kv environment
grep -q "getSecret demo-kv/database-password by oid=$MXPC_AZURE_KV_PRINCIPAL_ID" "$MXPC_KEYVAULT_DIR/access.log" &&
  ok "... Key Vault was read as demo-kv's managed identity" || bad "Key Vault saw no read by demo-kv's identity"
roundtrip demo-kv tool AZURE_CLIENT_ID="$MXPC_AZURE_CLIENT_ID" AZURE_TENANT_ID="$MXPC_AZURE_TENANT_ID" \
  AZURE_FEDERATED_TOKEN_FILE="$MXPC_AZURE_FEDERATED_TOKEN_FILE"
grep -q "getSecret demo-kv/database-password by oid=$MXPC_AZURE_PRINCIPAL_ID" "$MXPC_KEYVAULT_DIR/access.log" &&
  ok "... and as the tool's" || bad "Key Vault saw no read by the tool's identity"
check "Key Vault was never asked for mx-admin-password or constants" \
  '! tail -n +$((kv_log_start + 1)) "$MXPC_KEYVAULT_DIR/access.log" | grep -q "mx-admin-password\|mx-debugger\|mx-const"'

r "a dry run of demo-vault reads the store and checks its permissions" 0 backup -n mendix -e demo-vault \
  -f "$work/dry.tar.gz" --dry-run
check "... the SecretProviderClass's, not the Secrets'" \
  'grep -q "may get mendixapps, get secretproviderclasses\$" "$work/out" && ! grep -q "get secrets" "$work/out"'
check "... and writes nothing" '[ ! -e "$work/dry.tar.gz" ]'

# ---- refusals -------------------------------------------------------------------------------
run "a store that denies (an IAM user without a policy) fails" 1 env AWS_ACCESS_KEY_ID="$MXPC_SM_NOTHING_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$MXPC_SM_NOTHING_SECRET_KEY" "$bin" backup -n mendix -e demo-sm -f "$work/no.tar.gz" --identity tool
expect_err "... names the refusal, the secret and the permission" \
  "refused GetSecretValue of $MXPC_SM_SECRET_NAME as the tool's AWS credentials \(environment\): AccessDeniedException"
expect_err "... and says which IAM actions to allow" "secretsmanager:GetSecretValue and secretsmanager:DescribeSecret"
check "... and writes no archive" '[ ! -e "$work/no.tar.gz" ]'

run "Vault with another CA than its own fails" 1 env VAULT_CACERT="$MXPC_AZURE_CA_BUNDLE" "$bin" backup -n mendix \
  -e demo-vault -f "$work/no.tar.gz"
expect_err "... naming the address" "cannot reach https://127.0.0.1:$MXPC_VAULT_PORT: .*certificate"
expect_err "... and the CA file" "the CA file $MXPC_AZURE_CA_BUNDLE"
# the SecretProviderClass's vaultCACertPath, when the file is on this machine (else SSL_CERT_FILE)
run "Vault without VAULT_CACERT or vaultCACertPath: SSL_CERT_FILE, which lacks Vault's CA, fails" 1 \
  env -u VAULT_CACERT "$bin" backup -n mendix -e demo-vault -f "$work/no.tar.gz"
kubectl -n mendix patch secretproviderclass demo-vault --type merge \
  -p "{\"spec\":{\"parameters\":{\"vaultCACertPath\":\"$MXPC_VAULT_CA\"}}}" >/dev/null
run "Vault's CA from the SecretProviderClass's vaultCACertPath" 0 env -u VAULT_CACERT "$bin" backup -n mendix \
  -e demo-vault -f "$work/ca.tar.gz"
kubectl -n mendix patch secretproviderclass demo-vault --type merge \
  -p '{"spec":{"parameters":{"vaultCACertPath":"/etc/no-such-dir/vault-ca.pem"}}}' >/dev/null
run "a vaultCACertPath that is not on this machine" 1 env -u VAULT_CACERT "$bin" backup -n mendix -e demo-vault \
  -f "$work/no.tar.gz"
expect_err "... is said, and VAULT_CACERT named" "vaultCACertPath /etc/no-such-dir/vault-ca.pem is not on this machine.*VAULT_CACERT"
kubectl -n mendix patch secretproviderclass demo-vault --type merge -p '{"spec":{"parameters":{"vaultCACertPath":null}}}' \
  >/dev/null
run "a Vault token whose policy does not cover the path fails" 1 env VAULT_TOKEN="$MXPC_VAULT_NOTHING_TOKEN" \
  "$bin" backup -n mendix -e demo-vault -f "$work/no.tar.gz" --identity tool
expect_err "... names the path and the policy it needs" 'Vault denied reading secret/data/demo-vault as VAULT_TOKEN.*'
expect_err "... hint" 'path "secret/data/demo-vault" \{ capabilities = \["read"\] \}'

python3 - "$vault_conf" <<'EOF'
import json, sys, time
p = sys.argv[1]
d = json.load(open(p))
d["tokens"]["hvs.expired-token-for-the-test"] = {"policies": ["demo-vault"], "expires": time.time() - 5, "display_name": "old"}
json.dump(d, open(p, "w"))
EOF
run "an expired Vault token fails" 1 env VAULT_TOKEN=hvs.expired-token-for-the-test "$bin" backup -n mendix \
  -e demo-vault -f "$work/no.tar.gz" --identity tool
expect_err "... with Vault's refusal" "Vault denied reading secret/data/demo-vault"
python3 "$src/tests/stack/k8s_emulator.py" token "$MXPC_STACK_DIR/k8s" --aud api://AzureADTokenExchange \
  --lifetime -10 >"$work/expired-token"
run "an expired federated token fails" 1 env AZURE_CLIENT_ID="$MXPC_AZURE_CLIENT_ID" AZURE_TENANT_ID="$MXPC_AZURE_TENANT_ID" \
  AZURE_FEDERATED_TOKEN_FILE="$work/expired-token" "$bin" backup -n mendix -e demo-kv -f "$work/no.tar.gz" --identity tool
expect_err "... Entra's refusal is named" "Entra ID refused a Key Vault token for the tool's identity.*AADSTS"

python3 - "$MXPC_STACK_DIR/keyvault/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["vaults"]["demo-kv"]["roles"] = {}
json.dump(d, open(p, "w"))
EOF
r "Key Vault without a role for the identity fails" 1 backup -n mendix -e demo-kv -f "$work/no.tar.gz"
expect_err "... names the vault, the secret and the role to assign" \
  'Key Vault demo-kv denied secret .* to ServiceAccount mendix/demo-kv.*|Key Vault Secrets User'
reseed >/dev/null 2>&1 || bad "reseeding"
# (the seed rewrites the vault's secrets, not its roles: put them back)
python3 - "$MXPC_STACK_DIR/keyvault/config.json" "$MXPC_AZURE_KV_PRINCIPAL_ID" "$MXPC_AZURE_PRINCIPAL_ID" <<'EOF'
import json, sys
p, a, b = sys.argv[1:]
d = json.load(open(p))
d["vaults"]["demo-kv"]["roles"] = {a: "Key Vault Secrets User", b: "Key Vault Secrets User"}
json.dump(d, open(p, "w"))
EOF

# a key the mapping names but the store lacks
"$bin" run /dev/stdin >/dev/null 2>"$work/err" <<EOF || bad "writing a Vault version without database-password"
local http = require "mxpc.http"
local cjson = require "cjson"
local res = assert(http.request { url = "$MXPC_VAULT_ADDR/v1/secret/data/demo-vault", ca_file = "$MXPC_VAULT_CA",
  headers = { ["X-Vault-Token"] = "$MXPC_VAULT_ROOT_TOKEN" } })
local data = cjson.decode(res.body).data.data
data["database-password"] = nil
local w = assert(http.request { method = "POST", url = "$MXPC_VAULT_ADDR/v1/secret/data/demo-vault", ca_file = "$MXPC_VAULT_CA",
  headers = { ["X-Vault-Token"] = "$MXPC_VAULT_ROOT_TOKEN", ["Content-Type"] = "application/json" },
  body = cjson.encode { data = data } })
assert(w.status == 200, "write: HTTP " .. w.status)
EOF
r "a key missing in the store fails" 1 backup -n mendix -e demo-vault -f "$work/no.tar.gz"
expect_err "... names the key and the mapping" "SecretProviderClass mendix/demo-vault objects\[[0-9]+\]: the store has no value for database-password"
reseed >/dev/null 2>&1 || bad "reseeding"

spc_patch() { kubectl -n mendix patch secretproviderclass "$1" --type merge -p "$2" >/dev/null; }
objects=$(kubectl -n mendix get secretproviderclass demo-sm -o jsonpath='{.spec.parameters.objects}')
bad_objects=${objects/\'\"database-host\"\'/\'data.\"database-host\"\'}
spc_patch demo-sm "$(python3 -c 'import json,sys; print(json.dumps({"spec": {"parameters": {"objects": sys.argv[1]}}}))' "$bad_objects")"
r "a jmesPath expression the tool does not support fails" 1 backup -n mendix -e demo-sm -f "$work/no.tar.gz"
expect_err "... names it and the forms that work" "jmesPath data.\"database-host\" is not supported"
expect_err "... hint" "only a top-level key of the JSON secret"

spc_patch demo-vault '{"spec": {"parameters": {"roleName": "demo-app"}}}'
r "a Vault role bound to another ServiceAccount fails" 1 backup -n mendix -e demo-vault -f "$work/no.tar.gz"
expect_err "... with Vault's reason" 'role "demo-app"\) of ServiceAccount mendix/demo-vault: HTTP 403: service account name not authorized'
expect_err "... and how to bind the role" "bound_service_account_names=demo-vault bound_service_account_namespaces=mendix"
spc_patch demo-vault '{"spec": {"parameters": {"roleName": "demo-vault"}}}'

# the jump pod's user may read SecretProviderClasses and the ServiceAccount, not request its token
kubectl -n mendix create -f - >/dev/null <<'EOF'
{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "mxpc-stores-test"},
  "rules": [{"apiGroups": ["secrets-store.csi.x-k8s.io"], "resources": ["secretproviderclasses"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]},
 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "mxpc-stores-test"},
  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mxpc-stores-test"},
  "subjects": [{"kind": "User", "name": "mendix-backup-restore"}]}]}
EOF
r "a ServiceAccount token the tool may not request fails" 1 backup --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED" -n mendix \
  -e demo-vault -f "$work/no.tar.gz"
expect_err "... names the permission" 'cannot create serviceaccounts "demo-vault" \(token\)'
expect_err "... and the Role rule, for that one name" 'resources: \["serviceaccounts/token"\], resourceNames: \["demo-vault"\], verbs: \["create"\]'
expect_err "... and the other way" "--identity tool"
# with the rules `jump-pod` grants, for demo-vault only
kubectl -n mendix delete role mxpc-stores-test >/dev/null
"$bin" -q jump-pod -n mendix -e demo-vault -o json --pg-version 15 | python3 -c '
import json, sys
role = next(o for o in json.load(sys.stdin)["items"] if o["kind"] == "Role")
print(json.dumps({"apiVersion": role["apiVersion"], "kind": "Role", "metadata": {"name": "mxpc-stores-test"},
                  "rules": role["rules"]}))' | kubectl -n mendix create -f - >/dev/null
r "with the jump pod's Role, the restricted user backs up demo-vault as the environment" 0 backup \
  --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED" -n mendix -e demo-vault -f "$work/jp.tar.gz" --database-only
r "... but not demo-sm (the token of another ServiceAccount)" 1 backup --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED" \
  -n mendix -e demo-sm -f "$work/no.tar.gz"
expect_err "... and the hint names the SecretProviderClass permission" 'must be allowed to read its SecretProviderClass: .*resources: \["secretproviderclasses"\]'

# ---- no value from a store anywhere ------------------------------------------------------------
before_run
"$bin" repl >"$work/repl.out" 2>&1 <<'EOF' || true
e = env "demo-kv"
e.database.password, e.storage.secret_key, e.database.host
e
EOF
cat "$work/repl.out" >>"$work/all"
leaks=()
for e in demo-sm demo-vault demo-kv; do
  while IFS= read -r v; do
    [ -n "$v" ] || continue
    grep -qF -- "$v" "$work/all" "$work/children" && leaks+=("$e: ${v:0:6}...")
  done < <(seed_field "$e" '"\n".join(list(d["never_read"].values()) + [d["database"]["password"]])')
done
grep -qF -- "$MXPC_S3_SECRET_KEY" "$work/all" "$work/children" && leaks+=("the storage secret key")
check "no store value (passwords, keys, mx-admin-password, constants) in any output, JSON event, REPL output or child command line: ${leaks[*]:-none}" '[ ${#leaks[@]} = 0 ]'
check "... the outputs were checked (they hold the runs' logs)" '[ "$(wc -l <"$work/all")" -gt 50 ] && grep -q "pg_restore" "$work/children"'
check "... and the REPL printed the redacted values" 'grep -q "\*\*\*" "$work/repl.out" || { cat "$work/repl.out"; false; }'

finish
