-- mxpc.mendix_cloud against its own instance of the Mendix Cloud stand-in
-- (tests/stack/mendix_cloud_standin.py, without S3: archive urls point at it).
local t = require "t"
local mc = require "mxpc.mendix_cloud"
local http = require "mxpc.http"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"
local cjson = require "cjson"

local dir = t.tmpdir()
local src = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set")
local standin = src .. "/tests/stack/mendix_cloud_standin.py"
local vars = {}
local p = io.popen(("python3 %s init %s --source %s"):format(standin, dir, src))
for line in p:lines() do
  local k, v = line:match("^([%w_]+)=(.*)$")
  if k then vars[k] = v end
end
assert(p:close(), "the stand-in's init failed")
p = io.popen(("python3 %s serve %s --port 0 >%s/log 2>&1 & echo $!"):format(standin, dir, dir))
local pid = p:read("l")
p:close()
local port
for _ = 1, 100 do
  local f = io.open(dir .. "/port")
  if f then port = f:read("l"); f:close(); break end
  runtime.sleep(0.1)
end
assert(port, "the stand-in did not start")
local base = "http://127.0.0.1:" .. port
local f = assert(io.open(dir .. "/admin-token"))
local admin_token = f:read("l")
f:close()

local PROJECT, PROD = vars.MXPC_MENDIX_PROJECT_ID, vars.MXPC_MENDIX_PRODUCTION_ID
local creds = { username = vars.MXPC_MENDIX_USERNAME, api_key = vars.MXPC_MENDIX_API_KEY, source = "test" }
local client = mc.client { credentials = creds, url = base }
local where = { app = PROJECT, project = PROJECT, environment = PROD }

local function admin(path, body)
  local res = assert(http.request { method = "POST", url = base .. "/_admin/" .. path,
    headers = { ["X-Admin-Token"] = admin_token }, body = cjson.encode(body or {}) })
  assert(res.status < 300, res.body)
end
local function knobs(k) admin("reset"); admin("environment/" .. PROD, k) end

t.test("parse_location: APP/ENVIRONMENT[/SNAPSHOT]", function()
  t.same(mc.parse_location("mendix-cloud://demo-shop/Production"), { app = "demo-shop", environment = "Production" })
  t.same(mc.parse_location("mendix-cloud://" .. PROJECT .. "/" .. PROD .. "/"), { app = PROJECT, environment = PROD })
  local id = "51dc7872-771e-4c3e-853b-352359444db6"
  t.same(mc.parse_location("mendix-cloud://app/My Env/" .. id), { app = "app", environment = "My Env", snapshot = id })
  for s, why in pairs {
    ["s3://b/k"] = "does not start with mendix-cloud://",
    ["mendix-cloud://app"] = "ENVIRONMENT is missing",
    ["mendix-cloud://app/"] = "ENVIRONMENT is missing",
    ["mendix-cloud:///env"] = "APP is empty",
    ["mendix-cloud://app//x"] = "ENVIRONMENT is empty",
    ["mendix-cloud://app/env/latest"] = "SNAPSHOT is not a snapshot id",
    ["mendix-cloud://app/env/" .. id .. "/x"] = "too many parts",
    ["mendix-cloud://a p/env"] = "APP holds characters",
    ["mendix-cloud://app/e\27[31m"] = "control character",
  } do
    local loc, err = mc.parse_location(s)
    t.eq(loc, nil, s)
    t.eq(err.code, "usage")
    t.contains(err.message, why)
    t.contains(err.hint, "mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT]")
  end
end)

t.test("credentials from a file; the key becomes a secret; missing ones are said", function()
  local path = dir .. "/creds"
  local w = assert(io.open(path, "w"))
  w:write("# Mendix\nMENDIX_USERNAME = someone@example.com\nMENDIX_API_KEY=key-from-the-file-123\n")
  w:close()
  local c = assert(mc.credentials(path))
  t.eq(c.username, "someone@example.com")
  t.eq(c.api_key, "key-from-the-file-123")
  t.eq(c.source, path)
  t.ok(not log.redact("the key key-from-the-file-123"):find("key-from-the-file-123", 1, true), "redacted")
  w = assert(io.open(path, "w"))
  w:write("MENDIX_USERNAME=someone@example.com\n")
  w:close()
  local none, err = mc.credentials(path)
  t.eq(none, nil)
  t.eq(err.code, "credentials")
  t.contains(err.message, "MENDIX_API_KEY is not set in " .. path)
  t.contains(err.hint, "never on the command line")
  local _, gone = mc.credentials(dir .. "/missing")
  t.contains(gone.message, "cannot read the Mendix credentials file")
end)

