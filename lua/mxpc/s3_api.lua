-- The words of S3 errors: src/s3_client.c reports what happened as facts
-- (the answer's status and <Code>, the request, the credentials in use, or
-- the transport's failure), and this module turns them into the error a
-- person reads: its code, message and hint. C keeps the mechanism, this the
-- policy, as k8s_api.lua does for Kubernetes.
--
-- describe(f) -> code, message, hint (hint may be nil). f:
--   kind        "http" (an answer refused the request), "tls", "connect",
--               "list" (ListObjects refused), "delete" (DeleteObjects refused keys)
--   status, s3_code, s3_message   the answer (http, list, delete)
--   method, action, object        the request: "GET", "s3:GetObject", "s3://bucket/key"
--   bucket, key, endpoint, prefix
--   creds_source, role_arn, access_key   the credentials in use
--   if_match, resumed, resume_at  a download pinned to an ETag; whether it was resuming, at which byte
--   copy_source                   a server-side copy's source ("s3://bucket/key"; CopyObject, UploadPartCopy)
--   transport                     the transport's error (tls, connect)
--   count, total                  delete: keys refused, keys asked
--   ca            (tls; not from C) the CA bundle in use: SSL_CERT_FILE, SSL_CERT_DIR or
--                 the system's; "" when there is none (default: M.ca_in_use())
local M = {}

local function nonempty(v) return v ~= nil and v ~= "" and v or nil end

-- Where https trusts certificates from, as `version` says it: SSL_CERT_FILE,
-- SSL_CERT_DIR, else the system's bundle; "" when none was found.
function M.ca_in_use()
  return nonempty(os.getenv("SSL_CERT_FILE")) or nonempty(os.getenv("SSL_CERT_DIR"))
    or require("mxpc.runtime").system_ca_file() or ""
end

local function who(f) return f.role_arn ~= "" and "role" or "user" end

local function allow_hint(f)
  return f.role_arn ~= "" and "allow the action in the role's IAM policy (and the bucket policy)"
    or "check that the credentials may do this (IAM policy / bucket policy)"
end

local function bucket_name(f) return f.bucket ~= "" and f.bucket or "(endpoint)" end

-- ": <Message>" of the answer (else ": <Code>"), or "" when there is none.
local function detail(f)
  local d = f.s3_message ~= "" and f.s3_message or f.s3_code
  return d ~= "" and (": " .. d) or ""
end

-- ": <Message>" when it says more than the <Code>, else "".
local function more(f)
  return (f.s3_message ~= "" and f.s3_message ~= f.s3_code) and (": " .. f.s3_message) or ""
end

local HTTP = {
  -- each: a test of the facts, and what to say; the first that matches speaks
  { function(f) return f.status == 412 and f.resumed end, function(f)
    return "changed", ("%s changed during the download (resuming at byte %d, its ETag is no longer %s)"):format(
      f.object, f.resume_at, f.if_match ~= "" and f.if_match or "the same"),
      "run it again: the object was replaced while it was read"
  end },
  { function(f) return f.status == 412 and f.if_match ~= "" end, function(f)
    return "changed", ("%s changed while it was being read (at byte %d, its ETag is no longer %s)"):format(
      f.object, f.resume_at, f.if_match), "run it again: the object was replaced while it was read"
  end },
  -- a server-side copy: the target's credentials must read the source
  { function(f) return f.copy_source ~= nil and f.copy_source ~= "" and f.status == 403
      and f.s3_code ~= "InvalidAccessKeyId" and f.s3_code ~= "SignatureDoesNotMatch" end, function(f)
    local src_bucket = f.copy_source:match("^s3://([^/]*)/") or "?"
    local id = f.role_arn ~= "" and ("role " .. f.role_arn) or ("access key " .. f.access_key)
    return "forbidden", ("access denied: copying %s into %s server-side%s; the target's %s (%s, credentials from %s) "
      .. "needs s3:GetObject on the source bucket %s and s3:PutObject on the target"):format(f.copy_source, f.object,
        detail(f), who(f), id, f.creds_source, src_bucket),
      ("allow s3:GetObject on arn:aws:s3:::%s/* for the target's %s (its IAM policy or the source bucket's policy), "
      .. "or copy with --copy-mode stream (each side with its own credentials)"):format(src_bucket, who(f))
  end },
  { function(f) return f.copy_source ~= nil and f.copy_source ~= "" and f.s3_code == "NoSuchKey" end, function(f)
    return "not_found", ("the source of a server-side copy is gone: %s (copying into %s)"):format(f.copy_source, f.object)
  end },
  { function(f) return f.s3_code == "NoSuchBucket" end, function(f)
    return "not_found", ("no such bucket: %s (%s)"):format(bucket_name(f), f.endpoint)
  end },
  { function(f) return f.s3_code == "NoSuchUpload" end, function(f)
    return "not_found", "no such multipart upload of " .. f.object
  end },
  { function(f) return f.s3_code == "NoSuchKey" or f.status == 404 end, function(f)
    return "not_found", ("no such %s: %s%s"):format(f.key ~= "" and "key" or "bucket", f.object,
      f.s3_code ~= "" and (" (" .. f.s3_code .. ")") or "")
  end },
  { function(f) return f.s3_code == "SignatureDoesNotMatch" end, function(f)
    return "signature", ("S3 rejected the request signature for %s%s"):format(f.object, detail(f)),
      "check the secret key that goes with the access key, and the system clock"
  end },
  { function(f) return f.s3_code == "RequestTimeTooSkewed" end, function(f)
    return "signature", ("S3 rejected %s%s"):format(f.object, detail(f)), "the system clock is off: synchronize it (NTP)"
  end },
  { function(f) return f.s3_code == "InvalidAccessKeyId" end, function(f)
    return "forbidden", ("S3 does not know the access key %s (%s)%s"):format(f.access_key, f.object, detail(f)),
      "check the access key id"
  end },
  { function(f) return f.status == 403 end, function(f)
    return "forbidden", ("access denied: %s %s%s; the %s needs %s there (credentials from %s)"):format(f.method,
      f.object, detail(f), who(f), f.action, f.creds_source), allow_hint(f)
  end },
  { function(f) return f.s3_code == "BucketAlreadyOwnedByYou" or f.s3_code == "BucketAlreadyExists" end, function(f)
    return "exists", ("bucket %s already exists"):format(f.bucket)
  end },
  { function(f) return f.status == 301 or f.s3_code == "PermanentRedirect" end, function(f)
    return "s3", ("S3 %s %s: the bucket is elsewhere (HTTP %d%s)"):format(f.method, f.object, f.status, detail(f)),
      "check the region and the endpoint"
  end },
}

local function http(f)
  for _, case in ipairs(HTTP) do
    if case[1](f) then return case[2](f) end
  end
  return "s3", ("S3 %s %s failed: HTTP %d%s%s"):format(f.method, f.object, f.status,
    f.s3_code ~= "" and (" " .. f.s3_code) or "", more(f))
end

local KINDS = {
  http = http,
  tls = function(f)
    local ca = f.ca or M.ca_in_use()
    if ca == "" then -- (the transport then names the path its library would have read)
      return "connect", ("TLS to %s failed (%s): no CA bundle found; set SSL_CERT_FILE"):format(f.endpoint, f.object),
        "set SSL_CERT_FILE to a CA bundle (PEM), or SSL_CERT_DIR to a directory of CA certificates "
        .. "(mxpc-data-migration version shows what is in use)"
    end
    return "connect", ("TLS to %s failed (%s): %s"):format(f.endpoint, f.object, f.transport),
      "the server's certificate could not be verified: set SSL_CERT_FILE (a CA bundle, PEM) or SSL_CERT_DIR to "
      .. "the CA that signed it (a Lua script's s3.client also takes ca_file/ca_dir)"
  end,
  connect = function(f)
    return "connect", ("S3 %s %s at %s: %s"):format(f.method, f.object, f.endpoint, f.transport),
      "check the endpoint and that the server is reachable"
  end,
  -- ListBucket refused: which permission on which bucket (an unknown key is said as such)
  list = function(f)
    if f.status ~= 403 or f.s3_code == "InvalidAccessKeyId" or f.s3_code == "SignatureDoesNotMatch"
        or f.s3_code == "RequestTimeTooSkewed" then
      return http(f)
    end
    local b = bucket_name(f)
    return "forbidden", ("listing s3://%s/%s was refused (%s): the %s needs s3:ListBucket on arn:aws:s3:::%s "
      .. "(credentials from %s)"):format(b, f.prefix, f.s3_code ~= "" and f.s3_code or "HTTP 403", who(f), b,
        f.creds_source),
      ("allow s3:ListBucket on arn:aws:s3:::%s in the %s (or the bucket policy)"):format(b,
        f.role_arn ~= "" and "role's IAM policy" or "user's IAM policy")
  end,
  -- DeleteObjects answered, refusing some keys: the first is named
  delete = function(f)
    if f.s3_code == "AccessDenied" then
      return "forbidden", ("access denied: DELETE of %d of %d objects, the first %s%s; the %s needs s3:DeleteObject "
        .. "there (credentials from %s)"):format(f.count, f.total, f.object, more(f), who(f), f.creds_source),
        allow_hint(f)
    end
    return "s3", ("%d of %d objects were not deleted; the first, %s: %s%s"):format(f.count, f.total, f.object,
      f.s3_code, more(f))
  end,
}

function M.describe(f)
  local kind = KINDS[f.kind]
  if not kind then error("unknown kind of S3 error: " .. tostring(f.kind), 2) end
  return kind(f)
end

return M
