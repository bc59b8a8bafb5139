-- The words of S3 errors (lua/mxpc/s3_api.lua), from the facts C reports.
local t = require "t"
local api = require "mxpc.s3_api"

-- facts of a request, as src/s3_client.c fills them, with `over` on top
local function facts(over)
  local f = { kind = "http", status = 403, s3_code = "AccessDenied", s3_message = "", method = "GET",
    action = "s3:GetObject", object = "s3://b/k", bucket = "b", key = "k", endpoint = "https://s3.example",
    prefix = "", transport = "", creds_source = "environment", role_arn = "", access_key = "AKIAEXAMPLE",
    if_match = "", resumed = false, resume_at = 0, count = 0, total = 0 }
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

local function said(over) return { api.describe(facts(over)) } end

t.test("a refusal names the action, who needs it and where the credentials came from", function()
  t.same(said {}, { "forbidden", "access denied: GET s3://b/k: AccessDenied; the user needs s3:GetObject there "
    .. "(credentials from environment)", "check that the credentials may do this (IAM policy / bucket policy)" })
  local code, message, hint = api.describe(facts { role_arn = "arn:aws:iam::1:role/r", s3_message = "no",
    creds_source = "web identity (role arn:aws:iam::1:role/r)" })
  t.eq(code, "forbidden")
  t.contains(message, "GET s3://b/k: no; the role needs s3:GetObject")
  t.eq(hint, "allow the action in the role's IAM policy (and the bucket policy)")
end)

t.test("missing things are not_found, each said as what it is", function()
  t.same(said { status = 404, s3_code = "NoSuchKey" }, { "not_found", "no such key: s3://b/k (NoSuchKey)" })
  t.same(said { status = 404, s3_code = "", key = "", object = "s3://b" }, { "not_found", "no such bucket: s3://b" })
  t.same(said { status = 404, s3_code = "NoSuchBucket" }, { "not_found", "no such bucket: b (https://s3.example)" })
  t.same(said { status = 404, s3_code = "NoSuchUpload" }, { "not_found", "no such multipart upload of s3://b/k" })
end)

t.test("signatures, clocks and unknown keys each get their hint", function()
  t.same(said { s3_code = "SignatureDoesNotMatch", s3_message = "mismatch" }, { "signature",
    "S3 rejected the request signature for s3://b/k: mismatch",
    "check the secret key that goes with the access key, and the system clock" })
  t.eq(select(3, api.describe(facts { s3_code = "RequestTimeTooSkewed" })), "the system clock is off: synchronize it (NTP)")
  t.same(said { s3_code = "InvalidAccessKeyId" }, { "forbidden",
    "S3 does not know the access key AKIAEXAMPLE (s3://b/k): InvalidAccessKeyId", "check the access key id" })
end)

t.test("a replaced object, a redirect, an existing bucket, anything else", function()
  t.same(said { status = 412, if_match = '"e1"', resumed = true, resume_at = 4096 }, { "changed",
    's3://b/k changed during the download (resuming at byte 4096, its ETag is no longer "e1")',
    "run it again: the object was replaced while it was read" })
  t.eq(select(2, api.describe(facts { status = 412, if_match = '"e1"' })),
    's3://b/k changed while it was being read (at byte 0, its ETag is no longer "e1")')
  t.same(said { status = 301, s3_code = "PermanentRedirect" }, { "s3",
    "S3 GET s3://b/k: the bucket is elsewhere (HTTP 301: PermanentRedirect)", "check the region and the endpoint" })
  t.same(said { status = 409, s3_code = "BucketAlreadyExists" }, { "exists", "bucket b already exists" })
  t.same(said { status = 500, s3_code = "InternalError", s3_message = "try later" },
    { "s3", "S3 GET s3://b/k failed: HTTP 500 InternalError: try later" })
  t.same(said { status = 503, s3_code = "", s3_message = "" }, { "s3", "S3 GET s3://b/k failed: HTTP 503" })
end)

