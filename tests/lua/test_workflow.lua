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

-- Fake PostgreSQL programs in a directory: name -> shell script body.
local function fake_bindir(programs)
  local dir = t.tmpdir()
  for name, body in pairs(programs) do
    t.write(dir .. "/" .. name, "#!/bin/sh\n" .. body .. "\n")
    t.sh("chmod 755 " .. dir .. "/" .. name)
  end
  return dir
end

-- Runs Lua code in a child program with MXPC_PG_BINDIR=bindir; returns its output.
local function run_with_bindir(bindir, code)
  local dir = t.tmpdir()
  t.write(dir .. "/s.lua", code)
  return t.sh(("MXPC_PG_BINDIR=%s %s run %s/s.lua"):format(bindir, t.program(), dir))
end

local DB = [[{ database = { host = "127.0.0.1", port = 1, dbname = "x", user = "u", password = "p", sslmode = "disable" } }]]

t.test("a killed pg_dump is reported as killed by its signal", function()
  local bin = fake_bindir { pg_dump = "kill -9 $$" }
  local out = run_with_bindir(bin, ([[
    local wf = require "mxpc.workflow"
    local _, err = wf.dump_database(%s, "%s/db.backup")
    print(err.message)
  ]]):format(DB, t.tmpdir()))
  t.contains(out, "pg_dump was killed by signal 9 (SIGKILL)")
end)

t.test("pg_programs: MXPC_PG_BINDIR first, else PATH; a missing program says how to get it", function()
  local pg_programs = require "mxpc.pg_programs"
  local bin = fake_bindir { pg_dump = "true", pg_restore = "true" }
  t.eq(pg_programs.find("pg_dump", { MXPC_PG_BINDIR = bin }), bin .. "/pg_dump")
  local p, err = pg_programs.find("psql", { MXPC_PG_BINDIR = bin })
  t.eq(p, nil)
  t.eq(err.code, "not_found")
  t.eq(err.message, ("psql not found in MXPC_PG_BINDIR (%s)"):format(bin))
  t.contains(err.hint, "postgresql-client")
  t.contains(err.hint, "MXPC_PG_BINDIR")
  t.eq(pg_programs.find("pg_restore", { PATH = "/nonexistent:" .. bin }), bin .. "/pg_restore")
  local _, perr = pg_programs.find("psql", { PATH = "/nonexistent:" .. bin })
  t.eq(perr.message, "psql not found on PATH (/nonexistent:" .. bin .. ")")
  t.contains(perr.hint, "postgresql-client")
  -- all at once: the first missing one is named
  local all, aerr = pg_programs.find_all({ "pg_dump", "pg_restore", "psql" }, { MXPC_PG_BINDIR = bin })
  t.eq(all, nil)
  t.contains(aerr.message, "psql not found")
  local two = assert(pg_programs.find_all({ "pg_dump", "pg_restore" }, { MXPC_PG_BINDIR = bin }))
  t.eq(two.pg_restore, bin .. "/pg_restore")
end)

t.test("the archive check takes pg_restore from MXPC_PG_BINDIR too", function()
  local bin = fake_bindir { pg_restore = "echo 'pg_restore: error: from the fake' >&2; exit 1" }
  local dump = assert(os.getenv("MXPC_SOURCE_DIR")) .. "/tests/archive/fixtures/sample.backup"
  local out = run_with_bindir(bin, ([[
    local backup_archive = require "mxpc.backup_archive"
    local _, err = backup_archive.validate("%s", { check_dump = true })
    print(err and err.message)
  ]]):format(dump))
  t.contains(out, "from the fake")
  t.contains(out, "(exit status 1)")
end)

return t.run()
