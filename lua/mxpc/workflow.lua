-- The steps the backup and restore workflows (scripts/) are made of, as the
-- one wf.* facade the scripts, hooks files and the REPL use. Each step does
-- one thing a person would name, logs what it did, and returns nil, err (an
-- error object naming what and where) when the outside world fails; the
-- steps of a whole phase (write_archive, unpack_archive, replace_database)
-- raise it instead, as the scripts' assert would. The
-- steps live in modules named for what they act on, re-exported here:
--   mxpc.app         the app: running pods, stop and start again
--   mxpc.database    connect (RDS IAM too), list files, dump, restore
--   mxpc.archive_io  where the archive is: file, stdout/stdin, s3://
--   mxpc.storage     the environment's files: connect, choose, compare, delete
--   mxpc.workdir     the private working directory and its free space
--   mxpc.env_copy    copy: both environments, their files and database copied
-- Here: the cluster and the environment, the run's hooks, signals, progress,
-- the safety backup before a restore.
local backup_archive = require "mxpc.backup_archive"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local plan = require "mxpc.plan"
local progress = require "mxpc.progress"
local runtime = require "mxpc.runtime"

local PARTS = { require "mxpc.app", require "mxpc.database", require "mxpc.archive_io", require "mxpc.storage",
  require "mxpc.workdir", (require "mxpc.env_copy") }

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
  local environment = require "mxpc.environment"
  local err
  if not client then client, err = M.connect_cluster(opts) end
  if not client then return nil, err end
  log.info("resolving environment", { namespace = opts.namespace, environment = opts.environment,
    cluster = tostring(client) })
  local env, rerr = environment.resolve(client, opts.namespace, opts.environment, k8s.secret_data,
    { identity = opts.identity })
  -- a dry run asks whether the user may read what resolving reads, also to say why it failed
  local dry = plan.dry()
  if dry then
    dry:may(client, opts.namespace, env and env.store and plan.STORE_VERBS or plan.RESOLVE_VERBS,
      "to read the environment's settings")
  end
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
  if dry then
    dry:say("environment %s/%s: database %s:%s/%s, files %s/%s/%s", env.namespace, env.name, env.database.host,
      env.database.port, env.database.dbname, env.storage.endpoint, env.storage.bucket, env.storage.prefix)
  end
  return env
end

-- --- the run's plan ----------------------------------------------------------------------

-- The plan of a run (mxpc.plan): its checks raise in a real run and are
-- recorded in a dry run (--dry-run), which says what the run would do.
function M.plan(opts, what) return plan.new(opts, what) end

-- --- hooks -----------------------------------------------------------------------------

-- The hooks of this run (docs/hooks.md): hooks:call(point, ...), hooks:set{...}.
-- Hooks that use ctx.db without the run having given one connect with
-- connect_database.
function M.hooks(opts, workflow)
  return require("mxpc.hooks").for_run(opts, workflow, M.connect_database)
end

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

-- --- the archive, written and unpacked ----------------------------------------------------

