-- env "name" at the prompt: an environment resolved as the workflows resolve
-- it (workflow.resolve), with its database, file storage and MendixApp a
-- method away. Printing one shows its settings; the credentials in them are
-- registered secrets, so they print as ***.
local wf = require "mxpc.workflow"

local M = {}

-- The classes keep their metatables in the registry, as C modules do, so
-- help() knows a value by its metatable.
local Env = {}
Env.__index = Env
debug.getregistry()["mxpc.repl.env"] = Env

local Store = {}
Store.__index = Store
debug.getregistry()["mxpc.repl.store"] = Store

-- Connections made for an environment, kept outside it so they don't print.
local opened = setmetatable({}, { __mode = "k" })

local function slot(env)
  opened[env] = opened[env] or {}
  return opened[env]
end

-- env(name) or env(namespace, name); the namespace defaults to opts.namespace
-- (repl -n), else the kubeconfig context's. The environment, or nil, err.
function M.resolve(opts, a, b)
  local ns, name = a, b
  if b == nil then ns, name = nil, a end
  if type(name) ~= "string" or name == "" then error("env: expected an environment name, as env \"demo-app\"", 2) end
  if ns ~= nil and (type(ns) ~= "string" or ns == "") then error("env: the namespace must be a string", 2) end
  ns = ns or opts.namespace
  if not ns then
    local client, err = require("mxpc.k8s").connect { kubeconfig = opts.kubeconfig, context = opts.context }
    if not client then return nil, err end
    ns = client:namespace()
    client:close()
  end
  local env, err = wf.resolve { namespace = ns, environment = name, kubeconfig = opts.kubeconfig,
    context = opts.context }
  if not env then return nil, err end
  return setmetatable(env, Env)
end

-- A connection to the environment's database; the same one on every call
-- while it is open.
function Env:db()
  local s = slot(self)
  if s.db and not tostring(s.db):find(", closed%)$") then return s.db end
  local conn, err = wf.connect_database(self)
  if not conn then return nil, err end
  s.db = conn
  return conn
end

-- The environment's file storage: its S3 client with the bucket and the
-- prefix of its files.
function Env:store()
  local s = slot(self)
  if s.store then return s.store end
  local client, err = wf.connect_storage(self)
  if not client then return nil, err end
  s.store = setmetatable({ client = client, endpoint = self.storage.endpoint, bucket = self.storage.bucket,
    prefix = self.storage.prefix }, Store)
  return s.store
end

-- The MendixApp object as the cluster has it now.
function Env:app()
  return self.client:get("mendixapps", self.name, self.namespace)
end

function Store:key(uuid) return self.prefix .. uuid end

-- The objects under the environment's prefix (and `prefix` below it).
function Store:list(prefix)
  if prefix ~= nil and type(prefix) ~= "string" then error("list: prefix must be a string", 2) end
  return self.client:list(self.bucket, self.prefix .. (prefix or ""))
end

function Store:head(key) return self.client:head(self.bucket, self.prefix .. key) end

function Store:get_string(key) return self.client:get_string(self.bucket, self.prefix .. key) end

return M
