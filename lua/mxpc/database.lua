-- The environment's database: connecting (with RDS IAM tokens when the
-- environment uses them), the files it lists (FileDocument rows), its facts
-- for the archive's .metadata, pg_dump, and the restore in one transaction.
-- Reached through the wf.* facade (mxpc.workflow).
local backup_archive = require "mxpc.backup_archive"
local environment = require "mxpc.environment"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local process = require "mxpc.process"
local progress = require "mxpc.progress"
local runtime = require "mxpc.runtime"

local M = {}

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
  local creds, err = require("mxpc.aws").credentials {}
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
  return require("mxpc.aws").rds_token { host = db.host, port = db.port, user = db.user, region = db.region }
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
  local dry = require("mxpc.plan").dry()
  if dry then
    local facts = M.database_facts(conn)
    dry:say("%s: answers, %d bytes, model version %s", env.role and (env.role .. " database") or "database",
      facts.size, facts.model_version)
  end
  return conn
end

-- Whether a restore can replace the contents of schema public: CREATE on it,
-- and every relation there owned by a role of the user (else it could not
-- drop them). true, or nil, err; checked before anything changes.
function M.check_restorable(conn)
  local rows, err = conn:query([[
select has_schema_privilege('public', 'CREATE') as can_create,
       (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
           and not pg_has_role(c.relowner, 'USAGE')) as not_owned]])
  if not rows then return nil, err end
  local r = rows[1]
  if not r.can_create then
    return nil, errors.new { code = "forbidden", message = "the database user may not create tables in schema public",
      hint = "GRANT CREATE ON SCHEMA public TO the user" }
  end
  if r.not_owned > 0 then
    return nil, errors.new { code = "forbidden", message = ("%d tables, views or sequences in schema public belong to "
      .. "another role: the restore could not drop them"):format(r.not_owned),
      hint = "restore as the role that owns them (the environment's database user)" }
  end
  return true
end

-- The environment variables pg_dump and pg_restore take the connection
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
-- stderr>", "pg_restore was killed by signal 9 (SIGKILL)". Its stderr may hold
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
  local _ <close> = setmetatable({}, { __close = function() runtime.pcall(conn.exec, conn, "close " .. cursor) end })
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

-- A snapshot of the database that other sessions share: a REPEATABLE READ
-- transaction kept open on `conn_or_env` (a connection, or an environment
-- to connect to), whose pg_export_snapshot() id pg_dump --snapshot dumps
-- from. snap:list_files(each) lists the files from that same snapshot, so
-- that a backup's files are those of its dump: a row inserted later is in
-- neither. Closing it ends the transaction (and the connection it opened).
-- nil, err (code "snapshot") where the server refuses (a standby that
-- cannot export one, a user without the right to pg_export_snapshot).
local Snapshot = {}
Snapshot.__index = Snapshot

function Snapshot:list_files(each) return M.list_files(self.conn, each) end

function Snapshot:close()
  local conn = self.conn
  if not conn then return end
  self.conn = nil
  local ok, err = pcall(conn.exec, conn, "rollback")
  if self.own then conn:close() end
  if not ok and errors.is(err, "interrupted") then error(err, 0) end -- a signal, raised inside: not lost
end
Snapshot.__close = Snapshot.close

function M.export_snapshot(conn_or_env)
  local conn, own = conn_or_env, false
  if type(conn_or_env) == "table" and conn_or_env.database then
    local err
    conn, err = M.connect_database(conn_or_env)
    if not conn then return nil, err end
    own = true
  end
  local snap = setmetatable({ conn = conn, own = own }, Snapshot)
  local ok, err = conn:exec("begin transaction isolation level repeatable read, read only")
  local rows
  if ok then rows, err = conn:query("select pg_export_snapshot() as id") end
  if not rows then
    snap:close()
    return nil, errors.new { code = "snapshot", message = "the database cannot share a snapshot: " ..
      tostring(err and err.message or err):gsub("\n.*", ""),
      hint = "the dump and the list of files are then read at slightly different times" }
  end
  snap.id = rows[1].id
  log.info("database snapshot exported", { snapshot = snap.id })
  return snap
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

