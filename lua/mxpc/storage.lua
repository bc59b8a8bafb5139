-- The environment's file storage: connecting (checked with one request),
-- the key of a file, which files a backup copies (chosen and sized), and the
-- objects a restore compares and deletes (--delete-extra-files).
-- Reached through the wf.* facade (mxpc.workflow).
local backup_archive = require "mxpc.backup_archive"
local environment = require "mxpc.environment"
local errors = require "mxpc.error"
local fileset = require "mxpc.fileset"
local log = require "mxpc.log"
local progress = require "mxpc.progress"
local database = require "mxpc.database"
local selection = require "mxpc.selection"

local M = {}

local function nonempty(s) return s ~= "" and s or nil end

function M.object_key(env, uuid) return environment.object_key(env.storage, uuid) end

-- A client for the storage's service, checked with one cheap request.
local function connect(st)
  if st.service == "azure" then return require("mxpc.azure_storage").connect(st) end
  local client, err = require("mxpc.s3").client { endpoint = st.endpoint, region = st.region or "us-east-1",
    access_key = st.access_key, secret_key = st.secret_key, path_style = not st.virtual_host,
    ca_file = nonempty(os.getenv("SSL_CERT_FILE")), ca_dir = nonempty(os.getenv("SSL_CERT_DIR")) }
  if not client then return nil, err end
  -- one cheap request proves the address, TLS and the signature before any
  -- long work; without ListBucket a missing key may answer 403, which is fine
  local _, perr = client:head(st.bucket, st.prefix .. ".mxpc-probe")
  if perr and not errors.is(perr, "not_found") and not errors.is(perr, "forbidden") then return nil, perr end
  return client
end

function M.connect_storage(env)
  local client, err = connect(env.storage)
  if not client then return nil, err end
  local dry = require("mxpc.plan").dry()
  if dry then dry:say("%s: answers", env.role and (env.role .. " storage") or "storage") end
  return client
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
  local selects = require("mxpc.hooks").selector(hooks, opts)
  local files, unknown, waiting, twice = fileset.new(), fileset.new(), {}, 0
  local function take(uuid, size)
    if not files:add(uuid, size) then twice = twice + 1 end
  end
  local in_use, err = database.list_files(db, function(f)
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
    selected = ("%s of %s files selected"):format(selection.thousands(#files), selection.thousands(in_use))
    log.info(selected)
  end
  return { files = files, in_use = in_use, missing = missing, selected = selected }
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

return M
