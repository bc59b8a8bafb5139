-- An environment's credentials kept in a secret store through the Secrets
-- Store CSI Driver (docs/environment.md, "Secret stores"): the
-- SecretProviderClass named after the MendixApp says which store and how its
-- values map to the keys the app reads (database-host, ...). This module
-- finds it, reads its mapping and asks the provider's module (store_aws,
-- store_vault, store_azure) for the values the tool needs, and only those.
--
-- Identity: `tool` reads the store with the tool's own credentials (AWS
-- credential chain, VAULT_TOKEN, Azure Workload Identity variables);
-- `environment` (the default) with a short-lived token of the environment's
-- ServiceAccount (TokenRequest), as the app itself does.
local errors = require "mxpc.error"
local log = require "mxpc.log"
local yaml = require "mxpc.yaml"
local runtime = require "mxpc.runtime"

local M = {}

M.ENV_CLASS = "privatecloud.mendix.com/environment-class"
M.OVERRIDE = "allowOverrideSecretsWithSecretStoreCSIDriver"
M.IDENTITIES = { "environment", "tool" }

-- The keys the tool reads; a store's other values (mx-admin-password,
-- mx-debugger-password, mx-const-*, mx-runtime-*, ...) are never read.
M.KEYS = {
  "database-type", "database-jdbc-url", "database-host", "database-name", "database-username",
  "database-password", "storage-service-name", "storage-endpoint", "storage-access-key-id",
  "storage-secret-access-key", "storage-bucket-name", "storage-region", "storage-resource-name-prefix",
  "storage-use-ca-certificates", "storage-perform-delete", "storage-azure-account-name",
  "storage-azure-account-key", "storage-azure-container", "storage-azure-blob-endpoint",
  "storage-azure-use-default-azure-credential", "storage-azure-use-https",
}
local NEEDED = {}
for _, k in ipairs(M.KEYS) do NEEDED[k] = true end
function M.needed(key) return NEEDED[key] == true end

-- Values that may appear in messages (names, hosts, flags); every other value
-- a store hands over is registered for redaction as soon as it arrives.
local SHOWN = {
  ["database-type"] = true, ["database-jdbc-url"] = true, ["database-host"] = true, ["database-name"] = true,
  ["database-username"] = true, ["storage-service-name"] = true, ["storage-endpoint"] = true,
  ["storage-access-key-id"] = true, ["storage-bucket-name"] = true, ["storage-region"] = true,
  ["storage-resource-name-prefix"] = true, ["storage-use-ca-certificates"] = true,
  ["storage-perform-delete"] = true, ["storage-azure-account-name"] = true, ["storage-azure-container"] = true,
  ["storage-azure-blob-endpoint"] = true, ["storage-azure-use-default-azure-credential"] = true,
  ["storage-azure-use-https"] = true,
}

-- Registers what a store answered: `doc` maps names to values (a whole JSON
-- secret, a KV entry). Only the shown keys' values stay readable.
function M.register(doc)
  for k, v in pairs(doc) do
    if not SHOWN[k] and type(v) == "string" and v ~= "" and v ~= "true" and v ~= "false" then log.secret(v) end
  end
end

-- A JSON value of a store as the text the app sees: a whole number without
-- the ".0" cjson's floats carry (a port 5432, not "5432.0").
function M.text(v)
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  return type(v) == "string" and v or tostring(v)
end

local function fail(code, message, hint)
  return nil, errors.new { code = code, message = message, hint = hint }
end
M.fail = fail

-- --- discovery ----------------------------------------------------------------------

-- The SecretProviderClass the environment's app mounts, or nil when it has
-- none (or one the app does not use). A third result is a warning: the
-- cluster did not let us look (forbidden).
function M.find(client, app)
  local ns, name = app.metadata.namespace, app.metadata.name
  local spc, err = client:get("secretproviderclasses", name, ns)
  if not spc then
    if errors.is(err, "not_found") then return nil end
    if errors.is(err, "forbidden") then return nil, nil, err end
    return nil, err
  end
  local meta = type(spc.metadata) == "table" and spc.metadata or {}
  local annotations = type(meta.annotations) == "table" and meta.annotations or {}
  local spec = type(app.spec) == "table" and app.spec or {}
  if annotations[M.ENV_CLASS] ~= "true" and spec[M.OVERRIDE] ~= true then
    log.debug("SecretProviderClass ignored: neither annotated " .. M.ENV_CLASS .. ' "true" nor allowed by the '
      .. "MendixApp's spec." .. M.OVERRIDE, { namespace = ns, name = name })
    return nil
  end
  return spc
