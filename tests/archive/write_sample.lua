-- Writes a backup archive with mxpc.backup_archive and prints the writer's
-- statistics as JSON on stdout.
-- usage: mxpc-data-migration run write_sample.lua OUT DUMP [--level=N] [--threads=N] [UUID=PATH ...]
local backup_archive = require "mxpc.backup_archive"
local cjson = require "cjson"
local fs = require "mxpc.fs"

local out, dump = arg[1], arg[2]
local files, total, level, threads = {}, 0, 6, 0
for i = 3, #arg do
  local opt, n = arg[i]:match("^%-%-(%a+)=(%d+)$")
  if opt == "level" then
    level = math.tointeger(tonumber(n))
  elseif opt == "threads" then
    threads = math.tointeger(tonumber(n))
  else
    local uuid, path = arg[i]:match("^([^=]+)=(.+)$")
    files[#files + 1] = { uuid = uuid, path = path }
    total = total + assert(fs.stat(path)).size
  end
end
-- a fixed mtime: two runs give the same bytes
local w <close> = assert(backup_archive.writer(out, { level = level, threads = threads, mtime = 1700000000 }))
assert(w:add_metadata { duration = 3, dumpSize = assert(fs.stat(dump)).size, modelVersion = "1.0.0.40",
  databaseSize = 9730584, filesSize = total })
assert(w:add_dump(dump))
for _, f in ipairs(files) do assert(w:add_file(f.uuid, f.path)) end
assert(w:commit())
io.stdout:write(cjson.encode(w:stats()), "\n")
