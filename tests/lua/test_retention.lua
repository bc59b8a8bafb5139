-- mxpc.retention: restic's forget policy on archive times, against a table of
-- archive times and policies with known answers (no clock: times are given).
local t = require "t"
local retention = require "mxpc.retention"

-- "2026-03-31T02:00Z" -> epoch seconds (UTC)
local function at(s)
  local y, mo, d, h, mi = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+)Z$")
  local days = retention.before(0, { y = 1970 - tonumber(y), m = 1 - tonumber(mo), w = 0, d = 1 - tonumber(d), h = 0 })
  return days + tonumber(h) * 3600 + tonumber(mi) * 60
end

local function archives(times)
  local out = {}
  for _, s in ipairs(times) do out[#out + 1] = { time = at(s), key = s } end
  return out
end

local function kept(times, policy)
  local keep = retention.apply(archives(times), policy)
  local out = {}
  for _, a in ipairs(keep) do out[#out + 1] = a.key end
  return table.concat(out, " ")
end

t.test("the calendar arithmetic", function()
  t.eq(at("1970-01-01T00:00Z"), 0)
  t.eq(at("2026-12-06T12:00Z"), 1796558400)
  t.eq(os.date("!%Y-%m-%dT%H:%MZ", at("2024-02-29T23:59Z")), "2024-02-29T23:59Z")
  -- 31 March - 1 month is "31 February", that is 3 March (as Go's AddDate)
  t.eq(os.date("!%Y-%m-%d", retention.before(at("2026-03-31T00:00Z"), assert(retention.parse_duration("1m")))),
    "2026-03-03")
  t.eq(os.date("!%Y-%m-%dT%H", retention.before(at("2026-01-01T01:00Z"), assert(retention.parse_duration("1y2d3h")))),
    "2024-12-29T22")
end)

local nightly = {} -- 2026-01-01 .. 2026-03-31, one archive at 02:00 each night
for d = 0, 89 do nightly[#nightly + 1] = os.date("!%Y-%m-%dT02:00Z", at("2026-01-01T02:00Z") + d * 86400) end

local cases = {
  { "keep-last 3", nightly, { last = 3 }, "2026-03-31T02:00Z 2026-03-30T02:00Z 2026-03-29T02:00Z" },
  { "keep-last more than there are keeps all", { "2026-01-01T02:00Z", "2026-01-02T02:00Z" }, { last = 5 },
    "2026-01-02T02:00Z 2026-01-01T02:00Z" },
  -- the newest of each of the last 3 days that have archives: a day without one does not count
  { "keep-daily counts days with archives, the newest of each",
    { "2026-01-01T02:00Z", "2026-01-01T14:00Z", "2026-01-02T02:00Z", "2026-01-04T02:00Z", "2026-01-04T14:00Z",
      "2026-01-05T02:00Z" }, { daily = 3 }, "2026-01-05T02:00Z 2026-01-04T14:00Z 2026-01-02T02:00Z" },
  -- fewer days than asked: every day's newest, and the oldest archive as well (restic 0.17)
  { "keep-daily with too few days also keeps the oldest",
    { "2026-01-01T02:00Z", "2026-01-01T14:00Z", "2026-01-02T02:00Z" }, { daily = 7 },
    "2026-01-02T02:00Z 2026-01-01T14:00Z 2026-01-01T02:00Z" },
  -- ISO weeks: Monday 2025-12-29 and Thursday 2026-01-01 share week 2026-W01; Sunday 2026-01-04 too
  { "keep-weekly: ISO weeks across the new year",
    { "2025-12-28T02:00Z", "2025-12-29T02:00Z", "2026-01-01T02:00Z", "2026-01-04T02:00Z", "2026-01-05T02:00Z" },
    { weekly = 3 }, "2026-01-05T02:00Z 2026-01-04T02:00Z 2025-12-28T02:00Z" },
  { "keep-monthly 2 of three months", nightly, { monthly = 2 }, "2026-03-31T02:00Z 2026-02-28T02:00Z" },
  { "keep-monthly unlimited", nightly, { monthly = -1 }, "2026-03-31T02:00Z 2026-02-28T02:00Z 2026-01-31T02:00Z" },
  { "keep-yearly 1 keeps the newest only", nightly, { yearly = 1 }, "2026-03-31T02:00Z" },
  -- one archive counts for several rules: the newest is the daily, weekly and monthly one
  { "daily 2 + weekly 2 + monthly 2", nightly, { daily = 2, weekly = 2, monthly = 2 },
    "2026-03-31T02:00Z 2026-03-30T02:00Z 2026-03-29T02:00Z 2026-02-28T02:00Z" },
  -- relative to the newest archive, not to the clock: old archives are not all dropped
  { "keep-within 2d of the newest archive", nightly, { within = "2d" },
    "2026-03-31T02:00Z 2026-03-30T02:00Z 2026-03-29T02:00Z" },
  { "keep-within 1m from 31 March reaches 3 March", nightly, { within = "1m" }, nil },
  { "keep-last 1 + keep-within 1w", nightly, { last = 1, within = "1w" }, nil },
}

for _, c in ipairs(cases) do
  t.test(c[1], function()
    local got = kept(c[2], c[3])
    if c[4] then t.eq(got, c[4]) end
  end)
end

t.test("keep-within 1m from 31 March keeps 3 March .. 31 March", function()
  local keep, remove = retention.apply(archives(nightly), { within = "1m" })
  t.eq(#keep, 29)
  t.eq(keep[#keep].key, "2026-03-03T02:00Z")
  t.eq(remove[1].key, "2026-03-02T02:00Z")
  t.eq(#keep + #remove, 90)
end)

t.test("reasons: newest, each rule, the oldest kept for a rule with count left", function()
  local keep, remove = retention.apply(archives { "2026-01-01T02:00Z", "2026-01-01T14:00Z", "2026-01-02T02:00Z" },
    { daily = 7, last = 1 })
  t.same(keep[1].reasons, { "newest", "last", "daily" })
  t.same(keep[2].reasons, { "daily" })
  t.same(keep[3].reasons, { "oldest daily" })
  t.eq(#remove, 0)
end)

t.test("the newest archive is always kept, input order does not matter", function()
  local list = archives { "2026-01-03T02:00Z", "2026-01-01T02:00Z", "2026-01-02T02:00Z" }
  local keep, remove = retention.apply(list, { last = 1 })
  t.eq(#keep, 1)
  t.eq(keep[1].key, "2026-01-03T02:00Z")
  t.eq(remove[1].key, "2026-01-02T02:00Z")
  t.eq(remove[2].key, "2026-01-01T02:00Z")
  local k2 = retention.apply({}, { last = 1 })
  t.eq(#k2, 0)
end)

t.test("policies that keep nothing, or are malformed, are refused", function()
  t.eq(retention.check {}, nil)
  local ok, why = retention.check { last = 0, daily = 0 }
  t.eq(ok, nil)
  t.ok(why:find("at least one", 1, true), why)
  t.eq(select(2, retention.check { within = "3x" }):match("^%-%-keep%-within: \"3x\" is not a duration") ~= nil, true)
  t.eq(retention.check { daily = -2 }, nil)
  t.eq(retention.check { daily = 1.5 }, nil)
  t.eq(retention.check { daily = -1 }, true)
  t.eq(retention.check { within = "26h" }, true)
end)

return t.run()