end

-- --- the mapping ----------------------------------------------------------------------

local function parse(text, where)
  if type(text) ~= "string" or text == "" then
    return fail("environment", where .. ": no parameters.objects", "the SecretProviderClass must list its objects; "
      .. "see docs/environment.md")
  end
  local doc, err = yaml.decode(text)
  if err then return fail("environment", ("%s: parameters.objects: %s"):format(where, err.message)) end
  return doc
end

-- A jmesPath of the forms the AWS provider documents for a top-level key: a
-- key in double quotes ('"database-host"') or a bare identifier (dbHost).
function M.jmes_key(path)
  if type(path) ~= "string" then return nil end
  return path:match('^"([^"\\]+)"$') or (path:match("^[%a_][%w_]*$") and path) or nil
end

local function basename(s) return (tostring(s):match("([^/:]+)$")) or tostring(s) end

-- Every object of the SecretProviderClass as {key = the name the app sees,
-- ...what the provider needs to read it}.
local ENTRIES = {}

function ENTRIES.aws(doc, where)
  if type(doc) ~= "table" then return fail("environment", where .. ": parameters.objects is not a YAML list") end
  local out = {}
  for i, o in ipairs(doc) do
    if type(o) ~= "table" or type(o.objectName) ~= "string" then
      return fail("environment", ("%s: parameters.objects[%d] has no objectName"):format(where, i))
    end
    local kind = o.objectType or (o.objectName:match("^arn:aws:secretsmanager:") and "secretsmanager") or nil
    local jmes = type(o.jmesPath) == "table" and o.jmesPath or nil
    if jmes then
      for j, p in ipairs(jmes) do
        if type(p) ~= "table" or type(p.objectAlias) ~= "string" then
          return fail("environment", ("%s: parameters.objects[%d].jmesPath[%d] has no objectAlias"):format(where, i, j))
        end
        out[#out + 1] = { key = p.objectAlias, secret = o.objectName, kind = kind, path = p.path,
          where = ("%s objects[%d].jmesPath[%d]"):format(where, i, j) }
      end
    else
      out[#out + 1] = { key = o.objectAlias or basename(o.objectName), secret = o.objectName, kind = kind,
        where = ("%s objects[%d]"):format(where, i) }
    end
  end
  return out
end

function ENTRIES.vault(doc, where)
  if type(doc) ~= "table" then return fail("environment", where .. ": parameters.objects is not a YAML list") end
  local out = {}
  for i, o in ipairs(doc) do
    if type(o) ~= "table" or type(o.objectName) ~= "string" or type(o.secretPath) ~= "string"
        or type(o.secretKey) ~= "string" then
      return fail("environment", ("%s: parameters.objects[%d] needs objectName, secretPath and secretKey"):format(
        where, i))
    end
    out[#out + 1] = { key = o.objectName, path = o.secretPath:gsub("^/+", ""), field = o.secretKey,
      where = ("%s objects[%d]"):format(where, i) }
  end
  return out
end

function ENTRIES.azure(doc, where)
  if type(doc) ~= "table" or type(doc.array) ~= "table" then
    return fail("environment", where .. ": parameters.objects has no array: list")
  end
  local out = {}
  for i, text in ipairs(doc.array) do
    local o = text
    if type(text) == "string" then
      local perr
      o, perr = yaml.decode(text)
      if perr then return fail("environment", ("%s: parameters.objects array[%d]: %s"):format(where, i, perr.message)) end
    end
    if type(o) ~= "table" or type(o.objectName) ~= "string" then
      return fail("environment", ("%s: parameters.objects array[%d] has no objectName"):format(where, i))
    end
    out[#out + 1] = { key = o.objectAlias ~= "" and o.objectAlias or o.objectName, name = o.objectName,
      kind = o.objectType, version = o.objectVersion ~= "" and o.objectVersion or nil,
      where = ("%s objects array[%d]"):format(where, i) }
  end
  return out
end

local PROVIDERS = { aws = "mxpc.store_aws", vault = "mxpc.store_vault", azure = "mxpc.store_azure" }

