-- The environment's Kubernetes objects as environment.resolve reads them:
-- the MendixApp, its SecretProviderClass (or none), the StorageInstances
-- (database and file) and their credentials Secrets, each an answer of the
-- Kubernetes API through k8s_api.lua's client (its transport answers with
-- the input: lib/answers.lua), decoded with k8s.secret_data, into the
-- database and storage settings. A store the SecretProviderClass names is
-- asked over mxpc.http, answered the same way.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)")
local answers = dofile(dir .. "lib/answers.lua")
local k8s = require "mxpc.k8s"
local api = require "mxpc.k8s_api"
local environment = require "mxpc.environment"
local errors = require "mxpc.error"

local methods = {}
api.install(k8s, methods)
function methods:_http()
  local a = answers.next()
  if not a then return nil, errors.new { code = "connect", message = "connection refused" } end
  return a.status, a.body, "application/json"
end
function methods:info() return { context = "fuzz", source = "kubeconfig", in_cluster = false } end
function methods:namespace() return "ns" end
local client = setmetatable({}, { __index = methods })

return function(data)
  answers.set(data)
  local env, err = environment.resolve(client, "ns", "app", k8s.secret_data)
  if env then
    assert(type(env.database) == "table" and type(env.storage) == "table", "settings missing")
    assert(type(env.database.host) == "string" and env.database.host ~= "", "a database without a host")
  else
    answers.check_error(err)
  end
  return env, err
end
