-- Numbers where the C modules read strings: in argument arrays (argv), in
-- option tables, environment values and headers. Lua converts them to
-- strings; those strings must stay alive while C uses them. The garbage
-- collector runs at every allocation here, so that a converted string nothing
-- keeps is freed at once: under AddressSanitizer (the asan build) a use after
-- free ends the run.
local t = require "t"
local process = require "mxpc.process"
local archive = require "mxpc.archive"
local s3 = require "mxpc.s3"
local k8s = require "mxpc.k8s"

local dir = t.tmpdir()
local source_dir = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set")

-- a whole collection cycle at every allocation: the smallest pause, and a
-- step size (2^40 bytes) no cycle reaches
collectgarbage("collect")
collectgarbage("incremental", 1, 100, 40)
collectgarbage("restart")

t.test("process.spawn: numbers in argv and in env values", function()
  local p <close> = assert(process.spawn({ "/bin/echo", 1234567, 2.5, -3 }, { stdout = "pipe" }))
  t.eq(p:read(), "1234567 2.5 -3\n")
  t.eq(p:wait().status, 0)
  local q <close> = assert(process.spawn({ "sh", "-c", 'printf "%s|%s" "$A" "$B"' },
    { env = { A = 42, B = 0.125 }, stdout = "pipe" }))
  t.eq(q:read(), "42|0.125")
  t.eq(q:wait().status, 0)
end)

t.test("process.spawn: a number as a file name", function()
  local _, err = process.spawn({ "true" }, { stdin = { file = 8765432 } })
  t.ok(err and tostring(err):find("8765432", 1, true), "the message names the file: " .. tostring(err))
end)

t.test("process.spawn: other types in argv are still refused", function()
  t.raises(function() process.spawn({ "/bin/echo", {} }) end, "command words must be strings")
  t.raises(function() process.spawn({ "/bin/echo" }, { env = { A = true } }) end, "env must map names to strings")
end)

t.test("archive entry pipe_to: numbers in argv", function()
  local path = dir .. "/a.tar.gz"
  local w <close> = assert(archive.writer(path, { name = "x" }))
  assert(w:add_string("f", "data"))
  assert(w:commit())
  local r <close> = assert(archive.reader(path))
  local e = assert(r:next())
  local res = assert(e:pipe_to({ "sh", "-c", 'cat >/dev/null; echo "$0 $1" >&2', 7, 8.5 }))
  t.eq(res.status, 0)
  t.eq(res.stderr, "7 8.5\n")
end)

t.test("s3.sign: numbers as options and header values", function()
  local function sign(v)
    return s3.sign {
      method = "GET", path = "/", region = v.region, service = "s3", time = 1440938160,
      access_key = v.key, secret_key = v.secret, session_token = v.token,
      headers = { { "host", "example.amazonaws.com" }, { "x-amz-meta-a", v.a }, ["x-amz-meta-b"] = v.b },
      payload_hash = "UNSIGNED-PAYLOAD",
    }
  end
  -- no string constant here equals a converted number, which would keep it alive
  local numbers = { region = 1, key = 123456789, secret = 987654321, token = 55555, a = 11, b = 22.5 }
  local with_numbers = sign(numbers)
  local strings = {}
  for k, v in pairs(numbers) do strings[k] = tostring(v) end
  local with_strings = sign(strings)
  t.eq(with_numbers.canonical_request, with_strings.canonical_request)
  t.eq(with_numbers.signature, with_strings.signature)
  t.contains(with_numbers.canonical_request, "x-amz-meta-a:11\nx-amz-meta-b:22.5\n")
end)

t.test("s3.client: numbers as options", function()
  local c <close> = assert(s3.client { endpoint = "http://127.0.0.1:9", region = 4242, access_key = 1111111,
    secret_key = 2222222, session_token = 3333333 })
  t.contains(tostring(c), "access key 1111111")
  local info = assert(s3.credentials { access_key = 1111111, secret_key = 2222222 })
  t.eq(info.access_key, "1111111")
  local _, err = s3.client { endpoint = 5 }
  t.ok(err, "an endpoint 5 is refused")
end)

t.test("s3.rds_token: numbers as options", function()
  local token = assert(s3.rds_token { host = 10203, user = 40506, port = 5432, region = 7, access_key = 1111111,
    secret_key = 2222222, time = 1440938160 })
  t.contains(token, "10203:5432/?Action=connect&DBUser=40506&")
  t.contains(token, "%2F7%2Frds-db%2Faws4_request")
end)

t.test("k8s.connect: numbers as options", function()
  local kubeconfig = source_dir .. "/tests/k8s/fixtures/kubeconfig.yaml"
  local c, err = k8s.connect { kubeconfig = kubeconfig, namespace = 31337 }
  assert(c, err)
  t.eq(c:namespace(), tostring(31336 + 1))
  c:close()
  local _, cerr = k8s.connect { kubeconfig = kubeconfig, context = 271828 }
  t.ok(cerr, "an unknown context is refused")
  t.contains(tostring(cerr), tostring(271827 + 1))
end)

t.test("pg.connect: numbers as options", function()
  local pg = require "mxpc.pg"
  local _, err = pg.connect { host = "127.0.0.1", port = 9, dbname = 12345, user = 678, password = 999,
    connect_timeout = 2 }
  t.ok(err, "nothing listens on port 9")
  t.contains(tostring(err), "678@127.0.0.1:9/12345")
end)

return t.run()
