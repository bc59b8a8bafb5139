-- Runs the program's command line in this process and then prints the peak
-- resident memory of the process (VmHWM), so a benchmark measures the tool
-- itself and not the helpers it starts (pg_dump, psql).
--   mxpc-data-migration run bench/peak.lua backup -n NS -e ENV -f FILE
local argv = { [0] = arg[-2] or "mxpc-data-migration" }
for i = 1, #arg do argv[i] = arg[i] end
local code = require("mxpc.main").run(argv)
local f = assert(io.open("/proc/self/status"))
for line in f:lines() do
  local kib = line:match("^VmHWM:%s+(%d+) kB")
  if kib then io.stderr:write("peak_rss_kib=", kib, "\n") end
end
f:close()
return code
