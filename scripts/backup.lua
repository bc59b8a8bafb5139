-- The backup workflow: an environment's database and files -> a Mendix Cloud
-- backup archive. Called with the parsed options:
--   { namespace =, environment =, file =, force =, database_only =, compression_level =,
--     files_larger_than =, files_smaller_than =, files_changed_since =, files_of =, strict =,
--     hooks =, dry_run =, kubeconfig =, context =, archive_endpoint =, archive_region =, archive_profile = }
-- `file` is a path, "-" (standard output) or "s3://BUCKET/KEY".
-- Hooks (docs/hooks.md) change it without editing; or edit a copy
-- (mxpc-data-migration scripts export DIR) and run it with --scripts DIR.
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local wf = require "mxpc.workflow"

local opts = ...
local started = os.time()
-- The run's checks go through its plan: they raise in a real run; a dry run
-- (--dry-run) makes them all, says what the backup would write, and stops
-- before it writes anything (mxpc.plan).
local plan <close> = wf.plan(opts, ("backup of %s/%s into %s"):format(opts.namespace, opts.environment, opts.file))
-- what the run says goes to stderr when the archive itself goes to stdout
local report = opts.file == "-" and io.stderr or io.stdout

-- 1. Check that pg_dump is there and the archive can be written (a file, standard
--    output, an S3 key), find the environment, and check that its database
--    and storage answer, before any long work.
plan:check(pg_programs.find("pg_dump"))
local target = plan:check(wf.check_target(opts))
local env = plan:check(wf.resolve(opts))
if not env then return plan:finish() end
local db <close> = plan:check(wf.connect_database(env))
if db then assert(wf.check_files_of(db, opts.files_of)) end -- a usage error, also in a dry run
local store <close> = not opts.database_only and plan:check(wf.connect_storage(env)) or nil
local hooks = wf.hooks(opts, "backup"):set { env = env, db = db, storage = store }
hooks:call("before_backup")

-- --database-only: the bare custom-format dump Mendix Cloud calls a
-- database-only backup, written under a temporary name and then renamed.
if opts.database_only then
  if plan.dry then
    if db then plan:say("would write the database only, as a pg_dump -Fc file") end
    return plan:finish()
  end
  local work <close> = assert(wf.workdir(opts.file))
  assert(wf.check_dump_space(db, work.path))
  local dump_size = assert(wf.dump_database(env, work.path .. "/db.backup"))
  assert(wf.deliver_file(target, work.path .. "/db.backup")) -- from its end on, a signal comes too late
  wf.too_late("the backup was written")
  hooks:call("after_backup", { file = opts.file, database_only = true, database_bytes = dump_size, files = 0,
    bytes = 0, missing = 0, selected = 0, total = 0, seconds = os.time() - started })
  log.info("backup written", { event = "summary", file = target.name or opts.file, database_only = true,
    bytes = dump_size, seconds = os.time() - started })
  report:write(("database-only backup of %s/%s written to %s: %d bytes\n"):format(
    env.namespace, env.name, target.name or opts.file, dump_size))
  return 0
end
if not (db and store) then return plan:finish() end -- (only a dry run gets here)

local transfer = wf.transfer_options(opts)

-- 2. Dump the database into a private working directory beside the output
--    (in TMPDIR for standard output or S3);
--    pg_dump runs while the files are listed and copied (a dry run starts neither).
--    The dump and the list of files read one snapshot of the database
--    (export_snapshot): a file added meanwhile is in neither. Where the
--    server cannot share one (a standby, no right to pg_export_snapshot),
--    they are read at slightly different times, with a warning.
local work <close> = not plan.dry and assert(wf.workdir(opts.file)) or nil
if work then assert(wf.check_dump_space(db, work.path, wf.DUMP_LEVEL)) end
local snapshot <close> = work and assert(wf.source_snapshot(env, db)) or nil
local dump <close> = work and assert(wf.start_dump(env, work.path .. "/db.backup",
  { snapshot = snapshot.id, level = wf.DUMP_LEVEL })) or nil

-- 3. Which files are in use (FileDocument rows with contents), and their
--    sizes: from the database (the snapshot's), else asked of the storage;
--    then those that --files-* and the select_file hook take.
local facts = wf.database_facts(db)
local chosen = plan:check(wf.files_to_copy(snapshot and snapshot.db or db, store, env, hooks, opts, transfer))
if not chosen then return plan:finish() end
local files, missing, selected = chosen.files, chosen.missing, chosen.selected
if plan.dry then
  plan:say("would write the database and %d files (%d bytes)%s%s", #files, files:bytes(),
    #missing > 0 and (", skipping %d files missing from storage"):format(#missing) or "",
    selected and (" (%s)"):format(selected) or "")
  return plan:finish()
end

-- 4. Write the archive: .metadata and the dump as soon as pg_dump is done,
--    then each file as its download finishes (many at a time; files that
--    do not fit the memory window wait in the working directory). Nothing
--    valid appears before the commit: a file is renamed into place, an S3
--    upload is completed, standard output gets the archive's end.
local written = wf.write_archive { target = target, level = opts.compression_level, env = env, store = store,
  files = files, missing = missing, dump = dump, facts = facts, started = started, transfer = transfer, work = work,
  strict = opts.strict }
local dump_size, copied, copied_bytes = written.dump_bytes, written.files, written.bytes

-- 5. Say what was done.
wf.too_late("the backup was written")
hooks:call("after_backup", { file = opts.file, database_bytes = dump_size, files = copied, bytes = copied_bytes,
  missing = #missing, selected = #files, total = chosen.in_use, seconds = os.time() - started })
log.info("backup written", { event = "summary", file = target.name or opts.file, files = copied, missing = #missing,
  selected = selected and #files or nil, in_use = selected and chosen.in_use or nil, bytes = written.bytes_out,
  seconds = os.time() - started })
report:write(("backup of %s/%s written to %s: database %d bytes, %d files (%d bytes)%s%s\n"):format(
  env.namespace, env.name, target.name or opts.file, dump_size, copied, copied_bytes,
  selected and (", " .. selected) or "",
  #missing > 0 and (", %d missing files skipped"):format(#missing) or ""))
return 0
