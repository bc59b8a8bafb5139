-- Secret stores: mxpc.yaml, the SecretProviderClass's mapping (the pure part
-- of mxpc.secret_store), mxpc.aws's request signature and the discovery rules. The
-- stores themselves are exercised by e2e.secretstores against the stack.
local t = require "t"
local yaml = require "mxpc.yaml"
local store = require "mxpc.secret_store"
local sigv4 = require "mxpc.sigv4"
local errors = require "mxpc.error"

t.test("yaml: mappings, lists, block strings; scalars stay text", function()
  local doc = assert(yaml.decode("a: 1\nb: [x, 'y z']\nc: |\n  line1\n  line2\nd:\n"))
  t.same(doc, { a = "1", b = { "x", "y z" }, c = "line1\nline2\n", d = "" })
  t.eq(yaml.decode(""), nil)
  local _, err = yaml.decode("a: [1, 2\n")
  t.ok(errors.is(err, "yaml"))
  t.contains(err.message, "line 2")
end)

t.test("jmesPath: a quoted key or a bare name, nothing else", function()
  t.eq(store.jmes_key('"database-host"'), "database-host")
  t.eq(store.jmes_key("dbHost"), "dbHost")
  t.eq(store.jmes_key("db.host"), nil)
  t.eq(store.jmes_key('"a".b'), nil)
  t.eq(store.jmes_key("keys(@)"), nil)
  t.eq(store.jmes_key("database-host"), nil) -- a dash is a minus without quotes
end)

local function spc(provider, objects, params)
  params = params or {}
  params.objects = objects
  return { metadata = { name = "app" }, spec = { provider = provider, parameters = params } }
end