t.test("resolve: environment names (any case) and AppIds through the Deploy API", function()
  admin("reset")
  local w = assert(client:resolve { app = PROJECT, environment = "production" })
  t.eq(w.project, PROJECT)
  t.eq(w.environment, PROD)
  t.eq(w.environment_name, "Production")
  w = assert(client:resolve { app = vars.MXPC_MENDIX_APP_ID, environment = "Acceptance" })
  t.eq(w.project, PROJECT)
  t.eq(w.environment, vars.MXPC_MENDIX_ACCEPTANCE_ID)
  w = assert(client:resolve { app = vars.MXPC_MENDIX_APP_ID, environment = PROD })
  t.eq(w.project, PROJECT)
  local _, err = client:resolve { app = PROJECT, environment = "Staging" }
  t.eq(err.code, "not_found")
  t.contains(err.message, "has no environment named Staging (it has: Production, Acceptance)")
  _, err = client:resolve { app = "no-such-app", environment = "Production" }
  t.eq(err.code, "not_found")
  t.eq(err.api_code, "APP_NOT_FOUND")
  t.contains(err.hint, "'API Rights' and 'Access to Backups'")
  _, err = client:resolve { app = "00000000-0000-0000-0000-000000000000", environment = "Production" }
  t.eq(err.code, "not_found")
  t.contains(err.message, "no app with project id 00000000-0000-0000-0000-000000000000")
end)

