-- A small test harness for Lua tests run inside the program:
--   local t = require "t"
--   t.test("name", function() t.eq(1 + 1, 2) end)
--   return t.run()          -- prints results; the exit code is the failures
local t = {}
local tests = {}
local cleanups = {}

function t.test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

local function repr(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function fail(msg, level) error(msg, (level or 1) + 2) end

function t.eq(actual, expected, what)
  if actual ~= expected then
    fail(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", repr(expected), repr(actual)))
  end
end

function t.same(actual, expected, what)
  if not deep_equal(actual, expected) then
    local ok, cjson = pcall(require, "cjson")
    local show = ok and function(v) return (pcall(cjson.encode, v)) and cjson.encode(v) or tostring(v) end or tostring
    fail(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", show(expected), show(actual)))
  end
end

function t.ok(v, what)
  if not v then fail(what or "expected a true value") end
  return v
end

-- Calls fn and returns the error it raises; fails if it raises nothing or if
-- the error's text does not contain `pattern` (plain match).
function t.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then fail("expected an error" .. (pattern and (" containing " .. repr(pattern)) or "")) end
  if pattern and not tostring(err):find(pattern, 1, true) then
    fail(("expected an error containing %s, got %s"):format(repr(pattern), repr(tostring(err))))
  end
  return err
end

-- Returns true if s contains the plain text sub.
function t.contains(s, sub, what)
  if type(s) ~= "string" or not s:find(sub, 1, true) then
    fail(("%sexpected %s to contain %s"):format(what and (what .. ": ") or "", repr(s), repr(sub)))
  end
end

-- Writes text to a new file at path.
function t.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A fresh temporary directory, removed after the run.
function t.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  cleanups[#cleanups + 1] = function() os.execute("rm -rf '" .. dir .. "'") end
  return dir
end

-- Runs a shell command, returning its stdout, exit code.
-- Runs fn when the tests are done (in reverse order), as t.tmpdir's removal.
function t.cleanup(fn) cleanups[#cleanups + 1] = fn end

function t.sh(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- The local stack's settings (tests/stack/up writes env.sh; ctest gets its
-- path in MXPC_STACK_ENV). Fails, never skips, when there is no stack.
function t.stack_env()
  local path = os.getenv("MXPC_STACK_ENV")
  if not path or path == "" then
    error("MXPC_STACK_ENV is not set: start the stack (tests/stack/up) and point MXPC_STACK_ENV at its env.sh", 2)
  end
  local f, err = io.open(path)
  if not f then error("cannot read the stack's env.sh: " .. err, 2) end
  local env = {}
  for line in f:lines() do
    local k, v = line:match("^export ([%w_]+)=(.*)$")
    if k then env[k] = v:gsub("^'(.*)'$", "%1") end
  end
  f:close()
  return env
end

-- The program under test (the binary running this file).
function t.program()
  local i = -1
  while arg[i - 1] ~= nil do i = i - 1 end
  return arg[i]
end

function t.run()
  local passed, failed = 0, 0
  local only = os.getenv("T_ONLY")
  for _, case in ipairs(tests) do
    if not only or case.name:find(only, 1, true) then
      local ok, err = xpcall(case.fn, debug.traceback)
      if ok then
        passed = passed + 1
        io.stdout:write("ok   ", case.name, "\n")
      else
        failed = failed + 1
        io.stdout:write("FAIL ", case.name, "\n  ", tostring(err):gsub("\n", "\n  "), "\n")
      end
    end
  end
  for i = #cleanups, 1, -1 do cleanups[i]() end
  io.stdout:write(("%d passed, %d failed\n"):format(passed, failed))
  return failed == 0 and 0 or 1
end

return t