-- Writes the backup archive to a checked target (archive_writer): .metadata
-- and the dump as soon as pg_dump is done, then each file as its download
-- finishes (many at a time; files that do not fit the memory window wait in
-- the working directory), then commits it; from the commit on a signal comes
-- too late (see too_late). a = {target =, level =, env =, store =, files =
-- (the fileset of files_to_copy), missing = (its list, extended with files
-- gone since), dump = (start_dump's), facts = (database_facts), started =,
-- transfer =, work =, strict =}. Returns {dump_bytes =, files =, bytes =,
-- bytes_out =}; raises on failure.
function M.write_archive(a)
  local out <close> = assert(M.archive_writer(a.target, { force = a.target.force, level = a.level }))
  local files_size = a.files:bytes()
  local dump_size
  local function add_database(must) -- (the many GETs ask whether it is ready, and make it so at their end)
    if not must and not a.dump.ended() then return false end
    dump_size = assert(a.dump.finish())
    assert(out:add_metadata {
      duration = os.time() - a.started, dumpSize = dump_size, modelVersion = a.facts.model_version,
      databaseSize = a.facts.size, filesSize = files_size,
    })
    assert(out:add_dump(a.dump.path))
    return true
  end
  local meter <close> = M.progress("copying files", #a.files, { phase = "copy", bytes = files_size })
  local copied, copied_bytes = 0, 0
  assert(out:add_files_from(a.store, a.env.storage.bucket, a.files, {
    concurrency = a.transfer.concurrency, window = a.transfer.window, spill_dir = a.work.path, ready = add_database,
    key = function(uuid) return M.object_key(a.env, uuid) end,
    on_item = function(f, res, err)
      if res then
        copied, copied_bytes = copied + 1, copied_bytes + res.size
        meter.step(res.size)
        return true
      end
      if not errors.is(err, "not_found") then return false end
      if a.strict then error(M.missing_file(f.uuid, f.key), 0) end -- a complete archive or none
      -- deleted since it was listed: reported, not fatal
      a.missing[#a.missing + 1] = f.uuid
      log.warn("file not found in storage, skipped", { uuid = f.uuid, key = f.key })
      return true
    end,
  }))
  if not dump_size then add_database(true) end
  assert(out:commit()) -- from its point of no return on, a signal comes too late (archive_writer)
  return { dump_bytes = dump_size, files = copied, bytes = copied_bytes, bytes_out = out:stats().bytes_out }
end

-- What the archive's check keeps in the working directory `work`, so that
-- a restore reads the archive once: the dump when `with_db` (its space
-- checked when its size is known), and then the files when `with_files`,
-- while they are few and small: at most KEEP_FILES of them, and bytes up to
-- KEEP_FILES_BYTES and KEEP_FILES_SHARE of the dump's size (a second read
-- costs mostly the dump's decompression: with a small dump it is cheap, and
-- writing the files out would cost more). Beyond that the kept files are
-- removed (k.why says why) and unpack_archive reads the archive again for
-- the files.
-- Returns the keeper, whose `options` go to input:validate and which
-- unpack_archive takes as `a.kept`.
M.KEEP_FILES, M.KEEP_FILES_BYTES, M.KEEP_FILES_SHARE = 1000, 256 * 1024 * 1024, 0.25
function M.archive_keeper(work, with_db, with_files)
  local k = { bytes = 0, options = {} }
  local budget -- bytes of files that may be kept; known with the dump's size
  if with_db then
    function k.options.keep_dump(size)
      local ok, err = M.check_space(work.path, size, "the database dump")
      if not ok then return nil, err end
      k.dump = work.path .. "/db.backup"
      budget = math.min(M.KEEP_FILES_BYTES, math.floor(size * M.KEEP_FILES_SHARE))
      if with_files and not k.why then
        if M.check_space(work.path, size + budget, "the files") then k.files = {} else k.why = "no room for them" end
      end
      return k.dump
    end
  end
  local function give_up(why) -- the files are read again from the archive
    for _, f in ipairs(k.files) do os.remove(f.path) end
    k.files, k.why = nil, why
  end
  if with_db and with_files then
    function k.options.keep_file(uuid, size)
      if not budget then k.why = "files before the dump in the archive" end -- (kept all, or none)
      if not k.files then return nil end
      if #k.files >= M.KEEP_FILES then return give_up(("more than %d files"):format(M.KEEP_FILES)) end
      if k.bytes + size > budget then
        return give_up(("more than %d bytes of files (%s)"):format(budget, budget < M.KEEP_FILES_BYTES
          and ("%g of the dump's size"):format(M.KEEP_FILES_SHARE) or "at most"))
      end
      local path = ("%s/file-%s"):format(work.path, uuid)
      k.files[#k.files + 1] = { uuid = uuid, path = path, size = size }
      k.bytes = k.bytes + size
      return path
    end
  end
  return k
end

-- Uploads the files the archive's check kept (archive_keeper), many at once.
local function upload_kept(a, result)
  local files = a.kept.files
  local uploads <close> = a.store:uploader(a.transfer)
  local meter <close> = M.progress("uploading files", #files, { phase = "upload", bytes = a.kept.bytes })
  for _, f in ipairs(files) do
    assert(uploads:put(a.env.storage.bucket, M.object_key(a.env, f.uuid), { path = f.path }))
    result.files, result.bytes = result.files + 1, result.bytes + f.size
    meter.step(f.size)
  end
  assert(uploads:finish())
  return result
end

-- Reads the checked archive `a.input` (archive_input; `a.summary` its
-- validate summary) once more: the dump into `a.dump` (a path in the working
-- directory) when `a.with_db`, each file uploaded to where `a.env` keeps it
-- (`a.store`) when `a.with_files`. Many uploads run at once, fed from this
-- one read in bounded memory; the first failure stops them all (and aborts
-- unfinished multipart uploads). Every file is in place when it returns.
-- What the check kept (`a.kept`, archive_keeper's) is not read again: with
-- the dump and every file kept, the archive is not read a second time.
-- A database-only backup is not unpacked: its dump is the input's file.
-- Returns {dump = the dump's path, files =, bytes =}; raises on failure.
function M.unpack_archive(a)
  local summary, input = a.summary, a.input
  local result = { dump = a.dump, files = 0, bytes = 0 }
  if summary.kind == "dump" then
    result.dump = input.path
    return result
  end
  local kept = a.kept or {}
  local dump_wanted = a.with_db
  if dump_wanted and kept.dump then
    result.dump, dump_wanted = kept.dump, false
  end
  if a.with_files and kept.files then
    assert(#kept.files == summary.files and not dump_wanted, "the check kept some of the files only")
    return upload_kept(a, result)
  end
  if not dump_wanted and not a.with_files then return result end
  log.info("reading the archive again", { files = a.with_files and summary.files or nil,
    why = a.with_files and kept.why or nil })
  if dump_wanted then assert(M.check_space(a.work.path, summary.dump.size, "the database dump")) end
  local uploads <close> = a.with_files and a.store:uploader(a.transfer) or nil
  local r <close> = assert(input:reader())
  local meter <close> = M.progress(a.with_files and "uploading files" or "reading the dump",
    a.with_files and summary.files or nil, { phase = "upload", bytes = summary.compressed_bytes,
      poll = function() return r:info().bytes_in end })
  for entry in r:entries() do
    local place = backup_archive.classify(entry.name, entry.type)
    if place and place.kind == "dump" and dump_wanted then
      assert(entry:save(a.dump))
    elseif place and place.kind == "file" and a.with_files then
      assert(uploads:put(a.env.storage.bucket, M.object_key(a.env, place.uuid), entry))
      result.files, result.bytes = result.files + 1, result.bytes + entry.size
      meter.step(entry.size)
    end
  end
  if uploads then assert(uploads:finish()) end
  return result
end

-- Replaces the database's contents with the dump at `a.dump`, in one
-- transaction that also runs the restore_sql hook's SQL (a.hooks) after the
-- data is loaded (restore_database). The run's connection `a.db` is closed
-- first (the restore runs in its own session) and taken from the hooks'
-- context: a later hook that uses ctx.db gets a new connection. Raises on
-- failure.
function M.replace_database(a)
  local sql = a.hooks:restore_sql()
  if a.db then a.db:close() end
  a.hooks:forget("db")
  assert(M.restore_database(a.env, a.dump, sql))
end

-- --- the facade ------------------------------------------------------------------------

-- The steps of the parts are fields of wf (so that pairs, help and
-- completion see them); their settings (database.LIST_BATCH,
-- app.START_RETRY_SECONDS) are read and set through wf.
for _, part in ipairs(PARTS) do
  for k, v in pairs(part) do
    if type(v) == "function" then
      assert(M[k] == nil, "two steps named " .. k)
      M[k] = v
    end
  end
end
local function owner(k)
  for _, part in ipairs(PARTS) do if rawget(part, k) ~= nil then return part end end
end
setmetatable(M, {
  __index = function(_, k) local part = owner(k); return part and part[k] end,
  __newindex = function(t, k, v)
    local part = owner(k)
    if part then part[k] = v else rawset(t, k, v) end
  end,
})

return M
