-- What k8s_api.lua makes of answers no Kubernetes API server sends but a
-- broken proxy or server could: the client's transport answers with a fixed
-- status and body (no real server sends these, so none is used).
local t = require "t"
local k8s = require "mxpc.k8s"
local api = require "mxpc.k8s_api"

local methods, answer = {}, nil
api.install(k8s, methods)
function methods:_http() return answer.status, answer.body, "application/json" end
function methods:info() return { context = "c", source = "kubeconfig", in_cluster = false } end
function methods:namespace() return "ns" end
local client = setmetatable({}, { __index = methods })

t.test("a list answered with JSON that is not a list object is an error, not a crash (found by fuzzing)", function()
  for _, body in ipairs { "3", '"text"', "[1,2]", '{"items":"x"}', '{"items":5}', "null", "false", "true" } do
    answer = { status = 200, body = body }
    local list, err = client:list("storageinstances")
    t.eq(list, nil, body)
    t.eq(err.code, "k8s", body)
    t.contains(err.message, "is not a list", body)
  end
  answer = { status = 200, body = '{"kind":"StorageInstanceList","items":[{"metadata":{"name":"a"}}]}' }
  local list = assert(client:list("storageinstances"))
  t.eq(list.items[1].metadata.name, "a")
end)

return t.run()
