#!/usr/bin/env python3
"""The Kubernetes API emulator at the HTTP level: the exact shape of Status errors,
discovery documents, Tables, patches, optimistic concurrency, the status subresource,
paging, watch and client certificates. (test-k8s.sh covers the same through kubectl.)"""

import http.client
import json
import os
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stacklib import Checks, K8s, stack_env_or_fail  # noqa: E402

t = Checks()
env = stack_env_or_fail(t)
URL, CA = env["MXPC_K8S_URL"], env["MXPC_K8S_CA"]
NS = f"stacktest-api-{os.getpid()}"
MX = "/apis/privatecloud.mendix.com/v1alpha1"

admin = K8s(URL, CA, token=env["MXPC_K8S_ADMIN_TOKEN"])
restricted = K8s(URL, CA, token=env["MXPC_K8S_RESTRICTED_TOKEN"])
anonymous = K8s(URL, CA)
try:
    code, _ = anonymous.request("GET", "/readyz")
except OSError as e:
    t.abort(f"the API server at {URL} answers ({e})")
t.check("/readyz answers without credentials", code == 200)

# ---- the OIDC issuer (as an EKS API server): discovery, JWKS, the projected token
import oidc  # noqa: E402
code, disco = anonymous.request("GET", "/.well-known/openid-configuration")
t.check("OIDC discovery without credentials names the issuer and its JWKS",
        code == 200 and disco.get("issuer") == URL and disco.get("jwks_uri") == URL + "/openid/v1/jwks"
        and disco.get("id_token_signing_alg_values_supported") == ["RS256"], disco)
code, jwks = anonymous.request("GET", "/openid/v1/jwks")
key = (jwks.get("keys") or [{}])[0] if isinstance(jwks, dict) else {}
t.check("the JWKS holds one RSA key (n, e, kid, x5c)", code == 200 and key.get("kty") == "RSA" and
        key.get("alg") == "RS256" and key.get("n") and key.get("e") and key.get("kid") and key.get("x5c"),
        jwks)
with open(env["MXPC_IRSA_TOKEN_FILE"]) as f:
    projected = f.read().strip()
try:
    claims = oidc.verify(projected, jwks)
    why = ""
except ValueError as e:
    claims, why = {}, str(e)
t.check("the projected token is an RS256 JWT that verifies against the JWKS", claims, why)
t.check("... with iss, aud sts.amazonaws.com and the jump pod's service account as sub",
        claims.get("iss") == URL and claims.get("aud") == ["sts.amazonaws.com"] and
        claims.get("sub") == "system:serviceaccount:mendix:mendix-backup-restore", claims)
t.check("... valid for about a day", 86000 < claims.get("exp", 0) - claims.get("iat", 0) <= 86400, claims)
header, body, sig = projected.split(".")
forged = header + "." + oidc.b64u(json.dumps(dict(claims, sub="system:serviceaccount:x:y")).encode()) + "." + sig
try:
    oidc.verify(forged, jwks)
    forged_ok = True
except ValueError:
    forged_ok = False
t.check("a token with changed claims does not verify", not forged_ok)


def status_is(obj, code, reason, message=None, details=None):
    """A real metav1.Status: kind, apiVersion, status Failure, code, reason, message."""
    ok = isinstance(obj, dict) and obj.get("kind") == "Status" and \
        obj.get("apiVersion") == "v1" and obj.get("status") == "Failure" and \
        obj.get("code") == code and obj.get("reason") == reason and "metadata" in obj
    if message is not None:
        ok = ok and obj.get("message") == message
    if details is not None:
        ok = ok and obj.get("details") == details
    return ok


def secret(name, labels=None, **data):
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


# ---- authentication -------------------------------------------------------------
code, obj = anonymous.request("GET", "/api/v1/namespaces")
t.check("no credentials: 401 Status", code == 401 and
        status_is(obj, 401, "Unauthorized", "Unauthorized"), obj)
code, obj = K8s(URL, CA, token="bogus").request("GET", "/api")
t.check("unknown bearer token: 401 Status, even for discovery", code == 401 and
        status_is(obj, 401, "Unauthorized"), obj)
