-- The Mendix Cloud backup archive (docs/archive.md): which entries go where,
-- the .metadata file, the database dump's header, and the validation pass
-- that every archive passes before anything is restored from it.
--
-- The tar.gz mechanics are in mxpc.archive (C); every decision about the
-- format is here, so that a correction is made in one place:
--   .metadata                  JSON, every value a string
--   db/db.backup               pg_dump -Fc (custom format)
--   tree/<u[1-2]>/<u[3-4]>/<u> one entry per file, named by its UUID u
--                              (older archives: flat tree/<u>; read both)
-- A database-only backup is a bare custom-format dump (starts with PGDMP).
local archive = require "mxpc.archive"
local cjson = require "cjson"
local errors = require "mxpc.error"
local fileset = require "mxpc.fileset"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local pg_programs = require "mxpc.pg_programs"
local process = require "mxpc.process"
local progress = require "mxpc.progress"
local runtime = require "mxpc.runtime"

local M = {}

M.METADATA = ".metadata"
M.DUMP = "db/db.backup"
M.METADATA_LIMIT = 64 * 1024
-- in the documented order, which build_metadata keeps
M.METADATA_KEYS = { "duration", "dumpSize", "modelVersion", "databaseSize", "filesSize" }
-- Mendix Cloud restores dumps up to this archive version (pg_dump 12-15);
-- pg_dump 16 writes 1.15
M.MENDIX_CLOUD_MAX_DUMP = { 1, 14 }

local quote = archive.quote

local function invalid(fmt, ...)
  return nil, errors.new { code = "archive_invalid", message = fmt:format(...) }
end

-- "<archive>: entry "<name>": <problem>", the shape of every entry error
local function entry_invalid(src, name, fmt, ...)
  return invalid("%s: entry %s: " .. fmt, src, quote(name), ...)
end

-- --- names -----------------------------------------------------------------

local HEX = "[0-9a-fA-F]"
local UUID_PATTERN = "^" .. HEX:rep(8) .. "%-" .. HEX:rep(4) .. "%-" .. HEX:rep(4) .. "%-" .. HEX:rep(4) ..
    "%-" .. HEX:rep(12) .. "$"

function M.is_uuid(s) return type(s) == "string" and s:match(UUID_PATTERN) ~= nil end

-- The entry name of the file with this UUID (nested form, which we write).
function M.file_path(uuid)
  if not M.is_uuid(uuid) then error(("not a UUID: %s"):format(quote(tostring(uuid))), 2) end
  return ("tree/%s/%s/%s"):format(uuid:sub(1, 2), uuid:sub(3, 4), uuid)
end

-- Strips what does not change the meaning of a name: leading "./" (tar -C
-- dir .) and a directory's trailing "/".
local function normalize(name)
  while name:sub(1, 2) == "./" do name = name:sub(3) end
  if name == "." then return "" end
  return (name:gsub("/$", ""))
end

-- tree/xx/yy/<uuid> or tree/<uuid> -> uuid, "nested" | "flat"; or nil, why
function M.uuid_from_path(path)
  local rest = normalize(path):match("^tree/(.+)$")
  if not rest then return nil, "not under tree/" end
  local a, b, u = rest:match("^([^/]+)/([^/]+)/([^/]+)$")
  if not a then
    u = rest:match("^[^/]+$")
    if not u then return nil, "not part of the backup archive layout (expected tree/xx/yy/<uuid> or tree/<uuid>)" end
    if not M.is_uuid(u) then return nil, "file name is not a UUID" end
    return u, "flat"
  end
  if not M.is_uuid(u) then return nil, "file name is not a UUID" end
  if a ~= u:sub(1, 2) or b ~= u:sub(3, 4) then
    return nil, ("directories do not match the UUID (expected %s)"):format(M.file_path(u))
  end
  return u, "nested"
end

local LAYOUT_HELP = "not part of the backup archive layout (expected .metadata, db/db.backup or tree/<uuid>)"

