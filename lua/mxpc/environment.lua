-- Finds an environment's database and file storage settings through the
-- Kubernetes API, the way the Mendix operator lays them out (docs/environment.md):
--   MendixApp <env>  ->  StorageInstances <env>-database, <env>-file
--   StorageInstance  ->  its credentials Secret (status/spec secretName, else
--                        a Secret with the StorageInstance's own name)
--   Secret           ->  key per value (database-host, ...), or a `config`
--                        key holding the runtime settings as JSON
--   or, before all that, a SecretProviderClass named after the MendixApp
--   (Secrets Store CSI Driver): the same keys read from a secret store
--   (mxpc.secret_store); it wins over Secrets, as it does for the app.
-- Everything that is inferred rather than documented is decided here, in one
-- small function each, so it can be corrected in one place.
local cjson = require "cjson"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local secret_store = require "mxpc.secret_store"
local runtime = require "mxpc.runtime"

local M = {}

local function fail(code, message, hint)
  return nil, errors.new { code = code, message = message, hint = hint }
end

-- --- where the credentials Secret is named ------------------------------------

-- The Secret's name: a string field named like "secretName" in status, then in
-- spec (searched one level deep), else the StorageInstance's own name; nil
-- when there is none of them (an object the API server would not send).
function M.secret_name(si)
  local function search(t)
    if type(t) ~= "table" then return nil end
    for _, k in ipairs { "secretName", "secret", "credentialsSecretName", "credentialsSecret" } do
      if type(t[k]) == "string" and t[k] ~= "" then return t[k] end
    end
    for k, v in pairs(t) do
      if type(k) == "string" and k:lower():find("secret") and type(v) == "string" and v ~= "" then return v end
    end
    for _, v in pairs(t) do
      if type(v) == "table" and type(v.secretName) == "string" then return v.secretName end
      if type(v) == "table" and type(v.name) == "string" and v.kind == "Secret" then return v.name end
    end
  end
  local meta = type(si.metadata) == "table" and si.metadata or {}
  return search(si.status) or search(si.spec) or (type(meta.name) == "string" and meta.name ~= "" and meta.name or nil)
end

-- --- the two Secret layouts -------------------------------------------------------

-- Runtime setting names (config layout) -> key-per-value names.
local CONFIG_KEYS = {
  DatabaseType = "database-type",
  DatabaseJdbcUrl = "database-jdbc-url",
  DatabaseHost = "database-host",
  DatabaseName = "database-name",
  DatabaseUserName = "database-username",
  DatabasePassword = "database-password",
  ["com.mendix.core.StorageService"] = "storage-service-name",
  ["com.mendix.storage.s3.EndPoint"] = "storage-endpoint",
  ["com.mendix.storage.s3.BucketName"] = "storage-bucket-name",
  ["com.mendix.storage.s3.AccessKeyId"] = "storage-access-key-id",
  ["com.mendix.storage.s3.SecretAccessKey"] = "storage-secret-access-key",
  ["com.mendix.storage.s3.ResourceNamePrefix"] = "storage-resource-name-prefix",
  ["com.mendix.storage.s3.Region"] = "storage-region",
  ["com.mendix.storage.s3.UseCACertificates"] = "storage-use-ca-certificates",
}
for k, v in pairs(require("mxpc.azure_storage").CONFIG_KEYS) do CONFIG_KEYS[k] = v end

-- Decoded Secret data (either layout) -> one flat table in key-per-value names,
-- plus the layout's name. `where` names the Secret in messages.
function M.flatten_secret(data, where)
  if data.config == nil then return data, "keys" end
  local ok, config = runtime.pcall(cjson.decode, data.config)
  if not ok or type(config) ~= "table" then
    return fail("environment", where .. ": key 'config' is not a JSON object")
  end
  local flat = {}
  for k, v in pairs(data) do if k ~= "config" then flat[k] = v end end
  for k, v in pairs(config) do
    local name = CONFIG_KEYS[k]
    if name and v ~= cjson.null then flat[name] = tostring(v) end
  end
  return flat, "config"
end

-- --- database -----------------------------------------------------------------------

-- "host:port", "[v6]:port", "host" -> host, port
function M.parse_host(s)
  local h, p = s:match("^%[([^%]]+)%]:?(%d*)$")
  if not h then h, p = s:match("^([^:]+):?(%d*)$") end
  if not h then h, p = s, "" end -- a bare IPv6 address
  return h, p ~= "" and tonumber(p) or nil
end

-- jdbc:postgresql://host:port/db?k=v&... -> {host, port, dbname, params}.
-- Parameter names are lower-cased, values URL-decoded; a name without "="
-- has the value "" (pgjdbc reads `?ssl` as ssl="").
function M.parse_jdbc(url)
  local rest = url:match("^jdbc:postgresql://(.*)$")
  if not rest then return nil end
  local hostport, dbname, query = rest:match("^([^/]*)/([^?]*)%??(.*)$")
  if not hostport then hostport, dbname, query = rest, nil, "" end
  local host, port = M.parse_host(hostport)
  local params = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    params[k:lower()] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return { host = host, port = port, dbname = dbname ~= "" and dbname or nil, params = params }
end

-- libpq's sslmodes, weakest first.
M.SSLMODES = { "disable", "allow", "prefer", "require", "verify-ca", "verify-full" }
local SSL_RANK = {}
for i, mode in ipairs(M.SSLMODES) do SSL_RANK[mode] = i end

-- A known sslmode in any case ("VERIFY-FULL") -> its libpq name, else nil.
function M.sslmode_name(mode)
  mode = type(mode) == "string" and mode:lower()
  return SSL_RANK[mode] and mode or nil
end

local function sslmode_hint(what)
  return ("%s must be one of %s (in any case)"):format(what, table.concat(M.SSLMODES, ", "))
end

-- The sslmode the Mendix runtime uses for a JDBC URL, read as pgjdbc reads it:
-- `sslmode` in any case; without it, `ssl=true` (or a bare `ssl`) means
-- verify-full (pgjdbc verifies the certificate and the host name then), and
-- no TLS setting at all means prefer. A value pgjdbc would refuse is an
-- error, never a weaker mode. Returns the mode, or nil and why.
function M.jdbc_sslmode(jdbc)
  local params = jdbc and jdbc.params or {}
  if params.sslmode then
    local mode = M.sslmode_name(params.sslmode)
    if not mode then return nil, ('sslmode "%s" is not a PostgreSQL sslmode'):format(params.sslmode) end
    return mode
  end
  local ssl = params.ssl and params.ssl:lower()
  if ssl == nil or ssl == "false" then return "prefer" end
  if ssl ~= "true" and ssl ~= "" then return nil, ("ssl=%s is neither true nor false"):format(params.ssl) end
  -- pgjdbc's NonValidatingFactory encrypts without checking the certificate:
  -- libpq's require is the same trust
  if params.sslfactory and params.sslfactory:match("NonValidatingFactory$") then return "require" end
  return "verify-full"
end

-- The mode the tool connects with: what the environment asks for, at least
-- prefer (try TLS first, as the tool always has).
function M.sslmode(asked)
  return SSL_RANK[asked] < SSL_RANK.prefer and "prefer" or asked
end

-- Raises the database's sslmode to `requested` (from `source`: the
-- --db-sslmode option or PGSSLMODE). A mode below what the environment asks
-- for is a usage error: TLS is never weakened. Returns true or nil, err.
function M.request_sslmode(db, requested, source)
  if requested == nil or requested == "" then return true end
  local mode = M.sslmode_name(requested)
  if not mode then
    return fail("usage", ('%s "%s" is not a PostgreSQL sslmode'):format(source, requested), sslmode_hint(source))
  end
  if SSL_RANK[mode] < SSL_RANK[db.sslmode_asked] then
    return fail("usage", ("%s %s would lower the TLS mode %s that the environment's database asks for"):format(
      source, mode, db.sslmode_asked),
      ("a stronger mode may be asked for, never a weaker one: use %s or stronger, or leave %s out; "
        .. "a private CA is trusted with PGSSLROOTCERT"):format(db.sslmode_asked, source))
  end
  if SSL_RANK[mode] > SSL_RANK[db.sslmode] then db.sslmode_source = source end
  db.sslmode = mode
  return true