t.test("transport failures: TLS says how to trust the server, a connection where to look", function()
  local code, message, hint = api.describe(facts { kind = "tls", transport = "certificate verify failed",
    ca = "/etc/ssl/certs/ca-certificates.crt" })
  t.eq(code, "connect")
  t.eq(message, "TLS to https://s3.example failed (s3://b/k): certificate verify failed")
  t.ok(hint:find("SSL_CERT_FILE", 1, true) < hint:find("ca_file", 1, true), "the variables first: " .. hint)
  -- no CA bundle at all: said so, not the path the TLS library tried
  code, message, hint = api.describe(facts { kind = "tls", ca = "",
    transport = "error setting certificate file: /etc/ssl/certs/ca-certificates.crt" })
  t.eq(code, "connect")
  t.eq(message, "TLS to https://s3.example failed (s3://b/k): no CA bundle found; set SSL_CERT_FILE")
  t.contains(hint, "SSL_CERT_DIR")
  t.same(said { kind = "connect", transport = "Connection refused" }, { "connect",
    "S3 GET s3://b/k at https://s3.example: Connection refused", "check the endpoint and that the server is reachable" })
end)

t.test("a refused listing names s3:ListBucket and the bucket's ARN; other listing failures are said as usual", function()
  local code, message, hint = api.describe(facts { kind = "list", prefix = "app/", key = "", object = "s3://b" })
  t.eq(code, "forbidden")
  t.eq(message, "listing s3://b/app/ was refused (AccessDenied): the user needs s3:ListBucket on arn:aws:s3:::b "
    .. "(credentials from environment)")
  t.eq(hint, "allow s3:ListBucket on arn:aws:s3:::b in the user's IAM policy (or the bucket policy)")
  t.eq(api.describe(facts { kind = "list", s3_code = "InvalidAccessKeyId" }), "forbidden")
  t.contains(select(2, api.describe(facts { kind = "list", s3_code = "InvalidAccessKeyId" })), "does not know the access key")
  t.eq(api.describe(facts { kind = "list", status = 404, s3_code = "NoSuchBucket" }), "not_found")
end)

t.test("refused deletes count them and name the first", function()
  t.same(said { kind = "delete", status = 0, count = 3, total = 10, s3_code = "AccessDenied", s3_message = "AccessDenied" },
    { "forbidden", "access denied: DELETE of 3 of 10 objects, the first s3://b/k; the user needs s3:DeleteObject there "
      .. "(credentials from environment)", "check that the credentials may do this (IAM policy / bucket policy)" })
  t.same(said { kind = "delete", count = 1, total = 1, s3_code = "InternalError", s3_message = "busy" },
    { "s3", "1 of 1 objects were not deleted; the first, s3://b/k: InternalError: busy" })
end)

t.test("a refused server-side copy names the source, the target's identity and s3:GetObject on the source", function()
  local copy = { method = "PUT", action = "s3:PutObject", object = "s3://acc/k", bucket = "acc",
    copy_source = "s3://prod/app/k", creds_source = "explicit" }
  t.same(said(copy), { "forbidden", "access denied: copying s3://prod/app/k into s3://acc/k server-side: AccessDenied; "
    .. "the target's user (access key AKIAEXAMPLE, credentials from explicit) needs s3:GetObject on the source "
    .. "bucket prod and s3:PutObject on the target", "allow s3:GetObject on arn:aws:s3:::prod/* for the target's "
    .. "user (its IAM policy or the source bucket's policy), or copy with --copy-mode stream (each side with its "
    .. "own credentials)" })
  copy.role_arn = "arn:aws:iam::1:role/r"
  t.contains(said(copy)[2], "the target's role (role arn:aws:iam::1:role/r, credentials from explicit)")
  copy.role_arn, copy.status, copy.s3_code = "", 404, "NoSuchKey"
  t.same(said(copy), { "not_found", "the source of a server-side copy is gone: s3://prod/app/k (copying into s3://acc/k)" })
  -- Azure: the service could not read the source of Copy Blob from URL
  local code, message = require("mxpc.azure_api").describe(facts { service = "azure", method = "PUT",
    s3_code = "CannotVerifyCopySource", s3_message = "This request is not authorized", object = "azblob://d/u",
    copy_source = "https://a.blob.core.windows.net/c/u", creds_source = "account key" })
  t.eq(code, "forbidden")
  t.eq(message, "Azure Storage could not read the source of a server-side copy: https://a.blob.core.windows.net/c/u "
    .. "into azblob://d/u: This request is not authorized")
end)

