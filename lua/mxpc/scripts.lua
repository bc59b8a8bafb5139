-- Where stock and user Lua files come from. Search order, first match wins:
--   1. --scripts DIR (or $MXPC_SCRIPTS): DIR/scripts/NAME.lua, DIR/lua/...
--   2. the installed files: <datadir>/mxpc-data-migration/{scripts,lua}/
--   3. the copy embedded in the binary.
-- Modules (require) follow package.path in the same order, then the embedded
-- searcher; LUA_PATH with ";;" is honoured (see docs/architecture.md).
local runtime = require "mxpc.runtime"
local fs = require "mxpc.fs"
local errors = require "mxpc.error"

local scripts = {}

local function origins()
  local list = {}
  local dir = runtime.scripts_dir()
  if dir then list[#list + 1] = { kind = "scripts dir", dir = dir } end
  local data = runtime.data_dir()
  if data then list[#list + 1] = { kind = "installed", dir = data } end
  return list
end

-- Returns where the stock file `rel` (e.g. "scripts/backup.lua") would be
-- loaded from: a path, or "[embedded] rel", or nil.
function scripts.locate(rel)
  for _, o in ipairs(origins()) do
    local path = o.dir .. "/" .. rel
    local st = fs.stat(path)
    if st and st.type == "file" then return path, o.kind end
  end
  if runtime.embedded(rel) then return "[embedded] " .. rel, "embedded" end
  return nil
end

-- Loads workflow NAME (scripts/NAME.lua) as a function.
function scripts.load(name)
  local rel = "scripts/" .. name .. ".lua"
  local where, kind = scripts.locate(rel)
  if not where then
    errors.raise("not_found", "no script named '" .. name .. "'",
      "see 'mxpc-data-migration scripts list' for the scripts available")
  end
  local chunk, err
  if kind == "embedded" then
    chunk, err = load(runtime.embedded(rel), "=" .. where)
  else
    chunk, err = loadfile(where)
  end
  if not chunk then errors.raise("script", "cannot load " .. where .. ": " .. err) end
  return chunk, where
end

-- Writes every stock file under dir, keeping the layout (lua/, scripts/).
-- Refuses to replace existing files unless force.
function scripts.export(dir, force)
  if not force then
    -- check first, so that a refused export writes nothing at all
    for _, rel in ipairs(runtime.embedded()) do
      if fs.stat(dir .. "/" .. rel) then
        errors.raise("exists", dir .. "/" .. rel .. " already exists",
          "export into an empty directory, or use --force to replace the files")
      end
    end
  end
  local written = {}
  for _, rel in ipairs(runtime.embedded()) do
    local path = dir .. "/" .. rel
    assert(fs.mkdirs(path:match("^(.*)/[^/]*$")))
    local w <close> = assert(fs.atomic_writer(path, { force = force, mode = 420 })) -- 0644
    assert(w:write(runtime.embedded(rel)))
    assert(w:commit())
    written[#written + 1] = path
  end
  return written
end

function scripts.list()
  local out = {}
  for _, rel in ipairs(runtime.embedded()) do
    local where, kind = scripts.locate(rel)
    out[#out + 1] = { file = rel, from = where, kind = kind }
  end
  return out
end

return scripts
