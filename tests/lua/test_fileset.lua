local t = require "t"
local fileset = require "mxpc.fileset"

local U1 = "0d3e5a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
local U2 = "ffffffff-0000-4000-8000-000000000001"

-- n distinct UUIDs, made from a counter
local function uuid(i) return ("%08x-%04x-4%03x-8%03x-%012x"):format(i, i % 65536, i % 4096, (i * 7) % 4096, i * 31) end

t.test("add, find and get give back what went in", function()
  local s = fileset.new()
  t.eq(#s, 0)
  t.eq(s:add(U1, 1024), 1)
  t.eq(s:add(U2), 2)
  t.eq(#s, 2)
  t.same({ s:get(1) }, { U1, 1024, 0 })
  t.same({ s:get(2) }, { U2, nil, 0 })
  t.same({ s:find(U2) }, { 2, nil, 0 })
  t.eq(s:find("00000000-0000-4000-8000-000000000000"), nil)
  s:set_size(2, 0)
  t.same({ s:get(2) }, { U2, 0, 0 })
  t.same({ s:bytes() }, { 1024, 0 })
  t.eq(tostring(s), "fileset (2 files)")
end)

t.test("a UUID already in is not added again: its index and tag come back", function()
  local s = fileset.new()
  t.eq(s:add(U1, 5, 1), 1)
  t.same({ s:add(U1, 7, 0) }, { nil, 1, 1 })
  t.eq(#s, 1)
  t.same({ s:get(1) }, { U1, 5, 1 }, "the first one stays")
end)

t.test("a UUID reads back in its own case; two that differ only in case are two files", function()
  local s = fileset.new()
  local upper, mixed = U1:upper(), "0D3e5A4b-1c2D-4e5F-8A9b-0c1D2e3F4a5B"
  t.eq(s:add(upper), 1)
  t.eq(s:add(mixed), 2)
  t.eq(s:add(U1), 3)
  t.eq((s:get(1)), upper)
  t.eq((s:get(2)), mixed)
  t.eq((s:get(3)), U1)
  t.eq(s:find(mixed), 2)
end)

t.test("misuse raises: not a UUID, a negative size, an index out of range", function()
  local s = fileset.new()
  for _, bad in ipairs { "", "0d3e5a4b1c2d4e5f8a9b0c1d2e3f4a5b", U1 .. "0", U1:sub(1, 35) .. "g", U1:gsub("%-", "_"),
    "0d3e5a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b\0" } do
    t.raises(function() s:add(bad) end, "not a UUID")
  end
  t.raises(function() s:add(U1, -1) end, "negative")
  t.raises(function() s:add(U1, 1.5) end, "integer")
  t.raises(function() s:get(1) end, "no such file")
  s:add(U1)
  t.raises(function() s:get(0) end, "no such file")
  t.raises(function() s:set_size(2, 1) end, "no such file")
  t.eq(#s, 1)
  getmetatable(s).__gc(s) -- what a finalizer could reach
  t.raises(function() s:add(U2) end, "freed fileset")
  t.raises(function() return #s end, "freed fileset")
end)

t.test("entries go in the order of adding", function()
  local s = fileset.new()
  s:add(U2, 2)
  s:add(U1)
  local seen = {}
  for i, u, size, tag in s:entries() do seen[#seen + 1] = { i, u, size, tag } end
  t.same(seen, { { 1, U2, 2, 0 }, { 2, U1, nil, 0 } })
end)

t.test("100,000 files: every one found, 32 bytes a file plus the index, no Lua memory per file", function()
  collectgarbage()
  local before = collectgarbage("count")
  local s = fileset.new()
  local n = 100000
  for i = 1, n do t.eq(s:add(uuid(i), i), i) end
  collectgarbage()
  t.ok(collectgarbage("count") - before < 16, "the set's files are outside Lua's heap")
  for i = 1, n, 997 do t.same({ s:find(uuid(i)) }, { i, i, 0 }) end
  t.eq(s:find(uuid(n + 1)), nil)
  local _, again = s:add(uuid(4242))
  t.eq(again, 4242)
  t.same({ s:bytes() }, { n * (n + 1) // 2, 0 })
  -- 32 bytes a file, an array grown by half, an index of 4 bytes a slot at most half full
  t.ok(s:memory() <= n * 32 * 1.5 + n * 4 * 4 + 4096, "memory " .. s:memory())
end)

return t.run()
