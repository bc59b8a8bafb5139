-- mxpc.k8s against the local stack's Kubernetes API emulator, with kubectl as
-- the reference. Needs MXPC_STACK_ENV (tests/stack/up); fails without it.
-- Objects it changes are put back as seeded.
local t = require "t"
local k8s = require "mxpc.k8s"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local cjson = require "cjson"
local fs = require "mxpc.fs"

local env = t.stack_env()
local NS = env.MXPC_K8S_NAMESPACE
local SERVER = env.MXPC_K8S_URL
local PORT = SERVER:match(":(%d+)$")
local prog = t.program()
local TOKENS = { env.MXPC_K8S_ADMIN_TOKEN, env.MXPC_K8S_RESTRICTED_TOKEN, env.MXPC_K8S_SCALE_TOKEN,
  env.MXPC_K8S_NOBODY_TOKEN }
local WRONG_TOKEN = "wrong-token-0123456789abcdef0123456789abcdef"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function write(path, text, mode)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if mode then assert(os.execute("chmod " .. mode .. " " .. q(path))) end
  return path
end

local cache = t.tmpdir()
-- kubectl's view of an object, decoded.
local function kubectl_json(args)
  local out, code = t.sh(("KUBECACHEDIR=%s kubectl --kubeconfig %s -n %s %s -o json 2>&1"):format(
    q(cache), q(env.MXPC_KUBECONFIG), NS, args))
  t.eq(code, 0, "kubectl " .. args .. ": " .. out)
  return cjson.decode(out)
end

-- A kubeconfig for the stack's server with the given cluster and user fields.
local function kubeconfig(dir, name, cluster_lines, user_lines, server)
  return write(dir .. "/" .. name, ([[
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: stack
  cluster:
    server: %s
%s
contexts:
- name: test
  context: {cluster: stack, user: someone, namespace: %s}
users:
- name: someone
  user:
%s
]]):format(server or SERVER, cluster_lines, NS, user_lines))
end

local function connect(path, opts)
  opts = opts or {}
  opts.kubeconfig = path
  return assert(k8s.connect(opts))
end

local function expect_error(code, obj, err)
  t.eq(obj, nil, "result")
  t.ok(errors.is(err, code), ("expected an error with code %s, got %s"):format(code, tostring(err and err.code)))
  for _, token in ipairs(TOKENS) do
    t.ok(not tostring(err):find(token, 1, true), "no token in the message")
    t.ok(not (err.hint or ""):find(token, 1, true), "no token in the hint")
  end
  return err
end

local function same_object(ours, theirs, what)
  t.eq(ours.metadata.name, theirs.metadata.name, what .. " name")
  t.eq(ours.metadata.uid, theirs.metadata.uid, what .. " uid")
  t.eq(ours.metadata.resourceVersion, theirs.metadata.resourceVersion, what .. " resourceVersion")
  t.same(ours.spec, theirs.spec, what .. " spec")
end

t.test("admin: MendixApp, StorageInstance and Secret equal kubectl's", function()
  local c = connect(env.MXPC_KUBECONFIG)
  t.eq(tostring(c), ("k8s.client (%s, context mxpc-admin)"):format(SERVER))
  t.eq(c:namespace(), NS)
  local app = assert(c:get("mendixapps", "demo-app"))
  t.eq(app.kind, "MendixApp")
  same_object(app, kubectl_json("get mendixapp demo-app"), "MendixApp")
  local si = assert(c:get("storageinstances.privatecloud.mendix.com", "demo-app-database"))
  same_object(si, kubectl_json("get storageinstance demo-app-database"), "StorageInstance")
  t.eq(si.status.secretName, "demo-app-database-credentials")
  local secret = assert(c:get("secret", si.status.secretName, NS))
  local theirs = kubectl_json("get secret demo-app-database-credentials")
  t.eq(secret.metadata.uid, theirs.metadata.uid)
  t.same(secret.data, theirs.data, "secret data")
  t.same(c:info(), { server = SERVER, context = "mxpc-admin", cluster = "mxpc-stack", user = "mxpc-admin",
    source = env.MXPC_KUBECONFIG, auth = "token", namespace = NS, in_cluster = false })
end)