end

-- The hint for a server that does not offer TLS while the connection asks
-- for it: whoever asked (--db-sslmode, PGSSLMODE, RDS IAM, or the
-- environment's JDBC URL), and what to do about it.
function M.no_tls_hint(db)
  local source = db.sslmode_source
  if source == "--db-sslmode" or source == "PGSSLMODE" then
    return ("the server does not offer TLS, but %s %s asks for it (the environment asks for %s): %s"):format(source,
      db.sslmode, db.sslmode_asked, source == "PGSSLMODE" and "unset PGSSLMODE" or "leave --db-sslmode out")
  end
  if source == "iam" then
    return "the server does not offer TLS, which RDS IAM authentication needs: is this the RDS instance?"
  end
  return ("the server does not offer TLS, but the environment's JDBC URL asks for it (sslmode %s): "
    .. "correct the URL in the storage plan, or turn TLS on at the server"):format(db.sslmode_asked)
end

-- Whether the database logs in with RDS IAM authentication. Not documented by
-- Mendix, so any of these counts (docs/environment.md):
--  * no password in the Secret;
--  * a marker in the Secret: a key naming iam/irsa (database-iam, database-use-iam,
--    database-auth-iam, ...) with a true value, or an auth/authentication key
--    whose value names iam/irsa;
--  * the JDBC URL asks for the AWS JDBC wrapper's IAM plugin (wrapperPlugins=iam)
--    or an IAM authentication plugin class;
--  * a marker in the StorageInstance's spec or status, alike (e.g.
--    spec.authentication: iam, spec.irsa: true, status.iamAuthentication: true).
local function names_iam(s) return type(s) == "string" and (s:lower():find("iam", 1, true) or s:lower():find("irsa", 1, true)) end
local function truthy(v) return v == true or (type(v) == "string" and (v:lower() == "true" or v:lower() == "yes" or v == "1")) end

