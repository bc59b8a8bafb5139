-- The aws provider's store: AWS Secrets Manager, GetSecretValue over SigV4
-- (mxpc.aws), JSON secrets read with the provider's jmesPath mapping.
-- Where: AWS_ENDPOINT_URL_SECRETS_MANAGER, else AWS_ENDPOINT_URL, else the
-- regional endpoint of the SecretProviderClass's region (or the secret ARN's,
-- AWS_REGION, AWS_DEFAULT_REGION).
local cjson = require "cjson"
local errors = require "mxpc.error"
local aws = require "mxpc.aws"
local store = require "mxpc.secret_store"
local runtime = require "mxpc.runtime"

local M = { NAME = "AWS Secrets Manager" }

local ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"

local function env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

function M.region(params, entries)
  if params.region and params.region ~= "" then return params.region end
  for _, e in ipairs(entries) do
    local r = e.secret:match("^arn:aws[%w-]*:secretsmanager:([%w-]+):")
    if r then return r end
  end
  return env("AWS_REGION") or env("AWS_DEFAULT_REGION")
end

function M.endpoint(region)
  local e = env("AWS_ENDPOINT_URL_SECRETS_MANAGER") or env("AWS_ENDPOINT_URL")
  if e then return (e:gsub("/+$", "")) end
  return ("https://secretsmanager.%s.amazonaws.com"):format(region)
end

-- The credentials to sign with, and who they are (for messages).
local function credentials(ctx)
  if ctx.identity == "tool" then
    local c, err = aws.signing_credentials()
    if not c then
      err.message = "Secrets Manager as the tool's own identity: " .. err.message
      return nil, err
    end
    c.source = ("the tool's AWS credentials (%s)"):format(c.source)
    return c
  end
  local sa, err = store.service_account(ctx)
  if not sa then return nil, err end
  local role = type(sa.metadata.annotations) == "table" and sa.metadata.annotations[ROLE_ANNOTATION]
  if type(role) ~= "string" or role == "" then
    return store.fail("environment", ('ServiceAccount %s/%s has no %s annotation: the environment has no IAM role '
      .. "to read Secrets Manager with"):format(ctx.namespace, ctx.name, ROLE_ANNOTATION),
      "annotate it with the app's role (as Mendix documents), or use --identity tool")
  end
  local token, terr = store.sa_token(ctx, { "sts.amazonaws.com" })
  if not token then return nil, terr end
  local c, serr = aws.web_identity { role_arn = role, token = token, session_name = "mxpc-" .. ctx.name }
  if not c then
    serr.hint = ("the role's trust policy must allow sts:AssumeRoleWithWebIdentity to "
      .. "system:serviceaccount:%s:%s with audience sts.amazonaws.com"):format(ctx.namespace, ctx.name)
    return nil, serr
  end
  return c
end

local function refusal(what, secret, c, status, doc)
  local kind = (type(doc.__type) == "string" and doc.__type or ("HTTP " .. status)):gsub("^.*#", "")
  local msg = doc.message or doc.Message
  msg = type(msg) == "string" and msg or ""
  local who = c.source or "?"
  local text = ("%s: Secrets Manager refused GetSecretValue of %s as %s: %s%s"):format(what, secret, who, kind,
    msg ~= "" and (": " .. msg) or "")
  if kind == "AccessDeniedException" then
    return store.fail("forbidden", text, "the identity's IAM policy must allow secretsmanager:GetSecretValue and "
      .. "secretsmanager:DescribeSecret on the secret's ARN (and kms:Decrypt on its key, if it has its own); see "
      .. "docs/environment.md")
  elseif kind == "ResourceNotFoundException" then
    return store.fail("not_found", text, "check the SecretProviderClass's objectName and region")
  elseif kind == "ExpiredTokenException" then
    return store.fail("unauthorized", text, "the credentials have expired: get fresh ones")
  end
  return store.fail(status == 403 and "forbidden" or "store", text)
end

function M.fetch(entries, ctx)
  for _, e in ipairs(entries) do
    if e.kind ~= nil and e.kind ~= "secretsmanager" then
      return store.fail("unsupported", ('%s: objectType "%s" is not supported'):format(e.where, e.kind),
        "the tool reads Secrets Manager secrets (objectType: secretsmanager)")
    end
    if e.path ~= nil and not store.jmes_key(e.path) then
      return store.fail("unsupported", ("%s: jmesPath %s is not supported"):format(e.where, tostring(e.path)),
        "only a top-level key of the JSON secret: path: '\"database-host\"' (in double quotes), or a bare name "
        .. "such as path: dbHost")
    end
  end
  local region = M.region(ctx.params, entries)
  if not region then
    return store.fail("environment", ctx.where .. ": no region for Secrets Manager",
      "set parameters.region in the SecretProviderClass, or AWS_REGION")
  end
  local url = M.endpoint(region) .. "/"
  local c, cerr = credentials(ctx)
  if not c then return nil, cerr end
  local values, sources, docs = {}, {}, {}
  for _, e in ipairs(entries) do
    if docs[e.secret] == nil then
      local body = cjson.encode { SecretId = e.secret }
      local headers = { ["Content-Type"] = "application/x-amz-json-1.1",
        ["X-Amz-Target"] = "secretsmanager.GetSecretValue" }
      local add, serr = aws.sign_request { method = "POST", url = url, service = "secretsmanager", region = region,
        headers = headers, body = body, credentials = c }
      if not add then return nil, serr end
      for k, v in pairs(add) do headers[k] = v end
      local status, doc = store.request(ctx.where, { method = "POST", url = url, headers = headers, body = body })
      if not status then return nil, doc end
      if status ~= 200 then return refusal(ctx.where, e.secret, c, status, doc) end
      local text = doc.SecretString
      if type(text) ~= "string" then
        return store.fail("unsupported", ("%s: secret %s holds binary data"):format(ctx.where, e.secret),
          "the tool reads secrets stored as text (SecretString)")
      end
      docs[e.secret] = text
    end
    local text = docs[e.secret]
    if e.path then
      local ok, json = runtime.pcall(cjson.decode, text)
      if not ok or type(json) ~= "table" then
        return store.fail("environment", ("%s: secret %s is not a JSON object, so jmesPath cannot read it"):format(
          e.where, e.secret))
      end
      store.register(json)
      local v = json[store.jmes_key(e.path)]
      if type(v) == "table" then
        return store.fail("environment", ("%s: secret %s, jmesPath %s: an object or a list, not a value"):format(
          e.where, e.secret, e.path))
      elseif v ~= nil and v ~= cjson.null then
        values[e.key] = store.text(v)
        sources[e.key] = ("Secrets Manager secret %s, jmesPath %s"):format(e.secret, e.path)
      end
    else
      store.register { [e.key] = text }
      values[e.key] = text
      sources[e.key] = "Secrets Manager secret " .. e.secret
    end
  end
  return values, sources
end

return M
