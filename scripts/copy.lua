-- The copy workflow: one environment's database and files straight into
-- another environment, with no archive in between. Called with:
--   { from = "NS/ENV", to = "NS/ENV", from_kubeconfig =, from_context =, to_kubeconfig =, to_context =,
--     copy_mode = "auto"|"server"|"stream", stop_app =, database_only =, files_only =, dry_run =,
--     safety_backup =, delete_extra_files =, files_larger_than =, files_smaller_than =,
--     files_changed_since =, files_of =, strict =, hooks = }
-- Everything restore offers applies to the target. The backup hooks
-- (before_backup, select_file, after_backup) see the source, the restore
-- hooks (before_restore, restore_sql, after_restore) the target.
-- The target's files are copied before its database is committed, and its
-- database is replaced in one transaction: a failure or a signal (Ctrl-C,
-- SIGTERM) before the commit leaves it as it was, and the app is started
-- again (docs/copy.md).
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local wf = require "mxpc.workflow"

local opts = ...
local started = os.time()
local with_db, with_files = not opts.files_only, not opts.database_only

-- 1. Check both sides before changing anything: the PostgreSQL programs,
--    both environments (refusing a copy onto itself), their databases and
--    their storage, and that the target's database can be replaced. The
--    checks go through the run's plan: they raise in a real run; a dry run
--    (--dry-run) makes them all, says what the copy would do, and stops
--    before it changes anything (mxpc.plan).
local plan <close> = wf.plan(opts, ("copy of %s into %s"):format(opts.from, opts.to))
plan:check(pg_programs.find_all(with_db and { "pg_dump" } or {}))
local target_opts = wf.side_options(opts, "to")
target_opts.safety_backup, target_opts.database_only = opts.safety_backup, opts.database_only
if plan:check(wf.check_safety_backup(target_opts)) and opts.safety_backup then
  plan:say("would first write a safety backup of the target to %s", opts.safety_backup)
end
local from, to = plan:check(wf.both_environments(opts))
if not from then return plan:finish() end
local src_db <close> = plan:check(wf.connect_database(from))
if src_db then assert(wf.check_files_of(src_db, opts.files_of)) end -- a usage error, also in a dry run
local src_store <close> = with_files and plan:check(wf.connect_storage(from)) or nil
local dst_db <close> = with_db and plan:check(wf.connect_database(to)) or nil
if dst_db and plan:check(wf.check_restorable(dst_db)) then
  plan:say("would replace the target's database with the source's, in one transaction")
end
local dst_store <close> = with_files and plan:check(wf.connect_storage(to)) or nil
local transfer = wf.transfer_options(opts)