t.test("aws: jmesPath aliases; only the keys the tool needs are kept", function()
  local entries = assert(store.entries(spc("aws", [[
- objectName: "mendix/app"
  objectType: "secretsmanager"
  jmesPath:
    - path: '"database-host"'
      objectAlias: "database-host"
    - path: '"mx-admin-password"'
      objectAlias: "mx-admin-password"
    - path: 'weird[0]'
      objectAlias: "mx-const-A.B"
]]), "here"))
  t.eq(#entries, 1)
  t.same({ entries[1].key, entries[1].secret, entries[1].path }, { "database-host", "mendix/app", '"database-host"' })
end)

t.test("vault: objectName is the key, secretPath and secretKey say where", function()
  local entries = assert(store.entries(spc("vault", [[
- objectName: database-password
  secretPath: secret/data/app
  secretKey: db-pass
- objectName: mx-admin-password
  secretPath: secret/data/app
  secretKey: mx-admin-password
]]), "here"))
  t.eq(#entries, 1)
  t.same({ entries[1].key, entries[1].path, entries[1].field }, { "database-password", "secret/data/app", "db-pass" })
end)

t.test("azure: an array of YAML strings; objectAlias renames", function()
  local entries = assert(store.entries(spc("azure", [[
array:
  - |
    objectName: database-name
    objectType: secret
  - |
    objectName: storage-secret
    objectType: secret
    objectAlias: storage-secret-access-key
  - |
    objectName: mx-const-A-B
    objectAlias: mx-const-A.B
]]), "here"))
  t.eq(#entries, 2)
  t.same({ entries[1].key, entries[1].name }, { "database-name", "database-name" })
  t.same({ entries[2].key, entries[2].name }, { "storage-secret-access-key", "storage-secret" })
end)

t.test("aws: the region from the parameters, else the secret's ARN", function()
  local aws = require "mxpc.store_aws"
  t.eq(aws.region({ region = "eu-west-1" }, { { secret = "arn:aws:secretsmanager:us-east-2:1:secret:x" } }), "eu-west-1")
  t.eq(aws.region({}, { { secret = "n" }, { secret = "arn:aws:secretsmanager:us-east-2:1:secret:x-AbCdEf" } }),
    "us-east-2")
  if not os.getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER") and not os.getenv("AWS_ENDPOINT_URL") then
    t.eq(aws.endpoint("eu-central-1"), "https://secretsmanager.eu-central-1.amazonaws.com")
  end
  if not os.getenv("MXPC_KEYVAULT_ENDPOINT") then
    t.eq(require("mxpc.store_azure").vault_url("demo-kv"), "https://demo-kv.vault.azure.net")
  end
end)

t.test("mapping errors name the SecretProviderClass and what to do", function()
  local _, err = store.entries(spc("gcp", "[]"), "SPC ns/app")
  t.ok(errors.is(err, "unsupported"))
  t.contains(err.message, 'SPC ns/app: provider "gcp"')
  _, err = store.entries(spc("vault", nil), "SPC ns/app")
  t.contains(err.message, "no parameters.objects")
  _, err = store.entries(spc("vault", "- [unclosed\n"), "SPC ns/app")
  t.contains(err.message, "parameters.objects: YAML error")
  _, err = store.entries(spc("vault", "- objectName: x\n"), "SPC ns/app")
  t.contains(err.message, "needs objectName, secretPath and secretKey")
  _, err = store.entries(spc("vault", "- objectName: mx-admin-password\n  secretPath: s\n  secretKey: k\n"), "SPC")
  t.contains(err.message, "maps none of the keys the tool needs")
end)

t.test("discovery: the annotation or the MendixApp's switch; else ignored", function()
  local function client(obj, err)
    return { get = function() return obj, err end }
  end
  local app = { metadata = { name = "app", namespace = "ns" }, spec = {} }
  local annotated = { metadata = { annotations = { [store.ENV_CLASS] = "true" } }, spec = {} }
  t.eq(store.find(client(annotated), app), annotated)
  local plain = { metadata = {}, spec = {} }
  t.eq(store.find(client(plain), app), nil)
  t.eq(store.find(client(plain), { metadata = app.metadata, spec = { [store.OVERRIDE] = true } }), plain)
  t.eq(store.find(client(nil, errors.new { code = "not_found", message = "x" }), app), nil)
  local _, e, warn = store.find(client(nil, errors.new { code = "forbidden", message = "no" }), app)
  t.eq(e, nil)
  t.eq(warn.code, "forbidden")
end)

t.test("aws.sign_request: the AWS example request (secretsmanager-like service)", function()
  -- AWS's SigV4 test suite "get-vanilla": same key, date and region; the time is
  -- now, so check the form and that the session token is sent
  local h = assert(require("mxpc.aws").sign_request { method = "POST", url = "https://secretsmanager.eu-west-1.amazonaws.com/",
    service = "secretsmanager", region = "eu-west-1", headers = { ["X-Amz-Target"] = "secretsmanager.GetSecretValue" },
    body = "{}", credentials = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      session_token = "tok" } })
  t.ok(h.Authorization:match("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/%d+/eu%-west%-1/secretsmanager/aws4_request, "
    .. "SignedHeaders=host;x%-amz%-date;x%-amz%-security%-token;x%-amz%-target, Signature=%x+$"), h.Authorization)
  t.eq(h["X-Amz-Security-Token"], "tok")
  t.ok(h["X-Amz-Date"]:match("^%d+T%d+Z$"))
end)

t.test("mxpc.sigv4 is mxpc.aws's signing_credentials, web_identity and sign_request by its first names", function()
  local aws = require "mxpc.aws"
  t.eq(sigv4.credentials, aws.signing_credentials)
  t.eq(sigv4.web_identity, aws.web_identity)
  t.eq(sigv4.sign, aws.sign_request)
  t.eq(type(aws.sign), "function", "aws.sign (the canonical parts) is still its own")
  t.ok(aws.sign ~= aws.sign_request)
end)

t.test("vault: the CA is VAULT_CACERT, else vaultCACertPath when it is on this machine", function()
  local vault = require "mxpc.store_vault"
  local here = os.tmpname()
  t.same({ vault.ca_file({ vaultCACertPath = here }, nil) }, { here, "vaultCACertPath" })
  t.same({ vault.ca_file({ vaultCACertPath = here }, "") }, { here, "vaultCACertPath" })
  t.same({ vault.ca_file({ vaultCACertPath = here }, "/etc/vault-ca.pem") }, { "/etc/vault-ca.pem", "VAULT_CACERT" })
  t.same({ vault.ca_file({}, nil) }, {})
  local none, why = vault.ca_file({ vaultCACertPath = "/no/such/vault-ca.pem" }, nil)
  t.eq(none, nil)
  t.contains(why, "vaultCACertPath /no/such/vault-ca.pem is not on this machine")
  os.remove(here)
end)

t.test("register: what a store hands over is redacted, names and hosts stay readable", function()
  local log = require "mxpc.log"
  store.register { ["mx-admin-password"] = "adm1n-secret-xyz", ["database-host"] = "db.example:5432" }
  t.eq(log.redact("a adm1n-secret-xyz b db.example:5432"), "a *** b db.example:5432")
end)

return t.run()
