-- The words of Azure Blob Storage errors, as s3_api.lua words S3's: the
-- Azure client (src/azure_blob.c on the S3 client's engine) reports what
-- happened as facts, and this module turns them into the error a person
-- reads: its code, message and hint.
--
-- describe(f) -> code, message, hint. f as for s3_api.describe, with
--   service       "azure"
--   s3_code       the answer's x-ms-error-code (or <Code>): AuthenticationFailed,
--                 AuthorizationPermissionMismatch, ContainerNotFound, BlobNotFound, ...
--   object        "azblob://container/blob"; bucket = the container, key = the blob
--   action        the Blob operation: "Put Blob", "Put Block", "Put Block List", "Get Blob",
--                 "List Blobs", "Delete Blob", ... (src/azure_blob.c)
--   creds_source  the identity in use: "account key", "SAS token", "bearer token", or
--                 what the caller named (e.g. "managed identity <client id>")
--   access_key    the storage account
--   copy_source   a server-side copy's source URL (without its SAS)
local M = {}

local s3_api = require "mxpc.s3_api"

-- the role an operation needs: reading needs Reader, the rest Contributor
local function role(f)
  if f.method == "GET" or f.method == "HEAD" then return "Storage Blob Data Reader" end
  return "Storage Blob Data Contributor"
end

-- the SAS permission (sp=) an operation needs
local function sas_permission(f)
  local a = f.action or ""
  if a == "List Blobs" then return "l (list)" end
  if a == "Delete Blob" then return "d (delete)" end
  if a == "Create Container" or a == "Delete Container" then return "c (create) on an account SAS" end
  if f.method == "GET" or f.method == "HEAD" then return "r (read)" end
  return "w (write)"
end

local function detail(f)
  local m = (f.s3_message or ""):match("^[^\n]*") or ""
  return m ~= "" and (": " .. m) or ""
end

-- How to give the identity in use a role: `az role assignment create` for the
-- managed identity's own client id, where the identity is known by it.
local function assign_hint(f, role_name)
  local client_id = (f.creds_source or ""):match("^managed identity (%S+)$")
  return ('assign %s to the identity (az role assignment create --role "%s" --assignee %s '
    .. "--scope <the storage account's id>)"):format(role_name, role_name, client_id or "<the identity's client id>")
end

local function what(f)
  if f.action and f.action ~= "" then return ("%s %s"):format(f.action, f.object) end
  return ("%s %s"):format(f.method, f.object)
end

local function auth_hint(f)
  if f.creds_source == "account key" then
    return "check storage-azure-account-key: it must be one of the account's two access keys (base64)"
  elseif f.creds_source == "SAS token" then
    return "check the SAS token: its signature, start and expiry times and permissions (sp)"
  end
  return "check that the token is for https://storage.azure.com and that the identity belongs to the account's tenant"
end

local HTTP = {
  -- a server-side copy (Copy Blob from URL) whose source the service could not read
  { function(f) return (f.copy_source or "") ~= "" and f.s3_code == "CannotVerifyCopySource" end, function(f)
    return "forbidden", ("Azure Storage could not read the source of a server-side copy: %s into %s%s"):format(
      f.copy_source, f.object, detail(f)),
      "the source's SAS must allow reading its blobs (sp=r) and be valid now; or copy with --copy-mode stream"
  end },
  { function(f) return f.status == 412 and f.if_match ~= "" end, function(f)
    return "changed", ("%s changed while it was being read (at byte %d, its ETag is no longer %s)"):format(
      f.object, f.resume_at, f.if_match), "run it again: the blob was replaced while it was read"
  end },
  { function(f) return f.s3_code == "ContainerNotFound" or (f.status == 404 and f.key == "") end, function(f)
    return "not_found", ("no such container: %s in the storage account %s (%s)"):format(f.bucket, f.access_key,
      f.endpoint), "check the container's name (an environment's: storage-azure-container) and the account's blob endpoint"
  end },
  { function(f) return f.s3_code == "BlobNotFound" or f.status == 404 end, function(f)
    return "not_found", ("no such blob: %s%s"):format(f.object,
      f.s3_code ~= "" and (" (" .. f.s3_code .. ")") or "")
  end },
  -- Azure answers a wrong key or token with 403 AuthenticationFailed; Azurite with 400 InvalidAuthenticationInfo
  { function(f)
      return f.s3_code == "AuthenticationFailed" or f.s3_code == "InvalidAuthenticationInfo"
        or f.s3_code == "NoAuthenticationInformation"
    end, function(f)
    return "signature", ("Azure Storage did not accept the %s of the storage account %s for %s (%s)%s"):format(
      f.creds_source, f.access_key, what(f), f.s3_code, detail(f)), auth_hint(f)
  end },
  { function(f) return f.status == 403 and f.creds_source == "SAS token" end, function(f)
    return "forbidden", ("access denied: %s (%s)%s; the SAS token in use does not allow it: it needs the "
      .. "permission %s (an identity would need the role %s)"):format(what(f),
      f.s3_code ~= "" and f.s3_code or "HTTP 403", detail(f), sas_permission(f), role(f)),
      "use a SAS token whose permissions (sp=) allow it: read and list (rl) to back up, also write, delete and "
        .. "create (rwdlc) to restore"
  end },
  { function(f)
      return f.s3_code == "AuthorizationPermissionMismatch" or f.s3_code == "AuthorizationFailure"
        or f.s3_code == "AuthorizationResourceTypeMismatch" or f.status == 403
    end, function(f)
    return "forbidden", ("access denied: %s (%s)%s; the identity in use (%s) needs the role %s on the "
      .. "storage account %s or the container %s"):format(what(f), f.s3_code ~= "" and f.s3_code or "HTTP 403",
        detail(f), f.creds_source, role(f), f.access_key, f.bucket),
      assign_hint(f, role(f))
  end },
  { function(f) return f.s3_code == "LeaseIdMissing" or f.s3_code == "LeaseIdMismatchWithBlobOperation"
      or f.s3_code == "LeaseIdMismatchWithContainerOperation" end, function(f)
    return "conflict", ("%s is leased by another program: %s was refused (%s)"):format(f.object, f.method, f.s3_code),
      "wait until the lease is released, or break it (az storage blob lease break) if nothing uses it"
  end },
  -- the commit of a no_overwrite upload (If-None-Match: *) found a blob made meanwhile
  { function(f)
      return f.method == "PUT" and (f.s3_code == "BlobAlreadyExists" or f.s3_code == "ConditionNotMet")
        and f.key ~= ""
    end, function(f)
    return "exists", ("%s appeared while it was being uploaded (another program wrote it): %s was refused (%s), "
      .. "so nothing of this upload was written and that blob is unchanged"):format(f.object, f.action, f.s3_code),
      "choose another name, or use --force to replace it"
  end },
  { function(f) return f.s3_code == "ContainerAlreadyExists" end, function(f)
    return "exists", ("container %s already exists"):format(f.bucket)
  end },
  { function(f) return f.s3_code == "InvalidBlockList" end, function(f)
    return "s3", ("Azure Storage refused the block list of %s%s"):format(f.object, detail(f)),
      "run it again: a block went missing (uncommitted blocks expire after 7 days)"
  end },
}

-- A refused Put Block List commits nothing: the blob stays as it was (or
-- absent); the blocks sent are discarded where no blob of the name exists,
-- and otherwise stay uncommitted beside it until Azure drops them.
local function commit_note(f, code, msg, hint)
  if f.action ~= "Put Block List" then return code, msg, hint end
  return code, msg .. "; the block list was not committed: nothing of the upload was written, the blob is as it was",
    (hint and (hint .. ". ") or "") .. "Blocks already sent are discarded; beside an existing blob they stay "
      .. "uncommitted (invisible, not billed as a blob) until Azure discards them after 7 days"
end

local function http(f)
  for _, case in ipairs(HTTP) do
    if case[1](f) then return commit_note(f, case[2](f)) end
  end
  return commit_note(f, "s3", ("Azure Blob %s failed: HTTP %d%s%s"):format(what(f), f.status,
    f.s3_code ~= "" and (" " .. f.s3_code) or "", detail(f)))
end

local KINDS = {
  http = http,
  list = function(f)
    if f.status == 403 and f.creds_source == "SAS token" then
      return "forbidden", ("listing %s was refused (%s): the SAS token in use does not allow it: it needs the "
        .. "permission l (list) (an identity would need the role Storage Blob Data Reader)"):format(f.object,
          f.s3_code ~= "" and f.s3_code or "HTTP 403"),
        "use a SAS token whose permissions (sp=) include l (list): rl to back up, rwdlc to restore"
    end
    if f.status == 403 and f.s3_code ~= "AuthenticationFailed" then
      return "forbidden", ("listing %s was refused (%s): the identity in use (%s) needs the role "
        .. "Storage Blob Data Reader on the storage account %s or the container %s"):format(f.object,
          f.s3_code ~= "" and f.s3_code or "HTTP 403", f.creds_source, f.access_key, f.bucket),
        assign_hint(f, "Storage Blob Data Reader") .. "; Storage Blob Data Contributor also lets it write"
    end
    return http(f)
  end,
  tls = function(f)
    local code, msg, hint = s3_api.describe(f)
    return code, msg, hint
  end,
  connect = function(f)
    return "connect", ("Azure Blob %s at %s: %s"):format(what(f), f.endpoint, f.transport),
      "check the account's blob endpoint (storage-azure-blob-endpoint) and that it is reachable"
  end,
}

function M.describe(f)
  local kind = KINDS[f.kind]
  if not kind then error("unknown kind of Azure Blob error: " .. tostring(f.kind), 2) end
  return kind(f)
end

return M
