-- The Mendix layout checks and the headers of backup_archive.lua: entry
-- names (classify, uuid_from_path), the .metadata JSON and the header of the
-- custom-format dump. The first byte picks the parser.
local ba = require "mxpc.backup_archive"

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
  else
    local h, why = ba.parse_dump_header(rest)
    if h then
      assert(type(h.format) == "string")
      ba.compatibility { dump = h }
    else
      assert(type(why) == "string")
    end
  end
end
