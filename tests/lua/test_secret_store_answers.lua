-- What the secret stores' readers make of answers Secrets Manager and Vault
-- do not send but a broken proxy or a store's stand-in could: valid JSON
-- with fields of other types (found with tests/fuzz/lua/secret_stores.lua).
-- mxpc.http's request answers with fixed statuses and bodies; the tool's AWS
-- credentials and the ServiceAccount's token are stand-ins.
local t = require "t"
local http = require "mxpc.http"
local aws = require "mxpc.aws"
local store = require "mxpc.secret_store"

local queue
local real_request, real_credentials = http.request, aws.signing_credentials
local function read(provider, params, answers)
  queue = answers
  http.request = function()
    local a = table.remove(queue, 1)
    if not a then return nil, { code = "http", message = "no more answers" } end
    return { status = a[1], body = a[2] }
  end
  aws.signing_credentials = function() return { access_key = "AKIDEXAMPLE", secret_key = "s", source = "test" } end
  local client = { create_token = function() return "jwt" end }
  local ok, values, err = pcall(store.read, { metadata = { name = "app" },
    spec = { provider = provider, parameters = params } },
    { client = client, namespace = "ns", name = "app", identity = provider == "aws" and "tool" or "environment" })
  http.request, aws.signing_credentials = real_request, real_credentials
  assert(ok, values)
  return values, err
end

local AWS = { region = "eu-west-1", objects = [[
- objectName: app-db
  jmesPath:
    - path: '"database-host"'
      objectAlias: database-host
]] }
local VAULT = { vaultAddress = "https://vault.example.com", roleName = "app", objects = [[
- objectName: database-host
  secretPath: secret/data/app
  secretKey: host
]] }

t.test("aws: a refusal whose message or __type is not a string is worded (was: attempt to concatenate)", function()
  for _, body in ipairs { '{"__type":"AccessDeniedException","message":{}}', '{"__type":[1],"Message":null}',
      '{"message":5}' } do
    local values, err = read("aws", AWS, { { 400, body } })
    t.eq(values, nil, body)
    t.contains(err.message, "Secrets Manager refused GetSecretValue of app-db", body)
  end
  local _, err = read("aws", AWS, { { 400, '{"__type":"com.amazon#AccessDeniedException","message":{}}' } })
  t.eq(err.code, "forbidden")
end)

t.test("a value that is an object or a list is refused, not taken as 'table: 0x...'", function()
  local values, err = read("aws", AWS, { { 200, '{"SecretString":"{\\"database-host\\":{\\"a\\":1}}"}' } })
  t.eq(values, nil)
  t.eq(err.code, "environment")
  t.contains(err.message, "jmesPath \"database-host\": an object or a list, not a value")
  values, err = read("vault", VAULT, { { 200, '{"auth":{"client_token":"hvs.x"}}' },
    { 200, '{"data":{"data":{"host":["a"]},"metadata":{}}}' } })
  t.eq(values, nil)
  t.contains(err.message, "Vault secret/data/app, key host: an object or a list, not a value")
  -- numbers are values: whole ones without cjson's ".0" (was "5432.0")
  values = assert(read("vault", VAULT, { { 200, '{"auth":{"client_token":"hvs.x"}}' },
    { 200, '{"data":{"host":5432}}' } }))
  t.eq(values["database-host"], "5432")
  values = assert(read("aws", AWS, { { 200, '{"SecretString":"{\\"database-host\\":1.5}"}' } }))
  t.eq(values["database-host"], "1.5")
end)

return t.run()
