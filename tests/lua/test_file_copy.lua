-- mxpc.file_copy against the local stack: server-side copies on one Ceph
-- RGW endpoint (CopyObject, UploadPartCopy), streamed copies to another
-- endpoint (https) and to Azurite, the decision and its reasons, refusals
-- mid-copy and Ctrl-C, each leaving no unfinished multipart upload. Every
-- test works in buckets of its own, made here and deleted at the end.
-- Needs MXPC_STACK_ENV (fails without it).
local t = require "t"
local s3 = require "mxpc.s3"
local azure = require "mxpc.azure"
local errors = require "mxpc.error"
local fileset = require "mxpc.fileset"
local file_copy = require "mxpc.file_copy"

local env = t.stack_env()
local MiB = 1024 * 1024
local dir = t.tmpdir()
local program = t.program()
local source_dir = assert(os.getenv("MXPC_SOURCE_DIR"), "MXPC_SOURCE_DIR is not set (ctest sets it)")

local function opts(extra)
  local o = { endpoint = env.MXPC_S3_ENDPOINT, region = env.MXPC_S3_REGION, access_key = env.MXPC_S3_ACCESS_KEY,
    secret_key = env.MXPC_S3_SECRET_KEY }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end
local function https_opts(extra)
  local o = opts { endpoint = env.MXPC_S3_HTTPS_ENDPOINT, ca_file = env.MXPC_S3_CA }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local admin = assert(s3.client(opts())) -- makes, fills, checks and deletes the buckets
