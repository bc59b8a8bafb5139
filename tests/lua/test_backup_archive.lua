-- mxpc.backup_archive: the Mendix layout, .metadata, the dump header, the
-- writer that keeps the layout, and the validation pass.
local t = require "t"
local archive = require "mxpc.archive"
local ba = require "mxpc.backup_archive"
local cjson = require "cjson"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"

local SRC = os.getenv("MXPC_SOURCE_DIR") or "."
local DUMP = SRC .. "/tests/archive/fixtures/sample.backup"
local U1 = "0d3e301f-5551-46f8-ad44-8de2be084c95"
local U2 = "1fbdf930-67f9-47ee-b30e-e84c4c983e85"

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function sha256_file(path) return (t.sh("sha256sum '" .. path .. "'")):match("^(%x+)") end

local META = { duration = 12, dumpSize = 2387, modelVersion = "1.0.0.40", databaseSize = 9730584, filesSize = 6 }

-- A custom-format dump header as pg_dump writes it (see parse_dump_header).
local function dump_header(minor, format)
  local function int(v) return string.pack("<B I4", v < 0 and 1 or 0, math.abs(v)) end
  local function str(s) return int(#s) .. s end
  local h = "PGDMP" .. string.char(1, minor, 0, 4, 8, format or 1)
  h = h .. (minor >= 15 and string.char(3) or int(-1))
  for _, v in ipairs { 5, 4, 3, 2, 0, 124, 0 } do h = h .. int(v) end
  return h .. str("app") .. str("16.2") .. str("16.2 (Debian 16.2-1)") .. int(42)
end

t.test("build_metadata writes the documented keys in order, every value a string", function()
  t.eq(ba.build_metadata(META),
    '{"duration":"12","dumpSize":"2387","modelVersion":"1.0.0.40","databaseSize":"9730584","filesSize":"6"}')
  local extra = ba.build_metadata { duration = "0", dumpSize = 1.0, modelVersion = "x", databaseSize = 2,
    filesSize = 3, zeta = "z", alpha = 1 }
  t.eq(extra, '{"duration":"0","dumpSize":"1","modelVersion":"x","databaseSize":"2","filesSize":"3",' ..
    '"alpha":"1","zeta":"z"}')
  t.raises(function() ba.build_metadata { duration = 1 } end, "metadata field 'dumpSize' is missing")
  t.raises(function()
    ba.build_metadata { duration = 0.5, dumpSize = 1, modelVersion = "x", databaseSize = 2, filesSize = 3 }
  end, "metadata field 'duration' must be a string or an integer")
end)

t.test("parse_metadata accepts string values and names what is wrong", function()
  local meta, warnings = ba.parse_metadata(ba.build_metadata(META))
  t.eq(meta.modelVersion, "1.0.0.40")
  t.same(warnings, {})
  local m2, w2 = ba.parse_metadata('{"modelVersion":"1","dumpSize":"big"}')
  t.eq(m2.modelVersion, "1")
  t.same(w2, { ".metadata has no duration", ".metadata: dumpSize is not a whole number: \"big\"",
    ".metadata has no databaseSize", ".metadata has no filesSize" })
  local cases = {
    { "not json", "not valid JSON" }, { "[1,2]", "not a JSON object" }, { '"s"', "not a JSON object" },
    { '{"dumpSize":5}', 'value of "dumpSize" must be a string, got number' },
    { '{"a":null}', 'value of "a" must be a string, got null' },
    { '{"a":{"b":"c"}}', "got an object or array" },
  }
  for _, c in ipairs(cases) do
    local m, why = ba.parse_metadata(c[1])
    t.eq(m, nil, c[1])
    t.contains(why, c[2])
  end
end)

t.test("UUIDs and their paths, nested and flat", function()
  t.ok(ba.is_uuid(U1))
  t.ok(ba.is_uuid(U1:upper()))
  for _, bad in ipairs { "", "0d3e301f55514 6f8", U1 .. "0", U1:sub(2), "g" .. U1:sub(2), U1:gsub("-", "_") } do
    t.eq(ba.is_uuid(bad), false, bad)
  end
  t.eq(ba.file_path(U1), "tree/0d/3e/" .. U1)
  t.raises(function() ba.file_path("../../etc") end, 'not a UUID: "../../etc"')
  t.same({ ba.uuid_from_path("tree/0d/3e/" .. U1) }, { U1, "nested" })
  t.same({ ba.uuid_from_path("tree/" .. U1) }, { U1, "flat" })
  t.same({ ba.uuid_from_path("./tree/" .. U1) }, { U1, "flat" })
  t.same({ ba.uuid_from_path("tree/00/00/" .. U1) },
    { nil, "directories do not match the UUID (expected tree/0d/3e/" .. U1 .. ")" })
  t.same({ ba.uuid_from_path("tree/0d/3e/x") }, { nil, "file name is not a UUID" })
  t.same({ ba.uuid_from_path("tree/x") }, { nil, "file name is not a UUID" })
  t.eq(ba.uuid_from_path("tree/a/b/c/" .. U1), nil)
  t.eq(ba.uuid_from_path("db/" .. U1), nil)
end)

t.test("classify places every entry in the layout or says why not", function()
  t.eq(ba.classify(".metadata", "file").kind, "metadata")
  t.eq(ba.classify("./.metadata", "file").kind, "metadata")
  t.eq(ba.classify("db/db.backup", "file").kind, "dump")
  local f = ba.classify("tree/0d/3e/" .. U1, "file")
  t.same(f, { kind = "file", key = "tree/0d/3e/" .. U1, uuid = U1, form = "nested" })
  for _, d in ipairs { "./", "db/", "tree/", "tree/0d/", "tree/0d/3e/", "./tree/0d" } do
    t.eq(ba.classify(d, "directory").kind, "directory", d)
  end
  for _, bad in ipairs { { "db", "file" }, { "tree/0d/3e/x/", "directory" }, { "etc/", "directory" },
    { "db//db.backup", "file" }, { "README", "file" }, { "tree/zz/", "directory" } } do
    local info, why = ba.classify(bad[1], bad[2])
    t.eq(info, nil, bad[1])
    t.contains(why, "not part of the backup archive layout")
  end
end)

t.test("the dump header of a real pg_dump 15 custom-format dump", function()
  local h = assert(ba.parse_dump_header(fs.read(DUMP)))
  t.eq(h.version, "1.14")
  t.eq(h.format, "custom")
  t.eq(h.compression, "gzip")
  t.eq(h.database, "app")
  t.ok(h.pg_dump_version:match("^15%."), h.pg_dump_version)
  t.ok(h.server_version:match("^15%."), h.server_version)
  t.eq(h.toc_entries, 9)
  t.ok(h.created:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$"), h.created)
end)

t.test("dump headers of 1.15 (pg_dump 16) and of other formats", function()
  local h = assert(ba.parse_dump_header(dump_header(15)))
  t.eq(h.version, "1.15")
  t.eq(h.compression, "zstd")
  t.eq(h.pg_dump_version, "16.2 (Debian 16.2-1)")
  t.eq(h.toc_entries, 42)
  t.eq(h.created, "2024-01-02 03:04:05")
  t.eq(assert(ba.parse_dump_header(dump_header(14, 3))).format, "tar")
  local none, why = ba.parse_dump_header("-- PostgreSQL database dump\n")
  t.eq(none, nil)
  t.contains(why, "not a PostgreSQL custom-format dump")
  local short = assert(ba.parse_dump_header(dump_header(14):sub(1, 12)))
  t.eq(short.version, "1.14")
  t.eq(short.pg_dump_version, nil, "fields beyond the data are left out")
end)

t.test("Mendix Cloud verdict: up to archive version 1.14, gzip, with .metadata", function()
  local function summary(minor, extra)
    local s = { kind = "archive", compression = "gzip", metadata = {}, dump = ba.parse_dump_header(dump_header(minor)) }
    for k, v in pairs(extra or {}) do s[k] = v end
    return s
  end
  t.same(ba.compatibility(summary(14)),
    { mendix_cloud = true, verdict = "compatible: restores in Mendix Cloud and with this tool" })
  local c = ba.compatibility(summary(15))
  t.eq(c.mendix_cloud, false)
  t.eq(c.verdict, "restores with this tool but not in Mendix Cloud")
  t.contains(c.reasons[1], "archive version 1.15 (pg_dump 16.2 (Debian 16.2-1)) is newer than 1.14")
  t.eq(ba.compatibility(summary(14, { compression = "none" })).reasons[1], "the archive is not gzip-compressed")
  t.eq(ba.compatibility(summary(14, { metadata = false })).reasons[1], "the archive has no .metadata")
  t.eq(ba.compatibility(summary(14, { kind = "dump", metadata = false })).mendix_cloud, true)
end)

t.test("detect tells archives, bare dumps and other files apart", function()
  local dir = t.tmpdir()
  write_file(dir .. "/d.backup", dump_header(14))
  write_file(dir .. "/a.tar.gz", "\31\139rest")
  write_file(dir .. "/t.txt", "hello")
  write_file(dir .. "/empty", "")
  t.eq(ba.detect(dir .. "/d.backup"), "dump")
  t.eq(ba.detect(dir .. "/a.tar.gz"), "archive")
  local function refused(path, code, text)
    local kind, err = ba.detect(path)
    t.eq(kind, nil)
    t.ok(errors.is(err, code), tostring(err))
    t.contains(err.message, text)
  end
  refused(dir .. "/t.txt", "archive_invalid", "not a backup archive")
  refused(dir .. "/empty", "archive_invalid", "empty file")
  refused(dir, "archive_invalid", "not a regular file")
  refused(dir .. "/missing", "not_found", "missing")
end)

t.test("the writer keeps the layout's order and refuses misuse", function()
  local dir = t.tmpdir()
  local w <close> = assert(ba.writer(dir .. "/w.tar.gz"))
  t.raises(function() w:add_dump(DUMP) end, "cannot add the database dump now: the archive expects metadata next")
  t.raises(function() w:add_file(U1, DUMP) end, "cannot add a file now")
  assert(w:add_metadata(META))
  t.raises(function() w:commit() end, "the archive expects dump next")
  t.raises(function() w:add_dump(function() end) end, "a source function needs an integer size")
  assert(w:add_dump(DUMP))
  t.raises(function() w:add_file("not-a-uuid", DUMP) end, 'not a UUID: "not-a-uuid"')
  assert(w:add_file(U1, function() return nil end, 0))
  t.raises(function() w:add_file(U1, DUMP) end, "added twice")
  t.contains(tostring(w), "next: files")
  assert(w:commit())
  t.same(fs.dir(dir), { "w.tar.gz" })
  local w2, err = ba.writer(dir .. "/w.tar.gz")
  t.eq(w2, nil)
  t.ok(errors.is(err, "exists"))
end)

t.test("round trip: metadata, dump and files of 0 B, 1 B, 1 MiB and 100 MiB, byte-identical", function()
  local dir = t.tmpdir()
  local sizes = { [U1] = 0, [U2] = 1, ["2a2b3c4d-0000-4000-8000-00000000000a"] = 1 << 20,
    ["3a2b3c4d-0000-4000-8000-00000000000b"] = 100 << 20 }
  local uuids, hashes, total = {}, {}, 0
  for u, n in pairs(sizes) do
    uuids[#uuids + 1] = u
    local _, code = t.sh(("head -c %d /dev/urandom > '%s/%s'"):format(n, dir, u))
    t.eq(code, 0)
    hashes[ba.file_path(u)] = sha256_file(dir .. "/" .. u)
    total = total + n
  end
  table.sort(uuids)
  hashes[ba.DUMP] = sha256_file(DUMP)
  local out = dir .. "/backup.tar.gz"
  local meta = { duration = 1, dumpSize = fs.stat(DUMP).size, modelVersion = "1.0.0.40", databaseSize = 1,
    filesSize = total }
  do
    local w <close> = assert(ba.writer(out, { level = 1 }))
    assert(w:add_metadata(meta))
    assert(w:add_dump(DUMP))
    for i, u in ipairs(uuids) do
      if i % 2 == 0 then
        assert(w:add_file(u, dir .. "/" .. u))
      else -- the other half from a source function, as a download would be
        local f <close> = assert(io.open(dir .. "/" .. u, "rb"))
        assert(w:add_file(u, function() return f:read(100000) end, sizes[u]))
      end
    end
    assert(w:commit())
  end

  local r <close> = assert(archive.reader(out))
  local names = {}
  for e in r:entries() do
    names[#names + 1] = e.name
    if e.name == ba.METADATA then
      t.eq(e:read("a"), ba.build_metadata(meta))
    else
      local res = assert(e:pipe_to { "sh", "-c", "sha256sum >&2" })
      t.eq(res.stderr:match("^(%x+)"), hashes[e.name], e.name)
    end
  end
  local expected = { ba.METADATA, ba.DUMP }
  for _, u in ipairs(uuids) do expected[#expected + 1] = ba.file_path(u) end
  t.same(names, expected)

  local s = assert(ba.validate(out, { check_dump = true }))
  t.eq(s.files, 4)
  t.eq(s.files_bytes, total)
  t.eq(s.layout, "nested")
  t.eq(s.dump.size, fs.stat(DUMP).size)
  t.eq(s.metadata.filesSize, tostring(total))
  t.eq(s.compatibility.mendix_cloud, true)
  t.same(s.warnings, {})
end)

t.test("validate reads from an open reader too (a stream), and warns about what it tolerates", function()
  local dir = t.tmpdir()
  local w = assert(archive.writer(dir .. "/flat.tar.gz"))
  assert(w:add_string("db/db.backup", fs.read(DUMP)))
  assert(w:add_string("tree/" .. U1, "flat"))
  assert(w:commit())
  w:close()
  local f <close> = assert(io.open(dir .. "/flat.tar.gz", "rb"))
  local r <close> = assert(archive.reader(function() return f:read(1000) end, { name = "s3://bucket/flat.tar.gz" }))
  local s = assert(ba.validate(r, { check_dump = true }))
  t.eq(s.file, "s3://bucket/flat.tar.gz")
  t.eq(s.layout, "flat")
  t.eq(s.metadata, nil)
  t.eq(s.compatibility.mendix_cloud, false)
  t.same(s.warnings, { "files use the older flat tree/<uuid> layout (read as usual)", "the archive has no .metadata",
    "the archive has no .metadata: restores with this tool but not in Mendix Cloud" })
end)

t.test("a missing pg_restore is reported, not mistaken for a damaged dump", function()
  local dir = t.tmpdir()
  local w = assert(archive.writer(dir .. "/a.tar.gz"))
  assert(w:add_string("db/db.backup", fs.read(DUMP)))
  assert(w:commit())
  w:close()
  local s, err = ba.validate(dir .. "/a.tar.gz", { check_dump = true, pg_restore = "/nonexistent/pg_restore" })
  t.eq(s, nil)
  t.ok(errors.is(err, "not_found"), tostring(err))
  local s2, err2 = ba.validate(DUMP, { check_dump = true, pg_restore = "/nonexistent/pg_restore" })
  t.eq(s2, nil)
  t.ok(errors.is(err2, "not_found"), tostring(err2))
end)

t.test("inspect and verify --json print the summary", function()
  local dir = t.tmpdir()
  local out = dir .. "/b.tar.gz"
  local w <close> = assert(ba.writer(out))
  assert(w:add_metadata(META))
  assert(w:add_dump(DUMP))
  assert(w:add_file(U1, function() return nil end, 0))
  assert(w:commit())
  for _, cmd in ipairs { "inspect", "verify" } do
    local text, code = t.sh(("%s %s --json '%s'"):format(t.program(), cmd, out))
    t.eq(code, 0, text)
    local doc = cjson.decode(text)
    t.eq(doc.ok, true)
    t.eq(doc.kind, "archive")
    t.eq(doc.files, 1)
    t.eq(doc.dump.version, "1.14")
    t.eq(doc.metadata.modelVersion, "1.0.0.40")
    t.eq(doc.warnings, nil)
  end
end)

return t.run()
