-- The backup workflow: an environment's database and files -> a Mendix Cloud
-- backup archive. Called with the parsed options:
--   { namespace =, environment =, file =, force =, database_only =, compression_level =,
--     files_larger_than =, files_smaller_than =, files_changed_since =, files_of =, strict =,
--     hooks =, dry_run =, kubeconfig =, context =, archive_endpoint =, archive_region =, archive_profile = }
-- `file` is a path, "-" (standard output) or "s3://BUCKET/KEY".
-- Hooks (docs/hooks.md) change it without editing; or edit a copy
-- (mxpc-data-migration scripts export DIR) and run it with --scripts DIR.
local errors = require "mxpc.error"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local runtime = require "mxpc.runtime"
local wf = require "mxpc.workflow"

local opts = ...
local started = os.time()
-- --dry-run: check what the backup needs and say what it would write, write nothing
if opts.dry_run then return require("mxpc.dry_run").backup(opts) end
-- what the run says goes to stderr when the archive itself goes to stdout
local report = opts.file == "-" and io.stderr or io.stdout

-- 1. Check that pg_dump is there and the archive can be written (a file, standard
--    output, an S3 key), find the environment, and check that its database
--    and storage answer, before any long work.
assert(pg_programs.find("pg_dump"))
local target = assert(wf.check_target(opts))
local env = assert(wf.resolve(opts))
local db <close> = assert(wf.connect_database(env))
assert(wf.check_files_of(db, opts.files_of))
local store <close> = not opts.database_only and assert(wf.connect_storage(env)) or nil
local hooks = wf.hooks(opts, "backup"):set { env = env, db = db, storage = store }
hooks:call("before_backup")

-- --database-only: the bare custom-format dump Mendix Cloud calls a
-- database-only backup, written under a temporary name and then renamed.
if opts.database_only then
  local work <close> = assert(wf.workdir(opts.file))
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

local transfer = wf.transfer_options(opts)

-- 2. Dump the database into a private working directory beside the output
--    (in TMPDIR for standard output or S3);
--    pg_dump runs while the files are listed and copied.
local work <close> = assert(wf.workdir(opts.file))
local dump <close> = assert(wf.start_dump(env, work.path .. "/db.backup"))

-- 3. Which files are in use (FileDocument rows with contents), and their
--    sizes: from the database, else asked of the storage; then those that
--    --files-* and the select_file hook take.
local facts = wf.database_facts(db)
local chosen = assert(wf.files_to_copy(db, store, env, hooks, opts, transfer))
local files, missing, selected = chosen.files, chosen.missing, chosen.selected
local files_size = files:bytes()

-- 4. Write the archive: .metadata and the dump as soon as pg_dump is done,
--    then each file as its download finishes (many at a time; files that
--    do not fit the memory window wait in the working directory). Nothing
--    valid appears before the commit: a file is renamed into place, an S3
--    upload is completed, standard output gets the archive's end.
local out <close> = assert(wf.archive_writer(target, { force = opts.force, level = opts.compression_level }))
local dump_size
local function add_database(must)
  if not must and not dump.ended() then return false end
  dump_size = assert(dump.finish())
  assert(out:add_metadata {
    duration = os.time() - started, dumpSize = dump_size, modelVersion = facts.model_version,
    databaseSize = facts.size, filesSize = files_size,
  })
  assert(out:add_dump(dump.path))
  return true
end
local progress <close> = wf.progress("copying files", #files, { phase = "copy", bytes = files_size })
local copied, copied_bytes = 0, 0
assert(out:add_files_from(store, env.storage.bucket, files, {
  concurrency = transfer.concurrency, window = transfer.window, spill_dir = work.path, ready = add_database,
  key = function(uuid) return wf.object_key(env, uuid) end,
  on_item = function(f, res, err)
    if res then
      copied, copied_bytes = copied + 1, copied_bytes + res.size
      progress.step(res.size)
      return true
    end
    if not errors.is(err, "not_found") then return false end
    if opts.strict then error(wf.missing_file(f.uuid, f.key), 0) end -- a complete archive or none
    -- deleted since it was listed: reported, not fatal
    missing[#missing + 1] = f.uuid
    log.warn("file not found in storage, skipped", { uuid = f.uuid, key = f.key })
    return true
  end,
}))
if not dump_size then add_database(true) end
runtime.defer_interrupts(true) -- from the commit on, a signal comes too late
assert(out:commit())

-- 5. Say what was done.
wf.too_late("the backup was written")
hooks:call("after_backup", { file = opts.file, database_bytes = dump_size, files = copied, bytes = copied_bytes,
  missing = #missing, selected = #files, total = chosen.in_use, seconds = os.time() - started })
log.info("backup written", { event = "summary", file = target.name or opts.file, files = copied, missing = #missing,
  selected = selected and #files or nil, in_use = selected and chosen.in_use or nil, bytes = out:stats().bytes_out,
  seconds = os.time() - started })
report:write(("backup of %s/%s written to %s: database %d bytes, %d files (%d bytes)%s%s\n"):format(
  env.namespace, env.name, target.name or opts.file, dump_size, copied, copied_bytes,
  selected and (", " .. selected) or "",
  #missing > 0 and (", %d missing files skipped"):format(#missing) or ""))
return 0
