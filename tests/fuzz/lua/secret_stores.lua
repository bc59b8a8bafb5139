-- The secret stores' JSON answers as store_aws.lua (Secrets Manager),
-- store_vault.lua (HashiCorp Vault: the Kubernetes login, KV v1 and v2
-- reads) and store_azure.lua (Entra ID's token, Key Vault) read them,
-- through secret_store.read with a SecretProviderClass of each provider.
-- The first byte picks the store; the rest is the answers
-- (lib/answers.lua). Kubernetes (the ServiceAccount's token) and the tool's
-- AWS credentials are stand-ins: what is fuzzed is the stores' answers.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)")
local answers = dofile(dir .. "lib/answers.lua")
local store = require "mxpc.secret_store"
local aws = require "mxpc.aws"

function aws.signing_credentials() return { access_key = "AKIDEXAMPLE", secret_key = "fuzz-secret", source = "fuzz" } end

local SPCS = {
  { provider = "aws", identity = "tool", parameters = { region = "eu-west-1", objects = [[
- objectName: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-db"
  jmesPath:
    - path: '"database-host"'
      objectAlias: database-host
    - path: password
      objectAlias: database-password
- objectName: app-storage
  objectAlias: storage-secret-access-key
]] } },
  { provider = "vault", identity = "environment", parameters = { vaultAddress = "https://vault.example.com:8200",
    roleName = "app", objects = [[
- objectName: database-host
  secretPath: secret/data/app
  secretKey: host
- objectName: database-password
  secretPath: secret/data/app
  secretKey: password
- objectName: storage-secret-access-key
  secretPath: kv/storage
  secretKey: key
]] } },
  { provider = "azure", identity = "environment", parameters = { keyvaultName = "kv-app", clientID = "c",
    tenantID = "t", objects = [[
array:
  - |
    objectName: db-host
    objectAlias: database-host
  - |
    objectName: db-password
    objectAlias: database-password
    objectVersion: 0123
]] } },
}

local client = {}
function client.create_token() return "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2ln" end
function client.get() return { metadata = { annotations = {} } } end

return function(data)
  local spc = SPCS[(data:byte(1) or 0) % #SPCS + 1]
  answers.set(data:sub(2))
  local ctx = { client = client, namespace = "ns", name = "app", identity = spc.identity }
  local values, err = store.read({ metadata = { name = "app", namespace = "ns" },
    spec = { provider = spc.provider, parameters = spc.parameters } }, ctx)
  if values then
    for k, v in pairs(values) do
      assert(type(k) == "string" and type(v) == "string", "a value that is not a string: " .. tostring(k))
    end
    assert(type(err) == "string", "no description of the store")
  else
    answers.check_error(err)
  end
  return values, err
end
