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
# the rules of the Role in a JSON List on stdin, one "group resource verb" per line
rules() {
  python3 -c '
import json, sys
for o in json.load(sys.stdin)["items"]:
    if o["kind"] == "Role":
        for r in o["rules"]:
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    for v in r["verbs"]:
                        print(g or "core", res, v)' | sort | tr '\n' ' '
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
check "... the image of the server's major version ($major)" 'grep -q "image: docker.io/bitnami/postgresql:$major$" "$work/backup.yaml"'
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
check "backup's Role: get secrets, mendixapps, storageinstances; the secret store's SecretProviderClass, ServiceAccount and token" \
  '[ "$(rules <"$work/.json")" = "core secrets get core serviceaccounts get core serviceaccounts/token create privatecloud.mendix.com mendixapps get privatecloud.mendix.com storageinstances get secrets-store.csi.x-k8s.io secretproviderclasses get " ]'
check "... those three for the environment's name only" \
  '[ "$(python3 -c "import json,sys; print(sum(r.get(\"resourceNames\") == [\"demo-app\"] for o in json.load(sys.stdin)[\"items\"] if o[\"kind\"] == \"Role\" for r in o[\"rules\"]))" <"$work/.json")" = 3 ]'
check "--restore adds list on pods" \
  '[ "$(rules <"$work/--restore.json")" = "core pods list core secrets get core serviceaccounts get core serviceaccounts/token create privatecloud.mendix.com mendixapps get privatecloud.mendix.com storageinstances get secrets-store.csi.x-k8s.io secretproviderclasses get " ]'
check "--stop-app adds patch on mendixapps" \
  '[ "$(rules <"$work/--stop-app.json")" = "core pods list core secrets get core serviceaccounts get core serviceaccounts/token create privatecloud.mendix.com mendixapps get privatecloud.mendix.com mendixapps patch privatecloud.mendix.com storageinstances get secrets-store.csi.x-k8s.io secretproviderclasses get " ]'

# the server cannot be asked (this user may read nothing): --pg-version, or a clear error
run "without a reachable server nor --pg-version: exit 1" 1 jump-pod -n mendix -e demo-app --kubeconfig "$MXPC_KUBECONFIG_NOBODY"
check "... saying to give --pg-version" 'grep -q "cannot learn the database server.s version" "$work/err" && grep -q -- "--pg-version" "$work/err"'
run "with --pg-version" 0 jump-pod -n mendix -e demo-app --kubeconfig "$MXPC_KUBECONFIG_NOBODY" --pg-version 13
check "... its image" 'grep -q "image: docker.io/bitnami/postgresql:13$" "$work/out"'
run "--pg-version that differs from the server's" 0 jump-pod -n mendix -e demo-app --pg-version 12
check "... the server's version wins, with a warning" 'grep -q "postgresql:$major$" "$work/out" && grep -q "pg-version 12 ignored" "$work/err"'
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
  '[ "$(kubectl -n mendix get pod mxpc-jump-demo-app -o jsonpath="{.spec.serviceAccountName} {.spec.containers[0].image}")" = "mxpc-jump-demo-app docker.io/bitnami/postgresql:$major" ] && exists rolebinding mxpc-jump-demo-app'
check "... and tells what to do next" 'grep -q "kubectl -n mendix exec -i mxpc-jump-demo-app -- tar -xzf - -C /tmp" "$work/err"'
run "--apply again keeps them" 0 jump-pod -n mendix -e demo-app --apply
check "... the pod unchanged" 'grep -q "pod/mxpc-jump-demo-app unchanged" "$work/out"'
run "--apply with another image is refused while the pod exists" 1 jump-pod -n mendix -e demo-app --apply --image example/other:1
check "... saying to delete it first" 'grep -q "exists already with image" "$work/err" && grep -q -- "--delete" "$work/err"'

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

# the service account's token is enough for a backup, and exactly that
as_sa mxpc-jump-demo-app backup -n mendix -e demo-app -f - >"$work/sa.tar.gz" 2>"$work/err"
check "the pod's service account backs up demo-app (-f -, in-cluster)" '[ $? = 0 ] && "$bin" verify "$work/sa.tar.gz" >/dev/null 2>&1'
as_sa mxpc-jump-demo-app restore -n mendix -e demo-copy -f "$work/sa.tar.gz" --stop-app >"$work/out" 2>"$work/err"
check "... but may not restore --stop-app with the backup Role" '[ $? = 1 ] && grep -q "cannot patch mendixapps" "$work/err"'
check "... and the app still runs" '[ "$(kubectl -n mendix get mendixapp demo-copy -o jsonpath="{.spec.replicas}")" = 1 ]'

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
