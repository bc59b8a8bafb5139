-- The steps the backup and restore workflows (scripts/) are made of. Each step
-- does one thing a person would name, logs what it did, and returns nil, err
-- (an error object naming what and where) when the outside world fails.
local backup_archive = require "mxpc.backup_archive"
local environment = require "mxpc.environment"
local errors = require "mxpc.error"
local fileset = require "mxpc.fileset"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local process = require "mxpc.process"
local progress = require "mxpc.progress"
local runtime = require "mxpc.runtime"

local M = {}

-- --- Kubernetes ----------------------------------------------------------------

-- Connects to the cluster: --kubeconfig/--context, else as kubectl does, or
-- the pod's service account.
function M.connect_cluster(opts)
  return require("mxpc.k8s").connect { kubeconfig = opts.kubeconfig, context = opts.context }
end

-- Connects to the cluster (or uses `client`) and resolves the environment's
-- settings.
function M.resolve(opts, client)
  local k8s = require "mxpc.k8s"
  local err
  if not client then client, err = M.connect_cluster(opts) end
  if not client then return nil, err end
  log.info("resolving environment", { namespace = opts.namespace, environment = opts.environment,
    cluster = tostring(client) })
  local env, rerr = environment.resolve(client, opts.namespace, opts.environment, k8s.secret_data)
  if not env then return nil, rerr end
  -- --db-sslmode, else PGSSLMODE, may ask for stronger TLS than the environment
  local sslmode, source = opts.db_sslmode, "--db-sslmode"
  if not sslmode then sslmode, source = os.getenv("PGSSLMODE"), "PGSSLMODE" end
  local sok, serr = environment.request_sslmode(env.database, sslmode, source)
  if not sok then return nil, serr end
  env.client = client
  log.info("environment found", { replicas = env.replicas, database = ("%s:%s/%s"):format(env.database.host,
    env.database.port, env.database.dbname), sslmode = env.database.sslmode,
    files = env.storage.endpoint .. "/" .. env.storage.bucket .. "/" .. env.storage.prefix })
  if opts.db_iam and not env.database.iam then env.database.iam, env.database.iam_reason = true, "--db-iam" end
  if env.database.iam then
    local ok, err = M.use_iam(env)
    if not ok then return nil, err end
  end
  return env
end

-- Pods of the environment that still run.
function M.running_pods(env)
  local pods, err = env.client:list("pods", { namespace = env.namespace,
    labelSelector = "privatecloud.mendix.com/app=" .. env.name })
  if not pods then return nil, err end
  return #(pods.items or {})
end

-- The command that sets the app's replicas by hand.
local function scale_command(env, replicas)
  return ("kubectl -n %s patch mendixapp %s --type merge -p '{\"spec\":{\"replicas\":%d}}'"):format(
    env.namespace, env.name, replicas)
end

-- How long starting the app again is retried while the Kubernetes API is down
-- or answers 5xx/429, in seconds.
M.START_RETRY_SECONDS = 30

local RETRY_STATUS = { [408] = true, [409] = true, [429] = true }

-- Sets the app's replicas back, retrying with backoff (0.5 s doubling up to
-- 5 s) for M.START_RETRY_SECONDS; true or nil, err.
local function scale_back(env, replicas)
  local deadline = runtime.monotonic() + M.START_RETRY_SECONDS
  local delay = 0.5
  while true do
    local ok, err = env.client:patch("mendixapps", env.name, { spec = { replicas = replicas } },
      { namespace = env.namespace })
    if ok then return true end
    local left = deadline - runtime.monotonic()
    if (err.status and err.status < 500 and not RETRY_STATUS[err.status]) or left <= 0 then return nil, err end
    log.warn("could not start the app again, retrying", { error = err.message, seconds = math.min(delay, left) })
    runtime.sleep(math.min(delay, left))
    delay = math.min(delay * 2, 5)
  end
end

-- The app of an environment during a restore: stops it if asked, and starts
-- it again when closed (also while an error or a signal unwinds) or when
-- asked to. Create it into a to-be-closed variable before stopping:
--   local app <close> = wf.app_control(env)
--   assert(app:ensure_stopped(opts.stop_app))
local App = {}
App.__index = App

function M.app_control(env)
  return setmetatable({ env = env, replicas = env.replicas or 0, stopped = false }, App)
end

-- Makes sure the app does not run. With `stop`, scales it to 0 and waits for
-- its pods to go (at most `timeout` seconds, default 300); without, a running
-- app is an error. true or nil, err; after a failure or a signal the app is
-- started again before this returns.
function App:ensure_stopped(stop, timeout)
  local env, replicas = self.env, self.replicas
  local pods, perr = M.running_pods(env)
  if not pods and not errors.is(perr, "forbidden") then return nil, perr end
  if replicas == 0 and (pods or 0) == 0 then return true end
  if not stop then
    return nil, errors.new { code = "running",
      message = ("environment %s/%s is running (%d replicas%s); restoring into a running app can break it"):format(
        env.namespace, env.name, replicas, pods and (", %d pods"):format(pods) or ""),
      hint = ("stop it first (%s), or use --stop-app to stop it for the restore and start it again afterwards"):format(
        scale_command(env, 0)) }
  end
  log.info("stopping the app", { replicas = replicas })
  local function stop_and_wait()
    self.stopped = true -- from the request on, even if it is interrupted
    local ok, err = env.client:patch("mendixapps", env.name, { spec = { replicas = 0 } }, { namespace = env.namespace })
    if not ok then
      if err.status then self.stopped = false end -- the server refused: nothing changed
      return nil, err
    end
    local deadline = os.time() + (timeout or 300)
    local said = runtime.monotonic()
    while true do
      local n, lerr = M.running_pods(env)
      if not n then return nil, lerr end
      if n == 0 then return true end
      if runtime.monotonic() - said >= progress.LINE_SECONDS then -- not silent while it waits
        said = runtime.monotonic()
        log.info("waiting for the app's pods to stop", { pods = n })
      end
      if os.time() >= deadline then
        return nil, errors.new { code = "timeout", message = ("%d pods of %s/%s still run after %d seconds"):format(
          n, env.namespace, env.name, timeout or 300) }
      end
      runtime.sleep(1)
    end
  end
  local ran, ok, err = pcall(stop_and_wait)
  if not ran or not ok then
    self:__close(not ran and ok or nil)
    if not ran then error(ok, 0) end
    return nil, err
  end
  log.info("app stopped")
  return true
end