math.randomseed(os.time(), tonumber(tostring({}):match("0x(%x+)"), 16) or 0)
local run_id = ("%d-%06d"):format(os.time(), math.random(0, 999999))
local buckets = {}
local function new_bucket(name)
  local b = ("mxpc-fc-%s-%s"):format(name, run_id)
  assert(admin:create_bucket(b))
  buckets[#buckets + 1] = b
  return b
end

local function random_bytes(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local s = f:read(n) or ""
  f:close()
  return s
end

local function uuid_of(i) return ("%08x-0000-4000-8000-%012x"):format(i, math.random(0, 0xffffff)) end

-- n files of random content into bucket/prefix; sizes(i) -> size. Returns
-- the fileset (uuid, size) and uuid -> content.
local function fill(bucket, prefix, n, sizes)
  local files, data = fileset.new(), {}
  for i = 1, n do
    local u = uuid_of(i)
    local s = random_bytes(sizes(i))
    assert(admin:put(bucket, prefix .. u, s))
    files:add(u, #s)
    data[u] = s
  end
  return files, data
end

local function s3_env(bucket, prefix, endpoint)
  return { storage = { service = "s3", endpoint = endpoint or env.MXPC_S3_ENDPOINT, region = env.MXPC_S3_REGION,
    bucket = bucket, prefix = prefix } }
end

local function same_objects(client, bucket, prefix, data)
  for u, s in pairs(data) do
    local got = client:get_string(bucket, prefix .. u)
    t.ok(got == s, ("%s%s: the copy differs from the source (%d bytes, source %d)"):format(prefix, u, got and #got or -1, #s))
  end
end

local function no_uploads(bucket)
  local list = assert(admin:list_multipart_uploads(bucket))
  t.eq(#list, 0, "unfinished multipart uploads in " .. bucket)
end

local function sum(data)
  local n = 0
  for _, s in pairs(data) do n = n + #s end
  return n
end

local function delta(client, before)
  local now = client:stats()
  return now.bytes_in - before.bytes_in, now.bytes_out - before.bytes_out
end

local transfer = { concurrency = 8, window = 8 * MiB }

-- A bucket policy, set with the stack's own S3 client (tests/stack/stacklib.py).
local function set_policy(bucket, statements)
  local py = dir .. "/policy.py"
  t.write(py, ([[
import json, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(%q, "tests/stack"))
from stacklib import S3
s3 = S3(%q, %q, %q, %q)
s3.request("PUT", %q, query=[("policy", "")], body=%q.encode())
]]):format(source_dir, env.MXPC_S3_ENDPOINT, env.MXPC_S3_ACCESS_KEY, env.MXPC_S3_SECRET_KEY, env.MXPC_S3_REGION,
    bucket, '{"Version": "2012-10-17", "Statement": ' .. statements .. '}'))
  local out, code = t.sh("python3 " .. py)
  t.eq(code, 0, out)
end
local function deny(bucket, action, keys)
  local res = {}
  for i, k in ipairs(keys) do res[i] = ('"arn:aws:s3:::%s/%s"'):format(bucket, k) end
  set_policy(bucket, ('[{"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam:::user/mxpc"]}, "Action": ["%s"], '
    .. '"Resource": [%s]}]'):format(action, table.concat(res, ", ")))
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs a Lua script in a child process; returns exit code, stdout, stderr.
local script_n = 0
local function run_script(source, flags)
  script_n = script_n + 1
  local script = ("%s/script%d.lua"):format(dir, script_n)
  t.write(script, source)
  local out, err = script .. ".out", script .. ".err"
  local rc = t.sh(("%s %s run %s > %s 2> %s; echo $?"):format(quote(program), flags or "", quote(script), quote(out),
    quote(err)))
  local function slurp(p) local f = io.open(p, "rb"); local s = f and f:read("a") or ""; if f then f:close() end; return s end
  return tonumber(rc:match("(%d+)%s*$")), slurp(out), slurp(err)
end

t.test("server: 40 objects copied by CopyObject with the target's credentials; no file byte passes the tool", function()
  local a, b = new_bucket("src"), new_bucket("dst")
  local files, data = fill(a, "app/", 40, function(i) return (i * 997) % 4096 end)
  local src, dst = assert(s3.client(opts())), assert(s3.client(opts()))
  local seen = {}
  local r = assert(file_copy.copy { from = { store = src, env = s3_env(a, "app/") }, to = { store = dst, env = s3_env(b, "") },
    files = files, mode = "auto", transfer = transfer, on_file = function(u, n) seen[u] = n end })
  t.eq(r.mode, "server")
  t.contains(r.why, "the target's credentials can read the source's objects (HEAD s3://" .. a .. "/app/")
  t.eq(r.files, 40)
  t.eq(r.bytes, sum(data))
  for u, s in pairs(data) do t.eq(seen[u], #s, "on_file of " .. u) end
  -- the proof: the source's client sent nothing, the target's sent no body and
  -- received only the answers (about 250 bytes of XML a copy)
  local sin, sout = delta(src, { bytes_in = 0, bytes_out = 0 })
  t.eq(sin + sout, 0, "bytes through the source's client")
  local din, dout = delta(dst, { bytes_in = 0, bytes_out = 0 })
  t.eq(dout, 0, "bytes the target's client sent")
  t.ok(din < 40 * 400 and din < sum(data) / 4, ("the target's client received %d bytes"):format(din))
  same_objects(admin, b, "", data)
end)

t.test("server: an object above the threshold is copied in UploadPartCopy parts, in parallel", function()
  local a, b = new_bucket("big"), new_bucket("bigdst")
  local files, data = fill(a, "", 3, function(i) return i == 2 and 12 * MiB + 3 or 1000 * i end)
  local dst = assert(s3.client(opts()))
  local r = assert(file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = dst, env = s3_env(b, "x/") },
    files = files, mode = "server", transfer = transfer, part_threshold = 6 * MiB, part_size = 5 * MiB })
  t.eq(r.mode, "server")
  t.eq(r.files, 3)
  same_objects(admin, b, "x/", data)
  local big = files:get(2)
  t.ok(assert(admin:head(b, "x/" .. big)).etag:match("%-3\"?$"), "the 12 MiB object is made of 3 parts")
  local din, dout = delta(dst, { bytes_in = 0, bytes_out = 0 })
  t.ok(dout < 1024, ("the target's client sent %d bytes (the completion's XML only)"):format(dout))
  t.ok(din < 16 * 1024, ("the target's client received %d bytes"):format(din))
  no_uploads(b)
end)

t.test("stream: to another endpoint (https), byte for byte, a large object in parts, within the window", function()
  local a, b = new_bucket("str"), new_bucket("strdst")
  local files, data = fill(a, "p/", 25, function(i) return i == 7 and 9 * MiB or i == 9 and 3 * MiB or i * 321 end)
  local dst = assert(s3.client(https_opts { part_size = 5 * MiB, multipart_threshold = 5 * MiB }))
  local src = assert(s3.client(opts()))
  local decided, why = file_copy.decide { from = { store = src, env = s3_env(a, "p/") },
    to = { store = dst, env = s3_env(b, "q/", env.MXPC_S3_HTTPS_ENDPOINT) }, files = files }
  t.eq(decided, "stream")
  t.contains(why, "are on different endpoints")
  local r = assert(file_copy.copy { from = { store = src, env = s3_env(a, "p/") },
    to = { store = dst, env = s3_env(b, "q/", env.MXPC_S3_HTTPS_ENDPOINT) }, files = files, transfer = transfer })
  t.eq(r.mode, "stream")
  t.eq(r.files, 25)
  t.eq(r.bytes, sum(data))
  same_objects(admin, b, "q/", data)
  t.ok(assert(admin:head(b, "q/" .. files:get(7))).etag:match("%-2\"?$"), "the 9 MiB object went in 2 parts")
  local sin = delta(src, { bytes_in = 0, bytes_out = 0 })
  local _, dout = delta(dst, { bytes_in = 0, bytes_out = 0 })
  t.eq(sin, sum(data), "bytes read from the source")
  t.ok(dout >= sum(data) and dout < sum(data) + 1024, ("bytes sent to the target: %d for %d"):format(dout, sum(data)))
  no_uploads(b)
end)

t.test("modes: forced stream on one endpoint, forced server and its reason, a bad mode", function()
  local a, b = new_bucket("mode"), new_bucket("modedst")
  local files, data = fill(a, "", 5, function(i) return i * 100 end)
  local dst = assert(s3.client(opts()))
  local r = assert(file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = dst, env = s3_env(b, "") },
    files = files, mode = "stream", transfer = transfer })
  t.eq(r.mode, "stream")
  t.eq(r.why, "--copy-mode stream: streamed as asked")
  local _, dout = delta(dst, { bytes_in = 0, bytes_out = 0 })
  t.eq(dout, sum(data), "a forced stream sends the bytes")
  same_objects(admin, b, "", data)
  local m, why = file_copy.decide { from = { store = admin, env = s3_env(a, "") },
    to = { store = dst, env = s3_env(b, "", env.MXPC_S3_HTTPS_ENDPOINT) }, files = files, mode = "server" }
  t.eq(m, "server")
  t.contains(why, "--copy-mode server, although the source (")
  local none, err = file_copy.decide { from = { store = admin, env = s3_env(a, "") }, to = { store = dst, env = s3_env(b, "") },
    mode = "fast" }
  t.eq(none, nil)
  t.eq(err.code, "usage")
  t.contains(err.message, 'copy mode "fast": use auto, server or stream')
end)

t.test("decide: S3 and Azure, Azure with and without a SAS, another region", function()
  local s = s3_env("b", "")
  local az = { storage = { service = "azure", endpoint = "https://acct.blob.core.windows.net", bucket = "c", prefix = "" } }
  local az_sas = { storage = { service = "azure", endpoint = "https://acct.blob.core.windows.net", bucket = "d", prefix = "",
    sas = "sv=2024&sig=x" } }
  local m, why = file_copy.decide { from = { env = s }, to = { env = az } }
  t.eq(m, "stream")
  t.eq(why, "the source is in S3 and the target in Azure Blob Storage")
  m, why = file_copy.decide { from = { env = az }, to = { env = az_sas } }
  t.eq(m, "stream")
  t.contains(why, "not a SAS")
  m, why = file_copy.decide { from = { env = az_sas }, to = { env = az } }
  t.eq(m, "server")
  t.contains(why, "Copy Blob from URL")
  local none, err = file_copy.decide { from = { env = s }, to = { env = az }, mode = "server" }
  t.eq(none, nil)
  t.eq(err.code, "usage")
  t.eq(err.message, "--copy-mode server is not possible: the source is in S3 and the target in Azure Blob Storage")
  none, err = file_copy.decide { from = { env = az }, to = { env = az_sas }, mode = "server" }
  t.eq(none, nil)
  t.contains(err.message, "--copy-mode server is not possible: the source is reached with an account key")
  local other = s3_env("b", "")
  other.storage.region = "eu-west-9"
  m, why = file_copy.decide { from = { env = s }, to = { env = other } }
  t.eq(m, "stream")
  t.contains(why, "region")
end)

t.test("stream: S3 to Azure Blob Storage (Azurite), byte for byte, a large blob as a block list", function()
  local a = new_bucket("toaz")
  local files, data = fill(a, "", 12, function(i) return i == 3 and 6 * MiB or i * 777 end)
  local az = assert(azure.client { endpoint = env.MXPC_AZURE_BLOB_ENDPOINT, account = env.MXPC_AZURE_ACCOUNT_NAME,
    key = env.MXPC_AZURE_ACCOUNT_KEY, ca_file = env.MXPC_AZURE_CA, part_size = 5 * MiB, multipart_threshold = 5 * MiB })
  local container = "mxpc-fc-" .. run_id
  assert(az:create_bucket(container))
  local aenv = { storage = { service = "azure", endpoint = env.MXPC_AZURE_BLOB_ENDPOINT, bucket = container, prefix = "" } }
  local r = assert(file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = az, env = aenv },
    files = files, transfer = transfer })
  t.eq(r.mode, "stream")
  t.eq(r.files, 12)
  same_objects(az, container, "", data)
  for _, o in ipairs(assert(az:list(container, ""))) do assert(az:delete(container, o.key)) end
  assert(az:delete_bucket(container))
end)