t.test("secret_data decodes the values and registers them as secrets", function()
  local c = connect(env.MXPC_KUBECONFIG)
  local secret = assert(c:get("secrets", "demo-app-database-credentials"))
  local data = assert(k8s.secret_data(secret))
  local f = assert(io.open(env.MXPC_STACK_DIR .. "/seed.json"))
  local seed = cjson.decode(f:read("a"))
  f:close()
  local db = seed.environments["demo-app"].database
  t.eq(data["database-password"], db.password)
  t.eq(data["database-name"], db.name)
  t.eq(data["database-type"], "PostgreSQL")
  t.eq(log.redact("pw " .. db.password), "pw ***")
  t.eq(log.redact(secret.data["database-password"]), "***", "the base64 form too")
  -- the config-JSON layout: the fields inside are registered as well
  local copy = assert(c:get("secrets", "demo-copy-database-credentials"))
  local config = cjson.decode(assert(k8s.secret_data(copy)).config)
  t.eq(log.redact(config.DatabasePassword), "***")
  t.eq(log.redact(config.DatabaseHost), config.DatabaseHost, "where is not a secret")
  t.eq(log.redact(data["database-host"] .. " " .. data["database-name"]),
    data["database-host"] .. " " .. data["database-name"], "host and database names stay readable")
  local plain = assert(k8s.secret_data { data = {}, stringData = { token = "from-string-data-123", note = "n-123" } })
  t.eq(plain.token, "from-string-data-123")
  t.eq(log.redact("from-string-data-123 n-123"), "*** n-123")
  local bad, err = k8s.secret_data { metadata = { name = "x" }, data = { k = "not base64!" } }
  t.eq(bad, nil)
  t.eq(err.code, "invalid")
end)

t.test("restricted user: get works, list pods and patch are forbidden with the RBAC rule", function()
  local c = connect(env.MXPC_KUBECONFIG_RESTRICTED)
  t.ok(c:get("mendixapps", "demo-app"))
  t.ok(c:get("storageinstances", "demo-app-file"))
  t.ok(c:get("secrets", "demo-app-file-credentials"))
  local err = expect_error("forbidden", c:list("pods"))
  t.contains(err.message, 'cannot list pods in namespace "mendix"')
  t.contains(err.message, 'User "mendix-backup-restore" cannot list resource "pods"')
  t.contains(err.hint, 'a Role in namespace "mendix" with the rule {apiGroups: [""], resources: ["pods"], verbs: ["list"]}')
  err = expect_error("forbidden", c:patch("mendixapps", "demo-app", { spec = { replicas = 0 } }))
  t.contains(err.message, 'cannot patch mendixapps.privatecloud.mendix.com "demo-app" in namespace "mendix"')
  t.contains(err.hint, 'apiGroups: ["privatecloud.mendix.com"], resources: ["mendixapps"], verbs: ["patch"]')
  t.eq(err.status, 403)
end)

t.test("a refusal in a namespace that may not exist says to check the namespace first", function()
  local c = connect(env.MXPC_KUBECONFIG_RESTRICTED)
  local err = expect_error("forbidden", c:get("mendixapps", "demo-app", "mendixx"))
  t.contains(err.hint, 'check the namespace "mendixx" first (one that does not exist is refused the same way); '
    .. 'if it is right, the user of context')
  t.contains(err.hint, 'needs a Role in namespace "mendixx"')
  t.contains(err.hint, "docs/jump-pod.md#permissions")
  -- where a request worked, the namespace exists: the rule alone
  t.ok(c:get("mendixapps", "demo-app", "mendix"))
  err = expect_error("forbidden", c:list("pods", { namespace = "mendix" }))
  t.eq(err.hint:find("check the namespace", 1, true), nil, err.hint)
  -- a user who may read namespaces learns that it does not exist
  local admin = connect(env.MXPC_KUBECONFIG)
  t.eq(require("mxpc.k8s_api").namespace_doubt(admin, "mendixx"),
    'namespace "mendixx" does not exist: check -n (kubectl get namespaces lists them)')
  t.eq(require("mxpc.k8s_api").namespace_doubt(admin, "mendix"), nil)
end)

