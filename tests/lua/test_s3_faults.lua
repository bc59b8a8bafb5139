-- mxpc.s3 through a proxy that injects faults (tests/faults/s3_fault_proxy.py)
-- in front of the local stack's Ceph RADOS Gateway: answers cut off in the
-- middle of the body, 500/503 answers, slow bodies. A GET resumes where it
-- was cut (Range) and only from the same object (If-Match); a PUT is sent
-- again after a 500/503; retries end after `retries`. Tested through the Lua
-- API only. Needs MXPC_STACK_ENV (fails without it).
local t = require "t"
local s3 = require "mxpc.s3"
local process = require "mxpc.process"
local cjson = require "cjson"

local env = t.stack_env()
local dir = t.tmpdir()
local source_dir = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set")
local MiB = 1024 * 1024

local rules_file, log_file = dir .. "/rules.json", dir .. "/requests.log"

-- the proxy, in front of the gateway
local target = assert(env.MXPC_S3_ENDPOINT:match("^http://([^/]+)$"), "MXPC_S3_ENDPOINT is not http://host:port")
local proxy <close> = assert(process.spawn({ "python3", source_dir .. "/tests/faults/s3_fault_proxy.py", "--target",
  target, "--rules", rules_file, "--log", log_file }, { stdout = "pipe" }))
local banner = ""
while not banner:find("\n") do
  local got = proxy:read(256)
  if not got then error("the proxy did not start: " .. proxy:wait().stderr) end
  banner = banner .. got
end
local proxy_port = assert(banner:match("listening on 127%.0%.0%.1:(%d+)"), "unexpected banner: " .. banner)

local function client(endpoint, extra)
  local o = { endpoint = endpoint, region = env.MXPC_S3_REGION, access_key = env.MXPC_S3_ACCESS_KEY,
    secret_key = env.MXPC_S3_SECRET_KEY }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(s3.client(o))
end
local direct = client(env.MXPC_S3_ENDPOINT)
local proxied = client("http://127.0.0.1:" .. proxy_port, { retries = 4 })

math.randomseed(os.time(), tonumber(tostring({}):match("0x(%x+)"), 16) or 0)
local bucket = ("mxpc-s3-faults-%d-%06d"):format(os.time(), math.random(0, 999999))
assert(direct:create_bucket(bucket))

