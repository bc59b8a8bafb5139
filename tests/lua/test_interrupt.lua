-- Ctrl-C and SIGTERM stop a run cleanly: exit 130/143, one error line, and
-- partial outputs (uncommitted atomic writers) are removed.
local t = require "t"
local fs = require "mxpc.fs"

local prog = t.program()

-- Starts the script, waits until it wrote its ready marker, sends the signal,
-- and returns stderr and the exit code.
local function interrupt(dir, script, signal)
  local cmd = ([[
    %s run %s 2>%s/err & pid=$!
    for i in $(seq 1 200); do [ -e %s/ready ] && break; sleep 0.05; done
    kill -%s $pid; wait $pid; echo "exit=$?"
  ]]):format(prog, script, dir, dir, signal)
  local out = t.sh(cmd)
  return fs.read(dir .. "/err"), tonumber(out:match("exit=(%d+)"))
end

for _, case in ipairs { { "INT", 130, "SIGINT" }, { "TERM", 143, "SIGTERM" } } do
  local signal, code, name = case[1], case[2], case[3]
  t.test("SIG" .. signal .. " during a write removes the partial file", function()
    local dir = t.tmpdir()
    t.write(dir .. "/busy.lua", ([[
      local fs = require "mxpc.fs"
      local w <close> = assert(fs.atomic_writer("%s/out.bin"))
      local chunk = ("x"):rep(4096)
      w:write(chunk)
      io.open("%s/ready", "w"):close()
      local n = 0
      while true do
        n = n + 1
        if n %% 1000000 == 0 then w:write("x") end
      end
    ]]):format(dir, dir))
    local err, exit = interrupt(dir, dir .. "/busy.lua", signal)
    t.eq(exit, code)
    t.eq(err, "error: interrupted by " .. name .. "\n")
    t.same(fs.dir(dir), { "busy.lua", "err", "ready" }, "no out.bin and no temp file")
  end)
end

t.test("a pure Lua loop is interrupted too", function()
  local dir = t.tmpdir()
  t.write(dir .. "/loop.lua", ('io.open("%s/ready", "w"):close() while true do end'):format(dir))
  local err, exit = interrupt(dir, dir .. "/loop.lua", "INT")
  t.eq(exit, 130)
  t.eq(err, "error: interrupted by SIGINT\n")
end)

t.test("Ctrl-C in the repl stops the running chunk, not the prompt", function()
  local dir = t.tmpdir()
  local out = t.sh(([[
    ( echo 'io.open("%s/ready", "w"):close() while true do end'
      for i in $(seq 1 200); do [ -e %s/interrupted ] && break; sleep 0.05; done
      echo '"still here"' ) | %s repl > %s/out 2>&1 & pid=$!
    for i in $(seq 1 200); do [ -e %s/ready ] && break; sleep 0.05; done
    sleep 0.2; kill -INT $pid; touch %s/interrupted
    wait $pid; echo "exit=$?"
  ]]):format(dir, dir, t.program(), dir, dir, dir))
  t.contains(out, "exit=0")
  t.eq(fs.read(dir .. "/out"), 'error: interrupted by SIGINT\n"still here"\n')
end)

return t.run()