t.test("can_i asks the server (SelfSubjectAccessReview) and agrees with kubectl auth can-i", function()
  local cases = {
    { env.MXPC_KUBECONFIG_RESTRICTED, "get", "secrets", true },
    { env.MXPC_KUBECONFIG_RESTRICTED, "get", "mendixapps", true },
    { env.MXPC_KUBECONFIG_RESTRICTED, "get", "storageinstances", true },
    { env.MXPC_KUBECONFIG_RESTRICTED, "patch", "mendixapps", false },
    { env.MXPC_KUBECONFIG_RESTRICTED, "list", "pods", false },
    { env.MXPC_KUBECONFIG_SCALE, "patch", "mendixapps", true },
    { env.MXPC_KUBECONFIG_SCALE, "list", "pods", true },
    { env.MXPC_KUBECONFIG_SCALE, "delete", "mendixapps", false },
    { env.MXPC_KUBECONFIG_NOBODY, "get", "secrets", false },
    { env.MXPC_KUBECONFIG, "patch", "mendixapps", true },
  }
  for _, case in ipairs(cases) do
    local path, verb, resource, want = table.unpack(case)
    local c = connect(path)
    local allowed, err = c:can_i(verb, resource)
    t.eq(err == nil or type(err) == "string", true, tostring(err))
    t.eq(allowed, want, ("%s %s %s"):format(path, verb, resource))
    local r = k8s.resource(resource)
    local out = t.sh(("KUBECACHEDIR=%s kubectl --kubeconfig %s -n %s auth can-i %s %s 2>/dev/null"):format(
      q(cache), q(path), NS, verb, r.display))
    t.eq(out:match("^(%a+)"), want and "yes" or "no", "kubectl agrees: " .. verb .. " " .. resource)
  end
  -- another namespace: the restricted user's Role is only in mendix
  t.eq((connect(env.MXPC_KUBECONFIG_RESTRICTED):can_i("get", "secrets", { namespace = "kube-system" })), false)
  t.raises(function() connect(env.MXPC_KUBECONFIG):can_i("get", "deployments") end, "unknown Kubernetes resource")
end)

t.test("nobody: forbidden", function()
  local c = connect(env.MXPC_KUBECONFIG_NOBODY)
  local err = expect_error("forbidden", c:get("secrets", "demo-app-database-credentials"))
  t.contains(err.message, 'User "nobody" cannot get resource "secrets"')
  t.contains(err.hint, 'resources: ["secrets"], verbs: ["get"]')
end)

t.test("a wrong token is unauthorized, and never shown", function()
  local dir = t.tmpdir()
  local path = kubeconfig(dir, "wrong", "    certificate-authority: " .. env.MXPC_K8S_CA, "    token: " .. WRONG_TOKEN)
  local c = connect(path)
  local err = expect_error("unauthorized", c:get("mendixapps", "demo-app"))
  t.contains(err.message, "Unauthorized")
  t.contains(err.hint, 'context "test"')
  t.contains(err.hint, "expired")
  t.ok(not tostring(err):find(WRONG_TOKEN, 1, true))
  t.ok(not tostring(c):find(WRONG_TOKEN, 1, true))
  t.eq(log.redact(WRONG_TOKEN), "***", "a token read from a kubeconfig is registered")
end)

t.test("client certificates: inline data and files", function()
  local c = connect(env.MXPC_KUBECONFIG_ADMIN_CERT)
  t.eq(c:info().auth, "client certificate")
  t.ok(c:get("mendixapps", "demo-copy"))
  t.ok(c:list("pods"), "admin may list pods")
  local dir = t.tmpdir()
  local path = kubeconfig(dir, "cert-files", "    certificate-authority: " .. env.MXPC_K8S_CA,
    ("    client-certificate: %s\n    client-key: %s"):format(env.MXPC_K8S_RESTRICTED_CERT, env.MXPC_K8S_RESTRICTED_KEY))
  local r = connect(path)
  t.ok(r:get("mendixapps", "demo-copy"))
  local err = expect_error("forbidden", r:list("pods"))
  t.contains(err.message, 'User "mendix-backup-restore"', "the certificate's CN is the user")
end)

