-- The environment's settings (environment.lua): a Secret's data (either
-- layout) read into database and storage settings, and the JDBC URL.
-- Input: a JSON object of the Secret's keys, or any text as a JDBC URL.
local cjson = require "cjson"
local environment = require "mxpc.environment"

return function(data)
  local jdbc = environment.parse_jdbc(data)
  if jdbc then environment.jdbc_sslmode(jdbc) end
  environment.parse_host(data)
  environment.rds_region(data)
  local ok, values = pcall(cjson.decode, data)
  if not ok or type(values) ~= "table" then return end
  for k, v in pairs(values) do
    if type(k) ~= "string" or type(v) ~= "string" then values[k] = nil end
  end
  local flat = environment.flatten_secret(values, "Secret fuzz")
  if not flat then return end
  environment.database_settings(flat, "Secret fuzz", {})
  environment.storage_settings(flat, "Secret fuzz")
end
