-- Hooks: a user's Lua file that the stock workflows call at named points, so
-- that behaviour can change without editing the scripts (docs/hooks.md).
-- The file is --hooks FILE, else hooks.lua in the --scripts directory; it
-- returns a table of optional functions named after the points below.
-- Also the file selection of a backup (--files-larger-than, ...), which
-- combines with the select_file hook.
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"

local M = {}

-- Every hook point, in the order a run reaches them.
M.POINTS = { "before_backup", "select_file", "after_backup",
  "before_restore", "restore_sql", "after_restore", "on_error" }
local KNOWN = {}
for _, name in ipairs(M.POINTS) do KNOWN[name] = true end

-- --- the hooks file -------------------------------------------------------------------

-- Where the hooks come from: --hooks FILE, else DIR/hooks.lua for --scripts
-- DIR (or MXPC_SCRIPTS), else nowhere. opts.hooks = false: no hooks (a
-- restore's safety backup).
function M.locate(opts)
  if opts.hooks == false then return nil end
  if opts.hooks then return opts.hooks end
  local dir = runtime.scripts_dir()
  if dir and dir ~= "" then
    local path = dir .. "/hooks.lua"
    local st = fs.stat(path)
    if st and st.type == "file" then return path end
  end
  return nil
end

-- --- a hook may not end the process -------------------------------------------------

-- os.exit from a hook would skip the run's cleanup (a stopped app left at 0
-- replicas, pg_dump left running, the working directory left behind) and
-- end with the hook's status. While a hook runs (or its file loads), os.exit
-- raises instead: the hook fails, and with it the run, the normal way. Outside
-- hooks it is the real one.
local in_hook = 0
local real_exit = os.exit

local function guarded_exit(code, ...)
  if in_hook == 0 then return real_exit(code, ...) end
  error(errors.new { code = "hook",
    message = ("it tried to exit the process (os.exit(%s)), which a hook may not do"):format(
      code == nil and "" or tostring(code)),
    hint = 'to fail the run, raise an error: error("why", 0) (docs/hooks.md)' }, 2)
end

-- Runs xpcall(fn, handler, ...) as hook code: os.exit raises meanwhile.
local function xpcall_hook(fn, handler, ...)
  if os.exit ~= guarded_exit then real_exit, os.exit = os.exit, guarded_exit end
  in_hook = in_hook + 1
  local res = table.pack(xpcall(fn, handler, ...))
  in_hook = in_hook - 1
  return res
end

local function hooks_error(path, message, hint)
  return errors.new { code = "hooks", message = ("hooks file %s: %s"):format(path, message),
    hint = hint or "see docs/hooks.md" }
end