-- Places an entry in the layout: {kind = "metadata" | "dump" | "file" |
-- "directory", key = normalized name, uuid, form}, or nil, why.
function M.classify(name, type)
  local key = normalize(name)
  if name:find("//", 1, true) or key:find("[%c]") then return nil, LAYOUT_HELP end
  if type == "directory" then
    if key == "" or key == "db" or key == "tree" or key:match("^tree/" .. HEX .. HEX .. "$") or
        key:match("^tree/" .. HEX .. HEX .. "/" .. HEX .. HEX .. "$") then
      return { kind = "directory", key = key }
    end
    return nil, LAYOUT_HELP
  end
  if key == M.METADATA then return { kind = "metadata", key = key } end
  if key == M.DUMP then return { kind = "dump", key = key } end
  if key:match("^tree/") then
    local uuid, form = M.uuid_from_path(key)
    if not uuid then return nil, form end
    return { kind = "file", key = key, uuid = uuid, form = form }
  end
  return nil, LAYOUT_HELP
end

-- --- .metadata ---------------------------------------------------------------

local function metadata_string(k, v)
  if math.type(v) == "integer" then return ("%d"):format(v) end
  if math.type(v) == "float" and v == math.floor(v) and v >= 0 and v < 2 ^ 63 then
    return ("%d"):format(math.tointeger(v))
  end
  if type(v) == "string" then return v end
  error(("metadata field '%s' must be a string or an integer, got %s"):format(k, type(v)), 3)
end