-- 2. The target's app must be stopped (or is stopped for us, and started
--    again however the run ends); --safety-backup FILE backs the target up first.
local app <close> = wf.app_control(to)
plan:check(app:ensure_stopped(opts.stop_app))
if plan.dry then
  -- which files, chosen as the real run chooses them, and how they would be copied
  if with_files and src_db and src_store and dst_store then
    local hooks = wf.hooks(opts, "copy"):set { env = from, db = src_db, storage = src_store }
    local chosen = plan:check(wf.files_to_copy(src_db, src_store, from, hooks, opts, transfer))
    if chosen then
      local mode, why = plan:check(wf.copy_mode({ env = from, store = src_store }, { env = to, store = dst_store },
        opts.copy_mode, chosen.files))
      if mode then plan:say("would copy %d files (%d bytes)%s, %s (%s)", #chosen.files, chosen.files:bytes(),
        chosen.selected and (" (%s)"):format(chosen.selected) or "", mode, why) end
      if opts.delete_extra_files then
        local cmp = plan:check(wf.compare_storage(dst_store, to, { uuids = chosen.files }))
        if cmp then plan:say("--delete-extra-files would delete %d files the source lacks", #cmp.extra) end
      end
    end
  end
  return plan:finish()
end
assert(wf.safety_backup(target_opts))
local hooks = wf.hooks(opts, "copy")
local function sees(env, db, store) return hooks:set { env = env, db = db, storage = store } end
sees(from, src_db, src_store):call("before_backup")

-- 3. One point in time of the source: the files listed from the snapshot
--    its database is dumped from; then those --files-* and select_file take.
local snapshot <close> = assert(wf.source_snapshot(from, src_db))
local chosen = with_files and assert(wf.files_to_copy(snapshot.db, src_store, from, hooks, opts, transfer)) or nil
-- --delete-extra-files: the target's objects the source lacks, listed now
local extra = opts.delete_extra_files and assert(wf.compare_storage(dst_store, to, { uuids = chosen.files })).extra
  or nil
sees(to, dst_db, dst_store):call("before_restore")

-- 4. Stream the source's database (pg_dump of the snapshot, no file) into
--    the target's, in one transaction that is not committed yet.
local restore <close> = with_db and assert(wf.copy_database { from = from, to = to, snapshot = snapshot }) or nil

-- 5. Copy the files: server-side where the target can read the source's
--    objects on the same endpoint, else streamed GET -> PUT in memory.
local copied = { files = 0, bytes = 0, missing = {} }
if with_files then
  local meter <close> = wf.progress("copying files", #chosen.files, { phase = "copy", bytes = chosen.files:bytes() })
  copied = assert(wf.copy_files { from = { store = src_store, env = from }, to = { store = dst_store, env = to },
    files = chosen.files, mode = opts.copy_mode or "auto", transfer = transfer, strict = opts.strict,
    on_file = function(_, bytes) meter.step(bytes) end })
  for _, uuid in ipairs(chosen.missing) do copied.missing[#copied.missing + 1] = uuid end -- (gone when sized)
  -- the bytes of storage answers that passed through the tool: the files' when streamed, next to none server-side
  local function received(store) return store.stats and store:stats().bytes_in or 0 end
  copied.received = received(src_store) + received(dst_store)
  log.info("files copied", { files = copied.files, bytes = copied.bytes, mode = copied.mode, because = copied.why,
    received = copied.received })
end
if restore then assert(restore:loaded()) end
sees(from, src_db, src_store):call("after_backup", { files = copied.files, bytes = copied.bytes,
  missing = #copied.missing, selected = chosen and #chosen.files or 0, total = chosen and chosen.in_use or 0,
  seconds = os.time() - started })

-- 6. Every file is in place: commit the target's database, with the
--    restore_sql hook's SQL inside the same transaction.
if restore then
  local sql = sees(to, dst_db, dst_store):restore_sql()
  dst_db:close()
  hooks:forget("db")
  assert(restore:commit(sql))
end

-- 7. --delete-extra-files: only now that the files and the database are in place
local deleted = extra and assert(wf.delete_objects(dst_store, to, extra))

-- 8. Start the app again if it was stopped for the copy.
assert(app:start_again())

-- 9. Say what was done.
wf.too_late("the target's database had committed")
sees(to, nil, dst_store):call("after_restore", { from = opts.from, database = with_db, files = copied.files,
  bytes = copied.bytes, seconds = os.time() - started })
log.info("copy finished", { event = "summary", from = opts.from, to = opts.to, database = with_db,
  files = copied.files, bytes = copied.bytes, mode = with_files and copied.mode or nil, received = copied.received,
  missing = #copied.missing > 0 and #copied.missing or nil,
  deleted = deleted or nil, seconds = os.time() - started })
io.stdout:write(("copied %s/%s into %s/%s: %s%d files (%d bytes%s)%s%s%s\n"):format(
  from.namespace, from.name, to.namespace, to.name, with_db and "database, " or "", copied.files, copied.bytes,
  with_files and (", " .. copied.mode) or "",
  #copied.missing > 0 and (", %d files missing from the source's storage skipped"):format(#copied.missing) or "",
  deleted and (", %d files the source lacks deleted"):format(deleted) or "",
  opts.safety_backup and ("; safety backup in %s"):format(opts.safety_backup) or ""))
return 0
