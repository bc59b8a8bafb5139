-- Proves that the environment `target` now holds `source`'s data as the seed
-- made it: every table's row count and content hash, the sequences, and every
-- referenced file byte for byte. Run by the program itself:
--   mxpc-data-migration run tests/e2e/proof.lua SEED_JSON SOURCE TARGET
-- with the stack's env.sh in the environment. Prints what it compared; exits 1
-- on the first difference list.
local cjson = require "cjson"
local pg = require "mxpc.pg"
local s3 = require "mxpc.s3"
local process = require "mxpc.process"
local fs = require "mxpc.fs"

local seed_file, source, target = arg[1], arg[2], arg[3]
local seed = cjson.decode(assert(fs.read(seed_file)))
local function described(name)
  return seed.environments[name] or (seed.irsa_environments or {})[name] or (seed.store_environments or {})[name]
    or (seed.azure_environments or {})[name]
end
local src, dst = described(source), described(target)
assert(src and dst, "no such environments in " .. seed_file)
local function env(name) return assert(os.getenv(name), name .. " is not set: source the stack's env.sh") end

local problems = {}
local function check(ok, fmt, ...) if not ok then problems[#problems + 1] = fmt:format(...) end end

-- the database, as the superuser, over the target's server
local ports = { tls = env("MXPC_PG_TLS_PORT"), plain = env("MXPC_PG_PLAIN_PORT") }
local db <close> = assert(pg.connect { host = "127.0.0.1", port = ports[dst.database.server],
  dbname = dst.database.name, user = env("MXPC_PG_SUPERUSER"), password = env("MXPC_PG_SUPERPASS"),
  sslmode = "prefer" })
local names = {}
for name in pairs(src.database.tables) do names[#names + 1] = name end
table.sort(names)
io.stdout:write(("%-36s %8s  %s\n"):format("table", "rows", "content"))
for _, name in ipairs(names) do
  local want = src.database.tables[name]
  local got = db:query(("select count(*) as n, md5(coalesce(string_agg(x::text, E'\\n' order by x::text), '')) as h " ..
    "from public.%s x"):format(pg.quote_ident(name)))
  if not got then
    check(false, "table %s is missing in %s", name, target)
  else
    local same = got[1].n == want.rows and got[1].h == want.md5
    io.stdout:write(("%-36s %8d  %s\n"):format(name, got[1].n, same and "same as " .. source or "DIFFERENT"))
    check(same, "table %s differs: %d rows (want %d), md5 %s (want %s)", name, got[1].n, want.rows, got[1].h, want.md5)
  end
end
local extra = db:query("select count(*) as n from information_schema.tables where table_schema = 'public' " ..
  "and table_type = 'BASE TABLE'")[1].n
check(extra == #names, "%s has %d tables, %s had %d", target, extra, source, #names)
for seq, value in pairs(src.database.sequences) do
  local got = db:query("select coalesce(last_value, 0) as v from pg_sequences where schemaname = 'public' " ..
    "and sequencename = $1", seq)[1]
  check(got and got.v == value, "sequence %s: %s (want %d)", seq, got and got.v, value)
end

-- the files, in the target's bucket, under the target's key layout
-- (Azure: the target's container in the stack's account, read with its key)
local store <close> = (seed.azure_environments or {})[target] and assert(require("mxpc.azure").client {
    endpoint = env("MXPC_AZURE_BLOB_ENDPOINT"), account = env("MXPC_AZURE_ACCOUNT_NAME"),
    key = env("MXPC_AZURE_ACCOUNT_KEY"), ca_file = env("MXPC_AZURE_CA") })
  or assert(s3.client { endpoint = env("MXPC_S3_ENDPOINT"), access_key = env("MXPC_S3_ACCESS_KEY"),
    secret_key = env("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true })
local function sha256(s)
  local p <close> = assert(process.spawn({ "sha256sum" }, { stdin = "pipe", stdout = "pipe" }))
  p:write(s)
  p:close_stdin()
  local out = p:read()
  p:wait()
  return out:match("^(%x+)")
end
local bytes, present = 0, 0
for _, f in ipairs(src.files) do
  local key = dst.storage.key_prefix .. f.uuid
  local body, err = store:get_string(dst.storage.bucket, key)
  check(body ~= nil, "file %s missing in %s: %s", f.uuid, target, tostring(err))
  if body then
    check(#body == f.size and sha256(body) == f.sha256, "file %s differs (%d bytes, want %d)", f.uuid, #body, f.size)
    bytes, present = bytes + #body, present + 1
  end
end
io.stdout:write(("files: %d of %d present in %s/%s, %d bytes, each compared by SHA-256\n"):format(
  present, #src.files, dst.storage.bucket, dst.storage.key_prefix, bytes))

if #problems > 0 then
  for _, p in ipairs(problems) do io.stderr:write("DIFFERENT: ", p, "\n") end
  return 1
end
io.stdout:write(("proved: %s now holds %s's database (%d tables, sequences) and its %d files\n"):format(
  target, source, #names, #src.files))
return 0
