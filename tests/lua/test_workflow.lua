-- Workflow steps that need no servers.
local t = require "t"
local wf = require "mxpc.workflow"
local fs = require "mxpc.fs"

t.test("check_output: directory missing, a directory, an existing file, force", function()
  local dir = t.tmpdir()
  t.ok(wf.check_output(dir .. "/new.tar.gz"))
  local _, e1 = wf.check_output(dir .. "/no/x.tar.gz")
  t.eq(e1.message, ("cannot write %s/no/x.tar.gz: the directory %s/no does not exist"):format(dir, dir))
  local _, e2 = wf.check_output(dir)
  t.contains(e2.message, "it is a directory")
  local f = assert(io.open(dir .. "/old.tar.gz", "w"))
  f:close()
  local _, e3 = wf.check_output(dir .. "/old.tar.gz")
  t.eq(e3.code, "exists")
  t.ok(wf.check_output(dir .. "/old.tar.gz", true))
end)

t.test("workdir: private, beside the output, removed with its contents", function()
  local dir = t.tmpdir()
  local path
  do
    local w <close> = assert(wf.workdir(dir .. "/out.tar.gz"))
    path = w.path
    t.eq(path:sub(1, #dir + 12), dir .. "/.mxpc-work-")
    t.eq(fs.stat(path).mode, 448)
    local f = assert(io.open(path .. "/db.backup", "w"))
    f:write("x")
    f:close()
  end
  t.eq(fs.stat(path), nil, "removed")
end)

t.test("workdir: a read-only place falls back to TMPDIR", function()
  local dir = t.tmpdir()
  local ro, tmp = dir .. "/ro", dir .. "/tmp"
  assert(fs.mkdirs(ro, 493))  -- 0755, owned by us
  assert(fs.mkdirs(tmp))
  local script = dir .. "/w.lua"
  local f = assert(io.open(script, "w"))
  f:write(([[
    local wf = require "mxpc.workflow"
    local w <close> = assert(wf.workdir("%s/archive.tar.gz"))
    print(w.path)
  ]]):format(ro))
  f:close()
  os.execute("chmod 755 " .. dir .. "; chmod 1777 " .. tmp) -- like /tmp
  -- as root, permissions do not bind: run it as an unprivileged user then
  local as = io.popen("id -u"):read("l") == "0" and "setpriv --reuid=nobody --regid=nogroup --clear-groups " or ""
  if as == "" then os.execute("chmod 555 " .. ro) end
  local out, code = t.sh(("TMPDIR=%s %s%s run %s"):format(tmp, as, t.program(), script))
  t.eq(code, 0, out)
  t.eq(out:sub(1, #tmp + 11), tmp .. "/mxpc-work-")
  t.same(fs.dir(tmp), {}, "removed")
end)

return t.run()
