-- mxpc.azure against the local stack's Azurite (https, the account key):
-- Put Blob, blocks in parallel, Get Blob (ranged), List Blobs, Delete, the
-- many-GETs machine and the uploader, Copy Blob from URL, a failed block
-- upload leaving no blob, and the errors. Every test works in its own
-- container. Needs MXPC_STACK_ENV (fails without it).
local t = require "t"
local azure = require "mxpc.azure"

local env = t.stack_env()
local MiB = 1024 * 1024

local function opts(extra)
  local o = {
    endpoint = env.MXPC_AZURE_BLOB_ENDPOINT,
    account = env.MXPC_AZURE_ACCOUNT_NAME,
    key = env.MXPC_AZURE_ACCOUNT_KEY,
    ca_file = env.MXPC_AZURE_CA,
    block_size = 5 * MiB,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local client = assert(azure.client(opts()))
math.randomseed(os.time(), tonumber(tostring({}):match("0x(%x+)"), 16) or 0)
local container = ("mxpc-azure-test-%d-%06d"):format(os.time(), math.random(0, 999999))
assert(client:create_bucket(container))

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- How many blobs named `name` exist with uncommitted blocks only: List Blobs with
-- include=uncommittedblobs, by the stack's own client (stacklib).
local function uncommitted(name)
  local out, code = t.sh((". \"$MXPC_STACK_ENV\" && python3 -c %s %s %s"):format(quote([[
import os, sys, xml.etree.ElementTree as ET
sys.path.insert(0, os.environ["MXPC_SOURCE_DIR"] + "/tests/stack")
from stacklib import AzureBlob
b = AzureBlob(os.environ["MXPC_AZURE_BLOB_ENDPOINT"], os.environ["MXPC_AZURE_ACCOUNT_NAME"],
              os.environ["MXPC_AZURE_ACCOUNT_KEY"], os.environ["MXPC_AZURE_CA"])
q = [("restype", "container"), ("comp", "list"), ("include", "uncommittedblobs"), ("prefix", sys.argv[2])]
root = ET.fromstring(b.request("GET", sys.argv[1], query=q)[1])
print(len(list(root.iter("Blob"))))
]]), container, name))
  t.eq(code, 0, out)
  return tonumber(out:match("%d+"))
end

-- How many uncommitted blocks the blob `name` of container `ct` has (Get Block List), by the stack's own client.
local function blocks(ct, name)
  local out, code = t.sh((". \"$MXPC_STACK_ENV\" && python3 -c %s %s %s"):format(quote([[
import os, sys, xml.etree.ElementTree as ET
sys.path.insert(0, os.environ["MXPC_SOURCE_DIR"] + "/tests/stack")
from stacklib import AzureBlob, AzureError
b = AzureBlob(os.environ["MXPC_AZURE_BLOB_ENDPOINT"], os.environ["MXPC_AZURE_ACCOUNT_NAME"],
              os.environ["MXPC_AZURE_ACCOUNT_KEY"], os.environ["MXPC_AZURE_CA"])
q = [("comp", "blocklist"), ("blocklisttype", "uncommitted")]
try:
    print(len(list(ET.fromstring(b.request("GET", sys.argv[1], sys.argv[2], query=q)[1]).iter("Block"))))
except AzureError:  # no block yet: no blob
    print(0)
]]), ct, name))
  t.eq(code, 0, out)
  return tonumber(out:match("%d+"))
end

-- Acquires (forever) or breaks (at once) the lease of a blob, by the stack's own client.
local function lease(name, action)
  local out, code = t.sh((". \"$MXPC_STACK_ENV\" && python3 -c %s %s %s %s"):format(quote([[
import os, sys
sys.path.insert(0, os.environ["MXPC_SOURCE_DIR"] + "/tests/stack")
from stacklib import AzureBlob
b = AzureBlob(os.environ["MXPC_AZURE_BLOB_ENDPOINT"], os.environ["MXPC_AZURE_ACCOUNT_NAME"],
              os.environ["MXPC_AZURE_ACCOUNT_KEY"], os.environ["MXPC_AZURE_CA"])
h = {"x-ms-lease-action": sys.argv[3]}
h.update({"x-ms-lease-duration": "-1"} if sys.argv[3] == "acquire" else {"x-ms-lease-break-period": "0"})
b.request("PUT", sys.argv[1], sys.argv[2], query=[("comp", "lease")], headers=h)
]]), container, name, action))
  t.eq(code, 0, out)
end

local function bytes(n, seed)
  local parts, x = {}, seed
  for i = 1, n // 4096 + 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    parts[i] = string.rep(string.char(x % 256, (x >> 8) % 256, (x >> 16) % 256, i % 256), 1024)
  end
  return table.concat(parts):sub(1, n)
end

t.test("put, head, get and a range of a small blob", function()
  assert(client:put(container, "dir/a b+c.txt", "hello azure"))
  local o = assert(client:head(container, "dir/a b+c.txt"))
  t.eq(o.size, 11)
  t.ok(o.etag ~= "", "an ETag")
  t.eq(assert(client:get_string(container, "dir/a b+c.txt")), "hello azure")
  local parts = {}
  t.eq(assert(client:get(container, "dir/a b+c.txt", function(c) parts[#parts + 1] = c end,
    { offset = 6, length = 5, if_match = o.etag })), 5)
  t.eq(table.concat(parts), "azure")
end)

t.test("a blob larger than the threshold goes in blocks and comes back byte for byte", function()
  local data = bytes(12 * MiB + 77, 7)
  local o = assert(client:put(container, "big.bin", data))
  t.eq(o.size, #data)
  t.ok(assert(client:get_string(container, "big.bin")) == data, "the same bytes")
  t.eq(assert(client:head(container, "big.bin")).size, #data)
end)

t.test("list blobs: names, sizes, a prefix, pages", function()
  for i = 1, 5 do assert(client:put(container, ("list/%02d"):format(i), ("x"):rep(i))) end
  local seen = {}
  assert(client:list(container, "list/", { max_keys = 2, on_item = function(o) seen[#seen + 1] = o.key .. "=" .. o.size end }))
  t.same(seen, { "list/01=1", "list/02=2", "list/03=3", "list/04=4", "list/05=5" })
end)

t.test("the uploader and head_many serve Azure", function()
  local up = assert(client:uploader{ concurrency = 4 })
  local want = {}
  for i = 1, 6 do
    local name = ("many/%d"):format(i)
    want[name] = bytes(1000 * i, i)
    assert(up:put(container, name, want[name]))
  end
  assert(up:finish())
  up:close()
  local items = {}
  for name in pairs(want) do items[#items + 1] = { key = name } end
  local sizes = {}
  assert(client:head_many(container, items, { on_item = function(it, o) sizes[it.key] = o.size; return true end }))
  for name, data in pairs(want) do
    t.eq(sizes[name], #data, name)
    t.ok(assert(client:get_string(container, name)) == data, name)
  end
end)

t.test("delete and delete_many: missing blobs count as deleted", function()
  assert(client:put(container, "del/1", "1"))
  assert(client:put(container, "del/2", "2"))
  assert(client:delete(container, "del/1"))
  assert(client:delete(container, "del/never"))
  assert(client:delete_many(container, { "del/2", "del/none" }))
  local n = 0
  assert(client:list(container, "del/", { on_item = function() n = n + 1 end }))
  t.eq(n, 0)
end)

t.test("delete_many sends its Delete Blobs at once: 32 blobs 200 ms away take well under 32 round trips", function()
  local process = require "mxpc.process"
  local runtime = require "mxpc.runtime"
  local names = {}
  for i = 1, 32 do
    names[i] = ("delmany/%02d"):format(i)
    assert(client:put(container, names[i], "x"))
  end
  local target = assert(env.MXPC_AZURE_BLOB_ENDPOINT:match("^https://([^/]+)"))
  local proxy <close> = assert(process.spawn({ "python3", os.getenv("MXPC_SOURCE_DIR") .. "/bench/latency_proxy.py",
    "--target", target, "--delay", "100" }, { stdout = "pipe" }))
  local banner = ""
  while not banner:find("\n") do banner = banner .. assert(proxy:read(256), "the proxy did not start") end
  local port = assert(banner:match("listening on 127%.0%.0%.1:(%d+)"), banner)
  local far = assert(azure.client(opts{ endpoint = env.MXPC_AZURE_BLOB_ENDPOINT:gsub(":%d+/", ":" .. port .. "/") }))
  local t0 = runtime.monotonic()
  assert(far:delete_many(container, names))
  local took = runtime.monotonic() - t0
  t.ok(took < 3.2, ("32 deletes took %.2f s: one after the other they take 6.4 s or more"):format(took))
  local left = {}
  assert(client:list(container, "delmany/", { on_item = function(o) left[#left + 1] = o.key end }))
  t.eq(#left, 0, "every blob deleted: " .. table.concat(left, " "))
end)

t.test("copy from URL within the account", function()
  assert(client:put(container, "copy/src", "copied bytes"))
  local url = env.MXPC_AZURE_BLOB_ENDPOINT .. "/" .. container .. "/copy/src"
  assert(client:copy_from_url(container, "copy/dst", url))
  t.eq(assert(client:get_string(container, "copy/dst")), "copied bytes")
end)

t.test("a block upload that fails leaves no blob and no uncommitted blocks", function()
  local data = bytes(11 * MiB, 3)
  local n = 0
  local ok, err = pcall(client.put, client, container, "failed.bin", function()
    n = n + 1
    if n > 30 then error("the source broke") end
    return data:sub((n - 1) * 256 * 1024 + 1, n * 256 * 1024)
  end, #data)
  t.eq(ok, false)
  t.contains(tostring(err), "the source broke")
  local h, herr = client:head(container, "failed.bin")
  t.eq(h, nil)
  t.eq(herr.status, 404)
  t.eq(uncommitted("failed.bin"), 0, "uncommitted blobs")
end)

t.test("a block upload refused over an existing (leased) blob leaves it as it was", function()
  assert(client:put(container, "leased.bin", "original"))
  lease("leased.bin", "acquire")
  local ok, err = client:put(container, "leased.bin", bytes(11 * MiB, 5))
  t.eq(ok, nil)
  t.eq(err.code, "conflict")
  t.contains(tostring(err), "azblob://" .. container .. "/leased.bin is leased by another program")
  t.eq(assert(client:get_string(container, "leased.bin")), "original")
  lease("leased.bin", "break")
end)

t.test("a refused Put Block List (a blob made meanwhile): nothing written, the error says so", function()
  local u = assert(client:upload(container, "race.bin", { no_overwrite = true }))
  local data = bytes(MiB, 7)
  for _ = 1, 12 do assert(u:write(data)) end -- two blocks of 5 MiB on their way, the rest goes at the commit
  assert(client:put(container, "race.bin", "theirs"))
  local ok, err = u:commit()
  t.eq(ok, nil)
  t.eq(err.status, 409)
  t.eq(err.s3_code, "BlobAlreadyExists")
  t.eq(err.code, "exists")
  t.contains(tostring(err), "azblob://" .. container .. "/race.bin appeared while it was being uploaded")
  t.contains(tostring(err), "Put Block List was refused (BlobAlreadyExists), so nothing of this upload was written")
  t.contains(tostring(err), "the block list was not committed")
  t.contains(err.hint, "--force")
  t.contains(err.hint, "uncommitted (invisible, not billed as a blob) until Azure discards them after 7 days")
  t.eq(assert(client:get_string(container, "race.bin")), "theirs", "the other blob stays as it was")
  -- and a small one (one Put Blob at the commit) likewise
  local small = assert(client:upload(container, "race-small.bin", { no_overwrite = true }))
  assert(small:write("ours"))
  assert(client:put(container, "race-small.bin", "theirs"))
  local sok, serr = small:commit()
  t.eq(sok, nil)
  t.eq(serr.code, "exists")
  t.contains(tostring(serr), "Put Blob was refused (BlobAlreadyExists)")
  t.eq(assert(client:get_string(container, "race-small.bin")), "theirs")
end)

t.test("a Put Block List refused because the container is gone: a clear error, no blob", function()
  local other = container .. "-gone"
  assert(client:create_bucket(other))
  local u = assert(client:upload(other, "big.bin"))
  local data = bytes(MiB, 9)
  for _ = 1, 10 do assert(u:write(data)) end -- two full blocks: nothing is left to send at the commit
  for _ = 1, 100 do -- the blocks land (an empty write moves the transfers on)
    assert(u:write(""))
    if blocks(other, "big.bin") == 2 then break end
    os.execute("sleep 0.05")
  end
  t.eq(blocks(other, "big.bin"), 2, "both blocks are in")
  assert(client:delete_bucket(other))
  local ok, err = u:commit()
  t.eq(ok, nil)
  t.eq(err.s3_code, "ContainerNotFound")
  t.contains(tostring(err), "no such container: " .. other)
  t.contains(tostring(err), "the block list was not committed: nothing of the upload was written")
  t.contains(err.hint, "after 7 days")
end)

t.test("prepare_commit: every block in and uncommitted, the commit then only commits", function()
  local u = assert(client:upload(container, "prepared.bin"))
  local data = bytes(MiB, 13)
  for _ = 1, 7 do assert(u:write(data)) end -- one full block of 5 MiB, 2 MiB gathered
  assert(u:prepare_commit())
  t.eq(blocks(container, "prepared.bin"), 2, "both blocks are in")
  t.eq((client:head(container, "prepared.bin")), nil, "no blob before the commit")
  local ok, err = pcall(u.write, u, "more") -- a mistake of the caller: raised
  t.eq(ok, false)
  t.contains(tostring(err), "its parts are all sent, only the commit is left")
  t.eq(assert(u:commit()).size, 7 * MiB)
  t.eq(blocks(container, "prepared.bin"), 0, "the commit took them")
  t.eq(assert(client:get_string(container, "prepared.bin")), data:rep(7))
end)

t.test("SIGINT during a block upload: exit 130, no blob and no uncommitted blocks", function()
  local dir = t.tmpdir()
  local big = dir .. "/big.bin"
  t.eq(select(2, t.sh(("head -c %d /dev/urandom > %s"):format(60 * MiB, quote(big)))), 0)
  local script = dir .. "/interrupt.lua"
  local f = assert(io.open(script, "w"))
  f:write(([[
local c = assert(require("mxpc.azure").client{endpoint = %q, account = %q, key = %q, ca_file = %q,
  block_size = 5 * 1024 * 1024, max_send_speed = 20 * 1024 * 1024})
assert(c:put(%q, "interrupt/big.bin", { path = %q }))
print("finished")
]]):format(env.MXPC_AZURE_BLOB_ENDPOINT, env.MXPC_AZURE_ACCOUNT_NAME, env.MXPC_AZURE_ACCOUNT_KEY,
    env.MXPC_AZURE_CA, container, big))
  f:close()
  local pidfile, rcfile = dir .. "/pid", dir .. "/rc"
  t.sh(("(%s -v run %s > %s.out 2> %s.err & echo $! > %s; wait $!; echo $? > %s) > /dev/null 2>&1 &"):format(
    quote(t.program()), quote(script), quote(script), quote(script), quote(pidfile), quote(rcfile)))
  local started = false
  for _ = 1, 100 do
    if uncommitted("interrupt/big.bin") > 0 then started = true break end
    os.execute("sleep 0.1")
  end
  t.ok(started, "blocks went up")
  local pid = assert(io.open(pidfile)):read("a"):match("%d+")
  os.execute("kill -INT " .. pid)
  local rc
  for _ = 1, 300 do
    local rf = io.open(rcfile)
    if rf then rc = rf:read("n"); rf:close(); if rc then break end end
    os.execute("sleep 0.05")
  end
  t.eq(rc, 130, "exit code after SIGINT")
  local err = assert(io.open(script .. ".err")):read("a")
  t.contains(err, "interrupted")
  t.eq((client:head(container, "interrupt/big.bin")), nil, "no blob")
  t.eq(uncommitted("interrupt/big.bin"), 0, "no uncommitted blocks: " .. err:sub(-1500))
end)

t.test("errors: a missing blob, a missing container, a wrong key", function()
  local o, err = client:head(container, "nope")
  t.eq(o, nil)
  t.eq(err.status, 404)
  t.eq(err.s3_code, "BlobNotFound")
  local s, gerr = client:get_string(container, "nope")
  t.eq(s, nil)
  t.eq(gerr.s3_code, "BlobNotFound")
  t.contains(tostring(gerr), "no such blob: azblob://" .. container .. "/nope")
  t.eq(gerr.code, "not_found")
  local _, cerr = client:get_string(container .. "-missing", "x")
  t.eq(cerr.s3_code, "ContainerNotFound")
  t.contains(tostring(cerr), "no such container: " .. container .. "-missing in the storage account mxpcstack")
  local bad = assert(azure.client(opts{ key = "d3Jvbmcga2V5IHdyb25nIGtleQ==" }))
  local _, kerr = bad:get_string(container, "dir/a b+c.txt")
  t.ok(kerr.status == 403 or kerr.status == 400, "refused")
  t.ok(kerr.s3_code == "AuthenticationFailed" or kerr.s3_code == "InvalidAuthenticationInfo", kerr.s3_code)
  t.eq(kerr.code, "signature")
  t.contains(tostring(kerr), "did not accept the account key of the storage account mxpcstack")
  t.contains(kerr.hint, "storage-azure-account-key")
end)

t.test("a SAS token: what it allows works, the rest is refused, saying so", function()
  assert(client:put(container, "sas/a", "readable"))
  local out, code = t.sh((". \"$MXPC_STACK_ENV\" && /usr/bin/python3 -c %s %s"):format(quote([[
import datetime, os, sys
from azure.storage.blob import generate_container_sas, ContainerSasPermissions
print(generate_container_sas(os.environ["MXPC_AZURE_ACCOUNT_NAME"], sys.argv[1],
    account_key=os.environ["MXPC_AZURE_ACCOUNT_KEY"], permission=ContainerSasPermissions(read=True, list=True),
    expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1)))
]]), container))
  t.eq(code, 0, out)
  local o = opts{ sas = out:match("^%s*(.-)%s*$") }
  o.key = nil
  local sas = assert(azure.client(o))
  t.eq(sas:azure().auth, "SAS token")
  t.eq(assert(sas:get_string(container, "sas/a")), "readable")
  local n = 0
  assert(sas:list(container, "sas/", { on_item = function() n = n + 1 end }))
  t.eq(n, 1)
  local ok, err = sas:put(container, "sas/b", "x")
  t.eq(ok, nil)
  t.eq(err.code, "forbidden")
  t.eq(err.s3_code, "AuthorizationPermissionMismatch")
  t.contains(tostring(err), "access denied: Put Blob azblob://" .. container .. "/sas/b (AuthorizationPermissionMismatch)")
  t.contains(tostring(err), "the SAS token in use does not allow it: it needs the permission w (write) "
    .. "(an identity would need the role Storage Blob Data Contributor)")
  t.contains(err.hint, "rwdlc")
  local _, derr = sas:delete(container, "sas/a")
  t.eq(derr.code, "forbidden")
  t.contains(tostring(derr), "Delete Blob azblob://" .. container .. "/sas/a")
  t.contains(tostring(derr), "it needs the permission d (delete)")
end)

t.test("bad configurations are refused", function()
  t.raises(function() assert(azure.client{ account = "a" }) end, "without credentials")
  t.raises(function() assert(azure.client{ account = "a", key = "k", sas = "s" }) end, "one kind")
  t.raises(function() assert(azure.client{ account = "a", key = "not base64!" }) end, "not base64")
end)

t.test("cleanup", function()
  local names = {}
  assert(client:list(container, "", { on_item = function(o) names[#names + 1] = o.key end }))
  assert(client:delete_many(container, names))
  assert(client:delete_bucket(container))
end)

return t.run()
