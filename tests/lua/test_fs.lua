local t = require "t"
local fs = require "mxpc.fs"
local errors = require "mxpc.error"

t.test("atomic writer commits the file with mode 0600", function()
  local dir = t.tmpdir()
  local path = dir .. "/a.txt"
  local w <close> = assert(fs.atomic_writer(path))
  t.ok(w:write("one ", "two"))
  t.eq(fs.stat(path), nil, "no file before commit")
  t.ok(w:commit())
  t.eq(fs.read(path), "one two")
  t.eq(fs.stat(path).mode, 384) -- 0600
  t.same(fs.dir(dir), { "a.txt" })
end)

t.test("closing an uncommitted writer leaves nothing", function()
  local dir = t.tmpdir()
  do
    local w <close> = assert(fs.atomic_writer(dir .. "/b.txt"))
    w:write("partial")
    t.eq(#fs.dir(dir), 1, "temp file while writing")
  end
  t.same(fs.dir(dir), {})
end)

t.test("an error inside the block removes the partial file", function()
  local dir = t.tmpdir()
  local ok = pcall(function()
    local w <close> = assert(fs.atomic_writer(dir .. "/c.txt"))
    w:write("partial")
    error("boom")
  end)
  t.eq(ok, false)
  t.same(fs.dir(dir), {})
end)

t.test("existing file is refused with code 'exists' and a hint", function()
  local dir = t.tmpdir()
  local path = dir .. "/d.txt"
  local w = assert(fs.atomic_writer(path))
  w:write("x")
  assert(w:commit())
  local none, err = fs.atomic_writer(path)
  t.eq(none, nil)
  t.ok(errors.is(err, "exists"), "error object with code exists")
  t.contains(err.message, "already exists")
  t.contains(err.hint, "--force")
  local w2 = assert(fs.atomic_writer(path, { force = true }))
  w2:write("y")
  assert(w2:commit())
  t.eq(fs.read(path), "y")
end)

t.test("a closed writer raises on use and prints its state", function()
  local dir = t.tmpdir()
  local w = assert(fs.atomic_writer(dir .. "/e.txt"))
  t.contains(tostring(w), "open")
  w:abort()
  t.eq(tostring(w), "atomic_writer (closed)")
  t.raises(function() w:write("x") end, "closed atomic writer")
  w:abort() -- idempotent
end)

t.test("stat, mkdirs, read and remove report failures as error objects", function()
  local dir = t.tmpdir()
  local st, err = fs.stat(dir .. "/missing")
  t.eq(st, nil)
  t.eq(err.code, "not_found")
  t.contains(tostring(err), dir .. "/missing")
  t.ok(fs.mkdirs(dir .. "/x/y/z"))
  t.eq(fs.stat(dir .. "/x/y/z").type, "directory")
  t.ok(fs.mkdirs(dir .. "/x/y/z"), "mkdirs is idempotent")
  local _, rerr = fs.read(dir .. "/nope")
  t.eq(rerr.code, "not_found")
  t.ok(fs.remove(dir .. "/x/y/z"))
  local _, merr = fs.atomic_writer(dir .. "/no/such/dir/f")
  t.eq(merr.code, "not_found")
end)

t.test("mkdtemp makes a private directory", function()
  local dir = t.tmpdir()
  local d = assert(fs.mkdtemp(dir .. "/.work-"))
  t.ok(d:match("/%.work%-......$"), d)
  t.eq(fs.stat(d).type, "directory")
  t.eq(fs.stat(d).mode, 448) -- 0700
  local _, err = fs.mkdtemp(dir .. "/no/such/x-")
  t.eq(err.code, "not_found")
end)

t.test("free_space agrees with df; isatty tells a terminal from a pipe", function()
  local dir = t.tmpdir()
  local free = assert(fs.free_space(dir))
  local df = tonumber(t.sh("df -B1 --output=avail '" .. dir .. "' | tail -1"):match("%d+"))
  t.ok(math.abs(free - df) < 64 * 1024 * 1024, ("free_space %d, df %d"):format(free, df))
  local _, err = fs.free_space(dir .. "/no/such")
  t.eq(err.code, "not_found")
  t.eq(fs.isatty(0), false) -- ctest runs the test without a terminal
  t.write(dir .. "/tty.lua", 'print(require("mxpc.fs").isatty(1))')
  t.eq(t.sh(("script -qec '%s run %s/tty.lua' /dev/null"):format(t.program(), dir)):match("%a+"), "true")
  t.eq(t.sh(("%s run %s/tty.lua | cat"):format(t.program(), dir)):match("%a+"), "false")
end)

return t.run()
