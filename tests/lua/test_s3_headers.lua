-- Signed request headers of any length, against the local stack's Ceph RADOS
-- Gateway: a session token (x-amz-security-token, signed) of several KiB, as
-- STS hands out, given directly and read from the shared credentials file.
-- The gateway checks the signature over the whole header as received, so a
-- header cut on the way fails with 403. (It accepts a token the stack's
-- user does not need.) Needs MXPC_STACK_ENV (fails without it).
local t = require "t"
local s3 = require "mxpc.s3"

local env = t.stack_env()
local dir = t.tmpdir()
local program = t.program()

math.randomseed(os.time(), tonumber(tostring({}):match("0x(%x+)"), 16) or 0)
local bucket = ("mxpc-s3-headers-%d-%06d"):format(os.time(), math.random(0, 999999))

-- a token of n bytes, base64-like as real ones are
local function token(n)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, n do
    local k = math.random(1, #alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

local function client(extra)
  local o = { endpoint = env.MXPC_S3_ENDPOINT, region = env.MXPC_S3_REGION, access_key = env.MXPC_S3_ACCESS_KEY,
    secret_key = env.MXPC_S3_SECRET_KEY, retries = 0 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(s3.client(o))
end

local admin = client()
assert(admin:create_bucket(bucket))

for _, n in ipairs { 1000, 2100, 5000, 9000 } do
  t.test(("a %d-byte session token is signed and sent whole"):format(n), function()
    local c <close> = client { session_token = token(n) }
    local key = ("token-%d"):format(n)
    assert(c:put(bucket, key, "payload " .. n))
    t.eq(assert(c:get_string(bucket, key)), "payload " .. n)
    t.eq(assert(c:head(bucket, key)).size, #("payload " .. n))
    assert(c:delete(bucket, key))
  end)
end

t.test("a 6000-byte session token from the shared credentials file", function()
  local creds = dir .. "/credentials"
  t.write(creds, ("[long]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n"):format(
    env.MXPC_S3_ACCESS_KEY, env.MXPC_S3_SECRET_KEY, token(6000)))
  local script = dir .. "/shared.lua"
  t.write(script, ([[
local s3 = require "mxpc.s3"
local info = assert(s3.credentials { profile = "long" })
assert(info.session_token, "the token was read")
local c = assert(s3.client { endpoint = %q, region = %q, profile = "long", retries = 0 })
assert(c:put(%q, "shared-file", "from the file"))
io.write(assert(c:get_string(%q, "shared-file")))
assert(c:delete(%q, "shared-file"))
]]):format(env.MXPC_S3_ENDPOINT, env.MXPC_S3_REGION, bucket, bucket, bucket))
  local out, code = t.sh(("env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN "
    .. "AWS_SHARED_CREDENTIALS_FILE='%s' '%s' run '%s'"):format(creds, program, script))
  t.eq(out, "from the file")
  t.eq(code, 0)
end)

t.test("cleanup", function() assert(admin:delete_bucket(bucket)) end)

return t.run()
