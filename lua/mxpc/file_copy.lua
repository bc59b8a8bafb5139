-- Copying an environment's files into another environment's storage, with
-- no archive in between (the files of `copy`). Two ways:
--   server  the storage copies: S3 CopyObject (UploadPartCopy parts above
--           PART_THRESHOLD) signed with the target's credentials, or Azure's
--           Copy Blob from URL; no byte of the files passes through the tool;
--   stream  GETs from the source feed PUTs (or uploads in parts) to the
--           target at once, within the memory window; nothing touches disk.
-- decide{from =, to =} says which one a run takes and why; copy{...} copies.
-- from/to: {store = a client (storage.connect_storage), env = the environment
-- (its storage settings: env.storage)}. See docs/s3.md#copying-between-environments.
local errors = require "mxpc.error"
local log = require "mxpc.log"
local storage = require "mxpc.storage"

local M = {}

-- Objects above this are copied in parts (UploadPartCopy); S3's CopyObject
-- takes at most 5 GiB. Tests set a small value.
M.PART_THRESHOLD = 5 * 1024 * 1024 * 1024
M.PART_SIZE = 512 * 1024 * 1024
-- Copy Blob from URL takes at most 256 MiB; larger blobs are streamed.
M.AZURE_COPY_MAX = 256 * 1024 * 1024

local MODES = { auto = true, server = true, stream = true }

local function service(st) return st.service == "azure" and "azure" or "s3" end

-- "http://host:80" and "HTTP://Host/" are one endpoint
local function endpoint_id(e)
  local scheme, host, rest = tostring(e or ""):lower():match("^(https?)://([^/]+)(.*)$")
  if not scheme then return tostring(e or ""):lower() end
  host = host:gsub(":80$", scheme == "http" and "" or ":80"):gsub(":443$", scheme == "https" and "" or ":443")
  return scheme .. "://" .. host .. rest:gsub("/+$", "")
end

local function where(side) return ("%s://%s/%s"):format(service(side.env.storage) == "azure" and "azblob" or "s3",
  side.env.storage.bucket, side.env.storage.prefix or "") end

-- The first file of the set, for the probe: uuid, size (nil when empty).
local function first_file(files)
  if files and #files > 0 then return files:get(1) end
end

