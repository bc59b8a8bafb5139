-- The interactive prompt: explore an environment with every module loaded.
-- A line is first tried as an expression ("return <line>"), then as a
-- statement; an unfinished chunk continues on the next line (">> "). Every
-- chunk runs in a protected call; an error prints one line (the traceback with
-- --debug) and Ctrl-C stops the running chunk, not the prompt. Results are
-- printed through the redaction, so a secret the session learned never shows;
-- a table too wide for one line prints over several. help() (repl_help,
-- from repl_docs), env "name" (repl_env) and Tab completion (repl_complete)
-- make it a place to explore.
local complete = require "mxpc.repl_complete"
local console = require "mxpc.console"
local errors = require "mxpc.error"
local help = require "mxpc.repl_help"
local log = require "mxpc.log"
local repl_env = require "mxpc.repl_env"
local runtime = require "mxpc.runtime"

local repl = {}

-- Modules ready to use at the prompt, by short name (those this build has).
local MODULES = { archive = "archive", aws = "aws", backup_archive = "backup_archive", errors = "error", fs = "fs",
  k8s = "k8s",
  fileset = "fileset", log = "log", pg = "pg", process = "process", runtime = "runtime", s3 = "s3", wf = "workflow" }

-- A Secret object (kind Secret, or an item of a SecretList, which has no
-- kind but a `type` and `data`) is shown with its keys and without its
-- values: they are credentials, and base64 hides nothing (k8s.secret_data
-- decodes them, with the credentials registered for redaction).
local function is_secret(v)
  return v.kind == "Secret" or (v.kind == nil and type(v.metadata) == "table" and type(v.type) == "string"
    and (type(v.data) == "table" or type(v.stringData) == "table"))
end

local function without_values(secret)
  local copy = {}
  for k, x in pairs(secret) do copy[k] = x end
  for _, field in ipairs { "data", "stringData" } do
    if type(secret[field]) == "table" then
      copy[field] = {}
      for k in pairs(secret[field]) do copy[field][k] = "***" end
    end
  end
  return copy
end

-- The keys of a table in the order they print: the array part first (by
-- show), then numbers and strings sorted, other keys by type.
local function sorted_keys(v)
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

-- A table prints on one line when that fits in WIDTH columns, else one
-- field per line, indented by two spaces a level; tables deeper than
-- DEPTH print as {...}, and at most ITEMS fields of one table are shown.
local WIDTH, DEPTH, ITEMS = 78, 3, 50

-- A value with a metatable prints as tostring does when it has a
-- __tostring (handles, error objects), else as a table.
local function as_text(v)
  local mt = getmetatable(v)
  return type(v) ~= "table" or (mt ~= nil and (type(mt) ~= "table" or rawget(mt, "__tostring") ~= nil))
end

