-- Archives that are read from elsewhere than a file or S3, for
-- workflow.archive_input: a Mendix Cloud snapshot (restore / inspect / verify
-- -f mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT], docs/mendix-cloud.md).
--
-- The Backups API prepares an archive of the snapshot (mxpc.mendix_cloud:
-- polled with a progress line), then the archive is read from its download
-- URL as a stream (mxpc.http's reader: ranged GETs, nothing on disk) — twice,
-- like an s3:// archive: checked whole, then restored. A URL that expires
-- while it is read is replaced by a fresh one (a new archive of the same
-- snapshot) and the read goes on from the same byte; the archive must then
-- be the same bytes (If-Match), or the read fails cleanly. A database-only
-- archive (a bare pg_dump file) is read once into the working directory,
-- since pg_restore needs a file, as for s3://.
local errors = require "mxpc.error"
local log = require "mxpc.log"
local progress = require "mxpc.progress"

local M = {}

-- `backup -f mendix-cloud://...`: the other direction is a file and the Portal.
function M.no_upload(spec)
  return errors.new { code = "usage", message = ("cannot back up to %s: Mendix Cloud takes archives only through "
    .. "the Mendix Portal, not through its API: back up to a file and upload that (backup --help says how)"):format(spec),
    hint = "back up to a file (-f app.tar.gz), then upload it in the Portal: Apps > the app > Backups > the "
      .. "environment > Upload Archive, and restore it there (see backup --help)" }
end

local PROBE = 512 -- bytes read first, to tell a tar.gz from a bare dump

-- A meter while Mendix Cloud prepares the snapshot and the archive: its label
-- says what is waited for and its state.
local function waiting()
  local meter = progress.start("wait", { label = "waiting for Mendix Cloud", unit = "polls" })
  return meter, function(what)
    return function(job)
      meter.label = ("waiting for Mendix Cloud: %s %s"):format(what, tostring(job.state))
      meter:step()
    end
  end
end

-- Fills `input` (workflow.archive_input's) for opts.file = mendix-cloud://...:
-- input.source() (a fresh source over the archive's URL for each read) or
-- input.path (a database-only archive, in `work`). -> true | nil, err
function M.mendix_cloud(input, opts, work)
  local mc = require "mxpc.mendix_cloud"
  local http = require "mxpc.http"
  local loc, err = mc.parse_location(opts.file)
  if not loc then return nil, err end
  local creds
  creds, err = mc.credentials(opts.mendix_credentials)
  if not creds then return nil, err end
  local client = mc.client { credentials = creds }
  local where
  where, err = client:resolve(loc)
  if not where then return nil, err end
  local data_type = opts.database_only and "database_only" or "files_and_database"
  local target = opts.namespace and opts.environment and (opts.namespace .. "/" .. opts.environment) or nil

  local function prepare(o)
    local meter <close>, on_state = waiting()
    local got, perr = client:prepare_archive(where, { data_type = data_type, new_snapshot = o.new_snapshot,
      target = target, on_state = on_state(o.what) })
    meter:finish(not got)
    return got, perr
  end
  local got
  got, err = prepare { new_snapshot = opts.new_snapshot, what = "the archive" }
  if not got then return nil, err end
  local snapshot = got.snapshot.snapshot_id
  where.snapshot = snapshot -- a fresh URL is of the same snapshot
  log.info("reading the archive of a Mendix Cloud snapshot", { event = "mendix_cloud_archive", snapshot = snapshot,
    created = got.snapshot.created_at, data_type = data_type })
  local url = got.url

  -- a 403 while reading: the URL has expired; a new archive of the snapshot
  -- gives a fresh one (the reader goes on from the same offset)
  local function renew(rerr)
    log.warn("the archive's download URL was refused; asking Mendix Cloud for a fresh one", { reason = rerr.message })
    local again, aerr = prepare { what = "a fresh archive URL" }
    if not again then return nil, aerr end
    url = again.url
    return url
  end

  local probe <close>, perr = http.reader(url, { range = PROBE, on_expired = renew })
  if not probe then return nil, perr end
  local head, herr = probe:read()
  if herr then return nil, herr end
  local size = probe:size()
  if head and head:sub(1, 5) == "PGDMP" then -- a database-only archive: pg_restore needs it as a file
    local workflow = require "mxpc.workflow"
    local space, serr = workflow.check_space(work.path, size or 0, "the database-only archive of " .. opts.file)
    if not space then return nil, serr end
    input.path = work.path .. "/download.backup"
    local f <close> = assert(io.open(input.path, "wb"))
    local r <close> = assert(http.reader(url, { on_expired = renew }))
    local meter <close> = progress.start("download", { label = "downloading the database-only archive",
      bytes = size, poll = function() return r:offset() end })
    while true do
      local chunk, cerr = r:read()
      if cerr then return nil, cerr end
      if not chunk then break end
      assert(f:write(chunk))
    end
    meter:finish()
    assert(f:close())
    return true
  end

  input.size = size
  local reads = 0
  function input.source()
    local r = assert(http.reader(url, { on_expired = renew }))
    reads = reads + 1
    if reads > 1 then return function() return r:read() end end
    -- the first read checks the whole archive: a meter of its bytes
    local meter = progress.start("check", { label = "checking the archive", bytes = size,
      poll = function() return r:offset() end })
    return function()
      local chunk, rerr = r:read()
      if not chunk then meter:finish(rerr ~= nil) end
      return chunk, rerr
    end
  end
  return true
end

return M
