-- Writes a backup archive with one file of SIZE bytes of cheap, compressible
-- data from a Lua source, at compression level 1 (memory.py).
-- usage: mxpc-data-migration run big_write.lua OUT DUMP SIZE
local backup_archive = require "mxpc.backup_archive"
local fs = require "mxpc.fs"

local out, dump, size = arg[1], arg[2], math.tointeger(tonumber(arg[3]))
local chunk = ("0123456789abcdef"):rep(1 << 16) -- 1 MiB
local w <close> = assert(backup_archive.writer(out, { level = 1 }))
assert(w:add_metadata { duration = 0, dumpSize = assert(fs.stat(dump)).size, modelVersion = "1.0.0.40",
  databaseSize = 0, filesSize = size })
assert(w:add_dump(dump))
local left = size
assert(w:add_file("0d3e301f-5551-46f8-ad44-8de2be084c95", function()
  if left == 0 then return nil end
  local n = math.min(left, #chunk)
  left = left - n
  return n == #chunk and chunk or chunk:sub(1, n)
end, size))
assert(w:commit())
