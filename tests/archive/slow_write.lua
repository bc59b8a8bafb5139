-- Writes an archive that never ends, for the interruption test (sigint.py).
-- usage: mxpc-data-migration run slow_write.lua OUT stream|file|entry [FILE]
local archive = require "mxpc.archive"

local out, mode, path = arg[1], arg[2], arg[3]
local w <close> = assert(archive.writer(out, { level = 1, threads = 4 })) -- more threads than cores
local chunk = ("x"):rep(1 << 20)
if mode == "stream" then
  -- the source is Lua, called from C: the signal arrives inside it
  assert(w:add_stream("big", 1 << 40, function() return chunk end))
elseif mode == "file" then
  -- a C loop reading the file: it polls for the signal itself
  assert(w:add_file("big", path))
elseif mode == "entry" then
  local e <close> = assert(w:begin("big", 1 << 40))
  while true do assert(e:write(chunk)) end
end
assert(w:commit())
