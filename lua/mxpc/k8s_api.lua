-- The Lua half of mxpc.k8s: resource names and their API paths, JSON, and
-- error objects that name the resource and say which permission is missing.
-- mod_k8s.c loads it and calls install(module, client_methods).
local cjson = require "cjson"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"

local api = {}

local MENDIX = "privatecloud.mendix.com"
local RBAC = "rbac.authorization.k8s.io"

-- The resources the tool touches, as kubectl names them.
api.resources = {
  secrets = { group = "", version = "v1", kind = "Secret", singular = "secret", namespaced = true },
  pods = { group = "", version = "v1", kind = "Pod", singular = "pod", short = "po", namespaced = true },
  namespaces = { group = "", version = "v1", kind = "Namespace", singular = "namespace", short = "ns" },
  serviceaccounts = {
    group = "", version = "v1", kind = "ServiceAccount", singular = "serviceaccount", short = "sa", namespaced = true,
  },
  roles = { group = RBAC, version = "v1", kind = "Role", singular = "role", namespaced = true },
  rolebindings = { group = RBAC, version = "v1", kind = "RoleBinding", singular = "rolebinding", namespaced = true },
  mendixapps = { group = MENDIX, version = "v1alpha1", kind = "MendixApp", singular = "mendixapp", namespaced = true },
  storageinstances = {
    group = MENDIX, version = "v1alpha1", kind = "StorageInstance", singular = "storageinstance", namespaced = true,
  },
  cronjobs = { group = "batch", version = "v1", kind = "CronJob", singular = "cronjob", short = "cj", namespaced = true },
  jobs = { group = "batch", version = "v1", kind = "Job", singular = "job", namespaced = true },
  secretproviderclasses = {
    group = "secrets-store.csi.x-k8s.io", version = "v1", kind = "SecretProviderClass",
    singular = "secretproviderclass", namespaced = true,
  },
}

local by_name = {}
for plural, r in pairs(api.resources) do
  r.plural = plural
  r.display = r.group == "" and plural or (plural .. "." .. r.group) -- as in the server's messages
  for _, n in ipairs { plural, r.singular, r.kind:lower(), r.short } do
    by_name[n] = r
    if r.group ~= "" then by_name[n .. "." .. r.group] = r end
  end
end

-- The resource table entry for a name kubectl would accept (mendixapps,
-- mendixapp, MendixApp, mendixapps.privatecloud.mendix.com, po, ...).
function api.resource(name)
  local r = type(name) == "string" and by_name[name:lower()]
  if not r then
    local known = {}
    for plural in pairs(api.resources) do known[#known + 1] = plural end
    table.sort(known)
    error(("unknown Kubernetes resource %q (known: %s)"):format(tostring(name), table.concat(known, ", ")), 3)
  end
  return r
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- /api/v1/namespaces/NS/secrets/NAME, /apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME]
function api.path(r, namespace, name)
  local p = r.group == "" and ("/api/" .. r.version) or ("/apis/" .. r.group .. "/" .. r.version)
  if r.namespaced then p = p .. "/namespaces/" .. escape(namespace) end
  p = p .. "/" .. r.plural
  if name then p = p .. "/" .. escape(name) end
  return p
end

