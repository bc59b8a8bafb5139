-- Credentials in their refresh margin while STS refuses: the old ones serve until
-- their end (with a warning), then the refusal is the error. Run by e2e/irsa.sh:
--   mxpc-data-migration run irsa_advisory.lua ROLES_JSON ROLE_ARN BUCKET KEY
local cjson = require "cjson"
local s3 = require "mxpc.s3"
local roles_path, role, bucket, key = arg[1], arg[2], arg[3], arg[4]
local c = assert(s3.client { endpoint = assert(os.getenv("MXPC_S3_ENDPOINT")) })
local first = assert(s3.credentials {})
-- from now on STS refuses the role: its trust names another service account
local f = assert(io.open(roles_path))
local doc = cjson.decode(f:read("a"))
f:close()
doc.roles[role].trust.sub = "system:serviceaccount:other:other"
f = assert(io.open(roles_path .. ".tmp", "w"))
f:write(cjson.encode(doc))
f:close()
assert(os.rename(roles_path .. ".tmp", roles_path))
local function sleep_until(t) while os.time() < t do os.execute("sleep 0.2") end end
-- inside the refresh margin, still valid: the refresh fails, the old credentials serve
sleep_until(first.expiration - 4)
local ok, err = c:head(bucket, key)
print("in the margin: " .. (ok and "served" or tostring(err)) .. ", same key: " ..
  tostring(assert(s3.credentials {}).access_key == first.access_key))
-- past their end there is no way around it
sleep_until(first.expiration + 1)
local _, late = c:head(bucket, key)
print("after the end: " .. tostring(late and late.code) .. ": " .. tostring(late))