-- Which way a run copies, without writing anything: "server" or "stream",
-- and a sentence naming the check that decided; or nil, err (a bad mode, a
-- server copy no server could do). a: from, to, mode ("auto", "server",
-- "stream"), files (the first file's source object is probed with a HEAD
-- with the target's credentials; without files that is not checked).
function M.decide(a)
  local mode = a.mode or "auto"
  if not MODES[mode] then
    return nil, errors.new { code = "usage", message = ('copy mode "%s": use auto, server or stream'):format(tostring(mode)) }
  end
  local src, dst = a.from.env.storage, a.to.env.storage
  local ss, ds = service(src), service(dst)
  local function can_server()
    if ss ~= ds then
      return false, ("the source is in %s and the target in %s"):format(ss == "azure" and "Azure Blob Storage" or "S3",
        ds == "azure" and "Azure Blob Storage" or "S3")
    end
    if endpoint_id(src.endpoint) ~= endpoint_id(dst.endpoint) then
      return false, ("the source (%s) and the target (%s) are on different endpoints"):format(src.endpoint, dst.endpoint)
    end
    if ss == "s3" and (src.region or "us-east-1") ~= (dst.region or "us-east-1") then
      return false, ("the source's region (%s) is not the target's (%s)"):format(src.region, dst.region)
    end
    if ss == "azure" then
      if not src.sas then
        return false, "the source is reached with an account key or an identity, not a SAS, so the target's "
          .. "account cannot read it by URL (Copy Blob from URL)"
      end
      return true, ("both are on %s and the source is readable with its SAS (Copy Blob from URL)"):format(src.endpoint)
    end
    local uuid = first_file(a.files)
    if not uuid then
      return true, ("both are on %s (%s); with no file to probe, the target's read access to the source is not "
        .. "checked"):format(src.endpoint, src.region or "us-east-1")
    end
    local key = storage.object_key(a.from.env, uuid)
    local _, err = a.to.store:head(src.bucket, key)
    if err then
      return false, ("both are on %s, but the target's credentials cannot read the source's objects (HEAD s3://%s/%s "
        .. "with the target's credentials: %s)"):format(src.endpoint, src.bucket, key, err.message)
    end
    return true, ("both are on %s and the target's credentials can read the source's objects (HEAD s3://%s/%s with "
      .. "the target's credentials succeeded)"):format(src.endpoint, src.bucket, key)
  end
  if mode == "stream" then return "stream", "--copy-mode stream: streamed as asked" end
  local ok, why = can_server()
  if mode == "server" and not ok and (ss ~= ds or ss == "azure") then
    -- nothing on the server side could do it
    return nil, errors.new { code = "usage", message = "--copy-mode server is not possible: " .. why,
      hint = "use --copy-mode stream, or auto" }
  end
  if mode == "server" then
    return "server", ok and ("--copy-mode server: " .. why) or ("--copy-mode server, although " .. why)
  end
  return ok and "server" or "stream", why
end

-- Whether a failed copy says the source object is gone (a file deleted
-- since it was listed: reported and skipped, as backup does, unless strict).
local function gone(e)
  return e and (e.s3_code == "NoSuchKey" or e.s3_code == "BlobNotFound"
    or (e.s3_code == "CannotVerifyCopySource" and e.status == 404))
end

-- A source object that is gone: an error with a.strict, else recorded in
-- result.missing and reported. Returns true to go on, or nil, err.
local function missing(a, result, uuid)
  local key = storage.object_key(a.from.env, uuid)
  if a.strict then return nil, storage.missing_file(uuid, key) end
  result.missing[#result.missing + 1] = uuid
  log.warn("file not found in the source's storage, skipped", { uuid = uuid, key = key })
  return true
end

-- The on_item of the engines: counts and reports each file copied (size:
-- the item's, else what the engine says), skips a source object that is
-- gone; any other failure stops the copy.
local function on_item(a, result, failure)
  return function(item, res, e)
    if not res then
      if not gone(e) then return false end
      local ok, err = missing(a, result, item.uuid)
      if not ok then failure.err = err end
      return ok or false
    end
    local n = item.size or res.size or 0
    result.files, result.bytes = result.files + 1, result.bytes + n
    if a.on_file then a.on_file(item.uuid, n) end
    return true
  end
end

-- --- server-side ----------------------------------------------------------------------

local function copy_server_s3(a, result)
  local src, dst, failure = a.from.env.storage, a.to.env.storage, {}
  local ok, err = a.to.store:copy_many(src.bucket, a.files, {
    to_bucket = dst.bucket, concurrency = a.transfer.concurrency,
    part_threshold = a.part_threshold or M.PART_THRESHOLD, part_size = a.part_size or M.PART_SIZE,
    key = function(uuid) return storage.object_key(a.from.env, uuid) end,
    to_key = function(uuid) return storage.object_key(a.to.env, uuid) end,
    on_item = on_item(a, result, failure) })
  if not ok then return nil, failure.err or err end
  return result
end

-- Azure: Copy Blob from URL of ENDPOINT/CONTAINER/BLOB?SAS, many at once
-- (each is one request the service completes); blobs above AZURE_COPY_MAX
-- (its limit) are left in `large`, to be streamed.
local function copy_server_azure(a, result, large)
  local src, dst, failure = a.from.env.storage, a.to.env.storage, {}
  local blob_name = require("mxpc.azure_storage").blob_name
  local files = require("mxpc.fileset").new()
  for i = 1, #a.files do
    local uuid, size = a.files:get(i)
    if size and size > M.AZURE_COPY_MAX then large[#large + 1] = { uuid = uuid, size = size } else files:add(uuid, size) end
  end
  local ok, err = a.to.store:copy_many(src.bucket, files, {
    to_bucket = dst.bucket, concurrency = a.transfer.concurrency,
    source_url = src.endpoint, source_query = (src.sas:gsub("^%?", "")),
    key = function(uuid) return blob_name(src, uuid) end,
    to_key = function(uuid) return storage.object_key(a.to.env, uuid) end,
    on_item = on_item(a, result, failure) })
  if not ok then return nil, failure.err or err end
  return result
end

-- --- streamed -------------------------------------------------------------------------

-- One large object: its GET feeds an upload of unknown length (in parts,
-- aborted unless committed), a chunk at a time.
local function stream_one(a, uuid, size)
  local src, dst = a.from.env.storage, a.to.env.storage
  local key = storage.object_key(a.to.env, uuid)
  local up <close>, uerr = a.to.store:upload(dst.bucket, key, a.transfer)
  if not up then return nil, uerr end
  local werr
  local n, gerr = a.from.store:get(src.bucket, storage.object_key(a.from.env, uuid), function(chunk)
    local ok, e = up:write(chunk)
    if not ok then werr = e; error(e, 0) end
  end, { expected_size = size })
  if not n then return nil, werr or gerr end
  local ok, cerr = up:commit()
  if not ok then return nil, cerr end
  return n
end

local function copy_stream(a, result, files)
  local src, dst, failure = a.from.env.storage, a.to.env.storage, {}
  -- half the window for the GETs in flight, half for the uploads; an object
  -- larger than a quarter of the GETs' half is streamed on its own (it would
  -- be spilled to disk otherwise)
  local half = math.max(1, math.floor(a.transfer.window / 2))
  local small, large = require("mxpc.fileset").new(), {}
  for i = 1, #files do
    local uuid, size = files:get(i)
    if size and size > half // 4 then large[#large + 1] = { uuid = uuid, size = size } else small:add(uuid, size) end
  end
  if #small > 0 then
    local up <close> = a.to.store:uploader { concurrency = a.transfer.concurrency, window = half }
    local ok, err = a.from.store:get_many(src.bucket, small, up, {
      concurrency = a.transfer.concurrency, window = half, to_bucket = dst.bucket,
      key = function(uuid) return storage.object_key(a.from.env, uuid) end,
      to_key = function(uuid) return storage.object_key(a.to.env, uuid) end,
      on_item = on_item(a, result, failure) })
    if not ok then return nil, failure.err or err end
    ok, err = up:finish()
    if not ok then return nil, err end
  end
  for _, f in ipairs(large) do
    local n, err = stream_one(a, f.uuid, f.size)
    if not n and gone(err) then
      local ok, merr = missing(a, result, f.uuid)
      if not ok then return nil, merr end
    elseif not n then
      return nil, err
    end
    if n then
      result.files, result.bytes = result.files + 1, result.bytes + n
      if a.on_file then a.on_file(f.uuid, n) end
    end
  end
  return result
end

-- Copies the files (a fileset of uuid, size: storage.files_to_copy's) from
-- a.from to a.to. a.mode: "auto" (default), "server", "stream"; a.transfer:
-- wf.transfer_options(opts); a.on_file(uuid, bytes) after each file (when
-- streamed: once its bytes are handed to the upload; every upload is
-- finished before copy returns); a.part_threshold, a.part_size: of
-- UploadPartCopy (default PART_THRESHOLD, PART_SIZE). A source object that
-- is gone (deleted since it was listed) is reported and skipped (its UUID
-- in result.missing), or with a.strict an error (storage.missing_file).
-- Returns {files =, bytes =, mode =, why =, missing = {uuid, ...}}, or nil, err. A failure or a
-- signal stops everything in flight and leaves no unfinished upload in
-- parts; the files copied before it stay (a signal is raised).
function M.copy(a)
  assert(a.from and a.to and a.files, "file_copy.copy needs from, to and files")
  a.transfer = a.transfer or { concurrency = 16, window = 32 * 1024 * 1024 }
  local mode, why = M.decide(a)
  if not mode then return nil, why end
  log.info("copying files", { files = #a.files, mode = mode, from = where(a.from), to = where(a.to) })
  log.debug("copy mode: " .. why)
  local result = { files = 0, bytes = 0, mode = mode, why = why, missing = {} }
  local ok, r, err = pcall(function()
    if mode == "stream" then return copy_stream(a, result, a.files) end
    if service(a.to.env.storage) == "azure" then
      local large = {}
      local res, e = copy_server_azure(a, result, large)
      if not res or #large == 0 then return res, e end
      local rest = require("mxpc.fileset").new()
      for _, f in ipairs(large) do rest:add(f.uuid, f.size) end
      return copy_stream(a, result, rest)
    end
    return copy_server_s3(a, result)
  end)
  if not ok then
    if errors.is(r, "interrupted") or not errors.is(r) then error(r, 0) end
    return nil, r
  end
  return r, err
end

return M
