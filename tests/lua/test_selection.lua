-- The selection options of a backup and their parsers, without servers.
local t = require "t"
local selection = require "mxpc.selection"

t.test("parse_size: bytes, decimal and binary units, bad values", function()
  t.eq(selection.parse_size("4096"), 4096)
  t.eq(selection.parse_size("512k"), 512 * 1024)
  t.eq(selection.parse_size("512K"), 512 * 1024)
  t.eq(selection.parse_size("10MB"), 10 * 1000 * 1000)
  t.eq(selection.parse_size("10MiB"), 10 * 1024 * 1024)
  t.eq(selection.parse_size("10M"), 10 * 1024 * 1024)
  t.eq(selection.parse_size("10 mb"), 10 * 1000 * 1000)
  t.eq(selection.parse_size("1.5G"), 3 * 512 * 1024 * 1024)
  t.eq(selection.parse_size("0"), 0)
  t.eq(math.type(selection.parse_size("1.5k")), "integer")
  t.eq(selection.parse_size("8PiB"), nil)
  t.eq(selection.parse_size("8192TiB"), 2 ^ 53 // 1)
  for _, bad in ipairs { "", "ten", "10XB", "-5", "10 M B", "1e6", "0x10", "M", "1.", "1.k", ".5k", "+5",
    "9999999999999999999999", "8193TiB", "inf", "nan",
    -- integers whose product with the unit wraps around (found by fuzzing: a negative size)
    "9007199254740992k", "9007199254740992\nk", "36028797018963968MiB", "18014398509481985TiB" } do
    local n, why = selection.parse_size(bad)
    t.eq(n, nil, bad)
    t.contains(why, "expected a size")
  end
end)

t.test("parse_time: dates, ISO times, zones; impossible days refused", function()
  t.eq(selection.parse_time("1970-01-01"), 0)
  t.eq(selection.parse_time("2024-03-01"), 1709251200)
  t.eq(selection.parse_time("2024-03-01T09:00"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01 09:00:00"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01T09:00:00Z"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01T11:00:00+02:00"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01T04:00:00-0500"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01T09:00:00+00"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01T09:00:00.5Z"), 1709251200 + 9 * 3600 + 0.5)
  t.eq(selection.parse_time("2024-02-29"), 1709251200 - 86400)
  t.eq(selection.parse_time("2024-03-01T09:00:00,5Z"), 1709251200 + 9 * 3600 + 0.5)
  t.eq(selection.parse_time("2024-03-01T23:00:00+14:00"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-02-29T20:00:00-13:00"), 1709251200 + 9 * 3600)
  t.eq(selection.parse_time("2024-03-01T14:29:00+05:29"), 1709251200 + 9 * 3600)
  for _, bad in ipairs { "2023-02-29", "2024-13-01", "2024-04-31", "2024-3-1", "yesterday", "2024-03-01T25:00",
    "2024-03-01T09:00:00 CET", "2024-03-01x", "" } do
    t.eq(selection.parse_time(bad), nil, bad)
  end
  -- parts out of range, each on its own
  for _, bad in ipairs { "2024-00-10", "2024-03-00", "2024-03-32", "2024-03-01T24:00", "2024-03-01T09:60",
    "2024-03-01T09:00:61", "2024-03-01T09:00:00.", "2024-03-01T09:00:00.Z", "2024-03-01T09:00:00,Z",
    "2024-03-01T9:00", "2024-03-01T09:00:0", "2024-03-01T" } do
    t.eq(selection.parse_time(bad), nil, bad)
  end
  -- impossible offsets: ISO 8601's run from -14:00 to +14:00, minutes below 60
  for _, bad in ipairs { "+99:00", "-14:61", "+15:00", "+14:01", "-14:30", "+00:60", "+0560", "+24", "+1",
    "+01:0", "+01:", "+01:00:00", "+1:00" } do
    local v, why = selection.parse_time("2024-03-01T09:00:00" .. bad)
    t.eq(v, nil, bad)
    t.ok(why, bad)
  end
  local _, why = selection.parse_time("2024-03-01T09:00+99:00")
  t.contains(why, "no such time-zone offset +99:00")
end)

t.test("thousands", function()
  t.eq(selection.thousands(0), "0")
  t.eq(selection.thousands(999), "999")
  t.eq(selection.thousands(1204), "1,204")
  t.eq(selection.thousands(3000000), "3,000,000")
end)

return t.run()
