-- Hooks: a user's Lua file that the stock workflows call at named points, so
-- that behaviour can change without editing the scripts (docs/hooks.md).
-- The file is --hooks FILE, else hooks.lua in the --scripts directory; it
-- returns a table of optional functions named after the points below.
-- Also the select_file hook combined with the selection options
-- (--files-larger-than, ...; mxpc.selection).
local errors = require "mxpc.error"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"
local selection = require "mxpc.selection"

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
    if errors.is(e, "interrupted") then error(e, 0) end -- a signal, not the file's fault
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
-- closed its own), connects on first use with the run's `connect` (env ->
-- connection; see for_run); such connections close with the run.
local function new_context(self, opts, workflow)
  local ctx = { workflow = workflow, options = opts, log = log }
  return setmetatable(ctx, { __index = function(t, k)
    if k ~= "db" or not rawget(t, "env") or not self.connect then return nil end
    local conn = assert(self.connect(t.env))
    self.owned[#self.owned + 1] = conn
    rawset(t, "db", conn)
    return conn
  end })
end

local runs = setmetatable({}, { __mode = "k" })

-- The hooks of the run with these options (loaded once per run: the command
-- line loads them before the workflow starts, the workflow finds them again).
-- `connect(env)`: how ctx.db connects when the run has not given one (the
-- workflow hands over its connect_database). Raises if the hooks file is bad.
function M.for_run(opts, workflow, connect)
  local self = runs[opts]
  if self then
    if workflow and not self.ctx.workflow then self.ctx.workflow = workflow end
    self.connect = connect or self.connect
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
  self = setmetatable({ path = path, fns = fns, owned = {}, connect = connect }, Hooks)
  self.ctx = new_context(self, opts, workflow)
  runs[opts] = self
  return self
end

-- Adds what the run knows to the context: set{env =, db =, storage =}.
function Hooks:set(fields)
  for k, v in pairs(fields) do rawset(self.ctx, k, v) end
  return self
end

-- Takes a field out of the context again (forget("db"): the run closed its
-- connection; a hook that uses ctx.db then connects anew).
function Hooks:forget(key)
  rawset(self.ctx, key, nil)
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
  local res = xpcall_hook(self.fns[name], errors.traceback, ...)
  if not res[1] then error(failure(self, name, res[2]), 0) end
  return table.unpack(res, 2, res.n)
end

-- Calls hook `name` with the context and `...`, if it is defined.
-- A dry run (mxpc.plan) calls none: it changes nothing, and only
-- select_file (see selector) chooses the files as in the real run.
function Hooks:call(name, ...)
  assert(KNOWN[name], "unknown hook point " .. tostring(name))
  if not self.fns[name] or require("mxpc.plan").dry() then return nil end
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
  local ok, e = runtime.pcall(self.call, self, "on_error", errors.normalize(err)) -- (a signal raises)
  if not ok then log.warn(errors.normalize(e).message) end
end

-- Closes the database connections the context opened.
function Hooks:__close()
  for _, conn in ipairs(self.owned) do conn:close() end
  self.owned = {}
end

-- --- which files a backup takes ---------------------------------------------------------

-- The choice of the options and the select_file hook, as a function of a
-- file ({uuid, name, size, changed, entity, has_contents}) -> true to take
-- it; nil when every file is taken without asking. The hook sees only files
-- the options took, and must answer true or false.
function M.selector(hooks, opts)
  local sel = selection.options(opts)
  local hook = hooks:has("select_file")
  if not sel and not hook then return nil end
  return function(f)
    if not selection.selects(sel, f) then return false end
    if not hook then return true end
    local take = invoke(hooks, "select_file", f)
    if type(take) ~= "boolean" then
      error(misuse(hooks, "select_file", "true or false, not " .. (take == nil and "nil" or ("a " .. type(take)))), 0)
    end
    return take
  end
end

return M