t.test("server: Azure to Azure with the source's SAS, by Copy Blob from URL; no byte through the tool", function()
  local key_opts = { endpoint = env.MXPC_AZURE_BLOB_ENDPOINT, account = env.MXPC_AZURE_ACCOUNT_NAME,
    key = env.MXPC_AZURE_ACCOUNT_KEY, ca_file = env.MXPC_AZURE_CA }
  local az = assert(azure.client(key_opts))
  local from, to = "mxpc-fc-azsrc-" .. run_id, "mxpc-fc-azdst-" .. run_id
  assert(az:create_bucket(from))
  assert(az:create_bucket(to))
  local files, data = fileset.new(), {}
  for i = 1, 6 do
    local u, s = uuid_of(i), random_bytes(i * 1111)
    assert(az:put(from, u, s))
    files:add(u, #s)
    data[u] = s
  end
  local out, code = t.sh((". \"$MXPC_STACK_ENV\" && /usr/bin/python3 -c %s %s"):format(quote([[
import datetime, os, sys
from azure.storage.blob import generate_container_sas, ContainerSasPermissions
print(generate_container_sas(os.environ["MXPC_AZURE_ACCOUNT_NAME"], sys.argv[1],
    account_key=os.environ["MXPC_AZURE_ACCOUNT_KEY"], permission=ContainerSasPermissions(read=True),
    expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1)))
]]), from))
  t.eq(code, 0, out)
  local sas = out:match("^%s*(.-)%s*$")
  local src = assert(azure.client { endpoint = key_opts.endpoint, account = key_opts.account, sas = sas,
    ca_file = key_opts.ca_file })
  local dst = assert(azure.client(key_opts))
  local function aenv(c, with_sas)
    return { storage = { service = "azure", endpoint = env.MXPC_AZURE_BLOB_ENDPOINT, bucket = c, prefix = "",
      sas = with_sas and sas or nil } }
  end
  local r = assert(file_copy.copy { from = { store = src, env = aenv(from, true) }, to = { store = dst, env = aenv(to) },
    files = files, transfer = transfer })
  t.eq(r.mode, "server")
  t.contains(r.why, "Copy Blob from URL")
  t.eq(r.files, 6)
  same_objects(az, to, "", data)
  local din, dout = delta(dst, { bytes_in = 0, bytes_out = 0 })
  t.eq(dout, 0, "bytes the target's client sent")
  t.ok(din < 6 * 1024, ("the target's client received %d bytes"):format(din))
  -- without the SAS the source's blobs are streamed
  r = assert(file_copy.copy { from = { store = src, env = aenv(from) }, to = { store = dst, env = aenv(to) },
    files = files, transfer = transfer })
  t.eq(r.mode, "stream")
  same_objects(az, to, "", data)
  for _, c in ipairs { from, to } do
    for _, o in ipairs(assert(az:list(c, ""))) do assert(az:delete(c, o.key)) end
    assert(az:delete_bucket(c))
  end
end)