t.test("relative certificate-authority path and tls-server-name", function()
  local dir = t.tmpdir()
  assert(os.execute(("mkdir -p %s/pki && cp %s %s/pki/ca.crt"):format(q(dir), q(env.MXPC_K8S_CA), q(dir))))
  local token = "    token: " .. env.MXPC_K8S_ADMIN_TOKEN
  t.ok(connect(kubeconfig(dir, "rel", "    certificate-authority: pki/ca.crt", token)):get("mendixapps", "demo-app"))
  local named = kubeconfig(dir, "named", "    certificate-authority: pki/ca.crt\n    tls-server-name: kubernetes", token)
  t.ok(connect(named):get("mendixapps", "demo-app"), "the certificate names 'kubernetes'")
  local wrong = kubeconfig(dir, "wrong-name", "    certificate-authority: pki/ca.crt\n    tls-server-name: wrong.invalid",
    token)
  expect_error("connect", connect(wrong):get("mendixapps", "demo-app"))
end)

t.test("in-cluster service account, and the token file re-read when it rotates", function()
  local dir = t.tmpdir()
  assert(os.execute(("cp -r %s %s/sa"):format(q(env.MXPC_K8S_SA_DIR), q(dir))))
  local script = write(dir .. "/sa.lua", [[
    local k8s = require "mxpc.k8s"
    local cjson = require "cjson"
    local sa = os.getenv("MXPC_K8S_SA_DIR")
    local function put(text) local f = assert(io.open(sa .. "/token", "w")); f:write(text); f:close() end
    local good = io.open(sa .. "/token"):read("a")
    local c = assert(k8s.connect())
    local out = { info = c:info(), text = tostring(c) }
    out.app = assert(c:get("mendixapps", "demo-app")).metadata.name
    local _, err = c:list("pods")
    out.list = err.code
    put("rotated-but-wrong-token-0000000000000000")
    _, err = c:get("mendixapps", "demo-app")
    out.after_bad = err.code
    put(good)
    out.after_good = assert(c:get("mendixapps", "demo-app")).metadata.name
    print(cjson.encode(out))
  ]])
  local out, code = t.sh(("env -u KUBECONFIG HOME=%s KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=%s "
    .. "MXPC_K8S_SA_DIR=%s/sa %s run %s"):format(q(dir), PORT, q(dir), q(prog), q(script)))
  t.eq(code, 0, out)
  local r = cjson.decode(out)
  t.eq(r.info.in_cluster, true)
  t.eq(r.info.namespace, NS, "namespace from the service account")
  t.eq(r.info.server, SERVER)
  t.eq(r.info.auth, "token file")
  t.eq(r.text, ("k8s.client (%s, in-cluster service account)"):format(SERVER))
  t.eq(r.app, "demo-app")
  t.eq(r.list, "forbidden", "the service account is the restricted user")
  t.eq(r.after_bad, "unauthorized", "a changed token file is read again")
  t.eq(r.after_good, "demo-app")
end)

t.test("exec credential plugin", function()
  local dir = t.tmpdir()
  write(dir .. "/plugin.sh", ([[
#!/bin/sh
printf '%%s\n' "$*" > %s/args
printf '%%s\n' "$KUBERNETES_EXEC_INFO" > %s/info
cat <<EOF
{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
 "status": {"token": "$PLUGIN_TOKEN"}}
EOF
]]):format(q(dir), q(dir)), "755")
  local path = kubeconfig(dir, "exec", "    certificate-authority: " .. env.MXPC_K8S_CA, ([[
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: ./plugin.sh
      args: [eks, get-token, --cluster-name, stack]
      env:
      - {name: PLUGIN_TOKEN, value: %s}]]):format(env.MXPC_K8S_RESTRICTED_TOKEN))
  local c = connect(path)
  t.eq(c:info().auth, "exec")
  t.ok(c:get("secrets", "demo-app-database-credentials"))
  expect_error("forbidden", c:list("pods"))
  t.eq(fs.read(dir .. "/args"), "eks get-token --cluster-name stack\n")
  local info = cjson.decode(fs.read(dir .. "/info"))
  t.eq(info.kind, "ExecCredential")
  t.eq(info.apiVersion, "client.authentication.k8s.io/v1beta1")
  -- a failing plugin
  write(dir .. "/plugin.sh", "#!/bin/sh\necho 'token expired, run aws sso login' >&2\nexit 1\n", "755")
  local none, err = k8s.connect { kubeconfig = path }
  t.eq(none, nil)
  t.eq(err.code, "config")
  t.contains(err.message, "token expired, run aws sso login")
end)

