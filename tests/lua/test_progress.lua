local t = require "t"
local progress = require "mxpc.progress"

t.test("sizes and durations for people", function()
  t.eq(progress.size_text(512), "512 B")
  t.eq(progress.size_text(1536), "1.5 KiB")
  t.eq(progress.size_text(3 * 1024 ^ 3), "3.0 GiB")
  t.eq(progress.duration_text(75), "1:15")
  t.eq(progress.duration_text(3725), "1:02:05")
end)

-- A meter measured at chosen times: sample(now) is what the ticker calls.
local function meter(opts)
  local m = progress.start("copy", opts)
  m.started, m.samples = 100, { { t = 100, bytes = 0 } }
  return m
end

t.test("a meter's line: %, items, bytes, rate and time left; at the end the time taken", function()
  local m = meter { label = "copying files", total = 4, bytes = 4000 }
  m.done, m.bytes = 1, 1000
  t.eq(m:text(110), "copying files 25%, 1/4 files, 1000 B of 3.9 KiB, 100 B/s, 0:30 left")
  m.done, m.bytes = 4, 4000
  t.eq(m:text(120, true), "copying files 100%, 4/4 files, 3.9 KiB of 3.9 KiB, 200 B/s, in 0:20")
  m:finish(true)
  t.eq(progress.active(), 0)
end)

t.test("a meter of bytes alone, without a total: no %, no time left", function()
  local m = meter { label = "dumping the database" }
  m.bytes = 2048
  t.eq(m:text(102), "dumping the database, 2.0 KiB, 1.0 KiB/s")
  local e = m:event(102)
  t.eq(e.event, "progress")
  t.eq(e.phase, "copy")
  t.eq(e.unit, "bytes")
  t.eq(e.done, 2048)
  t.eq(e.bytes, 2048)
  t.eq(e.rate, 1024)
  t.eq(e.total, require("cjson").null)
  t.eq(e.eta, require("cjson").null)
  m:finish(true)
end)

t.test("a JSON event counts items with the bytes beside them; numbers are numbers", function()
  local m = meter { total = 10, bytes = 1000 }
  m.done, m.bytes = 5, 250
  local e = m:event(105)
  t.eq(e.unit, "files")
  t.eq(math.type(e.done), "integer")
  t.eq(e.done, 5)
  t.eq(e.total, 10)
  t.eq(e.total_bytes, 1000)
  t.eq(e.rate, 50)
  t.eq(e.eta, 15)
  m:finish(true)
end)

t.test("a meter counting items of no known total: the count, no %", function()
  local m = meter { label = "listing the files in storage", unit = "objects" }
  m.done, m.bytes = 7, 700
  t.eq(m:text(101), "listing the files in storage, 7 objects, 700 B, 700 B/s")
  local e = m:event(101)
  t.eq(e.unit, "objects")
  t.eq(e.done, 7)
  t.eq(e.total, require("cjson").null)
  m:finish(true)
end)

t.test("the rate follows the last seconds, not the whole phase", function()
  local m = meter { total_bytes = nil }
  m.bytes = 0
  for s = 1, 30 do
    m.bytes = s <= 20 and s * 1000 or 20000 + (s - 20) * 100
    m:sample(100 + s)
  end
  local rate = m:rate(130)
  t.ok(rate >= 99 and rate <= 101, "rate " .. rate)
  m:finish(true)
end)

t.test("a poll function gives the bytes", function()
  local n = 0
  local m = meter { poll = function() return n end }
  n = 777
  m:sample(101)
  t.eq(m.bytes, 777)
  m:step(5) -- counts the item, the bytes stay the poll's
  t.eq(m.done, 1)
  t.eq(m.bytes, 777)
  m:finish(true)
end)

t.test("-q: progress is off; a JSON format makes it events", function()
  local log = require "mxpc.log"
  log.set_level("warn")
  t.eq(progress.mode(), "off")
  log.set_level("info")
  log.set_format("json")
  t.eq(progress.mode(), "json")
  log.set_format("text")
end)

return t.run()
