-- The vault provider's store: HashiCorp Vault. As the environment: a
-- Kubernetes auth login (vaultKubernetesMountPath, default "kubernetes") to
-- roleName with a short-lived token of its ServiceAccount (for the
-- SecretProviderClass's `audience`, else the API server's); as the tool:
-- VAULT_TOKEN. Then a read of each secretPath (KV v2: secret/data/NAME; KV v1
-- paths work too). The CA: VAULT_CACERT (as for the vault CLI), else the
-- SecretProviderClass's vaultCACertPath where that file is on this machine
-- (the driver reads it on the node), else SSL_CERT_FILE / SSL_CERT_DIR,
-- else the system's.
local cjson = require "cjson"
local log = require "mxpc.log"
local store = require "mxpc.secret_store"

local M = { NAME = "HashiCorp Vault" }

local function errors_text(doc)
  local list = type(doc.errors) == "table" and doc.errors or {}
  local parts = {}
  for _, e in ipairs(list) do parts[#parts + 1] = (tostring(e):gsub("%s+", " "):gsub("^%s+", ""):gsub("%s+$", "")) end
  return #parts > 0 and table.concat(parts, "; ") or "no details"
end

local function login(ctx, addr)
  local mount = (ctx.params.vaultKubernetesMountPath or ""):gsub("^/+", ""):gsub("/+$", "")
  if mount == "" then mount = "kubernetes" end
  local role = ctx.params.roleName
  if type(role) ~= "string" or role == "" then
    return store.fail("environment", ctx.where .. ": no parameters.roleName for the Vault login")
  end
  local audience = ctx.params.audience
  local jwt, err = store.sa_token(ctx, audience and audience ~= "" and { audience } or nil)
  if not jwt then return nil, err end
  local status, doc = store.request(ctx.where, { method = "POST", url = ("%s/v1/auth/%s/login"):format(addr, mount),
    ca_file = ctx.ca_file,
    headers = { ["Content-Type"] = "application/json" }, body = cjson.encode { role = role, jwt = jwt } })
  if not status then return nil, doc end
  local auth = type(doc.auth) == "table" and doc.auth or {}
  if status ~= 200 or type(auth.client_token) ~= "string" then
    return store.fail(status == 403 and "forbidden" or "store", ('%s: Vault refused the Kubernetes login (mount "%s", '
      .. 'role "%s") of ServiceAccount %s/%s: HTTP %d: %s'):format(ctx.where, mount, role, ctx.namespace, ctx.name,
      status, errors_text(doc)),
      ("the role must be bound to it: vault write auth/%s/role/%s bound_service_account_names=%s "
        .. "bound_service_account_namespaces=%s%s policies=...; see docs/environment.md"):format(mount, role,
        ctx.name, ctx.namespace, audience and (" audience=" .. audience) or ""))
  end
  log.secret(auth.client_token)
  return auth.client_token, ("role %s (ServiceAccount %s/%s)"):format(role, ctx.namespace, ctx.name)
end

-- The CA file Vault's certificate is checked against: VAULT_CACERT
-- (`env_cacert`), else parameters.vaultCACertPath when it can be read here;
-- nil for SSL_CERT_FILE / SSL_CERT_DIR or the system's. Returns the file and
-- where it came from, or nil and why vaultCACertPath was not used.
function M.ca_file(params, env_cacert)
  if env_cacert and env_cacert ~= "" then return env_cacert, "VAULT_CACERT" end
  local path = params.vaultCACertPath
  if type(path) ~= "string" or path == "" then return nil end
  local f = io.open(path, "r")
  if not f then
    return nil, ("vaultCACertPath %s is not on this machine (the driver reads it on the node); set VAULT_CACERT "
      .. "to that CA here"):format(path)
  end
  f:close()
  return path, "vaultCACertPath"
end

function M.fetch(entries, ctx)
  local addr = ctx.params.vaultAddress
  if type(addr) ~= "string" or not addr:match("^https?://") then
    return store.fail("environment", ctx.where .. ": parameters.vaultAddress is not an http(s) URL")
  end
  addr = addr:gsub("/+$", "")
  local ca, from = M.ca_file(ctx.params, os.getenv("VAULT_CACERT"))
  ctx.ca_file = ca
  if ca then
    log.debug("Vault's CA", { file = ca, from = from })
  elseif from then
    log.info(from .. ": trusting SSL_CERT_FILE, SSL_CERT_DIR or the system's CAs instead")
  end
  local token, who
  if ctx.identity == "tool" then
    token, who = os.getenv("VAULT_TOKEN"), "VAULT_TOKEN"
    if not token or token == "" then
      return store.fail("usage", "reading Vault as the tool's own identity needs VAULT_TOKEN",
        "set VAULT_TOKEN to a token whose policy may read the secret paths, or use --identity environment")
    end
    log.secret(token)
  else
    local err
    token, err = login(ctx, addr)
    if not token then return nil, err end
    who = err
  end
  local values, sources, docs = {}, {}, {}
  for _, e in ipairs(entries) do
    if not docs[e.path] then
      local status, doc = store.request(ctx.where, { url = ("%s/v1/%s"):format(addr, e.path), ca_file = ctx.ca_file,
        headers = { ["X-Vault-Token"] = token } })
      if not status then return nil, doc end
      if status == 403 then
        return store.fail("forbidden", ("%s: Vault denied reading %s as %s: %s"):format(ctx.where, e.path, who,
          errors_text(doc)), ('the token\'s policy needs: path "%s" { capabilities = ["read"] }; an expired token '
          .. "is refused the same way"):format(e.path))
      elseif status == 404 then
        return store.fail("not_found", ("%s: Vault has no secret at %s"):format(e.where, e.path),
          "check secretPath (KV version 2 paths read MOUNT/data/NAME)")
      elseif status ~= 200 or type(doc.data) ~= "table" then
        return store.fail("store", ("%s: reading %s from Vault: HTTP %d: %s"):format(ctx.where, e.path, status,
          errors_text(doc)))
      end
      local data = doc.data
      if type(data.data) == "table" and type(data.metadata) == "table" then data = data.data end -- KV v2
      store.register(data)
      docs[e.path] = data
    end
    local v = docs[e.path][e.field]
    if type(v) == "table" then
      return store.fail("environment", ("%s: Vault %s, key %s: an object or a list, not a value"):format(e.where,
        e.path, e.field))
    elseif v ~= nil and v ~= cjson.null then
      values[e.key] = store.text(v)
      sources[e.key] = ("Vault %s, key %s"):format(e.path, e.field)
    end
  end
  return values, sources
end

return M
