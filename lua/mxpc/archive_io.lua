-- Where the archive is, and reading and writing it there: `-f` as a file,
-- standard output or input ("-"), or an S3 object (s3://BUCKET/KEY). The
-- checks a backup makes before any work (check_output, check_target), the
-- writer for a checked target, a finished file delivered, and the input a
-- restore reads twice (standard input spooled into the working directory
-- first). Reached through the wf.* facade (mxpc.workflow).
local backup_archive = require "mxpc.backup_archive"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"
local workdir = require "mxpc.workdir"

local M = {}

local function nonempty(s) return s ~= "" and s or nil end

-- --- the output file --------------------------------------------------------------------

-- Checks, before any work is done, that `path` can be written: its directory
-- exists, and it is not a directory nor (without force) an existing file.
function M.check_output(path, force)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local dst = fs.stat(dir)
  if not dst or dst.type ~= "directory" then
    return nil, errors.new { code = "not_found", message = ("cannot write %s: the directory %s does not exist"):format(
      path, dir), hint = "create it first, or choose another place for the backup" }
  end
  local st = fs.stat(path)
  if st and st.type == "directory" then
    return nil, errors.new { code = "exists", message = ("cannot write %s: it is a directory"):format(path),
      hint = "give the archive's file name, e.g. " .. path:gsub("/$", "") .. "/backup.tar.gz" }
  end
  if st and not force then
    return nil, errors.new { code = "exists", message = path .. " already exists",
      hint = "choose another file name, or use --force to replace it" }
  end
  return true
end

-- --- where the archive is --------------------------------------------------------------

-- `-f` names a file, "-" (standard output for a backup, standard input for a
-- restore), "s3://BUCKET/KEY", "azblob://ACCOUNT/CONTAINER/BLOB" (kind "s3"
-- with service "azure": the Azure client has the S3 client's methods) or
-- "mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT]" (a restore's source). Returns
-- {kind = "file" | "stdio" | "s3" | "mendix_cloud", ...} or raises a usage error.
function M.location(spec)
  if spec == "-" then return { kind = "stdio", spec = spec } end
  if spec:sub(1, 15) == "mendix-cloud://" then return { kind = "mendix_cloud", spec = spec } end
  if spec:sub(1, 5) == "s3://" then
    local bucket, key = spec:match("^s3://([^/]+)/(.+)$")
    if not bucket or key:sub(-1) == "/" then
      errors.raise("usage", ("%s is not an S3 object: write s3://BUCKET/KEY, e.g. s3://backups/app.tar.gz"):format(spec))
    end
    return { kind = "s3", spec = spec, bucket = bucket, key = key }
  end
  if spec:sub(1, 9) == "azblob://" then return require("mxpc.azure_storage").location(spec) end
  return { kind = "file", spec = spec, path = spec }
end

-- An S3 client for the archive's bucket: the usual AWS credential chain
-- (AWS_ACCESS_KEY_ID..., the shared credentials file with --archive-profile
-- or AWS_PROFILE), --archive-endpoint and --archive-region; for an azblob://
-- location (loc), an Azure client (mxpc.azure_storage).
local function archive_store(opts, loc)
  if loc and loc.service == "azure" then return require("mxpc.azure_storage").archive_client(loc, opts) end
  local s3 = require "mxpc.s3"
  return s3.client { endpoint = opts.archive_endpoint, region = opts.archive_region,
    profile = opts.archive_profile, ca_file = nonempty(os.getenv("SSL_CERT_FILE")),
    ca_dir = nonempty(os.getenv("SSL_CERT_DIR")) }
end
M.archive_store = archive_store

-- Checks, before any work, that the backup can be written where `-f` says:
-- a file (see check_output), standard output that is not a terminal, or an
-- S3 key that does not exist yet (unless --force) in a bucket that answers.
-- Returns the location, or nil, err.
function M.check_target(opts)
  local loc = M.location(opts.file)
  loc.force = opts.force
  local dry = require("mxpc.plan").dry()
  if loc.kind == "stdio" and dry then -- (the plan itself goes to standard output)
    dry:say("archive: would go to standard output")
    return loc
  end
  if loc.kind == "file" then
    local ok, err = M.check_output(loc.path, opts.force)
    if not ok then return nil, err end
  elseif loc.kind == "stdio" then
    if fs.isatty(1) then
      return nil, errors.new { code = "usage", message = "refusing to write the archive to a terminal",
        hint = "redirect standard output (-f - > backup.tar.gz), or give a file name with -f" }
    end
    loc.name = "standard output"
    M.stdout_to_stderr()
  elseif loc.kind == "mendix_cloud" then
    return nil, require("mxpc.archive_source").no_upload(loc.spec)
  else
    local store, err = archive_store(opts, loc)
    if not store then return nil, err end
    local head, herr = store:head(loc.bucket, loc.key)
    if not head and herr.s3_code == "ContainerNotFound" then return nil, herr end
    if head and not opts.force then
      return nil, errors.new { code = "exists", message = loc.spec .. " already exists",
        hint = "choose another key, or use --force to replace it" }
    end
    if not head and not errors.is(herr, "not_found") and not errors.is(herr, "forbidden") then return nil, herr end
    loc.store, loc.name = store, loc.spec
  end
  if dry then
    dry:say("archive: %s can be written%s", opts.file,
      loc.kind == "file" and fs.stat(opts.file) and " (it exists: --force replaces it)" or "")
  end
  return loc
end

-- Standard output carries only the archive: from now on file descriptor 1 is
-- stderr's, so what hooks or an edited script write there (print, io.write,
-- io.stdout, a shell or any program they start) goes to stderr
-- and cannot corrupt the archive. stdout_write below writes to standard
-- output as it was, through a descriptor of its own.
local archive_stdout
function M.stdout_to_stderr()
  if not archive_stdout then archive_stdout = assert(fs.reserve_stdout()) end
end

-- Writes to standard output (flushes without data). A consumer that went
-- away (EPIPE) or any other failure is an io error; a signal, an interruption.
local function stdout_write(data)
  M.stdout_to_stderr()
  local ok, err
  if data then ok, err = archive_stdout:write(data) else ok, err = archive_stdout:flush() end
  if ok then return true end
  runtime.check_interrupt()
  return nil, errors.new { code = "io", message = "cannot write to standard output: " .. tostring(err) }
end

-- An upload to an object store's target (loc.kind "s3"): without --force, an
-- object that appears meanwhile is not replaced (Azure: If-None-Match on the
-- commit). Its commit sends the last parts and waits for them with signals
-- still stopping it (the upload is then aborted: nothing is left), and defers
-- signals only from the commit on (CompleteMultipartUpload, Put Block List,
-- or the one PUT of a small object): a commit that was sent is never cut off,
-- so the run ends with the object complete and says a signal came too late.
local function target_upload(loc)
  local upload, err = loc.store:upload(loc.bucket, loc.key, not loc.force and { no_overwrite = true } or nil)
  if not upload then return nil, err end
  local commit = function()
    local ok, perr = upload:prepare_commit()
    if not ok then return nil, perr end
    runtime.defer_interrupts(true)
    return upload:commit()
  end
  return upload, commit
end

-- The backup archive writer for a checked target. Nothing valid appears
-- before commit: a file is renamed into place, an upload is completed; on
-- standard output a failed archive ends without its gzip trailer and tar end
-- marker, so whatever reads it sees a broken archive. From the commit on a
-- signal comes too late (see too_late): a file's or standard output's writer
-- defers signals as its commit begins, an upload once its parts are in.
function M.archive_writer(loc, opts)
  local defer = function() runtime.defer_interrupts(true) end
  if loc.kind == "file" then
    return backup_archive.writer(loc.path, { level = opts.level, force = opts.force, before_commit = defer })
  end
  local sink, before_commit, on_commit, on_close
  if loc.kind == "stdio" then
    sink = function(chunk) return stdout_write(chunk) end
    before_commit, on_commit = defer, function() return stdout_write() end
  else
    local upload, commit = target_upload(loc)
    if not upload then return nil, commit end
    log.info("uploading the archive", { to = loc.spec })
    sink = function(chunk) return upload:write(chunk) end
    on_commit = commit
    on_close = function() upload:close() end -- aborts the upload unless it was completed
  end
  return backup_archive.writer(sink, { name = loc.name, level = opts.level, before_commit = before_commit,
    on_commit = on_commit, on_close = on_close })
end

-- Delivers a finished file (a database-only dump) to the target. From its
-- point of no return on (the rename into place, the upload's completion once
-- its parts are in, standard output written and flushed), signals are
-- deferred: they come too late (see too_late). Before that a signal stops
-- it, and an upload leaves nothing behind.
function M.deliver_file(loc, path)
  if loc.kind == "file" then
    runtime.defer_interrupts(true)
    -- flushed and moved durably; an existing file is replaced only with --force
    return fs.commit_file(path, loc.path, { force = loc.force })
  elseif loc.kind == "s3" then
    local upload <close>, commit = target_upload(loc)
    if not upload then return nil, commit end
    local f <close>, oerr = io.open(path, "rb")
    if not f then return nil, errors.new { code = "io", message = oerr } end
    while true do
      local chunk = f:read(1024 * 1024)
      if not chunk then break end
      local ok, werr = upload:write(chunk)
      if not ok then return nil, werr end
    end
    local ok, cerr = commit()
    if not ok then return nil, cerr end
    return true
  end
  local f <close>, err = io.open(path, "rb")
  if not f then return nil, errors.new { code = "io", message = err } end
  while true do
    local chunk = f:read(1024 * 1024)
    if not chunk then break end
    local ok, werr = stdout_write(chunk)
    if not ok then return nil, werr end
  end
  local ok, ferr = stdout_write()
  if not ok then return nil, ferr end
  runtime.defer_interrupts(true)
  return true
end

local STDIN_HINT = "pipe a backup archive (.tar.gz) or a database-only backup (pg_dump's custom format) in, "
  .. "e.g. mxpc-data-migration restore ... -f - < backup.tar.gz"

local function not_an_archive(what)
  return nil, errors.new { code = "archive_invalid",
    message = "standard input is not a backup archive: " .. what, hint = STDIN_HINT }
end

-- The first bytes of `head` in hex, for a message.
local function hex(head)
  return (head:sub(1, 8):gsub(".", function(c) return ("%02x "):format(c:byte()) end):gsub(" $", ""))
end

-- Copies standard input into `path` (in the private working directory),
-- checking the free space before and while it does, and what arrives as it
-- arrives: a database-only backup starts with PGDMP; anything else must be a
-- tar archive (gzip-compressed: 1f 8b; plain: "ustar" in its first header)
-- whose entries are read as they come (each in the backup layout, the gzip
-- data intact, the end of the archive there), so that input that is not an
-- archive (/dev/zero, a log) is refused at once and a broken one as soon as
-- it breaks, not after it filled the disk. Returns the size.
local function spool_stdin(path)
  local dir = path:match("^(.*)/[^/]*$")
  local ok, err = workdir.check_space(dir, 0, "the archive read from standard input")
  if not ok then return nil, err end
  log.info("reading the archive from standard input into the working directory", { file = path })
  local f <close>, oerr = io.open(path, "wb")
  if not f then return nil, errors.new { code = "io", message = oerr } end
  local size, checked = 0, 0
  -- the next chunk of standard input, written to the spool file: chunk, or nil
  -- at the end, or nil, err
  local function next_chunk()
    local chunk, rerr = io.stdin:read(1024 * 1024)
    if not chunk and rerr then
      runtime.check_interrupt()
      return nil, errors.new { code = "io", message = "cannot read standard input: " .. rerr }
    end
    if not chunk then return nil end
    if size - checked >= 16 * 1024 * 1024 then
      checked = size
      local room, serr = workdir.check_space(dir, #chunk, "the archive read from standard input")
      if not room then return nil, serr end
    end
    local wok, werr = f:write(chunk)
    if not wok then return nil, errors.new { code = "io", message = ("cannot write %s: %s"):format(path, werr) } end
    size = size + #chunk
    return chunk
  end
  -- the first 512 bytes (a tar header), or all there is
  local parts, head = {}, ""
  while #head < 512 do
    local chunk, cerr = next_chunk()
    if cerr then return nil, cerr end
    if not chunk then break end
    parts[#parts + 1] = chunk
    head = table.concat(parts)
  end
  if size == 0 then
    return nil, errors.new { code = "archive_invalid", message = "standard input is empty: no archive to restore",
      hint = "pipe the archive in, e.g. mxpc-data-migration restore ... -f - < backup.tar.gz" }
  end
  if head:sub(1, 5) == "PGDMP" then -- a database-only backup: pg_restore checks it
    repeat
      local chunk, cerr = next_chunk()
      if cerr then return nil, cerr end
    until not chunk
  elseif head:sub(1, 2) == "\31\139" or head:sub(258, 262) == "ustar" then
    local pending = head
    local archive = require "mxpc.archive"
    local r <close>, rerr = archive.reader(function()
      if pending then
        local first = pending
        pending = nil
        return first
      end
      return next_chunk()
    end, { name = "standard input" })
    if not r then return nil, rerr end
    local entries = 0
    while true do
      local e, eerr = r:next()
      if eerr then return nil, eerr end
      if not e then break end
      entries = entries + 1
      local placed, why = backup_archive.classify(e.name, e.type)
      if not placed then
        return not_an_archive(("entry %s: %s"):format(archive.quote(e.name), why))
      end
    end
    if entries == 0 then return not_an_archive("a tar archive without entries") end
  else
    return not_an_archive(("it starts with the bytes %s, not with those of a .tar.gz archive (1f 8b) or of a "
      .. "database-only backup (PGDMP)"):format(hex(head)))
  end
  local cok, cerr = f:close()
  if not cok then return nil, errors.new { code = "io", message = ("cannot write %s: %s"):format(path, cerr) } end
  log.info("archive read from standard input", { bytes = size })
  return size
end

-- A source over an S3 object for mxpc.archive's reader: ranges of 8 MiB,
-- each pinned to the ETag the object had at first, so two reads (the check,
-- then the restore) see the same bytes or fail.
local RANGE = 8 * 1024 * 1024
local function s3_source(store, loc, size, etag)
  local pos, queue, qi = 0, {}, 1
  return function()
    while qi > #queue do
      if pos >= size then return nil end
      local n = math.min(RANGE, size - pos)
      queue, qi = {}, 1
      local ok, err = store:get(loc.bucket, loc.key, function(chunk) queue[#queue + 1] = chunk end,
        { offset = pos, length = n, if_match = etag })
      if not ok then return nil, err end
      pos = pos + n
    end
    qi = qi + 1
    return queue[qi - 1]
  end
end

-- The archive to restore, from where `-f` says. A file is read where it is;
-- standard input is first copied into the working directory `work` (it can
-- be read only once, and a restore may read the archive twice: checked, then
-- the files); an S3 object is read the same version each time (a database-only
-- dump is downloaded into `work`). Returns an input with `name`,
-- `input:validate(opts)`, `input:reader()` and `input.path` (a local copy,
-- when there is one), or nil, err.
function M.archive_input(opts, work)
  local loc = M.location(opts.file)
  local input = { name = loc.spec }
  if loc.kind == "file" then
    if not fs.stat(loc.path) then
      return nil, errors.new { code = "not_found", message = ("backup file %s does not exist"):format(loc.path) }
    end
    input.path = loc.path
  elseif loc.kind == "stdio" then
    if fs.isatty(0) then
      return nil, errors.new { code = "usage", message = "standard input is a terminal, not an archive",
        hint = "pipe or redirect the archive in (-f - < backup.tar.gz), or give a file name with -f" }
    end
    input.name = "standard input"
    input.path = work.path .. "/archive"
    local size, err = spool_stdin(input.path)
    if not size then return nil, err end
  elseif loc.kind == "mendix_cloud" then -- read from its download URL (mxpc.archive_source)
    local ok, err = require("mxpc.archive_source").mendix_cloud(input, opts, work)
    if not ok then return nil, err end
  else
    local store, err = archive_store(opts, loc)
    if not store then return nil, err end
    local head, herr = store:head(loc.bucket, loc.key)
    if not head then return nil, herr end
    local first = {}
    local ok, ferr = store:get(loc.bucket, loc.key, function(c) first[#first + 1] = c end,
      { offset = 0, length = math.min(head.size, 5), if_match = head.etag })
    if not ok then return nil, ferr end
    if table.concat(first) == "PGDMP" then -- a database-only backup: pg_restore needs it as a file
      local space, serr = workdir.check_space(work.path, head.size, "the database-only backup " .. loc.spec)
      if not space then return nil, serr end
      input.path = work.path .. "/download.backup"
      local got, gerr = store:get(loc.bucket, loc.key, input.path, { expected_size = head.size })
      if not got then return nil, gerr end
    else
      input.store, input.loc, input.size, input.etag = store, loc, head.size, head.etag
    end
  end
  function input:reader()
    local archive = require "mxpc.archive"
    if self.path then return archive.reader(self.path, { name = self.name }) end
    if self.source then return archive.reader(self:source(), { name = self.name }) end
    return archive.reader(s3_source(self.store, self.loc, self.size, self.etag), { name = self.name })
  end
  function input:validate(vopts)
    local summary, err
    if self.path then
      summary, err = backup_archive.validate(self.path, vopts)
    else
      local r <close>, rerr = self:reader()
      if not r then return nil, rerr end
      summary, err = backup_archive.validate(r, vopts)
    end
    -- messages name the archive as the user gave it, not a copy of it
    if err and self.path and self.name ~= self.path then
      local at = err.message:find(self.path, 1, true)
      if at then err.message = err.message:sub(1, at - 1) .. self.name .. err.message:sub(at + #self.path) end
    end
    if summary then summary.file = self.name end
    return summary, err
  end
  return input
end

return M
