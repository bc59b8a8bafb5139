-- Which scheduled archives to keep: restic's `forget` policy on archive times,
-- pure (no clock, no I/O). See docs/schedule.md#prune.
--
-- A policy is { last =, hourly =, daily =, weekly =, monthly =, yearly =,
-- within = "1y2m3d4h" }; a count is a whole number >= 0 or -1 (unlimited).
-- Periods are UTC: days start at 00:00Z, weeks are ISO 8601 weeks (Monday),
-- months and years are calendar ones.
local M = {}

-- The period rules in the order restic applies them.
M.RULES = { "last", "hourly", "daily", "weekly", "monthly", "yearly" }

local PERIOD = {
  last = function(_, i) return i end, -- every archive is its own period
  hourly = function(t) return os.date("!%Y-%m-%d %H", t) end,
  daily = function(t) return os.date("!%Y-%m-%d", t) end,
  weekly = function(t) return os.date("!%G-W%V", t) end,
  monthly = function(t) return os.date("!%Y-%m", t) end,
  yearly = function(t) return os.date("!%Y", t) end,
}

-- "1y5m7d2h" -> {y=1, m=5, d=7, h=2}, or nil, why.
function M.parse_duration(s)
  if type(s) ~= "string" or s == "" then return nil, "expected a duration such as 7d, 2w3d or 1y6m" end
  local d = { y = 0, m = 0, w = 0, d = 0, h = 0 }
  local rest = s:gsub("(%d+)([ymwdh])", function(n, unit)
    d[unit] = d[unit] + tonumber(n)
    return ""
  end)
  if rest ~= "" then
    return nil, ("%q is not a duration: expected numbers with y (years), m (months), w (weeks), d (days), h (hours), "
      .. "e.g. 7d, 2w3d, 1y6m"):format(s)
  end
  return d
end

-- The time `d` (a parse_duration result) before epoch time t, by the
-- calendar: years and months as dates (31 March - 1m = 3 March, as Go's
-- AddDate normalizes 31 February), days and hours as such.
function M.before(t, d)
  local c = os.date("!*t", t)
  local y, mo = c.year - d.y, c.month - d.m
  y = y + (mo - 1) // 12
  mo = (mo - 1) % 12 + 1
  local day = c.day - d.d - 7 * d.w
  -- days since 1970-01-01 of y-mo-day (proleptic Gregorian; day may overflow)
  local yy = mo <= 2 and y - 1 or y
  local era = yy // 400
  local yoe = yy - era * 400
  local doy = (153 * ((mo + 9) % 12) + 2) // 5 + 1 - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468 + (day - 1)
  return days * 86400 + c.hour * 3600 + c.min * 60 + c.sec - d.h * 3600
end

-- Checks a policy: nil, why for a bad one or one that keeps nothing.
function M.check(policy)
  local any = false
  for _, k in ipairs(M.RULES) do
    local n = policy[k]
    if n ~= nil then
      if math.type(n) ~= "integer" or n < -1 then return nil, ("--keep-%s: expected a whole number or 'unlimited'"):format(k) end
      if n ~= 0 then any = true end
    end
  end
  if policy.within then
    local d, why = M.parse_duration(policy.within)
    if not d then return nil, "--keep-within: " .. why end
    any = true
  end
  if not any then
    return nil, "no --keep-* option keeps anything: give at least one (e.g. --keep-daily 7 --keep-weekly 5)"
  end
  return true
end

-- Applies the policy to one environment's archives: a list of
-- { time = epoch seconds, ... } (any order). Returns keep, remove (lists of
-- the same tables, newest first); each kept one gets `reasons` (a list of
-- words: "last", "daily", ..., "within", "oldest daily", "newest").
-- As restic: archives newest first; for each rule with count left, an
-- archive in a period not yet seen by that rule is kept and counts one; the
-- same archive may count for several rules. --keep-within keeps every
-- archive within the duration of the newest archive (not of the clock, so a
-- schedule that stopped does not empty itself). If a period rule still has
-- count left at the end, the oldest archive is kept too (restic 0.17).
-- Unlike restic, the newest archive is always kept.
function M.apply(archives, policy)
  local list = {}
  for _, a in ipairs(archives) do list[#list + 1] = a end
  table.sort(list, function(a, b)
    if a.time ~= b.time then return a.time > b.time end
    return tostring(a.key) > tostring(b.key)
  end)
  local keep, remove = {}, {}
  if #list == 0 then return keep, remove end
  local left, seen = {}, {}
  for _, k in ipairs(M.RULES) do left[k] = policy[k] or 0 end
  local within_from = policy.within and M.before(list[1].time, assert(M.parse_duration(policy.within)))
  local reasons = {}
  for i, a in ipairs(list) do
    local r = {}
    if i == 1 then r[#r + 1] = "newest" end
    for _, k in ipairs(M.RULES) do
      if left[k] ~= 0 then
        local p = PERIOD[k](a.time, i)
        if p ~= seen[k] then
          seen[k] = p
          r[#r + 1] = k
          if left[k] > 0 then left[k] = left[k] - 1 end
        end
      end
    end
    if within_from and a.time >= within_from then r[#r + 1] = "within" end
    reasons[i] = r
  end
  local oldest = reasons[#list]
  for _, k in ipairs(M.RULES) do
    if k ~= "last" and left[k] > 0 then
      local has = false
      for _, w in ipairs(oldest) do if w == k then has = true end end
      if not has then oldest[#oldest + 1] = "oldest " .. k end
    end
  end
  for i, a in ipairs(list) do
    if #reasons[i] > 0 then
      a.reasons = reasons[i]
      keep[#keep + 1] = a
    else
      a.reasons = nil
      remove[#remove + 1] = a
    end
  end
  return keep, remove
end

return M