local function query(params)
  local keys, parts = {}, {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = escape(k) .. "=" .. escape(params[k]) end
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

-- What a request is about, for messages: `mendixapps.privatecloud.mendix.com
-- "demo-app" in namespace "mendix"`.
local function describe(r, name, namespace, subresource)
  local s = r.display
  if name then s = s .. (' "%s"'):format(name) end
  if subresource then s = s .. " (" .. subresource .. ")" end
  if r.namespaced then s = s .. (' in namespace "%s"'):format(namespace) end
  return s
end

local VERBS = { GET = "get", PATCH = "patch", POST = "create", PUT = "update", DELETE = "delete" }

-- Namespaces a client has seen answer (a request there succeeded, or the
-- server allowed something there): they exist.
local seen = setmetatable({}, { __mode = "k" })
function api.saw_namespace(client, ns)
  if not ns then return end
  seen[client] = seen[client] or {}
  seen[client][ns] = true
end

-- Whether namespace `ns` exists: true, false, or nil when the server does not
-- say (a user who may not read namespaces). One raw GET, never an error.
function api.namespace_exists(client, ns)
  if seen[client] and seen[client][ns] then return true end
  local status = client:_http("GET", "/api/v1/namespaces/" .. escape(ns))
  if status == 200 then return true end
  if status == 404 then return false end
  return nil
end

-- What to do about a refused request in a namespace that may not exist (a
-- user refused everywhere but in their own namespaces gets the same 403 for
-- a misspelt one): nil when it exists, else the words to put first.
function api.namespace_doubt(client, ns)
  local exists = api.namespace_exists(client, ns)
  if exists == false then
    return ('namespace "%s" does not exist: check -n (kubectl get namespaces lists them)'):format(ns), true
  end
  if exists == nil then
    return ('check the namespace "%s" first (one that does not exist is refused the same way)'):format(ns)
  end
  return nil
end

-- The RBAC rule a refused request needs, as a hint (the whole Role: docs/jump-pod.md#permissions).
function api.rule_hint(who, namespace, r, verb, subresource, name)
  local scope = r.namespaced and ('a Role in namespace "%s"'):format(namespace) or "a ClusterRole"
  local resource = r.plural .. (subresource and ("/" .. subresource) or "")
  local names = subresource and name and (', resourceNames: ["%s"]'):format(name) or ""
  return ('%s needs %s with the rule {apiGroups: ["%s"], resources: ["%s"]%s, verbs: ["%s"]}, bound to it by a '
    .. "RoleBinding (the whole Role: docs/jump-pod.md#permissions)"):format(who, scope, r.group, resource, names, verb)
end

local function rbac_hint(client, info, target)
  local who = info.in_cluster and "the pod's service account"
    or ('the user of context "%s"'):format(info.context or "?")
  if not target.resource then
    return ("%s lacks the permission for %s %s; ask a cluster administrator for an RBAC Role that allows it"):format(
      who, target.method, target.path)
  end
  local hint = api.rule_hint(who, target.namespace, target.resource, target.verb, target.subresource,
    target.name)
  if not target.resource.namespaced then return hint end
  local doubt, missing = api.namespace_doubt(client, target.namespace)
  if missing then return doubt end
  return doubt and (doubt .. "; if it is right, " .. hint) or hint
end

local function http_error(client, target, status, body)
  local ok, decoded = runtime.pcall(cjson.decode, body)
  local st = ok and type(decoded) == "table" and decoded.kind == "Status" and decoded or {}
  local server_msg = type(st.message) == "string" and st.message or (body ~= "" and body:sub(1, 200)) or "no details"
  local reason = type(st.reason) == "string" and (" " .. st.reason) or ""
  local code = status == 401 and "unauthorized" or status == 403 and "forbidden" or status == 404 and "not_found"
    or status == 409 and (st.reason == "AlreadyExists" and "exists" or "conflict") or status == 422 and "invalid"
    or "k8s"
  local what = target.resource and describe(target.resource, target.name, target.namespace, target.subresource)
    or (target.method .. " " .. target.path)
  local info = client:info()
  local message, hint
  if code == "not_found" and target.resource and target.name and type(st.details) == "table" then
    message = ("%s not found (HTTP 404)"):format(what)
    hint = target.resource.namespaced and ('check the name and the namespace ("%s")'):format(target.namespace) or nil
  else
    message = ("cannot %s %s: %s (HTTP %d%s)"):format(target.verb or target.method, what, server_msg, status, reason)
    if code == "not_found" then
      hint = target.resource and target.resource.group == MENDIX
        and "the cluster does not know this resource: is the Mendix Operator installed?" or nil
    elseif code == "forbidden" then
      hint = rbac_hint(client, info, target)
    elseif code == "unauthorized" then
      hint = ("the credentials of %s were rejected: the token or client certificate is invalid or has expired; "
        .. "get fresh credentials (log in again, or refresh the kubeconfig)"):format(
          info.in_cluster and info.source or ('context "%s" (%s)'):format(info.context, info.source))
    elseif code == "conflict" then
      hint = "the object changed since it was read; read it again and retry"
    elseif code == "exists" then
      hint = "it exists already: delete it first, or choose another name"
    elseif code == "invalid" then
      hint = "the server rejected the change; the message says which field"
    end
  end
  return nil, errors.new { code = code, message = message, hint = hint, status = status, reason = st.reason }
end

-- cjson decodes every number as a float; Kubernetes numbers (replicas,
-- generation, ports) are integers, so make them Lua integers again.
local function integers(v)
  for k, x in pairs(v) do
    if type(x) == "table" then
      integers(x)
    elseif math.type(x) == "float" and math.tointeger(x) then
      v[k] = math.tointeger(x)
    end
  end
  return v
end

-- Secret values under names that say they are credentials (password,
-- secret, token, private key, ...) are registered for redaction, decoded and
-- in their base64 form, with the credential fields of a JSON `config` value.
-- Host names, database and bucket names are not: messages must be able to
-- say where something failed.
local function is_credential(name)
  name = name:lower()
  if name:find("pass") or name:find("secret") or name:find("token") or name:find("private")
      or name:find("credential") or name == "config" then
    return true
  end
  return name:find("key") ~= nil and not name:find("id") and not name:find("name")
end

local function register(v)
  if type(v) == "string" and v ~= "true" and v ~= "false" then log.secret(v) end
end

-- Registers the credentials of decoded Secret data; `encoded` is the
-- Secret's `data` (base64), whose forms are registered too.
local function register_credentials(values, encoded)
  for k, v in pairs(values) do
    if type(k) == "string" and is_credential(k) then
      register(v)
      register(type(encoded) == "table" and encoded[k] or nil)
    end
    local ok, doc = runtime.pcall(cjson.decode, v)
    if ok and type(doc) == "table" then
      for name, field in pairs(doc) do
        if type(field) == "string" and type(name) == "string" and is_credential(name) then register(field) end
      end
    end
  end
end

-- A response holding Secrets (a Secret, a SecretList) registers their
-- credentials as soon as it arrives, whatever then shows it (the REPL, a
-- script's print): the module learns them, so the log knows them.
local base64_decode -- the C module's, set by install

local function learn_secrets(obj)
  if type(obj) ~= "table" then return end
  if obj.kind == "SecretList" and type(obj.items) == "table" then
    for _, item in ipairs(obj.items) do learn_secrets(item) end
  elseif obj.kind == "Secret" or (obj.kind == nil and type(obj.data) == "table" and type(obj.type) == "string") then
    local values = {}
    for k, v in pairs(type(obj.data) == "table" and obj.data or {}) do
      values[k] = type(v) == "string" and base64_decode(v) or nil
    end
    for k, v in pairs(type(obj.stringData) == "table" and obj.stringData or {}) do values[k] = v end
    register_credentials(values, obj.data)
  end
end

-- One request; target = {method, path, verb, resource, name, namespace}.
local function call(client, target, body, content_type)
  if type(body) == "table" then body = cjson.encode(body) end
  local status, text, ctype = client:_http(target.method, target.path, body, content_type)
  if not status then
    local err = text
    if target.resource then
      err.message = ("cannot %s %s: %s"):format(target.verb, describe(target.resource, target.name, target.namespace),
        err.message)
    end
    return nil, err
  end
  if status >= 400 then return http_error(client, target, status, text) end
  if target.resource and target.resource.namespaced then api.saw_namespace(client, target.namespace) end
  if not ctype:find("json", 1, true) then return text, status end
  local ok, decoded = runtime.pcall(cjson.decode, text)
  if not ok then
    return nil, errors.new { code = "k8s", message = ("%s %s: the server sent invalid JSON: %s"):format(
      target.method, target.path, tostring(decoded)) }
  end
  if type(decoded) ~= "table" then return decoded, status end
  learn_secrets(decoded)
  return integers(decoded), status
end

local CONTENT_TYPES = {
  merge = "application/merge-patch+json",
  json = "application/json-patch+json",
}

local function install(M, methods)
  base64_decode = M._base64_decode
  -- client:request(method, path [, body [, {content_type=}]]) -> decoded JSON (or text), status | nil, err
  function methods:request(method, path, body, opts)
    assert(type(method) == "string", "method must be a string")
    method = method:upper()
    local ctype = opts and opts.content_type
    if not ctype and method == "PATCH" then ctype = CONTENT_TYPES.merge end
    return call(self, { method = method, path = path, verb = VERBS[method] }, body, ctype)
  end

  -- client:get(resource, name [, namespace]) -> object | nil, err
  function methods:get(resource, name, namespace)
    local r = api.resource(resource)
    assert(type(name) == "string" and name ~= "", "name must be a non-empty string")
    local ns = namespace or self:namespace()
    local target = { method = "GET", path = api.path(r, ns, name), verb = "get", resource = r, name = name,
      namespace = ns }
    local obj, err = call(self, target)
    if obj ~= nil and (type(obj) ~= "table" or obj[1] ~= nil) then
      return nil, errors.new { code = "k8s", message = ("GET %s: the server's answer is not an object"):format(
        target.path) }
    end
    return obj, err
  end

  -- client:list(resource [, {namespace=, labelSelector=, fieldSelector=, limit=}]) -> list (all pages) | nil, err
  function methods:list(resource, opts)
    local r = api.resource(resource)
    opts = opts or {}
    local ns = opts.namespace or self:namespace()
    local params = { labelSelector = opts.labelSelector, fieldSelector = opts.fieldSelector, limit = opts.limit }
    local result
    repeat
      local target = { method = "GET", path = api.path(r, ns) .. query(params), verb = "list", resource = r,
        namespace = ns }
      local page, err = call(self, target)
      if page == nil then return nil, err end
      if type(page) ~= "table" or page[1] ~= nil or (page.items ~= nil and type(page.items) ~= "table") then
        return nil, errors.new { code = "k8s", message = ("GET %s: the server's answer is not a list (an object "
          .. "with an items array)"):format(target.path) }
      end
      if result then
        table.move(page.items or {}, 1, #(page.items or {}), #result.items + 1, result.items)
      else
        result = page
        result.items = result.items or {}
      end
      local cont = type(page.metadata) == "table" and page.metadata.continue
      params.continue = type(cont) == "string" and cont ~= "" and cont or nil
    until not params.continue
    if type(result.metadata) == "table" then result.metadata.continue = nil end
    return result
  end

  -- client:patch(resource, name, patch [, {type="merge"|"json", namespace=}]) -> object | nil, err
  function methods:patch(resource, name, patch, opts)
    local r = api.resource(resource)
    assert(type(name) == "string" and name ~= "", "name must be a non-empty string")
    assert(type(patch) == "table" or type(patch) == "string", "patch must be a table or JSON text")
    opts = opts or {}
    local ctype = CONTENT_TYPES[opts.type or "merge"]
    if not ctype then error(("unknown patch type %q (merge or json)"):format(tostring(opts.type)), 2) end
    local ns = opts.namespace or self:namespace()
    return call(self, { method = "PATCH", path = api.path(r, ns, name), verb = "patch", resource = r, name = name,
      namespace = ns }, patch, ctype)
  end

  -- client:create(resource, object [, {namespace=, dry_run=}]) -> the created object | nil, err
  -- The namespace: opts.namespace, else the object's, else the client's. With
  -- dry_run the server checks and answers without storing anything.
  function methods:create(resource, object, opts)
    local r = api.resource(resource)
    assert(type(object) == "table", "object must be a table")
    opts = opts or {}
    local meta = type(object.metadata) == "table" and object.metadata or {}
    local ns = opts.namespace or meta.namespace or self:namespace()
    return call(self, { method = "POST", path = api.path(r, ns) .. query { dryRun = opts.dry_run and "All" or nil },
      verb = "create", resource = r, name = meta.name, namespace = ns }, object)
  end

  -- client:delete(resource, name [, {namespace=, dry_run=}]) -> the server's answer | nil, err
  function methods:delete(resource, name, opts)
    local r = api.resource(resource)
    assert(type(name) == "string" and name ~= "", "name must be a non-empty string")
    opts = opts or {}
    local ns = opts.namespace or self:namespace()
    return call(self, { method = "DELETE", path = api.path(r, ns, name) .. query { dryRun = opts.dry_run and "All" or nil },
      verb = "delete", resource = r, name = name, namespace = ns })
  end

  -- client:create_token(serviceaccount [, {namespace=, audiences=, expiration=}])
  --   -> token, expiration (seconds since the epoch) | nil, err
  -- A short-lived token of the ServiceAccount (TokenRequest, as `kubectl create
  -- token`), registered for redaction. Needs create on serviceaccounts/token
  -- for that name.
  function methods:create_token(sa, opts)
    local r = api.resource("serviceaccounts")
    assert(type(sa) == "string" and sa ~= "", "serviceaccount must be a non-empty string")
    opts = opts or {}
    local ns = opts.namespace or self:namespace()
    local answer, err = call(self, { method = "POST", path = api.path(r, ns, sa) .. "/token", verb = "create",
      resource = r, name = sa, namespace = ns, subresource = "token" }, {
      apiVersion = "authentication.k8s.io/v1", kind = "TokenRequest",
      spec = { audiences = opts.audiences, expirationSeconds = opts.expiration or 600 } })
    if not answer then return nil, err end
    local token = type(answer) == "table" and type(answer.status) == "table" and answer.status.token
    if type(token) ~= "string" or token == "" then
      return nil, errors.new { code = "k8s", message = ('the TokenRequest for ServiceAccount "%s" in namespace "%s" '
        .. "returned no token"):format(sa, ns) }
    end
    log.secret(token)
    return token, os.time() + (opts.expiration or 600)
  end

  -- client:can_i(verb, resource [, {namespace=, name=}]) -> allowed, reason | nil, err
  -- Asks the server (SelfSubjectAccessReview), as `kubectl auth can-i` does.
  function methods:can_i(verb, resource, opts)
    local r = api.resource(resource)
    assert(type(verb) == "string" and verb ~= "", "verb must be a non-empty string")
    opts = opts or {}
    local review, err = call(self, { method = "POST", path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
      verb = "create" }, { apiVersion = "authorization.k8s.io/v1", kind = "SelfSubjectAccessReview",
      spec = { resourceAttributes = { verb = verb, group = r.group, resource = r.plural, name = opts.name,
        namespace = r.namespaced and (opts.namespace or self:namespace()) or nil } } })
    if not review then return nil, err end
    local st = type(review) == "table" and type(review.status) == "table" and review.status or {}
    return st.allowed == true, type(st.reason) == "string" and st.reason ~= "" and st.reason or nil
  end

  -- k8s.secret_data(secret) -> {key = decoded value}, credentials registered
  -- (register_credentials); nil, err if a value is not base64.
  function M.secret_data(secret)
    assert(type(secret) == "table", "secret must be a Secret object")
    local out = {}
    for k, v in pairs(type(secret.data) == "table" and secret.data or {}) do
      local value = type(v) == "string" and M._base64_decode(v)
      if not value then
        return nil, errors.new { code = "invalid", message = ("key %q of Secret %q is not base64"):format(
          k, tostring(secret.metadata and secret.metadata.name)) }
      end
      out[k] = value
    end
    for k, v in pairs(type(secret.stringData) == "table" and secret.stringData or {}) do out[k] = v end
    register_credentials(out, secret.data)
    return out
  end

  M.resources = api.resources
  M.resource = api.resource
  M.path = api.path
end

api.install = install
return api
