-- Hooks files, and the select_file hook with the selection options, without servers.
local t = require "t"
local hooks = require "mxpc.hooks"
local args = require "mxpc.args"

local function hooks_file(text)
  local path = t.tmpdir() .. "/hooks.lua"
  t.write(path, text)
  return path
end

t.test("read: a table of known functions", function()
  local fns = assert(hooks.read(hooks_file("return { before_backup = function() end, select_file = function() end }")))
  t.eq(type(fns.before_backup), "function")
end)

t.test("read: unknown names are an error naming them, with the closest point", function()
  local path = hooks_file("return { befor_backup = function() end, after_restore = function() end, zzz = 1 }")
  local fns, err = hooks.read(path)
  t.eq(fns, nil)
  t.eq(err.code, "hooks")
  t.contains(err.message, "hooks file " .. path .. ": unknown hook names: befor_backup (did you mean before_backup?), zzz")
  t.contains(err.hint, "before_backup, select_file, after_backup")
end)

t.test("read: not a table, not functions, a syntax error, a failing chunk", function()
  local _, e1 = hooks.read(hooks_file("return 42"))
  t.contains(e1.message, "it must return a table of functions, it returned a number")
  local _, e2 = hooks.read(hooks_file("return { on_error = 'log' }"))
  t.contains(e2.message, "hooks must be functions: on_error is a string")
  local _, e3 = hooks.read(hooks_file("return {"))
  t.contains(e3.message, "expected")
  local _, e4 = hooks.read(hooks_file("error('no config here', 0)"))
  t.contains(e4.message, "it failed to load: no config here")
end)

local function run_hooks(text, opts)
  opts = opts or {}
  opts.hooks = hooks_file(text)
  return hooks.for_run(opts, "backup"), opts
end

t.test("call: context, arguments and results; a raising hook fails with its name", function()
  local h, opts = run_hooks([[
    return {
      before_backup = function(ctx) return ctx.workflow, ctx.options, ctx.env.name end,
      after_backup = function(ctx, summary) error("webhook down: " .. summary.files, 0) end,
      on_error = function(ctx, err) ctx.seen = err.message end,
    }]])
  t.eq(hooks.for_run(opts), h, "one per run")
  h:set { env = { name = "demo-app" } }
  local w, o, name = h:call("before_backup")
  t.eq(w, "backup")
  t.eq(o, opts)
  t.eq(name, "demo-app")
  t.eq(h:call("before_restore"), nil, "an undefined hook is not called")
  local err = t.raises(function() h:call("after_backup", { files = 3 }) end)
  t.eq(err.code, "hook")
  t.eq(err.message, ("hook after_backup (%s) failed: webhook down: 3"):format(opts.hooks))
  h:failed(err)
  t.eq(h.ctx.seen, err.message)
end)

t.test("call: an error object keeps its code and hint", function()
  local h = run_hooks([[
    local errors = require "mxpc.error"
    return { before_backup = function() errors.raise("refused", "orders are not balanced", "fix them first") end }]])
  local err = t.raises(function() h:call("before_backup") end)
  t.eq(err.code, "refused")
  t.contains(err.message, "failed: orders are not balanced")
  t.eq(err.hint, "fix them first")
end)

t.test("call: os.exit in a hook fails the hook instead of ending the process", function()
  local h = run_hooks([[
    local exit = os.exit -- taken while the file loads: the guarded one
    return {
      before_backup = function() os.exit(0) end,
      select_file = function() exit(true, true) end,
      after_backup = function() local ok, e = pcall(os.exit, 3); return ok, e end,
    }]])
  local err = t.raises(function() h:call("before_backup") end)
  t.eq(err.code, "hook")
  t.eq(err.message, ("hook before_backup (%s) failed: it tried to exit the process (os.exit(0)), which a hook may "
    .. "not do"):format(h.path))
  t.contains(err.hint, 'error("why", 0)')
  local sel = hooks.selector(h, {})
  t.raises(function() sel({ uuid = "a" }) end, "failed: it tried to exit the process (os.exit(true))")
  local ok, e = h:call("after_backup")
  t.eq(ok, false, "a hook that catches the error goes on")
  t.contains(e.message, "os.exit(3)")
  -- at load time too
  local _, lerr = hooks.read(hooks_file("os.exit(1)"))
  t.contains(lerr.message, "it failed to load: it tried to exit the process (os.exit(1))")
  -- outside hooks os.exit is the real one (a child process shows it)
  local process = require "mxpc.process"
  local script = t.tmpdir() .. "/exit.lua"
  t.write(script, ("assert(require('mxpc.hooks').read(%q)); os.exit(7)"):format(hooks_file("return {}")))
  local p <close> = assert(process.spawn({ t.program(), "run", script }))
  t.eq(p:wait().status, 7)
end)

