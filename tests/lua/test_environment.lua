-- Resolving an environment's settings from the operator's resources: the pure
-- decisions, with Kubernetes objects made here (the stack test drives the real
-- API through mxpc.k8s).
local t = require "t"
local environment = require "mxpc.environment"
local errors = require "mxpc.error"
local cjson = require "cjson"

t.test("secret name: status, then spec, then the StorageInstance's name", function()
  t.eq(environment.secret_name { metadata = { name = "a-database" }, status = { secretName = "s1" } }, "s1")
  t.eq(environment.secret_name { metadata = { name = "a-database" }, spec = { credentialsSecret = "s2" }, status = {} }, "s2")
  t.eq(environment.secret_name { metadata = { name = "a-database" }, spec = { plan = "x" }, status = { state = "Ready" } },
    "a-database")
end)

t.test("hosts: name, IPv4, IPv6 in brackets, no port", function()
  t.same({ environment.parse_host("db.example.com:5433") }, { "db.example.com", 5433 })
  t.same({ environment.parse_host("10.0.0.1") }, { "10.0.0.1" })
  t.same({ environment.parse_host("[fd00::1]:5432") }, { "fd00::1", 5432 })
  t.same({ environment.parse_host("[fd00::1]") }, { "fd00::1" })
end)

t.test("JDBC URL and the TLS rule it carries", function()
  local j = environment.parse_jdbc("jdbc:postgresql://db:5432/app?sslmode=verify-full&foo=1")
  t.same(j, { host = "db", port = 5432, dbname = "app", params = { sslmode = "verify-full", foo = "1" } })
  t.eq(environment.jdbc_sslmode(j), "verify-full")
  t.eq(environment.parse_jdbc("jdbc:postgresql://[::1]:6000/app").host, "::1")
  t.eq(environment.parse_jdbc("jdbc:sqlserver://x"), nil)
end)

