-- What mendix_cloud.lua makes of answers the Mendix Cloud API does not send
-- but a broken proxy or a changed API could: valid JSON without the fields
-- the API documents (found by fuzzing, tests/fuzz/lua/mendix_cloud.lua).
-- mxpc.http's request answers with fixed statuses and bodies (the stand-in
-- of tests/stack sends only well-formed answers).
local t = require "t"
local http = require "mxpc.http"
local mc = require "mxpc.mendix_cloud"

local PROJECT = "5b6a8c1e-8e8d-4c52-9f3a-4a3e8f0b2a11"
local ENV = "7c2e0f4a-3b1d-4e5f-8a9b-0c1d2e3f4a5b"
local SNAP = "0d3e301f-5551-46f8-ad44-8de2be084c95"

local queue
local real_request = http.request
local function answering(list, fn)
  queue = list
  http.request = function()
    local a = table.remove(queue, 1)
    if not a then return nil, { code = "http", message = "no more answers" } end
    return { status = a[1], body = a[2] }
  end
  local ok, a, b = pcall(fn)
  http.request = real_request
  assert(ok, a)
  return a, b
end

local client = mc.client { credentials = { username = "u@example.com", api_key = "k", source = "test" },
  url = "https://deploy.example.com" }
local APP = ('{"AppId":"myapp","ProjectId":"%s"}'):format(PROJECT)

t.test("an environment listed without an EnvironmentId is an error naming it (was returned as the error)", function()
  local where, err = answering({ { 200, APP }, { 200, '[{"Mode":"Production"}]' } }, function()
    return client:resolve(assert(mc.parse_location("mendix-cloud://myapp/production")))
  end)
  t.eq(where, nil)
  t.eq(err.code, "mendix_cloud")
  t.contains(err.message, "environment Production without an EnvironmentId")
  -- entries that are not objects are skipped, named ones still found
  where = assert(answering({ { 200, APP }, { 200, ('[3,"x",{"Mode":"Production","EnvironmentId":"%s"}]'):format(ENV) } },
    function() return client:resolve(assert(mc.parse_location("mendix-cloud://myapp/Production"))) end))
  t.eq(where.environment, ENV)
end)

t.test("an app without a ProjectId, or listed without an AppId, is an error", function()
  local _, err = answering({ { 200, '{"AppId":"myapp"}' } }, function()
    return client:resolve(assert(mc.parse_location("mendix-cloud://myapp/" .. ENV)))
  end)
  t.eq(err.code, "mendix_cloud")
  t.contains(err.message, "no ProjectId")
  _, err = answering({ { 200, ('[7,{"ProjectId":"%s"}]'):format(PROJECT) } }, function()
    return client:resolve(assert(mc.parse_location(("mendix-cloud://%s/Production"):format(PROJECT))))
  end)
  t.eq(err.code, "mendix_cloud")
  t.contains(err.message, "without an AppId")
end)

t.test("snapshots and archive jobs without their ids are errors, not requests for 'nil'", function()
  local where = { app = PROJECT, project = PROJECT, environment = ENV }
  -- a list entry that is no object is skipped (sorting it raised an error)
  local snaps = assert(answering({ { 200, ('{"total":2,"snapshots":[3,{"snapshot_id":"%s","state":"completed"}]}')
    :format(SNAP) } }, function() return client:list_snapshots(where) end))
  t.eq(#snaps, 1)
  local _, err = answering({ { 200, '{"total":1,"snapshots":[{"state":"completed"}]}' } }, function()
    return client:prepare_archive(where, { timeout = 0 })
  end)
  t.eq(err.code, "mendix_cloud")
  t.contains(err.message, "a snapshot without a snapshot_id")
  _, err = answering({ { 201, '{"state":"queued"}' } }, function()
    return client:prepare_archive(where, { new_snapshot = true, timeout = 0 })
  end)
  t.contains(err.message, "a snapshot without a snapshot_id")
  _, err = answering({ { 200, ('{"snapshot_id":"%s","state":"completed"}'):format(SNAP) }, { 202, '{"state":"queued"}' } },
    function() return client:prepare_archive({ app = PROJECT, project = PROJECT, environment = ENV, snapshot = SNAP },
      { timeout = 0 }) end)
  t.eq(err.code, "mendix_cloud")
  t.contains(err.message, "a job without a snapshot_id and an archive_id")
end)

return t.run()