local function random_bytes(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local s = f:read(n)
  f:close()
  return s
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Sets the proxy's rules and forgets the requests logged so far.
local function faults(rules)
  os.remove(log_file)
  local tmp = rules_file .. ".tmp"
  t.write(tmp, cjson.encode(rules))
  assert(os.rename(tmp, rules_file))
end

-- The requests the proxy saw for `key` since faults() (in order).
local function requests(key)
  local out = {}
  local f = io.open(log_file)
  if not f then return out end
  for line in f:lines() do
    local r = cjson.decode(line)
    if r.path:find(key, 1, true) then
      for _, k in ipairs { "range", "if_match", "status" } do
        if r[k] == cjson.null then r[k] = nil end
      end
      out[#out + 1] = r
    end
  end
  f:close()
  return out
end

local n = 0
local function new_key(what)
  n = n + 1
  return ("%s-%d"):format(what, n)
end

t.test("GET cut mid-body resumes with Range and If-Match, byte for byte", function()
  local key = new_key("cut-once")
  local data = random_bytes(3 * MiB + 17)
  local etag = assert(direct:put(bucket, key, data)).etag
  faults { { method = "GET", key = key, action = "cut", after = 1000000 } }
  local path = dir .. "/" .. key
  t.eq(assert(proxied:get(bucket, key, path)), #data)
  t.ok(read_file(path) == data, "the file holds the object byte for byte")
  local r = requests(key)
  t.eq(#r, 2, "two GETs")
  t.eq(r[1].action, "cut")
  t.eq(r[1].body_bytes, 1000000)
  t.eq(r[1].range, nil)
  t.eq(r[2].range, "bytes=1000000-")
  t.eq(r[2].if_match, etag)
  t.eq(r[2].status, 206)
end)

t.test("GET cut twice and answered 503 once still completes, each resume where the data ended", function()
  local key = new_key("cut-twice")
  local data = random_bytes(2 * MiB)
  local etag = assert(direct:put(bucket, key, data)).etag
  faults {
    { method = "GET", key = key, action = "cut", after = 500000 },
    { method = "GET", key = key, action = "status", status = 503 },
    { method = "GET", key = key, action = "cut", after = 300000 },
  }
  local chunks = {}
  t.eq(assert(proxied:get(bucket, key, function(c) chunks[#chunks + 1] = c end)), #data)
  t.ok(table.concat(chunks) == data, "the sink got the object byte for byte")
  local r = requests(key)
  t.eq(#r, 4)
  t.same({ r[1].action, r[2].action, r[3].action, r[4].action }, { "cut", "status", "cut", "pass" })
  t.eq(r[2].range, "bytes=500000-")
  t.eq(r[3].range, "bytes=500000-")
  t.eq(r[4].range, "bytes=800000-")
  for i = 2, 4 do t.eq(r[i].if_match, etag, "request " .. i .. " is pinned to the object") end
end)

-- Replaces the object from another process `after` seconds from now, while
-- the proxy holds the cut connection of the download open.
local function replace_soon(key, path, after)
  local script = dir .. "/replace.lua"
  t.write(script, ([[
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = %q, region = %q, access_key = %q, secret_key = %q })
local f = assert(io.open(%q, "rb"))
assert(c:put(%q, %q, f:read("a")))
]]):format(env.MXPC_S3_ENDPOINT, env.MXPC_S3_REGION, env.MXPC_S3_ACCESS_KEY, env.MXPC_S3_SECRET_KEY, path, bucket,
    key))
  return assert(process.spawn({ "sh", "-c", ('sleep %s && exec "$0" run "$1"'):format(after), t.program(), script }))
end

-- Downloads `key` into `sink` through the proxy, which cuts the answer after
-- 700000 bytes and holds the connection while another process replaces the
-- object. Returns get's results, the old content and the old ETag.
local function download_while_replaced(key, sink)
  local old, new_path = random_bytes(2 * MiB), dir .. "/" .. key .. ".new"
  t.write(new_path, random_bytes(2 * MiB))
  local etag = assert(direct:put(bucket, key, old)).etag
  faults { { method = "GET", key = key, action = "cut", after = 700000, hold = 3 } }
  local writer <close> = replace_soon(key, new_path, 0.5)
  local bytes, err = proxied:get(bucket, key, sink)
  t.eq(writer:wait().status, 0, "the object was replaced")
  t.eq(bytes, nil, "the GET fails")
  t.eq(err and err.code, "changed")
  t.eq(err.status, 412)
  t.contains(err.message, "changed during the download")
  local r = requests(key)
  t.eq(#r, 2, "no retry once the object changed")
  t.eq(r[2].range, "bytes=700000-")
  t.eq(r[2].if_match, etag)
  t.eq(r[2].status, 412)
  return old
end

t.test("an object replaced during a download is an error on resume, never a mix of both", function()
  local got = {}
  local old = download_while_replaced(new_key("replaced"), function(c) got[#got + 1] = c end)
  t.ok(table.concat(got) == old:sub(1, 700000), "only the old object's bytes reached the sink")
end)

t.test("... and into a file: nothing is left under its name", function()
  local key = new_key("replaced-file")
  local path = dir .. "/" .. key
  download_while_replaced(key, path)
  t.eq(read_file(path), nil, "no file")
  local listing = t.sh("ls -A '" .. dir .. "'")
  t.ok(not listing:find("." .. key .. ".tmp", 1, true), "no temporary file either: " .. listing)
end)

t.test("PUT is sent again after 500 and 503", function()
  local key = new_key("put-5xx")
  local data = random_bytes(300000)
  faults {
    { method = "PUT", key = key, action = "status", status = 500 },
    { method = "PUT", key = key, action = "status", status = 503 },
  }
  local o = assert(proxied:put(bucket, key, data))
  t.eq(o.size, #data)
  local r = requests(key)
  t.eq(#r, 3)
  t.same({ r[1].status, r[2].status, r[3].status }, { 500, 503, 200 })
  t.ok(assert(direct:get_string(bucket, key)) == data, "the object is complete")
end)

t.test("a multipart part answered 503 is sent again; the object is complete", function()
  local key = new_key("multipart")
  local data = random_bytes(11 * MiB + 5)
  local path = dir .. "/" .. key .. ".src"
  t.write(path, data)
  local c = client("http://127.0.0.1:" .. proxy_port, { retries = 4, part_size = 5 * MiB })
  faults { { method = "PUT", key = "partNumber=2", action = "status", status = 503 } }
  t.eq(assert(c:put(bucket, key, { path = path })).size, #data)
  local parts = {} -- part number -> the statuses of its PUTs, in order
  for _, r in ipairs(requests(key)) do
    local p = r.path:match("partNumber=(%d+)")
    if p then
      parts[p] = parts[p] or {}
      table.insert(parts[p], ("%d"):format(r.status))
    end
  end
  t.same(parts, { ["1"] = { "200" }, ["2"] = { "503", "200" }, ["3"] = { "200" } })
  t.ok(assert(direct:get_string(bucket, key)) == data, "the object is complete")
end)

t.test("retries end after `retries`: the 503 is reported", function()
  local key = new_key("always-503")
  assert(direct:put(bucket, key, "x"))
  local c = client("http://127.0.0.1:" .. proxy_port, { retries = 2 })
  faults { { method = "GET", key = key, action = "status", status = 503, times = -1 } }
  local got, err = c:get_string(bucket, key)
  t.eq(got, nil)
  t.eq(err.status, 503)
  t.eq(#requests(key), 3, "the first try and two retries")
end)

t.test("a slow body is not a failure", function()
  local key = new_key("slow")
  local data = random_bytes(MiB)
  assert(direct:put(bucket, key, data))
  faults { { method = "GET", key = key, action = "slow", piece = 64 * 1024, delay = 0.05 } }
  t.ok(assert(proxied:get_string(bucket, key)) == data, "complete")
  local r = requests(key)
  t.eq(#r, 1, "no retry")
  t.eq(r[1].action, "slow")
end)

t.test("a ranged GET cut mid-body resumes inside its range, pinned to the object", function()
  local key = new_key("range-cut")
  local data = random_bytes(3 * MiB)
  local etag = assert(direct:put(bucket, key, data)).etag
  faults { { method = "GET", key = key, action = "cut", after = 500000 } }
  local parts = {}
  t.eq(assert(proxied:get(bucket, key, function(c) parts[#parts + 1] = c end,
    { offset = MiB, length = 2 * MiB - 10, if_match = etag })), 2 * MiB - 10)
  t.ok(table.concat(parts) == data:sub(MiB + 1, 3 * MiB - 10), "the range byte for byte")
  local r = requests(key)
  t.eq(#r, 2, "two GETs")
  t.eq(r[1].range, ("bytes=%d-%d"):format(MiB, 3 * MiB - 11))
  t.eq(r[2].range, ("bytes=%d-%d"):format(MiB + 500000, 3 * MiB - 11))
  t.eq(r[2].if_match, etag)
end)

t.test("an upload of unknown length: a part answered 503 once is sent again, one that keeps failing aborts it", function()
  local c = client("http://127.0.0.1:" .. proxy_port, { retries = 1, part_size = 5 * MiB })
  local function upload(key)
    local u <close> = assert(c:upload(bucket, key, { concurrency = 2 }))
    local piece = random_bytes(MiB)
    for _ = 1, 12 do
      local ok, err = u:write(piece)
      if not ok then return nil, err end
    end
    return u:commit()
  end
  local function unfinished(key)
    local count = 0
    for _, u in ipairs(assert(direct:list_multipart_uploads(bucket))) do
      if u.key == key then count = count + 1 end
    end
    return count
  end
  local key = new_key("upload-retried")
  faults { { method = "PUT", key = "partNumber=2", action = "status", status = 503 } }
  local o = assert(upload(key))
  t.eq(o.size, 12 * MiB)
  t.eq(#assert(direct:get_string(bucket, key)), 12 * MiB, "the object is complete")
  key = new_key("upload-failed")
  faults { { method = "PUT", key = "partNumber=2", action = "status", status = 503, times = -1 } }
  local none, err = upload(key)
  t.eq(none, nil)
  t.eq(err.status, 503)
  t.eq(unfinished(key), 0, "the multipart upload was aborted")
  t.eq((direct:head(bucket, key)), nil, "no object")
end)

-- Runs a child that puts `size` bytes under `key` through the proxy in 5 MiB
-- parts (client options `extra`, Lua source), sends it SIGTERM `delay`
-- seconds after S3 made the multipart upload, and returns its result and
-- the ids of the uploads of `key` left unfinished (then aborted).
local function put_and_terminate(key, size, extra, delay)
  local script = dir .. "/" .. key .. ".lua"
  t.write(script, ([[
local s3 = require "mxpc.s3"
local c = assert(s3.client { endpoint = %q, region = %q, access_key = %q, secret_key = %q,
  part_size = 5 * 1024 * 1024, %s })
assert(c:put(%q, %q, string.rep("x", %d)))
]]):format("http://127.0.0.1:" .. proxy_port, env.MXPC_S3_REGION, env.MXPC_S3_ACCESS_KEY, env.MXPC_S3_SECRET_KEY,
    extra, bucket, key, size))
  local p <close> = assert(process.spawn({ t.program(), "run", script }))
  local created = false
  for _ = 1, 200 do
    for _, r in ipairs(requests(key)) do
      if r.method == "POST" and r.status == 200 then created = true end
    end
    if created then break end
    os.execute("sleep 0.05")
  end
  t.ok(created, "S3 made the upload")
  os.execute(("sleep %s; kill -TERM %d"):format(delay, p:pid()))
  local r = p:wait()
  local left = {}
  for _, u in ipairs(assert(direct:list_multipart_uploads(bucket))) do
    if u.key == key then
      left[#left + 1] = u.upload_id
      direct:abort_multipart(bucket, u.key, u.upload_id)
    end
  end
  return r, left
end

t.test("SIGTERM while S3 answers CreateMultipartUpload: the upload it made is aborted", function()
  local key = new_key("signal-create")
  -- the answer comes slowly: S3 has made the upload, the client has not its id yet
  faults { { method = "POST", key = "?uploads", action = "slow", piece = 64, delay = 0.3 } }
  local r, left = put_and_terminate(key, 6 * MiB, "", 0)
  t.eq(r.status, 143, r.stderr)
  t.eq(#left, 0, "no unfinished multipart upload")
end)

t.test("SIGTERM, and S3 never answers the abort of the multipart upload: the program ends, naming the upload",
  function()
  local key = new_key("signal-hang")
  faults { { method = "DELETE", key = "uploadId", action = "hang", seconds = 40 } }
  local r, left = put_and_terminate(key, 11 * MiB, "max_send_speed = 1024 * 1024", 0.3)
  local deletes = 0
  for _, q in ipairs(requests(key)) do
    if q.method == "DELETE" then deletes = deletes + 1 end
  end
  t.eq(r.status, 143, r.stderr)
  t.eq(deletes, 1, "the abort was not waited out")
  t.eq(#left, 1)
  t.contains(r.stderr, "could not abort the upload in parts " .. tostring(left[1]))
end)

t.test("copy_many: a CopyObject answered 200 with an <Error> is tried again when S3 says so, else a failure", function()
  local body = random_bytes(3000)
  assert(direct:put(bucket, "copy-src", body))
  local items = { { key = "copy-src", to_key = "copy-dst-1" } }
  faults { { method = "PUT", key = "copy-dst-1", action = "status", status = 200, code = "InternalError" } }
  assert(proxied:copy_many(bucket, items, { to_bucket = bucket }))
  t.eq(direct:get_string(bucket, "copy-dst-1"), body)
  local r = requests("copy-dst-1")
  t.eq(#r, 2, "the copy was tried again")
  t.same({ r[1].status, r[2].status }, { 200, 200 })
  t.same({ r[1].action, r[2].action }, { "status", "pass" })
  items[1].to_key = "copy-dst-2"
  faults { { method = "PUT", key = "copy-dst-2", action = "status", status = 200, code = "AccessDenied" } }
  local none, err = proxied:copy_many(bucket, items, { to_bucket = bucket })
  t.eq(none, nil)
  t.contains(err.message, "AccessDenied")
  t.contains(err.message, "copy-dst-2")
  t.eq(#requests("copy-dst-2"), 1, "a refusal inside a 200 is not tried again")
  t.eq(direct:head(bucket, "copy-dst-2"), nil)
  faults {}
  for _, k in ipairs { "copy-src", "copy-dst-1" } do direct:delete(bucket, k) end
end)

t.test("cleanup", function()
  faults {}
  for i = 1, n do
    local base = ({ "cut-once", "cut-twice", "replaced", "replaced-file", "put-5xx", "multipart", "always-503",
      "slow", "range-cut", "upload-retried", "upload-failed" })[i]
    if base then direct:delete(bucket, ("%s-%d"):format(base, i)) end
  end
  assert(direct:delete_bucket(bucket))
end)

return t.run()
