-- The selection of a backup's files by option (--files-larger-than,
-- --files-smaller-than, --files-changed-since, --files-of) and the parsers
-- behind it: sizes ("10MiB"), ISO 8601 times, and "3,000" for counts. The
-- select_file hook joins it in mxpc.hooks (selector).
local M = {}

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
  local bytes = tonumber(number) * 1.0 * factor -- (in floats: an integer product could wrap around)
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
function M.options(opts)
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
function M.selects(sel, f)
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