code, obj = anonymous.request("GET", "/version")
t.check("/version is public and says v1.32", code == 200 and obj.get("minor") == "32", obj)

cert_client = K8s(URL, CA, cert=env["MXPC_K8S_RESTRICTED_CERT"],
                  key=env["MXPC_K8S_RESTRICTED_KEY"])
code, obj = cert_client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                {"apiVersion": "authentication.k8s.io/v1",
                                 "kind": "SelfSubjectReview"})
t.check("client certificate: CN becomes the user", code == 201 and
        obj["status"]["userInfo"]["username"] == "mendix-backup-restore", obj)
try:   # a certificate from another CA is refused during the TLS handshake
    bad = K8s(URL, CA, cert=os.path.join(env["MXPC_STACK_DIR"], "tls", "pg-server.crt"),
              key=os.path.join(env["MXPC_STACK_DIR"], "tls", "pg-server.key"))
    code, obj = bad.request("GET", "/api")
    t.check("a client certificate from another CA is refused", False, f"got {code}")
except (ssl.SSLError, ConnectionError, OSError):
    t.check("a client certificate from another CA is refused", True)

# ---- discovery --------------------------------------------------------------------
code, obj = admin.request("GET", "/api")
t.check("/api: APIVersions with v1", obj.get("kind") == "APIVersions" and
        obj.get("versions") == ["v1"], obj)
code, obj = admin.request("GET", "/apis")
groups = {g["name"]: g for g in obj.get("groups", [])}
t.check("/apis: APIGroupList with privatecloud.mendix.com/v1alpha1 preferred",
        obj.get("kind") == "APIGroupList" and
        groups.get("privatecloud.mendix.com", {}).get("preferredVersion", {})
        .get("groupVersion") == "privatecloud.mendix.com/v1alpha1", obj)
code, obj = admin.request("GET", MX)
res = {r["name"]: r for r in obj.get("resources", [])}
t.check("group version lists mendixapps, storageinstances and their status subresources",
        set(res) == {"mendixapps", "mendixapps/status", "storageinstances",
                     "storageinstances/status"} and res["mendixapps"]["namespaced"] and
        res["mendixapps"]["kind"] == "MendixApp" and "patch" in res["mendixapps"]["verbs"],
        obj)
code, obj = admin.request("GET", "/api/v1")
names = {r["name"] for r in obj.get("resources", [])}
t.check("/api/v1 lists namespaces, secrets, pods", {"namespaces", "secrets", "pods"} <= names,
        names)
accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
          "application/json")
admin.conn = None
conn = http.client.HTTPSConnection(admin.host, admin.port, context=admin.context)
conn.request("GET", "/apis", headers={"Accept": accept,
                                      "Authorization": f"Bearer {env['MXPC_K8S_ADMIN_TOKEN']}"})
resp = conn.getresponse()
body = json.loads(resp.read())
conn.close()
t.check("aggregated discovery when asked for it (content type and kind)",
        resp.getheader("Content-Type", "").startswith(
            "application/json;g=apidiscovery.k8s.io;v=v2") and
        body.get("kind") == "APIGroupDiscoveryList", resp.getheader("Content-Type"))
code, obj = admin.request("GET", "/openapi/v3")
t.check("/openapi/v3 lists the group versions", code == 200 and
        "apis/privatecloud.mendix.com/v1alpha1" in obj.get("paths", {}), obj)
code, obj = admin.request("GET", "/no/such/path")
t.check("unknown path: 404 Status", code == 404 and status_is(
    obj, 404, "NotFound", "the server could not find the requested resource"), obj)

