-- Writes a backup archive with mxpc.backup_archive.
-- usage: mxpc-data-migration run write_sample.lua OUT DUMP [UUID=PATH ...]
local backup_archive = require "mxpc.backup_archive"
local fs = require "mxpc.fs"

local out, dump = arg[1], arg[2]
local files, total = {}, 0
for i = 3, #arg do
  local uuid, path = arg[i]:match("^([^=]+)=(.+)$")
  files[#files + 1] = { uuid = uuid, path = path }
  total = total + assert(fs.stat(path)).size
end
local w <close> = assert(backup_archive.writer(out, { level = 6 }))
assert(w:add_metadata { duration = 3, dumpSize = assert(fs.stat(dump)).size, modelVersion = "1.0.0.40",
  databaseSize = 9730584, filesSize = total })
assert(w:add_dump(dump))
for _, f in ipairs(files) do assert(w:add_file(f.uuid, f.path)) end
assert(w:commit())
