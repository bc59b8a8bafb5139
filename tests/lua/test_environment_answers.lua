-- What environment.resolve makes of Kubernetes answers an API server does
-- not send but a broken proxy or server could (found by fuzzing,
-- tests/fuzz/lua/environment_resolve.lua): the client's transport answers
-- with fixed statuses and bodies, in order (no real server sends these).
local t = require "t"
local cjson = require "cjson"
local k8s = require "mxpc.k8s"
local api = require "mxpc.k8s_api"
local environment = require "mxpc.environment"

local methods, queue = {}, {}
api.install(k8s, methods)
function methods:_http()
  local a = table.remove(queue, 1)
  if not a then return nil, { code = "connect", message = "no more answers" } end
  return a[1], type(a[2]) == "table" and cjson.encode(a[2]) or a[2], "application/json"
end
function methods:info() return { context = "c", source = "kubeconfig", in_cluster = false } end
function methods:namespace() return "ns" end
local client = setmetatable({}, { __index = methods })

local APP = { kind = "MendixApp", metadata = { name = "app", namespace = "ns" }, spec = { replicas = 1 } }
local NOT_FOUND = { kind = "Status", status = "Failure", reason = "NotFound", code = 404 }
local function resolve(answers)
  queue = answers
  return environment.resolve(client, "ns", "app", k8s.secret_data)
end

t.test("a MendixApp answered as something other than an object is a k8s error (was: attempt to index)", function()
  for _, body in ipairs { "3", '"text"', "[1,2]" } do
    local env, err = resolve { { 200, body } }
    t.eq(env, nil, body)
    t.eq(err.code, "k8s", body)
    t.contains(err.message, "GET /apis/privatecloud.mendix.com/v1alpha1/namespaces/ns/mendixapps/app: the server's "
      .. "answer is not an object", body)
  end
end)

t.test("a MendixApp whose metadata or spec is not an object, or names another app, is read as the one asked for",
  function()
  for _, app in ipairs { { metadata = "x", spec = 5 }, { metadata = { name = "", namespace = 3 } } } do
    local env, err = resolve { { 200, app }, { 404, NOT_FOUND }, { 404, NOT_FOUND } }
    t.eq(env, nil)
    t.eq(err.code, "not_found") -- the StorageInstance app-database, asked for by the right name
    t.contains(err.message, 'StorageInstance "app-database" not found in namespace "ns"')
  end
end)

t.test("a SecretProviderClass without metadata is not the environment's (was: attempt to index)", function()
  local _, err = resolve { { 200, APP }, { 200, { kind = "SecretProviderClass", spec = {} } }, { 404, NOT_FOUND } }
  t.eq(err.code, "not_found")
  t.contains(err.message, "StorageInstance")
end)

t.test("a StorageInstance that names no Secret and has no name is a k8s error (was: attempt to index)", function()
  local _, err = resolve { { 200, APP }, { 404, NOT_FOUND }, { 200, { kind = "StorageInstance", status = {} } } }
  t.eq(err.code, "k8s")
  t.contains(err.message, 'StorageInstance "app-database" in namespace "ns" names no credentials Secret')
end)

t.test("a Secret with a value that is not base64 is an error naming the key (was: attempt to index)", function()
  local _, err = resolve { { 200, APP }, { 404, NOT_FOUND },
    { 200, { kind = "StorageInstance", metadata = { name = "app-database" }, status = { secretName = "db" } } },
    { 200, { kind = "Secret", metadata = { name = "db" }, data = { ["database-host"] = "%%%" } } } }
  t.eq(err.code, "invalid")
  t.contains(err.message, 'key "database-host" of Secret "db" is not base64')
end)

t.test("a SecretProviderClass whose parameters are not a map of strings is read without them (found by fuzzing)",
  function()
  local class = { kind = "SecretProviderClass", metadata = { name = "app", namespace = "ns",
    annotations = { ["privatecloud.mendix.com/environment-class"] = "true" } },
    spec = { provider = "vault", parameters = 0 } }
  local _, err = resolve { { 200, APP }, { 200, class } }
  t.eq(err.code, "environment")
  t.contains(err.message, "SecretProviderClass ns/app: no parameters.objects")
  class.spec.parameters = { objects = "- objectName: database-host\n  secretPath: p\n  secretKey: k\n",
    vaultAddress = { "x" }, roleName = 5 }
  _, err = resolve { { 200, APP }, { 200, class } }
  t.eq(err.code, "environment")
  t.contains(err.message, "parameters.vaultAddress is not an http(s) URL")
end)

return t.run()