local function start(self)
  if self.result == nil then
    if not self.stopped then
      self.result = true
    else
      local was = runtime.defer_interrupts(true)
      log.info("starting the app again", { replicas = self.replicas })
      local ok, err = scale_back(self.env, self.replicas)
      if ok then
        self.result = true
      else
        self.result = false
        self.err = errors.new { code = "app_stopped",
          message = ("starting the app again failed, %s/%s is left stopped: %s"):format(self.env.namespace,
            self.env.name, err.message),
          hint = "start it when the Kubernetes API answers again: " .. scale_command(self.env, self.replicas) }
      end
      runtime.defer_interrupts(was)
    end
  end
  if self.result then return true end
  return nil, self.err
end

-- Starts the app again if it was stopped (once; later calls return the first
-- result): true, or nil, err (code app_stopped) naming the command that
-- starts it by hand. Signals are deferred meanwhile: the first one does not
-- stop it, and is raised afterwards unless signals were deferred already.
function App:start_again()
  local ok, err = start(self)
  if not ok then self.reported = true end -- the caller reports it
  return ok, err
end

function App:__close(err)
  -- while an error or a signal unwinds the app must still come back, so a
  -- pending interruption must not stop this request
  if err ~= nil then runtime.clear_interrupt() end
  local ok, serr = start(self)
  if not ok and not self.reported then
    self.reported = true
    log.error(serr.message .. "; " .. serr.hint, { code = serr.code })
  end
end

-- The same in one call, for scripts written before app_control: returns the
-- app (to close) or nil, err.
function M.ensure_stopped(env, stop, timeout)
  local app = M.app_control(env)
  local ok, err = app:ensure_stopped(stop, timeout)
  if not ok then return nil, err end
  return app
end

-- --- PostgreSQL -------------------------------------------------------------------

-- RDS IAM authentication: TLS at least `require` (`verify-full` when
-- PGSSLROOTCERT names the CA bundle), the region, and which AWS credentials
-- sign the tokens (found now, so a missing role fails before any work).
function M.use_iam(env)
  local db = env.database
  if db.sslmode ~= "verify-full" and db.sslmode ~= "verify-ca" then
    local root = os.getenv("PGSSLROOTCERT")
    db.sslmode = (root and root ~= "" and root ~= "system") and "verify-full" or "require"
    db.sslmode_source = "iam"
  end
  local entra = require("mxpc.azure_db").reason(env)
  if entra then return require("mxpc.azure_db").use(env, entra) end
  db.region = environment.rds_region(db.host) or env.storage.region or "us-east-1"
  local creds, err = require("mxpc.s3").credentials {}
  if not creds then
    err.message = "the database uses IAM authentication, but " .. err.message
    return nil, err
  end
  db.aws = creds
  log.info("database login with RDS IAM tokens", { because = db.iam_reason, credentials = creds.source,
    region = db.region, sslmode = db.sslmode })
  return true
end

-- The password for one new connection: an RDS IAM token (15 minutes) signed
-- now, or the Secret's password.
local function db_password(db)
  if not db.iam then return db.password end
  if db.entra then return require("mxpc.azure_db").password() end
  return require("mxpc.s3").rds_token { host = db.host, port = db.port, user = db.user, region = db.region }
end

-- A refused IAM login, explained: what the role needs.
local function iam_refusal(db, err)
  local text = tostring(err)
  if not (text:find("PAM authentication failed", 1, true) or text:find("password authentication failed", 1, true)) then
    return err
  end
  local role = db.aws and db.aws.role
  local account = role and role:match("^arn:aws[%w-]*:iam::(%d*):") or "<account_id>"
  return errors.new { code = "forbidden",
    message = ("the database %s:%s refused the RDS IAM token of user %s (signed with credentials from %s): %s"):format(
      db.host, db.port, db.user, db.aws and db.aws.source or "?", text:gsub("\n.*", "")),
    hint = ("the %s needs rds-db:connect on arn:aws:rds-db:%s:%s:dbuser:<DbiResourceId>/%s, and the database user " ..
      "needs the rds_iam role (GRANT rds_iam TO %s)"):format(role and ("role " .. role) or "IAM identity",
      db.region or "<region>", account, db.user, db.user) }
end

local function pg_params(db)
  local password, err = db_password(db)
  if not password then return nil, err end
  return { host = db.host, port = db.port, dbname = db.dbname, user = db.user, password = password,
    sslmode = db.sslmode }
end

