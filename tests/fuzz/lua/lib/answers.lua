-- For the Lua targets whose code asks servers over mxpc.http (the Mendix
-- Cloud API, the secret stores) or the Kubernetes client: the input is the
-- servers' answers, in the order the requests are made, each
-- "STATUS\nBODY", separated by the byte 0x1E. http.request is replaced: it
-- answers each request with the next answer (nothing goes out), and fails
-- to connect once they are used up; a target's Kubernetes transport takes
-- them with next().
-- Not a target (tools/fuzz and CMake take tests/fuzz/lua/*.lua only).
local errors = require "mxpc.error"
local http = require "mxpc.http"

local M = {}
local queue, at = {}, 1

function M.set(data)
  queue, at = {}, 1
  for a in (data .. "\30"):gmatch("([^\30]*)\30") do
    local status, body = a:match("^(%d*)\n?(.*)$")
    queue[#queue + 1] = { status = math.max(100, math.min(599, math.floor(tonumber(status) or 200))), body = body }
  end
end

-- The next answer, or nil once they are used up.
function M.next()
  local a = queue[at]
  at = at + 1
  return a
end

function http.request(req)
  assert(type(req) == "table" and type(req.url) == "string", "http.request without a url")
  local a = M.next()
  if not a then return nil, errors.new { code = "http", message = "connection refused" } end
  return { status = a.status, body = a.body }
end

-- An error the code under test returned must be the project's, worded.
function M.check_error(err)
  assert(type(err) == "table", "an error that is not an error object: " .. tostring(err))
  assert(type(err.code) == "string" and err.code ~= "", "an error without a code")
  assert(type(err.message) == "string" and err.message ~= "", "an error without a message")
end

require("mxpc.log").set_level("error")

return M
