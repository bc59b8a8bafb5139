-- mxpc.s3 against the local stack's Ceph RADOS Gateway (strict SigV4), over
-- http and https. Every test works in its own bucket, created here and
-- deleted at the end. Needs MXPC_STACK_ENV (fails without it).
local t = require "t"
local s3 = require "mxpc.s3"
local errors = require "mxpc.error"
local fs = require "mxpc.fs"

local env = t.stack_env()
local MiB = 1024 * 1024
local dir = t.tmpdir()
local program = t.program()

local function opts(extra)
  local o = {
    endpoint = env.MXPC_S3_ENDPOINT,
    region = env.MXPC_S3_REGION,
    access_key = env.MXPC_S3_ACCESS_KEY,
    secret_key = env.MXPC_S3_SECRET_KEY,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local client = assert(s3.client(opts()))
math.randomseed(os.time(), tonumber(tostring({}):match("0x(%x+)"), 16) or 0)
local bucket = ("mxpc-s3-test-%d-%06d"):format(os.time(), math.random(0, 999999))
assert(client:create_bucket(bucket))

local function sha256(path)
  local out = t.sh("sha256sum '" .. path .. "'")
  return out:match("^(%x+)")
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- random bytes in a file
local function random_file(name, size)
  local path = dir .. "/" .. name
  local _, code = t.sh(("head -c %d /dev/urandom > '%s'"):format(size, path))
  t.eq(code, 0)
  return path
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs the program on a script (a string) with environment assignments
-- (`VAR=value` words, `-u VAR` to unset); returns exit code, stdout, stderr.
local script_n = 0
local function run_script(source, env_words, args)
  script_n = script_n + 1
  local script = ("%s/script%d.lua"):format(dir, script_n)
  write_file(script, source)
  local out, err = script .. ".out", script .. ".err"
  local cmd = ("env %s %s %s run %s > %s 2> %s; echo $?"):format(env_words or "", quote(program), args or "",
    quote(script), quote(out), quote(err))
  local rc = t.sh(cmd)
  return tonumber(rc:match("(%d+)%s*$")), read_file(out), read_file(err)
end

-- The settings as Lua source, for scripts run in a child process.
local function child_prelude()
  return ([[
local s3 = require "mxpc.s3"
local E = { endpoint = %q, https = %q, region = %q, access_key = %q, secret_key = %q, ca = %q, bucket = %q }
]]):format(env.MXPC_S3_ENDPOINT, env.MXPC_S3_HTTPS_ENDPOINT, env.MXPC_S3_REGION, env.MXPC_S3_ACCESS_KEY,
    env.MXPC_S3_SECRET_KEY, env.MXPC_S3_CA, bucket)
end

local function uploads_of(key)
  local list = assert(client:list_multipart_uploads(bucket))
  local n = 0
  for _, u in ipairs(list) do
    if u.key == key then n = n + 1 end
  end
  return n
end

t.test("put/get/head/delete round trip: 0 B, 1 B, 1 MiB, byte for byte", function()
  for _, size in ipairs({ 0, 1, MiB }) do
    local key = ("round/%d.bin"):format(size)
    local src = random_file("rt-" .. size, size)
    local put = assert(client:put(bucket, key, { path = src }))
    t.eq(put.size, size)
    t.ok(#put.etag > 0, "etag of a put")
    local head = assert(client:head(bucket, key))
    t.eq(head.size, size, "head size")
    t.eq(head.etag, put.etag)
    local dst = dir .. "/rt-" .. size .. ".out"
    t.eq(assert(client:get(bucket, key, dst)), size)
    t.eq(sha256(dst), sha256(src), "sha256 after the round trip of " .. size .. " bytes")
    t.eq(client:get_string(bucket, key), read_file(src))
    t.eq(client:delete(bucket, key), true)
    local none, err = client:head(bucket, key)
    t.eq(none, nil)
    t.eq(err.code, "not_found")
  end
end)

t.test("multipart: 40 MiB + 123 B in 5 MiB parts, from a file and from a function", function()
  local c <close> = assert(s3.client(opts({ part_size = 5 * MiB })))
  local size = 40 * MiB + 123
  local src = random_file("mp", size)
  local put = assert(c:put(bucket, "mp/file.bin", { path = src }))
  t.eq(put.size, size)
  t.ok(put.etag:find("-9", 1, true), "a multipart ETag names 9 parts: " .. put.etag)
  t.eq(assert(c:head(bucket, "mp/file.bin")).size, size)
  local dst = dir .. "/mp.out"
  t.eq(assert(c:get(bucket, "mp/file.bin", dst)), size)
  t.eq(sha256(dst), sha256(src), "multipart object is byte-identical")

  -- from a function with odd chunk sizes
  local f = assert(io.open(src, "rb"))
  local sizes, i = { 1, 4097, 3 * MiB + 5, 65536 }, 0
  local put2 = assert(c:put(bucket, "mp/fn.bin", function()
    i = i + 1
    return f:read(sizes[i % #sizes + 1])
  end, size))
  f:close()
  t.eq(put2.size, size)
  local dst2 = dir .. "/mp2.out"
  assert(c:get(bucket, "mp/fn.bin", dst2))
  t.eq(sha256(dst2), sha256(src))
  t.eq(uploads_of("mp/file.bin") + uploads_of("mp/fn.bin"), 0, "no unfinished uploads left")
  assert(c:delete(bucket, "mp/file.bin"))
  assert(c:delete(bucket, "mp/fn.bin"))
end)

t.test("get streams into a function sink in several chunks", function()
  local src = random_file("stream", 3 * MiB + 7)
  assert(client:put(bucket, "stream.bin", { path = src }))
  local chunks = {}
  local n = assert(client:get(bucket, "stream.bin", function(chunk) chunks[#chunks + 1] = chunk end))
  t.eq(n, 3 * MiB + 7)
  t.ok(#chunks > 1, "more than one chunk")
  t.ok(table.concat(chunks) == read_file(src), "the chunks make up the object")
  -- the expected size is checked before any byte reaches the sink
  local called = false
  local none, err = client:get(bucket, "stream.bin", function() called = true end, { expected_size = 5 })
  t.eq(none, nil)
  t.eq(err.code, "size")
  t.contains(err.message, "expected 5")
  t.eq(called, false)
  -- an error raised by the sink comes out as it was
  local raised = t.raises(function()
    client:get(bucket, "stream.bin", function() error("sink is full") end)
  end, "sink is full")
  t.ok(raised)
  -- a file target is not replaced without force
  local target = dir .. "/exists.bin"
  write_file(target, "old")
  local no, exists = client:get(bucket, "stream.bin", target)
  t.eq(no, nil)
  t.eq(exists.code, "exists")
  t.eq(read_file(target), "old")
  t.eq(assert(client:get(bucket, "stream.bin", target, { force = true })), 3 * MiB + 7)
  assert(client:delete(bucket, "stream.bin"))
end)

t.test("a source with the wrong size fails, and a failed multipart upload is aborted", function()
  local c <close> = assert(s3.client(opts({ part_size = 5 * MiB })))
  local short = { "abc" }
  local none, err = c:put(bucket, "short.bin", function() return table.remove(short) end, 10)
  t.eq(none, nil)
  t.eq(err.code, "size")
  t.contains(err.message, "ended after 3 of 10 bytes")
  none, err = c:put(bucket, "long.bin", function() return "x" end, 2)
  t.eq(err.code, "size")
  t.contains(err.message, "more than the 2 bytes")
  -- multipart: the source ends in the third part
  local chunk, sent = ("m"):rep(MiB), 0
  none, err = c:put(bucket, "mp/short.bin", function()
    if sent >= 12 * MiB then return nil end
    sent = sent + MiB
    return chunk
  end, 20 * MiB)
  t.eq(none, nil)
  t.eq(err.code, "size")
  t.eq(uploads_of("mp/short.bin"), 0, "the upload was aborted")
  t.eq((c:head(bucket, "mp/short.bin")), nil, "no object was created")
  -- a source raising an error: raised again after the abort
  t.raises(function()
    c:put(bucket, "mp/raise.bin", function() error("source broke") end, 20 * MiB)
  end, "source broke")
  t.eq(uploads_of("mp/raise.bin"), 0, "the upload was aborted")
end)

t.test("upload of unknown length: one PUT when it fits a part, multipart above, byte for byte", function()
  local c <close> = assert(s3.client(opts({ part_size = 5 * MiB })))
  -- small: no multipart upload at all
  local u <close> = assert(c:upload(bucket, "up/small.bin"))
  assert(u:write("hel", "lo"))
  t.eq(u:size(), 5)
  local small = assert(u:commit())
  t.eq(small.size, 5)
  t.eq(c:get_string(bucket, "up/small.bin"), "hello")
  -- 12 MiB + 3 in odd pieces: 3 parts of 5, 5 and 2 MiB + 3
  local src = random_file("up", 12 * MiB + 3)
  local f <close> = assert(io.open(src, "rb"))
  local up <close> = assert(c:upload(bucket, "up/big.bin"))
  local sizes, i = { 1, 4097, 3 * MiB + 5, 65536 }, 0
  while true do
    i = i + 1
    local chunk = f:read(sizes[i % #sizes + 1])
    if not chunk then break end
    assert(up:write(chunk))
  end
  local big = assert(up:commit())
  t.eq(big.size, 12 * MiB + 3)
  t.ok(big.etag:find("-3", 1, true), "a multipart ETag names 3 parts: " .. big.etag)
  local dst = dir .. "/up.out"
  assert(c:get(bucket, "up/big.bin", dst))
  t.eq(sha256(dst), sha256(src), "the uploaded object is byte-identical")
  t.eq(uploads_of("up/big.bin"), 0, "no unfinished upload")
  -- committed twice, or written after commit: misuse raises
  t.raises(function() up:write("x") end, "already committed")
  up:close()
  t.raises(function() up:write("x") end, "closed S3 upload")
  assert(c:delete(bucket, "up/small.bin"))
  assert(c:delete(bucket, "up/big.bin"))
end)

t.test("upload closed without commit: the multipart upload is aborted, no object", function()
  local c = assert(s3.client(opts({ part_size = 5 * MiB })))
  do
    local u <close> = assert(c:upload(bucket, "up/aborted.bin"))
    assert(u:write(("a"):rep(6 * MiB)))
    t.eq(uploads_of("up/aborted.bin"), 1, "the multipart upload began after the first part")
  end
  t.eq(uploads_of("up/aborted.bin"), 0, "closing aborted it")
  t.eq((c:head(bucket, "up/aborted.bin")), nil, "no object")
  -- the client closed first: the upload still aborts through it when closed
  local u = assert(c:upload(bucket, "up/aborted.bin"))
  assert(u:write(("b"):rep(6 * MiB)))
  c:close()
  t.raises(function() c:head(bucket, "x") end, "closed S3 client")
  t.eq(uploads_of("up/aborted.bin"), 1)
  u:abort()
  t.eq(uploads_of("up/aborted.bin"), 0, "aborted after the client was closed")
  -- a small upload closed without commit leaves nothing either
  local c2 <close> = assert(s3.client(opts()))
  local small = assert(c2:upload(bucket, "up/never.bin"))
  assert(small:write("data"))
  small:close()
  t.eq((c2:head(bucket, "up/never.bin")), nil, "no object")
end)

t.test("ranged get: offset and length, pinned to an ETag; a replaced object is 'changed'", function()
  assert(client:put(bucket, "range.bin", "0123456789"))
  local head = assert(client:head(bucket, "range.bin"))
  local parts = {}
  t.eq(assert(client:get(bucket, "range.bin", function(c) parts[#parts + 1] = c end,
    { offset = 3, length = 4, if_match = head.etag })), 4)
  t.eq(table.concat(parts), "3456")
  parts = {}
  assert(client:get(bucket, "range.bin", function(c) parts[#parts + 1] = c end, { offset = 0, length = 10 }))
  t.eq(table.concat(parts), "0123456789")
  assert(client:put(bucket, "range.bin", "abcdefghij"))
  local none, err = client:get(bucket, "range.bin", function() end, { offset = 0, length = 2, if_match = head.etag })
  t.eq(none, nil)
  t.eq(err.code, "changed")
  t.contains(err.message, "changed while it was being read")
  t.raises(function() client:get(bucket, "range.bin", function() end, { offset = 2 }) end, "need a length")
  assert(client:delete(bucket, "range.bin"))
end)

t.test("errors: missing key and bucket name them; wrong secret; unknown access key", function()
  local none, err = client:get_string(bucket, "no/such key")
  t.eq(none, nil)
  t.ok(errors.is(err))
  t.eq(err.code, "not_found")
  t.contains(err.message, bucket)
  t.contains(err.message, "no/such key")
  t.eq(err.s3_code, "NoSuchKey")
  t.eq(err.status, 404)

  none, err = client:get_string(bucket .. "-missing", "k")
  t.eq(err.code, "not_found")
  t.contains(err.message, "no such bucket: " .. bucket .. "-missing")

  local wrong <close> = assert(s3.client(opts({ secret_key = "not-the-secret-0123456789" })))
  none, err = wrong:get_string(bucket, "k")
  t.eq(none, nil)
  t.eq(err.code, "signature")
  t.eq(err.s3_code, "SignatureDoesNotMatch")
  t.contains(err.hint, "secret key")
  t.contains(err.message, bucket .. "/k")
  t.ok(not tostring(err):find("not-the-secret", 1, true), "the secret is not in the message")
  none, err = wrong:put(bucket, "k", "data")
  t.eq(err.code, "signature")

  local unknown <close> = assert(s3.client(opts({ access_key = "NOSUCHACCESSKEY12345" })))
  none, err = unknown:get_string(bucket, "k")
  t.eq(err.code, "forbidden")
  t.eq(err.s3_code, "InvalidAccessKeyId")
  t.contains(err.message, "NOSUCHACCESSKEY12345")
end)

t.test("errors are worded by mxpc.s3_api from C's facts; if that fails, C's own message stands", function()
  local real = require "mxpc.s3_api"
  local seen
  package.loaded["mxpc.s3_api"] = { describe = function(f)
    seen = f
    return "teapot", "worded in Lua: " .. f.object, "a hint from Lua"
  end }
  local _, err = client:head(bucket, "no/such/key")
  t.eq(err.code, "teapot")
  t.eq(err.message, "worded in Lua: s3://" .. bucket .. "/no/such/key")
  t.eq(err.hint, "a hint from Lua")
  t.eq(err.status, 404)
  t.same({ seen.kind, seen.method, seen.action, seen.status, seen.key }, { "http", "HEAD", "s3:GetObject", 404, "no/such/key" })
  package.loaded["mxpc.s3_api"] = { describe = function() error("broken") end }
  _, err = client:head(bucket, "no/such/key")
  t.eq(err.code, "s3")
  t.contains(err.message, "S3 HEAD s3://" .. bucket .. "/no/such/key failed: HTTP 404")
  package.loaded["mxpc.s3_api"] = real
  _, err = client:head(bucket, "no/such/key")
  t.ok(errors.is(err, "not_found"), tostring(err))
end)

t.test("tostring shows the endpoint and access key, never the secret; closed handles raise", function()
  local c = assert(s3.client(opts()))
  local s = tostring(c)
  t.contains(s, env.MXPC_S3_ENDPOINT)
  t.contains(s, env.MXPC_S3_ACCESS_KEY)
  t.ok(not s:find(env.MXPC_S3_SECRET_KEY, 1, true))
  c:close()
  c:close() -- idempotent
  t.eq(tostring(c), "s3.client (closed)")
  t.raises(function() c:head(bucket, "k") end, "closed S3 client")
  do
    local scoped <close> = assert(s3.client(opts()))
    t.ok(scoped:put(bucket, "scoped", "x"))
  end
  assert(client:delete(bucket, "scoped"))
  t.raises(function() s3.client(opts({ endpoint = "ftp://127.0.0.1" })) end, "not an http(s) URL")
  t.raises(function() s3.client(opts({ part_size = MiB })) end, "outside 5 MiB")
end)

t.test("https: ca_file, SSL_CERT_FILE, SSL_CERT_DIR work; no CA is a connect error with a hint", function()
  local c <close> = assert(s3.client(opts({ endpoint = env.MXPC_S3_HTTPS_ENDPOINT, ca_file = env.MXPC_S3_CA })))
  assert(c:put(bucket, "tls.txt", "over tls"))
  t.eq(c:get_string(bucket, "tls.txt"), "over tls")
  local cd <close> = assert(s3.client(opts({ endpoint = env.MXPC_S3_HTTPS_ENDPOINT, ca_dir = env.MXPC_S3_CA_DIR })))
  t.eq(cd:get_string(bucket, "tls.txt"), "over tls")

  local script = child_prelude() .. [[
local c = assert(s3.client{endpoint = E.https, region = E.region, access_key = E.access_key, secret_key = E.secret_key})
local s, err = c:get_string(E.bucket, "tls.txt")
if s then print("got " .. s) else print("code " .. err.code); print("hint " .. tostring(err.hint)); print("msg " .. err.message) end
]]
  local rc, out = run_script(script, "-u SSL_CERT_DIR SSL_CERT_FILE=" .. quote(env.MXPC_S3_CA))
  t.eq(rc, 0)
  t.eq(out, "got over tls\n", "with SSL_CERT_FILE")
  rc, out = run_script(script, "-u SSL_CERT_FILE SSL_CERT_DIR=" .. quote(env.MXPC_S3_CA_DIR))
  t.eq(out, "got over tls\n", "with SSL_CERT_DIR")
  rc, out = run_script(script, "-u SSL_CERT_FILE -u SSL_CERT_DIR")
  t.contains(out, "code connect\n", "without a CA")
  t.contains(out, "SSL_CERT_FILE")
  t.contains(out, "certificate")
  assert(client:delete(bucket, "tls.txt"))
end)

t.test("presigned GET works with plain curl, over http and https", function()
  assert(client:put(bucket, "pre/signed file.txt", "presigned content"))
  local url = assert(client:presign("GET", bucket, "pre/signed file.txt", 300))
  t.contains(url, env.MXPC_S3_ENDPOINT .. "/" .. bucket .. "/pre/signed%20file.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256")
  t.contains(url, "&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=")
  local out, code = t.sh("curl -sS --fail " .. quote(url))
  t.eq(code, 0)
  t.eq(out, "presigned content")
  -- a tampered signature is refused
  local bad = url:gsub("X%-Amz%-Signature=(%x)", function(c) return "X-Amz-Signature=" .. (c == "0" and "1" or "0") end)
  local _, bad_code = t.sh("curl -sS --fail -o /dev/null " .. quote(bad))
  t.ok(bad_code ~= 0, "tampered URL refused")
  -- https
  local c <close> = assert(s3.client(opts({ endpoint = env.MXPC_S3_HTTPS_ENDPOINT, ca_file = env.MXPC_S3_CA })))
  local surl = assert(c:presign("GET", bucket, "pre/signed file.txt", 60))
  out, code = t.sh("curl -sS --fail --cacert " .. quote(env.MXPC_S3_CA) .. " " .. quote(surl))
  t.eq(code, 0)
  t.eq(out, "presigned content")
  -- a presigned PUT
  local purl = assert(client:presign("PUT", bucket, "pre/put.txt", 60))
  write_file(dir .. "/upload.txt", "uploaded")
  _, code = t.sh("curl -sS --fail -T " .. quote(dir .. "/upload.txt") .. " " .. quote(purl))
  t.eq(code, 0)
  t.eq(client:get_string(bucket, "pre/put.txt"), "uploaded")
  assert(client:delete(bucket, "pre/signed file.txt"))
  assert(client:delete(bucket, "pre/put.txt"))
end)

t.test("list: ListObjectsV2 under a prefix, page after page", function()
  local want = {}
  for i = 1, 7 do
    local key = ("list/obj %02d"):format(i)
    local info = assert(client:put(bucket, key, ("x"):rep(i * 10)))
    want[#want + 1] = { key = key, size = i * 10, etag = info.etag }
  end
  assert(client:put(bucket, "listx", "outside the prefix"))
  -- one page, and pages of 2 keys (4 requests, continuation tokens): the same objects in key order
  for _, max_keys in ipairs { 0, 2, 1000 } do
    local got = assert(client:list(bucket, "list/", { max_keys = max_keys }))
    t.eq(#got, 7, "max_keys " .. max_keys)
    for i, o in ipairs(got) do
      t.eq(o.key, want[i].key)
      t.eq(o.size, want[i].size)
      t.eq(o.etag, want[i].etag)
      t.ok(o.last_modified:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d"), o.last_modified)
    end
  end
  -- the pages really are separate requests (-v logs each)
  local rc, out, err = run_script(child_prelude() .. [[
local c = assert(s3.client{endpoint = E.endpoint, region = E.region, access_key = E.access_key, secret_key = E.secret_key})
print(#assert(c:list(E.bucket, "list/", { max_keys = 2 })))
]], "", "-v")
  t.eq(rc, 0, err)
  t.eq(out, "7\n")
  local pages = 0
  for _ in err:gmatch("s3 GET [^\n]*list%-type=2[^\n]*%-> 200") do pages = pages + 1 end
  t.eq(pages, 4, err)
  t.contains(err, "continuation-token=")
  -- streamed to a function: the count is returned; nil, err stops the listing
  local seen = {}
  t.eq(assert(client:list(bucket, "list/", { max_keys = 3, on_item = function(o) seen[#seen + 1] = o.key end })), 7)
  t.eq(seen[7], "list/obj 07")
  local n = 0
  local none, lerr = client:list(bucket, "list/", { max_keys = 2, on_item = function()
    n = n + 1
    if n == 3 then return nil, errors.new { code = "enough", message = "three are enough" } end
  end })
  t.eq(none, nil)
  t.eq(lerr.code, "enough")
  t.eq(n, 3)
  t.raises(function() client:list(bucket, "list/", { on_item = function() error("lister broke") end }) end,
    "lister broke")
  -- everything, an empty prefix, a missing bucket
  t.eq(#assert(client:list(bucket, "")), 8)
  t.eq(#assert(client:list(bucket, "nothing/here/")), 0)
  none, lerr = client:list(bucket .. "-missing", "")
  t.eq(lerr.code, "not_found")
  for _, o in ipairs(assert(client:list(bucket, "list"))) do assert(client:delete(bucket, o.key)) end
  t.eq(#assert(client:list(bucket, "list")), 0)
end)

t.test("list: a refused ListBucket names the permission and the bucket's ARN", function()
  -- the IRSA role's bucket policy allows object actions, not ListBucket (seeded)
  local rc, out, err = run_script(child_prelude() .. [[
local c = assert(s3.client{endpoint = E.endpoint, region = E.region})
assert(c:head("demo-irsa-files", "no-such-key") == nil)
local none, err = c:list("demo-irsa-files", "")
print(err.code, err.status, err.s3_code)
print(err.message)
print(err.hint)
]], "-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE AWS_EC2_METADATA_DISABLED=true" ..
    " AWS_WEB_IDENTITY_TOKEN_FILE=" .. quote(env.MXPC_IRSA_TOKEN_FILE) .. " AWS_ROLE_ARN=" .. env.MXPC_IRSA_ROLE_ARN ..
    " AWS_ENDPOINT_URL_STS=" .. env.MXPC_STS_ENDPOINT)
  t.eq(rc, 0, err)
  t.contains(out, "forbidden\t403\tAccessDenied\n")
  t.contains(out, "listing s3://demo-irsa-files/ was refused (AccessDenied): the role needs s3:ListBucket on " ..
    "arn:aws:s3:::demo-irsa-files (credentials from web identity")
  t.contains(out, "allow s3:ListBucket on arn:aws:s3:::demo-irsa-files in the role's IAM policy")
end)

t.test("addressing: path style, virtual host, and an endpoint that names the bucket", function()
  local vh <close> = assert(s3.client(opts({ endpoint = "https://s3.eu-west-1.amazonaws.com", region = "eu-west-1" })))
  local url = assert(vh:presign("GET", "bkt", "a/b", 60))
  t.contains(url, "https://bkt.s3.eu-west-1.amazonaws.com/a/b?")
  t.contains(url, "%2Feu-west-1%2Fs3%2Faws4_request")
  local ps <close> = assert(s3.client(opts({ endpoint = "https://s3.eu-west-1.amazonaws.com", path_style = true })))
  t.contains(assert(ps:presign("GET", "bkt", "a/b", 60)), "https://s3.eu-west-1.amazonaws.com/bkt/a/b?")
  local o = opts({ region = "eu-central-1" })
  o.endpoint = nil -- AWS, from the region
  local def <close> = assert(s3.client(o))
  t.contains(assert(def:presign("GET", "bkt", "k", 60)), "https://bkt.s3.eu-central-1.amazonaws.com/k?")
  -- the endpoint names the bucket: calls pass no bucket
  local eb <close> = assert(s3.client(opts({ endpoint = env.MXPC_S3_ENDPOINT .. "/" .. bucket .. "/" })))
  assert(eb:put(nil, "in-endpoint.txt", "via endpoint path"))
  t.eq(client:get_string(bucket, "in-endpoint.txt"), "via endpoint path")
  t.eq(eb:head(nil, "in-endpoint.txt").size, 17)
  assert(eb:delete(nil, "in-endpoint.txt"))
end)

t.test("payload signing over http: signed SHA-256 by default, UNSIGNED-PAYLOAD accepted too", function()
  local u <close> = assert(s3.client(opts({ unsigned_payload = true })))
  assert(u:put(bucket, "unsigned.txt", "unsigned body"))
  t.eq(client:get_string(bucket, "unsigned.txt"), "unsigned body")
  assert(client:delete(bucket, "unsigned.txt"))
  -- the signature covers the body hash: RGW recomputes it (an -vv trace shows it)
  local rc, _, err = run_script(child_prelude() .. [[
local c = assert(s3.client{endpoint = E.endpoint, region = E.region, access_key = E.access_key, secret_key = E.secret_key})
assert(c:put(E.bucket, "signed.txt", "hello"))
assert(c:delete(E.bucket, "signed.txt"))
]], "", "-vv")
  t.eq(rc, 0)
  t.contains(err, "x-amz-content-sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
end)

t.test("credentials: environment, shared file with profile, and none", function()
  local script = child_prelude() .. [[
local info, err = s3.credentials{}
if not info then print("error " .. err.code .. ": " .. err.message) return 0 end
print("source " .. info.source)
local c = assert(s3.client{endpoint = E.endpoint, region = E.region})
assert(c:put(E.bucket, "cred.txt", "x"))
print("ok " .. tostring(c))
assert(c:delete(E.bucket, "cred.txt"))
]]
  local clean = "-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE " ..
      "-u AWS_SHARED_CREDENTIALS_FILE -u AWS_WEB_IDENTITY_TOKEN_FILE AWS_EC2_METADATA_DISABLED=true HOME=" ..
      quote(dir)
  local rc, out = run_script(script, clean .. " AWS_ACCESS_KEY_ID=" .. env.MXPC_S3_ACCESS_KEY ..
    " AWS_SECRET_ACCESS_KEY=" .. env.MXPC_S3_SECRET_KEY)
  t.eq(rc, 0)
  t.contains(out, "source environment\n")
  t.contains(out, "ok s3.client (" .. env.MXPC_S3_ENDPOINT .. ", access key " .. env.MXPC_S3_ACCESS_KEY .. ")")

  local creds = dir .. "/credentials"
  write_file(creds, ("[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n\n" ..
    "[stack]\naws_access_key_id = %s\naws_secret_access_key = %s\n"):format(env.MXPC_S3_ACCESS_KEY,
      env.MXPC_S3_SECRET_KEY))
  rc, out = run_script(script, clean .. " AWS_SHARED_CREDENTIALS_FILE=" .. quote(creds) .. " AWS_PROFILE=stack")
  t.eq(rc, 0)
  t.contains(out, "source shared file (profile stack)\n")
  t.contains(out, "ok s3.client")

  rc, out = run_script(script, clean .. " AWS_SHARED_CREDENTIALS_FILE=" .. quote(creds) .. " AWS_PROFILE=nope")
  t.contains(out, "error credentials: ")
  t.contains(out, "profile 'nope' does not exist")

  -- a profile named in the call must exist too (not only one named by AWS_PROFILE)
  rc, out = run_script(child_prelude() .. [[
local info, err = s3.credentials{profile = "absent"}
print(info and ("source " .. info.source) or ("error " .. err.code .. ": " .. err.message))
]], clean .. " AWS_SHARED_CREDENTIALS_FILE=" .. quote(creds))
  t.contains(out, "profile 'absent' does not exist")
  rc, out = run_script(child_prelude() .. [[
local info, err = s3.credentials{profile = "absent"}
print(info and ("source " .. info.source) or ("error " .. err.code .. ": " .. err.message))
]], clean)
  t.contains(out, "error credentials: cannot read the shared credentials file " .. dir .. "/.aws/credentials " ..
    "(for profile 'absent')")

  rc, out = run_script(script, clean)
  t.contains(out, "error credentials: no AWS credentials")
end)

t.test("credentials: the chain's order; a configured source that fails is an error, not a fall-through", function()
  local script = child_prelude() .. [[
local info, err = s3.credentials{}
if not info then print("error " .. err.code .. ": " .. err.message .. "\nhint: " .. tostring(err.hint)) return 0 end
print("source " .. info.source)
]]
  local clean = "-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE " ..
      "-u AWS_SHARED_CREDENTIALS_FILE -u AWS_WEB_IDENTITY_TOKEN_FILE -u AWS_ROLE_ARN " ..
      "-u AWS_CONTAINER_CREDENTIALS_FULL_URI -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI " ..
      "-u AWS_ENDPOINT_URL_STS -u AWS_ENDPOINT_URL AWS_EC2_METADATA_DISABLED=true HOME=" .. quote(dir)
  local keys = " AWS_ACCESS_KEY_ID=" .. env.MXPC_S3_ACCESS_KEY .. " AWS_SECRET_ACCESS_KEY=" .. env.MXPC_S3_SECRET_KEY
  -- environment keys come before a web identity (which is not even read)
  local _, out = run_script(script, clean .. keys .. " AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent AWS_ROLE_ARN=r")
  t.contains(out, "source environment\n")
  -- a web identity whose token file is missing
  _, out = run_script(script, clean .. " AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent/token AWS_ROLE_ARN=arn:aws:iam::1:role/r")
  t.contains(out, "error credentials: cannot read the web identity token file /nonexistent/token")
  t.contains(out, "hint: check that the service account token is mounted there")
  -- ... or without its role
  write_file(dir .. "/token", "eyJ.eyJ.sig\n")
  _, out = run_script(script, clean .. " AWS_WEB_IDENTITY_TOKEN_FILE=" .. quote(dir .. "/token"))
  t.contains(out, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not")
  -- ... or whose STS does not answer: named, with the variables to check
  _, out = run_script(script, clean .. " AWS_WEB_IDENTITY_TOKEN_FILE=" .. quote(dir .. "/token") ..
    " AWS_ROLE_ARN=arn:aws:iam::1:role/r AWS_ENDPOINT_URL_STS=http://127.0.0.1:9")
  t.contains(out, "error credentials: web identity: cannot reach STS: POST http://127.0.0.1:9")
  t.contains(out, "hint: check AWS_REGION, or AWS_ENDPOINT_URL_STS")
  -- container credentials: plain http only to loopback or the EKS/ECS agents
  _, out = run_script(script, clean .. " AWS_CONTAINER_CREDENTIALS_FULL_URI=http://example.com/creds")
  t.contains(out, "plain http is allowed only to a loopback address or the EKS/ECS agent")
  _, out = run_script(script, clean .. " AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9/v1/credentials")
  t.contains(out, "error credentials: container credentials: GET http://127.0.0.1:9/v1/credentials")
  -- nothing at all names every source tried
  _, out = run_script(script, clean)
  t.contains(out, "no web identity (AWS_WEB_IDENTITY_TOKEN_FILE), no container credentials")
end)

t.test("no secret in -vv logs or errors, even for a wrong secret", function()
  local rc, out, err = run_script(child_prelude() .. [[
local c = assert(s3.client{endpoint = E.endpoint, region = E.region, access_key = E.access_key, secret_key = E.secret_key})
assert(c:put(E.bucket, "log.txt", "logged"))
print(tostring(c))
print(c:presign("GET", E.bucket, "log.txt", 60) ~= nil)
local w = assert(s3.client{endpoint = E.endpoint, access_key = E.access_key, secret_key = "wrong-secret-value-42"})
local _, e = w:get_string(E.bucket, "log.txt")
print(tostring(e), e.hint)
assert(c:delete(E.bucket, "log.txt"))
error(("failing on purpose with %s and %s"):format(E.secret_key, "wrong-secret-value-42"))
]], "", "-vv")
  t.eq(rc, 1)
  t.contains(err, "s3 PUT " .. env.MXPC_S3_ENDPOINT, "the requests were logged")
  t.contains(err, "canonical request")
  t.contains(err, "failing on purpose with *** and ***")
  for _, text in ipairs({ out, err }) do
    t.ok(not text:find(env.MXPC_S3_SECRET_KEY, 1, true), "the secret key appears")
    t.ok(not text:find("wrong-secret-value-42", 1, true), "the wrong secret appears")
  end
end)

t.test("SIGINT during a multipart upload: exit 130 and the upload is aborted", function()
  local big = random_file("interrupt", 100 * MiB)
  local key = "interrupt/big.bin"
  local script = dir .. "/interrupt.lua"
  write_file(script, child_prelude() .. ([[
local c = assert(s3.client{endpoint = E.endpoint, region = E.region, access_key = E.access_key,
  secret_key = E.secret_key, part_size = 5 * 1024 * 1024, max_send_speed = 20 * 1024 * 1024})
assert(c:put(E.bucket, %q, { path = %q }))
print("finished")
]]):format(key, big))
  local pidfile, rcfile = dir .. "/interrupt.pid", dir .. "/interrupt.rc"
  t.sh(("(%s run %s > %s.out 2> %s.err & echo $! > %s; wait $!; echo $? > %s) > /dev/null 2>&1 &"):format(
    quote(program), quote(script), quote(script), quote(script), quote(pidfile), quote(rcfile)))
  -- wait until the upload has begun (RGW lists it), then interrupt
  local started = false
  for _ = 1, 200 do
    if uploads_of(key) > 0 then
      started = true
      break
    end
    os.execute("sleep 0.05")
  end
  t.ok(started, "the multipart upload appeared")
  local pid = read_file(pidfile):match("%d+")
  t.ok(pid, "the child's pid")
  os.execute("sleep 0.3")
  os.execute("kill -INT " .. pid)
  local rc
  for _ = 1, 300 do
    local f = io.open(rcfile)
    if f then
      rc = f:read("n")
      f:close()
      if rc then break end
    end
    os.execute("sleep 0.05")
  end
  t.eq(rc, 130, "exit code after SIGINT")
  t.ok(not read_file(script .. ".out"):find("finished"), "the upload did not finish")
  t.contains(read_file(script .. ".err"), "interrupted")
  t.eq(uploads_of(key), 0, "the multipart upload was aborted")
  t.eq((client:head(bucket, key)), nil, "no object")
end)

t.test("SIGINT while an S3 error is being worded ends the run as interrupted", function()
  -- the signal lands inside the Lua code that words a 404: the run must not
  -- go on with the unworded error (a HEAD's 404 then no longer reads as
  -- not_found), it stops with exit 130
  local rc, out, err = run_script(child_prelude() .. [[
local api = require "mxpc.s3_api"
api.describe = function()
  os.execute("(sleep 0.2; kill -INT $PPID) &") -- not while system() waits: it ignores SIGINT
  for _ = 1, 1e9 do end
  error("the signal never came")
end
local c = assert(s3.client{endpoint = E.endpoint, region = E.region, access_key = E.access_key,
  secret_key = E.secret_key})
local _, e = c:head(E.bucket, "no/such/object")
print("went on with: " .. tostring(e and e.code))
]])
  t.eq(rc, 130, "exit code")
  t.eq(out, "", "the run did not go on")
  t.eq(err, "error: interrupted by SIGINT\n")
end)

-- --- many at once ---------------------------------------------------------------

local archive = require "mxpc.archive"

-- 40 objects of varied sizes (two larger than a quarter of a 4 MiB window)
local function many_objects(prefix)
  local items, data = {}, {}
  for i = 1, 40 do
    local size = (i == 7 or i == 23) and (1536 * 1024 + i) or (i * 997 % 20000)
    local body = string.rep(string.char(65 + i % 26), size)
    local key = ("%s/%02d.bin"):format(prefix, i)
    assert(client:put(bucket, key, body))
    items[i] = { key = key, size = size, name = ("files/%02d"):format(i) }
    data[items[i].name] = body
  end
  return items, data
end

local function cleanup(items) for _, it in ipairs(items) do client:delete(bucket, it.key) end end

-- Checks each entry of the archive at path against data (name -> bytes); the number of entries.
local function check_entries(path, data)
  local r <close> = assert(archive.reader(path))
  local n = 0
  for e in r:entries() do
    n = n + 1
    t.ok(e:read("a") == data[e.name], "entry " .. e.name .. " byte for byte")
  end
  return n
end

t.test("head_many: sizes and ETags of many objects, 8 at a time; a missing one is reported to on_item", function()
  local items = many_objects("heads")
  items[#items + 1] = { key = "heads/missing.bin" }
  local seen, missing = {}, nil
  assert(client:head_many(bucket, items, { concurrency = 8, on_item = function(item, res, err)
    if not res then
      missing = err
      return true
    end
    seen[item.key] = res.size
    t.ok(res.etag ~= "", "an ETag")
    return true
  end }))
  for i = 1, 40 do t.eq(seen[items[i].key], items[i].size, items[i].key) end
  t.ok(errors.is(missing, "not_found"), "the missing one is not_found")
  -- without on_item, a failure stops everything
  local ok, err = client:head_many(bucket, items, { concurrency = 8 })
  t.eq(ok, nil)
  t.ok(errors.is(err, "not_found"), tostring(err))
  cleanup(items)
end)

t.test("get_many: every object into the archive in completion order, big ones through spill files", function()
  local items, data = many_objects("gets")
  local path = dir .. "/many.tar.gz"
  local w <close> = assert(archive.writer(path))
  local done, ready_calls = 0, 0
  assert(client:get_many(bucket, items, w, { concurrency = 6, window = 4 * MiB, spill_dir = dir,
    ready = function() ready_calls = ready_calls + 1; return ready_calls >= 3 end,
    on_item = function(item, res) done = done + 1; t.eq(res.size, item.size); return true end }))
  assert(w:commit())
  t.eq(done, 40)
  t.ok(ready_calls >= 3, "ready was asked until it said yes")
  t.eq(check_entries(path, data), 40)
  t.eq(#(fs.dir(dir) or {}) > 0 and #t.sh("ls -a " .. dir .. " | grep mxpc-spill || true") == 0, true,
    "no spill file left")
  cleanup(items)
end)

t.test("get_many: one of many GETs fails (deleted after listing): the others stop, nothing committed", function()
  local items = many_objects("fails")
  client:delete(bucket, items[17].key)
  local path = dir .. "/fails.tar.gz"
  local written = 0
  do
    local w <close> = assert(archive.writer(path))
    local ok, err = client:get_many(bucket, items, w, { concurrency = 8, window = 4 * MiB, spill_dir = dir,
      on_item = function(_, res) if res then written = written + 1 end; return res ~= nil end })
    t.eq(ok, nil)
    t.ok(errors.is(err, "not_found"), tostring(err))
    t.contains(tostring(err), items[17].key)
  end
  t.ok(written < 40, "stopped early")
  t.eq(fs.stat(path), nil, "no archive")
  t.eq(t.sh("ls -a " .. dir .. " | grep -c mxpc-spill || true"):match("%d+"), "0", "no spill file left")
  -- a wrong expected size (the database says otherwise) fails the same way
  items[17] = { key = items[18].key, size = items[18].size + 1, name = "files/x" }
  local w2 <close> = assert(archive.writer(dir .. "/size.tar.gz"))
  local ok, err = client:get_many(bucket, items, w2, { concurrency = 4 })
  t.eq(ok, nil)
  t.ok(errors.is(err, "size"), tostring(err))
  cleanup(items)
end)

t.test("head_many and get_many over a fileset: keys and names made per file, sizes from the set", function()
  local fileset = require "mxpc.fileset"
  local set, data, unsized = fileset.new(), {}, fileset.new()
  local function uuid(i) return ("%08x-0000-4000-8000-%012x"):format(i, i) end
  local function key(u) return "fs/" .. u end
  for i = 1, 30 do
    local size = (i == 5) and (1536 * 1024) or (i * 331 % 9000)
    local body = string.rep(string.char(97 + i % 26), size)
    assert(client:put(bucket, key(uuid(i)), body))
    set:add(uuid(i), size)
    unsized:add(uuid(i))
    data["f/" .. uuid(i)] = body
  end
  -- HEADs fill in what the set lacks; on_item gets {index, uuid, key}
  local heads = 0
  assert(client:head_many(bucket, unsized, { concurrency = 8, key = key, on_item = function(item, res)
    heads = heads + 1
    t.eq(item.key, key(item.uuid))
    t.eq((unsized:get(item.index)), item.uuid)
    unsized:set_size(item.index, res.size)
    return true
  end }))
  t.eq(heads, 30)
  t.same({ unsized:bytes() }, { (set:bytes()), 0 })
  local path = dir .. "/fileset.tar.gz"
  local w <close> = assert(archive.writer(path))
  local names = 0
  assert(client:get_many(bucket, set, w, { concurrency = 6, window = 4 * MiB, spill_dir = dir, key = key,
    name = function(u) names = names + 1; return "f/" .. u end,
    on_item = function(item, res) t.eq(res.size, item.size); return true end }))
  assert(w:commit())
  t.eq(names, 30, "one name a file, made as it is written")
  t.eq(check_entries(path, data), 30)
  -- misuse: no key function; a key function that raises stops everything and is raised again
  t.raises(function() client:head_many(bucket, set, {}) end, "needs the option 'key'")
  t.raises(function() client:get_many(bucket, set, archive.writer(dir .. "/x.tar.gz"), { key = key }) end,
    "needs the option 'name'")
  t.raises(function()
    client:head_many(bucket, set, { key = function(u) if u == uuid(9) then error("no key for " .. u) end; return key(u) end })
  end, "no key for " .. uuid(9))
  t.raises(function() client:head_many(bucket, set, { key = function() return {} end }) end,
    "the key function did not return a string")
  -- items of a list are read raw and checked as their requests start: misuse raises once all is stopped
  local trap = setmetatable({}, { __index = function() error("a metamethod ran") end })
  t.raises(function() client:head_many(bucket, { trap }) end, "item 1: no key")
  t.raises(function() client:head_many(bucket, { { key = key(uuid(1)), size = 1.5 } }) end,
    "item 1: size must be a non-negative integer")
  t.raises(function() client:head_many(bucket, { { key = key(uuid(1)) }, 7 }) end, "item 2: not a table")
  local w3 <close> = assert(archive.writer(dir .. "/empty-name.tar.gz"))
  local eok, eerr = client:get_many(bucket, { { key = key(uuid(1)), size = 331, name = "" } },
    w3, {})
  t.eq(eok, nil)
  t.contains(tostring(eerr), "empty")
  -- a size in the set that S3 contradicts fails the GET
  set:set_size(3, set:bytes() % 7 + 1)
  local w2 <close> = assert(archive.writer(dir .. "/size2.tar.gz"))
  local ok, err = client:get_many(bucket, set, w2, { concurrency = 4, key = key, name = function(u) return u end })
  t.eq(ok, nil)
  t.ok(errors.is(err, "size"), tostring(err))
  for i = 1, 30 do client:delete(bucket, key(uuid(i))) end
end)

t.test("delete_many: DeleteObjects 1,000 keys a request; missing keys count as deleted", function()
  local up <close> = client:uploader { concurrency = 16 }
  local keys = {}
  for i = 1, 2100 do
    keys[i] = ("dm/%04d & <%d>"):format(i, i) -- keys that XML must escape
    assert(up:put(bucket, keys[i], "x"))
  end
  assert(up:finish())
  keys[#keys + 1] = "dm/never-there"
  local batches = {}
  t.eq(assert(client:delete_many(bucket, keys, { on_batch = function(done) batches[#batches + 1] = done end })), 2101)
  t.same(batches, { 1000, 2000, 2101 })
  t.eq(#assert(client:list(bucket, "dm/")), 0, "every object is gone")
  t.eq(assert(client:delete_many(bucket, {})), 0)
  t.raises(function() client:delete_many(bucket, { "a", 7 }) end, "key 2 is not a string")
  t.raises(function() client:delete_many(bucket, { "dm/bad\1key" }) end, "control character")
  -- a request that fails names what was deleted before it
  local _, err = client:delete_many("no-such-bucket-mxpc", { "a" })
  t.ok(errors.is(err, "not_found"), tostring(err))
  t.eq(err.deleted, 0)
end)

t.test("get_many: ready() says no for long (a slow dump): held spill files stay within the open-file limit",
  function()
  -- 300 objects that each go to a spill file (the window holds none), all
  -- held until the end, in a process allowed 64 open files
  local items = {}
  local up <close> = client:uploader { concurrency = 16 }
  for i = 1, 300 do
    items[i] = { key = ("held/%03d"):format(i), size = 1000 + i, name = ("files/%03d"):format(i) }
    assert(up:put(bucket, items[i].key, string.rep(string.char(65 + i % 26), items[i].size)))
  end
  assert(up:finish())
  local script = dir .. "/held.lua"
  write_file(script, child_prelude() .. ([[
local archive = require "mxpc.archive"
local c = assert(s3.client{endpoint = E.endpoint, region = E.region, access_key = E.access_key,
  secret_key = E.secret_key})
local items = {}
for i = 1, 300 do items[i] = { key = ("held/%%03d"):format(i), size = 1000 + i, name = ("files/%%03d"):format(i) } end
local w <close> = assert(archive.writer(%q, { force = true }))
local asked = 0
assert(c:get_many(E.bucket, items, w, { concurrency = 16, window = 1000, spill_dir = %q,
  ready = function(must) asked = asked + 1; return must end }))
assert(w:commit())
print("committed", asked > 1)
]]):format(dir .. "/held.tar.gz", dir))
  local out = t.sh(("ulimit -n 64; %s run %s 2>&1"):format(quote(program), quote(script)))
  t.contains(out, "committed\ttrue")
  local r <close> = assert(archive.reader(dir .. "/held.tar.gz"))
  local n = 0
  for e in r:entries() do
    n = n + 1
    local i = tonumber(e.name:match("%d+"))
    t.ok(e:read("a") == string.rep(string.char(65 + i % 26), 1000 + i), e.name .. " byte for byte")
  end
  t.eq(n, 300)
  cleanup(items)
end)

t.test("uploader: many PUTs at once, multipart parts in parallel, byte for byte, within the window", function()
  local c5 <close> = assert(s3.client(opts { part_size = 5 * MiB }))
  local up <close> = c5:uploader { concurrency = 8, window = 12 * MiB }
  local bodies = {}
  for i = 1, 30 do
    local key = ("up/%02d.bin"):format(i)
    bodies[key] = (i == 5 or i == 20) and read_file(random_file("up" .. i, 12 * MiB + i))
      or string.rep(string.char(97 + i % 26), i * 1013)
    if i % 5 == 0 then
      -- from a file ({path =}), i == 5 and 20 multipart
      local path = ("%s/up-path-%d"):format(dir, i)
      write_file(path, bodies[key])
      assert(up:put(bucket, key, { path = path }))
    elseif i % 3 == 0 then
      -- from a function in odd chunks
      local body, off = bodies[key], 0
      assert(up:put(bucket, key, function()
        if off >= #body then return nil end
        local chunk = body:sub(off + 1, off + 7777)
        off = off + #chunk
        return chunk
      end, #body))
    else
      assert(up:put(bucket, key, bodies[key]))
    end
  end
  assert(up:finish())
  t.eq(up:stats().objects, 30)
  for key, body in pairs(bodies) do
    t.ok(assert(client:get_string(bucket, key)) == body, key .. " byte for byte")
    client:delete(bucket, key)
  end
  t.eq(#assert(client:list_multipart_uploads(bucket)), 0, "no unfinished multipart upload")
  local up2 <close> = c5:uploader()
  local none, err = up2:put(bucket, "up/none.bin", { path = dir .. "/no-such-file" })
  t.eq(none, nil)
  t.ok(errors.is(err, "not_found"), tostring(err))
  t.contains(err.message, "cannot read " .. dir .. "/no-such-file: No such file or directory")
  assert(up2:finish())
  t.eq((client:head(bucket, "up/none.bin")), nil, "nothing uploaded")
end)

t.test("uploader: one of many in-flight PUTs fails: the others stop, multipart uploads aborted", function()
  local c5 <close> = assert(s3.client(opts { part_size = 5 * MiB, max_send_speed = MiB }))
  local up <close> = c5:uploader { concurrency = 16, window = 64 * MiB }
  local big = read_file(random_file("upfail", 20 * MiB))
  assert(up:put(bucket, "upfail/big1.bin", big))
  assert(up:put(bucket, "upfail/big2.bin", big))
  t.ok(#assert(client:list_multipart_uploads(bucket)) > 0, "multipart uploads are in flight")
  -- a bucket that does not exist: this PUT fails while the others run
  local ok, err = up:put("mxpc-no-such-bucket-" .. bucket:sub(-6), "x.bin", "data")
  if ok then ok, err = up:finish() end
  t.eq(ok, nil)
  t.ok(errors.is(err, "not_found"), tostring(err))
  t.contains(tostring(err), "mxpc-no-such-bucket")
  t.eq(#assert(client:list_multipart_uploads(bucket)), 0, "every multipart upload was aborted")
  t.eq((client:head(bucket, "upfail/big1.bin")), nil, "no object")
  t.eq((client:head(bucket, "upfail/big2.bin")), nil, "no object")
  -- it stays failed
  local ok2, err2 = up:put(bucket, "upfail/after.bin", "x")
  t.eq(ok2, nil)
  t.ok(errors.is(err2, "not_found"), tostring(err2))
  -- a source that raises: raised again, nothing left
  local up2 <close> = c5:uploader { concurrency = 4 }
  assert(up2:put(bucket, "upfail/big3.bin", big))
  t.raises(function()
    up2:put(bucket, "upfail/raise.bin", function() error("source broke") end, 10)
  end, "source broke")
  up2:close()
  t.eq(#assert(client:list_multipart_uploads(bucket)), 0, "aborted after the raise too")
  t.eq((client:head(bucket, "upfail/big3.bin")), nil, "no object")
end)

local result = t.run()
-- remove the bucket; a failed test may have left its objects behind
for _, key in ipairs({ "round/0.bin", "round/1.bin", "round/1048576.bin", "mp/file.bin", "mp/fn.bin", "stream.bin",
  "short.bin", "long.bin", "mp/short.bin", "mp/raise.bin", "k", "scoped", "tls.txt", "pre/signed file.txt",
  "pre/put.txt", "in-endpoint.txt", "unsigned.txt", "signed.txt", "cred.txt", "log.txt", "interrupt/big.bin",
  "up/small.bin", "up/big.bin", "up/aborted.bin", "up/never.bin", "range.bin",
  "upfail/big1.bin", "upfail/big2.bin", "upfail/big3.bin", "listx" }) do
  client:delete(bucket, key)
end
for _, u in ipairs(client:list_multipart_uploads(bucket) or {}) do client:abort_multipart(bucket, u.key, u.upload_id) end
local ok, err = client:delete_bucket(bucket)
if not ok then
  io.stderr:write("could not delete the test bucket ", bucket, ": ", tostring(err), "\n")
  result = 1
end
client:close()
return result
