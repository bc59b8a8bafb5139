-- The restore workflow: a Mendix Cloud backup archive (or a database-only
-- .backup file) -> an environment's database and files. Called with:
--   { namespace =, environment =, file =, stop_app =, database_only =, files_only =,
--     kubeconfig =, context =, archive_endpoint =, archive_region =, archive_profile = }
-- `file` is a path, "-" (standard input, copied into the private working
-- directory first) or "s3://BUCKET/KEY" (read twice: checked, then restored).
-- Nothing is written anywhere before the whole archive has been checked, the
-- files are uploaded before the database is touched, and the database is
-- emptied and restored in one transaction: a failure leaves it as it was.
local backup_archive = require "mxpc.backup_archive"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local wf = require "mxpc.workflow"

local opts = ...
local started = os.time()

-- 1. Check the whole archive first: structure, layout, and pg_restore -l.
local work <close> = assert(wf.workdir(opts.file))
local input = assert(wf.archive_input(opts, work))
log.info("checking the archive", { file = input.name })
local summary = assert(input:validate { check_dump = true })
for _, w in ipairs(summary.warnings or {}) do log.warn(w) end
log.info("archive is good", { files = summary.files or 0, dump_bytes = summary.dump and summary.dump.size })
if opts.files_only and summary.kind == "dump" then
  errors.raise("usage", input.name .. " is a database-only backup: it has no files to restore")
end

-- 2. Find the environment; it must be stopped (or stopped for us).
local env = assert(wf.resolve(opts))
local app <close> = assert(wf.ensure_stopped(env, opts.stop_app))

-- 3. Check that the database and the storage answer before changing anything.
local with_db, with_files = not opts.files_only, not opts.database_only and summary.kind ~= "dump"
local db <close> = with_db and assert(wf.connect_database(env)) or nil
local store <close> = with_files and assert(wf.connect_storage(env)) or nil

-- 4. Read the archive again: keep the dump in the private working directory,
--    upload each file to where the environment keeps it.
local dump = work.path .. "/db.backup"
local uploaded, bytes = 0, 0
if summary.kind == "dump" then
  dump = input.path
elseif with_db or with_files then
  if with_db then assert(wf.check_space(work.path, summary.dump.size, "the database dump")) end
  local progress = wf.progress("uploading files", summary.files or 0)
  local r <close> = assert(input:reader())
  for entry in r:entries() do
    local place = backup_archive.classify(entry.name, entry.type)
    if place and place.kind == "dump" and with_db then
      local f <close> = assert(io.open(dump, "wb"))
      for chunk in entry:chunks() do assert(f:write(chunk)) end
      assert(f:close())
    elseif place and place.kind == "file" and with_files then
      local key = wf.object_key(env, place.uuid)
      assert(store:put(env.storage.bucket, key, function() return entry:read(1024 * 1024) end, entry.size))
      uploaded, bytes = uploaded + 1, bytes + entry.size
      progress.step(entry.size)
    end
  end
end

-- 5. Replace the database's contents in one transaction.
if with_db then
  db:close() -- the restore runs in its own session
  assert(wf.restore_database(env, dump))
end

log.info("restore finished", { files = uploaded, bytes = bytes, seconds = os.time() - started })
io.stdout:write(("restored %s into %s/%s: %s%d files (%d bytes)\n"):format(
  input.name, env.namespace, env.name, with_db and "database, " or "", uploaded, bytes))
return 0