t.test("a source file deleted since it was listed is skipped and reported; strict makes it an error", function()
  local a, b = new_bucket("gone"), new_bucket("gonedst")
  local files, data = fill(a, "", 6, function(i) return i == 4 and 9 * MiB or i * 10 end)
  local small, big = (files:get(2)), (files:get(4))
  assert(admin:delete(a, small))
  assert(admin:delete(a, big))
  data[small], data[big] = nil, nil
  for _, mode in ipairs { "server", "stream" } do
    local r = assert(file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = admin, env = s3_env(b, mode) },
      files = files, mode = mode, transfer = transfer })
    t.eq(r.files, 4, mode)
    table.sort(r.missing)
    local want = { small, big }
    table.sort(want)
    t.same(r.missing, want, mode)
    same_objects(admin, b, mode, data)
    local none, err = file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = admin, env = s3_env(b, mode) },
      files = files, mode = mode, transfer = transfer, strict = true }
    t.eq(none, nil)
    t.eq(err.code, "not_found")
    t.contains(err.message, "is missing from storage")
  end
  no_uploads(b)
end)

t.test("server: a CopyObject refused mid-copy names the target's identity and s3:GetObject; no upload left", function()
  local a, b = new_bucket("deny"), new_bucket("denydst")
  local files = fill(a, "", 12, function(i) return i == 6 and 11 * MiB or 500 + i end)
  local big = files:get(6)
  deny(a, "s3:GetObject", { big, (files:get(9)) })
  file_copy.PART_THRESHOLD, file_copy.PART_SIZE = 6 * MiB, 5 * MiB
  local none, err = file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = admin, env = s3_env(b, "") },
    files = files, mode = "server", transfer = { concurrency = 2, window = 8 * MiB } }
  file_copy.PART_THRESHOLD, file_copy.PART_SIZE = 5 * 1024 * MiB, 512 * MiB
  t.eq(none, nil)
  t.ok(errors.is(err, "forbidden"), tostring(err))
  t.contains(err.message, "access denied: copying s3://" .. a .. "/")
  t.contains(err.message, "the target's user (access key " .. env.MXPC_S3_ACCESS_KEY)
  t.contains(err.message, "needs s3:GetObject on the source bucket " .. a)
  t.contains(err.hint, "--copy-mode stream")
  no_uploads(b)
