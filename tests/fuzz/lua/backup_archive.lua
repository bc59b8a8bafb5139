-- The Mendix layout checks and the headers of backup_archive.lua: entry
-- names (classify, uuid_from_path), the .metadata JSON, the header of the
-- custom-format dump, and whole archives through validate (what `verify`
-- runs: the reader, every entry's layout, duplicates, the metadata and the
-- dump's header; without `pg_restore -l`, which runs a process). The first
-- byte picks the parser.
local archive = require "mxpc.archive"
local ba = require "mxpc.backup_archive"

-- validate's summary of an archive it accepted
local function check_summary(s)
  assert(s.kind == "archive" and type(s.dump) == "table" and type(s.dump.format) == "string", "no dump in a summary")
  assert(math.type(s.entries) == "integer" and s.files <= s.entries and s.files_bytes >= 0, "bad counts")
  assert(type(s.compatibility) == "table" and type(s.warnings) == "table", "no compatibility or warnings")
  for _, w in ipairs(s.warnings) do assert(type(w) == "string", "a warning that is not a string") end
end

return function(data)
  local pick, rest = data:byte(1) or 0, data:sub(2)
  if pick % 4 == 0 then
    local entry = ba.classify(rest, pick % 8 == 0 and "directory" or "file")
    if entry then assert(type(entry.kind) == "string" and type(entry.key) == "string") end
    ba.uuid_from_path(rest)
  elseif pick % 4 == 1 then
    local meta, warnings = ba.parse_metadata(rest)
    if meta then
      assert(type(warnings) == "table")
      for _, v in pairs(meta) do assert(type(v) == "string") end
    else
      assert(type(warnings) == "string")
    end
  elseif pick % 4 == 2 then
    local h, why = ba.parse_dump_header(rest)
    if h then
      assert(type(h.format) == "string")
      ba.compatibility { dump = h }
    else
      assert(type(why) == "string")
    end
  else
    -- handed over in pieces of 1 to 64 bytes after the first, as a stream
    local at, step = 1, pick // 4 + 1
    local r <close>, err = archive.reader(function()
      if at > #rest then return nil end
      local chunk = rest:sub(at, at + step - 1)
      at = at + step
      return chunk
    end, { name = "fuzz.tar.gz" })
    if not r then
      assert(type(err) == "table" and type(err.message) == "string", "a reader refused without a message")
      return
    end
    local s, verr = ba.validate(r, { progress = false })
    if s then
      check_summary(s)
    else
      assert(type(verr) == "table" and type(verr.code) == "string" and type(verr.message) == "string",
        "validate refused without an error object")
    end
  end
end