t.test("not found names the resource and the namespace", function()
  local c = connect(env.MXPC_KUBECONFIG)
  local err = expect_error("not_found", c:get("mendixapps", "no-such-app"))
  t.eq(err.message, 'mendixapps.privatecloud.mendix.com "no-such-app" in namespace "mendix" not found (HTTP 404)')
  t.contains(err.hint, "namespace")
  local other = connect(env.MXPC_KUBECONFIG, { namespace = "elsewhere" })
  t.eq(other:namespace(), "elsewhere")
  err = expect_error("not_found", other:get("secrets", "demo-app-database-credentials"))
  t.contains(err.message, 'secrets "demo-app-database-credentials" in namespace "elsewhere"')
  t.ok(c:get("secrets", "demo-app-database-credentials", NS), "explicit namespace argument")
end)

t.test("configuration errors", function()
  local none, err = k8s.connect { kubeconfig = env.MXPC_KUBECONFIG, context = "staging" }
  t.eq(none, nil)
  t.eq(err.code, "config")
  t.eq(err.message, ('context "staging" not found in kubeconfig %s'):format(env.MXPC_KUBECONFIG))
  t.contains(err.hint, "mendix-backup-restore-scale")
  local dir = t.tmpdir()
  none, err = k8s.connect { kubeconfig = write(dir .. "/bad", "clusters:\n- name: [x\n") }
  t.eq(err.code, "config")
  t.contains(err.message, "is not valid YAML: line 3")
end)

t.test("wrong CA and unreachable server are connect errors", function()
  local dir = t.tmpdir()
  local token = "    token: " .. env.MXPC_K8S_ADMIN_TOKEN
  local c = connect(kubeconfig(dir, "wrong-ca", "    certificate-authority: " .. env.MXPC_PG_CA, token))
  local err = expect_error("connect", c:get("mendixapps", "demo-app"))
  t.contains(err.message, 'cannot get mendixapps.privatecloud.mendix.com "demo-app" in namespace "mendix"')
  t.contains(err.message, SERVER)
  t.contains(err.message, "SSL certificate problem")
  t.contains(err.hint, "certificate-authority")
  local path = kubeconfig(dir, "closed", "    certificate-authority: " .. env.MXPC_K8S_CA, token, "https://127.0.0.1:1")
  err = expect_error("connect", connect(path):get("mendixapps", "demo-app"))
  t.contains(err.hint, "server address")
end)