-- Loads and checks a hooks file: the table of functions, or nil, err.
function M.read(path)
  local chunk, lerr = loadfile(path)
  if not chunk then return nil, hooks_error(path, lerr) end
  local res = xpcall_hook(chunk, function(e) return e end)
  local ok, t = res[1], res[2]
  if not ok then
    local e = errors.normalize(t)
    return nil, hooks_error(path, "it failed to load: " .. e.message, e.hint)
  end
  if type(t) ~= "table" then
    return nil, hooks_error(path, ("it must return a table of functions, it returned a %s"):format(type(t)))
  end
  local unknown, wrong = {}, {}
  for k, v in pairs(t) do
    if not KNOWN[k] then
      unknown[#unknown + 1] = tostring(k)
    elseif type(v) ~= "function" then
      wrong[#wrong + 1] = ("%s is a %s"):format(k, type(v))
    end
  end
  table.sort(unknown)
  if #unknown > 0 then
    local args = require "mxpc.args"
    local names = {}
    for _, u in ipairs(unknown) do names[#names + 1] = u .. args.did_you_mean(u, M.POINTS) end
    return nil, hooks_error(path, ("unknown hook name%s: %s"):format(#unknown > 1 and "s" or "",
      table.concat(names, ", ")), "the hook points are " .. table.concat(M.POINTS, ", ") .. " (docs/hooks.md)")
  end
  table.sort(wrong)
  if #wrong > 0 then
    return nil, hooks_error(path, "hooks must be functions: " .. table.concat(wrong, ", "))
  end
  return t
end

-- --- the hooks of one run ----------------------------------------------------------------

local Hooks = {}
Hooks.__index = Hooks

-- The context every hook gets. ctx.db, when the run has not given one (or
-- closed its own), connects on first use; such connections close with the run.
local function new_context(self, opts, workflow)
  local ctx = { workflow = workflow, options = opts, log = log }
  return setmetatable(ctx, { __index = function(t, k)
    if k ~= "db" or not rawget(t, "env") then return nil end
    local conn = assert(require("mxpc.workflow").connect_database(t.env))
    self.owned[#self.owned + 1] = conn
    rawset(t, "db", conn)
    return conn
  end })
end

local runs = setmetatable({}, { __mode = "k" })

-- The hooks of the run with these options (loaded once per run: the command
-- line loads them before the workflow starts, the workflow finds them again).
-- Raises if the hooks file is bad.
function M.for_run(opts, workflow)
  local self = runs[opts]
  if self then
    if workflow and not self.ctx.workflow then self.ctx.workflow = workflow end
    return self
  end
  local path = M.locate(opts)
  local fns = {}
  if path then
    fns = assert(M.read(path))
    log.info("hooks loaded", { file = path, hooks = (function()
      local names = {}
      for _, name in ipairs(M.POINTS) do if fns[name] then names[#names + 1] = name end end
      return #names > 0 and table.concat(names, ",") or "none"
    end)() })
  end
  self = setmetatable({ path = path, fns = fns, owned = {} }, Hooks)
  self.ctx = new_context(self, opts, workflow)
  runs[opts] = self
  return self
end

-- Adds what the run knows to the context: set{env =, db =, storage =}.
function Hooks:set(fields)
  for k, v in pairs(fields) do rawset(self.ctx, k, v) end
  return self
end

function Hooks:has(name) return self.fns[name] ~= nil end

-- The error a raising hook becomes: its own code and hint if it raised an
-- error object, the message prefixed with the hook's name.
local function failure(self, name, e)
  e = errors.normalize(e)
  if errors.is(e, "interrupted") then return e end
  return errors.new { code = e.code ~= "error" and e.code or "hook",
    message = ("hook %s (%s) failed: %s"):format(name, self.path, e.message), hint = e.hint,
    traceback = e.traceback }
end

-- A hook that answered what it must not.
local function misuse(self, name, what)
  return errors.new { code = "hook", message = ("hook %s (%s) must return %s"):format(name, self.path, what),
    hint = "see docs/hooks.md" }
end

-- Runs hook `name` with `...` and returns what it returns; a hook that
-- raises makes this raise (the run fails).
local function invoke(self, name, ...)
  log.debug("calling hook", { hook = name })
  local res = xpcall_hook(self.fns[name], function(e)
    e = errors.normalize(e)
    if not e.traceback then e.traceback = debug.traceback(e.message, 2) end
    return e
  end, ...)
  if not res[1] then error(failure(self, name, res[2]), 0) end
  return table.unpack(res, 2, res.n)
end

-- Calls hook `name` with the context and `...`, if it is defined.
function Hooks:call(name, ...)
  assert(KNOWN[name], "unknown hook point " .. tostring(name))
  if not self.fns[name] then return nil end
  return invoke(self, name, self.ctx, ...)
end

-- restore_sql: the SQL to run inside the restore transaction, or nil.
function Hooks:restore_sql()
  local sql = self:call("restore_sql")
  if sql ~= nil and type(sql) ~= "string" then
    error(misuse(self, "restore_sql", "a string of SQL or nil, not a " .. type(sql)), 0)
  end
  return sql ~= "" and sql or nil
end

-- on_error: told about the error that ends the run, where it happened (before
-- the run cleans up). Its own failure is logged; the run's error stays.
function Hooks:failed(err)
  if not self.fns.on_error or self.in_error then return end
  self.in_error = true
  local ok, e = pcall(self.call, self, "on_error", errors.normalize(err))
  if not ok then log.warn(errors.normalize(e).message) end
end

-- Closes the database connections the context opened.
function Hooks:__close()
  for _, conn in ipairs(self.owned) do conn:close() end
  self.owned = {}
end

-- --- which files a backup takes ---------------------------------------------------------

local UNITS = { [""] = 1, b = 1,
  k = 1024, kb = 1000, kib = 1024, m = 1024 ^ 2, mb = 1000 ^ 2, mib = 1024 ^ 2,
  g = 1024 ^ 3, gb = 1000 ^ 3, gib = 1024 ^ 3, t = 1024 ^ 4, tb = 1000 ^ 4, tib = 1024 ^ 4 }

-- The largest size an option may give: 2^53 bytes (8 PiB), exact in a double.
local MAX_SIZE = 2 ^ 53

-- "10MB" (10^7), "10MiB" or "10M" (10 * 2^20), "512k", "1.5G", "4096" ->
-- bytes (a fraction of a byte rounds down); nil, why for anything else,
-- "1." or ".5" or a size beyond 8 PiB included.
function M.parse_size(text)
  local why = "expected a size such as 4096, 512k, 10MB or 10MiB"
  local number, unit = tostring(text):match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  local factor = unit and UNITS[unit:lower()]
  if not number or not factor or number:sub(-1) == "." then return nil, why end
  local bytes = tonumber(number) * factor
  if bytes > MAX_SIZE then return nil, "too large: " .. why .. " (at most 8 PiB)" end
  return math.tointeger(math.floor(bytes))
end

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function days_in_month(y, m)
  if m == 2 then return (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28 end
  return ({ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
end

-- "2024-03-01", "2024-03-01T09:30", "2024-03-01T09:30:15.5Z",
-- "2024-03-01 09:30:15+02:00" -> seconds since 1970 (UTC; a time without a
-- zone is UTC, as Mendix stores dates); nil, why otherwise. Every part is
-- checked as ISO 8601 has it: a day of that month, hours 00-23, minutes and
-- seconds 00-59 (60: a leap second), a fraction with digits, and a zone Z or
-- an offset ±hh:mm (±hhmm, ±hh) of at most 14 hours with minutes below 60.
function M.parse_time(text)
  local s = tostring(text)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  local why = "expected a date YYYY-MM-DD or an ISO 8601 time such as 2024-03-01T09:30:00Z"
  if not y then return nil, why end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) then return nil, "no such day: " .. why end
  local h, mi, sec, zone = 0, 0, 0, ""
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not hh then return nil, why end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, frac, tail2 = tail:match("^:(%d%d)([.,]?%d*)(.*)$")
    if ss then
      if frac == "." or frac == "," then return nil, "a fraction of a second needs digits: " .. why end
      sec, tail = tonumber(ss .. frac:gsub(",", ".")), tail2
    end
    zone = tail
  end
  if h > 23 or mi > 59 or sec >= 61 then return nil, "no such time: " .. why end
  local offset = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then
      sign, zh = zone:match("^([+-])(%d%d)$")
      zm = "00"
    end
    if not sign then return nil, why end
    zh, zm = tonumber(zh), tonumber(zm)
    if zm > 59 or zh * 60 + zm > 14 * 60 then
      return nil, ("no such time-zone offset %s: offsets run from -14:00 to +14:00, minutes below 60"):format(zone)
    end
    offset = (zh * 3600 + zm * 60) * (sign == "-" and -1 or 1)
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
end

-- The selection the options ask for ({larger =, smaller =, since =, of =}),
-- or nil when they ask for none. Raises a usage error for a bad value.
function M.selection_options(opts)
  local args = require "mxpc.args"
  local sel = {}
  local function size(key, option)
    if opts[key] == nil then return end
    local n, why = M.parse_size(opts[key])
    if not n then args.usage_error("invalid %s %q: %s", option, opts[key], why) end
    return n
  end
  sel.larger = size("files_larger_than", "--files-larger-than")
  sel.smaller = size("files_smaller_than", "--files-smaller-than")
  if opts.files_changed_since then
    local t, why = M.parse_time(opts.files_changed_since)
    if not t then args.usage_error("invalid --files-changed-since %q: %s", opts.files_changed_since, why) end
    sel.since = t
  end
  if opts.files_of then
    sel.of = {}
    for _, e in ipairs(opts.files_of) do sel.of[e] = true end
  end
  if sel.larger and sel.smaller and sel.larger >= sel.smaller - 1 then
    args.usage_error("--files-larger-than %s and --files-smaller-than %s select no file",
      opts.files_larger_than, opts.files_smaller_than)
  end
  if not next(sel) then return nil end
  return sel
end

-- Whether a file ({uuid, name, size, changed, entity, has_contents}) passes
-- the option selection `sel` (nil: every file). A file whose change date is
-- unknown passes --files-changed-since.
function M.option_selects(sel, f)
  if not sel then return true end
  if sel.larger and not (f.size and f.size > sel.larger) then return false end
  if sel.smaller and not (f.size and f.size < sel.smaller) then return false end
  if sel.of and not sel.of[f.entity] then return false end
  if sel.since and f.changed then
    local t = M.parse_time(f.changed)
    if t and t < sel.since then return false end
  end
  return true
end

-- The choice of the options and the select_file hook, as a function of a
-- file ({uuid, name, size, changed, entity, has_contents}) -> true to take
-- it; nil when every file is taken without asking. The hook sees only files
-- the options took, and must answer true or false.
function M.selector(hooks, opts)
  local sel = M.selection_options(opts)
  local hook = hooks:has("select_file")
  if not sel and not hook then return nil end
  return function(f)
    if not M.option_selects(sel, f) then return false end
    if not hook then return true end
    local take = invoke(hooks, "select_file", f)
    if type(take) ~= "boolean" then
      error(misuse(hooks, "select_file", "true or false, not " .. (take == nil and "nil" or ("a " .. type(take)))), 0)
    end
    return take
  end
end

-- 3000 -> "3,000"
function M.thousands(n)
  local s = tostring(n)
  repeat
    local k
    s, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until k == 0
  return s
end

return M