-- {duration=, dumpSize=, ...} (numbers or strings) -> the JSON text, every
-- value a string, documented keys first in their order, then any others.
function M.build_metadata(meta)
  local parts, known = {}, {}
  for _, k in ipairs(M.METADATA_KEYS) do
    if meta[k] == nil then error(("metadata field '%s' is missing"):format(k), 2) end
    parts[#parts + 1] = cjson.encode(k) .. ":" .. cjson.encode(metadata_string(k, meta[k]))
    known[k] = true
  end
  local extra = {}
  for k in pairs(meta) do
    if not known[k] then extra[#extra + 1] = k end
  end
  table.sort(extra)
  for _, k in ipairs(extra) do
    parts[#parts + 1] = cjson.encode(k) .. ":" .. cjson.encode(metadata_string(k, meta[k]))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- JSON text -> table of strings, plus a list of warnings; or nil, why.
function M.parse_metadata(text)
  local ok, meta = runtime.pcall(cjson.decode, text)
  if not ok then return nil, "not valid JSON (" .. tostring(meta):gsub("^.-: ", "") .. ")" end
  if type(meta) ~= "table" or (#meta > 0) then return nil, "not a JSON object" end
  for k, v in pairs(meta) do
    if type(v) ~= "string" then
      return nil, ("value of %s must be a string, got %s"):format(quote(tostring(k)),
        v == cjson.null and "null" or type(v) == "table" and "an object or array" or type(v))
    end
  end
  local warnings = {}
  for _, k in ipairs(M.METADATA_KEYS) do
    if meta[k] == nil then
      warnings[#warnings + 1] = ".metadata has no " .. k
    elseif k ~= "modelVersion" and not meta[k]:match("^%d+$") then
      warnings[#warnings + 1] = (".metadata: %s is not a whole number: %s"):format(k, quote(meta[k]))
    end
  end
  return meta, warnings
end

-- --- the dump's header ---------------------------------------------------------

local FORMATS = { [1] = "custom", [2] = "files", [3] = "tar", [4] = "null", [5] = "directory" }
local ALGORITHMS = { [0] = "none", [1] = "gzip", [2] = "lz4", [3] = "zstd" }

local function version_at_least(h, major, minor)
  return h.major > major or (h.major == major and h.minor >= minor)
end

-- Parses the header of a pg_dump custom-format archive (the first few
-- hundred bytes suffice) as pg_restore's ReadHead does: "PGDMP", version
-- bytes, integer and offset sizes, format, compression, creation time,
-- database name, server and pg_dump versions, then the TOC's entry count.
-- Returns a table, or nil, why. Fields not present in `s` are left out.
function M.parse_dump_header(s)
  if #s < 5 or s:sub(1, 5) ~= "PGDMP" then
    return nil, "not a PostgreSQL custom-format dump (it does not start with PGDMP); Mendix Cloud needs pg_dump -Fc"
  end
  local pos = 6
  local function byte()
    local b = s:byte(pos)
    if not b then error("short", 0) end
    pos = pos + 1
    return b
  end
  local h = {}
  local function int()
    local sign = byte()
    local v = 0
    for i = 0, h.int_size - 1 do v = v | (byte() << (8 * i)) end
    return sign ~= 0 and -v or v
  end
  local function str()
    local len = int()
    if len < 0 then return nil end
    if len > 4096 or pos + len - 1 > #s then error("short", 0) end
    local v = s:sub(pos, pos + len - 1)
    pos = pos + len
    return v
  end
  local ok, err = pcall(function()
    h.major, h.minor = byte(), byte()
    h.rev = (h.major > 1 or h.minor > 0) and byte() or 0
    h.version = ("%d.%d"):format(h.major, h.minor)
    h.int_size = byte()
    if h.int_size < 1 or h.int_size > 8 then error("bad integer size", 0) end
    h.off_size = version_at_least(h, 1, 7) and byte() or h.int_size
    local f = byte()
    h.format = FORMATS[f] or ("unknown (%d)"):format(f)
    if version_at_least(h, 1, 15) then
      local a = byte()
      h.compression = ALGORITHMS[a] or ("unknown (%d)"):format(a)
    elseif version_at_least(h, 1, 4) then
      local level = int()
      h.compression = level == 0 and "none" or "gzip"
    end
    if version_at_least(h, 1, 4) then
      local t = {}
      for _, k in ipairs { "sec", "min", "hour", "day", "month", "year", "isdst" } do t[k] = int() end
      h.created = ("%04d-%02d-%02d %02d:%02d:%02d"):format(t.year + 1900, t.month + 1, t.day, t.hour, t.min, t.sec)
    end
    if version_at_least(h, 1, 10) then
      h.database = str()
      h.server_version = str()
      h.pg_dump_version = str()
      h.toc_entries = int()
    end
  end)
  if not ok and errors.is(err) then error(err, 0) end -- a signal, raised inside the pcall: not a damaged header
  if not ok and err ~= "short" then return nil, "damaged dump header (" .. tostring(err) .. ")" end
  if not h.format then return nil, "damaged dump header (too short)" end
  return h
end

-- Mendix Cloud's verdict on a validated summary: {mendix_cloud = bool,
-- verdict = text, reasons = {...}}.
function M.compatibility(summary)
  local reasons = {}
  -- .metadata written by Mendix Cloud or this tool holds numbers and a
  -- version: escape sequences or bytes that are not UTF-8 mean it was made
  -- by something else (or tampered with), and it is not valid JSON text
  local keys = {}
  for k in pairs(summary.metadata or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = summary.metadata[k]
    if log.escape(k) ~= k or log.escape(v) ~= v then
      reasons[#reasons + 1] = ('.metadata: the value of "%s" holds control characters or bytes that are not UTF-8: "%s"')
        :format(log.escape(k), log.escape(v))
    end
  end
  local d = summary.dump
  local max = M.MENDIX_CLOUD_MAX_DUMP
  if d.major > max[1] or (d.major == max[1] and d.minor > max[2]) then
    reasons[#reasons + 1] = ("the dump's archive version %s (pg_dump %s) is newer than %d.%d, the newest Mendix " ..
      "Cloud restores (pg_dump 12-15)"):format(d.version, d.pg_dump_version or "?", max[1], max[2])
  end
  if summary.kind == "archive" then
    if summary.compression ~= "gzip" then reasons[#reasons + 1] = "the archive is not gzip-compressed" end
    if not summary.metadata then reasons[#reasons + 1] = "the archive has no .metadata" end
  end
  if #reasons == 0 then
    return { mendix_cloud = true, verdict = "compatible: restores in Mendix Cloud and with this tool" }
  end
  return { mendix_cloud = false, verdict = "restores with this tool but not in Mendix Cloud", reasons = reasons }
end

-- --- validation ------------------------------------------------------------------

-- What a file is: "archive" (tar.gz, or plain tar), "dump" (bare custom-
-- format dump), or nil, err.
function M.detect(path)
  local st, err = fs.stat(path)
  if not st then return nil, err end
  if st.type ~= "file" then return invalid("%s: not a regular file", path) end
  local f, why = io.open(path, "rb")
  if not f then return nil, errors.new { code = "io", message = why } end
  local head = f:read(512) or ""
  f:close()
  if head == "" then return invalid("%s: empty file, not a backup archive", path) end
  if head:sub(1, 2) == "\31\139" then return "archive" end
  if head:sub(1, 5) == "PGDMP" then return "dump" end
  if head:sub(258, 262) == "ustar" then return "archive" end
  return invalid("%s: not a backup archive (neither a gzip-compressed tar nor a PostgreSQL custom-format dump)", path)
end

local DUMP_HEAD = 64 * 1024

-- Reads up to n bytes from the start of an entry.
local function read_head(e, n)
  local parts, len = {}, 0
  while len < n do
    local chunk, err = e:read(n - len)
    if err then return nil, err end
    if not chunk then break end
    parts[#parts + 1] = chunk
    len = len + #chunk
  end
  return table.concat(parts)
end

-- The line of pg_restore's stderr that says what is wrong.
local function first_line(text) return text:match("[^\n]*error:[^\n]*") or text:match("[^\n]+") or "" end

-- The dump's header, or nil, why: only a custom-format dump restores.
local function dump_info(head)
  local h, why = M.parse_dump_header(head)
  if h and h.format ~= "custom" then
    return nil, ("a %s-format dump; Mendix Cloud and this tool need custom format (pg_dump -Fc)"):format(h.format)
  end
  return h, why
end

local function pg_restore_failed(src, what, result, cmd)
  local detail = first_line(result.stderr or "")
  return nil, errors.new {
    code = "dump_invalid",
    message = ("%s: %s: %s -l cannot read the dump (%s)%s"):format(src, what, cmd:match("[^/]*$"), result.reason,
      detail ~= "" and (": " .. detail) or ""),
    hint = "the dump is damaged, or was made by a newer pg_dump than this pg_restore reads",
  }
end

-- A file's layout form as the tag of its entry in a fileset.
local FORM_TAG = { nested = 0, flat = 1 }

-- Reads an archive from an open reader to its end, checking everything;
-- returns the summary or nil, err.
local function validate_reader(r, opts)
  local src = r:info().name
  local pg_restore = opts.pg_restore
  local s = { kind = "archive", file = src, entries = 0, directories = 0, files = 0, files_bytes = 0, warnings = {} }
  -- the files by UUID in a fileset (32 bytes a file; tag: the layout form),
  -- the other entries by name
  local seen, uuids, forms = {}, fileset.new(), {}
  while true do
    local e, err = r:next()
    if not e then
      if err then return nil, err end
      break
    end
    s.entries = s.entries + 1
    local info, why = M.classify(e.name, e.type)
    if not info then return entry_invalid(src, e.name, "%s", why) end
    if info.kind ~= "file" then
      if seen[info.key] then return entry_invalid(src, e.name, "duplicate entry") end
      seen[info.key] = true
    end
    if info.kind == "metadata" then
      if e.size > M.METADATA_LIMIT then
        return entry_invalid(src, e.name, "metadata too large (%d bytes, at most %d)", e.size, M.METADATA_LIMIT)
      end
      local text, rerr = e:read("a")
      if not text then return nil, rerr end
      local meta, warnings = M.parse_metadata(text)
      if not meta then return entry_invalid(src, e.name, "%s", warnings) end
      s.metadata = meta
      for _, w in ipairs(warnings) do s.warnings[#s.warnings + 1] = w end
    elseif info.kind == "dump" then
      local head, result, rerr
      if opts.check_dump then
        local keep
        if opts.keep_dump then
          keep, rerr = opts.keep_dump(e.size)
          if not keep then return nil, rerr end
        end
        result, rerr = e:pipe_to({ pg_restore, "-l" }, { head = DUMP_HEAD, keep = keep })
        if not result then return nil, rerr end
        head = result.head
      else
        head, rerr = read_head(e, DUMP_HEAD)
        if not head then return nil, rerr end
        local ok, serr = e:skip()
        if not ok then return nil, serr end
      end
      local h, why = dump_info(head)
      if not h then return entry_invalid(src, e.name, "%s", why) end
      -- after the header checks, whose messages are more precise
      if result and result.status ~= 0 then
        return pg_restore_failed(src, "entry " .. quote(e.name), result, pg_restore)
      end
      h.size = e.size
      s.dump = h
    elseif info.kind == "file" then
      local _, _, form = uuids:add(info.uuid, e.size, FORM_TAG[info.form])
      if form then
        return entry_invalid(src, e.name, form == FORM_TAG[info.form] and "duplicate entry" or
          ("duplicate file: UUID %s is also stored as %s"):format(info.uuid,
            quote(form == FORM_TAG.flat and "tree/" .. info.uuid or M.file_path(info.uuid))))
      end
      forms[info.form] = true
      s.files = s.files + 1
      s.files_bytes = s.files_bytes + e.size
      -- every byte is read: a corrupt file must be found now, not halfway
      -- through a restore
      local keep = opts.keep_file and opts.keep_file(info.uuid, e.size)
      local ok, serr
      if keep then ok, serr = e:save(keep) else ok, serr = e:skip() end
      if not ok then return nil, serr end
    else
      s.directories = s.directories + 1
    end
  end
  if not s.dump then
    return invalid("%s: no database dump (%s): a files-only archive cannot be restored", src, M.DUMP)
  end
  if opts.uuids then s.uuids = uuids end -- the files: a fileset
  local info = r:info()
  s.compression = info.compression
  s.compressed_bytes = info.bytes_in
  s.layout = forms.nested and forms.flat and "mixed" or forms.nested and "nested" or forms.flat and "flat" or "none"
  if forms.flat then
    s.warnings[#s.warnings + 1] = "files use the older flat tree/<uuid> layout (read as usual)"
  end
  if s.metadata then
    local m = s.metadata
    if m.dumpSize and m.dumpSize:match("^%d+$") and tonumber(m.dumpSize) ~= s.dump.size then
      s.warnings[#s.warnings + 1] = (".metadata says dumpSize %s, the dump has %d bytes"):format(m.dumpSize,
        s.dump.size)
    end
  else
    s.warnings[#s.warnings + 1] = "the archive has no .metadata"
  end
  return s
end

local function validate_dump_file(path, opts)
  local f, why = io.open(path, "rb")
  if not f then return nil, errors.new { code = "io", message = why } end
  local head = f:read(DUMP_HEAD) or ""
  f:close()
  local h, herr = dump_info(head)
  if not h then return invalid("%s: %s", path, herr) end
  h.size = fs.stat(path).size
  if opts.check_dump then
    -- the listing itself goes to /dev/null
    local p <close>, err = process.spawn({ opts.pg_restore, "-l", path })
    if not p then return nil, err end
    local result = p:wait()
    if result.status ~= 0 then return pg_restore_failed(path, "database-only backup", result, opts.pg_restore) end
  end
  return { kind = "dump", file = path, entries = 0, files = 0, files_bytes = 0, dump = h, warnings = {},
    compressed_bytes = h.size }
end

-- The validation pass: reads the whole archive (a path, or an open
-- mxpc.archive reader) and checks its structure, layout, metadata and dump
-- header; with opts.check_dump it also streams the dump through
-- `pg_restore -l` (opts.pg_restore: the command; by default the one
-- mxpc.pg_programs finds). Writes nothing anywhere, except what the caller
-- asks to keep so that the archive is read once: with opts.keep_dump(size)
-- -> path | nil, err (with check_dump) the dump is also written to that path,
-- and with opts.keep_file(uuid, size) -> path | nil a file is (a new file
-- each; the caller removes them). Shows its progress
-- (mxpc.progress, phase "check": bytes of the file read) unless
-- opts.progress is false.
-- Returns a summary (see docs/archive.md) or nil, err.
function M.validate(src, opts)
  opts = opts or {}
  if opts.check_dump and not opts.pg_restore then
    local path, perr = pg_programs.find("pg_restore")
    if not path then return nil, perr end
    opts = setmetatable({ pg_restore = path }, { __index = opts })
  end
  local summary, err
  local function checking(size, poll)
    if opts.progress == false then return nil end
    return progress.start("check", { label = "checking the archive", bytes = size, poll = poll })
  end
  if type(src) == "string" then
    local kind, derr = M.detect(src)
    if not kind then return nil, derr end
    if kind == "dump" then
      local meter <close> = checking(fs.stat(src).size)
      summary, err = validate_dump_file(src, opts)
      if meter then
        meter.bytes = summary and summary.dump.size or 0
        meter:finish(not summary)
      end
    else
      local r <close>, rerr = archive.reader(src)
      if not r then return nil, rerr end
      local meter <close> = checking(fs.stat(src).size, function() return r:info().bytes_in end)
      summary, err = validate_reader(r, opts)
      if meter then meter:finish(not summary) end
    end
  else
    summary, err = validate_reader(src, opts)
  end
  if not summary then return nil, err end
  summary.compatibility = M.compatibility(summary)
  if not summary.compatibility.mendix_cloud then
    for _, reason in ipairs(summary.compatibility.reasons) do
      summary.warnings[#summary.warnings + 1] = reason .. ": restores with this tool but not in Mendix Cloud"
    end
  end
  return summary
end

-- --- writing -------------------------------------------------------------------

-- A writer that keeps the layout: .metadata first, then the dump, then the
-- files, each once. Misuse (wrong order, bad UUID) raises; failures of the
-- outside world return nil, err. Closing without commit removes the file.
local Writer = {}
Writer.__index = Writer
Writer.__name = "backup_archive.writer"

-- `target` is a path, or a sink function receiving the compressed bytes
-- (opts.name names it in messages). opts.before_commit() runs first when the
-- writer commits (e.g. deferring signals from there on); opts.on_commit()
-- runs after the archive ended (e.g. completing an upload) and may return
-- nil, err; opts.on_close() runs when the writer is closed, committed or not
-- (e.g. aborting an upload).
function M.writer(target, opts)
  opts = opts or {}
  local w, err = archive.writer(target, { force = opts.force, level = opts.level, threads = opts.threads,
    mtime = opts.mtime, name = opts.name })
  if not w then return nil, err end
  return setmetatable({ w = w, path = opts.name or target, stage = "metadata", uuids = {}, sets = {},
    before_commit = opts.before_commit, on_commit = opts.on_commit, on_close = opts.on_close }, Writer)
end

function Writer:close()
  self.w:close()
  local on_close = self.on_close
  self.on_close = nil
  if on_close then on_close() end
end

Writer.__close = Writer.close
Writer.__gc = Writer.close

function Writer:__tostring() return ("backup_archive.writer (%s, next: %s)"):format(self.path, self.stage) end

local function expect(self, stage, what)
  if self.stage ~= stage then
    error(("cannot add %s now: the archive expects %s next"):format(what, self.stage), 3)
  end
end

-- Adds an entry from a path (its size is the file's) or from a source
-- function with a declared size.
local function add(w, name, src, size)
  if type(src) == "string" then return w:add_file(name, src) end
  if type(src) == "function" then
    if math.type(size) ~= "integer" then error("a source function needs an integer size", 3) end
    return w:add_stream(name, size, src)
  end
  error("expected a path or a source function, got " .. type(src), 3)
end

function Writer:add_metadata(meta)
  expect(self, "metadata", ".metadata")
  local ok, err = self.w:add_string(M.METADATA, M.build_metadata(meta))
  if ok then self.stage = "dump" end
  return ok, err
end

function Writer:add_dump(src, size)
  expect(self, "dump", "the database dump")
  -- a large dump takes a while to go in: its progress, from the writer's count
  local st = type(src) == "string" and fs.stat(src)
  local base = self.w:stats().bytes_in
  local meter <close> = st and progress.start("archive_dump", { label = "adding the dump to the archive",
    bytes = st.size, poll = function() return self.w:stats().bytes_in - base end }) or nil
  local ok, err = add(self.w, M.DUMP, src, size)
  if meter then meter:finish(not ok) end
  if ok then self.stage = "files" end
  return ok, err
end

-- Records that the file `uuid` is in the archive; raises if it is already.
local function add_once(self, uuid)
  local twice = self.uuids[uuid]
  for _, set in ipairs(self.sets) do twice = twice or set:find(uuid) end
  if twice then error("file " .. uuid .. " added twice", 3) end
  self.uuids[uuid] = true
end

function Writer:add_file(uuid, src, size)
  expect(self, "files", "a file")
  local name = M.file_path(uuid)
  add_once(self, uuid)
  return add(self.w, name, src, size)
end

-- Begins the entry of a file whose bytes follow through entry:write(chunk),
-- then entry:finish() (which checks that exactly `size` bytes came).
function Writer:begin_file(uuid, size)
  expect(self, "files", "a file")
  local name = M.file_path(uuid)
  add_once(self, uuid)
  return self.w:begin(name, size)
end

-- Adds the files `items` straight from S3: many downloads run at once
-- (store:get_many) and each file becomes its entry as its download
-- finishes, so entries are in completion order. `items` is a list of
-- {uuid =, key =, size =}, or a fileset (mxpc.fileset) with opts.key(uuid)
-- giving each object's key: then nothing is kept per file but the set's 32
-- bytes, and names are made as entries are written. opts are get_many's
-- (concurrency, window, spill_dir, on_item, key); opts.ready(must) is asked
-- before the first entry is written and may add the metadata and the dump
-- then (it returns false while they are not ready, unless `must`).
function Writer:add_files_from(store, bucket, items, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if type(items) == "table" then
    for _, it in ipairs(items) do
      add_once(self, it.uuid)
      it.name = M.file_path(it.uuid)
    end
  else
    for uuid in pairs(self.uuids) do
      if items:find(uuid) then error("file " .. uuid .. " added twice", 2) end
    end
    for _, set in ipairs(self.sets) do
      for _, uuid in items:entries() do
        if set:find(uuid) then error("file " .. uuid .. " added twice", 2) end
      end
    end
    self.sets[#self.sets + 1] = items
    o.name = M.file_path
  end
  local ready = o.ready
  o.ready = function(must)
    if ready and not ready(must) then return false end
    expect(self, "files", "a file")
    return true
  end
  return store:get_many(bucket, items, self.w, o)
end

function Writer:commit()
  expect(self, "files", "the end of the archive")
  if self.before_commit then self.before_commit() end
  local ok, err = self.w:commit()
  if ok and self.on_commit then ok, err = self.on_commit() end
  if ok then self.stage = "committed" end
  return ok, err
end

function Writer:abort() self:close() end

-- Entries, bytes in and out, compressed and stored blocks, threads (archive writer's stats).
function Writer:stats() return self.w:stats() end

-- --- inspect and verify ------------------------------------------------------------

local size_text = progress.size_text

local function count(n, one, many) return ("%d %s"):format(n, n == 1 and one or many) end

-- The summary as lines for a person.
function M.report(s)
  local out = {}
  -- every line escaped: names and metadata come from the archive
  local function line(k, fmt, ...) out[#out + 1] = log.escape(("%-14s %s"):format(k .. ":", fmt:format(...))) end
  line("file", "%s", s.file)
  if s.kind == "dump" then
    line("kind", "database-only backup (bare custom-format dump), %s", size_text(s.dump.size))
  else
    line("kind", "backup archive (%s tar, %s)", s.compression == "gzip" and "gzip-compressed" or "uncompressed",
      size_text(s.compressed_bytes))
    local m = s.metadata
    if m then
      local keys = {}
      for _, k in ipairs(M.METADATA_KEYS) do
        if m[k] then keys[#keys + 1] = k .. "=" .. m[k] end
      end
      line("metadata", "%s", #keys > 0 and table.concat(keys, " ") or "(no known fields)")
    else
      line("metadata", "none")
    end
    line("entries", "%d (%s, %s)", s.entries, count(s.files, "file", "files"),
      count(s.directories, "directory", "directories"))
    line("files", "%d, %s (%d bytes), layout %s", s.files, size_text(s.files_bytes), s.files_bytes, s.layout)
  end
  local d = s.dump
  line("database dump", "%s (%d bytes), %s format, %s compression", size_text(d.size), d.size, d.format,
    d.compression or "unknown")
  line("dump version", "archive version %s, made by pg_dump %s from server %s", d.version,
    d.pg_dump_version or "?", d.server_version or "?")
  if d.database then
    line("dump contents", "database %s, %d TOC entries, created %s", d.database, d.toc_entries or 0, d.created or "?")
  end
  line("Mendix Cloud", "%s", s.compatibility.verdict)
  for _, w in ipairs(s.warnings) do out[#out + 1] = "warning: " .. log.escape(w) end
  return table.concat(out, "\n") .. "\n"
end

-- A copy of a result with every string (keys too) escaped as in text output,
-- so the JSON is valid UTF-8 whatever an archive holds.
local function printable(v)
  if type(v) == "string" then return log.escape(v) end
  if type(v) ~= "table" then return v end
  local copy = {}
  for k, x in pairs(v) do copy[printable(k)] = printable(x) end
  return setmetatable(copy, getmetatable(v))
end

-- The inspect and verify commands: `verify` also runs pg_restore -l on the
-- dump. `input` is the archive as workflow.archive_input opens it (a file,
-- standard input, an S3 object), or nil and `err` when it could not. Prints
-- the report (or JSON) and returns the exit code; an invalid archive raises
-- its error (exit 1) after printing {"ok": false, ...} with --json.
function M.command(name, opts, input, err)
  local file = input and input.name or opts.file
  local summary
  if input then summary, err = input:validate { check_dump = name == "verify" } end
  if not summary then
    if opts.json then
      io.stdout:write(cjson.encode(printable { ok = false, file = file,
        error = { code = err.code, message = log.redact(err.message) } }), "\n")
    end
    error(err, 0)
  end
  summary.ok = true
  if opts.json then
    if #summary.warnings == 0 then summary.warnings = nil end -- cjson would write {} for an empty list
    io.stdout:write(cjson.encode(printable(summary)), "\n")
  else
    io.stdout:write(M.report(summary))
    if name == "verify" then
      io.stdout:write(log.escape(("OK: %s would restore with this tool (structure, every byte and pg_restore -l checked)")
        :format(file)), "\n")
    end
  end
  return 0
end

return M