-- `indent`: the column the value starts at; `flat`: on one line whatever
-- its width.
local function show(v, depth, seen, indent, flat)
  depth, seen, indent = depth or 0, seen or {}, indent or 0
  if type(v) == "table" and not getmetatable(v) and is_secret(v) then v = without_values(v) end
  -- redacted before quoting (a secret with a quote in it is still found),
  -- then controls and bytes that are not UTF-8 escaped: a line break in a
  -- value never breaks the layout
  if type(v) == "string" then return '"' .. log.escape((log.redact(v):gsub('[\\"]', "\\%0"))) .. '"' end
  if as_text(v) then return log.escape(log.redact(tostring(v))) end
  if seen[v] or depth >= DEPTH then return "{...}" end
  seen[v] = true
  local fields, n = {}, #v
  for i = 1, n do fields[#fields + 1] = { value = v[i] } end
  for _, k in ipairs(sorted_keys(v)) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      local name = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or ("[" .. show(k, depth + 1, seen) .. "]")
      fields[#fields + 1] = { name = name, value = v[k] }
    end
  end
  local function render(one_line)
    local parts = {}
    for i, f in ipairs(fields) do
      if i > ITEMS then
        parts[#parts + 1] = "..."
        break
      end
      local text = show(f.value, depth + 1, seen, indent + 2, one_line)
      parts[#parts + 1] = f.name and (f.name .. " = " .. text) or text
    end
    if one_line then return "{" .. table.concat(parts, ", ") .. "}" end
    local pad = (" "):rep(indent + 2)
    return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. "\n" .. (" "):rep(indent) .. "}"
  end
  local text = render(true)
  if not flat and indent + #text > WIDTH then text = render(false) end
  seen[v] = nil
  return text
end
repl.show = show

-- One line of output: each part redacted and escaped (nothing from outside
-- reaches the terminal raw), the parts separated by tabs.
local function out(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = log.escape(log.redact(tostring(parts[i]))) end
  io.stdout:write(table.concat(parts, "\t", 1, parts.n), "\n")
  io.stdout:flush()
end

-- A text of several lines (a traceback, a table), each line through out;
-- tabs at the start of a line become two spaces each.
local function out_lines(text)
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local indent = line:match("^\t*")
    out(("  "):rep(#indent) .. line:sub(#indent + 1))
  end
end

-- The results of a chunk: on one line separated by tabs, or one after the
-- other when a table takes several lines. `nil, err` with an error object
-- shows the error and its hint as a raised error does.
local function out_results(results)
  local err = results[2]
  if results.n == 2 and results[1] == nil and errors.is(err) then
    out("nil")
    out("error: " .. err.message)
    if err.hint then out("hint: " .. err.hint) end
    return
  end
  local shown, lines = {}, false
  for i = 1, results.n do
    shown[i] = show(results[i])
    lines = lines or shown[i]:find("\n", 1, true) ~= nil
  end
  if lines then
    for i = 1, results.n do out_lines(shown[i]) end
  else
    out(table.unpack(shown, 1, results.n))
  end
end

-- Compiles a chunk: expression first, then statement. Returns the function,
-- or nil, message, incomplete (true when more lines could finish it).
local function compile(src, env)
  local fn = load("return " .. src, "=stdin", "t", env)
  if fn then return fn end
  local err
  fn, err = load(src, "=stdin", "t", env)
  if fn then return fn end
  return nil, err, err:find("<eof>$") ~= nil
end

local traceback = errors.traceback

-- The globals of the prompt: the modules by short name, help, env, show,
-- print, then Lua's. Returns the table and the names of the modules loaded.
-- opts: namespace, kubeconfig, context (for env).
function repl.scope(opts)
  opts = opts or {}
  local env = setmetatable({}, { __index = _G })
  local loaded = {}
  for name, module in pairs(MODULES) do
    local ok, m = pcall(require, "mxpc." .. module)
    if ok then
      env[name] = m
      loaded[#loaded + 1] = name
    end
  end
  table.sort(loaded)
  env.show = function(v) out_lines(show(v)) end
  env.print = out -- redacted and escaped like every other output here
  env.help = function(...)
    local lines, why = help.text(env, ...)
    out_lines(table.concat(lines or { why }, "\n"))
  end
  env.env = function(a, b) return repl_env.resolve(opts, a, b) end
  return env, loaded
end

function repl.run(opts)
  opts = opts or {}
  local interactive = console.interactive()
  local env, loaded = repl.scope(opts)
  local function completions(word) return complete.candidates(env, word) end
  local history = os.getenv("HOME") and (os.getenv("HOME") .. "/.mxpc-data-migration_history")
  if interactive then
    if history then console.load_history(history) end
    out(("%s %s: Lua %s with %s loaded; help() explains, Tab completes, Ctrl-D leaves"):format(runtime.program,
      runtime.version, _VERSION:match("%d.*"), table.concat(loaded, ", ")))
  end

  local buffer
  while true do
    local ok, line = pcall(console.readline, interactive and (buffer and ">> " or "> ") or "", completions)
    if not ok then
      -- Ctrl-C at the prompt: drop the unfinished chunk
      runtime.clear_interrupt()
      buffer = nil
      if interactive then io.stdout:write("\n") end
    elseif line == nil then
      break
    else
      -- bare `help` (as in a shell) shows the help, not the function's address
      if not buffer and line:match("^%s*help%s*$") then line = "help()" end
      buffer = buffer and (buffer .. "\n" .. line) or line
      local fn, err, incomplete = compile(buffer, env)
      if fn then
        console.add_history(buffer)
        buffer = nil
        local results = table.pack(xpcall(fn, traceback))
        if results[1] then
          if results.n > 1 then out_results(table.pack(table.unpack(results, 2, results.n))) end
        else
          local e = results[2]
          if errors.is(e, "interrupted") then runtime.clear_interrupt() end
          out("error: " .. e.message)
          if e.hint then out("hint: " .. e.hint) end
          if opts.debug and e.traceback then out_lines(e.traceback) end
        end
      elseif not incomplete then
        console.add_history(buffer)
        buffer = nil
        out("error: " .. err)
      end
    end
  end
  if buffer then out("error: unfinished chunk at the end of input") end
  if interactive and history then console.save_history(history) end
  if interactive then io.stdout:write("\n") end
  return 0
end

return repl
