-- Command-line option parsing for the subcommands.
--
-- A spec is a list of options:
--   { short = "n", long = "namespace", value = "NAMESPACE", required = true,
--     help = "...", check = function(v) return ok, why end }
-- Options without `value` are flags (true); `count = true` flags count
-- repetitions (-vv); `list = true` options may be repeated and give the list
-- of their values. Parsing returns a table keyed by the long name with "-"
-- replaced by "_", plus the positional arguments in order.
local errors = require "mxpc.error"

local args = {}

local function usage_error(fmt, ...)
  error(errors.new { code = "usage", message = string.format(fmt, ...) }, 0)
end
args.usage_error = usage_error

local function key_of(opt) return (opt.long or opt.short):gsub("-", "_") end

local function display(opt)
  if opt.short and opt.long then return "-" .. opt.short .. "/--" .. opt.long end
  return opt.long and ("--" .. opt.long) or ("-" .. opt.short)
end
args.display = display

-- Edit distance (optimal string alignment: insertions, deletions,
-- substitutions and swaps of two neighbours each cost 1).
function args.distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

-- The candidates closest to a misspelled word, as " (did you mean X?)", else
-- " (expected EXPECTED)" or "". A candidate qualifies within a third of its
-- length in edits (at least 1), or when the word is the start of exactly that
-- one candidate. `prefix` goes before each candidate ("--" for options).
function args.did_you_mean(word, candidates, prefix, expected)
  prefix = prefix or ""
  local best, found = math.huge, {}
  for _, c in ipairs(candidates) do
    local d = args.distance(word, c)
    if d <= math.max(1, #c // 3) then
      if d < best then best, found = d, { c } elseif d == best then found[#found + 1] = c end
    end
  end
  if #found == 0 and #word >= 2 then
    for _, c in ipairs(candidates) do
      if c:sub(1, #word) == word then found[#found + 1] = c end
    end
    if #found > 1 then found = {} end
  end
  if #found == 0 then return expected and (" (expected " .. expected .. ")") or "" end
  for k, c in ipairs(found) do found[k] = prefix .. c end
  return " (did you mean " .. table.concat(found, " or ") .. "?)"
end

-- Parses argv[first..]. `stop_at_positional` ends option parsing at the first
-- positional argument (for `run SCRIPT ARGS...`).
function args.parse(spec, argv, first, stop_at_positional)
  local by_short, by_long = {}, {}
  for _, opt in ipairs(spec) do
    if opt.short then by_short[opt.short] = opt end
    if opt.long then by_long[opt.long] = opt end
  end
  local result, positional = {}, {}

  local function set(opt, value)
    local key = key_of(opt)
    if opt.count then
      result[key] = (result[key] or 0) + 1
    elseif opt.value then
      if value == nil then usage_error("option %s needs a value (%s)", display(opt), opt.value) end
      if value == "" then usage_error("option %s needs a non-empty value", display(opt)) end
      if result[key] ~= nil and not opt.list then
        usage_error("option %s given more than once", display(opt))
      end
      if opt.check then
        local ok, why = opt.check(value)
        if not ok then usage_error("invalid %s %q: %s", display(opt), value, why) end
      end
      if opt.list then
        result[key] = result[key] or {}
        table.insert(result[key], value)
      else
        result[key] = value
      end
    else
      result[key] = true
    end
  end

  local i, n = first, #argv
  while i <= n do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, n do positional[#positional + 1] = argv[j] end
      break
    elseif a:sub(1, 2) == "--" then
      local name, inline = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local opt = by_long[name]
      if not opt then
        local names = {}
        for _, o in ipairs(spec) do names[#names + 1] = o.long end
        usage_error("unknown option --%s%s", name, args.did_you_mean(name, names, "--"))
      end
      if opt.value then
        if inline == nil then
          i = i + 1
          inline = argv[i]
        end
        set(opt, inline)
      else
        if inline ~= nil then usage_error("option --%s takes no value", name) end
        set(opt)
      end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      -- bundled short options: -vv, -nNAMESPACE, -n NAMESPACE
      local j = 2
      while j <= #a do
        local c = a:sub(j, j)
        local opt = by_short[c]
        if not opt then usage_error("unknown option -%s", c) end
        if opt.value then
          local v = a:sub(j + 1)
          if v == "" then
            i = i + 1
            v = argv[i]
          end
          set(opt, v)
          break
        end
        set(opt)
        j = j + 1
      end
    else
      positional[#positional + 1] = a
      if stop_at_positional then
        for j = i + 1, n do positional[#positional + 1] = argv[j] end
        break
      end
    end
    i = i + 1
  end

  for _, opt in ipairs(spec) do
    if opt.required and result[key_of(opt)] == nil and not result.help and not result.version then
      usage_error("missing required option %s %s", display(opt), opt.value)
    end
  end
  return result, positional
end

-- The options part of a help text, aligned.
function args.help(spec)
  local rows, width = {}, 0
  for _, opt in ipairs(spec) do
    local left = (opt.short and ("-" .. opt.short .. ", ") or "    ") .. (opt.long and ("--" .. opt.long) or "")
    if opt.value then left = left .. " " .. opt.value end
    rows[#rows + 1] = { left, opt.help or "" }
    if #left > width then width = #left end
  end
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = string.format("  %-" .. width .. "s  %s", r[1], r[2])
  end
  return table.concat(out, "\n")
end

-- Kubernetes object names (RFC 1123 label: namespaces; subdomain: others).
function args.check_label(v)
  if #v > 63 then return false, "at most 63 characters" end
  if not v:match("^[a-z0-9]$") and not v:match("^[a-z0-9][-a-z0-9]*[a-z0-9]$") then
    return false, "use lowercase letters, digits and '-', starting and ending with a letter or digit"
  end
  return true
end

function args.check_subdomain(v)
  if #v > 253 then return false, "at most 253 characters" end
  for part in (v .. "."):gmatch("([^.]*)%.") do
    if not args.check_label(part) then
      return false, "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    end
  end
  return true
end

return args
