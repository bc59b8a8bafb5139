-- The wording of S3's answers (s3_api.lua): the facts src/s3_client.c hands
-- over (the status, the answer's <Code> and <Message>, the request) made of
-- arbitrary input, as a hostile or broken server could make them. Input: the
-- first byte picks the kind, the next two the status, then lines: s3_code,
-- s3_message, object, bucket, prefix, if_match, transport, role_arn.
local s3_api = require "mxpc.s3_api"

local KINDS = { "http", "tls", "connect", "list", "delete" }

return function(data)
  if #data < 3 then return end
  local lines = {}
  for line in (data:sub(4) .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local function line(i) return lines[i] or "" end
  local f = {
    kind = KINDS[data:byte(1) % #KINDS + 1],
    status = (data:byte(2) * 256 + data:byte(3)) % 1000,
    s3_code = line(1), s3_message = line(2), object = line(3), bucket = line(4), prefix = line(5),
    if_match = line(6), transport = line(7), role_arn = line(8),
    method = "GET", action = "s3:GetObject", key = line(3), endpoint = "https://s3.example.com",
    creds_source = "environment", access_key = "AKIDEXAMPLE",
    resumed = data:byte(1) & 8 ~= 0, resume_at = #data, count = #lines, total = #data,
    ca = data:byte(1) & 16 ~= 0 and "" or "/etc/ssl/certs/ca-certificates.crt",
  }
  local code, message, hint = s3_api.describe(f)
  assert(type(code) == "string" and code ~= "", "no code")
  assert(type(message) == "string" and message ~= "", "no message")
  assert(hint == nil or type(hint) == "string", "a hint that is not a string")
end
