-- Progress of the long phases of a workflow, for people and for machines.
--
--   local m <close> = progress.start("copy", { label = "copying files", total = #files, bytes = size })
--   m:step(n)        -- one more item of n bytes
--   m:finish()       -- (or closing it; after an error, closing shows nothing more)
--
-- A meter counts one phase: items (files) and bytes, or bytes alone; a poll
-- function can read its bytes from elsewhere (a file's size, an archive's
-- position). How it shows is decided here, from -q, --log-format and
-- whether stderr is a terminal:
--   tty    one status line on the terminal, rewritten in place (log.status):
--          phase, %, bytes, rate, time left; erased when the last meter ends
--   lines  a log line every LINE_SECONDS, and one at the end of a phase that
--          lasted that long
--   json   an event every LINE_SECONDS and at the end of each phase:
--          {"event":"progress","phase":..,"unit":..,"done":..,"total":..,
--           "bytes":..,"total_bytes":..,"rate":..,"eta":..,"seconds":..}
--   off    -q: nothing
-- While meters run, C loops call tick() (runtime.set_ticker) so that a phase
-- spent inside one C call (a download, a wait for pg_dump) still shows.
local cjson = require "cjson"
local fs = require "mxpc.fs"
local log = require "mxpc.log"
local runtime = require "mxpc.runtime"

local M = {}

M.TTY_SECONDS = 0.25 -- how often the terminal's line is redrawn
M.LINE_SECONDS = 5 -- how often a line (text or JSON) is written elsewhere (MXPC_PROGRESS_INTERVAL)
local RATE_WINDOW = 10 -- seconds of history the rate is measured over

-- "off", "json", "tty" or "lines" (see above).
function M.mode()
  if not log.enabled("info") then return "off" end
  if log.format() == "json" then return "json" end
  return fs.isatty(2) and "tty" or "lines"
end

local function line_seconds()
  local s = tonumber(os.getenv("MXPC_PROGRESS_INTERVAL") or "")
  return s and s > 0 and s or M.LINE_SECONDS
end

-- 1536 -> "1.5 KiB"
function M.size_text(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i, v = 1, n
  while v >= 1024 and i < #units do
    v = v / 1024
    i = i + 1
  end
  return i == 1 and ("%d B"):format(n) or ("%.1f %s"):format(v, units[i])
end

-- 75 -> "1:15", 3725 -> "1:02:05"
function M.duration_text(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(s // 3600, s % 3600 // 60, s % 60) end
  return ("%d:%02d"):format(s // 60, s % 60)
end

local Meter = {}
Meter.__index = Meter

local active = {} -- running meters, in the order they started
local last_draw, last_tick = -math.huge, -math.huge
local STEP_TICK = 0.05 -- a meter's steps look at the clock only: a tick at most this often

-- Reads the poll function and keeps the samples the rate is measured over.
function Meter:sample(now)
  if self.poll then self.bytes = self.poll() or self.bytes end
  local s = self.samples
  if now - s[#s].t >= 0.5 then s[#s + 1] = { t = now, bytes = self.bytes } end
  while #s > 2 and now - s[2].t >= RATE_WINDOW do table.remove(s, 1) end
end

-- Bytes per second over the last RATE_WINDOW seconds (since the start at first).
function Meter:rate(now)
  local first = self.samples[1]
  local dt = now - first.t
  if dt < 0.2 then return nil end
  return (self.bytes - first.bytes) / dt
end

-- Seconds left, or nil when it cannot be told.
function Meter:eta(now, rate)
  if self.total_bytes and rate and rate > 0 then return math.max(0, self.total_bytes - self.bytes) / rate end
  if self.total and self.done > 0 and self.total >= self.done then
    return (now - self.started) * (self.total - self.done) / self.done
  end
  return nil
end

-- Fraction done (0..1), or nil.
function Meter:fraction()
  if self.total_bytes then return self.total_bytes > 0 and math.min(1, self.bytes / self.total_bytes) or 1 end
  if self.total then return self.total > 0 and math.min(1, self.done / self.total) or 1 end
  return nil
end

-- "copying files 45%, 120/300 files, 1.2 GiB of 2.6 GiB, 35.0 MiB/s, 0:42 left"
function Meter:text(now, final)
  local parts = {}
  local f = self:fraction()
  local head = self.label
  if f then head = head .. (" %d%%"):format(math.floor(f * 100)) end
  parts[1] = head
  if self.total then
    parts[#parts + 1] = ("%d/%d %s"):format(self.done, self.total, self.unit)
  elseif self.counted then
    parts[#parts + 1] = ("%d %s"):format(self.done, self.unit)
  end
  parts[#parts + 1] = M.size_text(self.bytes) .. (self.total_bytes and (" of " .. M.size_text(self.total_bytes)) or "")
  local rate = final and (now > self.started and self.bytes / (now - self.started)) or self:rate(now)
  if rate then parts[#parts + 1] = M.size_text(rate) .. "/s" end
  if final then
    parts[#parts + 1] = "in " .. M.duration_text(now - self.started)
  else
    local eta = self:eta(now, rate)
    if eta then parts[#parts + 1] = M.duration_text(eta) .. " left" end
  end
  return (table.concat(parts, ", "))
end

-- The JSON event's fields: numbers as numbers, null where unknown.
function Meter:event(now, final)
  local rate = final and (now > self.started and self.bytes / (now - self.started)) or self:rate(now)
  local eta = final and 0 or self:eta(now, rate)
  local null = cjson.null
  local items = self.counted
  return {
    event = "progress", phase = self.phase, unit = items and self.unit or "bytes",
    done = items and self.done or self.bytes,
    total = (items and (self.total or null)) or self.total_bytes or null,
    bytes = self.bytes, total_bytes = self.total_bytes or null,
    rate = rate and math.floor(rate + 0.5) or null, eta = eta and math.floor(eta + 0.5) or null,
    seconds = math.floor((now - self.started) * 1000 + 0.5) / 1000, final = final or nil,
  }
end

-- Writes the meter's line (lines and json modes).
function Meter:emit(mode, now, final)
  self.shown = now
  if mode == "json" then
    log.info(self.label, self:event(now, final))
  else
    log.info(self:text(now, final))
  end
  self.printed = true
end

local function draw(now)
  last_draw = now
  local texts = {}
  for i = #active, 1, -1 do texts[#texts + 1] = active[i]:text(now) end -- the newest phase first
  log.status(table.concat(texts, " | "))
end

-- Brings every running meter up to date and shows what is due. Called by
-- the meters themselves and, while they run, from C loops.
function M.tick(force)
  local now = runtime.monotonic()
  last_tick = now
  for _, m in ipairs(active) do m:sample(now) end
  local mode = M.mode()
  if mode == "tty" then
    if force or now - last_draw >= M.TTY_SECONDS then draw(now) end
  elseif mode ~= "off" then
    local every = line_seconds()
    for _, m in ipairs(active) do
      if now - m.shown >= every then m:emit(mode, now) end
    end
  end
end

-- Starts a meter. opts: label (what a person reads; default the phase),
-- total (items to do), unit (of the items, default "files"; a phase with
-- neither counts only bytes), bytes (total bytes, if known), poll (a function
-- returning the bytes done so far).
function M.start(phase, opts)
  opts = opts or {}
  local now = runtime.monotonic()
  local m = setmetatable({ phase = phase, label = opts.label or phase, total = opts.total, unit = opts.unit or "files",
    counted = opts.total ~= nil or opts.unit ~= nil, total_bytes = opts.bytes, poll = opts.poll, done = 0, bytes = 0,
    started = now, shown = now, samples = { { t = now, bytes = 0 } } }, Meter)
  active[#active + 1] = m
  if #active == 1 then runtime.set_ticker(M.tick) end
  M.tick(true)
  return m
end

-- One more item of n bytes (n may be nil).
function Meter:step(n) self:add(1, n) end

function Meter:add(items, n)
  self.done = self.done + (items or 0)
  if not self.poll then self.bytes = self.bytes + (n or 0) end
  if runtime.monotonic() - last_tick >= STEP_TICK then M.tick() end
end

-- Ends the meter: its last line (json always, lines if it printed before)
-- unless `failed`; the terminal's line is erased once no meter runs.
function Meter:finish(failed)
  if self.finished then return end
  self.finished = true
  local now = runtime.monotonic()
  self:sample(now)
  for i, m in ipairs(active) do
    if m == self then
      table.remove(active, i)
      break
    end
  end
  local mode = M.mode()
  if not failed and (mode == "json" or (mode == "lines" and self.printed)) then self:emit(mode, now, true) end
  if #active == 0 then
    runtime.set_ticker(nil)
    if mode == "tty" then log.status(nil) end
  elseif mode == "tty" then
    draw(now)
  end
end

function Meter:__close(err) self:finish(err ~= nil) end

-- The running meters (tests).
function M.active() return #active end

return M
