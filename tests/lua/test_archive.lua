-- mxpc.archive: the Lua handles over the streaming tar.gz writer and reader.
local t = require "t"
local archive = require "mxpc.archive"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- name -> content of every entry, and the names in order
local function read_all(src)
  local r <close> = assert(archive.reader(src))
  local got, names = {}, {}
  for e in r:entries() do
    names[#names + 1] = e.name
    got[e.name] = e:read("a")
  end
  return got, names
end

t.test("writer adds strings, files, streams and begun entries; the reader returns them", function()
  local dir = t.tmpdir()
  write_file(dir .. "/in.bin", ("\0\1\2\255"):rep(5000))
  local path = dir .. "/a.tar.gz"
  local w <close> = assert(archive.writer(path, { level = 1 }))
  t.eq(w:add_string("s", "hello"), true)
  t.eq(w:add_file("f", dir .. "/in.bin"), true)
  local parts = { "ab", "", "cd" }
  t.eq(w:add_stream("st", 4, function() return table.remove(parts, 1) end), true)
  local e = assert(w:begin("b", 6))
  t.eq(e:write("12", "34"), e)
  t.ok(e:write("56"))
  t.eq(e:finish(), true)
  t.eq(w:add_string("empty", ""), true)
  t.same(w:stats().entries, 5)
  t.eq(fs.stat(path), nil, "nothing under the final name before commit")
  t.eq(w:commit(), true)
  t.eq(fs.stat(path).mode, 384) -- 0600
  local got, names = read_all(path)
  t.same(names, { "s", "f", "st", "b", "empty" })
  t.eq(got.s, "hello")
  t.eq(got.f, ("\0\1\2\255"):rep(5000))
  t.eq(got.st, "abcd")
  t.eq(got.b, "123456")
  t.eq(got.empty, "")
end)

t.test("entries have fields and stream their data in chunks", function()
  local dir = t.tmpdir()
  local w <close> = assert(archive.writer(dir .. "/c.tar.gz", { mtime = 1700000000 }))
  local data = ("0123456789"):rep(30000)
  assert(w:add_string("dir/data", data))
  assert(w:commit())
  local r <close> = assert(archive.reader(dir .. "/c.tar.gz"))
  local e = assert(r:next())
  t.eq(e.name, "dir/data")
  t.eq(e.size, #data)
  t.eq(e.type, "file")
  t.eq(e.mtime, 1700000000)
  t.eq(e:read(5), "01234")
  local parts = {}
  for chunk in e:chunks(1000) do
    t.ok(#chunk <= 1000)
    parts[#parts + 1] = chunk
  end
  t.eq("01234" .. table.concat(parts), data)
  t.eq(e:read(), nil, "nil at the end of the entry")
  t.eq(r:next(), nil)
  local info = r:info()
  t.eq(info.compression, "gzip")
  t.eq(info.entries, 1)
  t.eq(info.bytes_in, fs.stat(dir .. "/c.tar.gz").size)
end)

t.test("handles print no data and are closed idempotently", function()
  local dir = t.tmpdir()
  local w = assert(archive.writer(dir .. "/p.tar.gz"))
  assert(w:add_string("secret.txt", "hunter2"))
  local e = assert(w:begin("x", 1))
  t.contains(tostring(e), '"x", open')
  assert(e:write("h"))
  assert(e:finish())
  t.contains(tostring(e), "finished")
  t.contains(tostring(w), "p.tar.gz, 2 entries, not committed")
  assert(w:commit())
  t.contains(tostring(w), "committed")
  w:close()
  w:close()
  t.eq(tostring(w), "archive_writer (closed)")
  t.raises(function() w:add_string("y", "z") end, "attempt to use a closed archive writer")
  t.eq(fs.stat(dir .. "/p.tar.gz").type, "file", "closing a committed writer keeps the file")
  local r = assert(archive.reader(dir .. "/p.tar.gz"))
  local entry = assert(r:next())
  for _, s in ipairs { tostring(r), tostring(entry) } do
    t.ok(not s:find("hunter2", 1, true), s)
  end
  t.contains(tostring(entry), 'archive_entry ("secret.txt", file, 7 bytes)')
  r:close()
  r:close()
  t.eq(tostring(r), "archive_reader (closed)")
  t.raises(function() r:next() end, "attempt to use a closed archive reader")
end)

t.test("an uncommitted writer leaves no file, also when an error ends the block", function()
  local dir = t.tmpdir()
  do
    local w <close> = assert(archive.writer(dir .. "/u.tar.gz"))
    assert(w:add_string("a", ("x"):rep(100000)))
    t.eq(#fs.dir(dir), 1, "the temporary file while writing")
  end
  t.same(fs.dir(dir), {})
  local ok = pcall(function()
    local w <close> = assert(archive.writer(dir .. "/u.tar.gz"))
    assert(w:add_string("a", "x"))
    error("boom")
  end)
  t.eq(ok, false)
  t.same(fs.dir(dir), {})
  local w = assert(archive.writer(dir .. "/u.tar.gz"))
  w:abort()
  t.same(fs.dir(dir), {}, "abort")
  t.raises(function() w:add_string("a", "b") end, "committed or aborted")
end)

t.test("an existing file is refused with code 'exists' unless force", function()
  local dir = t.tmpdir()
  local path = dir .. "/e.tar.gz"
  write_file(path, "keep")
  local w, err = archive.writer(path)
  t.eq(w, nil)
  t.ok(errors.is(err, "exists"))
  t.contains(err.message, "already exists")
  t.eq(err.hint, nil, "no hint from C: the caller says how to replace it")
  t.eq(fs.read(path), "keep")
  w = assert(archive.writer(path, { force = true }))
  assert(w:add_string("a", "b"))
  t.eq(fs.read(path), "keep", "replaced only on commit")
  assert(w:commit())
  t.same(read_all(path), { a = "b" })
end)

t.test("a stream shorter or longer than declared fails the writer and removes the file", function()
  local dir = t.tmpdir()
  for _, case in ipairs { { 10, { "12345" }, "5 bytes written, 10 declared" },
    { 3, { "12345" }, "more data than the 3 bytes declared" } } do
    local w <close> = assert(archive.writer(dir .. "/s.tar.gz"))
    local chunks = case[2]
    local ok, err = w:add_stream("tree/x", case[1], function() return table.remove(chunks, 1) end)
    t.eq(ok, nil)
    t.ok(errors.is(err, "archive_size"), tostring(err))
    t.contains(err.message, 's.tar.gz: entry "tree/x": ' .. case[3])
    t.same(fs.dir(dir), {})
    t.raises(function() w:commit() end, "committed or aborted")
  end
end)

t.test("a source's nil, err and raised errors reach the caller; the file is removed", function()
  local dir = t.tmpdir()
  local w <close> = assert(archive.writer(dir .. "/f.tar.gz"))
  local failing = function() return nil, errors.new { code = "s3", message = "download failed" } end
  local ok, err = w:add_stream("d", 10, failing)
  t.eq(ok, nil)
  t.ok(errors.is(err, "s3"))
  t.contains(err.message, 'entry "d": download failed')
  t.same(fs.dir(dir), {})

  local w2 <close> = assert(archive.writer(dir .. "/g.tar.gz"))
  local raised = errors.new { code = "custom", message = "raised by the source" }
  local ok2, err2 = pcall(w2.add_stream, w2, "d", 10, function() error(raised) end)
  t.eq(ok2, false)
  t.eq(err2, raised, "the very same error object")
  t.same(fs.dir(dir), {})
end)

t.test("a sink receives the archive; a reader from a source reads it back", function()
  local chunks = {}
  local w <close> = assert(archive.writer(function(chunk) chunks[#chunks + 1] = chunk end, { name = "upload" }))
  t.contains(tostring(w), "upload")
  assert(w:add_string("a", ("abc"):rep(50000)))
  assert(w:add_string("b", "B"))
  assert(w:commit())
  local data = table.concat(chunks)
  t.eq(data:sub(1, 2), "\31\139", "gzip")
  local pos = 1
  local got = read_all(function()
    if pos > #data then return nil end
    local piece = data:sub(pos, pos + 999)
    pos = pos + 1000
    return piece
  end)
  t.same(got, { a = ("abc"):rep(50000), b = "B" })
end)

t.test("a failing sink fails the writer with its error", function()
  local w <close> = assert(archive.writer(function() return nil, errors.new { code = "s3", message = "quota" } end,
    { level = 0 }))
  local ok, err = w:add_string("big", ("x"):rep(1 << 20))
  t.eq(ok, nil)
  t.ok(errors.is(err, "s3"), tostring(err))
  t.contains(err.message, "quota")
  local w2 <close> = assert(archive.writer(function() error("sink exploded") end, { level = 0 }))
  t.raises(function() w2:add_string("big", ("x"):rep(1 << 20)) end, "sink exploded")
end)

t.test("misuse raises", function()
  local dir = t.tmpdir()
  t.raises(function() archive.writer(dir .. "/m.tar.gz", { level = 10 }) end, "level must be between 0 and 9")
  local w <close> = assert(archive.writer(dir .. "/m.tar.gz"))
  t.raises(function() w:add_string("/etc/passwd", "x") end, 'entry "/etc/passwd": absolute path')
  t.raises(function() w:add_string("a/../../b", "x") end, "path escapes the archive")
  t.raises(function() w:begin("a", -1) end, "size must not be negative")
  t.raises(function() w:add_stream("a", 1, function() return {} end) end, "must return strings")
  local w2 <close> = assert(archive.writer(dir .. "/n.tar.gz"))
  local e = assert(w2:begin("a", 1))
  t.raises(function() w2:add_string("b", "") end, "the previous entry is not finished")
  t.raises(function() w2:commit() end, "an entry is not finished")
  assert(e:write("x"))
  assert(e:finish())
  t.raises(function() e:write("y") end, "attempt to use a finished archive entry")
  assert(w2:commit())
end)

t.test("an unfinished entry that is closed aborts the archive", function()
  local dir = t.tmpdir()
  local w <close> = assert(archive.writer(dir .. "/x.tar.gz"))
  do
    local e <close> = assert(w:begin("a", 10))
    assert(e:write("12345"))
  end
  t.same(fs.dir(dir), {})
  t.raises(function() w:commit() end, "committed or aborted")
  local w2 <close> = assert(archive.writer(dir .. "/y.tar.gz"))
  local e2 = assert(w2:begin("a", 2))
  local ok, err = e2:write("123")
  t.eq(ok, nil)
  t.ok(errors.is(err, "archive_size"))
  t.same(fs.dir(dir), {})
end)

t.test("reader failures: missing file, damaged archive, stale entries", function()
  local dir = t.tmpdir()
  local r, err = archive.reader(dir .. "/missing.tar.gz")
  t.eq(r, nil)
  t.ok(errors.is(err, "not_found"), tostring(err))
  local w = assert(archive.writer(dir .. "/d.tar.gz", { level = 0 }))
  assert(w:add_string("a", ("a"):rep(100000)))
  assert(w:add_string("b", "b"))
  assert(w:commit())
  w:close()
  local whole = fs.read(dir .. "/d.tar.gz")
  write_file(dir .. "/cut.tar.gz", whole:sub(1, 60000))
  local rc <close> = assert(archive.reader(dir .. "/cut.tar.gz"))
  local e = assert(rc:next())
  local data, rerr = e:read("a")
  t.eq(data, nil)
  t.ok(errors.is(rerr, "archive_invalid"))
  t.contains(rerr.message, 'cut.tar.gz: entry "a": truncated gzip data')
  local raised = t.raises(function() for _ in rc:entries() do end end, "truncated gzip data")
  t.ok(errors.is(raised, "archive_invalid"), "the iterator raises the error object")

  local r2 <close> = assert(archive.reader(dir .. "/d.tar.gz"))
  local first = assert(r2:next())
  assert(r2:next())
  t.raises(function() first:read() end, "after moving past it")
  t.raises(function() first:skip() end, "after moving past it")

  local r3, err3 = archive.reader(function() return 42 end, { name = "stream" })
  t.eq(r3, nil)
  t.contains(err3.message, "stream: the source returned a number instead of a string")
end)

t.test("pipe_to streams an entry into a command and reports status, stderr and head", function()
  local dir = t.tmpdir()
  local w = assert(archive.writer(dir .. "/p.tar.gz"))
  local body = ("line\n"):rep(100000)
  assert(w:add_string("body", body))
  assert(w:add_string("next", "n"))
  assert(w:commit())
  w:close()
  local r <close> = assert(archive.reader(dir .. "/p.tar.gz"))
  local e = assert(r:next())
  local res = assert(e:pipe_to({ "sh", "-c", "wc -l >&2; exit 3" }, { head = 10 }))
  t.eq(res.status, 3)
  t.eq(res.stderr, "100000\n")
  t.eq(res.head, "line\nline\n")
  t.eq(assert(r:next()):read("a"), "n", "the whole entry was consumed")

  local r2 <close> = assert(archive.reader(dir .. "/p.tar.gz"))
  local e2 = assert(r2:next())
  -- `true` reads nothing: the entry is still read to its end
  local res2 = assert(e2:pipe_to { "true" })
  t.eq(res2.status, 0)
  t.eq(assert(r2:next()).name, "next")
  local e3 = assert(archive.reader(dir .. "/p.tar.gz")):next()
  local none, err = e3:pipe_to { "/nonexistent/command" }
  t.eq(none, nil)
  t.ok(errors.is(err, "not_found"), tostring(err))
end)

t.test("quote and name_problem", function()
  t.eq(archive.quote('a"\n'), '"a\\"\\n"')
  t.eq(archive.name_problem("tree/a"), nil)
  t.eq(archive.name_problem("../a"), "path escapes the archive")
  t.eq(archive.name_problem("a\0b"), "name contains a NUL byte")
  t.eq(archive.DEFAULT_LEVEL, 6)
end)

return t.run()
