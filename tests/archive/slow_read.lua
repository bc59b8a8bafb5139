-- Reads an endless archive, for the interruption test (sigint.py): a pax
-- header for a 1 TiB entry, then zeros from a Lua source.
-- usage: mxpc-data-migration run slow_read.lua skip|read|pipe
local archive = require "mxpc.archive"

local function field(s, n) return s .. ("\0"):rep(n - #s) end

local function ustar_header(name, size, type)
  local h = field(name, 100) .. field("0000644", 8) .. field("0000000", 8) .. field("0000000", 8) ..
      ("%011o\0"):format(size) .. ("%011o\0"):format(0) .. "        " .. type .. field("", 100) ..
      "ustar\0" .. "00" .. field("", 32) .. field("", 32) .. field("", 8) .. field("", 8) .. field("", 155)
  h = field(h, 512)
  local sum = 0
  for i = 1, #h do sum = sum + h:byte(i) end
  return h:sub(1, 148) .. ("%06o\0 "):format(sum) .. h:sub(157)
end

-- sizes beyond 8 GiB need a pax record "<len> size=<n>\n", len counting itself
local record = " size=" .. (1 << 40) .. "\n"
record = (#record + 2) .. record
local first = ustar_header("PaxHeader/big", #record, "x") .. field(record, 512) .. ustar_header("big", 0, "0")
local zeros = ("\0"):rep(1 << 20)
local r <close> = assert(archive.reader(function()
  local c = first or zeros
  first = nil
  return c
end, { name = "endless" }))
local e = assert(r:next())
local mode = arg[1]
if mode == "skip" then
  assert(e:skip())
elseif mode == "read" then
  while assert(e:read(1 << 20)) do end
elseif mode == "pipe" then
  assert(e:pipe_to { "cat" })
end
