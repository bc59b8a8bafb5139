-- The private working directory of a run (beside the output, else in
-- TMPDIR), removed with everything in it when closed, and the free space it
-- must keep (MXPC_MIN_FREE). Reached through the wf.* facade (mxpc.workflow).
local errors = require "mxpc.error"
local fs = require "mxpc.fs"

local M = {}

-- Bytes to keep free where standard input is spooled (MXPC_MIN_FREE, default 64 MiB).
local function min_free()
  return math.tointeger(tonumber(os.getenv("MXPC_MIN_FREE") or "")) or 64 * 1024 * 1024
end

local function no_room(dir, wanted, bytes, free, hint)
  return nil, errors.new { code = "space",
    message = ("not enough space in %s for %s: it needs %d bytes more, %d bytes are free, %d bytes are kept free"):format(
      dir, wanted, bytes, free, min_free()),
    hint = hint or "point TMPDIR at a larger file system, or restore from a file or from s3://BUCKET/KEY instead" }
end

-- Checks that `bytes` more fit in the working directory, keeping MXPC_MIN_FREE;
-- `hint` says what to do when they do not.
function M.check_space(dir, bytes, what, hint)
  local free, err = fs.free_space(dir)
  if not free then return nil, err end
  if free - bytes < min_free() then return no_room(dir, what, bytes, free, hint) end
  return true
end

-- A directory beside `near` (so large temporary files land on the same disk
-- as the output; $TMPDIR if that place is read-only), removed with everything
-- in it when closed.
function M.workdir(near)
  local parent = near:match("^(.*)/[^/]*$") or "."
  if parent == "" then parent = "/" end
  if near == "-" or near:find("^[%w-]+://") then -- no local output (s3://, mendix-cloud://): the temporary directory
    local tmp = os.getenv("TMPDIR")
    parent = (tmp and tmp ~= "") and tmp or "/tmp"
  end
  local dir, err = fs.mkdtemp(parent .. "/.mxpc-work-")
  if not dir and errors.is(err, "permission") then
    -- a read-only place (a mounted backup volume): use the temporary directory
    local tmp = os.getenv("TMPDIR")
    dir, err = fs.mkdtemp(((tmp and tmp ~= "") and tmp or "/tmp") .. "/mxpc-work-")
  end
  if not dir then return nil, err end
  return setmetatable({ path = dir }, {
    __close = function(self)
      for _, name in ipairs(fs.dir(self.path) or {}) do fs.remove(self.path .. "/" .. name) end
      fs.remove(self.path)
    end,
  })
end

return M