local function iam_marker(t, depth)
  if type(t) ~= "table" or (depth or 0) > 2 then return false end
  for k, v in pairs(t) do
    if type(k) == "string" then
      local key = k:lower()
      if names_iam(key) and not key:find("password", 1, true) and (truthy(v) or names_iam(v)) then return true end
      if (key:find("auth", 1, true) or key == "type" or key == "mode") and names_iam(v) then return true end
    end
    if type(v) == "table" and iam_marker(v, (depth or 0) + 1) then return true end
  end
  return false
end

function M.database_iam(values, jdbc, si)
  local password = values["database-password"]
  if password == nil or password == "" then return true, "no database-password in the Secret" end
  local secret_marker = {}
  for k, v in pairs(values) do if k:find("^database%-") or k == "iam" or k == "irsa" then secret_marker[k] = v end end
  if iam_marker(secret_marker) then return true, "an IAM marker in the Secret" end
  local params = jdbc and jdbc.params or {}
  if names_iam(params.wrapperplugins) or names_iam(params.authenticationpluginclassname) then
    return true, "the JDBC URL's IAM plugin"
  end
  if si and (iam_marker(si.spec) or iam_marker(si.status)) then return true, "an IAM marker in the StorageInstance" end
  return false
end

-- The AWS region of an RDS endpoint (<id>.<hash>.<region>.rds.amazonaws.com),
-- else AWS_REGION / AWS_DEFAULT_REGION, else nil.
function M.rds_region(host)
  local region = type(host) == "string" and host:match("%.([%w-]+)%.rds%.amazonaws%.com%.?$")
  return region or require("mxpc.aws").region(nil, false)
end