-- pg_dump's -Z for a dump that goes into a backup archive. pg_dump
-- compresses on one core, and the archive's gzip stores what is compressed
-- already: measured on 1.2 GB of Mendix-like data (docs/performance.md),
-- -Z1 takes half the time of the default (-Z6) for a dump 12 % larger.
-- (A database-only backup, which is the dump itself, keeps pg_dump's default.)
M.DUMP_LEVEL = 1

-- Starts pg_dump -O -x -Fc into `path` and returns at once; the dump runs
-- while other work goes on. opts.snapshot: the id of a snapshot to dump
-- (export_snapshot's, --snapshot); opts.level: pg_dump's -Z. dump:ended() says whether it is over,
-- dump:finish() waits for it and returns its size (or nil, err). Closing the
-- dump stops a pg_dump that still runs.
function M.start_dump(env, path, opts)
  local pg_dump, perr = pg_programs.find("pg_dump")
  if not pg_dump then return nil, perr end
  log.info("dumping the database", { program = pg_dump })
  -- stdout to a file we create: mode 0600 from the start
  local penv, eerr = pg_env(env.database)
  if not penv then return nil, eerr end
  local argv = { pg_dump, "-O", "-x", "-Fc", "--no-password" }
  if opts and opts.snapshot then argv[#argv + 1] = "--snapshot=" .. opts.snapshot end
  if opts and opts.level then argv[#argv + 1] = "-Z" .. opts.level end
  local p, err = process.spawn(argv, { env = penv, stdout = { file = path } })
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

-- How much space pg_dump's custom-format file of the database needs, at
-- most: the size of its tables' data (heap and TOAST, without indexes,
-- which a dump holds as CREATE INDEX only), as compressed as such data
-- (text, numbers, bytea) at least gets, DUMP_SHRINK; with -Z0 (`level` 0)
-- all of it. Bytes, or nil, err.
M.DUMP_SHRINK = 0.5
function M.dump_space(conn, level)
  local rows, err = conn:query("select coalesce(sum(pg_table_size(c.oid)), 0)::bigint as n from pg_class c " ..
    "join pg_namespace s on s.oid = c.relnamespace where c.relkind in ('r', 'm', 'p') " ..
    "and s.nspname not in ('pg_catalog', 'information_schema') and s.nspname not like 'pg_toast%'")
  if not rows then return nil, err end
  local n = math.tointeger(rows[1].n) or 0
  return level == 0 and n or math.ceil(n * M.DUMP_SHRINK)
end

-- Before a dump into the working directory `dir`: says how much space it
-- needs (dump_space) and fails early, with that number, when it is not free.
function M.check_dump_space(conn, dir, level)
  local need, err = M.dump_space(conn, level)
  if not need then return nil, err end
  log.info("space the dump needs", { bytes = need, directory = dir })
  return require("mxpc.workdir").check_space(dir, need, "the database dump",
    "free that much there, or write the archive where there is room (the dump goes beside it; " ..
    "into TMPDIR for -f - and s3://)")
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
-- where that cannot be read (or the SQL comes from pg_dump), the bytes of SQL
-- loaded, of no known total.
local function restore_meter(producer, load, dump_path)
  local opts = { label = "restoring the database", poll = function() return load:bytes() end }
  local size = dump_path and (fs.stat(dump_path) or {}).size
  local io_file = "/proc/" .. producer:pid() .. "/io"
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

-- The program that writes the SQL of a restore, as a command: pg_restore of
-- a dump file, or pg_dump (plain format: its SQL is loaded as it comes,
-- nothing is compressed only to be uncompressed; measured on 1.2 GB, the
-- same 965 MB of SQL came in 7.5-9.9 s, through -Fc -Z0 | pg_restore in
-- 6.9-9.2 s and through -Fc -Z1 | pg_restore in 17.4 s) of another
-- environment's database, from `snapshot` (export_snapshot's id) when given.
-- Its environment variables (the source's login) and its name.
local function restore_source(source, bin)
  if source.dump then
    return { bin.pg_restore, "-O", "-x", "-f", "-", source.dump }, nil, "pg_restore"
  end
  local penv, err = pg_env(source.from_env.database)
  if not penv then return nil, err end
  local argv = { bin.pg_dump, "-O", "-x", "--no-password" }
  if source.snapshot then argv[#argv + 1] = "--snapshot=" .. source.snapshot end
  return argv, penv, "pg_dump"
end

local ROLLED_BACK = "the restore ran in one transaction, so the database was left as it was"

-- Starts replacing the database's contents in one transaction and returns
-- at once: a connection of ours opens the transaction, empties schema
-- public, and a thread of ours runs on it the SQL that `source` gives
-- (db:load: statements in batches, COPY data in large messages), while the
-- caller does other work. `source` is {dump = PATH} (pg_restore of a
-- custom-format dump) or {from_env = ENV, snapshot = ID} (pg_dump of
-- another environment's database, streamed, no file). The handle:
--   h:loaded()       waits until all of the SQL ran and checks the program
--                    that wrote it: true, or nil, err (the connection is
--                    closed: nothing is committed)
--   h:commit([sql])  runs `sql` (the restore_sql hook's) in the transaction
--                    and commits it: true, or nil, err
--   closing it       before the commit stops both: the database is as it was
-- Nothing commits before commit(), and commit() only once the program that
-- wrote the SQL exited 0: one that fails half-way never has what it wrote
-- committed. The COMMIT itself is past the point of no return: from then on
-- signals are deferred (runtime.defer_interrupts). If the restore failed, a
-- signal that came meanwhile is raised; after a commit they stay deferred,
-- so the run can finish (start the app, report success) and say the
-- interruption came too late.
local Restore = {}
Restore.__index = Restore

-- Stops whatever still runs: before the commit, the database is as it was.
function Restore:__close()
  -- the meter first: it polls the load, which must not be asked once closed
  -- (that error would take the place of the one that unwinds the run)
  if self.meter then self.meter:finish(not self.committed) end
  if self.load then self.load:close() end -- its statement cancelled, its socket shut
  if self.producer then self.producer:close() end
  if self.conn then self.conn:close() end -- a transaction not committed is rolled back
end

-- Fails the restore: the connection closed (its transaction rolled back).
function Restore:fail(err)
  if self.meter then self.meter:finish(true) end
  self.conn:close()
  self.load_ok, self.load_err = nil, err
  return nil, err
end

function M.start_restore(env, source)
  local from = source.dump and "pg_restore" or "pg_dump"
  local bin, berr = pg_programs.find_all { from }
  if not bin then return nil, berr end
  local argv, source_env, name = restore_source(source, bin)
  if not argv then return nil, source_env end
  log.info("restoring the database in one transaction", { database = env.database.dbname,
    from = source.dump and "dump" or source.from_env.database.dbname, snapshot = source.snapshot })
  local h = setmetatable({ name = name }, Restore)
  local err
  h.conn, err = M.connect_database(env)
  if not h.conn then return nil, err end
  -- (from PostgreSQL 14 on, the server checks for a client gone every 10 s
  -- while a statement runs: a restore whose cancel never arrived does not
  -- hold its locks until an index build ends)
  local check = (h.conn:info().server_version or 0) >= 140000 and "SET client_connection_check_interval = '10s';\n"
    or ""
  local ok, eerr = h.conn:exec("SET client_min_messages = warning;\n" .. check .. "BEGIN;\n" .. EMPTY_PUBLIC)
  if not ok then
    h:__close()
    return nil, errors.new { code = "restore", message = "emptying schema public failed: " .. eerr.message,
      hint = "nothing was changed" }
  end
  h.producer, err = process.spawn(argv, { stdout = "pipe", env = source_env })
  if not h.producer then
    h:__close()
    return nil, err
  end
  h.load, err = h.conn:load(h.producer)
  if not h.load then
    h:__close()
    return nil, err
  end
  h.meter = progress.start("restore", restore_meter(h.producer, h.load, source.dump))
  return h
end

function Restore:loaded()
  if self.load_done then return self.load_ok, self.load_err end
  local bytes, lerr = self.load:wait() -- (raises on a signal: closing the handle then rolls back)
  self.load, self.load_done = nil, true -- waited for: the connection is free again
  local meter = self.meter
  meter.poll, meter.bytes = nil, meter.total_bytes or bytes or 0 -- (before the wait below ticks it)
  if not bytes and not lerr.input_ended then -- the load failed first
    self.producer:close() -- no longer read: it would wait for us forever (killed, its status is ours)
    return self:fail(errors.new { code = "restore", message = "restoring the database failed: " .. lerr.message,
      hint = ROLLED_BACK, sqlstate = lerr.sqlstate, lines = lerr.lines })
  end
  local rr = self.producer:wait()
  if rr.status ~= 0 then -- the producer's failure first: a load cut short follows from it
    return self:fail(errors.new { code = self.name, message = child_failure(self.name, rr), lines = true,
      hint = "the database was left as it was" })
  end
  if not bytes then
    return self:fail(errors.new { code = "restore", message = "restoring the database failed: " .. lerr.message,
      hint = ROLLED_BACK, sqlstate = lerr.sqlstate, lines = lerr.lines })
  end
  self.load_ok = true
  return true
end

function Restore:commit(extra_sql)
  local ok, lerr = self:loaded()
  if not ok then return nil, lerr end
  if extra_sql then
    log.info("running the restore_sql hook's SQL in the transaction", { bytes = #extra_sql })
    local hok, herr = self.conn:exec("RESET search_path;\n" .. extra_sql)
    if not hok then
      return self:fail(errors.new { code = "restore", message = "restoring the database failed: the restore_sql " ..
        "hook's SQL: " .. herr.message, hint = ROLLED_BACK, lines = herr.lines })
    end
    local state = self.conn:transaction()
    if state ~= "intrans" then -- a COMMIT or ROLLBACK in the hook's SQL
      return self:fail(errors.new { code = "restore", message = "the restore_sql hook's SQL ended the restore's " ..
        "transaction (a COMMIT, END or ROLLBACK in it): what it committed, if anything, is in the database",
        hint = "leave the transaction to the tool: the hook's SQL runs inside it; look at the database before " ..
          "running the app" })
    end
  end
  local was = runtime.defer_interrupts(true) -- a signal before this line still rolls back
  local state = self.conn:transaction()
  local cok, cerr
  if state == "intrans" then
    cok, cerr = self.conn:exec("COMMIT")
  else
    cerr = { message = "the transaction is " .. state .. ", not open" }
  end
  self.committed = cok and true or false
  self.meter:finish(not self.committed)
  if not self.committed then
    self.conn:close()
    if cerr.code == "connect" then -- the COMMIT went out; whether it took is the server's to say
      return nil, errors.new { code = "restore", message = "the connection to the database was lost at the " ..
        "restore's COMMIT: " .. cerr.message, hint = "whether it was committed is not known: look at the " ..
        "database (its tables and the app's data) before running the app" }
    end
    runtime.defer_interrupts(was) -- raises a signal that came meanwhile: the database is as it was
    return nil, errors.new { code = "restore", message = "restoring the database failed: " .. cerr.message,
      hint = ROLLED_BACK, lines = cerr.lines }
  end
  self.conn:close()
  log.info("database restored")
  return true
end

-- Empties schema public and restores the dump at `dump_path` in one
-- transaction (start_restore), then `extra_sql` (the restore_sql hook's)
-- with the search_path reset (pg_restore's SQL empties it): a failure leaves
-- the database as it was.
function M.restore_database(env, dump_path, extra_sql)
  local h <close>, err = M.start_restore(env, { dump = dump_path })
  if not h then return nil, err end
  return h:commit(extra_sql)
end

-- The database of the environment read (a backup's, a copy's source) at
-- one point in time: snap.id, the snapshot pg_dump reads (export_snapshot,
-- on a connection of its own), and snap.db, a connection whose listing of files sees that same
-- point. Where the server refuses to share a snapshot (a standby, old
-- permissions): a warning, snap.id nil and snap.db the run's connection
-- `db`, so that the files are listed a moment apart from the dump. Closing
-- it ends the snapshot.
function M.source_snapshot(env, db)
  local snap, err = M.export_snapshot(env)
  if snap then
    snap.db = snap.conn
    return snap
  end
  if not errors.is(err, "snapshot") then return nil, err end
  log.warn(err.message .. ": the files are listed apart from the dump", { hint = err.hint })
  return setmetatable({ db = db }, { __close = function() end })
end

return M
