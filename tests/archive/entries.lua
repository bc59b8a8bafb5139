-- Lists an archive read with mxpc.archive, one JSON object per entry:
-- {"name", "size", "type", "sha256"}; the body is streamed into sha256sum
-- (no copy on disk). usage: mxpc-data-migration run entries.lua ARCHIVE
local archive = require "mxpc.archive"
local cjson = require "cjson"

local r <close> = assert(archive.reader(arg[1]))
for e in r:entries() do
  local line = { name = e.name, size = e.size, type = e.type }
  if e.type == "file" then
    local result = assert(e:pipe_to { "sh", "-c", "sha256sum >&2" })
    assert(result.status == 0, result.stderr)
    line.sha256 = result.stderr:match("^(%x+)")
  end
  io.stdout:write(cjson.encode(line), "\n")
end
