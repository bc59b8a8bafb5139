-- The wording of Azure Blob Storage's answers (azure_api.lua): the facts
-- src/azure_blob.c hands over (the status, the x-ms-error-code header or
-- <Code>, the <Message>, the request) made of arbitrary input. Input: the
-- first byte picks the kind, the method and the identity, the next two the
-- status, then lines: s3_code, s3_message, object, bucket, key, if_match,
-- transport, access_key.
local azure_api = require "mxpc.azure_api"

local KINDS = { "http", "tls", "connect", "list" }
local METHODS = { "GET", "PUT" }
local SOURCES = { "account key", "SAS token", "bearer token", "managed identity c" }

return function(data)
  if #data < 3 then return end
  local lines = {}
  for line in (data:sub(4) .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local function line(i) return lines[i] or "" end
  local b = data:byte(1)
  local f = {
    service = "azure", kind = KINDS[b % #KINDS + 1], method = METHODS[(b >> 2) % 2 + 1],
    creds_source = SOURCES[(b >> 3) % #SOURCES + 1],
    status = (data:byte(2) * 256 + data:byte(3)) % 1000,
    s3_code = line(1), s3_message = line(2), object = line(3), bucket = line(4), key = line(5),
    if_match = line(6), transport = line(7), access_key = line(8),
    endpoint = "https://acct.blob.core.windows.net", resume_at = #data, resumed = b & 32 ~= 0,
    ca = b & 64 ~= 0 and "" or "/etc/ssl/certs/ca-certificates.crt",
  }
  local code, message, hint = azure_api.describe(f)
  assert(type(code) == "string" and code ~= "", "no code")
  assert(type(message) == "string" and message ~= "", "no message")
  assert(hint == nil or type(hint) == "string", "a hint that is not a string")
end
