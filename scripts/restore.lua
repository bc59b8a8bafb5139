-- The restore workflow: a Mendix Cloud backup archive (or a database-only
-- .backup file) -> an environment's database and files. Called with:
--   { namespace =, environment =, file =, stop_app =, database_only =, files_only =,
--     hooks =, dry_run =, safety_backup =, delete_extra_files =, kubeconfig =, context =,
--     archive_endpoint =, archive_region =, archive_profile = }
-- `file` is a path, "-" (standard input, copied into the private working
-- directory first) or "s3://BUCKET/KEY" (read once: the check keeps the dump
-- and the files when they are few and small against it; else it is read
-- again for the files).
-- Nothing is written anywhere before the whole archive has been checked, the
-- files are uploaded before the database is touched, and the database is
-- emptied and restored in one transaction: a failure leaves it as it was.
-- A signal (Ctrl-C, SIGTERM) before the commit ends the run with 130/143 and
-- the database as it was; once the COMMIT is sent it comes too late,
-- and the run finishes (docs/workflows.md).
local errors = require "mxpc.error"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local wf = require "mxpc.workflow"

local opts = ...
local started = os.time()

-- 1. Check the whole archive first: structure, layout, and pg_restore -l
--    (the PostgreSQL programs must be there before anything is changed, and
--    before standard input is read).
assert(pg_programs.find_all { "pg_restore" })
local work <close> = assert(wf.workdir(opts.file))
local input = assert(wf.archive_input(opts, work))
log.info("checking the archive", { file = input.name })
-- what the check keeps in the working directory, so that the archive is read
-- once: the dump, and the files while they are few and small; not in a dry
-- run (which writes nothing), nor before a safety backup (which needs the room)
local with_db, with_files = not opts.files_only, not opts.database_only
local keeps = not opts.dry_run and not opts.safety_backup
local kept = wf.archive_keeper(work, keeps and with_db, keeps and with_files)
local summary = assert(input:validate(setmetatable({ check_dump = true, uuids = true }, { __index = kept.options })))
for _, w in ipairs(summary.warnings or {}) do log.warn(w) end
log.info("archive is good", { files = summary.files or 0, dump_bytes = summary.dump and summary.dump.size })
if opts.files_only and summary.kind == "dump" then
  errors.raise("usage", input.name .. " is a database-only backup: it has no files to restore")
end
-- The run's checks go through its plan: they raise in a real run; a dry run
-- (--dry-run) makes them all, says what the restore would do, and stops
-- before it changes anything (mxpc.plan).
local plan <close> = wf.plan(opts, ("restore of %s into %s/%s"):format(opts.file, opts.namespace, opts.environment))
plan:say("archive: checked, %s%d files (%d bytes)", summary.dump and ("database dump of %d bytes, "):format(
  summary.dump.size) or "", summary.files or 0, summary.files_bytes or 0)
if plan:check(wf.check_safety_backup(opts)) and opts.safety_backup then
  plan:say("would first write a safety backup to %s", opts.safety_backup)
end
with_files = with_files and summary.kind ~= "dump"
if opts.delete_extra_files and not with_files then
  plan:refuse(errors.new { code = "usage", message = "--delete-extra-files: the restore leaves the files as they are "
    .. "(a database-only backup, or --database-only)" })
end

-- 2. Find the environment; it must be stopped, or --stop-app given. The app
--    is stopped for the database phase only (step 5): it runs on while the
--    files are uploaded and the dump unpacked. With --safety-backup (so that
--    the backup is consistent) or --files-only it is stopped now.
local env = plan:check(wf.resolve(opts))
if not env then return plan:finish() end
local app <close> = wf.app_control(env) -- starts the app again when closed, if it was stopped
if opts.safety_backup or not with_db then
  plan:check(app:ensure_stopped(opts.stop_app))
else
  plan:check(app:check(opts.stop_app))
end

-- 3. Check that the database and the storage answer, and that the database's
--    contents can be replaced, before changing anything.
local db <close> = with_db and plan:check(wf.connect_database(env)) or nil
if db and plan:check(wf.check_restorable(db)) then
  plan:say("would replace the database's contents with the archive's dump, in one transaction")
end
local store <close> = with_files and plan:check(wf.connect_storage(env)) or nil
-- --delete-extra-files: the objects the archive lacks, listed now (s3:ListBucket);
-- a dry run lists them anyway, to say what the restore would overwrite
local extra
if store and (opts.delete_extra_files or plan.dry) then
  local cmp, cerr = wf.compare_storage(store, env, summary)
  if cmp then
    extra = opts.delete_extra_files and cmp.extra or nil
    plan:say("would upload %d files (%d bytes): %d overwrite objects there, %d are new", summary.files or 0,
      summary.files_bytes or 0, cmp.present, (summary.files or 0) - cmp.present)
    plan:say("%d files in storage are not in the archive: %s", #cmp.extra, opts.delete_extra_files
      and "--delete-extra-files would delete them after the restore" or "they would stay (--delete-extra-files deletes them)")
  elseif opts.delete_extra_files or not errors.is(cerr, "forbidden") then
    plan:refuse(cerr)
  else
    plan:say("would upload %d files (%d bytes); how many overwrite objects is unknown: %s", summary.files or 0,
      summary.files_bytes or 0, cerr.message)
  end
end
if plan.dry then return plan:finish() end
-- --safety-backup FILE: the environment as it is now, with the backup workflow
assert(wf.safety_backup(opts))
local hooks = wf.hooks(opts, "restore"):set { env = env, db = db, storage = store }
hooks:call("before_restore")

-- 4. Upload each file to where the environment keeps it, from what the check
--    kept, or else from a second read of the archive (which then keeps the
--    dump too, if the check could not). Many uploads run at once in bounded
--    memory; the first failure stops them all (and aborts unfinished
--    multipart uploads).
local unpacked = wf.unpack_archive { input = input, summary = summary, dump = work.path .. "/db.backup", work = work,
  kept = kept, env = env, store = store, with_db = with_db, with_files = with_files,
  transfer = wf.transfer_options(opts) }
local uploaded, bytes = unpacked.files, unpacked.bytes

-- 5. Stop the app (--stop-app) and replace the database's contents in one
--    transaction, which also runs the restore_sql hook's SQL after the data
--    is loaded.
if with_db then
  assert(app:ensure_stopped(opts.stop_app))
  wf.replace_database { env = env, db = db, dump = unpacked.dump, hooks = hooks }
end

-- 6. --delete-extra-files: only now that every file and the database are restored
local deleted = extra and assert(wf.delete_objects(store, env, extra))

-- 7. Start the app again if it was stopped for the restore (retried while the
--    Kubernetes API is down; if that fails, the error says how to do it).
assert(app:start_again())

-- 8. Say what was done.
wf.too_late("the database restore had committed")
hooks:call("after_restore", { file = opts.file, database = with_db, files = uploaded, bytes = bytes,
  seconds = os.time() - started })
log.info("restore finished", { event = "summary", files = uploaded, bytes = bytes, seconds = os.time() - started })
io.stdout:write(("restored %s into %s/%s: %s%d files (%d bytes)%s%s\n"):format(
  input.name, env.namespace, env.name, with_db and "database, " or "", uploaded, bytes,
  deleted and (", %d files the archive lacks deleted"):format(deleted) or "",
  opts.safety_backup and ("; safety backup in %s"):format(opts.safety_backup) or ""))
return 0
