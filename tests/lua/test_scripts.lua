-- The search order for stock scripts: --scripts DIR, installed files, embedded.
local t = require "t"
local fs = require "mxpc.fs"

local prog = t.program()

t.test("export writes every stock file and refuses to overwrite", function()
  local dir = t.tmpdir()
  local out, code = t.sh(prog .. " scripts export " .. dir)
  t.eq(code, 0, out)
  t.ok(fs.stat(dir .. "/scripts/backup.lua"), "backup.lua exported")
  t.ok(fs.stat(dir .. "/lua/mxpc/main.lua"), "main.lua exported")
  local out2, code2 = t.sh(prog .. " scripts export " .. dir)
  t.eq(code2, 1)
  t.contains(out2, "already exists")
  local _, code3 = t.sh(prog .. " scripts export --force " .. dir)
  t.eq(code3, 0)
end)

t.test("an edited exported workflow overrides the embedded one", function()
  local dir = t.tmpdir()
  t.sh(prog .. " scripts export " .. dir)
  t.write(dir .. "/scripts/backup.lua", [[
    local opts = ...
    io.stdout:write("edited backup for ", opts.namespace, "/", opts.environment, "\n")
    return 0
  ]])
  local out, code = t.sh(prog .. " --scripts " .. dir .. " backup -n ns -e env -f x.tar.gz")
  t.eq(code, 0, out)
  t.eq(out, "edited backup for ns/env\n")
  -- the environment variable does the same
  local out2 = t.sh("MXPC_SCRIPTS=" .. dir .. " " .. prog .. " backup -n ns -e env -f x.tar.gz")
  t.eq(out2, "edited backup for ns/env\n")
  -- and without it the embedded one runs
  local out3, code3 = t.sh("MXPC_SCRIPTS= KUBECONFIG=/nonexistent " .. prog .. " backup -n ns -e env -f x.tar.gz")
  t.eq(code3, 1)
  t.contains(out3, "no Kubernetes configuration found")
end)

t.test("an edited library module overrides the embedded one", function()
  local dir = t.tmpdir()
  t.sh(prog .. " scripts export " .. dir)
  local main = assert(fs.read(dir .. "/lua/mxpc/main.lua"))
  t.write(dir .. "/lua/mxpc/main.lua", (main:gsub("back up and restore Mendix", "EDITED")))
  local out = t.sh(prog .. " --scripts=" .. dir .. " --help")
  t.contains(out, "EDITED")
  local list = t.sh(prog .. " --scripts " .. dir .. " scripts list")
  t.contains(list, dir .. "/lua/mxpc/main.lua")
end)

t.test("installed files come before the embedded copy", function()
  local dir = t.tmpdir()
  fs.mkdirs(dir .. "/scripts")
  t.write(dir .. "/scripts/restore.lua", "io.stdout:write('installed restore\\n') return 0")
  local out = t.sh("MXPC_DATADIR=" .. dir .. " " .. prog .. " restore -n ns -e env -f x")
  t.eq(out, "installed restore\n")
end)

t.test("LUA_PATH with ;; keeps the stock modules reachable", function()
  local dir = t.tmpdir()
  t.write(dir .. "/mymod.lua", "return { answer = 42 }")
  t.write(dir .. "/s.lua", [[
    local m = require "mymod"
    local args = require "mxpc.args"
    io.stdout:write(m.answer, " ", type(args.parse), "\n")
  ]])
  local out = t.sh("LUA_PATH='" .. dir .. "/?.lua;;' " .. prog .. " run " .. dir .. "/s.lua")
  t.eq(out, "42 function\n")
end)

return t.run()
