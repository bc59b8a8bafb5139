-- Runs a command of the program in this process, then writes its peak
-- resident memory (VmHWM in /proc/self/status: this process only, not the
-- commands it starts) to stderr as "peak_rss_kib=N" (memory.py).
-- usage: mxpc-data-migration run peak_rss.lua COMMAND [ARGS...]
local main = require "mxpc.main"

local argv = { [0] = arg[-1] }
for i = 1, #arg do argv[i] = arg[i] end
local code = main.run(argv)
local f = assert(io.open("/proc/self/status"))
local kib = f:read("a"):match("VmHWM:%s*(%d+)")
f:close()
io.stderr:write("peak_rss_kib=", kib, "\n")
return code
