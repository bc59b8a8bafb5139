-- The Kubernetes API's answers as k8s_api.lua reads them: error bodies (a
-- Status object, or anything else) and their wording, and the JSON of
-- successful answers (Secrets registered as credentials, integers). The
-- client's transport is replaced by one that answers with the input: the
-- first two bytes are the status, the third picks the request, the rest is
-- the body (JSON).
local k8s = require "mxpc.k8s"
local api = require "mxpc.k8s_api"

local methods = {}
api.install(k8s, methods)
local answer
function methods:_http() return answer.status, answer.body, "application/json" end
function methods:info() return { context = "fuzz", source = "kubeconfig", in_cluster = false } end
function methods:namespace() return "fuzz" end
local client = setmetatable({}, { __index = methods })

return function(data)
  if #data < 3 then return end
  answer = { status = 100 + (data:byte(1) * 256 + data:byte(2)) % 500, body = data:sub(4) }
  local pick = data:byte(3) % 4
  local v, err
  if pick == 0 then
    v, err = client:get("secrets", "app")
  elseif pick == 1 then
    v, err = client:get("mendixapps", "app", "ns")
  elseif pick == 2 then
    v, err = client:request("PATCH", "/api/v1/namespaces/ns/secrets/x", { data = {} })
  else
    v, err = client:list("storageinstances")
  end
  if v == nil and err ~= nil then
    assert(type(err.message) == "string" and err.message ~= "", "an error without a message")
    assert(type(err.code) == "string", "an error without a code")
  end
end