t.test("an unknown kind is a bug, raised", function()
  t.raises(function() api.describe(facts { kind = "weather" }) end, "unknown kind of S3 error: weather")
end)

-- Azure's words (lua/mxpc/azure_api.lua): Azurite checks no RBAC roles, so a refused role
-- is worded here from the facts Azure's answer gives.
local azure_api = require "mxpc.azure_api"
local function azure(over)
  local f = facts { service = "azure", object = "azblob://c/b", bucket = "c", key = "b",
    endpoint = "https://acct.blob.core.windows.net", access_key = "acct", s3_code = "AuthorizationPermissionMismatch",
    s3_message = "This request is not authorized to perform this operation using this permission.",
    creds_source = "managed identity 5d9d1455-dfd6-4d76-8976-2eb959b82d37" }
  for k, v in pairs(over or {}) do f[k] = v end
  return { azure_api.describe(f) }
end

t.test("azure: a refused role names the operation, the identity in use and the role it needs", function()
  local got = azure { method = "PUT", action = "Put Blob" }
  t.eq(got[1], "forbidden")
  t.eq(got[2], "access denied: Put Blob azblob://c/b (AuthorizationPermissionMismatch): This request is not "
    .. "authorized to perform this operation using this permission.; the identity in use (managed identity "
    .. "5d9d1455-dfd6-4d76-8976-2eb959b82d37) needs the role Storage Blob Data Contributor on the storage account "
    .. "acct or the container c")
  t.contains(got[3], 'az role assignment create --role "Storage Blob Data Contributor" '
    .. "--assignee 5d9d1455-dfd6-4d76-8976-2eb959b82d37 --scope <the storage account's id>", "the identity's own id")
  local read = azure { method = "GET", action = "Get Blob" }
  t.contains(read[2], "needs the role Storage Blob Data Reader")
  local list = azure { kind = "list", method = "GET", action = "List Blobs", key = "", object = "azblob://c" }
  t.eq(list[1], "forbidden")
  t.contains(list[2], "listing azblob://c was refused (AuthorizationPermissionMismatch): the identity in use "
    .. "(managed identity 5d9d1455-dfd6-4d76-8976-2eb959b82d37) needs the role Storage Blob Data Reader")
  t.contains(list[3], 'az role assignment create --role "Storage Blob Data Reader" '
    .. "--assignee 5d9d1455-dfd6-4d76-8976-2eb959b82d37", "a listing's hint says how too")
  local token = azure { method = "PUT", action = "Put Blob", creds_source = "bearer token" }
  t.contains(token[3], "--assignee <the identity's client id>", "an identity not known by name")
end)

t.test("azure: a SAS token's refusal names the permission it lacks and the role an identity would need", function()
  local got = azure { method = "DELETE", action = "Delete Blob", creds_source = "SAS token" }
  t.eq(got[1], "forbidden")
  t.contains(got[2], "access denied: Delete Blob azblob://c/b (AuthorizationPermissionMismatch)")
  t.contains(got[2], "the SAS token in use does not allow it: it needs the permission d (delete) (an identity would "
    .. "need the role Storage Blob Data Contributor)")
  t.contains(got[3], "rwdlc")
end)

t.test("azure: a refused Put Block List says that nothing was written and that blocks expire", function()
  local got = azure { method = "PUT", action = "Put Block List", status = 400, s3_code = "InvalidBlockList",
    s3_message = "The specified block list is invalid." }
  t.eq(got[1], "s3")
  t.contains(got[2], "Azure Storage refused the block list of azblob://c/b: The specified block list is invalid.; "
    .. "the block list was not committed: nothing of the upload was written, the blob is as it was")
  t.contains(got[3], "until Azure discards them after 7 days")
  local other = azure { method = "PUT", action = "Put Block List", status = 500, s3_code = "InternalError",
    s3_message = "oops" }
  t.contains(other[2], "Azure Blob Put Block List azblob://c/b failed: HTTP 500 InternalError: oops; the block list "
    .. "was not committed")
  local put = azure { method = "PUT", action = "Put Blob", status = 500, s3_code = "InternalError", s3_message = "oops" }
  t.eq(put[2], "Azure Blob Put Blob azblob://c/b failed: HTTP 500 InternalError: oops", "no note for other requests")
end)

return t.run()
