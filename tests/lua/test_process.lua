local t = require "t"
local process = require "mxpc.process"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"

local function read_all(p)
  local parts = {}
  for chunk in function() return p:read() end do parts[#parts + 1] = chunk end
  return table.concat(parts)
end

t.test("stdout pipe and exit status", function()
  local p <close> = assert(process.spawn({ "sh", "-c", "printf hello; echo oops >&2; exit 3" }, { stdout = "pipe" }))
  t.eq(read_all(p), "hello")
  local r = assert(p:wait())
  t.eq(r.status, 3)
  t.eq(r.stderr, "oops\n")
end)

t.test("poll says whether a child has ended without waiting; wait then reaps it", function()
  local p <close> = assert(process.spawn({ "sh", "-c", "echo oops >&2; sleep 0.3; exit 3" }))
  t.eq(p:poll(), false, "still running")
  local ended = false
  for _ = 1, 100 do
    if p:poll() then ended = true break end
    os.execute("sleep 0.05")
  end
  t.ok(ended, "ended")
  t.eq(p:poll(), true, "and stays ended")
  local r = p:wait()
  t.eq(r.status, 3)
  t.contains(r.stderr, "oops")
end)

t.test("stdin pipe streams through a filter", function()
  local p <close> = assert(process.spawn({ "sha256sum" }, { stdin = "pipe", stdout = "pipe" }))
  local chunk = ("\0"):rep(65536)
  for _ = 1, 64 do assert(p:write(chunk)) end -- 4 MiB: more than any pipe buffer
  p:close_stdin()
  local out = read_all(p)
  local expected = t.sh("head -c 4194304 /dev/zero | sha256sum")
  t.eq(out, expected)
  t.eq(p:wait().status, 0)
end)

t.test("environment additions reach the child, not its command line", function()
  local p <close> = assert(process.spawn({ "sh", "-c", 'printf "%s" "$MXPC_TEST_SECRET"; cat /proc/$$/cmdline' },
    { env = { MXPC_TEST_SECRET = "s3cr3t" }, stdout = "pipe" }))
  local out = read_all(p)
  t.eq(out:sub(1, 6), "s3cr3t")
  t.ok(not out:sub(7):find("s3cr3t", 1, true), "not on the command line")
  t.eq(p:wait().status, 0)
end)

t.test("withheld variables of our own environment reach no child; the program withholds its secrets", function()
  local dir = t.tmpdir()
  local script = dir .. "/child.lua"
  local f = assert(io.open(script, "w"))
  f:write([[
local process = require "mxpc.process"
local function child_sees()
  local p <close> = assert(process.spawn({ "sh", "-c", 'printf "%s,%s" "${MXPC_TEST_KEPT-unset}" "${MXPC_TEST_HIDDEN-unset}"' },
    { stdout = "pipe" }))
  local out = p:read(100) or ""
  p:wait()
  return out
end
local before = child_sees()
assert(process.withhold("MXPC_TEST_HIDDEN"))
assert(process.withhold("MXPC_TEST_HIDDEN")) -- twice is fine
local bad, msg = process.withhold("A=B")
io.write(before, " ", child_sees(), " ", tostring(bad), " ", msg, "\n")
]])
  f:close()
  local p <close> = assert(process.spawn({ t.program(), "run", script },
    { env = { MXPC_TEST_KEPT = "k", MXPC_TEST_HIDDEN = "h" }, stdout = "pipe" }))
  local out = read_all(p)
  t.eq(p:wait().status, 0)
  t.eq(out, "k,h k,unset nil cannot withhold A=B from child processes: not a variable name\n")
  -- the program itself (main.run) withholds the secrets it reads from its environment
  local fake = dir .. "/pg_dump"
  local g = assert(io.open(fake, "w"))
  g:write('#!/bin/sh\nprintf "%s" "${MENDIX_API_KEY-unset},${AZURE_STORAGE_KEY-unset},${AZURE_STORAGE_SAS_TOKEN-unset}" >"$0.seen"\n')
  g:close()
  assert(os.execute("chmod +x " .. fake))
  local main_script = dir .. "/main.lua"
  g = assert(io.open(main_script, "w"))
  g:write("require('mxpc.main').run({'version'}); local p <close> = assert(require('mxpc.process').spawn({arg[1]})); p:wait()\n")
  g:close()
  local q <close> = assert(process.spawn({ t.program(), "run", main_script, fake },
    { env = { MENDIX_API_KEY = "mk", AZURE_STORAGE_KEY = "ak", AZURE_STORAGE_SAS_TOKEN = "sv" }, stdout = "null" }))
  t.eq(q:wait().status, 0)
  t.eq(fs.read(fake .. ".seen"), "unset,unset,unset")
end)

t.test("stdout to a file (mode 0600) and stdin from a file", function()
  local dir = t.tmpdir()
  local p <close> = assert(process.spawn({ "printf", "data" }, { stdout = { file = dir .. "/out" } }))
  t.eq(p:wait().status, 0)
  t.eq(fs.read(dir .. "/out"), "data")
  t.eq(fs.stat(dir .. "/out").mode, 384)
  local q <close> = assert(process.spawn({ "tr", "a-z", "A-Z" }, { stdin = { file = dir .. "/out" }, stdout = "pipe" }))
  t.eq(read_all(q), "DATA")
  q:wait()
end)

t.test("a pipeline: one child's stdout is the next one's stdin", function()
  local a <close> = assert(process.spawn({ "sh", "-c", "seq 1 100000; echo done >&2" }, { stdout = "pipe" }))
  local b <close> = assert(process.spawn({ "wc", "-l" }, { stdin = a, stdout = "pipe" }))
  t.eq(read_all(b), "100000\n")
  t.eq(b:wait().status, 0)
  local ra = a:wait()
  t.eq(ra.status, 0)
  t.eq(ra.stderr, "done\n")
  t.raises(function() process.spawn({ "cat" }, { stdin = a }) end, "no stdout pipe")
end)

t.test("a child that stops reading is not a write error", function()
  local p <close> = assert(process.spawn({ "head", "-c", "10" }, { stdin = "pipe" }))
  local chunk = ("x"):rep(65536)
  local stopped = false
  for _ = 1, 100 do
    local ok = p:write(chunk)
    if ok == false then stopped = true break end
  end
  t.ok(stopped, "write reports that the child stopped reading")
  t.eq(p:wait().status, 0)
end)

t.test("stderr is kept up to a bound", function()
  local p <close> = assert(process.spawn({ "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' e >&2" }, { stderr_max = 1000 }))
  local r = p:wait()
  t.eq(#r.stderr, 1000 + #"\n[...]")
end)

t.test("a missing command is not_found with a hint; misuse raises", function()
  local p, err = process.spawn({ "mxpc-no-such-command" })
  t.eq(p, nil)
  t.ok(errors.is(err, "not_found"))
  t.contains(err.message, "cannot run mxpc-no-such-command")
  t.contains(err.hint, "PATH")
  t.raises(function() process.spawn({}) end, "the command is empty")
  t.raises(function() process.spawn({ "true" }, { stdout = "tty" }) end, "must be \"pipe\"")
  local _, ferr = process.spawn({ "cat" }, { stdin = { file = "/nonexistent/x" } })
  t.eq(ferr.code, "io")
end)

t.test("closing kills a running child; a closed handle raises", function()
  local p = assert(process.spawn({ "sleep", "30" }))
  local pid = p:pid()
  t.contains(tostring(p), "process (sleep, pid")
  p:close()
  t.eq(tostring(p), "process (sleep, closed)")
  local _, code = t.sh("kill -0 " .. pid)
  t.ok(code ~= 0, "child is gone")
  t.raises(function() p:wait() end, "closed process")
  p:close()
end)


-- psql --single-transaction commits at the end of its input: a child that is
-- closed (killed) must never see that end, even one slow to die
t.test("closing a child never lets it see the end of its input", function()
  local dir = t.tmpdir()
  local mark = dir .. "/input-ended"
  local p = assert(process.spawn({ "sh", "-c", "trap '' TERM; echo ready; cat > /dev/null; touch " .. mark },
    { stdin = "pipe", stdout = "pipe" }))
  t.eq(p:read(), "ready\n")
  assert(p:write("BEGIN;\n"))
  p:close()
  os.execute("sleep 0.2")
  t.eq(fs.stat(mark), nil, "the child did not see the end of its input")
end)
t.test("SIGINT while waiting for a child: exit 130, child killed", function()
  local dir = t.tmpdir()
  local f = assert(io.open(dir .. "/w.lua", "w"))
  f:write(([[
    local process = require "mxpc.process"
    local p <close> = assert(process.spawn({"sh", "-c", "echo $$ > %s/child; exec sleep 30"}))
    io.open("%s/ready", "w"):close()
    p:wait()
  ]]):format(dir, dir))
  f:close()
  local out = t.sh(([[
    %s run %s/w.lua 2>%s/err & pid=$!
    for i in $(seq 1 200); do [ -s %s/child ] && [ -e %s/ready ] && break; sleep 0.05; done
    kill -INT $pid; wait $pid; echo "exit=$?"
    kill -0 $(cat %s/child) 2>/dev/null && echo alive || echo dead
  ]]):format(t.program(), dir, dir, dir, dir, dir))
  t.contains(out, "exit=130")
  t.contains(out, "dead")
  t.eq(fs.read(dir .. "/err"), "error: interrupted by SIGINT\n")
end)

t.test("how a child ended: exit status, or killed by a signal with its name", function()
  local p <close> = assert(process.spawn({ "sh", "-c", "exit 3" }))
  local r = p:wait()
  t.eq(r.status, 3)
  t.eq(r.reason, "exit status 3")
  local q <close> = assert(process.spawn({ "sh", "-c", "echo dying >&2; kill -9 $$" }))
  local k = q:wait()
  t.eq(k.status, nil)
  t.eq(k.signal, 9)
  t.eq(k.reason, "killed by signal 9 (SIGKILL)")
  t.eq(k.stderr, "dying\n")
  local z <close> = assert(process.spawn({ "true" }))
  t.eq(z:wait().reason, "exit status 0")
end)

t.test("stock Lua starts children only through mxpc.process (no shell)", function()
  local src = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set")
  local found, files = {}, 0
  local function scan(dir)
    for _, name in ipairs(assert(fs.dir(dir))) do
      local path = dir .. "/" .. name
      if fs.stat(path).type == "directory" then
        scan(path)
      elseif name:match("%.lua$") then
        files = files + 1
        local n = 0
        for line in io.lines(path) do
          n = n + 1
          if line:find("os%.execute") or line:find("io%.popen") then found[#found + 1] = path:sub(#src + 2) .. ":" .. n end
        end
      end
    end
  end
  scan(src .. "/lua")
  scan(src .. "/scripts")
  t.ok(files >= 10, "the stock files were found")
  t.same(found, {}, "os.execute / io.popen")
end)

return t.run()
