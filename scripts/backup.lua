-- The backup workflow: an environment's database and files -> a Mendix Cloud
-- backup archive. Called with the parsed options:
--   { namespace =, environment =, file =, force =, database_only =, kubeconfig =, context =,
--     archive_endpoint =, archive_region =, archive_profile = }
-- `file` is a path, "-" (standard output) or "s3://BUCKET/KEY".
-- Edit a copy (mxpc-data-migration scripts export DIR) to filter files or add
-- steps; run it with --scripts DIR.
local errors = require "mxpc.error"
local log = require "mxpc.log"
local wf = require "mxpc.workflow"

local opts = ...
local started = os.time()
-- what the run says goes to stderr when the archive itself goes to stdout
local report = opts.file == "-" and io.stderr or io.stdout

-- 1. Check that the archive can be written, find the environment, and check
--    that its database and storage answer, before any long work.
local target = assert(wf.check_target(opts))
local env = assert(wf.resolve(opts))
local db <close> = assert(wf.connect_database(env))

-- --database-only: the bare custom-format dump Mendix Cloud calls a
-- database-only backup, written under a temporary name and then renamed.
if opts.database_only then
  local work <close> = assert(wf.workdir(opts.file))
  local dump_size = assert(wf.dump_database(env, work.path .. "/db.backup"))
  assert(wf.deliver_file(target, work.path .. "/db.backup"))
  report:write(("database-only backup of %s/%s written to %s: %d bytes\n"):format(
    env.namespace, env.name, target.name or opts.file, dump_size))
  return 0
end

local store <close> = assert(wf.connect_storage(env))

-- 2. Which files are in use (FileDocument rows with contents).
local files = assert(wf.list_files(db))
local facts = wf.database_facts(db)

-- 3. Dump the database into a private working directory beside the output.
local work <close> = assert(wf.workdir(opts.file))
local dump = work.path .. "/db.backup"
local dump_size = assert(wf.dump_database(env, dump))

-- 4. Look up each file's size; a file that is gone is reported, not fatal
--    (an app may delete temporary files while the backup runs).
local present, missing, files_size = {}, {}, 0
for _, uuid in ipairs(files) do
  local key = wf.object_key(env, uuid)
  local head, err = store:head(env.storage.bucket, key)
  if head then
    present[#present + 1] = { uuid = uuid, key = key, size = head.size }
    files_size = files_size + head.size
  elseif errors.is(err, "not_found") then
    missing[#missing + 1] = uuid
    log.warn("file not found in storage, skipped", { uuid = uuid, key = key })
  else
    error(err, 0)
  end
end

-- 5. Write the archive: .metadata, the dump, then the files streamed from S3.
local out <close> = assert(wf.archive_writer(target, { force = opts.force }))
assert(out:add_metadata {
  duration = os.time() - started, dumpSize = dump_size, modelVersion = facts.model_version,
  databaseSize = facts.size, filesSize = files_size,
})
assert(out:add_dump(dump))
local progress = wf.progress("copying files", #present)
for _, f in ipairs(present) do
  local entry = assert(out:begin_file(f.uuid, f.size))
  assert(store:get(env.storage.bucket, f.key, function(chunk) return entry:write(chunk) end,
    { expected_size = f.size }))
  assert(entry:finish())
  progress.step(f.size)
end
assert(out:commit())

-- 6. Say what was done.
log.info("backup written", { file = opts.file, files = #present, missing = #missing,
  bytes = out:stats().bytes_out, seconds = os.time() - started })
report:write(("backup of %s/%s written to %s: database %d bytes, %d files (%d bytes)%s\n"):format(
  env.namespace, env.name, target.name or opts.file, dump_size, #present, files_size,
  #missing > 0 and (", %d missing files skipped"):format(#missing) or ""))
return 0
