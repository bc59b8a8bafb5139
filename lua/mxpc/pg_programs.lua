-- Where the PostgreSQL client programs (pg_dump, pg_restore) come from,
-- for every step that runs one: the directory $MXPC_PG_BINDIR when it is set
-- (and only there), else the PATH. A missing program is an error that says
-- where it was looked for and how to get it.
local errors = require "mxpc.error"
local fs = require "mxpc.fs"

local M = {}

local HINT = "install the PostgreSQL client programs (Debian/Ubuntu: apt-get install postgresql-client; "
  .. "RHEL: dnf install postgresql), or set MXPC_PG_BINDIR to the directory that holds pg_dump and "
  .. "pg_restore (e.g. /usr/lib/postgresql/15/bin)"

local function executable(path)
  local st = fs.stat(path, { follow = true })
  return st and st.type == "file" and st.mode & 73 ~= 0 -- any of 0111
end

-- The path of `name`, or nil, err (code not_found). `env` (for tests) stands
-- for the environment variables MXPC_PG_BINDIR and PATH.
function M.find(name, env)
  local getenv = env and function(k) return env[k] end or os.getenv
  local dir = getenv("MXPC_PG_BINDIR")
  if dir and dir ~= "" then
    local path = dir:gsub("/+$", "") .. "/" .. name
    if executable(path) then return path end
    return nil, errors.new { code = "not_found", message = ("%s not found in MXPC_PG_BINDIR (%s)"):format(name, dir),
      hint = HINT }
  end
  local search = getenv("PATH") or ""
  for d in search:gmatch("[^:]+") do
    local path = d .. "/" .. name
    if executable(path) then return path end
  end
  return nil, errors.new { code = "not_found", message = ("%s not found on PATH (%s)"):format(name, search),
    hint = HINT }
end

-- { name = path } for each of `names`, or nil, err for the first one missing.
function M.find_all(names, env)
  local found = {}
  for _, name in ipairs(names) do
    local path, err = M.find(name, env)
    if not path then return nil, err end
    found[name] = path
  end
  return found
end

return M
