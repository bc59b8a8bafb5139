-- The interactive prompt: explore an environment with every module loaded.
-- A line is first tried as an expression ("return <line>"), then as a
-- statement; an unfinished chunk continues on the next line (">> "). Every
-- chunk runs in a protected call; an error prints one line (the traceback with
-- --debug) and Ctrl-C stops the running chunk, not the prompt. Results are
-- printed through the redaction, so a secret the session learned never shows.
local console = require "mxpc.console"
local errors = require "mxpc.error"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"

local repl = {}

-- Modules ready to use at the prompt, by short name (those this build has).
local MODULES = { archive = "archive", backup_archive = "backup_archive", errors = "error", fs = "fs", k8s = "k8s",
  log = "log", pg = "pg", process = "process", runtime = "runtime", s3 = "s3" }

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

local function show(v, depth, seen)
  depth, seen = depth or 0, seen or {}
  local t = type(v)
  if t == "table" and not getmetatable(v) and is_secret(v) then v = without_values(v) end
  -- redacted before quoting (a secret with a quote in it is still found);
  -- controls and bytes that are not UTF-8 are escaped when printed (out)
  if t == "string" then return '"' .. log.redact(v):gsub('[\\"]', "\\%0") .. '"' end
  if t ~= "table" or getmetatable(v) then return tostring(v) end
  if seen[v] then return "{...}" end
  if depth >= 3 then return "{...}" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1, seen) end
  for _, k in ipairs(keys) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      local name = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or ("[" .. show(k, depth + 1, seen) .. "]")
      parts[#parts + 1] = name .. " = " .. show(v[k], depth + 1, seen)
    end
    if #parts > 50 then
      parts[#parts + 1] = "..."
      break
    end
  end
  seen[v] = nil
  return "{" .. table.concat(parts, ", ") .. "}"
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

-- A text of several lines (a traceback), each line through out.
local function out_lines(text)
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local indent = line:match("^\t*")
    out(("  "):rep(#indent) .. line:sub(#indent + 1))
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

local function traceback(e)
  e = errors.normalize(e)
  if not e.traceback then e.traceback = debug.traceback(e.message, 2) end
  return e
end

function repl.run(opts)
  opts = opts or {}
  local interactive = console.interactive()
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
  env.show = function(v) out(show(v)) end
  env.print = out -- redacted and escaped like every other output here
  local history = os.getenv("HOME") and (os.getenv("HOME") .. "/.mxpc-data-migration_history")
  if interactive then
    if history then console.load_history(history) end
    out(("%s %s: Lua %s with %s loaded; Ctrl-D to leave"):format(runtime.program, runtime.version,
      _VERSION:match("%d.*"), table.concat(loaded, ", ")))
  end

  local buffer
  while true do
    local ok, line = pcall(console.readline, interactive and (buffer and ">> " or "> ") or "")
    if not ok then
      -- Ctrl-C at the prompt: drop the unfinished chunk
      runtime.clear_interrupt()
      buffer = nil
      if interactive then io.stdout:write("\n") end
    elseif line == nil then
      break
    else
      buffer = buffer and (buffer .. "\n" .. line) or line
      local fn, err, incomplete = compile(buffer, env)
      if fn then
        console.add_history(buffer)
        buffer = nil
        local results = table.pack(xpcall(fn, traceback))
        if results[1] then
          if results.n > 1 then
            local shown = {}
            for i = 2, results.n do shown[#shown + 1] = show(results[i]) end
            out(table.unpack(shown))
          end
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