function M.database_settings(values, where, si)
  local dbtype = values["database-type"] or "PostgreSQL"
  if dbtype:lower() ~= "postgresql" then
    return fail("unsupported", ("%s: the database is %s; only PostgreSQL is supported"):format(where, dbtype),
      "to move data from or to another database type, convert it through an intermediate environment with a " ..
      "PostgreSQL database (the Mendix runtime's SourceDatabase settings)")
  end
  local jdbc = values["database-jdbc-url"] and M.parse_jdbc(values["database-jdbc-url"])
  local asked, why = M.jdbc_sslmode(jdbc)
  if not asked then
    return fail("environment", ("%s: database-jdbc-url: %s"):format(where, why),
      sslmode_hint("sslmode") .. "; the Mendix runtime refuses this URL too: correct it in the storage plan")
  end
  local host, port
  if values["database-host"] then host, port = M.parse_host(values["database-host"]) end
  host = host or (jdbc and jdbc.host)
  port = port or (jdbc and jdbc.port) or 5432
  local dbname = values["database-name"] or (jdbc and jdbc.dbname)
  local user = values["database-username"]
  for _, required in ipairs { { "database-host", host }, { "database-name", dbname }, { "database-username", user } } do
    local what, v = required[1], required[2]
    if not v or v == "" then
      return fail("environment", ("%s: no %s"):format(where, what),
        "the Secret is not in a layout this tool knows; see docs/environment.md")
    end
  end
  local password = values["database-password"]
  log.secret(password)
  local iam, iam_why = M.database_iam(values, jdbc, si)
  return {
    type = "PostgreSQL", host = host, port = port, dbname = dbname, user = user, password = password,
    iam = iam, iam_reason = iam_why, sslmode = M.sslmode(asked), sslmode_asked = asked,
  }
end

-- --- file storage ----------------------------------------------------------------------

-- Where the files are: endpoint (without a bucket), bucket, key prefix.
--  * AWS virtual-host endpoint https://<bucket>.s3.<region>.amazonaws.com, or
--    an endpoint with a path https://host/<bucket>: the bucket is in the
--    endpoint and bucket-name is a directory: key = <bucket-name>/<uuid>.
--  * otherwise (MinIO plans): bucket = bucket-name, key = <prefix><uuid>.
function M.storage_location(values)
  local endpoint = values["storage-endpoint"]
  local name = values["storage-bucket-name"]
  local region = values["storage-region"]
  local prefix = values["storage-resource-name-prefix"] or ""
  if not endpoint or endpoint == "" then
    region = region or "us-east-1"
    return { endpoint = "https://s3." .. region .. ".amazonaws.com", bucket = name, prefix = prefix, region = region }
  end
  local scheme, host, path = endpoint:match("^(https?)://([^/]+)(.*)$")
  if not scheme then return nil end
  path = path:gsub("^/+", ""):gsub("/+$", "")
  local vbucket, vregion = host:match("^(.+)%.s3[.-]([%w-]+)%.amazonaws%.com$")
  if vbucket and vregion ~= "external-1" then
    return { endpoint = scheme .. "://s3." .. vregion .. ".amazonaws.com", bucket = vbucket,
      prefix = (path ~= "" and path .. "/" or "") .. name .. "/", region = region or vregion, virtual_host = true }
  end
  if path ~= "" then
    local bucket, rest = path:match("^([^/]+)/?(.*)$")
    return { endpoint = scheme .. "://" .. host, bucket = bucket,
      prefix = (rest ~= "" and rest .. "/" or "") .. name .. "/", region = region }
  end
  return { endpoint = scheme .. "://" .. host, bucket = name, prefix = prefix, region = region }
end

-- The object key of a file.
function M.object_key(storage, uuid)
  if storage.service == "azure" then return require("mxpc.azure_storage").blob_name(storage, uuid) end
  return storage.prefix .. uuid
end

function M.storage_settings(values, where)
  local service = values["storage-service-name"] or "com.mendix.storage.s3"
  if service == "com.mendix.storage.azure" then return require("mxpc.azure_storage").settings(values, where) end
  if service ~= "com.mendix.storage.s3" then
    return fail("unsupported", ("%s: the file storage is %s; only S3, MinIO and Azure Blob Storage are supported")
      :format(where, service))
  end
  if not values["storage-bucket-name"] or values["storage-bucket-name"] == "" then
    return fail("environment", where .. ": no storage-bucket-name",
      "the Secret is not in a layout this tool knows; see docs/environment.md")
  end
  local loc = M.storage_location(values)
  if not loc then
    return fail("environment", ('%s: storage-endpoint "%s" is not an http(s) URL'):format(where, values["storage-endpoint"]))
  end
  local secret = values["storage-secret-access-key"]
  log.secret(secret)
  loc.service = "s3"
  loc.access_key = values["storage-access-key-id"]
  loc.secret_key = secret
  loc.irsa = loc.access_key == nil or loc.access_key == ""
  loc.https = loc.endpoint:sub(1, 6) == "https:"
  return loc
end