-- The SecretProviderClass's parameters: a map of strings (as its CRD has
-- them); anything else in the object is left out.
function M.parameters(spc)
  local params = type(spc.spec) == "table" and type(spc.spec.parameters) == "table" and spc.spec.parameters or {}
  local out = {}
  for k, v in pairs(params) do
    if type(k) == "string" and type(v) == "string" then out[k] = v end
  end
  return out
end

-- The entries of the keys the tool needs (the others are dropped unread).
function M.entries(spc, where)
  local spec = type(spc.spec) == "table" and spc.spec or {}
  local parse_entries = ENTRIES[spec.provider]
  if not parse_entries then
    return fail("unsupported", ('%s: provider "%s" is not supported'):format(where, tostring(spec.provider)),
      "the tool reads the aws, vault and azure providers' stores")
  end
  local doc, err = parse(M.parameters(spc).objects, where)
  if err then return nil, err end
  local all, perr = parse_entries(doc, where)
  if not all then return nil, perr end
  local out = {}
  for _, e in ipairs(all) do if NEEDED[e.key] then out[#out + 1] = e end end
  if #out == 0 then
    return fail("environment", where .. ": maps none of the keys the tool needs (database-host, ...)",
      "the objects' aliases must be the keys Mendix documents; see docs/environment.md")
  end
  return out
end

-- --- identities -----------------------------------------------------------------------

-- A short-lived token of the environment's ServiceAccount for `audiences`
-- (nil: the API server's).
function M.sa_token(ctx, audiences)
  local token, err = ctx.client:create_token(ctx.name, { namespace = ctx.namespace, audiences = audiences,
    expiration = 600 })
  if not token then
    if errors.is(err, "forbidden") then
      err.hint = (err.hint or "") .. "; or read the store with the tool's own credentials: --identity tool"
    elseif errors.is(err, "not_found") then
      err.hint = ('the app\'s identity is a ServiceAccount named after the MendixApp ("%s"); create it as Mendix '
        .. "documents, or use --identity tool"):format(ctx.name)
    end
    return nil, err
  end
  return token
end

-- The environment's ServiceAccount (for its annotations).
function M.service_account(ctx)
  local sa, err = ctx.client:get("serviceaccounts", ctx.name, ctx.namespace)
  if not sa and errors.is(err, "not_found") then
    err.hint = ('the app\'s identity is a ServiceAccount named after the MendixApp ("%s"); create it as Mendix '
      .. "documents, or use --identity tool"):format(ctx.name)
  end
  return sa, err
end

-- --- HTTP ---------------------------------------------------------------------------------

-- One request to a store: status, the decoded JSON answer (or {}), or nil, err
-- naming `what` when the store cannot be reached.
function M.request(what, req)
  local cjson = require "cjson"
  req.timeout = req.timeout or 30
  req.attempts = req.attempts or 2
  local res, err = require("mxpc.http").request(req)
  if not res then
    err.message = ("%s: cannot reach %s: %s"):format(what, req.url:match("^(https?://[^/?]+)") or req.url, err.message)
    err.hint = err.hint or ("check the address, and that its CA is trusted (%s)"):format(
      req.ca_file and ("the CA file " .. req.ca_file) or "SSL_CERT_FILE or SSL_CERT_DIR")
    return nil, err
  end
  local ok, doc = runtime.pcall(cjson.decode, res.body)
  return res.status, ok and type(doc) == "table" and doc or {}
end

-- --- reading ------------------------------------------------------------------------------

-- The values of the needed keys from the store the SecretProviderClass names:
-- {key = value}, {key = where it came from}, and the store's description.
-- ctx = {client, namespace, name, identity}.
function M.read(spc, ctx)
  local where = ("SecretProviderClass %s/%s"):format(ctx.namespace, ctx.name)
  local entries, err = M.entries(spc, where)
  if not entries then return nil, err end
  local provider = require(PROVIDERS[spc.spec.provider])
  ctx.params = M.parameters(spc)
  ctx.where = where
  local values, sources = provider.fetch(entries, ctx)
  if not values then return nil, sources end
  for _, e in ipairs(entries) do
    if values[e.key] == nil then
      return fail("environment", ("%s: the store has no value for %s"):format(e.where, e.key),
        "add it to the store, or correct the SecretProviderClass's mapping")
    end
    log.debug("secret store value", { key = e.key, from = sources[e.key] })
  end
  return values, ("%s (%s)"):format(where, provider.NAME)
end

return M
