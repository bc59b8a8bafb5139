#!/usr/bin/env bash
# End to end on the local stack: `schedule` and the CronJob it makes, run by Kubernetes
# (the stack's emulator). Every variant's manifests pass `kubectl apply --dry-run=server`
# (strict validation); --apply creates them; `kubectl create job --from=cronjob/NAME`
# runs the pod's command as a kubelet would (in the image's root, read-only: the program,
# the PostgreSQL client tools and their libraries; its env, its service account's token,
# EKS's web identity for --role-arn, uid 1001), so the archive lands in the bucket, shows in
# `list`, and restores into demo-copy with the proof. The Role lets the job read what a
# backup reads and nothing else (kubectl auth can-i with the service account's token).
# In Azure: --to azblob:// --azure-client-id: demo-azure-wi's managed identity, which
# the emulator's Workload Identity webhook gives the job's pod (its variables and the
# projected token), backs up to a container; the archive lists and restores into
# demo-azure-wi with the proof.
# Needs MXPC_STACK_ENV; reseeds the namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
export TMPDIR=$work/tmp
mkdir "$TMPDIR"
chmod 755 "$work"
bucket=mxpc-schedule-$$-$RANDOM
image=mxpc-data-migration:e2e
role=arn:aws:iam::000000000000:role/mxpc-schedule-e2e
roles=$MXPC_STS_DIR/roles.json
kubelet=$MXPC_STACK_DIR/k8s/kubelet.json
entra=$MXPC_ENTRA_DIR/config.json
container=mxpc-schedule-$$-$RANDOM
cp "$roles" "$work/roles.json.orig"
cp "$entra" "$work/entra.json.orig"
# The test's own S3 access: the stack's IRSA role (its web identity token), the same RGW
# user the job's role maps to, so the bucket is theirs.
export AWS_ROLE_ARN=$MXPC_IRSA_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE=$MXPC_IRSA_TOKEN_FILE AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_STS=$MXPC_STS_ENDPOINT
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
ep=(--archive-endpoint "$MXPC_S3_ENDPOINT")
s3() {
  "$bin" run /dev/stdin "$bucket" "$@" <<'LUA'
local s3 = require "mxpc.s3"
local bucket, action = ...
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT") })
if action == "create" then assert(c:create_bucket(bucket))
elseif action == "keys" then for _, o in ipairs(assert(c:list(bucket, ""))) do print(o.key) end
elseif action == "drop" then
  local keys = {}
  for _, o in ipairs(c:list(bucket, "") or {}) do keys[#keys + 1] = o.key end
  if #keys > 0 then c:delete_many(bucket, keys) end
  assert(c:delete_bucket(bucket))
end
return 0
LUA
}
# s3main ACTION ARGS...: the other bucket, as the stack's main S3 user (not the role's)
s3main() {
  env -u AWS_ROLE_ARN -u AWS_WEB_IDENTITY_TOKEN_FILE AWS_ACCESS_KEY_ID="$MXPC_S3_ACCESS_KEY" \
    AWS_SECRET_ACCESS_KEY="$MXPC_S3_SECRET_KEY" "$bin" run /dev/stdin "$bucket-other" "$@" <<'LUA'
local s3 = require "mxpc.s3"
local store = require "mxpc.backup_store"
local bucket, action, a, b = ...
local c = assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT") })
if action == "create" then assert(c:create_bucket(bucket))
elseif action == "keys" then for _, o in ipairs(assert(c:list(bucket, ""))) do print(o.key) end
elseif action == "uploads" then print(#assert(c:list_multipart_uploads(bucket)))
elseif action == "seed" then -- FILE KEY: an archive of the schedule, with its index
  local head = assert(c:put(bucket, b, { path = a }))
  assert(store.write_index(c, bucket, b, head, { namespace = "mendix", environment = "demo-app",
    time = store.parse_stamp(b:match("(%w+)%.tar%.gz$")), files = 20 }))
elseif action == "drop" then
  for _, u in ipairs(c:list_multipart_uploads(bucket) or {}) do c:abort_multipart(bucket, u.key, u.upload_id) end
  local keys = {}
  for _, o in ipairs(c:list(bucket, "") or {}) do keys[#keys + 1] = o.key end
  if #keys > 0 then c:delete_many(bucket, keys) end
  assert(c:delete_bucket(bucket))
end
return 0
LUA
}
# azure ACTION: the archives' container, with the account key (Azurite)
azure() {
  "$bin" run /dev/stdin "$container" "$@" <<'LUA'
local container, action = ...
local c = assert(require("mxpc.azure").client { endpoint = os.getenv("MXPC_AZURE_BLOB_ENDPOINT"),
  account = os.getenv("MXPC_AZURE_ACCOUNT_NAME"), key = os.getenv("MXPC_AZURE_ACCOUNT_KEY"),
  ca_file = os.getenv("MXPC_AZURE_CA") })
if action == "create" then assert(c:create_bucket(container))
elseif action == "keys" then for _, o in ipairs(assert(c:list(container, ""))) do print(o.key) end
elseif action == "drop" then
  for _, o in ipairs(c:list(container, "") or {}) do c:delete(container, o.key) end
  assert(c:delete_bucket(container))
end
return 0
LUA
}
k8s_clean() {
  kubectl -n mendix delete cronjob -l app.kubernetes.io/component=schedule --ignore-not-found >/dev/null 2>&1
  kubectl -n mendix delete job e2e-run e2e-pull e2e-fail e2e-azure --ignore-not-found >/dev/null 2>&1
  kubectl -n mendix delete sa,role,rolebinding mxpc-backup --ignore-not-found >/dev/null 2>&1
}
cleanup() {
  k8s_clean
  cp "$work/roles.json.orig" "$roles"
  cp "$work/entra.json.orig" "$entra"
  azure drop >/dev/null 2>&1
  rm -f "$kubelet"
  s3 drop >/dev/null 2>&1
  s3main drop >/dev/null 2>&1
  rm -rf "$work"
  "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
}
trap cleanup EXIT
k8s_clean

reseed >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
s3 create || { echo "FAIL: creating bucket $bucket"; echo "0 passed, 1 failed"; exit 1; }
# the job's role: trusted for the schedule's service account, the same RGW user
python3 - "$roles" "$role" <<'PY'
import json, sys
path, arn = sys.argv[1:]
r = json.load(open(path))
issuer = next(iter(r["providers"]))
r["roles"][arn] = {"uid": "mxpc-irsa", "duration": 3600, "rds_users": [], "trust": {
    "iss": issuer, "aud": "sts.amazonaws.com", "sub": "system:serviceaccount:mendix:mxpc-backup"}}
json.dump(r, open(path + ".new", "w"))
PY
mv "$roles.new" "$roles"
# The image: a root filesystem with the program (behind a wrapper that says who runs it
# and whether the root is writable), pg_dump, pg_restore, psql, sh and their libraries,
# the mount points a runtime needs; its environment; the database's CA as a file
root=$work/image
mkdir -p "$root"/{bin,usr/bin,tmp,proc,dev,etc,opt/mxpc,var/run/secrets/kubernetes.io/serviceaccount}
copy_elf() {   # FILE DEST: FILE at DEST in the root, with every library the loader resolves for it
  install -D -m 0755 "$(readlink -f "$1")" "$root$2"
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}
copy_elf /bin/sh /bin/sh
for t in pg_dump pg_restore psql; do copy_elf "$MXPC_PG_BINDIR/$t" "/usr/bin/$t"; done
copy_elf "$bin" /opt/mxpc/mxpc-data-migration.bin
cat > "$root/opt/mxpc/mxpc-data-migration" <<'SH'
#!/bin/sh
while read -r k v rest; do case $k in Uid:|Gid:) echo "running with $k $v" >&2 ;; esac; done < /proc/self/status
if (echo x > /opt/x) 2>/dev/null; then echo "the root is writable" >&2; else echo "the root is read-only" >&2; fi
exec /opt/mxpc/mxpc-data-migration.bin "$@"
SH
chmod 755 "$root/opt/mxpc/mxpc-data-migration"
chmod -R go+rX "$work"
# the same image, trusting the stack's Azure CAs (Azurite's, Entra's) as an image for
# Azure would trust Microsoft's
cat > "$kubelet" <<JSON
{"images": {"$image": {"root": "$root", "path": ["/opt/mxpc", "/usr/bin", "/bin"],
  "env": {"PGSSLROOTCERT": "/tmp/pg-ca.crt", "MXPC_PG_BINDIR": "/usr/bin", "AWS_ENDPOINT_URL_STS": "$MXPC_STS_ENDPOINT",
          "AWS_REGION": "us-east-1"},
  "files": {"/tmp/pg-ca.crt": "$MXPC_PG_CA"}},
 "$image-azure": {"root": "$root", "path": ["/opt/mxpc", "/usr/bin", "/bin"],
  "env": {"MXPC_PG_BINDIR": "/usr/bin", "SSL_CERT_FILE": "/tmp/azure-ca.crt"},
  "files": {"/tmp/azure-ca.crt": "$MXPC_AZURE_CA_BUNDLE"}}}}
JSON

sched=(schedule -n mendix --to "s3://$bucket/nightly" --cron "0 2 * * *" --image "$image" "${ep[@]}")

# --- every variant passes the API server's strict validation ------------------------------
variant() {   # variant NAME ARGS...: schedule's manifests, applied with --dry-run=server
  local name=$1
  shift
  run "schedule $name" 0 "${sched[@]}" "$@"
  if kubectl apply --dry-run=server -f "$work/out" >"$work/apply" 2>"$work/err"; then
    ok "... kubectl apply --dry-run=server accepts it ($(grep -c 'created (server dry run)' "$work/apply") objects)"
  else
    bad "... kubectl apply --dry-run=server refuses it"
  fi
}
variant "-e ENV" -e demo-app --keep-daily 7
variant "--all, every policy, a time zone, an IAM role" --all --keep-last 2 --keep-hourly 3 --keep-daily 7 \
  --keep-weekly 5 --keep-monthly 12 --keep-yearly unlimited --keep-within 2w --timezone Europe/Amsterdam \
  --role-arn "$role" --archive-region us-east-1
check "... one CronJob per MendixApp, start times 5 minutes apart" \
  'grep -c "^kind: CronJob" "$work/out" | grep -qx "$(kubectl -n mendix get mendixapps -o name | wc -l)" &&
   grep -q "schedule: \"5 2 \* \* \*\"" "$work/out"'
variant "-o json" -e demo-app -o json --keep-last 3
"$bin" "${sched[@]}" -e demo-app > "$work/good.yaml" 2>/dev/null
sed 's/concurrencyPolicy: Forbid/concurrencyPolicy: Sometimes/' "$work/good.yaml" > "$work/bad.yaml"
check "the emulator refuses a bad concurrencyPolicy" '! kubectl apply --dry-run=server -f "$work/bad.yaml" >/dev/null 2>&1'
sed 's/  concurrencyPolicy: Forbid/  concurrencyPolicy: Forbid\n  parallelJobs: 2/' "$work/good.yaml" > "$work/bad.yaml"
kubectl apply --dry-run=server -f "$work/bad.yaml" >"$work/apply" 2>&1
check "... and an unknown field (strict)" 'grep -q "unknown field \"spec.parallelJobs\"" "$work/apply"'
sed 's/restartPolicy: Never/restartPolicy: Always/' "$work/good.yaml" > "$work/bad.yaml"
check "... and a Job that restarts Always" '! kubectl apply --dry-run=server -f "$work/bad.yaml" >/dev/null 2>&1'
run "a bad --cron is refused before anything" 2 schedule -n mendix -e demo-app --to "s3://$bucket/nightly" --cron "0 2 * *"
expect_err "... naming the five fields" 'has 4 fields; a schedule has five'

# --- --apply, and a job run from the CronJob -----------------------------------------------
run "schedule --apply" 0 "${sched[@]}" -e demo-app --keep-last 2 --role-arn "$role" --apply
check "... creates the ServiceAccount, Role, RoleBinding and CronJob" \
  'grep -q "^serviceaccount/mxpc-backup created" "$work/out" && grep -q "^cronjob/mxpc-backup-demo-app created" "$work/out"'
run "schedule --apply again brings them up to date" 0 "${sched[@]}" -e demo-app --keep-last 2 --role-arn "$role" --apply
check "... (configured)" 'grep -q "^cronjob/mxpc-backup-demo-app configured" "$work/out"'
sa_role() { kubectl -n mendix get sa mxpc-backup -o jsonpath='{.metadata.annotations.eks\.amazonaws\.com/role-arn}'; }
run "schedule --apply without --role-arn" 0 "${sched[@]}" -e demo-app --keep-last 2 --apply
check "... takes the role's annotation off the ServiceAccount" '[ -z "$(sa_role)" ]'
run "schedule --apply with it again" 0 "${sched[@]}" -e demo-app --keep-last 2 --role-arn "$role" --apply
check "... puts it back" '[ "$(sa_role)" = "$role" ]'
kubectl -n mendix create job --from=cronjob/mxpc-backup-demo-app e2e-run >"$work/out" 2>"$work/err"
check "kubectl create job --from=cronjob/mxpc-backup-demo-app" 'grep -q "job.batch/e2e-run created" "$work/out"'
# poll ($1: a condition) once a second for up to $2 seconds
poll() { for _ in $(seq 1 "$2"); do eval "$1" 2>/dev/null && return 0; sleep 1; done; return 1; }
succeeded() { [ "$(kubectl -n mendix get job e2e-run -o jsonpath='{.status.succeeded}' 2>/dev/null)" = 1 ]; }
if poll succeeded 90; then ok "... the job succeeds"; else bad "... the job succeeds"; kubectl -n mendix logs job/e2e-run | tail -5; fi
kubectl -n mendix logs job/e2e-run > "$work/log" 2>&1
check "... its pod runs in the image's root as uid 1001, gid 1001" \
  'grep -q "^running with Uid: 1001$" "$work/log" && grep -q "^running with Gid: 1001$" "$work/log"'
check "... with the root read-only" 'grep -q "^the root is read-only$" "$work/log"'
check "... in the cluster with its service account" 'grep -q "in-cluster service account" "$work/log"'
check "... with the role's web identity (EKS's, for --role-arn)" \
  'grep -q "AssumeRoleWithWebIdentity role=$role " "$MXPC_STS_DIR/access.log"'
check "... kubectl logs shows the JSON summary" 'grep -q "\"event\":\"summary\".*\"kept\":1" "$work/log"'
key=$(s3 keys | grep '\.tar\.gz$')
check "the archive lands in the bucket" '[[ $key =~ ^nightly/mendix/demo-app/[0-9]{8}T[0-9]{6}Z\.tar\.gz$ ]]'
run "... shows in list" 0 list "s3://$bucket/nightly" "${ep[@]}"
check "... (20 files, Mendix Cloud compatible)" 'grep -qE "mendix/demo-app +[0-9.]+ MiB +20 .* yes$" "$work/out"'
run "... and restores into demo-copy" 0 restore -n mendix -e demo-copy -f "s3://$bucket/nightly/mendix/demo-app/" \
  --stop-app "${ep[@]}"
if proof; then ok "demo-copy holds demo-app's tables, sequences and files"; else bad "proof"; cat "$work/proof"; fi

# an image that is not there: the pod waits, nothing is written
kubectl -n mendix create job e2e-pull --image=nowhere/none:1 -- true >/dev/null 2>&1
reason() { [ "$(kubectl -n mendix get pods -l job-name=e2e-pull -o jsonpath='{.items[0].status.containerStatuses[0].state.waiting.reason}')" = ErrImagePull ]; }
check "a job whose image cannot be pulled waits (ErrImagePull)" 'poll reason 20'

# --- a run that fails: a bucket the job's role may not write ---------------------------------
# (the other bucket belongs to the main S3 user; it holds an archive of June 2025)
"$bin" run /dev/stdin "$bucket" "$key" "$work/archive.tar.gz" <<'LUA' && s3main create && s3main seed "$work/archive.tar.gz" nightly/mendix/demo-app/20250601T020000Z.tar.gz || bad "seeding $bucket-other"
local s3 = require "mxpc.s3"
local bucket, key, file = ...
assert(assert(s3.client { endpoint = os.getenv("MXPC_S3_ENDPOINT") }):get(bucket, key, file))
return 0
LUA
run "schedule --apply to another bucket" 0 schedule -n mendix -e demo-app --to "s3://$bucket-other/nightly" \
  --cron "0 2 * * *" --image "$image" "${ep[@]}" --keep-last 1 --role-arn "$role" --apply
kubectl -n mendix create job --from=cronjob/mxpc-backup-demo-app e2e-fail >/dev/null 2>"$work/err"
failed_job() { [ "$(kubectl -n mendix get job e2e-fail -o jsonpath='{.status.conditions[0].reason}' 2>/dev/null)" = BackoffLimitExceeded ]; }
if poll failed_job 60; then ok "the job fails, after backoffLimit + 1 attempts"; else bad "the job fails"; fi
check "... three pods" '[ "$(kubectl -n mendix get pods -l job-name=e2e-fail -o name | wc -l)" = 3 ]'
kubectl -n mendix logs "$(kubectl -n mendix get pods -l job-name=e2e-fail -o name | head -1)" > "$work/log" 2>&1
check "... its log names the permission" 'grep -q "access denied.*the role needs s3:PutObject" "$work/log"'
check "... it leaves no object" '[ "$(s3main keys | tr "\n" " ")" = "nightly/mendix/demo-app/20250601T020000Z.json nightly/mendix/demo-app/20250601T020000Z.tar.gz " ]'
check "... and no unfinished upload" '[ "$(s3main uploads)" = 0 ]'
env -u AWS_ROLE_ARN -u AWS_WEB_IDENTITY_TOKEN_FILE AWS_ACCESS_KEY_ID="$MXPC_S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$MXPC_S3_SECRET_KEY" "$bin" list "s3://$bucket-other/nightly" --max-age 26h "${ep[@]}" \
  >"$work/out" 2>"$work/err"
rc=$?
check "list --max-age then exits 1 naming the environment" \
  '[ $rc = 1 ] && grep -q "^stale: mendix/demo-app: the newest archive is from 2025-06-01T02:00:00Z" "$work/err"'

# --- the Role: what a backup reads, nothing else -----------------------------------------
token=$(kubectl -n mendix create token mxpc-backup)
can() { kubectl --token="$token" auth can-i "$@" 2>/dev/null; }
db_secret=$(kubectl -n mendix get storageinstance demo-app-database -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("status",{}).get("secretName") or d.get("spec",{}).get("secretName") or d["metadata"]["name"])')
check "the job's service account may read demo-app's MendixApp and its Secret" \
  '[ "$(can -n mendix get mendixapps/demo-app)" = yes ] && [ "$(can -n mendix get "secrets/$db_secret")" = yes ]'
check "... not stop an app (patch mendixapps)" '[ "$(can -n mendix patch mendixapps/demo-app)" = no ]'
check "... not read another environment's Secret" \
  '[ "$(can -n mendix get secrets/demo-copy-database-credentials)" = no ] && [ "$(can -n mendix list secrets)" = no ]'
check "... not read another namespace" '[ "$(can -n default get secrets)" = no ] && [ "$(can -n kube-system get mendixapps)" = no ]'
check "... not write Secrets" '[ "$(can -n mendix create secrets)" = no ] && [ "$(can -n mendix update "secrets/$db_secret")" = no ] &&
  [ "$(can -n mendix delete "secrets/$db_secret")" = no ]'
check "... not create pods or jobs" '[ "$(can -n mendix create pods)" = no ] && [ "$(can -n mendix create jobs)" = no ]'

# --- --delete --------------------------------------------------------------------------------
run "schedule --delete -e ENV removes its CronJob" 0 "${sched[@]}" -e demo-app --delete
check "... only it" 'grep -q "^cronjob/mxpc-backup-demo-app deleted" "$work/out" && kubectl -n mendix get sa mxpc-backup >/dev/null 2>&1'
gone() { ! kubectl -n mendix get job e2e-run >/dev/null 2>&1; }
check "... and its jobs with it" 'poll gone 10'
run "schedule --all --delete removes the rest" 0 "${sched[@]}" --all --delete
check "... the ServiceAccount, Role and RoleBinding" '! kubectl -n mendix get sa mxpc-backup >/dev/null 2>&1'

# --- Azure: a job as demo-azure-wi's managed identity, to azblob:// ---------------------------
# The identity trusts the schedule's ServiceAccount (a federated credential for it), as
# docs/schedule.md asks; the archives go to a container of the stack's account.
python3 - "$entra" "$MXPC_AZURE_WI_CLIENT_ID" <<'PY'
import json, os, sys
path, client = sys.argv[1:]
doc = json.load(open(path))
fed = doc["applications"][client]["federated"]
fed.append(dict(fed[0], subject="system:serviceaccount:mendix:mxpc-backup"))
json.dump(doc, open(path + ".new", "w"))
os.replace(path + ".new", path)
PY
azure create || bad "creating the container $container"
azsched=(schedule -n mendix -e demo-azure-wi --to "azblob://$MXPC_AZURE_ACCOUNT_NAME/$container/nightly" --cron "0 2 * * *"
  --image "$image-azure" --archive-endpoint "$MXPC_AZURE_BLOB_ENDPOINT" --azure-client-id "$MXPC_AZURE_WI_CLIENT_ID"
  --keep-last 2)
run "schedule --to azblob:// --azure-client-id --apply" 0 "${azsched[@]}" --apply
kubectl -n mendix create job --from=cronjob/mxpc-backup-demo-azure-wi e2e-azure >/dev/null 2>"$work/err"
azure_done() { [ "$(kubectl -n mendix get job e2e-azure -o jsonpath='{.status.succeeded}' 2>/dev/null)" = 1 ]; }
if poll azure_done 60; then ok "... the job succeeds"; else bad "... the job succeeds"; kubectl -n mendix logs job/e2e-azure | tail -5; fi
pod=$(kubectl -n mendix get pods -l job-name=e2e-azure -o json)
check "... its pod got the Workload Identity webhook's variables and projected token" \
  'python3 -c "
import json, sys
p = json.loads(sys.argv[1])[\"items\"][0]
env = {e[\"name\"]: e.get(\"value\") for e in p[\"spec\"][\"containers\"][0][\"env\"]}
vol = [v for v in p[\"spec\"][\"volumes\"] if v[\"name\"] == \"azure-identity-token\"][0]
assert env[\"AZURE_CLIENT_ID\"] == sys.argv[2] and env[\"AZURE_TENANT_ID\"] == sys.argv[3]
assert env[\"AZURE_FEDERATED_TOKEN_FILE\"] == \"/var/run/secrets/azure/tokens/azure-identity-token\"
assert env[\"AZURE_AUTHORITY_HOST\"] == sys.argv[4]
assert vol[\"projected\"][\"sources\"][0][\"serviceAccountToken\"][\"audience\"] == \"api://AzureADTokenExchange\"
" "$pod" "$MXPC_AZURE_WI_CLIENT_ID" "$MXPC_AZURE_TENANT_ID" "$MXPC_AZURE_AUTHORITY_HOST"'
check "... and exchanged the token at Entra as demo-azure-wi, subject the schedule's ServiceAccount" \
  'grep -q "issued app=demo-azure-wi .*sub=system:serviceaccount:mendix:mxpc-backup" "$MXPC_ENTRA_DIR/access.log"'
azkey=$(azure keys | grep '\.tar\.gz$')
check "the archive lands in the container" '[[ $azkey =~ ^nightly/mendix/demo-azure-wi/[0-9]{8}T[0-9]{6}Z\.tar\.gz$ ]]'
run_env "... shows in list azblob://" 0 AZURE_STORAGE_KEY="$MXPC_AZURE_ACCOUNT_KEY" SSL_CERT_FILE="$MXPC_AZURE_CA_BUNDLE" -- \
  list "azblob://$MXPC_AZURE_ACCOUNT_NAME/$container/nightly" --archive-endpoint "$MXPC_AZURE_BLOB_ENDPOINT"
check "... (mendix/demo-azure-wi)" 'grep -qE "mendix/demo-azure-wi +[0-9.]+ [KM]iB +[0-9]+ " "$work/out"'
PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" \
  -d demo_azure_wi -c 'delete from "myfirstmodule$order"' >/dev/null
python3 "$src/tests/stack/k8s_emulator.py" token "$MXPC_STACK_DIR/k8s" --sa demo-azure-wi \
  --aud api://AzureADTokenExchange >"$work/wi-token"
run_env "... and restores into demo-azure-wi (its identity)" 0 SSL_CERT_FILE="$MXPC_AZURE_CA_BUNDLE" \
  AZURE_CLIENT_ID="$MXPC_AZURE_WI_CLIENT_ID" AZURE_TENANT_ID="$MXPC_AZURE_TENANT_ID" \
  AZURE_AUTHORITY_HOST="$MXPC_AZURE_AUTHORITY_HOST" AZURE_FEDERATED_TOKEN_FILE="$work/wi-token" -- \
  restore -n mendix -e demo-azure-wi -f "azblob://$MXPC_AZURE_ACCOUNT_NAME/$container/nightly/mendix/demo-azure-wi/" \
  --archive-endpoint "$MXPC_AZURE_BLOB_ENDPOINT" --stop-app
if "$bin" run "$src/tests/e2e/proof.lua" "$seed_json" demo-azure-wi demo-azure-wi >"$work/proof" 2>&1; then
  ok "demo-azure-wi holds its seeded tables, sequences and files again"
else bad "proof of demo-azure-wi"; tail -5 "$work/proof"; fi
run "schedule --delete" 0 "${azsched[@]}" --delete

finish
