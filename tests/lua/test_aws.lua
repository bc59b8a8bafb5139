-- mxpc.aws: AWS's own module, its old names in mxpc.s3, and the one region
-- resolver that the S3 client, STS and RDS tokens share.
local t = require "t"
local aws = require "mxpc.aws"
local s3 = require "mxpc.s3"

local program = t.program()
local dir = t.tmpdir()
local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs a chunk in a child with the given environment words; its stdout.
local function child(env_words, source)
  local script = dir .. "/child.lua"
  local f = assert(io.open(script, "w"))
  f:write(source)
  f:close()
  return (t.sh(("env -u AWS_REGION -u AWS_DEFAULT_REGION %s %s run %s"):format(env_words, quote(program),
    quote(script))))
end

t.test("the AWS functions are mxpc.aws's, and mxpc.s3 keeps them under the old names", function()
  for _, name in ipairs { "credentials", "rds_token", "sign" } do
    t.ok(type(aws[name]) == "function", "aws." .. name)
    t.ok(rawequal(s3[name], aws[name]), "s3." .. name .. " is aws." .. name)
  end
  local token = assert(aws.rds_token { host = "db.example", user = "app", region = "eu-west-1",
    access_key = "AKIDEXAMPLE", secret_key = "secret", time = 1700000000 })
  t.contains(token, "db.example:5432/?Action=connect&DBUser=app")
  t.contains(token, "%2Feu-west-1%2Frds-db%2Faws4_request")
end)

t.test("one region resolver: given, AWS_REGION, AWS_DEFAULT_REGION, us-east-1", function()
  local show = [[
local aws = require "mxpc.aws"
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = "http://127.0.0.1:1", access_key = "AKIDEXAMPLE", secret_key = "secret" })
local token = assert(aws.rds_token { host = "db", user = "u", access_key = "AKIDEXAMPLE", secret_key = "secret" })
print(aws.region(), aws.region("ap-south-1"), aws.region(nil, false),
  c:presign("GET", "b", "k"):match("%%2F([%w-]+)%%2Fs3%%2F"), token:match("%%2F([%w-]+)%%2Frds%-db%%2F"))
]]
  t.eq(child("", show), "us-east-1\tap-south-1\tnil\tus-east-1\tus-east-1\n")
  t.eq(child("AWS_DEFAULT_REGION=eu-north-1", show), "eu-north-1\tap-south-1\teu-north-1\teu-north-1\teu-north-1\n")
  t.eq(child("AWS_DEFAULT_REGION=eu-north-1 AWS_REGION=eu-central-1", show),
    "eu-central-1\tap-south-1\teu-central-1\teu-central-1\teu-central-1\n")
end)

return t.run()
