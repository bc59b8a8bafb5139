-- Mendix Cloud's Backups API v2 and Deploy API v1 (docs/mendix-cloud.md): the
-- snapshots of an environment, a new snapshot, an archive of one and the wait
-- for it, and an environment's id from its name. On mxpc.http.
--
--   local mc = require "mxpc.mendix_cloud"
--   local loc = assert(mc.parse_location("mendix-cloud://APP/Production"))
--   local client = assert(mc.client { credentials = assert(mc.credentials()) })
--   local where = assert(client:resolve(loc))          -- project and environment ids
--   local snaps = assert(client:list_snapshots(where))  -- newest first
--   local job = assert(client:request_archive(where, snaps[1].snapshot_id, "database_only"))
--   job = assert(client:wait_archive(where, job))       -- completed, job.url to download
--
-- The credentials (MENDIX_USERNAME / MENDIX_API_KEY, or a file) are sent only to
-- the API's own URL, never elsewhere (an archive's url is another host), and the
-- key is registered with log.secret so that nothing prints it. Every documented
-- error code becomes an error object with code, message and hint (what to do).
local cjson = require "cjson"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local http = require "mxpc.http"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"

local M = {}

M.API_URL = "https://deploy.mendix.com"
-- How long wait_archive / wait_snapshot poll before giving up: Mendix prepares
-- the archive of a large snapshot for many minutes; two hours is well past any
-- normal wait and still ends a job that never does.
M.WAIT_SECONDS = 2 * 3600
M.POLL_FIRST = 2     -- the first wait between polls, seconds
M.POLL_MAX = 30      -- backoff: each wait 1.5 times the last, at most this
M.DATA_TYPES = { files_and_database = true, database_only = true }

local PERMISSIONS = "'API Rights' and 'Access to Backups'"
local PORTAL = "in the Mendix Portal (the app's Environments page, Permissions tab)"

local function is_uuid(s)
  return s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end
M.is_uuid = is_uuid

-- mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT] -> { app =, environment =, snapshot = } | nil, err
function M.parse_location(s)
  local function bad(why)
    return nil, errors.new { code = "usage", message = ("invalid Mendix Cloud location %q: %s"):format(s, why),
      hint = "write mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT]: APP the app's project id (or its Deploy API "
        .. "AppId), ENVIRONMENT the environment's id or name (Production, Acceptance, ...), SNAPSHOT a snapshot id" }
  end
  if type(s) ~= "string" then return bad("not a string") end
  local rest = s:match("^mendix%-cloud://(.*)$")
  if not rest then return bad("it does not start with mendix-cloud://") end
  local parts = {}
  for p in (rest .. "/"):gmatch("([^/]*)/") do parts[#parts + 1] = p end
  if parts[#parts] == "" and #parts > 1 then parts[#parts] = nil end -- one trailing slash
  if #parts < 2 then return bad("ENVIRONMENT is missing") end
  if #parts > 3 then return bad("too many parts after the snapshot") end
  for i, what in ipairs { "APP", "ENVIRONMENT", "SNAPSHOT" } do
    local p = parts[i]
    if p == "" then return bad(what .. " is empty") end
    if p and p:find("[%c%%?#]") then return bad(what .. " holds a control character, '%', '?' or '#'") end
  end
  if not parts[1]:match("^[%w._-]+$") then return bad("APP holds characters an app id has not") end
  if parts[3] and not is_uuid(parts[3]) then return bad("SNAPSHOT is not a snapshot id (a UUID)") end
  return { app = parts[1], environment = parts[2], snapshot = parts[3] }
end

-- The credentials: from `file` (lines MENDIX_USERNAME=... and MENDIX_API_KEY=...,
-- # comments) if given, else from the environment. -> { username =, api_key =, source = } | nil, err
function M.credentials(file)
  local user, key, source
  if file then
    local f, why = io.open(file, "r")
    if not f then
      return nil, errors.new { code = "credentials", message = "cannot read the Mendix credentials file: " .. why }
    end
    for line in f:lines() do
      local name, value = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
      if name == "MENDIX_USERNAME" then user = value elseif name == "MENDIX_API_KEY" then key = value end
    end
    f:close()
    source = file
    local st = fs.stat(file)
    if st and st.mode & 0x3f ~= 0 then -- 077: a key others can read
      log.warn("the Mendix credentials file can be read by others: chmod 600 it", { file = file,
        mode = ("%04o"):format(st.mode) })
    end
  else
    user, key, source = os.getenv("MENDIX_USERNAME"), os.getenv("MENDIX_API_KEY"), "the environment"
  end
  if key and key ~= "" then log.secret(key) end
  if not user or user == "" or not key or key == "" then
    local missing = (not user or user == "") and "MENDIX_USERNAME" or "MENDIX_API_KEY"
    return nil, errors.new { code = "credentials",
      message = ("no Mendix API credentials: %s is not set in %s"):format(missing, source),
      hint = "set MENDIX_USERNAME (your Mendix login name) and MENDIX_API_KEY (Mendix Profile > API Keys) in the "
        .. "environment, or write both as NAME=VALUE lines into a file given with --mendix-credentials FILE "
        .. "(never on the command line)" }
  end
  return { username = user, api_key = key, source = source }
end

-- The API's base URL: MXPC_MENDIX_API_URL (for tests only), else Mendix's.
function M.api_url()
  local v = os.getenv("MXPC_MENDIX_API_URL")
  return (v and v ~= "") and v:gsub("/+$", "") or M.API_URL
end

-- ---------------------------------------------------------------------------
-- Errors: the answer's errorCode (docs/mendix-cloud.md) -> code, message, hint
-- ---------------------------------------------------------------------------

local function env_name(ctx)
  if not ctx.environment then return "" end
  return ctx.environment_name and ctx.environment_name ~= ctx.environment
    and (" %s (%s)"):format(ctx.environment_name, ctx.environment) or (" " .. ctx.environment)
end

local function app_name(ctx) return ctx.app and (" of app " .. ctx.app) or "" end

local CODES = {
  UNAUTHORIZED = function(ctx)
    return "unauthorized", ("Mendix Cloud rejected the API credentials of %s (from %s)"):format(ctx.username,
      ctx.source or "?"), "check MENDIX_USERNAME (your Mendix login name) and MENDIX_API_KEY (Mendix Profile > "
      .. "API Keys); a revoked key stops working"
  end,
  NO_ACCESS = function(ctx)
    return "forbidden", ("%s has no access to the backups of environment%s%s"):format(ctx.username, env_name(ctx),
      app_name(ctx)), ("%s, give %s the permissions %s for this environment (the Technical Contact or a member "
      .. "with Manage Permissions can)"):format(PORTAL, ctx.username, PERMISSIONS)
  end,
  ENVIRONMENT_NOT_FOUND = function(ctx)
    return "not_found", ("Mendix Cloud has no environment%s%s that %s can see"):format(env_name(ctx), app_name(ctx),
      ctx.username), "APP is the app's project id (Portal: the app's Settings > General > App ID) and ENVIRONMENT "
      .. "the environment's id or its name (Production, Acceptance, ...); the user needs " .. PERMISSIONS
  end,
  APP_NOT_FOUND = function(ctx)
    return "not_found", ("Mendix Cloud has no app %s that %s can see"):format(ctx.app_id or ctx.app or "?",
      ctx.username), "check the app's id, and that the user is in the app's team with " .. PERMISSIONS
  end,
  NOT_FOUND = function(ctx, msg)
    local what = ctx.archive and ("archive " .. ctx.archive) or ctx.snapshot and ("snapshot " .. ctx.snapshot)
      or "it"
    return "not_found", ("Mendix Cloud has no %s in environment%s%s (%s)"):format(what, env_name(ctx), app_name(ctx),
      msg), ("list the snapshots with: list mendix-cloud://%s/%s"):format(ctx.app or "APP",
      ctx.environment_name or ctx.environment or "ENVIRONMENT")
  end,
  ENVIRONMENT_BUSY = function(ctx)
    return "busy", ("environment%s%s is busy (another deployment, backup or restore is running)"):format(env_name(ctx),
      app_name(ctx)), "try again later, or use an existing snapshot (without --new-snapshot)"
  end,
  INVALID_STATE = function(ctx, msg)
    return "busy", ("Mendix Cloud cannot do this now in environment%s%s: %s"):format(env_name(ctx), app_name(ctx),
      msg), "a maintenance action is in progress: wait until it is finished and run again"
  end,
  NOT_SUPPORTED = function(ctx)
    return "unsupported", ("environment%s%s is not in Mendix Cloud: the Backups API works only there"):format(
      env_name(ctx), app_name(ctx)), "for an environment of Mendix for Private Cloud, use backup -n NAMESPACE "
      .. "-e ENVIRONMENT"
  end,
  UNSUPPORTED = function(ctx)
    return "usage", ("Mendix Cloud does not support the archive type %s"):format(ctx.data_type or "?"),
      "use files_and_database or database_only"
  end,
  SERVICE_UNAVAILABLE = function(_, msg)
    return "unavailable", "Mendix Cloud could not do it: " .. msg,
      "try again later; if it persists, contact Mendix Support"
  end,
  SNAPSHOT_LISTING_FAILED = function(ctx, msg)
    return "unavailable", ("Mendix Cloud could not list the snapshots of environment%s%s: %s"):format(env_name(ctx),
      app_name(ctx), msg), "try again later; if it persists, contact Mendix Support"
  end,
}

-- describe(status, body, ctx) -> error object. ctx: username, source, app,
-- environment, environment_name, snapshot, archive, data_type, what (the request).
function M.describe(status, body, ctx)
  local ok, doc = runtime.pcall(cjson.decode, body or "")
  doc = ok and type(doc) == "table" and doc or {}
  local api_code = type(doc.errorCode) == "string" and doc.errorCode or nil
  local api_message = type(doc.errorMessage) == "string" and doc.errorMessage or nil
  if not api_code and status == 401 then api_code = "UNAUTHORIZED" end
  local describe = CODES[api_code or ""]
  local code, message, hint
  if describe then
    code, message, hint = describe(ctx, api_message or api_code)
  else
    code = "mendix_cloud"
    message = ("Mendix Cloud answered %s with HTTP %d%s%s"):format(ctx.what or "the request", status,
      api_code and (" " .. api_code) or "", api_message and (": " .. api_message) or "")
    hint = status >= 500 and "try again later; if it persists, contact Mendix Support" or nil
  end
  return errors.new { code = code, message = message, hint = hint, status = status, api_code = api_code }
end

-- ---------------------------------------------------------------------------
-- The client
-- ---------------------------------------------------------------------------

local Client = {}
Client.__index = Client

-- client{ credentials = (M.credentials()), url = (M.api_url()), timeout = 60 }
function M.client(o)
  assert(type(o) == "table" and type(o.credentials) == "table", "client{credentials = ...} expected")
  return setmetatable({ creds = o.credentials, url = (o.url or M.api_url()):gsub("/+$", ""),
    timeout = o.timeout or 60 }, Client)
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- One request to the API: the decoded answer, or nil, err. Only here do the
-- credentials go out, and only to self.url.
function Client:call(method, path, ctx, body)
  ctx.username, ctx.source = self.creds.username, self.creds.source
  ctx.what = ctx.what or (method .. " " .. path:gsub("%?.*", ""))
  local url = self.url .. path
  log.debug("Mendix Cloud request", { method = method, url = url })
  local res, err = http.request { method = method, url = url, timeout = self.timeout,
    attempts = method == "GET" and 3 or 1, body = body and cjson.encode(body) or nil,
    headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json",
      ["Mendix-Username"] = self.creds.username, ["Mendix-ApiKey"] = self.creds.api_key } }
  if not res then
    return nil, errors.new { code = "connect", message = ("cannot reach Mendix Cloud (%s): %s"):format(self.url,
      err.message), hint = "check the network connection to " .. self.url }
  end
  log.debug("Mendix Cloud answer", { method = method, url = url, status = res.status })
  if res.status < 200 or res.status > 299 then return nil, M.describe(res.status, res.body, ctx) end
  if res.body == "" then return {} end
  local ok, doc = runtime.pcall(cjson.decode, res.body)
  if not ok or type(doc) ~= "table" then
    return nil, errors.new { code = "mendix_cloud", message = ("Mendix Cloud answered %s with something other "
      .. "than JSON (HTTP %d)"):format(ctx.what, res.status) }
  end
  return doc
end

local function v2(where, tail)
  return ("/api/v2/apps/%s/environments/%s/snapshots%s"):format(escape(where.project), escape(where.environment),
    tail or "")
end

local function ctx_of(where, extra)
  local c = { app = where.app, environment = where.environment, environment_name = where.environment_name }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- An answer that is JSON but not what the API documents (a field missing or
-- of another type): the request (`what`) and what was wrong.
local function malformed(what, why)
  return errors.new { code = "mendix_cloud", message = ("Mendix Cloud answered %s with %s"):format(what, why),
    hint = "try again; if it persists, contact Mendix Support" }
end

-- Deploy API v1: the AppId (subdomain) of a project id, and the reverse.
function Client:app_of(app)
  if is_uuid(app) then
    local apps, err = self:call("GET", "/api/1/apps", { app = app, what = "the list of apps" })
    if not apps then return nil, err end
    for _, a in ipairs(apps) do
      if type(a) == "table" and a.ProjectId == app then
        if type(a.AppId) ~= "string" or a.AppId == "" then
          return nil, malformed("the list of apps", "app " .. app .. " without an AppId")
        end
        return { project = app, app_id = a.AppId }
      end
    end
    return nil, errors.new { code = "not_found", message = ("Mendix Cloud has no app with project id %s that %s "
      .. "can see"):format(app, self.creds.username),
      hint = "check the app's id (Portal: the app's Settings > General > App ID), and that the user is in the "
        .. "app's team with " .. PERMISSIONS }
  end
  local a, err = self:call("GET", "/api/1/apps/" .. escape(app), { app = app, app_id = app })
  if not a then return nil, err end
  if type(a.ProjectId) ~= "string" or not is_uuid(a.ProjectId) then
    return nil, malformed("app " .. app, "no ProjectId (a UUID)")
  end
  return { project = a.ProjectId, app_id = type(a.AppId) == "string" and a.AppId ~= "" and a.AppId or app }
end

-- Environment name (the Deploy API's Mode: Production, Acceptance, Test or a
-- flexible environment's name) -> id. Case does not matter.
function Client:environment_id(app_id, name, app)
  local envs, err = self:call("GET", "/api/1/apps/" .. escape(app_id) .. "/environments",
    { app = app, app_id = app_id, environment = name, what = "the list of environments" })
  if not envs then return nil, err end
  local names = {}
  for _, e in ipairs(envs) do
    if type(e) == "table" and type(e.Mode) == "string" then
      if e.Mode:lower() == name:lower() then
        if type(e.EnvironmentId) ~= "string" or e.EnvironmentId == "" then
          return nil, malformed("the list of environments", "environment " .. e.Mode .. " without an EnvironmentId")
        end
        return e.EnvironmentId, e.Mode
      end
      names[#names + 1] = e.Mode
    end
  end
  return nil, errors.new { code = "not_found", message = ("app %s has no environment named %s (it has: %s)"):format(
    app or app_id, name, #names > 0 and table.concat(names, ", ") or "none"),
    hint = "give the environment's name as the Portal shows it, or its id" }
end

-- A parsed location -> { app, project, environment (id), environment_name, snapshot }
function Client:resolve(loc)
  local where = { app = loc.app, snapshot = loc.snapshot, environment_name = loc.environment }
  local app
  if not is_uuid(loc.app) or not is_uuid(loc.environment) then
    local err
    app, err = self:app_of(loc.app)
    if not app then return nil, err end
  end
  where.project = app and app.project or loc.app
  if is_uuid(loc.environment) then
    where.environment = loc.environment
  else
    local id, mode = self:environment_id(app.app_id, loc.environment, loc.app)
    if not id then return nil, mode end
    where.environment, where.environment_name = id, mode
  end
  return where
end

-- All snapshots, newest first (by created_at).
function Client:list_snapshots(where)
  local all, offset = {}, 0
  repeat
    local page, err = self:call("GET", v2(where, ("?offset=%d&limit=100"):format(offset)),
      ctx_of(where, { what = "the list of snapshots" }))
    if not page then return nil, err end
    local snaps = type(page.snapshots) == "table" and page.snapshots or {}
    for _, s in ipairs(snaps) do
      if type(s) == "table" then all[#all + 1] = s end -- (an entry that is no object is not a snapshot)
    end
    offset = offset + #snaps
  until #snaps == 0 or offset >= (tonumber(page.total) or 0)
  table.sort(all, function(a, b) return tostring(a.created_at or "") > tostring(b.created_at or "") end)
  return all
end

-- The newest completed snapshot of a list (newest first), or nil.
function M.newest_completed(snaps)
  for _, s in ipairs(snaps) do
    if s.state == "completed" then return s end
  end
end

function Client:snapshot(where, id)
  return self:call("GET", v2(where, "/" .. escape(id)), ctx_of(where, { snapshot = id }))
end

-- A new snapshot; its comment says who made it and for what.
function Client:create_snapshot(where, comment)
  return self:call("POST", v2(where), ctx_of(where, { what = "the creation of a snapshot" }), { comment = comment })
end

-- The comment of a snapshot made for a restore into TARGET ("namespace/environment").
function M.snapshot_comment(target)
  return ("%s %s: snapshot for a restore into %s"):format(runtime.program, runtime.version, target)
end

function Client:request_archive(where, snapshot, data_type)
  data_type = data_type or "files_and_database"
  if not M.DATA_TYPES[data_type] then
    error(("data_type must be files_and_database or database_only, not %s"):format(tostring(data_type)), 2)
  end
  return self:call("POST", v2(where, "/" .. escape(snapshot) .. "/archives?data_type=" .. data_type),
    ctx_of(where, { snapshot = snapshot, data_type = data_type, what = "an archive of snapshot " .. snapshot }))
end

function Client:archive(where, snapshot, archive_id)
  return self:call("GET", v2(where, "/" .. escape(snapshot) .. "/archives/" .. escape(archive_id)),
    ctx_of(where, { snapshot = snapshot, archive = archive_id }))
end

-- Polls `get()` until the job's state is completed or failed, waiting
-- M.POLL_FIRST seconds and then 1.5 times longer each time (at most
-- M.POLL_MAX), for at most o.timeout seconds (M.WAIT_SECONDS). o.on_state(job)
-- hears of each answer. Ctrl-C ends the wait at once (the usual interruption).
-- -> the completed job | nil, err
local function wait(get, what, o)
  o = o or {}
  local timeout = o.timeout or M.WAIT_SECONDS
  local started = runtime.monotonic()
  local delay = o.interval or M.POLL_FIRST
  local last
  while true do
    local job, err = get()
    if not job then return nil, err end
    if job.state ~= last then
      log.info(what .. ": " .. tostring(job.state), { status = job.status_message ~= cjson.null
        and job.status_message or nil })
      last = job.state
    end
    if o.on_state then o.on_state(job) end
    if job.state == "completed" then return job end
    if job.state == "failed" then
      local said = type(job.status_message) == "string" and (": " .. job.status_message) or ""
      return nil, errors.new { code = "failed", message = ("Mendix Cloud reports that %s failed%s"):format(what,
        said), hint = "try again; if it fails again, contact Mendix Support (nothing was changed here)" }
    end
    local left = timeout - (runtime.monotonic() - started)
    if left <= 0 then
      return nil, errors.new { code = "timeout", message = ("%s did not finish within %s (state: %s)"):format(what,
        M.duration(timeout), tostring(job.state)), hint = "Mendix Cloud may still finish it: run again later "
        .. "(an existing snapshot is reused), or contact Mendix Support if it stays " .. tostring(job.state) }
    end
    runtime.sleep(math.min(delay, left))
    delay = math.min(delay * 1.5, o.max_interval or M.POLL_MAX)
  end
end

function M.duration(s)
  if s >= 3600 and s % 3600 == 0 then return ("%d h"):format(s // 3600) end
  if s >= 60 and s % 60 == 0 then return ("%d min"):format(s // 60) end
  return ("%g s"):format(s)
end

-- (the url's query, which holds its signature, becomes a secret: whoever has
-- it can read the archive for hours)
function Client:wait_archive(where, job, o)
  if type(job.snapshot_id) ~= "string" or job.snapshot_id == "" or type(job.archive_id) ~= "string"
      or job.archive_id == "" then
    return nil, malformed("the archive request", "a job without a snapshot_id and an archive_id")
  end
  local done, err = wait(function() return self:archive(where, job.snapshot_id, job.archive_id) end,
    ("the archive of snapshot %s"):format(job.snapshot_id), o)
  if done and type(done.url) == "string" and done.url:find("?", 1, true) then
    log.secret(done.url:match("%?(.*)$"))
  end
  return done, err
end

function Client:wait_snapshot(where, snap, o)
  if type(snap.snapshot_id) ~= "string" or snap.snapshot_id == "" then
    return nil, malformed("the creation of a snapshot", "a snapshot without a snapshot_id")
  end
  return wait(function() return self:snapshot(where, snap.snapshot_id) end,
    ("snapshot %s"):format(snap.snapshot_id), o)
end

-- The whole way from a location to an archive's URL, as a restore takes it:
-- the snapshot (where.snapshot; else with o.new_snapshot a new one, its
-- comment naming o.target; else the newest completed one), an archive of it
-- (o.data_type, default files_and_database) and the wait until it is ready
-- (o.timeout, o.interval, o.on_state as for wait_archive).
-- -> { url =, snapshot = (the snapshot), archive = (the completed job) } | nil, err
function Client:prepare_archive(where, o)
  o = o or {}
  local snap, err
  if where.snapshot then
    snap, err = self:snapshot(where, where.snapshot)
    if not snap then return nil, err end
    if snap.state ~= "completed" then
      return nil, errors.new { code = "not_ready", message = ("snapshot %s of environment%s is %s, not completed")
        :format(where.snapshot, env_name(where), tostring(snap.state)),
        hint = snap.state == "failed" and "choose another snapshot (list mendix-cloud://APP/ENVIRONMENT)"
          or "wait until Mendix Cloud has completed it, then run again" }
    end
  elseif o.new_snapshot then
    local comment = M.snapshot_comment(o.target or "?")
    snap, err = self:create_snapshot(where, comment)
    if not snap then return nil, err end
    log.info("requested a new snapshot", { snapshot = snap.snapshot_id, comment = comment })
    snap, err = self:wait_snapshot(where, snap, o)
    if not snap then return nil, err end
  else
    local snaps
    snaps, err = self:list_snapshots(where)
    if not snaps then return nil, err end
    snap = M.newest_completed(snaps)
    if not snap then
      return nil, errors.new { code = "not_found", message = ("environment%s%s has no completed snapshot"):format(
        env_name(where), app_name(where)), hint = "make one with --new-snapshot, or in the Mendix Portal (Backups)" }
    end
  end
  if type(snap.snapshot_id) ~= "string" or snap.snapshot_id == "" then
    return nil, malformed("the snapshot", "a snapshot without a snapshot_id")
  end
  local data_type = o.data_type or "files_and_database"
  log.info("requesting an archive", { snapshot = snap.snapshot_id, created = snap.created_at, data_type = data_type })
  local job
  job, err = self:request_archive(where, snap.snapshot_id, data_type)
  if not job then return nil, err end
  job, err = self:wait_archive(where, job, o)
  if not job then return nil, err end
  if type(job.url) ~= "string" or not job.url:match("^https?://") then
    return nil, errors.new { code = "mendix_cloud", message = ("Mendix Cloud completed the archive of snapshot %s "
      .. "without a download url"):format(snap.snapshot_id), hint = "try again; if it persists, contact Mendix Support" }
  end
  return { url = job.url, snapshot = snap, archive = job }
end

-- ---------------------------------------------------------------------------
-- list mendix-cloud://APP/ENVIRONMENT [--json]
-- ---------------------------------------------------------------------------

local function text(v) return (v == nil or v == cjson.null) and "" or tostring(v) end

local function assert_ok(v, err)
  if v == nil then error(err, 0) end
  return v
end

local COLUMNS = { { "snapshot_id", "SNAPSHOT" }, { "created_at", "CREATED" }, { "model_version", "MODEL" },
  { "state", "STATE" }, { "expires_at", "EXPIRES" }, { "comment", "COMMENT" } }

function M.list_command(opts, location)
  local loc, err = M.parse_location(location)
  if not loc then error(err, 0) end
  if loc.snapshot then
    error(errors.new { code = "usage", message = "list takes mendix-cloud://APP/ENVIRONMENT, without a snapshot",
      hint = ("run: list mendix-cloud://%s/%s"):format(loc.app, loc.environment) }, 0)
  end
  local creds = assert_ok(M.credentials(opts.mendix_credentials))
  local client = M.client { credentials = creds }
  local where = assert_ok(client:resolve(loc))
  local snaps = assert_ok(client:list_snapshots(where))
  if opts.json then
    local out = {}
    for i, s in ipairs(snaps) do
      out[i] = { id = s.snapshot_id, created = s.created_at, model_version = s.model_version, comment = s.comment,
        state = s.state, expires = s.expires_at, status_message = s.status_message }
    end
    for i, o in ipairs(out) do out[i] = cjson.encode(o) end -- (an empty table would be written as {})
    local head = cjson.encode { app = where.app, project = where.project, environment = where.environment,
      environment_name = where.environment_name }
    io.stdout:write(head:sub(1, -2), ',"snapshots":[', table.concat(out, ","), "]}\n")
    return 0
  end
  local rows, widths = { {} }, {}
  for i, c in ipairs(COLUMNS) do rows[1][i] = c[2]; widths[i] = #c[2] end
  for _, s in ipairs(snaps) do
    local row = {}
    for i, c in ipairs(COLUMNS) do
      row[i] = log.escape(text(s[c[1]]))
      if i < #COLUMNS and #row[i] > widths[i] then widths[i] = #row[i] end
    end
    rows[#rows + 1] = row
  end
  for _, row in ipairs(rows) do
    local cells = {}
    for i, v in ipairs(row) do cells[i] = i < #row and ("%-" .. widths[i] .. "s"):format(v) or v end
    io.stdout:write((table.concat(cells, "  "):gsub("%s+$", "")), "\n")
  end
  return 0
end

return M
