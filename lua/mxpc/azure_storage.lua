-- An environment whose files are in Azure Blob Storage (storage-service-name
-- com.mendix.storage.azure): its settings from the credentials Secret (both
-- layouts: key-per-value names, or the runtime settings of `config`, which
-- environment.lua maps to them), the blob name of a file, and the client.
--
-- Settings, as Mendix documents them (Operator 2.10+; managed identity 2.17+):
--   storage-azure-account-name, storage-azure-account-key   Shared Key
--   storage-azure-shared-access-signature                   a SAS token (runtime setting
--                                                           com.mendix.storage.azure.SharedAccessSignature)
--   storage-azure-use-default-azure-credential = true       Workload Identity (bearer tokens)
--   storage-azure-container, storage-azure-blob-endpoint (the account's primary
--   endpoint; default https://ACCOUNT.blob.core.windows.net), storage-azure-use-https
--
-- The blob name of a file: the FileDocument's UUID, in the container, with
-- no prefix. Mendix does not document it; it is assumed to be as for
-- MinIO-style S3 storage (the UUID as the key) and is kept in blob_name alone.
local errors = require "mxpc.error"
local log = require "mxpc.log"

local M = {}

M.SERVICE = "com.mendix.storage.azure"

-- Runtime setting names (config layout) -> key-per-value names.
M.CONFIG_KEYS = {
  ["com.mendix.storage.azure.AccountName"] = "storage-azure-account-name",
  ["com.mendix.storage.azure.AccountKey"] = "storage-azure-account-key",
  ["com.mendix.storage.azure.Container"] = "storage-azure-container",
  ["com.mendix.storage.azure.SharedAccessSignature"] = "storage-azure-shared-access-signature",
  ["com.mendix.storage.azure.BlobEndpoint"] = "storage-azure-blob-endpoint",
  ["com.mendix.storage.azure.UseHttps"] = "storage-azure-use-https",
  ["com.mendix.storage.azure.UseDefaultAzureCredential"] = "storage-azure-use-default-azure-credential",
}

local function fail(code, message, hint) return nil, errors.new { code = code, message = message, hint = hint } end
local function set(v) return v ~= nil and v ~= "" end
local function truthy(v) return v == true or (type(v) == "string" and v:lower() == "true") end

-- The storage account of an endpoint: https://ACCOUNT.blob.core.windows.net (and
-- the other clouds' suffixes), or Azurite's https://host:port/ACCOUNT.
function M.account_of(endpoint)
  local host, path = endpoint:match("^https?://([^/]+)(.*)$")
  if not host then return nil end
  local acct = host:match("^([%w]+)%.blob%.")
  if acct then return acct end
  return path:match("^/([%w]+)/?$")
end

-- The blob name of a file (see the top of this file for what is assumed).
function M.blob_name(storage, uuid) return (storage.prefix or "") .. uuid end

function M.settings(values, where)
  local container = values["storage-azure-container"]
  if not set(container) then
    return fail("environment", where .. ": no storage-azure-container",
      "an environment on Azure Blob Storage names its container there; see docs/environment.md")
  end
  local account = values["storage-azure-account-name"]
  local endpoint = values["storage-azure-blob-endpoint"]
  local https = not (values["storage-azure-use-https"] and values["storage-azure-use-https"]:lower() == "false")
  if not set(endpoint) then
    if not set(account) then
      return fail("environment", where .. ": neither storage-azure-blob-endpoint nor storage-azure-account-name",
        "one of them says which storage account holds the files")
    end
    endpoint = ("%s://%s.blob.core.windows.net"):format(https and "https" or "http", account)
  end
  endpoint = endpoint:gsub("/+$", "")
  if not endpoint:match("^https?://[^/]+") then
    return fail("environment", ('%s: storage-azure-blob-endpoint "%s" is not an http(s) URL'):format(where, endpoint))
  end
  if not set(account) then account = M.account_of(endpoint) end
  if not set(account) then
    return fail("environment", ('%s: the storage account of "%s" is not known'):format(where, endpoint),
      "set storage-azure-account-name")
  end
  local key, sas = values["storage-azure-account-key"], values["storage-azure-shared-access-signature"]
  log.secret(key)
  log.secret(sas)
  local wi = truthy(values["storage-azure-use-default-azure-credential"])
  if not set(key) and not set(sas) and not wi then
    return fail("environment", where .. ": no storage-azure-account-key, no SAS and no "
      .. "storage-azure-use-default-azure-credential", "the Secret is not in a layout this tool knows; see docs/environment.md")
  end
  return {
    service = "azure", endpoint = endpoint, bucket = container, prefix = "", account = account,
    account_key = set(key) and key or nil, sas = (not set(key) and set(sas)) and sas or nil,
    workload_identity = not set(key) and not set(sas) and wi, https = endpoint:sub(1, 6) == "https:",
  }
end

local function nonempty(s) return s ~= nil and s ~= "" and s or nil end

-- The identity of Workload Identity for messages and the token's settings.
function M.workload_identity()
  local client_id = nonempty(os.getenv("AZURE_CLIENT_ID"))
  return {
    client_id = client_id, tenant_id = nonempty(os.getenv("AZURE_TENANT_ID")),
    token_file = nonempty(os.getenv("AZURE_FEDERATED_TOKEN_FILE")),
    authority = nonempty(os.getenv("AZURE_AUTHORITY_HOST")) or "https://login.microsoftonline.com/",
  }
end

-- The client of an environment's storage (st = settings above).
function M.connect(st)
  local azure = require "mxpc.azure"
  local o = { endpoint = st.endpoint, account = st.account, key = st.account_key, sas = st.sas,
    ca_file = nonempty(os.getenv("SSL_CERT_FILE")), ca_dir = nonempty(os.getenv("SSL_CERT_DIR")) }
  if st.workload_identity then
    local wi = M.workload_identity()
    if not (wi.client_id and wi.tenant_id and wi.token_file) then
      return fail("credentials", "the environment's files are reached with Azure Workload Identity "
        .. "(storage-azure-use-default-azure-credential), but AZURE_CLIENT_ID, AZURE_TENANT_ID and "
        .. "AZURE_FEDERATED_TOKEN_FILE are not all set",
        "run in a pod whose ServiceAccount is annotated with azure.workload.identity/client-id (docs/jump-pod.md)")
    end
    o.workload_identity = true
    o.identity = "managed identity " .. wi.client_id
  end
  local client, err = azure.client(o)
  if not client then return nil, err end
  local _, perr = client:head(st.bucket, M.blob_name(st, ".mxpc-probe"))
  if perr and not errors.is(perr, "not_found") and not errors.is(perr, "forbidden") then return nil, perr end
  if perr and perr.s3_code == "ContainerNotFound" then return nil, perr end
  return client
end

-- --- archives in Azure Blob Storage: -f azblob://ACCOUNT/CONTAINER/BLOB --------------

function M.location(spec)
  local account, container, blob = spec:match("^azblob://([^/]+)/([^/]+)/(.+)$")
  if not account or blob:sub(-1) == "/" then
    errors.raise("usage", ("%s is not an Azure blob: write azblob://ACCOUNT/CONTAINER/BLOB, "
      .. "e.g. azblob://mystorage/backups/app.tar.gz"):format(spec))
  end
  return { kind = "s3", service = "azure", spec = spec, account = account, bucket = container, key = blob }
end

-- The client of an archive's account: --archive-endpoint (default
-- https://ACCOUNT.blob.core.windows.net), and the credentials the Azure CLI
-- takes from the environment: AZURE_STORAGE_KEY, else AZURE_STORAGE_SAS_TOKEN,
-- else Workload Identity (AZURE_FEDERATED_TOKEN_FILE, ...).
function M.archive_client(loc, opts)
  local key, sas = nonempty(os.getenv("AZURE_STORAGE_KEY")), nonempty(os.getenv("AZURE_STORAGE_SAS_TOKEN"))
  log.secret(key)
  log.secret(sas)
  local o = { endpoint = opts.archive_endpoint or ("https://%s.blob.core.windows.net"):format(loc.account),
    account = loc.account, key = key, sas = not key and sas or nil,
    ca_file = nonempty(os.getenv("SSL_CERT_FILE")), ca_dir = nonempty(os.getenv("SSL_CERT_DIR")) }
  if not key and not sas then
    local wi = M.workload_identity()
    if not (wi.client_id and wi.tenant_id and wi.token_file) then
      return fail("credentials", ("no credentials for the storage account %s of %s"):format(loc.account, loc.spec),
        "set AZURE_STORAGE_KEY (the account key) or AZURE_STORAGE_SAS_TOKEN, or run with Azure Workload Identity")
    end
    o.workload_identity = true
    o.identity = "managed identity " .. wi.client_id
  end
  return require("mxpc.azure").client(o)
end

return M