t.test("restore_sql: a string or nil", function()
  t.eq(run_hooks("return { restore_sql = function() return 'select 1' end }"):restore_sql(), "select 1")
  t.eq(run_hooks("return { restore_sql = function() end }"):restore_sql(), nil)
  t.eq(run_hooks("return {}"):restore_sql(), nil)
  t.raises(function() run_hooks("return { restore_sql = function() return 1 end }"):restore_sql() end,
    ") must return a string of SQL or nil, not a number")
end)

t.test("on_error: its own failure does not replace the run's error", function()
  local h = run_hooks("return { on_error = function() error('oops') end }")
  h:failed({ message = "the real error" }) -- logs, does not raise
  t.ok(true)
end)

local FILES = {
  { uuid = "a", size = 100, entity = "System.FileDocument", changed = "2024-03-01 09:00:00" },
  { uuid = "b", size = 20 * 1024 * 1024, entity = "MyFirstModule.Attachment", changed = "2024-03-02 09:00:00" },
  { uuid = "c", size = 5000, entity = "MyFirstModule.Attachment", changed = "2024-02-01 09:00:00" },
  { uuid = "d", size = 0, entity = "System.Image" },
}

local function uuids(list)
  local out = {}
  for _, f in ipairs(list) do out[#out + 1] = (f.file or f).uuid end
  return table.concat(out, ",")
end

local function parse_backup(argv)
  local spec = {}
  for _, o in ipairs { { long = "files-larger-than", value = "SIZE" }, { long = "files-smaller-than", value = "SIZE" },
    { long = "files-changed-since", value = "DATE" }, { long = "files-of", value = "ENTITY", list = true } } do
    spec[#spec + 1] = o
  end
  return (args.parse(spec, argv, 1))
end

-- The files of `files` the selector of these hooks and options takes.
local function select(h, opts, files)
  local selects = hooks.selector(h, opts)
  local out = {}
  for _, f in ipairs(files) do
    if selects(f) then out[#out + 1] = f end
  end
  return out
end

t.test("selector: each option, combined, and with select_file", function()
  local none = run_hooks("return {}")
  t.eq(hooks.selector(none, {}), nil, "nothing selects: no selector, every file is taken")
  t.eq(uuids(select(none, parse_backup { "--files-larger-than", "100" }, FILES)), "b,c")
  t.eq(uuids(select(none, parse_backup { "--files-smaller-than", "10MB" }, FILES)), "a,c,d")
  t.eq(uuids(select(none, parse_backup { "--files-changed-since", "2024-03-01T09:00:00Z" }, FILES)), "a,b,d",
    "at or after; unknown dates pass")
  t.eq(uuids(select(none, parse_backup { "--files-of", "System.Image", "--files-of", "System.FileDocument" },
    FILES)), "a,d")
  t.eq(uuids(select(none, parse_backup { "--files-of", "MyFirstModule.Attachment", "--files-smaller-than", "1M" },
    FILES)), "c")
  local h = run_hooks("return { select_file = function(f) seen = (seen or 0) + 1; return f.size > 0 end }")
  t.eq(uuids(select(h, parse_backup { "--files-smaller-than", "1M" }, FILES)), "a,c")
  t.eq(seen, 3, "select_file sees only what the options took")
  t.raises(function() select(run_hooks("return { select_file = function() end }"), {}, FILES) end,
    ") must return true or false, not nil")
end)

t.test("options: contradictions are usage errors", function()
  local err = t.raises(function()
    require("mxpc.selection").options(parse_backup { "--files-larger-than", "10M", "--files-smaller-than", "1M" })
  end, "select no file")
  t.eq(err.code, "usage")
  t.eq(require("mxpc.selection").options({}), nil)
end)

t.test("ctx.db: the run's connection, else the run's connect on first use; forget drops it", function()
  local opened, closed = {}, 0
  local function connect(env)
    local conn = { env = env, close = function() closed = closed + 1 end }
    opened[#opened + 1] = conn
    return conn
  end
  local opts = { hooks = hooks_file("return { before_restore = function(ctx) return ctx.db end }") }
  local h <close> = hooks.for_run(opts, "restore", connect)
  local own = { name = "the run's" }
  h:set { env = { name = "demo-app" }, db = own }
  t.eq(h:call("before_restore"), own, "the run's own connection")
  t.eq(#opened, 0)
  h:forget("db")
  local conn = h:call("before_restore")
  t.eq(#opened, 1, "connected on first use")
  t.eq(conn.env.name, "demo-app")
  t.eq(h:call("before_restore"), conn, "once")
  h:__close()
  t.eq(closed, 1, "closed with the run")
  local bare = hooks.for_run({ hooks = false }, "backup"):set { env = { name = "x" } }
  t.eq(bare.ctx.db, nil, "without a connect function, no connection")
end)

return t.run()