end)

t.test("stream: a PUT refused mid-copy fails the copy; no upload left", function()
  local a, b = new_bucket("put"), new_bucket("putdst")
  local files = fill(a, "", 15, function(i) return i == 14 and 7 * MiB or 300 * i end)
  deny(b, "s3:PutObject", { "t/" .. files:get(5) })
  local dst = assert(s3.client(opts { part_size = 5 * MiB, multipart_threshold = 5 * MiB }))
  local none, err = file_copy.copy { from = { store = admin, env = s3_env(a, "") }, to = { store = dst, env = s3_env(b, "t/") },
    files = files, mode = "stream", transfer = { concurrency = 4, window = 64 * MiB } }
  t.eq(none, nil)
  t.ok(errors.is(err, "forbidden"), tostring(err))
  t.contains(err.message, "s3:PutObject")
  no_uploads(b)
end)

-- Ctrl-C in a child while an object in parts is on its way: server-side,
-- once the first (small) file is copied, while the 30 MiB object's
-- UploadPartCopy parts run; streamed, half a second in, while the 30 MiB
-- object goes up in parts at 10 MiB/s. The debug log shows the abort.
local function interrupt(mode)
  local a, b = new_bucket("int" .. mode), new_bucket("intdst" .. mode)
  local small, big = uuid_of(1), uuid_of(2)
  assert(admin:put(a, small, "x"))
  assert(admin:put(a, big, random_bytes(30 * MiB)))
  local rc, out, err = run_script(([[
local s3 = require "mxpc.s3"
local process = require "mxpc.process"
local fileset = require "mxpc.fileset"
local file_copy = require "mxpc.file_copy"
local mode = %q
local o = { endpoint = %q, region = %q, access_key = %q, secret_key = %q, part_size = 5 * 1048576,
  multipart_threshold = 5 * 1048576 }
local c = assert(s3.client(o))
if mode == "stream" then o.max_send_speed = 10 * 1048576 end
local d = assert(s3.client(o))
local files = fileset.new()
files:add(%q, 1)
files:add(%q, 30 * 1048576)
file_copy.PART_THRESHOLD, file_copy.PART_SIZE = 6 * 1048576, 5 * 1048576
local function e(b) return { storage = { service = "s3", endpoint = o.endpoint, region = o.region, bucket = b, prefix = "" } } end
local pid = io.open("/proc/self/stat"):read("l"):match("^(%%d+)")
local killer = mode == "stream" and process.spawn { "sh", "-c", "sleep 0.5; kill -INT " .. pid }
local r, err = file_copy.copy { from = { store = c, env = e(%q) }, to = { store = d, env = e(%q) }, files = files,
  mode = mode, transfer = { concurrency = 2, window = 64 * 1048576 },
  on_file = function(u) if mode == "server" and u == %q then process.spawn { "kill", "-INT", pid }:wait() end end }
print("not interrupted", r and r.files, err)
]]):format(mode, env.MXPC_S3_ENDPOINT, env.MXPC_S3_REGION, env.MXPC_S3_ACCESS_KEY, env.MXPC_S3_SECRET_KEY, small, big,
    a, b, small), "-vv")
  t.eq(rc, 130, out .. err)
  t.contains(err, "interrupted by SIGINT")
  t.contains(err, mode == "server" and "aborted the multipart upload of s3://" .. b .. "/" .. big
    or "aborted the upload in parts of s3://" .. b .. "/" .. big)
  no_uploads(b)
end

t.test("server: Ctrl-C mid-copy stops it (exit 130) and aborts the UploadPartCopy upload", function() interrupt("server") end)
t.test("stream: Ctrl-C mid-copy stops it (exit 130) and aborts the multipart upload", function() interrupt("stream") end)

local result = t.run()
for _, b in ipairs(buckets) do
  for _, u in ipairs(assert(admin:list_multipart_uploads(b))) do admin:abort_multipart(b, u.key, u.upload_id) end
  for _, o in ipairs(assert(admin:list(b, ""))) do admin:delete(b, o.key) end
  local ok, err = admin:delete_bucket(b)
  if not ok then
    io.stderr:write("could not delete the test bucket ", b, ": ", tostring(err), "\n")
    result = 1
  end
end
return result
