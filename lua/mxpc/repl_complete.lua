-- Tab completion at the prompt: globals, table fields and methods. The word
-- before the cursor ("c:g", "string.fo", "pri") is split into a path of
-- names and the part being typed; the path is looked up in the prompt's
-- scope without calling anything (raw fields, and __index tables of
-- metatables: a handle's methods), so completing never runs code.
local complete = {}

-- The fields of v reachable without calling code: its own (tables), then
-- along __index tables of its metatables (methods of handles and classes;
-- strings have string's).
local function each_field(v, fn)
  local seen = {}
  for _ = 1, 8 do
    if type(v) == "table" and not seen[v] then
      seen[v] = true
      for k, x in next, v do
        if type(k) == "string" then fn(k, x) end
      end
    end
    local mt = getmetatable(v)
    local index = type(mt) == "table" and rawget(mt, "__index")
    if type(index) ~= "table" then return end
    v = index
  end
end

-- The value of one field, found the same way (nil when only code could say).
local function field(v, name)
  local found
  each_field(v, function(k, x)
    if found == nil and k == name then found = x end
  end)
  return found
end

-- Completions of `word` in `scope`: whole words, sorted. After ":" only
-- functions are offered; names starting with "_" only when asked for.
function complete.candidates(scope, word)
  local head, path, sep, partial = word:match("^(.-)([%a_][%w_.]*)([.:])([%a_]?[%w_]*)$")
  local v = scope
  if head then
    for name in path:gmatch("[^.]*") do
      if not name:match("^[%a_][%w_]*$") then return {} end
      v = field(v, name)
      if v == nil then return {} end
    end
    head = head .. path .. sep
  else
    head, partial = word:match("^(.-)([%a_]?[%w_]*)$")
  end
  local out, seen = {}, {}
  each_field(v, function(k, x)
    if seen[k] or k:sub(1, #partial) ~= partial or not k:match("^[%a_][%w_]*$") then return end
    if k:sub(1, 1) == "_" and partial:sub(1, 1) ~= "_" then return end
    if sep == ":" and type(x) ~= "function" then return end
    seen[k] = true
    out[#out + 1] = head .. k
  end)
  table.sort(out)
  return out
end

return complete