-- opts.connect_timeout: seconds to wait for the server (default: libpq's)
function M.connect_database(env, opts)
  local pg = require "mxpc.pg"
  local params, perr = pg_params(env.database)
  if not params then return nil, perr end
  params.connect_timeout = opts and opts.connect_timeout and tostring(opts.connect_timeout) or nil
  local conn, err = pg.connect(params)
  if not conn and err.message:find("does not support SSL", 1, true) then
    err.hint = environment.no_tls_hint(env.database) -- (libpq does not know who asked for TLS)
  end
  if not conn and env.database.entra then return nil, require("mxpc.azure_db").refusal(env.database, err) end
  if not conn then return nil, env.database.iam and iam_refusal(env.database, err) or err end
  local info = conn:info()
  log.info("connected to the database", { server = info.server_version, tls = info.ssl and info.ssl.protocol or "no" })
  return conn
end

-- The environment variables pg_dump, pg_restore and psql take the connection
-- from: the password never appears on a command line.
local function pg_env(db)
  local env = { PGHOST = db.host, PGPORT = tostring(db.port), PGDATABASE = db.dbname, PGUSER = db.user,
    PGSSLMODE = db.sslmode, PGAPPNAME = "mxpc-data-migration", PGCONNECT_TIMEOUT = "15",
    PGOPTIONS = "-c client_min_messages=warning" }
  local password, err = db_password(db)
  if db.iam and not password then return nil, err end
  if password then env.PGPASSWORD = password end
  return env
end

-- Why a child failed, for a message: "pg_dump failed (exit status 1): <its
-- stderr>", "psql was killed by signal 9 (SIGKILL)". Its stderr may hold
-- several lines (ERROR, DETAIL, HINT): the error gets `lines = true`, and is
-- printed as lines.
local function child_failure(name, r)
  local text = r.stderr:gsub("%s+$", "")
  return (r.signal and (name .. " was " .. r.reason) or (name .. " failed (" .. r.reason .. ")"))
    .. (text ~= "" and (": " .. text) or "")
end

local FILES_TABLE, UUID_COLUMN = "system$filedocument", "__uuid__"

-- Optional columns of the FileDocument table -> the field of a file they give.
local FILE_FACTS = { { "size", "size" }, { "name", "name" }, { "changeddate", "changed" },
  { "submetaobjectname", "entity" } }

-- Rows the listing of files holds at a time, whatever the number of files.
M.LIST_BATCH = 2000
local cursors = 0

-- The files the environment uses: FileDocument rows with contents and a UUID,
-- as {uuid =, size =, name =, changed =, entity =, has_contents = true}, from
-- the columns the table has: size (nil when absent or unusable), name,
-- changed ("YYYY-MM-DD HH:MM:SS", UTC), entity (the FileDocument
-- specialization, e.g. "MyFirstModule.Attachment"). each(f) is called for
-- every file in turn, and the number of files returned: the rows come from
-- a cursor (one snapshot), M.LIST_BATCH at a time, so that a million files
-- never are in memory at once. Without `each`, the list of the files.
function M.list_files(conn, each)
  if not each then
    local files = {}
    local n, err = M.list_files(conn, function(f) files[#files + 1] = f end)
    if not n then return nil, err end
    return files
  end
  local cols, err = conn:query(
    "select column_name from information_schema.columns where table_schema = 'public' and table_name = $1",
    FILES_TABLE)
  if not cols then return nil, err end
  local have = {}
  for _, r in ipairs(cols) do have[r.column_name] = true end
  if not next(have) then
    log.warn("no " .. FILES_TABLE .. " table: the environment has no files")
    return 0
  end
  for _, c in ipairs { UUID_COLUMN, "hascontents" } do
    if not have[c] then
      return nil, errors.new { code = "schema",
        message = ("table public.%s has no column %s"):format(FILES_TABLE, c),
        hint = "this is not a Mendix database this tool knows; see docs/environment.md" }
    end
  end
  local select = { UUID_COLUMN .. " as uuid" }
  for _, c in ipairs(FILE_FACTS) do
    if have[c[1]] then
      select[#select + 1] = c[1] == "changeddate" and "to_char(changeddate, 'YYYY-MM-DD HH24:MI:SS') as changed"
        or ('"%s" as %s'):format(c[1], c[2])
    end
  end
  -- WITH HOLD: the rows are kept for the cursor outside a transaction, so a
  -- hook's own queries on the connection (select_file) do not disturb it
  cursors = cursors + 1
  local cursor = "mxpc_files_" .. cursors
  local ok, derr = conn:exec(("declare %s no scroll cursor with hold for select %s from public.%s " ..
    "where hascontents and %s is not null order by 1"):format(cursor, table.concat(select, ", "),
      '"' .. FILES_TABLE .. '"', UUID_COLUMN))
  if not ok then return nil, derr end
  -- (a hook may have closed the connection: the error that ends the listing is the one to see)
  local _ <close> = setmetatable({}, { __close = function() pcall(conn.exec, conn, "close " .. cursor) end })
  local n, skipped, fetched = 0, 0, 0
  repeat
    local rows, qerr = conn:query(("fetch forward %d from %s"):format(M.LIST_BATCH, cursor))
    if not rows then return nil, qerr end
    fetched = #rows
    for i, r in ipairs(rows) do
      rows[i] = nil
      if backup_archive.is_uuid(r.uuid) then
        r.size = math.type(r.size) == "integer" and r.size >= 0 and r.size or nil
        r.entity = r.entity or "System.FileDocument"
        r.has_contents = true
        n = n + 1
        each(r)
      else
        skipped = skipped + 1
      end
    end
  until fetched < M.LIST_BATCH
  if skipped > 0 then log.warn("FileDocument rows with an invalid UUID skipped", { rows = skipped }) end
  log.info("files in use", { files = n })
  return n
end

-- The FileDocument specializations the database's files are of
-- (submetaobjectname; Module.Entity names, sorted).
function M.file_entities(conn)
  local names = { ["System.FileDocument"] = true }
  local cols, err = conn:query(
    "select 1 from information_schema.columns where table_schema = 'public' and table_name = $1 " ..
    "and column_name = 'submetaobjectname'", FILES_TABLE)
  if not cols then return nil, err end
  if #cols > 0 then
    local rows, qerr = conn:query(('select distinct submetaobjectname as name from public."%s" ' ..
      "where submetaobjectname is not null"):format(FILES_TABLE))
    if not rows then return nil, qerr end
    for _, r in ipairs(rows) do names[r.name] = true end
  end
  local list = {}
  for n in pairs(names) do list[#list + 1] = n end
  table.sort(list)
  return list
end

-- --files-of names no file of the database is of (a misspelt entity would
-- select nothing): a usage error (exit 2) naming the entities its files are
-- of, with the one that differs only in case (or by a typo) as "did you mean".
function M.check_files_of(conn, wanted)
  if not wanted or #wanted == 0 then return true end
  local known, err = M.file_entities(conn)
  if not known then return nil, err end
  local set = {}
  for _, n in ipairs(known) do set[n] = true end
  for _, w in ipairs(wanted) do
    if not set[w] then
      local suggestion
      for _, n in ipairs(known) do
        if n:lower() == w:lower() then suggestion = (" (did you mean %s?)"):format(n) end
      end
      suggestion = suggestion or require("mxpc.args").did_you_mean(w, known)
      return nil, errors.new { code = "usage",
        message = ("invalid --files-of %q: no file of the database is of that entity%s; its files are of %s")
          :format(w, suggestion, table.concat(known, ", ")) }
    end
  end
  return true
end

-- Size and model version for the archive's .metadata.
function M.database_facts(conn)
  local size = assert(conn:query("select pg_database_size(current_database()) as n"))[1].n
  local version = "unknown"
  local t = conn:query("select to_regclass('public.\"mendixsystem$version\"') is not null as present")
  if t and t[1].present then
    local cols = conn:query("select column_name from information_schema.columns where table_schema = 'public' " ..
      "and table_name = 'mendixsystem$version' and column_name = 'modelversion'")
    if cols and #cols == 1 then
      local v = conn:query('select modelversion from public."mendixsystem$version" limit 1')
      if v and v[1] and v[1].modelversion then version = v[1].modelversion end
    end
  end
  return { size = size, model_version = version }
end

-- Starts pg_dump -O -x -Fc into `path` and returns at once; the dump runs
-- while other work goes on. dump:ended() says whether it is over,
-- dump:finish() waits for it and returns its size (or nil, err). Closing the
-- dump stops a pg_dump that still runs.
function M.start_dump(env, path)
  local pg_dump, perr = pg_programs.find("pg_dump")
  if not pg_dump then return nil, perr end
  log.info("dumping the database", { program = pg_dump })
  -- stdout to a file we create: mode 0600 from the start
  local penv, eerr = pg_env(env.database)
  if not penv then return nil, eerr end
  local p, err = process.spawn({ pg_dump, "-O", "-x", "-Fc", "--no-password" },
    { env = penv, stdout = { file = path } })
  if not p then return nil, err end
  local dump = { path = path }
  local meter = progress.start("dump", { label = "dumping the database",
    poll = function() local st = fs.stat(path); return st and st.size end })
  function dump.ended() return p:poll() end
  function dump.finish()
    local r = p:wait()
    p:close()
    meter:finish(r.status ~= 0)
    if r.status ~= 0 then
      return nil, errors.new { code = "pg_dump", message = child_failure("pg_dump", r), lines = true,
        hint = r.stderr:find("server version mismatch") and "install a pg_dump at least as new as the server" or nil }
    end
    local size = fs.stat(path).size
    log.info("database dumped", { bytes = size })
    -- Mendix Cloud restores dumps up to archive version 1.14 (pg_dump 12-15)
    local f = io.open(path, "rb")
    local header = backup_archive.parse_dump_header(f and f:read(4096) or "")
    if f then f:close() end
    if header then
      local verdict = backup_archive.compatibility { kind = "dump", dump = header }
      for _, reason in ipairs(verdict.reasons or {}) do
        log.warn(reason .. ": the archive restores with this tool but not in Mendix Cloud",
          { hint = "use a pg_dump of version 15 or older (MXPC_PG_BINDIR) for Mendix Cloud" })
      end
    end
    return size
  end
  return setmetatable(dump, { __close = function()
    p:close()
    meter:finish(true)
  end })
end

-- pg_dump -O -x -Fc into `path`; returns its size.
function M.dump_database(env, path)
  local dump <close>, err = M.start_dump(env, path)
  if not dump then return nil, err end
  return dump.finish()
end

-- Empties schema public and restores the dump, all in one transaction: a
-- failure leaves the database as it was.
local EMPTY_PUBLIC = [[
DO $$DECLARE r record; BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
  LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.relname);
  END LOOP;
END$$;]]

-- What the database restore's progress counts: the bytes of the dump
-- pg_restore has read (rchar in /proc/PID/io, against the dump's size) or,
-- where that cannot be read, the bytes of SQL passed to psql, of no known
-- total (meter:add).
local function restore_meter(restore, dump_path)
  local opts = { label = "restoring the database" }
  local size = (fs.stat(dump_path) or {}).size
  local io_file = "/proc/" .. restore:pid() .. "/io"
  local function dump_read()
    local f = io.open(io_file, "r")
    local text = f and f:read("a")
    if f then f:close() end
    local n = text and tonumber(text:match("rchar:%s*(%d+)"))
    return n and math.min(n, size)
  end
  if size and dump_read() then opts.bytes, opts.poll = size, dump_read end
  return opts
end

-- Once psql has read all of its input, PostgreSQL alone decides between
-- commit and rollback, and a signal cannot change that any more: from then on
-- signals are deferred (runtime.defer_interrupts). If the restore failed, a
-- signal that came meanwhile is raised; after a commit they stay deferred, so
-- the run can finish (start the app, report success) and say the interruption
-- came too late.
-- `extra_sql` (the restore_sql hook's) runs in the same transaction after the
-- data is loaded, with the search_path reset (pg_restore's SQL empties it).
function M.restore_database(env, dump_path, extra_sql)
  local bin, berr = pg_programs.find_all { "pg_restore", "psql" }
  if not bin then return nil, berr end
  log.info("restoring the database in one transaction", { database = env.database.dbname })
  -- pg_restore writes SQL, psql runs it in one transaction. We pass the SQL
  -- along ourselves rather than piping one into the other: if pg_restore fails
  -- halfway, psql must not see a clean end of input (it would commit what it
  -- got), so it is killed instead, and the transaction rolls back.
  -- both are closed (killed if still running) when this function is left
  -- in any way, also by a signal, before the caller starts the app again
  local restore <close>, err = process.spawn({ bin.pg_restore, "-O", "-x", "-f", "-", dump_path },
    { stdout = "pipe" })
  if not restore then return nil, err end
  local penv, eerr = pg_env(env.database)
  if not penv then
    restore:close()
    return nil, eerr
  end
  local psql <close>, perr = process.spawn({ bin.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
    "--no-password", "-c", EMPTY_PUBLIC, "-f", "-" }, { stdin = "pipe", env = penv })
  if not psql then
    restore:close()
    return nil, perr
  end
  local psql_open = true
  local meter <close> = progress.start("restore", restore_meter(restore, dump_path))
  while true do
    local chunk = restore:read()
    if not chunk then break end
    if psql_open and psql:write(chunk) == false then psql_open = false end -- psql stopped: it failed
    meter:add(0, #chunk)
  end
  local rr = restore:wait()
  restore:close()
  if meter.poll then meter.poll, meter.bytes = nil, meter.total_bytes end -- all of it was read
  if rr.status ~= 0 then
    meter:finish(true)
    psql:close() -- kills it before its input ends: nothing is committed
    return nil, errors.new { code = "pg_restore", message = child_failure("pg_restore", rr), lines = true,
      hint = "the database was left as it was" }
  end
  if extra_sql and psql_open then
    log.info("adding the restore_sql hook's SQL to the transaction", { bytes = #extra_sql })
    psql:write("\nRESET search_path;\n" .. extra_sql .. "\n;\n")
  end
  local was = runtime.defer_interrupts(true) -- a signal before this line still rolls back
  psql:close_stdin()
  local rp = psql:wait()
  psql:close()
  meter:finish(rp.status ~= 0)
  if rp.status ~= 0 or rp.stderr:find("ERROR") then
    runtime.defer_interrupts(was) -- raises a signal that came meanwhile: the database is as it was
    return nil, errors.new { code = "restore", message = "restoring the database failed: " .. child_failure("psql", rp),
      lines = true,
      hint = "the restore ran in one transaction, so the database was left as it was" }
  end
  log.info("database restored")
  return true
end

-- --- S3 ------------------------------------------------------------------------------

local function nonempty(s) return s ~= "" and s or nil end

function M.object_key(env, uuid) return environment.object_key(env.storage, uuid) end

function M.connect_storage(env)
  local s3 = require "mxpc.s3"
  local st = env.storage
  if st.service == "azure" then return require("mxpc.azure_storage").connect(st) end
  local client, err = s3.client { endpoint = st.endpoint, region = st.region or "us-east-1",
    access_key = st.access_key, secret_key = st.secret_key, path_style = not st.virtual_host,
    ca_file = nonempty(os.getenv("SSL_CERT_FILE")), ca_dir = nonempty(os.getenv("SSL_CERT_DIR")) }
  if not client then return nil, err end
  -- one cheap request proves the address, TLS and the signature before any
  -- long work; without ListBucket a missing key may answer 403, which is fine
  local _, perr = client:head(st.bucket, st.prefix .. ".mxpc-probe")
  if perr and not errors.is(perr, "not_found") and not errors.is(perr, "forbidden") then return nil, perr end
  return client
end

-- --- hooks -----------------------------------------------------------------------------

-- The hooks of this run (docs/hooks.md): hooks:call(point, ...), hooks:set{...}.
function M.hooks(opts, workflow) return require("mxpc.hooks").for_run(opts, workflow) end

-- --- signals ------------------------------------------------------------------------

-- After a point of no return (signals deferred there): warns if a signal came
-- and forgets it, so the run ends as what it is, complete.
function M.too_late(what)
  local late = runtime.interrupted()
  if late then
    log.warn(("interrupted by %s after %s: too late to stop, the run completes"):format(late, what))
    runtime.clear_interrupt()
  end
end

-- --concurrency and --window (MiB) -> {concurrency =, window = bytes}
function M.transfer_options(opts)
  return { concurrency = tonumber(opts.concurrency) or 16, window = (tonumber(opts.window) or 32) * 1024 * 1024 }
end

-- The error of backup --strict for a file missing from storage.
function M.missing_file(uuid, key)
  return errors.new { code = "not_found",
    message = ("file %s is missing from storage (%s): --strict makes that an error"):format(uuid, key),
    hint = "nothing was written; without --strict a missing file is reported and skipped" }
end

-- The files a backup copies: those in use (list_files) that --files-* and
-- the select_file hook take, with their sizes, from the database, else asked
-- of the storage with HEAD requests, many at a time. They are kept in a
-- fileset, 32 bytes a file, so that memory does not grow with a Lua table a
-- file (only the facts of files whose size must be asked before the hook can
-- choose are kept meanwhile). Returns {files = the fileset, in_use = n,
-- missing = {uuid, ...}, selected = "1,204 of 3,000 files selected" | nil},
-- or nil, err. A file that is gone is reported, not fatal (an app may delete
-- temporary files while the backup runs).
function M.files_to_copy(db, store, env, hooks, opts, transfer)
  local h = require "mxpc.hooks"
  local selects = h.selector(hooks, opts)
  local files, unknown, waiting, twice = fileset.new(), fileset.new(), {}, 0
  local function take(uuid, size)
    if not files:add(uuid, size) then twice = twice + 1 end
  end
  local in_use, err = M.list_files(db, function(f)
    if not f.size then
      -- (two rows of one UUID, one with a size: the file is taken once, by the one with the size)
      local i = not files:find(f.uuid) and unknown:add(f.uuid)
      if i and selects then waiting[i] = f end
    elseif not selects or selects(f) then
      take(f.uuid, f.size)
    end
  end)
  if not in_use then return nil, err end
  local missing = {}
  if #unknown > 0 then
    log.info("looking up file sizes", { files = #unknown, concurrency = transfer.concurrency })
    local meter <close> = progress.start("sizes", { label = "looking up file sizes", total = #unknown })
    local ok, herr = store:head_many(env.storage.bucket, unknown, { concurrency = transfer.concurrency,
      key = function(uuid) return M.object_key(env, uuid) end,
      on_item = function(item, head, e)
        meter:step(head and head.size)
        if head then
          if selects then waiting[item.index].size = head.size else take(item.uuid, head.size) end
          return true
        end
        waiting[item.index] = nil
        if not errors.is(e, "not_found") then return false end
        if files:find(item.uuid) then return true end -- taken already, by a row with a size
        if opts.strict then error(M.missing_file(item.uuid, item.key), 0) end
        missing[#missing + 1] = item.uuid
        log.warn("file not found in storage, skipped", { uuid = item.uuid, key = item.key })
        return true
      end })
    if not ok then return nil, herr end
    meter:finish()
    -- the hook chooses once the sizes are known, in the order of the files
    for i = 1, #unknown do
      local f = waiting[i]
      if f and selects(f) then take(f.uuid, f.size) end
    end
  end
  if twice > 0 then log.warn("FileDocument rows with the same UUID: the file is copied once", { rows = twice }) end
  local selected
  if selects then
    selected = ("%s of %s files selected"):format(h.thousands(#files), h.thousands(in_use))
    log.info(selected)
  end
  return { files = files, in_use = in_use, missing = missing, selected = selected }
end

-- --- progress --------------------------------------------------------------------------

-- The progress of a loop over `total` items (mxpc.progress): p.step(bytes)
-- after each, p.totals() -> items, bytes. It ends with the last item, or when
-- closed (`local p <close> = ...`). opts: phase (its name in JSON events,
-- default `what`), bytes (the total, if known), poll (a function returning
-- the bytes done, instead of the steps' sum; the meter then ends only when
-- closed).
function M.progress(what, total, opts)
  opts = opts or {}
  local meter = progress.start(opts.phase or what, { label = what, total = total, bytes = opts.bytes, poll = opts.poll })
  if not opts.poll and total == 0 then meter:finish() end -- nothing to wait for
  local p = {}
  function p.step(n)
    meter:step(n)
    if not opts.poll and meter.done == total then meter:finish() end
  end
  function p.totals() return meter.done, meter.bytes end
  return setmetatable(p, { __close = function(_, err) meter:finish(err ~= nil) end })
end

-- --- the output file --------------------------------------------------------------------

-- Checks, before any work is done, that `path` can be written: its directory
-- exists, and it is not a directory nor (without force) an existing file.
function M.check_output(path, force)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local dst = fs.stat(dir)
  if not dst or dst.type ~= "directory" then
    return nil, errors.new { code = "not_found", message = ("cannot write %s: the directory %s does not exist"):format(
      path, dir), hint = "create it first, or choose another place for the backup" }
  end
  local st = fs.stat(path)
  if st and st.type == "directory" then
    return nil, errors.new { code = "exists", message = ("cannot write %s: it is a directory"):format(path),
      hint = "give the archive's file name, e.g. " .. path:gsub("/$", "") .. "/backup.tar.gz" }
  end
  if st and not force then
    return nil, errors.new { code = "exists", message = path .. " already exists",
      hint = "choose another file name, or use --force to replace it" }
  end
  return true
end

-- --- where the archive is --------------------------------------------------------------

-- `-f` names a file, "-" (standard output for a backup, standard input for a
-- restore), "s3://BUCKET/KEY" or "azblob://ACCOUNT/CONTAINER/BLOB" (kind "s3"
-- with service "azure": the Azure client has the S3 client's methods). Returns {kind = "file" | "stdio" | "s3", ...}
-- or raises a usage error.
function M.location(spec)
  if spec == "-" then return { kind = "stdio", spec = spec } end
  if spec:sub(1, 5) == "s3://" then
    local bucket, key = spec:match("^s3://([^/]+)/(.+)$")
    if not bucket or key:sub(-1) == "/" then
      errors.raise("usage", ("%s is not an S3 object: write s3://BUCKET/KEY, e.g. s3://backups/app.tar.gz"):format(spec))
    end
    return { kind = "s3", spec = spec, bucket = bucket, key = key }
  end
  if spec:sub(1, 9) == "azblob://" then return require("mxpc.azure_storage").location(spec) end
  return { kind = "file", spec = spec, path = spec }
end

-- An S3 client for the archive's bucket: the usual AWS credential chain
-- (AWS_ACCESS_KEY_ID..., the shared credentials file with --archive-profile
-- or AWS_PROFILE), --archive-endpoint and --archive-region.
local function archive_store(opts, loc)
  if loc and loc.service == "azure" then return require("mxpc.azure_storage").archive_client(loc, opts) end
  local s3 = require "mxpc.s3"
  return s3.client { endpoint = opts.archive_endpoint, region = opts.archive_region,
    profile = opts.archive_profile, ca_file = nonempty(os.getenv("SSL_CERT_FILE")),
    ca_dir = nonempty(os.getenv("SSL_CERT_DIR")) }
end
M.archive_store = archive_store

-- Checks, before any work, that the backup can be written where `-f` says:
-- a file (see check_output), standard output that is not a terminal, or an
-- S3 key that does not exist yet (unless --force) in a bucket that answers.
-- Returns the location, or nil, err.
function M.check_target(opts)
  local loc = M.location(opts.file)
  loc.force = opts.force
  if loc.kind == "file" then
    local ok, err = M.check_output(loc.path, opts.force)
    if not ok then return nil, err end
  elseif loc.kind == "stdio" then
    if fs.isatty(1) then
      return nil, errors.new { code = "usage", message = "refusing to write the archive to a terminal",
        hint = "redirect standard output (-f - > backup.tar.gz), or give a file name with -f" }
    end
    loc.name = "standard output"
    M.stdout_to_stderr()
  else
    local store, err = archive_store(opts, loc)
    if not store then return nil, err end
    local head, herr = store:head(loc.bucket, loc.key)
    if not head and herr.s3_code == "ContainerNotFound" then return nil, herr end
    if head and not opts.force then
      return nil, errors.new { code = "exists", message = loc.spec .. " already exists",
        hint = "choose another key, or use --force to replace it" }
    end
    if not head and not errors.is(herr, "not_found") and not errors.is(herr, "forbidden") then return nil, herr end
    loc.store, loc.name = store, loc.spec
  end
  return loc
end

-- Standard output carries only the archive: from now on file descriptor 1 is
-- stderr's, so what hooks or an edited script write there (print, io.write,
-- io.stdout, a shell or any program they start) goes to stderr
-- and cannot corrupt the archive. stdout_write below writes to standard
-- output as it was, through a descriptor of its own.
local archive_stdout
function M.stdout_to_stderr()
  if not archive_stdout then archive_stdout = assert(fs.reserve_stdout()) end
end

-- Writes to standard output (flushes without data). A consumer that went
-- away (EPIPE) or any other failure is an io error; a signal, an interruption.
local function stdout_write(data)
  M.stdout_to_stderr()
  local ok, err
  if data then ok, err = archive_stdout:write(data) else ok, err = archive_stdout:flush() end
  if ok then return true end
  runtime.check_interrupt()
  return nil, errors.new { code = "io", message = "cannot write to standard output: " .. tostring(err) }
end

-- The backup archive writer for a checked target. Nothing valid appears
-- before commit: a file is renamed into place, an upload is completed; on
-- standard output a failed archive ends without its gzip trailer and tar end
-- marker, so whatever reads it sees a broken archive.
function M.archive_writer(loc, opts)
  if loc.kind == "file" then return backup_archive.writer(loc.path, opts) end
  local sink, on_commit, on_close
  if loc.kind == "stdio" then
    sink = function(chunk) return stdout_write(chunk) end
    on_commit = function() return stdout_write() end
  else
    local upload, err = loc.store:upload(loc.bucket, loc.key)
    if not upload then return nil, err end
    log.info("uploading the archive", { to = loc.spec })
    sink = function(chunk) return upload:write(chunk) end
    on_commit = function() return upload:commit() end
    on_close = function() upload:close() end -- aborts the upload unless it was completed
  end
  return backup_archive.writer(sink, { name = loc.name, level = opts.level, on_commit = on_commit,
    on_close = on_close })
end

-- Delivers a finished file (a database-only dump) to the target. Once it is
-- there (renamed into place, the upload completed, standard output written
-- and flushed), signals are deferred: they come too late (see too_late).
-- Before that a signal stops it, and an upload leaves nothing behind.
function M.deliver_file(loc, path)
  if loc.kind == "file" then
    runtime.defer_interrupts(true)
    -- flushed and moved durably; an existing file is replaced only with --force
    return fs.commit_file(path, loc.path, { force = loc.force })
  elseif loc.kind == "s3" then
    local ok, err = loc.store:put(loc.bucket, loc.key, { path = path })
    if not ok then return nil, err end
    runtime.defer_interrupts(true)
    return true
  end
  local f <close>, err = io.open(path, "rb")
  if not f then return nil, errors.new { code = "io", message = err } end
  while true do
    local chunk = f:read(1024 * 1024)
    if not chunk then break end
    local ok, werr = stdout_write(chunk)
    if not ok then return nil, werr end
  end
  local ok, ferr = stdout_write()
  if not ok then return nil, ferr end
  runtime.defer_interrupts(true)
  return true
end

-- Bytes to keep free where standard input is spooled (MXPC_MIN_FREE, default 64 MiB).
local function min_free()
  return math.tointeger(tonumber(os.getenv("MXPC_MIN_FREE") or "")) or 64 * 1024 * 1024
end

local function no_room(dir, wanted, free)
  return nil, errors.new { code = "space",
    message = ("not enough space in %s for %s: %d bytes free, %d bytes kept free"):format(dir, wanted, free,
      min_free()),
    hint = "point TMPDIR at a larger file system, or restore from a file or from s3://BUCKET/KEY instead" }
end

-- Checks that `bytes` more fit in the working directory, keeping MXPC_MIN_FREE.
function M.check_space(dir, bytes, what)
  local free, err = fs.free_space(dir)
  if not free then return nil, err end
  if free - bytes < min_free() then return no_room(dir, what, free) end
  return true
end

local STDIN_HINT = "pipe a backup archive (.tar.gz) or a database-only backup (pg_dump's custom format) in, "
  .. "e.g. mxpc-data-migration restore ... -f - < backup.tar.gz"

local function not_an_archive(what)
  return nil, errors.new { code = "archive_invalid",
    message = "standard input is not a backup archive: " .. what, hint = STDIN_HINT }
end

-- The first bytes of `head` in hex, for a message.
local function hex(head)
  return (head:sub(1, 8):gsub(".", function(c) return ("%02x "):format(c:byte()) end):gsub(" $", ""))
end

-- Copies standard input into `path` (in the private working directory),
-- checking the free space before and while it does, and what arrives as it
-- arrives: a database-only backup starts with PGDMP; anything else must be a
-- tar archive (gzip-compressed: 1f 8b; plain: "ustar" in its first header)
-- whose entries are read as they come (each in the backup layout, the gzip
-- data intact, the end of the archive there), so that input that is not an
-- archive (/dev/zero, a log) is refused at once and a broken one as soon as
-- it breaks, not after it filled the disk. Returns the size.
local function spool_stdin(path)
  local dir = path:match("^(.*)/[^/]*$")
  local ok, err = M.check_space(dir, 0, "the archive read from standard input")
  if not ok then return nil, err end
  log.info("reading the archive from standard input into the working directory", { file = path })
  local f <close>, oerr = io.open(path, "wb")
  if not f then return nil, errors.new { code = "io", message = oerr } end
  local size, checked = 0, 0
  -- the next chunk of standard input, written to the spool file: chunk, or nil
  -- at the end, or nil, err
  local function next_chunk()
    local chunk, rerr = io.stdin:read(1024 * 1024)
    if not chunk and rerr then
      runtime.check_interrupt()
      return nil, errors.new { code = "io", message = "cannot read standard input: " .. rerr }
    end
    if not chunk then return nil end
    if size - checked >= 16 * 1024 * 1024 then
      checked = size
      local room, serr = M.check_space(dir, #chunk, "the archive read from standard input")
      if not room then return nil, serr end
    end
    local wok, werr = f:write(chunk)
    if not wok then return nil, errors.new { code = "io", message = ("cannot write %s: %s"):format(path, werr) } end
    size = size + #chunk
    return chunk
  end
  -- the first 512 bytes (a tar header), or all there is
  local parts, head = {}, ""
  while #head < 512 do
    local chunk, cerr = next_chunk()
    if cerr then return nil, cerr end
    if not chunk then break end
    parts[#parts + 1] = chunk
    head = table.concat(parts)
  end
  if size == 0 then
    return nil, errors.new { code = "archive_invalid", message = "standard input is empty: no archive to restore",
      hint = "pipe the archive in, e.g. mxpc-data-migration restore ... -f - < backup.tar.gz" }
  end
  if head:sub(1, 5) == "PGDMP" then -- a database-only backup: pg_restore checks it
    repeat
      local chunk, cerr = next_chunk()
      if cerr then return nil, cerr end
    until not chunk
  elseif head:sub(1, 2) == "\31\139" or head:sub(258, 262) == "ustar" then
    local pending = head
    local archive = require "mxpc.archive"
    local r <close>, rerr = archive.reader(function()
      if pending then
        local first = pending
        pending = nil
        return first
      end
      return next_chunk()
    end, { name = "standard input" })
    if not r then return nil, rerr end
    local entries = 0
    while true do
      local e, eerr = r:next()
      if eerr then return nil, eerr end
      if not e then break end
      entries = entries + 1
      local placed, why = backup_archive.classify(e.name, e.type)
      if not placed then
        return not_an_archive(("entry %s: %s"):format(archive.quote(e.name), why))
      end
    end
    if entries == 0 then return not_an_archive("a tar archive without entries") end
  else
    return not_an_archive(("it starts with the bytes %s, not with those of a .tar.gz archive (1f 8b) or of a "
      .. "database-only backup (PGDMP)"):format(hex(head)))
  end
  local cok, cerr = f:close()
  if not cok then return nil, errors.new { code = "io", message = ("cannot write %s: %s"):format(path, cerr) } end
  log.info("archive read from standard input", { bytes = size })
  return size
end

-- A source over an S3 object for mxpc.archive's reader: ranges of 8 MiB,
-- each pinned to the ETag the object had at first, so two reads (the check,
-- then the restore) see the same bytes or fail.
local RANGE = 8 * 1024 * 1024
local function s3_source(store, loc, size, etag)
  local pos, queue, qi = 0, {}, 1
  return function()
    while qi > #queue do
      if pos >= size then return nil end
      local n = math.min(RANGE, size - pos)
      queue, qi = {}, 1
      local ok, err = store:get(loc.bucket, loc.key, function(chunk) queue[#queue + 1] = chunk end,
        { offset = pos, length = n, if_match = etag })
      if not ok then return nil, err end
      pos = pos + n
    end
    qi = qi + 1
    return queue[qi - 1]
  end
end

-- The archive to restore, from where `-f` says. A file is read where it is;
-- standard input is first copied into the working directory `work` (it can
-- be read only once, and the archive is read twice: checked, then restored);
-- an S3 object is read twice, the same version both times (a database-only
-- dump is downloaded into `work`). Returns an input with `name`,
-- `input:validate(opts)`, `input:reader()` and `input.path` (a local copy,
-- when there is one), or nil, err.
function M.archive_input(opts, work)
  local loc = M.location(opts.file)
  local input = { name = loc.spec }
  if loc.kind == "file" then
    if not fs.stat(loc.path) then
      return nil, errors.new { code = "not_found", message = ("backup file %s does not exist"):format(loc.path) }
    end
    input.path = loc.path
  elseif loc.kind == "stdio" then
    if fs.isatty(0) then
      return nil, errors.new { code = "usage", message = "standard input is a terminal, not an archive",
        hint = "pipe or redirect the archive in (-f - < backup.tar.gz), or give a file name with -f" }
    end
    input.name = "standard input"
    input.path = work.path .. "/archive"
    local size, err = spool_stdin(input.path)
    if not size then return nil, err end
  else
    local store, err = archive_store(opts, loc)
    if not store then return nil, err end
    local head, herr = store:head(loc.bucket, loc.key)
    if not head then return nil, herr end
    local first = {}
    local ok, ferr = store:get(loc.bucket, loc.key, function(c) first[#first + 1] = c end,
      { offset = 0, length = math.min(head.size, 5), if_match = head.etag })
    if not ok then return nil, ferr end
    if table.concat(first) == "PGDMP" then -- a database-only backup: pg_restore needs it as a file
      local space, serr = M.check_space(work.path, head.size, "the database-only backup " .. loc.spec)
      if not space then return nil, serr end
      input.path = work.path .. "/download.backup"
      local got, gerr = store:get(loc.bucket, loc.key, input.path, { expected_size = head.size })
      if not got then return nil, gerr end
    else
      input.store, input.loc, input.size, input.etag = store, loc, head.size, head.etag
    end
  end
  function input:reader()
    local archive = require "mxpc.archive"
    if self.path then return archive.reader(self.path, { name = self.name }) end
    return archive.reader(s3_source(self.store, self.loc, self.size, self.etag), { name = self.name })
  end
  function input:validate(vopts)
    local summary, err
    if self.path then
      summary, err = backup_archive.validate(self.path, vopts)
    else
      local r <close>, rerr = self:reader()
      if not r then return nil, rerr end
      summary, err = backup_archive.validate(r, vopts)
    end
    -- messages name the archive as the user gave it, not a copy of it
    if err and self.path and self.name ~= self.path then
      local at = err.message:find(self.path, 1, true)
      if at then err.message = err.message:sub(1, at - 1) .. self.name .. err.message:sub(at + #self.path) end
    end
    if summary then summary.file = self.name end
    return summary, err
  end
  return input
end

-- --- objects in storage that the archive does not hold --------------------------------

-- The environment's objects in storage against the files of an archive
-- (summary.uuids, a fileset, from backup_archive.validate{uuids = true}): how many of the
-- archive's files are there already (a restore overwrites them), and the keys
-- of the environment's files that the archive lacks. Only keys of the form
-- prefix .. UUID count: anything else under the prefix is not one of the
-- environment's files and is left alone. Needs s3:ListBucket.
function M.compare_storage(store, env, summary)
  if not store or summary.kind == "dump" then
    return nil, errors.new { code = "usage", message = "there are no files to compare: the restore leaves the files as "
      .. "they are (a database-only backup, or --database-only)" }
  end
  local st, uuids = env.storage, summary.uuids or fileset.new()
  local result = { present = 0, extra = {}, listed = 0 }
  local meter <close> = progress.start("list", { label = "listing the files in storage", unit = "objects" })
  local n, err = store:list(st.bucket, st.prefix, { on_item = function(o)
    meter:step(o.size)
    result.listed = result.listed + 1
    local uuid = o.key:sub(#st.prefix + 1)
    if not backup_archive.is_uuid(uuid) then return end
    if uuids:find(uuid) then
      result.present = result.present + 1
    else
      result.extra[#result.extra + 1] = { key = o.key, size = o.size }
    end
  end })
  meter:finish(not n)
  if not n then return nil, err end
  log.info("objects in storage", { listed = result.listed, in_archive = result.present, not_in_archive = #result.extra })
  return result
end

-- Deletes the objects of compare_storage's `extra` (DeleteObjects, 1,000 a
-- request); returns how many.
function M.delete_objects(store, env, extra)
  log.info("deleting the files the archive does not hold", { objects = #extra })
  local meter <close> = progress.start("delete", { label = "deleting files", total = #extra, unit = "objects" })
  local keys, stepped = {}, 0
  for i, o in ipairs(extra) do keys[i] = o.key end
  local n, err = store:delete_many(env.storage.bucket, keys, { on_batch = function(done)
    for i = stepped + 1, done do meter:step(extra[i].size) end
    stepped = done
  end })
  if not n then
    return nil, errors.new { code = err.code, message = ("the restore is complete, but deleting the files the "
      .. "archive lacks stopped after %d of %d: %s"):format(err.deleted or stepped, #extra, err.message), hint = err.hint }
  end
  meter:finish()
  return n
end

-- --- the safety backup before a restore ------------------------------------------------

-- Checks, before anything changes, that the safety backup can be written.
function M.check_safety_backup(opts)
  if not opts.safety_backup then return true end
  if M.location(opts.safety_backup).kind ~= "file" then
    return nil, errors.new { code = "usage", message = ("--safety-backup takes a file name, not %s"):format(
      opts.safety_backup), hint = "write the safety backup to a file; back up to - or s3:// with backup first" }
  end
  local ok, err = pg_programs.find("pg_dump")
  if ok then
    ok, err = M.check_output(opts.safety_backup, false)
    if not ok then
      err = errors.new { code = err.code, message = "--safety-backup: " .. err.message, hint = errors.is(err, "exists")
        and "choose another file name: a safety backup never replaces a file" or err.hint }
    end
  end
  if not ok then return nil, err end
  return true
end

-- --safety-backup FILE: backs up the environment as it is now with the backup
-- workflow (the stock script, or the --scripts copy); database only when the
-- restore replaces only the database. true, or nil, err saying that nothing
-- was restored.
function M.safety_backup(opts)
  if not opts.safety_backup then return true end
  log.info("safety backup of the environment before the restore", { file = opts.safety_backup })
  local backup = require("mxpc.scripts").load("backup")
  local ok, err = pcall(backup, { namespace = opts.namespace, environment = opts.environment, file = opts.safety_backup,
    database_only = opts.database_only, kubeconfig = opts.kubeconfig, context = opts.context,
    db_sslmode = opts.db_sslmode, db_iam = opts.db_iam, concurrency = opts.concurrency, window = opts.window,
    hooks = false }) -- every file, whatever the hooks would choose
  -- the backup holds signals from its commit on: the restore takes them again
  runtime.defer_interrupts(false)
  if ok then return true end
  err = errors.normalize(err)
  if errors.is(err, "interrupted") then error(err, 0) end
  return nil, errors.new { code = err.code, message = "the safety backup failed, nothing was restored: " .. err.message,
    hint = err.hint }
end

-- --- a private working directory ---------------------------------------------------------

-- A directory beside `near` (so large temporary files land on the same disk
-- as the output; $TMPDIR if that place is read-only), removed with everything
-- in it when closed.
function M.workdir(near)
  local parent = near:match("^(.*)/[^/]*$") or "."
  if parent == "" then parent = "/" end
  if near == "-" or near:sub(1, 5) == "s3://" or near:sub(1, 9) == "azblob://" then -- no local output: the temporary directory
    local tmp = os.getenv("TMPDIR")
    parent = (tmp and tmp ~= "") and tmp or "/tmp"
  end
  local dir, err = fs.mkdtemp(parent .. "/.mxpc-work-")
  if not dir and errors.is(err, "permission") then
    -- a read-only place (a mounted backup volume): use the temporary directory
    local tmp = os.getenv("TMPDIR")
    dir, err = fs.mkdtemp(((tmp and tmp ~= "") and tmp or "/tmp") .. "/mxpc-work-")
  end
  if not dir then return nil, err end
  return setmetatable({ path = dir }, {
    __close = function(self)
      for _, name in ipairs(fs.dir(self.path) or {}) do fs.remove(self.path .. "/" .. name) end
      fs.remove(self.path)
    end,
  })
end

return M
