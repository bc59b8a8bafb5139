#!/usr/bin/env bash
# End to end on the local stack: `jump-pod`. Its manifests pass real
# `kubectl apply --dry-run=server` against the Kubernetes emulator (which
# checks fields strictly, as kubectl asks); the image follows the database
# server's major version, or --pg-version when the server cannot be asked;
# --apply creates the objects and waits for the pod, --delete removes them.
# The Role is exactly enough: with the service account's own token (in-cluster
# mode, as in the pod) a backup works with the backup Role and a restore
# --stop-app is refused until the Role allows it. Needs MXPC_STACK_ENV;
# reseeds the namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
export TMPDIR=$work/tmp
mkdir "$TMPDIR"
cleanup() {
  for e in demo-app demo-copy; do "$bin" -q jump-pod -n mendix -e "$e" --delete >/dev/null 2>&1; done
  rm -rf "$work"
  reseed >/dev/null
}
trap cleanup EXIT
# the rules of the Role in a JSON List on stdin, one "group resource verb names" per line
# (names: the rule's resourceNames, * for none)
rules() {
  python3 -c '
import json, sys
for o in json.load(sys.stdin)["items"]:
    if o["kind"] == "Role":
        for r in o["rules"]:
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    for v in r["verbs"]:
                        print(g or "core", res, v, ",".join(r.get("resourceNames") or ["*"]))' | sort | tr '\n' ' '
}
exists() { kubectl -n mendix get "$1" "$2" >/dev/null 2>&1; }
# in-cluster mode with a service account's token, as the tool runs in the pod
as_sa() {
  local sa=$1
  shift
  local dir=$work/sa-$sa
  mkdir -p "$dir"
  # one token per service account, kept (so it can be tried after the deletion)
  [ -s "$dir/token" ] || kubectl -n mendix create token "$sa" >"$dir/token" 2>>"$work/err" || return 1
  cp "$MXPC_K8S_CA" "$dir/ca.crt"
  printf mendix >"$dir/namespace"
  env -u KUBECONFIG HOME="$dir" MXPC_K8S_SA_DIR="$dir" KUBERNETES_SERVICE_HOST=127.0.0.1 \
    KUBERNETES_SERVICE_PORT="${MXPC_K8S_URL##*:}" "$bin" "$@"
}

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
major=$(PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_TLS_PORT" -U "$MXPC_PG_SUPERUSER" -d postgres \
  -c 'show server_version_num')
major=$((major / 10000))

# --- the manifests ---------------------------------------------------------------------
run "jump-pod prints the manifests" 0 jump-pod -n mendix -e demo-app
cp "$work/out" "$work/backup.yaml"
check "... four objects" '[ "$(grep -c "^kind: " "$work/backup.yaml")" = 4 ]'
check "... the image of the server's major version ($major)" 'grep -q "image: docker.io/library/postgres:$major$" "$work/backup.yaml"'
check "... asked from the server" 'grep -q "database server version major=$major" "$work/err"'
kubectl apply --dry-run=server -f "$work/backup.yaml" >"$work/kubectl.out" 2>&1
check "kubectl apply --dry-run=server accepts them" '[ $? = 0 ] && [ "$(grep -c "created (server dry run)" "$work/kubectl.out")" = 4 ]'
check "... and nothing was created" '! exists serviceaccount mxpc-jump-demo-app && ! exists pod mxpc-jump-demo-app'
sed 's/serviceAccountName:/serviceAcountName:/' "$work/backup.yaml" | kubectl apply --dry-run=server -f - >"$work/kubectl.out" 2>&1
check "... while a misspelt field is rejected (the check has teeth)" '[ $? != 0 ] && grep -q "unknown field \"spec.serviceAcountName\"" "$work/kubectl.out"'

for variant in "" --restore --stop-app; do
  "$bin" -q jump-pod -n mendix -e demo-app $variant -o json >"$work/$variant.json" 2>"$work/err"
  kubectl apply --dry-run=server -f "$work/$variant.json" >"$work/kubectl.out" 2>&1
  check "-o json ${variant:-(backup)}: a List kubectl accepts" '[ "$(grep -c "created (server dry run)" "$work/kubectl.out")" = 4 ]'
done
backup_rules="core secrets get demo-app-database-credentials,demo-app-file-credentials \
privatecloud.mendix.com mendixapps get demo-app privatecloud.mendix.com storageinstances get demo-app-database,demo-app-file "
check "backup's Role: get the environment's credential Secrets, its MendixApp and StorageInstances, by name (no secret store: none of its rules)" \
  '[ "$(rules <"$work/.json")" = "$backup_rules" ]'
"$bin" -q jump-pod -n mendix -e demo-sm --pg-version 15 -o json >"$work/sm.json" 2>"$work/err"
check "an environment with a secret store: its SecretProviderClass, ServiceAccount and token, by name" \
  'rules <"$work/sm.json" >"$work/sm.rules" && grep -q "core serviceaccounts get demo-sm core serviceaccounts/token create demo-sm .*secrets-store.csi.x-k8s.io secretproviderclasses get demo-sm $" "$work/sm.rules"'
check "--restore adds list on pods (list cannot be limited by name)" \
  '[ "$(rules <"$work/--restore.json")" = "core pods list * $backup_rules" ]'
check "--stop-app adds patch on the MendixApp" \
  '[ "$(rules <"$work/--stop-app.json")" = "core pods list * ${backup_rules/mendixapps get demo-app /mendixapps get demo-app privatecloud.mendix.com mendixapps patch demo-app }" ]'

# the server cannot be asked (this user may read nothing): --pg-version, or a clear error
run "without a reachable server nor --pg-version: exit 1" 1 jump-pod -n mendix -e demo-app --kubeconfig "$MXPC_KUBECONFIG_NOBODY"
check "... saying to give --pg-version" 'grep -q "cannot learn the database server.s version" "$work/err" && grep -q -- "--pg-version" "$work/err"'
run "with --pg-version" 0 jump-pod -n mendix -e demo-app --kubeconfig "$MXPC_KUBECONFIG_NOBODY" --pg-version 13 -o json
check "... its image" 'grep -q "\"image\": \"docker.io/library/postgres:13\"" "$work/out"'
check "... the Secrets cannot be named: a warning says the Role may read every Secret" \
  'grep -q "^warn: the Role may read every Secret in namespace mendix: the credential Secrets of demo-app could not be learned" "$work/err"'
check "... and the other rules still name their objects" \
  '[ "$(rules <"$work/out")" = "core secrets get * core serviceaccounts get demo-app core serviceaccounts/token create demo-app privatecloud.mendix.com mendixapps get demo-app privatecloud.mendix.com storageinstances get demo-app-database,demo-app-file secrets-store.csi.x-k8s.io secretproviderclasses get demo-app " ]'
run "--pg-version that differs from the server's" 0 jump-pod -n mendix -e demo-app --pg-version 12
check "... the server's version wins, with a warning" 'grep -q "postgres:$major$" "$work/out" && grep -q "pg-version 12 ignored" "$work/err"'
run "--pg-version must be a number" 2 jump-pod -n mendix -e demo-app --pg-version latest
run "--apply and --delete exclude each other" 2 jump-pod -n mendix -e demo-app --apply --delete

# --- apply, use, delete -------------------------------------------------------------------
run "--apply as a user without the right to create is refused" 1 jump-pod -n mendix -e demo-app --apply \
  --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED" --pg-version "$major"
check "... naming the missing rule" 'grep -q "resources: \[\"serviceaccounts\"\], verbs: \[\"create\"\]" "$work/err"'

run "--apply creates the objects and waits for the pod" 0 jump-pod -n mendix -e demo-app --apply
check "... reports each object" '[ "$(grep -c " created$" "$work/out")" = 4 ]'
check "... the pod runs" '[ "$(kubectl -n mendix get pod mxpc-jump-demo-app -o jsonpath="{.status.phase}")" = Running ]'
check "... with its service account, image and role binding" \
  '[ "$(kubectl -n mendix get pod mxpc-jump-demo-app -o jsonpath="{.spec.serviceAccountName} {.spec.containers[0].image}")" = "mxpc-jump-demo-app docker.io/library/postgres:$major" ] && exists rolebinding mxpc-jump-demo-app'
version=$("$bin" --version | sed -n '1s/^mxpc-data-migration //p')
check "... and tells what to do next, with the package's real name" \
  'grep -q "kubectl -n mendix exec -i mxpc-jump-demo-app -- tar -xzf - -C /tmp < mxpc-data-migration-$version-linux-amd64.tar.gz" "$work/err" &&
   grep -q "exec mxpc-jump-demo-app -- /tmp/mxpc-data-migration-$version-linux-amd64/mxpc-data-migration backup -n mendix -e demo-app -f -" "$work/err" &&
   ! grep -q "VERSION\|ARCH" "$work/err"'
run "--apply again keeps them" 0 jump-pod -n mendix -e demo-app --apply
check "... the pod unchanged" 'grep -q "pod/mxpc-jump-demo-app unchanged" "$work/out"'
run "--apply with another image is refused while the pod exists" 1 jump-pod -n mendix -e demo-app --apply --image example/other:1
check "... saying to delete it first" 'grep -q "exists already with image" "$work/err" && grep -q -- "--delete" "$work/err"'

# a pod that will never run: the reason the cluster gives, at once (not after --timeout)
SECONDS=0
run "--apply with an image the cluster cannot pull fails at once" 1 jump-pod -n mendix -e demo-app --name mxpc-nopull \
  --image registry.invalid/postgres:15 --apply --timeout 120
check "... within seconds" '[ "$SECONDS" -lt 30 ]'
check "... with the kubelet's reason" 'grep -Eq "pod mxpc-nopull will not start: (ErrImagePull|ImagePullBackOff)" "$work/err"'
check "... and what to do" 'grep -q "cannot pull registry.invalid/postgres:15" "$work/err" && grep -q -- "--image" "$work/err"'
"$bin" -q jump-pod -n mendix -e demo-app --name mxpc-nopull --delete >/dev/null 2>&1
# an existing pod of the same name and image is waited for; make ones that cannot run
pod_yaml() {  # NAME EXTRA-SPEC-LINES EXTRA-CONTAINER-LINES
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: mendix\nspec:\n%b  containers:\n  - name: c\n    image: example/pg:15\n%b' "$1" "$2" "$3"
}
pod_yaml mxpc-nonode '  nodeSelector:\n    kubernetes.io/arch: s390x\n' '' | kubectl apply -f - >/dev/null
SECONDS=0
run "--apply waiting for an unschedulable pod fails at once" 1 jump-pod -n mendix -e demo-app --name mxpc-nonode \
  --image example/pg:15 --apply --timeout 120
check "... within seconds, with the scheduler's condition" \
  '[ "$SECONDS" -lt 30 ] && grep -q "pod mxpc-nonode cannot be scheduled: 0/1 nodes are available" "$work/err"'
"$bin" -q jump-pod -n mendix -e demo-app --name mxpc-nonode --delete >/dev/null 2>&1
pod_yaml mxpc-noconf '' '    env:\n    - name: X\n      valueFrom:\n        secretKeyRef:\n          name: no-such-secret\n          key: x\n' |
  kubectl apply -f - >/dev/null
run "--apply waiting for a pod whose configuration the node refuses fails at once" 1 jump-pod -n mendix -e demo-app \
  --name mxpc-noconf --image example/pg:15 --apply --timeout 120
check "... with the kubelet's reason" \
  'grep -q "pod mxpc-noconf will not start: CreateContainerConfigError: secret \"no-such-secret\" not found" "$work/err"'
"$bin" -q jump-pod -n mendix -e demo-app --name mxpc-noconf --delete >/dev/null 2>&1

# AWS IRSA: --role-arn annotates the ServiceAccount; a pod made without the role is refused
run "--role-arn: the ServiceAccount names the IAM role" 0 jump-pod -n mendix -e demo-app --name mxpc-irsa \
  --role-arn arn:aws:iam::123456789012:role/mxpc-backup
check "... in the annotation EKS reads" 'grep -q "^    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/mxpc-backup$" "$work/out"'
kubectl apply --dry-run=server -f "$work/out" >"$work/kubectl.out" 2>&1
check "... and kubectl apply --dry-run=server accepts it" '[ $? = 0 ] && [ "$(grep -c "created (server dry run)" "$work/kubectl.out")" = 4 ]'
run "--role-arn that is no IAM role ARN" 2 jump-pod -n mendix -e demo-app --role-arn arn:aws:s3:::bucket
check "... says what is expected" 'grep -q "arn:aws:iam::ACCOUNT:role/NAME" "$work/err"'
run "--apply --role-arn while the pod exists without the role is refused" 1 jump-pod -n mendix -e demo-app --apply \
  --role-arn arn:aws:iam::123456789012:role/mxpc-backup
check "... saying to create the pod again" 'grep -q "exists already without the role" "$work/err" && grep -q -- "--delete" "$work/err"'

# Azure Workload Identity: --azure-client-id annotates the jump pod's ServiceAccount and labels the
# pod; the emulator's webhook then sets the pod up as AKS's does (AZURE_* and the token volume)
wi_id=0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9
img=(--image docker.io/library/postgres:15)
pod_json() { kubectl -n mendix get pod "$1" -o json; }
# "NAME=VALUE" of the pod's AZURE_* variables and its token volume's audience, one a line
wi_env() {
  pod_json "$1" | python3 -c '
import json, sys
p = json.load(sys.stdin)
for e in p["spec"]["containers"][0].get("env", []):
    if e["name"].startswith("AZURE_"): print(e["name"] + "=" + e["value"])
for v in p["spec"].get("volumes", []):
    for src in v.get("projected", {}).get("sources", []):
        print("audience=" + src["serviceAccountToken"]["audience"])'
}
run "--azure-client-id: the ServiceAccount names the managed identity" 0 jump-pod -n mendix -e demo-azure-wi \
  --name mxpc-wi --azure-client-id "$wi_id" "${img[@]}"
check "... in the annotation the webhook reads" \
  'grep -q "^    azure.workload.identity/client-id: $wi_id$" "$work/out" && grep -q "^    azure.workload.identity/use: \"true\"$" "$work/out"'
kubectl apply --dry-run=server -f "$work/out" >"$work/kubectl.out" 2>&1
check "... and kubectl apply --dry-run=server accepts it" '[ $? = 0 ] && [ "$(grep -c "created (server dry run)" "$work/kubectl.out")" = 4 ]'
run "--apply --azure-client-id" 0 jump-pod -n mendix -e demo-azure-wi --name mxpc-wi --azure-client-id "$wi_id" \
  "${img[@]}" --apply
wi_env mxpc-wi >"$work/wi.env"
check "... the pod gets the identity from the webhook (AZURE_CLIENT_ID, AZURE_TENANT_ID, the token file, the authority)" \
  'grep -qx "AZURE_CLIENT_ID=$wi_id" "$work/wi.env" && grep -qx "AZURE_TENANT_ID=$MXPC_AZURE_TENANT_ID" "$work/wi.env" &&
   grep -qx "AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token" "$work/wi.env" &&
   grep -qx "AZURE_AUTHORITY_HOST=$MXPC_AZURE_AUTHORITY_HOST" "$work/wi.env" && grep -qx "audience=api://AzureADTokenExchange" "$work/wi.env"'
run "--apply with another client id while the pod exists is refused" 1 jump-pod -n mendix -e demo-azure-wi \
  --name mxpc-wi --azure-client-id 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0fa "${img[@]}" --apply
check "... saying to create the pod again" 'grep -q "exists already without the managed identity" "$work/err" && grep -q -- "--delete" "$work/err"'
"$bin" -q jump-pod -n mendix -e demo-azure-wi --name mxpc-wi --delete >/dev/null 2>&1
check "... --delete removes its ServiceAccount" '! kubectl -n mendix get serviceaccount mxpc-wi >/dev/null 2>&1'
run "a pod without the label gets no identity" 0 jump-pod -n mendix -e demo-app --name mxpc-nowi "${img[@]}" --apply
check "... (the webhook leaves it alone)" '[ -z "$(wi_env mxpc-nowi)" ]'
"$bin" -q jump-pod -n mendix -e demo-app --name mxpc-nowi --delete >/dev/null 2>&1
# the environment's own ServiceAccount (annotated with its managed identity): --service-account
run "--service-account demo-azure-wi --workload-identity --apply" 0 jump-pod -n mendix -e demo-azure-wi \
  --name mxpc-envsa --service-account demo-azure-wi --workload-identity "${img[@]}" --apply
wi_env mxpc-envsa >"$work/wi.env"
check "... runs the pod as the environment's identity" \
  '[ "$(pod_json mxpc-envsa | python3 -c "import json,sys; print(json.load(sys.stdin)[\"spec\"][\"serviceAccountName\"])")" = demo-azure-wi ] &&
   grep -qx "AZURE_CLIENT_ID=$MXPC_AZURE_WI_CLIENT_ID" "$work/wi.env" || { cat "$work/wi.env"; false; }'
check "... binds the Role to that ServiceAccount and makes none of its own" \
  '[ "$(kubectl -n mendix get rolebinding mxpc-envsa -o jsonpath="{.subjects[0].name}")" = demo-azure-wi ] &&
   ! kubectl -n mendix get serviceaccount mxpc-envsa >/dev/null 2>&1'
"$bin" -q jump-pod -n mendix -e demo-azure-wi --name mxpc-envsa --service-account demo-azure-wi --delete >/dev/null 2>&1
check "... and --delete leaves the environment's ServiceAccount" \
  'kubectl -n mendix get serviceaccount demo-azure-wi >/dev/null 2>&1 && ! kubectl -n mendix get rolebinding mxpc-envsa >/dev/null 2>&1'
echo '{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "mxpc-plain-sa", "namespace": "mendix"}}' |
  kubectl apply -f - >/dev/null
run "--service-account without the client-id annotation and --workload-identity is refused" 1 jump-pod -n mendix \
  -e demo-azure-wi --name mxpc-envsa --service-account mxpc-plain-sa --workload-identity "${img[@]}" --apply
check "... naming the annotation and how to add it" \
  'grep -q "ServiceAccount mendix/mxpc-plain-sa has no annotation azure.workload.identity/client-id" "$work/err" &&
   grep -q "kubectl -n mendix annotate serviceaccount mxpc-plain-sa" "$work/err"'
check "... before making anything" '! kubectl -n mendix get role mxpc-envsa >/dev/null 2>&1'
kubectl -n mendix delete serviceaccount mxpc-plain-sa >/dev/null 2>&1
run "--service-account that does not exist is refused" 1 jump-pod -n mendix -e demo-azure-wi --name mxpc-envsa \
  --service-account no-such-sa "${img[@]}" --apply
check "... saying so" 'grep -q "ServiceAccount mendix/no-such-sa does not exist" "$work/err"'
run "--service-account with --azure-client-id is a usage error" 2 jump-pod -n mendix -e demo-azure-wi \
  --service-account demo-azure-wi --azure-client-id "$wi_id"

# the service account's token is enough for a backup, and exactly that
as_sa mxpc-jump-demo-app backup -n mendix -e demo-app -f - >"$work/sa.tar.gz" 2>"$work/err"
check "the pod's service account backs up demo-app (-f -, in-cluster)" '[ $? = 0 ] && "$bin" verify "$work/sa.tar.gz" >/dev/null 2>&1'
as_sa mxpc-jump-demo-app restore -n mendix -e demo-app -f "$work/sa.tar.gz" --stop-app >"$work/out" 2>"$work/err"
check "... but may not restore --stop-app with the backup Role" \
  '[ $? = 1 ] && grep -Eq "cannot (list pods|patch mendixapps)" "$work/err"'
check "... and the app still runs" '[ "$(kubectl -n mendix get mendixapp demo-app -o jsonpath="{.spec.replicas}")" = 1 ]'
as_sa mxpc-jump-demo-app restore -n mendix -e demo-copy -f "$work/sa.tar.gz" --stop-app >"$work/out" 2>"$work/err"
check "... nor touch another environment: its Role names demo-app's objects" \
  '[ $? = 1 ] && grep -q "cannot get mendixapps.privatecloud.mendix.com \"demo-copy\"" "$work/err"'
check "... which still runs" '[ "$(kubectl -n mendix get mendixapp demo-copy -o jsonpath="{.spec.replicas}")" = 1 ]'
# the Role names its objects: another environment's Secrets and MendixApp are out of reach
cat >"$work/get.lua" <<'LUA'
local client = assert(require("mxpc.k8s").connect {})
local obj, err
if arg[2] then obj, err = client:get(arg[1], arg[2], "mendix") else obj, err = client:list(arg[1], { namespace = "mendix" }) end
io.stdout:write(obj and "read\n" or ("refused: " .. err.message .. "\n"))
LUA
sa_get() { as_sa mxpc-jump-demo-app run "$work/get.lua" "$@" 2>>"$work/err"; }
check "... it reads demo-app's credential Secret" '[ "$(sa_get secrets demo-app-database-credentials)" = read ]'
check "... but not demo-copy's" 'sa_get secrets demo-copy-database-credentials | grep -q "^refused: .*forbidden"'
check "... nor demo-copy's MendixApp" 'sa_get mendixapps demo-copy | grep -q "^refused: .*forbidden"'
check "... nor list the Secrets" 'sa_get secrets | grep -q "^refused: .*forbidden"'

run "--apply --stop-app for demo-copy" 0 jump-pod -n mendix -e demo-copy --apply --stop-app
as_sa mxpc-jump-demo-copy restore -n mendix -e demo-copy -f - --stop-app <"$work/sa.tar.gz" >"$work/out" 2>"$work/err"
check "its service account restores --stop-app (-f -, in-cluster)" '[ $? = 0 ]'
"$bin" run "$src/tests/e2e/proof.lua" "$seed_json" demo-app demo-copy >"$work/proof" 2>&1
check "... and demo-copy holds demo-app's data" '[ $? = 0 ]'

run "--delete removes them" 0 jump-pod -n mendix -e demo-app --delete
check "... each one" '[ "$(grep -c " deleted$" "$work/out")" = 4 ]'
check "... the service account, role and binding are gone" '! exists serviceaccount mxpc-jump-demo-app && ! exists role mxpc-jump-demo-app && ! exists rolebinding mxpc-jump-demo-app'
for _ in $(seq 1 100); do exists pod mxpc-jump-demo-app || break; sleep 0.1; done
check "... and the pod goes" '! exists pod mxpc-jump-demo-app'
as_sa mxpc-jump-demo-app backup -n mendix -e demo-app -f "$work/x.tar.gz" >"$work/out" 2>"$work/err"
check "... and its token no longer works" '[ $? = 1 ] && grep -q "Unauthorized" "$work/err"'
run "--delete again: nothing left to delete" 0 jump-pod -n mendix -e demo-app --delete
check "... and says so" '[ "$(grep -c " not found$" "$work/out")" = 4 ]'

finish