-- what pgjdbc (the Mendix runtime's driver) makes of a URL, and what the tool
-- connects with: never weaker
local function modes(query)
  local asked, why = environment.jdbc_sslmode(environment.parse_jdbc("jdbc:postgresql://db/app" .. query))
  if not asked then return nil, why end
  return asked, environment.sslmode(asked)
end

t.test("sslmode: known modes in any case are kept, weak ones become prefer", function()
  t.same({ modes("?sslmode=verify-full") }, { "verify-full", "verify-full" })
  t.same({ modes("?sslmode=VERIFY-FULL") }, { "verify-full", "verify-full" })
  t.same({ modes("?SSLMode=Verify-CA") }, { "verify-ca", "verify-ca" })
  t.same({ modes("?sslmode=Require&ssl=false") }, { "require", "require" })
  t.same({ modes("?sslmode=verify%2Dfull") }, { "verify-full", "verify-full" })
  t.same({ modes("?sslmode=prefer") }, { "prefer", "prefer" })
  t.same({ modes("") }, { "prefer", "prefer" })
  t.same({ modes("?sslmode=disable") }, { "disable", "prefer" })
  t.same({ modes("?sslmode=allow") }, { "allow", "prefer" })
end)

t.test("sslmode: ssl=true without sslmode is verify-full, as in pgjdbc", function()
  t.same({ modes("?ssl=true") }, { "verify-full", "verify-full" })
  t.same({ modes("?ssl=TRUE&foo=1") }, { "verify-full", "verify-full" })
  t.same({ modes("?ssl") }, { "verify-full", "verify-full" })
  t.same({ modes("?ssl=") }, { "verify-full", "verify-full" })
  t.same({ modes("?ssl=false") }, { "prefer", "prefer" })
  t.same({ modes("?ssl=true&sslfactory=org.postgresql.ssl.NonValidatingFactory") }, { "require", "require" })
  t.same({ modes("?ssl=true&sslmode=verify-ca") }, { "verify-ca", "verify-ca" })
end)

t.test("sslmode: an unknown value is an error, never a weaker mode", function()
  t.same({ modes("?sslmode=verify_full") }, { nil, 'sslmode "verify_full" is not a PostgreSQL sslmode' })
  t.same({ modes("?sslmode=") }, { nil, 'sslmode "" is not a PostgreSQL sslmode' })
  t.same({ modes("?ssl=yes") }, { nil, "ssl=yes is neither true nor false" })
  local none, err = environment.database_settings({ ["database-jdbc-url"] = "jdbc:postgresql://h/d?sslmode=strict",
    ["database-username"] = "u", ["database-password"] = "p" }, "Secret ns/x")
  t.eq(none, nil)
  t.ok(errors.is(err, "environment"))
  t.eq(err.message, 'Secret ns/x: database-jdbc-url: sslmode "strict" is not a PostgreSQL sslmode')
  t.contains(err.hint, "verify-full")
end)

-- The database settings of a JDBC URL ending in `query`.
local function db(query)
  return assert(environment.database_settings({ ["database-jdbc-url"] = "jdbc:postgresql://h/d" .. query,
    ["database-username"] = "u", ["database-password"] = "p" }, "S"))
end

t.test("a server without TLS: the hint names who asked for TLS", function()
  local d = db("?sslmode=prefer")
  t.ok(environment.request_sslmode(d, "require", "--db-sslmode"))
  t.eq(environment.no_tls_hint(d), "the server does not offer TLS, but --db-sslmode require asks for it "
    .. "(the environment asks for prefer): leave --db-sslmode out")
  d = db("")
  t.ok(environment.request_sslmode(d, "verify-ca", "PGSSLMODE"))
  t.contains(environment.no_tls_hint(d), "PGSSLMODE verify-ca asks for it")
  t.contains(environment.no_tls_hint(d), "unset PGSSLMODE")
  d = db("?ssl=true")
  t.ok(environment.request_sslmode(d, "verify-full", "--db-sslmode"), "as strong as asked: the URL asked first")
  t.eq(environment.no_tls_hint(d), "the server does not offer TLS, but the environment's JDBC URL asks for it "
    .. "(sslmode verify-full): correct the URL in the storage plan, or turn TLS on at the server")
end)

t.test("--db-sslmode and PGSSLMODE raise the mode, never lower it", function()
  local d = db("?sslmode=prefer")
  t.ok(environment.request_sslmode(d, "VERIFY-full", "--db-sslmode"))
  t.eq(d.sslmode, "verify-full")
  d = db("?sslmode=disable")
  t.ok(environment.request_sslmode(d, "disable", "PGSSLMODE"))
  t.eq(d.sslmode, "disable", "the environment itself asks for no TLS")
  d = db("")
  t.ok(environment.request_sslmode(d, nil, "--db-sslmode"))
  t.ok(environment.request_sslmode(d, "", "PGSSLMODE"))
  t.eq(d.sslmode, "prefer")
  d = db("?ssl=true")
  local none, err = environment.request_sslmode(d, "require", "--db-sslmode")
  t.eq(none, nil)
  t.ok(errors.is(err, "usage"))
  t.eq(err.message, "--db-sslmode require would lower the TLS mode verify-full that the environment's database asks for")
  t.eq(d.sslmode, "verify-full", "unchanged")
  none, err = environment.request_sslmode(d, "verify-ca", "PGSSLMODE")
  t.eq(none, nil)
  t.contains(err.message, "PGSSLMODE verify-ca would lower")
  none, err = environment.request_sslmode(d, "full", "PGSSLMODE")
  t.eq(none, nil)
  t.ok(errors.is(err, "usage"))
  t.eq(err.message, 'PGSSLMODE "full" is not a PostgreSQL sslmode')
end)

t.test("the config layout is mapped onto the key-per-value names", function()
  local flat, layout = environment.flatten_secret({ config = cjson.encode {
    DatabaseHost = "db:5432", DatabaseName = "app", DatabaseUserName = "u", DatabasePassword = "p",
    ["com.mendix.storage.s3.BucketName"] = "b", ["com.mendix.storage.s3.Unknown"] = "x" } }, "S")
  t.eq(layout, "config")
  t.same(flat, { ["database-host"] = "db:5432", ["database-name"] = "app", ["database-username"] = "u",
    ["database-password"] = "p", ["storage-bucket-name"] = "b" })
  local none, err = environment.flatten_secret({ config = "{not json" }, "Secret ns/s")
  t.eq(none, nil)
  t.eq(err.message, "Secret ns/s: key 'config' is not a JSON object")
end)

t.test("database settings; other database types are refused with a way out", function()
  local db = assert(environment.database_settings({ ["database-type"] = "PostgreSQL",
    ["database-jdbc-url"] = "jdbc:postgresql://ignored:1/x?sslmode=verify-full", ["database-host"] = "db:6432",
    ["database-name"] = "app", ["database-username"] = "u", ["database-password"] = "pw-123456" }, "S"))
  t.same(db, { type = "PostgreSQL", host = "db", port = 6432, dbname = "app", user = "u", password = "pw-123456",
    iam = false, sslmode = "verify-full", sslmode_asked = "verify-full" })
  t.eq(require("mxpc.log").redact("pw-123456"), "***", "password registered as a secret")
  local iam = assert(environment.database_settings({ ["database-jdbc-url"] = "jdbc:postgresql://h:5432/d",
    ["database-username"] = "u" }, "S"))
  t.eq(iam.iam, true)
  t.eq(iam.host, "h")
  local none, err = environment.database_settings({ ["database-type"] = "SQLSERVER" }, "Secret ns/x")
  t.eq(none, nil)
  t.ok(errors.is(err, "unsupported"))
  t.contains(err.message, "only PostgreSQL is supported")
  t.contains(err.hint, "PostgreSQL")
  local _, merr = environment.database_settings({ ["database-name"] = "d", ["database-username"] = "u" }, "Secret ns/x")
  t.eq(merr.message, "Secret ns/x: no database-host")
end)

t.test("RDS IAM authentication is detected tolerantly", function()
  local base = { ["database-jdbc-url"] = "jdbc:postgresql://h:5432/d", ["database-username"] = "u",
    ["database-password"] = "pw" }
  local function with(extra)
    local v = {}
    for k, x in pairs(base) do v[k] = x end
    for k, x in pairs(extra) do v[k] = x end
    return v
  end
  local function iam(values, si) return (environment.database_iam(values, environment.parse_jdbc(
    values["database-jdbc-url"]), si)) end
  t.eq(iam(base), false, "a password and no marker: password login")
  t.eq(iam(with { ["database-password"] = "" }), true, "an empty password")
  t.eq(iam(with { ["database-iam"] = "true" }), true, "database-iam: true")
  t.eq(iam(with { ["database-use-iam"] = "yes" }), true)
  t.eq(iam(with { ["database-iam"] = "false" }), false, "database-iam: false")
  t.eq(iam(with { ["database-auth"] = "IAM" }), true, "an auth key naming IAM")
  t.eq(iam(with { ["database-authentication-type"] = "irsa" }), true)
  t.eq(iam(with { ["database-jdbc-url"] = "jdbc:postgresql://h:5432/d?wrapperPlugins=iam" }), true,
    "the AWS JDBC wrapper's IAM plugin")
  t.eq(iam(base, { spec = { authentication = "iam" } }), true, "StorageInstance spec")
  t.eq(iam(base, { status = { irsa = true } }), true, "StorageInstance status")
  t.eq(iam(base, { spec = { type = "database", plan = "postgres" } }), false, "a plain StorageInstance")
  local _, why = environment.database_iam(with { ["database-iam"] = "true" }, nil, nil)
  t.eq(why, "an IAM marker in the Secret")
  t.eq(environment.rds_region("mydb.abc123.eu-west-1.rds.amazonaws.com"), "eu-west-1")
end)

t.test("where files live: bucket in the endpoint, virtual host, MinIO, AWS default", function()
  local function loc(v) return environment.storage_location(v) end
  local path = loc { ["storage-endpoint"] = "http://127.0.0.1:9000/shared", ["storage-bucket-name"] = "env1" }
  t.same(path, { endpoint = "http://127.0.0.1:9000", bucket = "shared", prefix = "env1/" })
  t.eq(environment.object_key(path, "u-1"), "env1/u-1")
  local vhost = loc { ["storage-endpoint"] = "https://my-bucket.s3.eu-west-1.amazonaws.com", ["storage-bucket-name"] = "env2" }
  t.same(vhost, { endpoint = "https://s3.eu-west-1.amazonaws.com", bucket = "my-bucket", prefix = "env2/",
    region = "eu-west-1", virtual_host = true })
  local minio = loc { ["storage-endpoint"] = "https://minio.local:9000/", ["storage-bucket-name"] = "env3",
    ["storage-resource-name-prefix"] = "p-" }
  t.same(minio, { endpoint = "https://minio.local:9000", bucket = "env3", prefix = "p-" })
  local aws = loc { ["storage-bucket-name"] = "b", ["storage-region"] = "eu-central-1" }
  t.same(aws, { endpoint = "https://s3.eu-central-1.amazonaws.com", bucket = "b", prefix = "", region = "eu-central-1" })
  t.eq(loc { ["storage-endpoint"] = "ftp://x", ["storage-bucket-name"] = "b" }, nil)
end)

t.test("storage settings: S3 only, keys or IRSA, TLS from the scheme", function()
  local s = assert(environment.storage_settings({ ["storage-endpoint"] = "https://minio:9000",
    ["storage-bucket-name"] = "b", ["storage-access-key-id"] = "AK", ["storage-secret-access-key"] = "sk-abcdef" }, "S"))
  t.eq(s.https, true)
  t.eq(s.irsa, false)
  t.eq(require("mxpc.log").redact("sk-abcdef"), "***")
  local irsa = assert(environment.storage_settings({ ["storage-bucket-name"] = "b" }, "S"))
  t.eq(irsa.irsa, true)
  local _, err = environment.storage_settings({ ["storage-service-name"] = "com.mendix.storage.gcs" }, "Secret ns/f")
  t.ok(errors.is(err, "unsupported"))
  t.contains(err.message, "only S3, MinIO and Azure Blob Storage are supported")
end)

t.test("storage settings: Azure Blob Storage with an account key, a SAS or Workload Identity", function()
  local az = "com.mendix.storage.azure"
  local s = assert(environment.storage_settings({ ["storage-service-name"] = az,
    ["storage-azure-account-name"] = "acct", ["storage-azure-account-key"] = "a2V5LWFiY2RlZg==",
    ["storage-azure-container"] = "files" }, "S"))
  t.eq(s.service, "azure")
  t.eq(s.endpoint, "https://acct.blob.core.windows.net")
  t.eq(s.bucket, "files")
  t.eq(s.account_key, "a2V5LWFiY2RlZg==")
  t.eq(require("mxpc.log").redact("a2V5LWFiY2RlZg=="), "***")
  t.eq(environment.object_key(s, "0a1b-uuid"), "0a1b-uuid")
  -- Workload Identity: the account from the endpoint (Azure's, or Azurite's path)
  local wi = assert(environment.storage_settings({ ["storage-service-name"] = az,
    ["storage-azure-blob-endpoint"] = "https://other.blob.core.windows.net/", ["storage-azure-container"] = "c",
    ["storage-azure-use-default-azure-credential"] = "true" }, "S"))
  t.eq(wi.account, "other")
  t.eq(wi.workload_identity, true)
  t.eq(wi.endpoint, "https://other.blob.core.windows.net")
  local azurite = assert(environment.storage_settings({ ["storage-service-name"] = az,
    ["storage-azure-blob-endpoint"] = "https://127.0.0.1:27510/mxpcstack", ["storage-azure-container"] = "c",
    ["storage-azure-shared-access-signature"] = "sv=2021&sig=abc" }, "S"))
  t.eq(azurite.account, "mxpcstack")
  t.eq(azurite.sas, "sv=2021&sig=abc")
  -- the config layout: runtime settings
  local values = assert(environment.flatten_secret({ config = require("cjson").encode {
    ["com.mendix.core.StorageService"] = az, ["com.mendix.storage.azure.AccountName"] = "acct",
    ["com.mendix.storage.azure.AccountKey"] = "a2V5", ["com.mendix.storage.azure.Container"] = "cfg" } }, "S"))
  local c = assert(environment.storage_settings(values, "S"))
  t.eq(c.bucket, "cfg")
  t.eq(c.account, "acct")
  local _, nerr = environment.storage_settings({ ["storage-service-name"] = az, ["storage-azure-account-name"] = "a" }, "S")
  t.contains(nerr.message, "no storage-azure-container")
  local _, kerr = environment.storage_settings({ ["storage-service-name"] = az, ["storage-azure-account-name"] = "a",
    ["storage-azure-container"] = "c" }, "S")
  t.contains(kerr.message, "no storage-azure-account-key")
end)

-- A stand-in for mxpc.k8s's client: objects by resource and name.
local function fake_client(objects)
  return {
    get = function(_, resource, name, ns)
      local obj = (objects[resource] or {})[name]
      if obj then return obj end
      return nil, errors.new { code = "not_found", message = resource .. " " .. name .. " not found", hint = "h" }
    end,
  }
end

local function identity(secret) return secret.data end

t.test("resolve: MendixApp -> StorageInstances -> Secrets, both layouts", function()
  local client = fake_client {
    mendixapps = { app = { metadata = { name = "app" }, spec = { replicas = 2 } } },
    storageinstances = {
      ["app-database"] = { metadata = { name = "app-database" }, status = { secretName = "app-db-creds" } },
      ["app-file"] = { metadata = { name = "app-file" }, status = {} },
    },
    secrets = {
      ["app-db-creds"] = { data = { ["database-host"] = "db:5432", ["database-name"] = "app",
        ["database-username"] = "u", ["database-password"] = "p4ssw0rd" } },
      ["app-file"] = { data = { config = cjson.encode { ["com.mendix.storage.s3.EndPoint"] = "http://s3:7480",
        ["com.mendix.storage.s3.BucketName"] = "files" } } },
    },
  }
  local env = assert(environment.resolve(client, "ns", "app", identity))
  t.eq(env.replicas, 2)
  t.eq(env.database.host, "db")
  t.eq(env.database.secret, "app-db-creds")
  t.eq(env.database.layout, "keys")
  t.eq(env.storage.bucket, "files")
  t.eq(env.storage.secret, "app-file")
  t.eq(env.storage.layout, "config")
end)

t.test("resolve: what is missing is named", function()
  local _, err = environment.resolve(fake_client {}, "ns", "nope", identity)
  t.ok(errors.is(err, "not_found"))
  t.eq(err.message, 'environment (MendixApp) "nope" not found in namespace "ns"')
  t.contains(err.hint, "kubectl -n ns get mendixapps")
  local _, err2 = environment.resolve(fake_client { mendixapps = { app = { spec = {} } } }, "ns", "app", identity)
  t.eq(err2.message, 'StorageInstance "app-database" not found in namespace "ns"')
end)

t.test("resolve: a missing credentials Secret names the secret store case", function()
  local client = fake_client {
    mendixapps = { app = { spec = {} } },
    storageinstances = { ["app-database"] = { status = { secretName = "app-db-creds" } } },
  }
  local _, err = environment.resolve(client, "ns", "app", identity)
  t.ok(errors.is(err, "not_found"))
  t.eq(err.message, 'credentials Secret "app-db-creds" not found in namespace "ns"')
  t.contains(err.hint, "SecretProviderClass named after the MendixApp (there is none)")
  t.contains(err.hint, "kubectl -n ns get secret app-db-creds")
end)

return t.run()
