-- The azure provider's store: Azure Key Vault secrets with an Entra access
-- token for https://vault.azure.net. The token comes from the Workload
-- Identity exchange (a federated service-account token as client assertion):
-- as the environment, a short-lived token of its ServiceAccount (audience
-- api://AzureADTokenExchange) for the SecretProviderClass's clientID and
-- tenantID; as the tool, AZURE_CLIENT_ID, AZURE_TENANT_ID and
-- AZURE_FEDERATED_TOKEN_FILE. AZURE_AUTHORITY_HOST, else Entra's public
-- cloud. The vault: https://NAME.vault.azure.net, or MXPC_KEYVAULT_ENDPOINT/NAME.
-- Small and replaceable by the Workload Identity credential in C.
local log = require "mxpc.log"
local store = require "mxpc.secret_store"

local M = { NAME = "Azure Key Vault" }

local RESOURCE = "https://vault.azure.net"
local EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
local ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

local function env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

local function form(t)
  local parts = {}
  for _, kv in ipairs(t) do
    parts[#parts + 1] = kv[1] .. "=" .. tostring(kv[2]):gsub("[^%w%-%._~]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
  end
  return table.concat(parts, "&")
end

function M.vault_url(name)
  local base = env("MXPC_KEYVAULT_ENDPOINT")
  if base then return base:gsub("/+$", "") .. "/" .. name end
  return ("https://%s.vault.azure.net"):format(name)
end

-- An Entra access token for Key Vault: token, who | nil, err
local function access_token(ctx)
  local client, tenant, assertion, who
  if ctx.identity == "tool" then
    client, tenant = env("AZURE_CLIENT_ID"), env("AZURE_TENANT_ID")
    local file = env("AZURE_FEDERATED_TOKEN_FILE")
    if not (client and tenant and file) then
      return store.fail("usage", "reading Key Vault as the tool's own identity needs AZURE_CLIENT_ID, "
        .. "AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE (Azure Workload Identity)",
        "run where Workload Identity sets them (a pod of an annotated ServiceAccount), or use --identity environment")
    end
    local f, ferr = io.open(file)
    if not f then return store.fail("io", "cannot read AZURE_FEDERATED_TOKEN_FILE: " .. tostring(ferr)) end
    assertion = (f:read("a") or ""):gsub("%s+$", "")
    f:close()
    log.secret(assertion)
    who = "the tool's identity (client id " .. client .. ")"
  else
    client = ctx.params.clientID
    tenant = ctx.params.tenantID or ctx.params.tenantId
    if not client or client == "" or not tenant or tenant == "" then
      return store.fail("environment", ctx.where .. ": parameters.clientID and tenantID are needed for the "
        .. "environment's identity", "or use --identity tool")
    end
    local err
    assertion, err = store.sa_token(ctx, { EXCHANGE_AUDIENCE })
    if not assertion then return nil, err end
    who = ("ServiceAccount %s/%s (client id %s)"):format(ctx.namespace, ctx.name, client)
  end
  local authority = (env("AZURE_AUTHORITY_HOST") or "https://login.microsoftonline.com"):gsub("/+$", "")
  local status, doc = store.request(ctx.where, { method = "POST",
    url = ("%s/%s/oauth2/v2.0/token"):format(authority, tenant),
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
    body = form { { "grant_type", "client_credentials" }, { "client_id", client },
      { "client_assertion_type", ASSERTION_TYPE }, { "client_assertion", assertion },
      { "scope", RESOURCE .. "/.default" } } })
  if not status then return nil, doc end
  if status ~= 200 or type(doc.access_token) ~= "string" then
    local desc = tostring(doc.error_description or doc.error or ("HTTP " .. status)):match("^[^\r\n]*")
    return store.fail("unauthorized", ("%s: Entra ID refused a Key Vault token for %s: %s"):format(ctx.where, who, desc),
      "the managed identity needs a federated credential for this ServiceAccount (issuer, subject "
      .. "system:serviceaccount:NAMESPACE:NAME, audience api://AzureADTokenExchange)")
  end
  log.secret(doc.access_token)
  return doc.access_token, who
end

function M.fetch(entries, ctx)
  local name = ctx.params.keyvaultName
  if type(name) ~= "string" or not name:match("^[%w%-]+$") then
    return store.fail("environment", ctx.where .. ": parameters.keyvaultName is missing or not a vault name")
  end
  for _, e in ipairs(entries) do
    if e.kind ~= nil and e.kind ~= "secret" then
      return store.fail("unsupported", ('%s: objectType "%s" is not supported'):format(e.where, e.kind),
        "the tool reads Key Vault secrets (objectType: secret)")
    end
  end
  local token, who = access_token(ctx)
  if not token then return nil, who end
  local base = M.vault_url(name)
  local values, sources = {}, {}
  for _, e in ipairs(entries) do
    local url = ("%s/secrets/%s%s?api-version=7.4"):format(base, e.name, e.version and ("/" .. e.version) or "")
    local status, doc = store.request(ctx.where, { url = url, headers = { Authorization = "Bearer " .. token } })
    if not status then return nil, doc end
    local err = type(doc.error) == "table" and doc.error or {}
    local text = tostring(err.message or ""):match("^[^\r\n]*")
    if status == 403 then
      return store.fail("forbidden", ("%s: Key Vault %s denied secret %s to %s: %s"):format(ctx.where, name, e.name,
        who, text), 'the identity needs the role "Key Vault Secrets User" on the vault (or an access policy '
        .. "allowing secret get); see docs/environment.md")
    elseif status == 404 then
      return store.fail("not_found", ("%s: Key Vault %s has no secret %s"):format(e.where, name, e.name),
        "add it to the vault, or correct the SecretProviderClass's objectName")
    elseif status ~= 200 or type(doc.value) ~= "string" then
      return store.fail(status == 401 and "unauthorized" or "store", ("%s: Key Vault %s: secret %s: HTTP %d %s%s"):format(
        ctx.where, name, e.name, status, tostring(err.code or ""), text ~= "" and (": " .. text) or ""))
    end
    store.register { [e.key] = doc.value }
    values[e.key] = doc.value
    sources[e.key] = ("Key Vault %s, secret %s"):format(name, e.name)
  end
  return values, sources
end

return M