-- --- the whole environment --------------------------------------------------------------

local function get(client, resource, name, ns, what)
  local obj, err = client:get(resource, name, ns)
  if obj then return obj end
  if errors.is(err, "not_found") then
    err = errors.new { code = "not_found", message = ("%s %q not found in namespace %q"):format(what, name, ns),
      hint = err.hint }
  end
  return nil, err
end

-- The settings from a secret store (the SecretProviderClass `spc`).
local function from_store(env, client, spc, identity)
  local values, where = secret_store.read(spc, { client = client, namespace = env.namespace, name = env.name,
    identity = identity or "environment" })
  if not values then return nil, where end
  local db, derr = M.database_settings(values, where)
  if not db then return nil, derr end
  local storage, serr = M.storage_settings(values, where)
  if not storage then return nil, serr end
  db.layout, storage.layout = "store", "store"
  db.store, storage.store = where, where
  env.database, env.storage, env.store = db, storage, where
  log.info("credentials from a secret store", { store = where, identity = identity or "environment" })
  return env
end

-- Resolves namespace/name into {namespace, name, replicas, database = {...},
-- storage = {...}}. Credentials are registered for redaction. `decode` turns
-- a Secret object into its decoded data (k8s.secret_data). opts.identity:
-- who reads a secret store ("environment", the default, or "tool").
function M.resolve(client, ns, name, decode, opts)
  local app, err = get(client, "mendixapps", name, ns, "environment (MendixApp)")
  if not app then
    if errors.is(err, "not_found") then
      err.hint = "check the environment's internal name and namespace: kubectl -n " .. ns .. " get mendixapps"
    end
    return nil, err
  end
  local spec = type(app.spec) == "table" and app.spec or {}
  local env = { namespace = ns, name = name, replicas = spec.replicas }
  if type(app.metadata) ~= "table" then app.metadata = {} end
  app.metadata.namespace, app.metadata.name = ns, name -- the ones asked for, whatever the answer says
  local spc, ferr, unseen = secret_store.find(client, app)
  if ferr then return nil, ferr end
  if spc then return from_store(env, client, spc, opts and opts.identity) end
  if unseen then log.debug("cannot look for a SecretProviderClass", { error = unseen.message }) end
  for _, part in ipairs { "database", "file" } do
    local si_name = name .. "-" .. part
    local si, serr = get(client, "storageinstances", si_name, ns, "StorageInstance")
    if not si then
      if unseen and errors.is(serr, "not_found") then
        serr.hint = ("if the environment keeps its credentials in a secret store, the tool must be allowed to read "
          .. "its SecretProviderClass: %s"):format(unseen.hint or unseen.message)
      end
      return nil, serr
    end
    local secret_name = M.secret_name(si)
    if not secret_name then
      return nil, errors.new { code = "k8s", message = ("StorageInstance %q in namespace %q names no credentials "
        .. "Secret (status or spec secretName) and the answer has no metadata.name"):format(si_name, ns),
        hint = "check it: kubectl -n " .. ns .. " get storageinstance " .. si_name .. " -o yaml" }
    end
    local secret, cerr = get(client, "secrets", secret_name, ns, "credentials Secret")
    if not secret then
      if errors.is(cerr, "not_found") then
        cerr.hint = ("check that it exists: kubectl -n %s get secret %s. If the environment keeps its %s "
          .. "credentials in a secret store, the tool reads them through the SecretProviderClass named after the "
          .. "MendixApp%s; see docs/environment.md"):format(ns, secret_name,
          part == "database" and "database" or "file storage",
          unseen and " (which it may not read: it needs get on secretproviderclasses)" or " (there is none)")
      end
      return nil, cerr
    end
    local where = ("Secret %s/%s"):format(ns, secret_name)
    local data, derr = decode(secret)
    if not data then return nil, derr end
    local values, layout = M.flatten_secret(data, where)
    if not values then return nil, layout end
    local settings, perr
    if part == "database" then
      settings, perr = M.database_settings(values, where, si)
    else
      settings, perr = M.storage_settings(values, where)
    end
    if not settings then return nil, perr end
    settings.secret = secret_name
    settings.layout = layout
    env[part == "database" and "database" or "storage"] = settings
  end
  return env
end

return M