t.test("list with a label selector, across pages", function()
  local c = connect(env.MXPC_KUBECONFIG_SCALE)
  local pods = assert(c:list("pods", { labelSelector = "privatecloud.mendix.com/app=demo-app" }))
  t.eq(pods.kind, "PodList")
  local theirs = kubectl_json("get pods -l privatecloud.mendix.com/app=demo-app")
  t.eq(#pods.items, #theirs.items)
  t.ok(#pods.items >= 1, "demo-app has a pod")
  for i, pod in ipairs(pods.items) do
    t.eq(pod.metadata.labels["privatecloud.mendix.com/app"], "demo-app")
    t.eq(pod.metadata.name, theirs.items[i].metadata.name)
  end
  local all = assert(c:list("pods"))
  local paged = assert(c:list("pods", { limit = 1 }))
  t.ok(#all.items >= 2, "pods of demo-app and demo-copy")
  t.eq(#paged.items, #all.items, "every page collected")
  local none = assert(c:list("pods", { labelSelector = "privatecloud.mendix.com/app in (no-such-app)" }))
  t.eq(#none.items, 0)
end)

-- Waits until the pods of `app` number `n`.
local function wait_pods(c, app, n)
  for _ = 1, 100 do
    local pods = assert(c:list("pods", { labelSelector = "privatecloud.mendix.com/app=" .. app }))
    if #pods.items == n then return true end
    os.execute("sleep 0.1")
  end
  error(("%s did not get %d pods"):format(app, n))
end

t.test("merge patch of spec.replicas, put back afterwards", function()
  local c = connect(env.MXPC_KUBECONFIG_SCALE)
  local before = assert(c:get("mendixapps", "demo-https"))
  local original = before.spec.replicas
  t.eq(math.type(original), "integer", "numbers are integers")
  t.eq(original, 0, "demo-https is seeded stopped")
  local ok, failure = pcall(function()
    local patched = assert(c:patch("mendixapps", "demo-https", { spec = { replicas = 1 } }))
    t.eq(patched.spec.replicas, 1)
    t.eq(kubectl_json("get mendixapp demo-https").spec.replicas, 1, "kubectl sees the change")
    wait_pods(c, "demo-https", 1)
  end)
  local restored = assert(c:patch("mendixapps", "demo-https", { spec = { replicas = original } }, { type = "merge" }))
  t.eq(restored.spec.replicas, original)
  wait_pods(c, "demo-https", 0)
  if not ok then error(failure, 0) end
  -- a stale resourceVersion is a conflict
  local err = expect_error("conflict", c:patch("mendixapps", "demo-https",
    { metadata = { resourceVersion = before.metadata.resourceVersion }, spec = { replicas = 1 } }))
  t.contains(err.hint, "read it again")
  t.eq(assert(c:get("mendixapps", "demo-https")).spec.replicas, original)
end)

t.test("JSON patch: add and remove an annotation; a failing test op is invalid", function()
  local c = connect(env.MXPC_KUBECONFIG)
  t.eq(assert(c:get("mendixapps", "demo-copy")).metadata.annotations, nil, "seeded without annotations")
  local patched = assert(c:patch("mendixapps", "demo-copy", {
    { op = "test", path = "/spec/replicas", value = 1 },
    { op = "add", path = "/metadata/annotations", value = { ["mxpc.test/json-patch"] = "yes" } },
  }, { type = "json" }))
  t.eq(patched.metadata.annotations["mxpc.test/json-patch"], "yes")
  t.eq(kubectl_json("get mendixapp demo-copy").metadata.annotations["mxpc.test/json-patch"], "yes")
  local back = assert(c:patch("mendixapps", "demo-copy", { { op = "remove", path = "/metadata/annotations" } },
    { type = "json" }))
  t.eq(back.metadata.annotations, nil)
  local err = expect_error("invalid", c:patch("mendixapps", "demo-copy",
    '[{"op": "test", "path": "/spec/replicas", "value": 7}]', { type = "json" }))
  t.contains(err.message, "test failed")
  t.eq(assert(c:get("mendixapps", "demo-copy")).spec.replicas, 1, "unchanged")
end)

t.test("raw requests, misuse, closing", function()
  local c = connect(env.MXPC_KUBECONFIG)
  local version, status = assert(c:request("GET", "/version"))
  t.eq(status, 200)
  t.ok(version.gitVersion, "decoded JSON")
  t.eq((c:request("GET", "/healthz")), "ok", "text stays text")
  local err = expect_error("not_found", c:request("GET", "/api/v1/namespaces/mendix/secrets/nope"))
  t.contains(err.message, "cannot get GET /api/v1/namespaces/mendix/secrets/nope")
  t.raises(function() c:get("deployments", "x") end, 'unknown Kubernetes resource "deployments"')
  t.raises(function() c:patch("mendixapps", "demo-app", {}, { type = "strategic" }) end, "unknown patch type")
  c:close()
  c:close()
  t.eq(tostring(c), "k8s.client (closed)")
  t.raises(function() c:get("mendixapps", "demo-app") end, "closed k8s client")
  do
    local scoped <close> = connect(env.MXPC_KUBECONFIG)
    t.ok(scoped:get("mendixapps", "demo-app"))
  end
end)

t.test("create and delete: dry run, exists, not found, forbidden with the rule to add", function()
  local c <close> = connect(env.MXPC_KUBECONFIG)
  local sa = { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = "lua-k8s-test", namespace = NS } }
  local dry = assert(c:create("sa", sa, { dry_run = true }))
  t.eq(dry.metadata.name, "lua-k8s-test")
  expect_error("not_found", c:get("serviceaccounts", "lua-k8s-test"))
  local made = assert(c:create("serviceaccounts", sa))
  t.ok(made.metadata.uid, "created")
  local err = expect_error("exists", c:create("serviceaccounts", sa))
  t.contains(err.message, 'cannot create serviceaccounts "lua-k8s-test" in namespace "mendix"')
  t.contains(err.hint, "exists already")
  assert(c:delete("serviceaccounts", "lua-k8s-test", { dry_run = true }))
  t.ok(c:get("serviceaccounts", "lua-k8s-test"), "a dry-run delete keeps it")
  assert(c:delete("serviceaccounts", "lua-k8s-test"))
  expect_error("not_found", c:delete("serviceaccounts", "lua-k8s-test"))
  local r <close> = connect(env.MXPC_KUBECONFIG_RESTRICTED)
  local ferr = expect_error("forbidden", r:create("roles", { apiVersion = "rbac.authorization.k8s.io/v1",
    kind = "Role", metadata = { name = "x" }, rules = {} }))
  t.contains(ferr.hint, 'resources: ["roles"], verbs: ["create"]')
end)

t.test("timeout and Ctrl-C stop a hanging request", function()
  local c = connect(env.MXPC_KUBECONFIG, { timeout = 1 })
  local started = os.time()
  local err = expect_error("timeout", c:request("GET", "/api/v1/namespaces/mendix/pods?watch=1"))
  t.ok(os.time() - started <= 3, "stopped after about a second")
  t.contains(err.message, "did not answer in time")
  local dir = t.tmpdir()
  local script = write(dir .. "/watch.lua", ([[
    local k8s = require "mxpc.k8s"
    local c = assert(k8s.connect { kubeconfig = %q, timeout = 20 })
    io.open(%q, "w"):close()
    c:request("GET", "/api/v1/namespaces/mendix/pods?watch=1")
    print("not interrupted")
  ]]):format(env.MXPC_KUBECONFIG, dir .. "/ready"))
  local out = t.sh(([[
    %s run %s 2>%s/err & pid=$!
    for i in $(seq 1 200); do [ -e %s/ready ] && break; sleep 0.05; done
    sleep 0.3; kill -INT $pid; wait $pid; echo "exit=$?"
  ]]):format(q(prog), q(script), q(dir), q(dir)))
  t.eq(tonumber(out:match("exit=(%d+)")), 130, out)
  t.eq(fs.read(dir .. "/err"), "error: interrupted by SIGINT\n")
end)

t.test("no token or secret value in -vv logs or error output", function()
  local dir = t.tmpdir()
  local wrong = kubeconfig(dir, "wrong", "    certificate-authority: " .. env.MXPC_K8S_CA, "    token: " .. WRONG_TOKEN)
  local script = write(dir .. "/leak.lua", ([[
    local k8s = require "mxpc.k8s"
    local log = require "mxpc.log"
    for _, path in ipairs { %q, %q, %q, %q } do
      local c = assert(k8s.connect { kubeconfig = path })
      log.info("client", { client = tostring(c), info = require("cjson").encode(c:info()) })
      local _, err = c:list("secrets")
      if err then log.warn(tostring(err), { hint = err.hint }) end
    end
    local c = assert(k8s.connect { kubeconfig = %q })
    local data = assert(k8s.secret_data(assert(c:get("secrets", "demo-app-database-credentials"))))
    log.info("password is " .. data["database-password"], { password = data["database-password"] })
    local w = assert(k8s.connect { kubeconfig = %q })
    local _, err = w:get("mendixapps", "demo-app")
    log.warn(tostring(err), { hint = err.hint })
    error("giving up with " .. data["database-password"] .. " and %s")
  ]]):format(env.MXPC_KUBECONFIG, env.MXPC_KUBECONFIG_RESTRICTED, env.MXPC_KUBECONFIG_SCALE,
    env.MXPC_KUBECONFIG_NOBODY, env.MXPC_KUBECONFIG, wrong, env.MXPC_K8S_ADMIN_TOKEN))
  local _, code = t.sh(("%s -v -v run %s 2>%s/stderr"):format(q(prog), q(script), q(dir)))
  t.eq(code, 1)
  local stderr = fs.read(dir .. "/stderr")
  t.contains(stderr, "debug: k8s: GET /api/v1/namespaces/mendix/secrets")
  t.contains(stderr, "info: password is ***")
  t.contains(stderr, ": giving up with *** and ***\n")
  t.contains(stderr, "\nerror: ")
  t.contains(stderr, "forbidden")
  local f = assert(io.open(env.MXPC_STACK_DIR .. "/seed.json"))
  local seed = cjson.decode(f:read("a"))
  f:close()
  local secrets = { WRONG_TOKEN, seed.environments["demo-app"].database.password }
  for _, s in ipairs(TOKENS) do secrets[#secrets + 1] = s end
  for i, s in ipairs(secrets) do
    t.ok(not stderr:find(s, 1, true), ("secret #%d leaked into stderr"):format(i))
  end
end)

return t.run()