# ---- create, get, NotFound, AlreadyExists -----------------------------------------
code, obj = admin.request("POST", "/api/v1/namespaces",
                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
t.check("create a namespace: 201, phase Active", code == 201 and
        obj["status"]["phase"] == "Active", obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}-missing/secrets", secret("s"))
t.check("create in a missing namespace: 404 namespaces not found", code == 404 and
        status_is(obj, 404, "NotFound", f'namespaces "{NS}-missing" not found'), obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/secrets",
                          secret("one", {"tier": "a"}, k="dmFsdWU="))
meta = obj.get("metadata", {})
t.check("create a secret: uid, resourceVersion, creationTimestamp, type Opaque",
        code == 201 and meta.get("uid") and meta.get("resourceVersion") and
        meta.get("creationTimestamp") and obj.get("type") == "Opaque", obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/secrets", secret("one"))
t.check("create it again: 409 AlreadyExists", code == 409 and status_is(
    obj, 409, "AlreadyExists", 'secrets "one" already exists',
    {"name": "one", "kind": "secrets"}), obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/secrets", secret("bad", k="%%%"))
t.check("invalid base64 in data: 400", code == 400 and status_is(obj, 400, "BadRequest"), obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/secrets",
                          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
t.check("a Pod posted to secrets: 400", code == 400, obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/secrets",
                          dict(secret("x"), metadata={"name": "x", "namespace": "other"}))
t.check("namespace in the body differs from the URL: 400", code == 400, obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/secrets",
                          {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"generateName": "gen-"}})
t.check("generateName gives a name", code == 201 and
        obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9, obj)
code, obj = admin.request("GET", f"/api/v1/namespaces/{NS}/secrets/nope")
t.check("get a missing secret: 404 with details", code == 404 and status_is(
    obj, 404, "NotFound", 'secrets "nope" not found', {"name": "nope", "kind": "secrets"}), obj)
code, obj = admin.request("GET", f"{MX}/namespaces/{NS}/mendixapps/nope")
t.check("get a missing MendixApp: 404 with group in details", code == 404 and status_is(
    obj, 404, "NotFound", 'mendixapps.privatecloud.mendix.com "nope" not found',
    {"name": "nope", "group": "privatecloud.mendix.com", "kind": "mendixapps"}), obj)

# ---- RBAC ------------------------------------------------------------------------
code, obj = restricted.request("GET", "/api/v1/namespaces/mendix/secrets")
t.check("restricted list secrets: 403 with the API server's message", code == 403 and status_is(
    obj, 403, "Forbidden",
    'secrets is forbidden: User "mendix-backup-restore" cannot list resource "secrets" in '
    'API group "" in the namespace "mendix"', {"kind": "secrets"}), obj)
code, obj = restricted.request("PATCH", f"{MX}/namespaces/mendix/mendixapps/demo-app",
                               {"spec": {"replicas": 0}}, "application/merge-patch+json")
t.check("restricted patch mendixapp: 403 naming group and object", code == 403 and status_is(
    obj, 403, "Forbidden",
    'mendixapps.privatecloud.mendix.com "demo-app" is forbidden: User "mendix-backup-restore" '
    'cannot patch resource "mendixapps" in API group "privatecloud.mendix.com" in the '
    'namespace "mendix"'), obj)
code, obj = restricted.request("GET", "/api/v1/namespaces")
t.check("restricted list namespaces: 403 at the cluster scope", code == 403 and
        obj.get("message", "").endswith("at the cluster scope"), obj)
code, obj = restricted.request("GET", "/api/v1/namespaces/mendix/secrets/stacktest-nope")
t.check("restricted get of a missing secret it may read: 404 (authorised first)",
        code == 404, obj)
code, obj = restricted.request("GET", "/api")
t.check("discovery is open to every authenticated user", code == 200, obj)

# ---- tables -------------------------------------------------------------------------
admin.conn = None
code, obj = admin.request("GET", f"/api/v1/namespaces/{NS}/secrets",
                          accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
t.check("Table for a list: columns and one row per object", code == 200 and
        obj.get("kind") == "Table" and obj.get("apiVersion") == "meta.k8s.io/v1" and
        [c["name"] for c in obj["columnDefinitions"]] == ["Name", "Type", "Data", "Age"] and
        len(obj["rows"]) == 2 and obj["rows"][0]["object"]["kind"] == "PartialObjectMetadata",
        obj)

# ---- patches and concurrency -------------------------------------------------------
path = f"/api/v1/namespaces/{NS}/secrets/one"
code, obj = admin.request("PATCH", path, {"metadata": {"labels": {"tier": None, "x": "y"}}},
                          "application/merge-patch+json")
t.check("merge patch: null deletes, other keys merge", code == 200 and
        obj["metadata"]["labels"] == {"x": "y"}, obj)
rv = obj["metadata"]["resourceVersion"]
code, obj = admin.request("PATCH", path, [{"op": "add", "path": "/data/k2", "value": "djI="},
                                          {"op": "remove", "path": "/data/k"},
                                          {"op": "copy", "from": "/data/k2", "path": "/data/k3"}],
                          "application/json-patch+json")
t.check("JSON patch add/remove/copy", code == 200 and obj["data"] == {"k2": "djI=", "k3": "djI="},
        obj)
t.check("a write bumps resourceVersion", int(obj["metadata"]["resourceVersion"]) > int(rv))
code, obj = admin.request("PATCH", path, [{"op": "remove", "path": "/data/nope"}],
                          "application/json-patch+json")
t.check("JSON patch on a missing path: 422", code == 422 and status_is(obj, 422, "Invalid"), obj)
code, obj = admin.request("PATCH", path, [{"op": "frobnicate", "path": "/x"}],
                          "application/json-patch+json")
t.check("malformed JSON patch: 400", code == 400, obj)
code, obj = admin.request("PATCH", path, {"metadata": {"resourceVersion": rv}},
                          "application/merge-patch+json")
t.check("stale resourceVersion: 409 Conflict", code == 409 and status_is(
    obj, 409, "Conflict",
    'Operation cannot be fulfilled on secrets "one": the object has been modified; please '
    'apply your changes to the latest version and try again'), obj)
code, obj = admin.request("PATCH", path, b"<xml/>", "application/xml")
t.check("unknown patch type: 415", code == 415 and status_is(obj, 415, "UnsupportedMediaType"),
        obj)
code, current = admin.request("GET", path)
current["data"] = {"only": "b25seQ=="}
code, obj = admin.request("PUT", path, current)
t.check("update (PUT) replaces data", code == 200 and obj["data"] == {"only": "b25seQ=="}, obj)
code, obj = admin.request("PUT", path, current)
t.check("update with the old resourceVersion: 409", code == 409, obj)

# ---- custom resources: status subresource, validation ------------------------------
apps = f"{MX}/namespaces/{NS}/mendixapps"
code, obj = admin.request("POST", apps, {
    "apiVersion": "privatecloud.mendix.com/v1alpha1", "kind": "MendixApp",
    "metadata": {"name": "app"}, "spec": {"replicas": 0}, "status": {"ignored": True}})
t.check("create MendixApp: generation 1, status dropped (status subresource)",
        code == 201 and obj["metadata"]["generation"] == 1 and "status" not in obj, obj)
code, obj = admin.request("PATCH", apps + "/app/status", {"status": {"phase": "Stopped"}},
                          "application/merge-patch+json")
t.check("PATCH /status sets status", code == 200 and obj.get("status") == {"phase": "Stopped"},
        obj)
code, obj = admin.request("PATCH", apps + "/app", {"spec": {"replicas": 0},
                                                  "status": {"phase": "Hacked"}},
                          "application/merge-patch+json")
t.check("status in a main-resource patch is ignored", obj.get("status") == {"phase": "Stopped"},
        obj)
code, obj = admin.request("PATCH", apps + "/app", {"spec": {"replicas": -1}},
                          "application/merge-patch+json")
t.check("replicas -1: 422 Invalid naming spec.replicas", code == 422 and
        obj["details"]["causes"][0]["field"] == "spec.replicas", obj)
code, obj = admin.request("PATCH", apps + "/app", {"spec": {"replicas": 1}},
                          "application/strategic-merge-patch+json")
t.check("strategic merge patch on a custom resource: 415", code == 415, obj)

# ---- list: selectors, paging -------------------------------------------------------
for i in range(5):
    admin.request("POST", f"/api/v1/namespaces/{NS}/secrets",
                  secret(f"page-{i}", {"page": "yes", "n": str(i)}))
base = f"/api/v1/namespaces/{NS}/secrets?labelSelector=page%3Dyes"
code, obj = admin.request("GET", base + "&limit=2")
seen = [i["metadata"]["name"] for i in obj.get("items", [])]
pages = 1
while obj.get("metadata", {}).get("continue"):
    code, obj = admin.request("GET", base + "&limit=2&continue=" + obj["metadata"]["continue"])
    seen += [i["metadata"]["name"] for i in obj["items"]]
    pages += 1
t.check("paging with limit and continue returns every item once",
        seen == [f"page-{i}" for i in range(5)] and pages == 3, seen)
code, obj = admin.request("GET", base + ",n%20notin%20(0,1,2)")
t.check("set-based selector notin", [i["metadata"]["name"] for i in obj["items"]] ==
        ["page-3", "page-4"], obj)
t.check("items of a core list carry no kind (like the real server)",
        "kind" not in obj["items"][0] and obj["kind"] == "SecretList", obj)
code, obj = admin.request("GET", f"/api/v1/namespaces/{NS}/secrets?fieldSelector=spec.x%3Dy")
t.check("unsupported field selector: 400", code == 400, obj)
code, obj = admin.request("GET", f"/api/v1/namespaces/{NS}/secrets?labelSelector=a%3D%3D%3D")
t.check("invalid label selector: 400", code == 400, obj)

# ---- watch ------------------------------------------------------------------------------
code, obj = admin.request("GET", f"/api/v1/namespaces/{NS}/secrets")
rv = obj["metadata"]["resourceVersion"]
conn = http.client.HTTPSConnection(admin.host, admin.port, context=admin.context, timeout=10)
conn.request("GET", f"/api/v1/namespaces/{NS}/secrets?watch=true&resourceVersion={rv}"
                    "&timeoutSeconds=5",
             headers={"Authorization": f"Bearer {env['MXPC_K8S_ADMIN_TOKEN']}"})
resp = conn.getresponse()
admin.request("POST", f"/api/v1/namespaces/{NS}/secrets", secret("watched"))
admin.request("DELETE", f"/api/v1/namespaces/{NS}/secrets/watched")
events = []
try:
    while len(events) < 2:
        line = resp.fp.readline()   # chunked: size line, JSON line, empty line
        if not line:
            break
        if line.strip().startswith(b"{"):
            events.append(json.loads(line))
except (socket.timeout, ValueError):
    pass
conn.close()
t.check("watch from a resourceVersion streams ADDED then DELETED",
        [(e["type"], e["object"]["metadata"]["name"]) for e in events] ==
        [("ADDED", "watched"), ("DELETED", "watched")], events)

# ---- service accounts, roles, role bindings, tokens, strict fields, bare pods ---------
RBAC = "/apis/rbac.authorization.k8s.io/v1"
meta = {"name": "jp", "namespace": NS}
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts?dryRun=All", {
    "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
t.check("dry-run create of a ServiceAccount answers 201 and stores nothing", code == 201 and
        admin.request("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/jp")[0] == 404, obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts?fieldValidation=Strict", {
    "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automount": True})
t.check("fieldValidation=Strict: an unknown field is 400", code == 400 and
        'unknown field "automount"' in obj.get("message", ""), obj)
code, obj = admin.request("POST", f"{RBAC}/namespaces/{NS}/roles", {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
    "rules": [{"apiGroups": [""], "resources": ["secrets"]}]})
t.check("a Role rule without verbs: 422 naming it", code == 422 and
        "rules[0].verbs" in obj.get("message", ""), obj)
code, obj = admin.request("POST", f"{RBAC}/namespaces/{NS}/rolebindings", {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
    "subjects": [{"kind": "ServiceAccount", "name": "jp"}]})
t.check("a RoleBinding without roleRef: 422", code == 422 and "roleRef" in obj.get("message", ""),
        obj)
for path, body in [
        (f"/api/v1/namespaces/{NS}/serviceaccounts",
         {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        (f"{RBAC}/namespaces/{NS}/roles",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
          "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                     "resourceNames": ["two"]},
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"],
                     "resourceNames": ["bare"]}]}),
        (f"{RBAC}/namespaces/{NS}/rolebindings",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jp"},
          "subjects": [{"kind": "ServiceAccount", "name": "jp"}]})]:
    code, obj = admin.request("POST", path + "?fieldValidation=Strict", body)
    t.check(f"create {body['kind']}", code == 201, obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/jp/token", {
    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
t.check("TokenRequest gives the service account a token", code == 201 and
        obj["status"].get("token"), obj)
sa = K8s(URL, CA, token=obj["status"]["token"])
code, obj = sa.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {
    "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
t.check("... which authenticates as system:serviceaccount:NS:jp", code == 201 and
        obj["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:jp", obj)
t.check("the bound Role allows what it lists (list secrets)",
        sa.request("GET", f"/api/v1/namespaces/{NS}/secrets")[0] == 200)
code, obj = sa.request("GET", f"/api/v1/namespaces/{NS}/secrets/one")
t.check("... and nothing else (get secrets: 403)", code == 403 and status_is(obj, 403, "Forbidden"),
        obj)
t.check("... and only in its namespace", sa.request("GET", "/api/v1/namespaces/default/secrets")[0]
        == 403)
t.check("a rule with resourceNames allows the objects it names (get secrets/two: not 403)",
        sa.request("GET", f"/api/v1/namespaces/{NS}/secrets/two")[0] in (200, 404))
t.check("... and never a list, which names none (list pods: 403)",
        sa.request("GET", f"/api/v1/namespaces/{NS}/pods")[0] == 403)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/pods", {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
    "spec": {"containers": [{"name": "c"}]}})
t.check("a container without an image: 422", code == 422 and
        "spec.containers[0].image" in obj.get("message", ""), obj)
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/pods", {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
    "spec": {"serviceAccountName": "jp", "containers": [{"name": "c", "image": "i"}]}})
