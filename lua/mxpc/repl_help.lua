-- help() at the prompt: text made from the docs in mxpc.repl_docs. What to
-- explain is found by identity: a module table, a function of a module or
-- of a handle's methods, a handle (by its metatable), or a name as a string.
local docs = require "mxpc.repl_docs"

local help = {}

-- A class's metatable: a C module's is in the registry under its name, and
-- the REPL's own Lua classes put theirs there the same way.
local function metatable(class) return debug.getregistry()[class.meta] end

local function methods(class)
  local mt = metatable(class)
  return type(mt) == "table" and type(rawget(mt, "__index")) == "table" and mt.__index or nil
end
help.methods = methods

-- Rows of signature and text, aligned; a long signature puts its text on
-- the next line.
local function rows(lines, items, prefix)
  local width = 0
  for _, it in ipairs(items) do
    local n = #prefix + #it[1]
    if n <= 40 and n > width then width = n end
  end
  for _, it in ipairs(items) do
    local sig = prefix .. it[1]
    if #sig <= 40 then
      lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format(sig, it[2])
    else
      lines[#lines + 1] = "  " .. sig
      lines[#lines + 1] = ("  %-" .. width .. "s  %s"):format("", it[2])
    end
  end
end

local function module_text(m)
  local lines = { ("%s: %s (require \"%s\")"):format(m.name, m.summary, m.module) }
  rows(lines, m.functions, m.name .. ".")
  for _, class in ipairs(docs.classes) do
    if class.module == m.module then
      lines[#lines + 1] = ("%s (help(\"%s\")): %s"):format(class.name, class.name, class.summary)
    end
  end
  return lines
end

local function class_text(class)
  local lines = { ("%s: %s"):format(class.name, class.summary) }
  rows(lines, class.methods, class.var .. ":")
  return lines
end

local function overview(scope)
  local lines = { "modules (help(name) lists the functions):" }
  local items = {}
  for _, m in ipairs(docs.modules) do
    if scope[m.name] ~= nil then items[#items + 1] = { m.name, m.summary } end
  end
  rows(lines, items, "")
  lines[#lines + 1] = "globals:"
  rows(lines, docs.globals, "")
  lines[#lines + 1] = "handles (help(h) on one, or help(\"name\")):"
  items = {}
  for _, class in ipairs(docs.classes) do items[#items + 1] = { class.name, class.summary } end
  rows(lines, items, "")
  lines[#lines + 1] = "Tab completes names, fields and methods (c:g<Tab> -> c:get)."
  return lines
end

-- The text for x, as lines; nil, why when there is none.
function help.text(scope, x)
  if x == nil then return overview(scope) end
  if type(x) == "string" then
    for _, m in ipairs(docs.modules) do
      if m.name == x or m.module == x then return module_text(m) end
    end
    for _, class in ipairs(docs.classes) do
      if class.name == x then return class_text(class) end
    end
    for _, g in ipairs(docs.globals) do
      if docs.name(g) == x then return { g[1], "  " .. g[2] } end
    end
    local mod, fn = x:match("^([%w_]+)[.:]([%w_]+)$")
    if mod and type(scope[mod]) == "table" then return help.text(scope, scope[mod][fn]) end
    return nil, ("no help on %q; help() lists what there is"):format(x)
  end
  for _, m in ipairs(docs.modules) do
    local t = scope[m.name]
    if x == t then return module_text(m) end
    if type(t) == "table" and type(x) == "function" then
      for _, f in ipairs(m.functions) do
        if t[docs.name(f)] == x then return { m.name .. "." .. f[1], "  " .. f[2] } end
      end
    end
  end
  for _, class in ipairs(docs.classes) do
    if getmetatable(x) == metatable(class) then return class_text(class) end
    local ms = methods(class)
    if ms and type(x) == "function" then
      for _, f in ipairs(class.methods) do
        if ms[docs.name(f)] == x then return { class.var .. ":" .. f[1], "  " .. f[2] .. " (" .. class.name .. ")" } end
      end
    end
  end
  for _, g in ipairs(docs.globals) do
    if scope[docs.name(g)] == x then return { g[1], "  " .. g[2] } end
  end
  return nil, ("no help on this %s; help() lists what there is"):format(type(x))
end

return help
