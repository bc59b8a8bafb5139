-- Ctrl-C and SIGTERM stop a run cleanly: exit 130/143, one error line, and
-- partial outputs (uncommitted atomic writers) are removed.
local t = require "t"
local fs = require "mxpc.fs"
local runtime = require "mxpc.runtime"

local prog = t.program()

-- Starts the script, waits until it wrote its ready marker, sends the signal,
-- and returns stderr and the exit code.
local function interrupt(dir, script, signal)
  local cmd = ([[
    %s run %s >%s/out 2>%s/err & pid=$!
    for i in $(seq 1 200); do [ -e %s/ready ] && break; sleep 0.05; done
    kill -%s $pid; wait $pid; echo "exit=$?"
  ]]):format(prog, script, dir, dir, dir, signal)
  local out = t.sh(cmd)
  return fs.read(dir .. "/err"), tonumber(out:match("exit=(%d+)")), fs.read(dir .. "/out")
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
    t.same(fs.dir(dir), { "busy.lua", "err", "out", "ready" }, "no out.bin and no temp file")
  end)
end

t.test("a pure Lua loop is interrupted too", function()
  local dir = t.tmpdir()
  t.write(dir .. "/loop.lua", ('io.open("%s/ready", "w"):close() while true do end'):format(dir))
  local err, exit = interrupt(dir, dir .. "/loop.lua", "INT")
  t.eq(exit, 130)
  t.eq(err, "error: interrupted by SIGINT\n")
end)

t.test("SIGINT while a dump header is parsed (inside a pcall) ends the run as interrupted", function()
  local dir = t.tmpdir()
  local fixture = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set") .. "/tests/archive/fixtures/sample.backup"
  t.write(dir .. "/parse.lua", ([[
    local backup_archive = require "mxpc.backup_archive"
    local f = assert(io.open(%q, "rb"))
    local head = f:read(4096)
    f:close()
    io.open("%s/ready", "w"):close()
    while true do assert(backup_archive.parse_dump_header(head)) end
  ]]):format(fixture, dir))
  local err, exit = interrupt(dir, dir .. "/parse.lua", "INT")
  t.eq(exit, 130)
  t.eq(err, "error: interrupted by SIGINT\n")
end)

t.test("runtime.sleep ends at once on a signal", function()
  local dir = t.tmpdir()
  t.write(dir .. "/sleep.lua", ([[
    io.open("%s/ready", "w"):close()
    require("mxpc.runtime").sleep(30)
    print("slept")
  ]]):format(dir))
  local started = runtime.monotonic()
  local err, exit, out = interrupt(dir, dir .. "/sleep.lua", "INT")
  t.eq(exit, 130)
  t.eq(err, "error: interrupted by SIGINT\n")
  t.eq(out, "")
  t.ok(runtime.monotonic() - started < 10, "well before the 30 s")
end)

t.test("an interruption raised in C is raised once: pcall catches it, __close runs", function()
  local dir = t.tmpdir()
  t.write(dir .. "/once.lua", ([[
    local runtime = require "mxpc.runtime"
    io.open("%s/ready", "w"):close()
    local ok, err = pcall(runtime.sleep, 30)
    print("caught: " .. tostring(err))
    runtime.clear_interrupt()
    io.open("%s/again", "w"):close()
    do
      local guard <close> = setmetatable({}, { __close = function() print("closed") end })
      runtime.sleep(30)
    end
  ]]):format(dir, dir))
  local out = t.sh(([[
    %s run %s/once.lua >%s/out 2>%s/err & pid=$!
    for i in $(seq 1 200); do [ -e %s/ready ] && break; sleep 0.05; done
    sleep 0.1; kill -INT $pid
    for i in $(seq 1 200); do [ -e %s/again ] && break; sleep 0.05; done
    sleep 0.1; kill -TERM $pid; wait $pid; echo "exit=$?"
  ]]):format(prog, dir, dir, dir, dir, dir))
  t.contains(out, "exit=143")
  t.eq(fs.read(dir .. "/out"), "caught: interrupted by SIGINT\nclosed\n")
  t.eq(fs.read(dir .. "/err"), "error: interrupted by SIGTERM\n")
end)

t.test("runtime.sleep sleeps; monotonic measures it", function()
  local a = runtime.monotonic()
  runtime.sleep(0.25)
  local slept = runtime.monotonic() - a
  t.ok(slept >= 0.25 and slept < 2, "slept " .. slept)
  t.raises(function() runtime.sleep(-1) end, "between 0 and 86400")
end)

-- While signals are deferred, one is recorded (runtime.interrupted()) and
-- interrupts nothing, not even a sleep; then `ending` decides.
for _, case in ipairs {
  { "a signal is recorded, and raised when deferring ends", "TERM",
    'runtime.defer_interrupts(false) print("not reached")', 143, "error: interrupted by SIGTERM\n" },
  { "a deferred signal that is cleared ends the run normally", "INT",
    'runtime.clear_interrupt() print("done anyway") return 0', 0, "" },
} do
  local name, signal, ending, code, stderr = table.unpack(case)
  t.test("defer_interrupts: " .. name, function()
    local dir = t.tmpdir()
    t.write(dir .. "/defer.lua", ([[
      local runtime = require "mxpc.runtime"
      runtime.defer_interrupts(true)
      io.open("%s/ready", "w"):close()
      while not runtime.interrupted() do runtime.sleep(0.01) end
      runtime.sleep(0.1)
      print("noticed " .. runtime.interrupted())
      %s
    ]]):format(dir, ending))
    local err, exit, out = interrupt(dir, dir .. "/defer.lua", signal)
    t.eq(exit, code)
    t.eq(out, "noticed SIG" .. signal .. "\n" .. (code == 0 and "done anyway\n" or ""))
    t.eq(err, stderr)
  end)
end

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


t.test("runtime.pcall raises a signal that came while f ran; pcall would swallow it", function()
  for _, fn in ipairs { "runtime.pcall", "pcall" } do
    local dir = t.tmpdir()
    -- f fails as a decoder does on bad input, and the caller takes a failure
    -- for "invalid input" and goes on: only a raised interruption ends the
    -- run. The signal is sent once f has started (it writes "ready") and
    -- comes while f still runs, so that plain pcall surely catches it.
    t.write(dir .. "/loop.lua", ([[
      local runtime = require "mxpc.runtime"
      local ok = %s(function()
        io.open("%s/ready", "w"):close()
        local started = runtime.monotonic()
        while runtime.monotonic() - started < 3 do math.abs(1) end
        error("not JSON")
      end)
      assert(not ok)
      io.stdout:write("the signal was swallowed")
    ]]):format(fn, dir))
    local err, exit, out = interrupt(dir, dir .. "/loop.lua", "INT")
    if fn == "runtime.pcall" then
      t.eq(exit, 130, err)
      t.eq(err, "error: interrupted by SIGINT\n")
    else
      t.eq(out, "the signal was swallowed", "plain pcall is the case runtime.pcall exists for")
    end
  end
end)

return t.run()
