#!/bin/bash
# The Kubernetes API emulator seen through the real kubectl: discovery, get, list with
# label selectors, create/delete, merge and JSON patches, RBAC (403), bad tokens (401),
# client certificates, NotFound, and pods following a MendixApp's replicas.
# Creates its objects under names starting with "stacktest-" and removes them.
. "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
require_stack
need_cmd kubectl kubernetes-client

WORK=$(mktemp -d)
export KUBECACHEDIR=$WORK/cache   # never reuse discovery cached for another stack
NS=stacktest-$$
APP=stacktest-app-$$
cleanup() {
  kubectl --kubeconfig "$MXPC_KUBECONFIG" delete namespace "$NS" --wait=false >/dev/null 2>&1
  kubectl --kubeconfig "$MXPC_KUBECONFIG" -n mendix delete mendixapp "$APP" \
    --wait=false >/dev/null 2>&1
  kubectl --kubeconfig "$MXPC_KUBECONFIG" -n mendix delete secret "$APP-secret" \
    --wait=false >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

admin() { kubectl --kubeconfig "$MXPC_KUBECONFIG" --request-timeout=10s "$@" </dev/null; }
restricted() { kubectl --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED" --request-timeout=10s "$@" </dev/null; }
scaler() { kubectl --kubeconfig "$MXPC_KUBECONFIG_SCALE" --request-timeout=10s "$@" </dev/null; }
nobody() { kubectl --kubeconfig "$MXPC_KUBECONFIG_NOBODY" --request-timeout=10s "$@" </dev/null; }

# count_pods NS APP: pods of APP that are not terminating.
count_pods() {
  admin -n "$1" get pods -l "privatecloud.mendix.com/app=$2" \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\n"}{end}' |
    awk 'NF == 1' | wc -l
}
# all_pods NS APP: every pod of APP, terminating ones included.
all_pods() {
  admin -n "$1" get pods -l "privatecloud.mendix.com/app=$2" -o name | wc -l
}
# wait_until SECONDS COMMAND...: poll every 0.2 s.
wait_until() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do [ $SECONDS -ge "$end" ] && return 1; sleep 0.2; done
}
pods_are() { [ "$(count_pods "$1" "$2")" = "$3" ] && [ "$(all_pods "$1" "$2")" = "$3" ]; }

# ---- the server is reachable: without it everything below is meaningless
run curl -sf --max-time 5 --cacert "$MXPC_K8S_CA" "$MXPC_K8S_URL/readyz"
expect "the API server at $MXPC_K8S_URL answers" [ "$OUT" = ok ]
succeeded || finish
run admin version
expect "kubectl reaches the API server and reads its version" grep -q "Server Version.*v1\.32" <<<"$OUT"
succeeded || finish

# ---- discovery
run admin api-resources
expect "api-resources lists mendixapps" has "mendixapps"
expect "api-resources lists storageinstances in privatecloud.mendix.com/v1alpha1" \
  grep -q "storageinstances.*privatecloud.mendix.com/v1alpha1.*true.*StorageInstance" <<<"$OUT"

# ---- create (typed protobuf body and JSON manifests)
run admin create namespace "$NS"
expect "create namespace (kubectl sends protobuf)" succeeded
cat >"$WORK/objects.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: alpha
  namespace: $NS
  labels: {tier: a, app: stacktest}
data:
  password: c2VjcmV0LWE=
---
apiVersion: v1
kind: Secret
metadata:
  name: beta
  namespace: $NS
  labels: {tier: b, app: stacktest}
stringData:
  password: secret-b
---
apiVersion: v1
kind: Secret
metadata:
  name: gamma
  namespace: $NS
data: {}
---
apiVersion: privatecloud.mendix.com/v1alpha1
kind: MendixApp
metadata:
  name: app1
  namespace: $NS
spec:
  replicas: 1
EOF
run admin create -f "$WORK/objects.yaml"
expect "create -f with secrets and a MendixApp" succeeded
run admin -n "$NS" create secret generic delta --from-literal=user=admin
expect "create secret generic (protobuf body)" succeeded

# ---- get
run admin -n "$NS" get secret alpha -o jsonpath='{.data.password}'
expect "get secret returns its data" [ "$(base64 -d <<<"$OUT" 2>/dev/null)" = secret-a ]
run admin -n "$NS" get secret beta -o jsonpath='{.data.password}'
expect "stringData is stored base64 in data" [ "$(base64 -d <<<"$OUT" 2>/dev/null)" = secret-b ]
run admin -n "$NS" get secret delta -o jsonpath='{.type}'
expect "a generic secret gets type Opaque" [ "$OUT" = Opaque ]
run admin -n "$NS" get secrets
expect "get prints a table with NAME TYPE DATA AGE" grep -q "^NAME *TYPE *DATA *AGE" <<<"$OUT"
expect "the table has a row per secret" [ "$(grep -c Opaque <<<"$OUT")" = 4 ]
run admin -n "$NS" get mendixapp app1 -o yaml
expect "get a MendixApp as YAML" has "replicas: 1"

# ---- list with label selectors
run admin -n "$NS" get secrets -l tier=a -o name
expect "list -l tier=a selects only alpha" [ "$OUT" = secret/alpha ]
run admin -n "$NS" get secrets -l 'tier in (a,b)' -o name
expect "list -l 'tier in (a,b)' selects alpha and beta" [ "$(echo $OUT)" = "secret/alpha secret/beta" ]
run admin -n "$NS" get secrets -l 'tier!=a' -o name
expect "list -l tier!=a also selects secrets without the label" \
  [ "$(echo $OUT)" = "secret/beta secret/delta secret/gamma" ]
run admin -n "$NS" get secrets -l '!tier' -o name
expect "list -l '!tier' selects unlabelled secrets" [ "$(echo $OUT)" = "secret/delta secret/gamma" ]
run admin -n "$NS" get secrets -l 'tier=a,app=stacktest' -o name
expect "list with two requirements" [ "$OUT" = secret/alpha ]
run admin get secrets -A -l app=stacktest -o name
expect "list across all namespaces with a selector" [ "$(echo $OUT)" = "secret/alpha secret/beta" ]
run admin -n "$NS" get secrets --field-selector metadata.name=beta -o name
expect "list with a field selector" [ "$OUT" = secret/beta ]
run admin -n "$NS" get secrets -l 'tier in (a' -o name
expect "an invalid selector is a 400 BadRequest" has "(BadRequest)"

# ---- patch
run admin -n "$NS" patch secret alpha --type=merge -p '{"metadata":{"labels":{"tier":"c"}}}'
expect "merge patch on a secret" succeeded
run admin -n "$NS" get secrets -l tier=c -o name
expect "the merge patch changed the label" [ "$OUT" = secret/alpha ]
run admin -n "$NS" patch secret alpha -p '{"metadata":{"labels":{"tier":null}}}'
expect "strategic merge patch on a built-in type (null removes a key)" succeeded
run admin -n "$NS" get secret alpha -o jsonpath='{.metadata.labels}'
expect "the label is gone" lacks "tier"
run admin -n "$NS" patch mendixapp app1 --type=json \
  -p '[{"op":"test","path":"/spec/replicas","value":1},{"op":"replace","path":"/spec/replicas","value":2}]'
expect "JSON patch (test + replace) on a MendixApp" succeeded
run admin -n "$NS" get mendixapp app1 -o jsonpath='{.spec.replicas} {.metadata.generation}'
expect "replicas is 2 and generation went up" [ "$OUT" = "2 2" ]
run admin -n "$NS" patch mendixapp app1 --type=json -p '[{"op":"test","path":"/spec/replicas","value":7}]'
# kubectl >= 1.2x prints the server's reason after "The request is invalid", 1.20 does not.
expect "a failing JSON patch test is refused (422)" has "The request is invalid"
run admin -n "$NS" patch mendixapp app1 -p '{"spec":{"replicas":3}}'
expect "strategic merge patch on a custom resource is refused like a real server (415)" \
  grep -qE "application/strategic-merge-patch\+json is not supported|\(UnsupportedMediaType\)" <<<"$OUT"
run admin -n "$NS" patch mendixapp app1 --type=merge -p '{"spec":{"replicas":"two"}}'
expect "a non-integer replicas is refused (422 Invalid)" \
  has 'The MendixApp "app1" is invalid: spec.replicas: Invalid value: "two"'

# ---- pods follow spec.replicas after a delay
expect "pods appear for replicas 2" wait_until 10 pods_are "$NS" app1 2
run admin -n "$NS" get pods -l privatecloud.mendix.com/app=app1
expect "pods print READY 1/1 Running" grep -q "1/1 *Running" <<<"$OUT"
run admin -n "$NS" patch mendixapp app1 --type=merge -p '{"spec":{"replicas":0}}'
expect "scale to 0 with a merge patch" succeeded
expect "right after the patch the pods are still there (the operator is not instant)" \
  [ "$(all_pods "$NS" app1)" = 2 ]
expect "the pods go Terminating" wait_until 10 eval '[ "$(count_pods "$NS" app1)" = 0 ]'
expect "then they disappear" wait_until 10 pods_are "$NS" app1 0
run admin -n "$NS" patch mendixapp app1 --type=merge -p '{"spec":{"replicas":1}}'
expect "scale back to 1: a pod appears" wait_until 10 pods_are "$NS" app1 1
pod=$(admin -n "$NS" get pods -l privatecloud.mendix.com/app=app1 -o name)
run admin -n "$NS" delete "$pod" --wait=false
expect "delete a pod" succeeded
run admin -n "$NS" wait --for=delete "$pod" --timeout=15s
expect "kubectl wait --for=delete sees it go (watch)" succeeded
expect "the operator replaces a deleted pod" wait_until 10 pods_are "$NS" app1 1

# ---- RBAC: the restricted user has exactly get on secrets, mendixapps, storageinstances in mendix
admin -n mendix get namespace mendix >/dev/null 2>&1 || admin create namespace mendix >/dev/null 2>&1
sed -e "s/name: app1/name: $APP/" -e "s/namespace: $NS/namespace: mendix/" <<EOF >"$WORK/app.yaml"
apiVersion: privatecloud.mendix.com/v1alpha1
kind: MendixApp
metadata:
  name: app1
  namespace: $NS
spec:
  replicas: 1
EOF
admin create -f "$WORK/app.yaml" >/dev/null
admin -n mendix create secret generic "$APP-secret" --from-literal=k=v >/dev/null
run restricted -n mendix get secret "$APP-secret" -o jsonpath='{.data.k}'
expect "restricted user: get secret in mendix" [ "$OUT" = dg== ]
run restricted -n mendix get mendixapp "$APP" -o name
expect "restricted user: get mendixapp in mendix" succeeded
run restricted -n mendix get secrets
expect "restricted user: list secrets is Forbidden" has 'Error from server (Forbidden): secrets is forbidden: User "mendix-backup-restore" cannot list resource "secrets" in API group "" in the namespace "mendix"'
run restricted -n mendix patch mendixapp "$APP" --type=merge -p '{"spec":{"replicas":0}}'
expect "restricted user: patch mendixapp is Forbidden" \
  has "cannot patch resource \"mendixapps\" in API group \"privatecloud.mendix.com\" in the namespace \"mendix\""
run restricted -n "$NS" get secret alpha
expect "restricted user: get secret in another namespace is Forbidden" has "(Forbidden)"
run restricted -n mendix get secret stacktest-no-such-secret
expect "restricted user: a missing secret is NotFound" \
  has 'Error from server (NotFound): secrets "stacktest-no-such-secret" not found'
run restricted -n mendix get mendixapp stacktest-no-such-app
expect "a missing MendixApp is NotFound with the qualified name" \
  has 'mendixapps.privatecloud.mendix.com "stacktest-no-such-app" not found'
run restricted -n mendix auth can-i get secrets
expect "auth can-i get secrets: yes" [ "$OUT" = yes ]
run restricted -n mendix auth can-i list pods
expect "auth can-i list pods: no" [ "$OUT" = no ]
# what a restore's --dry-run asks (SelfSubjectAccessReview), answered from the RBAC rules
run restricted -n mendix auth can-i get mendixapps.privatecloud.mendix.com
expect "auth can-i get mendixapps: yes" [ "$OUT" = yes ]
run restricted -n mendix auth can-i get storageinstances.privatecloud.mendix.com
expect "auth can-i get storageinstances: yes" [ "$OUT" = yes ]
run restricted -n mendix auth can-i patch mendixapps.privatecloud.mendix.com
expect "restricted: auth can-i patch mendixapps: no" [ "$OUT" = no ]
run restricted -n mendix auth can-i get "secret/$APP-secret"
expect "auth can-i get a named secret: yes" [ "$OUT" = yes ]
run restricted -n kube-system auth can-i get secrets
expect "restricted: auth can-i get secrets in another namespace: no" [ "$OUT" = no ]
run scaler -n mendix auth can-i patch mendixapps.privatecloud.mendix.com
expect "scaler: auth can-i patch mendixapps: yes" [ "$OUT" = yes ]
run scaler -n mendix auth can-i list pods
expect "scaler: auth can-i list pods: yes" [ "$OUT" = yes ]
run scaler -n mendix auth can-i delete mendixapps.privatecloud.mendix.com
expect "scaler: auth can-i delete mendixapps: no" [ "$OUT" = no ]
run scaler -n mendix patch mendixapp "$APP" --type=merge -p '{"spec":{"replicas":0}}'
expect "scale user: patch mendixapp in mendix" succeeded
run scaler -n mendix get pods -l "privatecloud.mendix.com/app=$APP"
expect "scale user: list pods in mendix" succeeded
run scaler -n mendix delete mendixapp "$APP"
expect "scale user: delete mendixapp is Forbidden" has "(Forbidden)"
run nobody -n mendix get secret "$APP-secret"
expect "user without rights: get secret is Forbidden" \
  has 'secrets "'"$APP"'-secret" is forbidden: User "nobody" cannot get resource "secrets"'

# ---- authentication
run kubectl --server "$MXPC_K8S_URL" --certificate-authority "$MXPC_K8S_CA" \
  --token not-a-valid-token -n mendix get secrets </dev/null
expect "an unknown token is 401 Unauthorized" has "You must be logged in to the server (Unauthorized)"
run kubectl --server "$MXPC_K8S_URL" --certificate-authority "$MXPC_K8S_CA" \
  --token "$MXPC_K8S_ADMIN_TOKEN" -n "$NS" get secret beta -o name </dev/null
expect "a bearer token on the command line" [ "$OUT" = secret/beta ]
run kubectl --kubeconfig "$MXPC_KUBECONFIG_ADMIN_CERT" -n "$NS" get secret beta -o name </dev/null
expect "client-certificate authentication (admin)" [ "$OUT" = secret/beta ]
run kubectl --kubeconfig "$MXPC_KUBECONFIG_ADMIN_CERT" -n kube-system auth can-i delete secrets </dev/null
expect "the certificate's O is the group (system:masters may do anything)" [ "$OUT" = yes ]
run kubectl --kubeconfig "$MXPC_KUBECONFIG" --context mendix-backup-restore-cert -n mendix \
  get secret "$APP-secret" -o name </dev/null
expect "client certificate of the restricted user: get allowed" succeeded
run kubectl --kubeconfig "$MXPC_KUBECONFIG" --context mendix-backup-restore-cert -n mendix \
  get secrets </dev/null
expect "client certificate of the restricted user: list Forbidden" has "(Forbidden)"
run kubectl --server "$MXPC_K8S_URL" --token "$MXPC_K8S_ADMIN_TOKEN" -n mendix get secrets </dev/null
expect "the server certificate is not trusted without the CA" \
  has "x509: certificate signed by unknown authority"

# ---- delete
run admin -n "$NS" delete secret gamma
expect "delete a secret" succeeded
run admin -n "$NS" get secret gamma
expect "the deleted secret is NotFound" has "(NotFound)"
run admin delete namespace "$NS"
expect "delete the namespace" succeeded
run admin get namespace "$NS"
expect "the namespace is gone" has "(NotFound)"
run admin get secrets -A -l app=stacktest -o name
expect "its secrets went with it" [ -z "$OUT" ]

finish
