-- The Mendix Cloud API's answers as mendix_cloud.lua reads them (the Deploy
-- API's apps and environments, the Backups API's snapshots and archive jobs,
-- and error bodies worded by describe), on the way from a location to an
-- archive's URL that a restore takes (resolve, then prepare_archive). The
-- first byte picks the location and the way (an existing snapshot, a new
-- one, the newest completed one); the rest is the answers (lib/answers.lua).
-- With bit 4 set, the input is also read as a location (parse_location).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)")
local answers = dofile(dir .. "lib/answers.lua")
local mc = require "mxpc.mendix_cloud"

local UUID = "0d3e301f-5551-46f8-ad44-8de2be084c95"
local LOCATIONS = {
  "mendix-cloud://myapp/Production",
  ("mendix-cloud://%s/%s/%s"):format(UUID, UUID, UUID),
  ("mendix-cloud://%s/Acceptance"):format(UUID),
  ("mendix-cloud://myapp/%s"):format(UUID),
}
local client = mc.client { credentials = { username = "user@example.com", api_key = "k", source = "fuzz" },
  url = "https://deploy.example.com" }

return function(data)
  local pick = data:byte(1) or 0
  if pick & 16 ~= 0 then
    local loc, err = mc.parse_location(data:sub(2))
    if loc then
      assert(type(loc.app) == "string" and type(loc.environment) == "string")
    else
      answers.check_error(err)
    end
  end
  answers.set(data:sub(2))
  local where, err = client:resolve(assert(mc.parse_location(LOCATIONS[pick % 4 + 1])))
  if where then
    assert(type(where.environment) == "string", "an environment id that is not a string")
    local r
    r, err = client:prepare_archive(where, { timeout = 0, interval = 0, new_snapshot = pick & 4 ~= 0,
      target = "ns/app", data_type = pick & 8 ~= 0 and "database_only" or nil })
    if r then
      assert(type(r.url) == "string" and r.url:match("^https?://"), "an archive without a url")
      return r
    end
  end
  if err then answers.check_error(err) end
  return where, err
end