t.check("a pod created directly starts Pending", code == 201 and
        obj["status"]["phase"] == "Pending", obj)
deadline = time.monotonic() + 10
while admin.request("GET", f"/api/v1/namespaces/{NS}/pods/bare")[1]["status"]["phase"] != \
        "Running" and time.monotonic() < deadline:
    time.sleep(0.1)
t.check("... and runs after the operator delay",
        admin.request("GET", f"/api/v1/namespaces/{NS}/pods/bare")[1]["status"]["phase"] == "Running")
admin.request("DELETE", f"/api/v1/namespaces/{NS}/pods/bare?gracePeriodSeconds=0")
admin.request("DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/jp")
t.check("deleting the service account revokes its tokens",
        sa.request("GET", f"/api/v1/namespaces/{NS}/secrets")[0] == 401)

# ---- deletion, persistence --------------------------------------------------------------
code, obj = admin.request("POST", f"/api/v1/namespaces/{NS}/pods", {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "c", "image": "i"}]}})
code, obj = admin.request("DELETE", f"/api/v1/namespaces/{NS}/pods/p")
t.check("deleting a pod is graceful: deletionTimestamp set", code == 200 and
        obj["metadata"].get("deletionTimestamp"), obj)
deadline = time.monotonic() + 10
while admin.request("GET", f"/api/v1/namespaces/{NS}/pods/p")[0] != 404 and \
        time.monotonic() < deadline:
    time.sleep(0.1)
t.check("... and the pod is gone after the grace period",
        admin.request("GET", f"/api/v1/namespaces/{NS}/pods/p")[0] == 404)
with open(env["MXPC_K8S_STATE_FILE"]) as f:
    state = json.load(f)
t.check("state is kept in the state file", any(
    o["metadata"]["name"] == "one" and o["metadata"].get("namespace") == NS
    for o in state["objects"]))
code, obj = admin.request("DELETE", f"/api/v1/namespaces/{NS}")
t.check("delete the namespace", code == 200, obj)
code, obj = admin.request("GET", f"/api/v1/namespaces/{NS}/secrets")
t.check("its objects are gone", code == 200 and obj["items"] == [], obj)

t.finish()