t.test("list_snapshots: all of them, newest first", function()
  admin("reset")
  admin("snapshot/" .. PROD, { comment = "oldest", created_at = "2020-01-01T00:00:00.000Z" })
  local snaps = assert(client:list_snapshots(where))
  t.eq(#snaps, 4)
  for i = 2, #snaps do t.ok(snaps[i - 1].created_at > snaps[i].created_at, "newest first") end
  t.eq(snaps[4].comment, "oldest")
  t.eq(mc.newest_completed(snaps), snaps[1])
end)

-- Every documented error code: its code, and the words of message and hint.
t.test("every documented error code is worded, with what to do", function()
  local nobody = mc.client { credentials = { username = vars.MXPC_MENDIX_NO_BACKUPS_USER,
    api_key = vars.MXPC_MENDIX_NO_BACKUPS_API_KEY, source = "test" }, url = base }
  local cases = {
    { "NO_ACCESS", nil, function() return nobody:list_snapshots(where) end, "forbidden",
      "has no access to the backups of environment " .. PROD, "'API Rights' and 'Access to Backups'" },
    { "ENVIRONMENT_NOT_FOUND", nil, function()
      return client:list_snapshots { app = "x", project = PROJECT, environment = "00000000-0000-0000-0000-000000000000" }
    end, "not_found", "has no environment 00000000-0000-0000-0000-000000000000 of app x", "project id" },
    { "NOT_FOUND", nil, function() return client:snapshot(where, "00000000-0000-0000-0000-000000000001") end,
      "not_found", "no snapshot 00000000-0000-0000-0000-000000000001", "list mendix-cloud://" .. PROJECT },
    { "ENVIRONMENT_BUSY", { busy = true }, function() return client:create_snapshot(where, "x") end, "busy",
      "is busy", "try again later" },
    { "INVALID_STATE", { maintenance = true }, function() return client:create_snapshot(where, "x") end, "busy",
      "maintenance action", "wait until it is finished" },
    { "NOT_SUPPORTED", { not_supported = true }, function() return client:list_snapshots(where) end,
      "unsupported", "is not in Mendix Cloud", "backup -n NAMESPACE -e ENVIRONMENT" },
    { "SERVICE_UNAVAILABLE", { unavailable = true }, function() return client:list_snapshots(where) end,
      "unavailable", "Mendix Cloud could not do it", "contact Mendix Support" },
    { "SNAPSHOT_LISTING_FAILED", { listing_fails = true }, function() return client:list_snapshots(where) end,
      "unavailable", "could not list the snapshots", "contact Mendix Support" },
    { "UNAUTHORIZED", nil, function()
      return mc.client { credentials = { username = creds.username, api_key = "wrong", source = "here" }, url = base }
        :list_snapshots(where)
    end, "unauthorized", "rejected the API credentials of " .. creds.username .. " (from here)", "MENDIX_API_KEY" },
  }
  for _, c in ipairs(cases) do
    knobs(c[2] or {})
    local v, err = c[3]()
    t.eq(v, nil, c[1])
    t.eq(err.api_code, c[1])
    t.eq(err.code, c[4], c[1])
    t.contains(err.message, c[5])
    t.contains(err.hint, c[6])
  end
  admin("reset")
end)

t.test("describe: UNSUPPORTED, an unknown code, no JSON, a bare 401", function()
  local e = mc.describe(400, '{"errorCode":"UNSUPPORTED","errorMessage":"Unsupported data_type"}',
    { data_type = "files_only" })
  t.eq(e.code, "usage")
  t.contains(e.message, "does not support the archive type files_only")
  e = mc.describe(400, '{"errorCode":"INVALID_PARAMETERS","errorMessage":"Not enough parameters given."}',
    { what = "the list of snapshots" })
  t.eq(e.code, "mendix_cloud")
  t.eq(e.message, "Mendix Cloud answered the list of snapshots with HTTP 400 INVALID_PARAMETERS: Not enough parameters given.")
  e = mc.describe(502, "<html>bad gateway</html>", { what = "x" })
  t.eq(e.message, "Mendix Cloud answered x with HTTP 502")
  t.contains(e.hint, "try again later")
  e = mc.describe(401, "", { username = "u", source = "s" })
  t.eq(e.code, "unauthorized")
end)

t.test("an archive: requested, polled to completed, its url", function()
  knobs { queued_seconds = 0.2, running_seconds = 0.3 }
  local snap = mc.newest_completed(assert(client:list_snapshots(where)))
  local job = assert(client:request_archive(where, snap.snapshot_id, "database_only"))
  t.eq(job.state, "queued")
  local states = {}
  local done = assert(client:wait_archive(where, job, { interval = 0.05, on_state = function(j)
    if states[#states] ~= j.state then states[#states + 1] = j.state end
  end }))
  t.eq(done.state, "completed")
  t.same(states, { "queued", "running", "completed" })
  t.contains(done.url, "/_download/" .. job.archive_id .. ".backup?")
  local body = assert(http.request { url = done.url })
  t.eq(body.body:sub(1, 5), "PGDMP")
  t.raises(function() client:request_archive(where, snap.snapshot_id, "files_only") end, "data_type must be")
end)

t.test("a job that fails, and one that never ends (the timeout)", function()
  knobs { fail_jobs = true, queued_seconds = 0, running_seconds = 0.1 }
  local snap = mc.newest_completed(assert(client:list_snapshots(where)))
  local job = assert(client:request_archive(where, snap.snapshot_id))
  local v, err = client:wait_archive(where, job, { interval = 0.05 })
  t.eq(v, nil)
  t.eq(err.code, "failed")
  t.contains(err.message, "Mendix Cloud reports that the archive of snapshot " .. snap.snapshot_id .. " failed")
  t.contains(err.hint, "nothing was changed")
  knobs { never_finish = true, queued_seconds = 0, running_seconds = 0 }
  job = assert(client:request_archive(where, snap.snapshot_id))
  local t0 = runtime.monotonic()
  v, err = client:wait_archive(where, job, { interval = 0.1, timeout = 1 })
  local took = runtime.monotonic() - t0
  t.eq(v, nil)
  t.eq(err.code, "timeout")
  t.contains(err.message, "did not finish within 1 s (state: running)")
  t.ok(took >= 1 and took < 3, "gave up after the timeout: " .. took)
  admin("reset")
end)

t.test("a new snapshot: its comment, polled to completed", function()
  admin("reset")
  local comment = mc.snapshot_comment("mendix/demo-copy")
  t.contains(comment, runtime.program .. " " .. runtime.version)
  t.contains(comment, "restore into mendix/demo-copy")
  local snap = assert(client:create_snapshot(where, comment))
  t.eq(snap.state, "queued")
  local done = assert(client:wait_snapshot(where, snap, { interval = 0.05 }))
  t.eq(done.state, "completed")
  t.eq(done.comment, comment)
  t.eq(assert(client:list_snapshots(where))[1].snapshot_id, snap.snapshot_id)
end)

t.test("prepare_archive: the newest completed snapshot, a given one, a new one", function()
  knobs { queued_seconds = 0, running_seconds = 0.1 }
  local snaps = assert(client:list_snapshots(where))
  local got = assert(client:prepare_archive(where, { data_type = "database_only", interval = 0.05 }))
  t.eq(got.snapshot.snapshot_id, snaps[1].snapshot_id)
  t.eq(got.archive.data_type, "database_only")
  t.contains(got.url, ".backup?")
  local query = got.url:match("%?(.*)$")
  t.ok(not log.redact(got.url):find(query, 1, true), "the url's signature is a secret")
  local older = { app = PROJECT, project = PROJECT, environment = PROD, snapshot = snaps[3].snapshot_id }
  got = assert(client:prepare_archive(older, { interval = 0.05 }))
  t.eq(got.archive.snapshot_id, snaps[3].snapshot_id)
  t.eq(got.archive.data_type, "files_and_database")
  t.contains(got.url, ".tar.gz?")
  got = assert(client:prepare_archive(where, { new_snapshot = true, target = "mendix/demo-copy", interval = 0.05 }))
  t.contains(got.snapshot.comment, "restore into mendix/demo-copy")
  t.eq(assert(client:list_snapshots(where))[1].snapshot_id, got.snapshot.snapshot_id)
  local missing = { app = PROJECT, project = PROJECT, environment = PROD,
    snapshot = "00000000-0000-0000-0000-000000000009" }
  local v, err = client:prepare_archive(missing, { interval = 0.05 })
  t.eq(v, nil)
  t.eq(err.api_code, "NOT_FOUND")
  knobs { fail_jobs = true, queued_seconds = 0, running_seconds = 0 }
  v, err = client:prepare_archive(where, { new_snapshot = true, target = "x/y", interval = 0.05 })
  t.eq(v, nil)
  t.eq(err.code, "failed")
  t.contains(err.message, "Mendix Cloud reports that snapshot ")
  local failed = assert(client:list_snapshots(where))[1]
  t.eq(failed.state, "failed")
  v, err = client:prepare_archive({ app = PROJECT, project = PROJECT, environment = PROD,
    snapshot = failed.snapshot_id }, { interval = 0.05 })
  t.eq(v, nil)
  t.eq(err.code, "not_ready")
  t.contains(err.message, "is failed, not completed")
  t.contains(err.hint, "choose another snapshot")
  admin("reset")
end)

t.test("the credentials go to the API's URL only", function()
  admin("reset")
  t.eq(mc.api_url(), os.getenv("MXPC_MENDIX_API_URL") or mc.API_URL)
  local c = mc.client { credentials = creds, url = base .. "/" }
  t.eq(c.url, base)
end)

-- --- http.reader over an archive's url ----------------------------------------------

local function file_bytes(path)
  local fh = assert(io.open(path, "rb"))
  local data = fh:read("a")
  fh:close()
  return data
end
local FULL = file_bytes(dir .. "/archives/sample.tar.gz")

local function fresh_url()
  return assert(client:prepare_archive(where, { timeout = 30, interval = 0.05 })).url
end
local function read_all(r)
  local parts = {}
  while true do
    local chunk, err = r:read()
    if err then return nil, err, table.concat(parts) end
    if not chunk then return table.concat(parts) end
    parts[#parts + 1] = chunk
  end
end
local function downloads()
  local res = assert(http.request { url = base .. "/_admin/requests", headers = { ["X-Admin-Token"] = admin_token } })
  local seen = {}
  for _, q in ipairs(cjson.decode(res.body)) do
    if q.path:find("^/_download/") then seen[#seen + 1] = q end
  end
  return seen
end

t.test("http.reader: the archive in ranges, nothing but Range and If-Match sent", function()
  knobs { queued_seconds = 0, running_seconds = 0 }
  local r <close> = assert(http.reader(fresh_url(), { range = 256 }))
  t.eq(r:size(), nil)
  t.ok(#FULL > 1000, "an archive of several ranges")
  local got = assert(read_all(r))
  t.eq(#got, #FULL)
  t.ok(got == FULL, "the bytes of the archive")
  t.eq(r:size(), #FULL)
  t.eq(r:offset(), #FULL)
  t.eq(r:read(), nil, "the end stays the end")
  local seen = downloads()
  t.eq(#seen, math.ceil(#FULL / 256), "one GET per range")
  for _, q in ipairs(seen) do
    for _, h in ipairs(q.headers) do
      t.ok(not h:lower():find("mendix") and h ~= "Authorization", "no credential header: " .. h)
    end
  end
  t.ok(not tostring(r):find("signature", 1, true), "named without the signature")
end)

t.test("http.reader: a connection cut off mid-range resumes from the byte reached", function()
  knobs { queued_seconds = 0, running_seconds = 0, drop_at = 500 }
  local r <close> = assert(http.reader(fresh_url(), { range = 384 }))
  local got = assert(read_all(r))
  t.ok(got == FULL, "the same bytes")
  local seen = downloads()
  t.eq(#seen, math.ceil(#FULL / 384) + 1, "one more GET: the resume")
end)

t.test("http.reader: a URL that expires mid-read, renewed or not", function()
  knobs { queued_seconds = 0, running_seconds = 0, url_seconds = 1 }
  local asked = 0
  local r <close> = assert(http.reader(fresh_url(), { range = 256, on_expired = function(err)
    asked = asked + 1
    t.eq(err.code, "expired")
    t.eq(err.status, 403)
    return fresh_url()
  end }))
  local first = assert(r:read())
  t.eq(#first, 256)
  runtime.sleep(2.1)
  local rest = assert(read_all(r))
  t.ok(first .. rest == FULL, "the same bytes, continued from the same offset")
  t.ok(asked >= 1, "a fresh url was asked for")

  -- without a callback, or when the callback has none: a clean failure at that offset
  local r2 <close> = assert(http.reader(fresh_url(), { range = 256 }))
  assert(r2:read())
  runtime.sleep(2.1)
  local chunk, err = r2:read()
  t.eq(chunk, nil)
  t.eq(err.code, "expired")
  t.contains(err.message, "(bytes 256-511)")
  t.contains(err.message, "expired")
  t.ok(not err.message:find("signature=", 1, true), "no signature in the message")
  t.eq(r2:offset(), 256)
  local r3 <close> = assert(http.reader(fresh_url(), { range = 256, on_expired = function()
    return nil, require("mxpc.error").new { code = "failed", message = "no fresh archive" } end }))
  assert(r3:read())
  runtime.sleep(2.1)
  chunk, err = r3:read()
  t.eq(chunk, nil)
  t.eq(err.code, "failed")
  t.eq(err.message, "no fresh archive")
  -- a fresh URL of other bytes: the read stops (If-Match) rather than mix two archives
  local r4 <close> = assert(http.reader(fresh_url(), { range = 256, on_expired = function()
    return assert(client:prepare_archive(where, { data_type = "database_only", interval = 0.05 })).url end }))
  assert(r4:read())
  runtime.sleep(2.1)
  chunk, err = r4:read()
  t.eq(chunk, nil)
  t.eq(err.code, "changed")
  t.eq(err.status, 412)
  t.contains(err.message, "no longer the one read so far")
end)

t.test("http.reader: bad URLs; a server without ranges", function()
  for _, u in ipairs { "ftp://x/y", "https://", "http://user:pw@host/x", "http://h/a b" } do
    local r, err = http.reader(u)
    t.eq(r, nil, u)
    t.eq(err.code, "usage")
  end
  local r <close> = assert(http.reader(base .. "/api/1/apps"))
  local chunk, err = r:read()
  t.eq(chunk, nil)
  t.eq(err.code, "http")
  t.eq(err.status, 401)
end)

local code = t.run()
os.execute("kill " .. pid)
return code
