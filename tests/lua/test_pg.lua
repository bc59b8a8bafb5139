-- mxpc.pg against the local stack's PostgreSQL servers (TLS, plain, wrong host).
local t = require "t"
local pg = require "mxpc.pg"
local errors = require "mxpc.error"

local env = t.stack_env()

local function params(port, extra)
  local p = { host = "127.0.0.1", port = port, dbname = "postgres", user = env.MXPC_PG_SUPERUSER,
    password = env.MXPC_PG_SUPERPASS, connect_timeout = 5 }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

t.test("strict TLS: verify-full with the CA connects over TLS", function()
  local db <close> = assert(pg.connect(params(env.MXPC_PG_TLS_PORT,
    { sslmode = "verify-full", sslrootcert = env.MXPC_PG_CA })))
  local info = db:info()
  t.ok(info.ssl, "TLS in use")
  t.ok(info.ssl.protocol:match("^TLS"), "protocol " .. tostring(info.ssl.protocol))
  t.eq(info.server_version // 10000, 15)
  t.contains(tostring(db), "TLSv1")
  t.ok(not tostring(db):find(env.MXPC_PG_SUPERPASS, 1, true), "no password in tostring")
end)

t.test("strict TLS: PGSSLROOTCERT is honoured", function()
  local script = t.tmpdir() .. "/c.lua"
  local f = assert(io.open(script, "w"))
  f:write(([[
    local pg = require "mxpc.pg"
    local db = assert(pg.connect{host = "127.0.0.1", port = %s, dbname = "postgres", user = %q,
      password = %q, sslmode = "verify-full"})
    print(db:info().ssl and "tls" or "plain")
  ]]):format(env.MXPC_PG_TLS_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS))
  f:close()
  local out, code = t.sh("PGSSLROOTCERT=" .. env.MXPC_PG_CA .. " " .. t.program() .. " run " .. script)
  t.eq(code, 0, out)
  t.eq(out, "tls\n")
  -- without it, libpq looks in ~/.postgresql/root.crt, which does not exist: refused with a hint
  local out2, code2 = t.sh("HOME=/nonexistent PGSSLROOTCERT= " .. t.program() .. " run " .. script)
  t.eq(code2, 1)
  t.contains(out2, "cannot connect to PostgreSQL")
  t.contains(out2, "hint: the server's certificate is not trusted: set PGSSLROOTCERT")
  t.ok(not out2:find(env.MXPC_PG_SUPERPASS, 1, true), "no password in the error")
end)

t.test("strict TLS: a certificate for another host name is refused", function()
  local db, err = pg.connect(params(env.MXPC_PG_WRONGHOST_PORT,
    { sslmode = "verify-full", sslrootcert = env.MXPC_PG_CA }))
  t.eq(db, nil)
  t.ok(errors.is(err, "connect"))
  t.contains(err.message, "does not match host name")
  t.contains(err.hint, "another host name")
end)

t.test("not strict: prefer falls back to plaintext; require fails there", function()
  local db <close> = assert(pg.connect(params(env.MXPC_PG_PLAIN_PORT, { sslmode = "prefer" })))
  t.eq(db:info().ssl, false)
  local none, err = pg.connect(params(env.MXPC_PG_PLAIN_PORT, { sslmode = "require" }))
  t.eq(none, nil)
  t.contains(err.message, "server does not support SSL")
  t.contains(err.hint, "does not offer TLS")
  -- prefer against the TLS server uses TLS without verifying
  local tls <close> = assert(pg.connect(params(env.MXPC_PG_WRONGHOST_PORT, { sslmode = "prefer" })))
  t.ok(tls:info().ssl, "TLS used when offered")
end)

t.test("a wrong password is refused without printing it", function()
  local db, err = pg.connect(params(env.MXPC_PG_PLAIN_PORT, { password = "not-the-password-42" }))
  t.eq(db, nil)
  t.eq(err.code, "connect")
  t.contains(err.hint, "credentials were refused")
  local line = require("mxpc.log").redact(err.message)
  t.ok(not line:find("not-the-password-42", 1, true))
end)

t.test("nothing listening: connect error with a reachability hint", function()
  local db, err = pg.connect(params(1, {}))
  t.eq(db, nil)
  t.contains(err.message, "127.0.0.1:1")
  t.contains(err.hint, "reachable")
end)

t.test("queries: parameters, types, NULLs, columns, affected rows", function()
  local db <close> = assert(pg.connect(params(env.MXPC_PG_PLAIN_PORT)))
  local rows = assert(db:query(
    "select $1::int as i, $2::text as s, $3::bool as b, null::text as n, 2.5::float8 as f, 12345678901::int8 as big",
    7, "it's", true))
  t.same(rows.columns, { "i", "s", "b", "n", "f", "big" })
  t.eq(#rows, 1)
  local r = rows[1]
  t.eq(r.i, 7)
  t.eq(math.type(r.i), "integer")
  t.eq(r.s, "it's")
  t.eq(r.b, true)
  t.eq(r.n, nil)
  t.eq(r.f, 2.5)
  t.eq(r.big, 12345678901)
  assert(db:exec("create temporary table tt (x int); insert into tt values (1), (2), (3)"))
  local upd = assert(db:query("update tt set x = x + 1 where x > $1", 1))
  t.eq(upd.affected, 2)
  t.eq(#assert(db:query("select * from tt where x = $1", nil)), 0)
end)

t.test("SQL errors carry the SQLSTATE; misuse raises", function()
  local db <close> = assert(pg.connect(params(env.MXPC_PG_PLAIN_PORT)))
  local rows, err = db:query("select * from no_such_table")
  t.eq(rows, nil)
  t.ok(errors.is(err, "sql"))
  t.eq(err.sqlstate, "42P01")
  t.contains(err.message, 'relation "no_such_table" does not exist')
  local _, err2 = db:exec("select 1/0")
  t.eq(err2.sqlstate, "22012")
  assert(db:query("select 1")) -- still usable
  t.raises(function() db:query("select $1", {}) end, "query parameters must be")
  db:close()
  t.raises(function() db:query("select 1") end, "closed connection")
  t.eq(pg.quote_ident('we"ird'), '"we""ird"')
end)

t.test("list_files: the rows come through a cursor, a batch at a time, every one once, in UUID order", function()
  local wf = require "mxpc.workflow"
  local admin <close> = assert(pg.connect(params(env.MXPC_PG_PLAIN_PORT)))
  admin:exec("drop database if exists mxpc_list_files with (force)")
  assert(admin:exec("create database mxpc_list_files"))
  local batch = wf.LIST_BATCH
  local _ <close> = setmetatable({}, { __close = function()
    wf.LIST_BATCH = batch
    admin:exec("drop database if exists mxpc_list_files with (force)")
  end })
  local db <close> = assert(pg.connect(params(env.MXPC_PG_PLAIN_PORT, { dbname = "mxpc_list_files" })))
  -- 2,503 rows with contents (every 10th without a size), 50 without, one with a UUID that is none
  assert(db:exec([[
    create table public."system$filedocument" (id bigint, "__uuid__" text, name text, size bigint,
      hascontents bool, changeddate timestamp, submetaobjectname text);
    insert into public."system$filedocument"
      select i, md5(i::text)::uuid::text, 'f' || i, case when i % 10 = 0 then null else i end, i <= 2503,
        timestamp '2024-01-01' + i * interval '1 minute', 'MyFirstModule.Attachment'
      from generate_series(1, 2553) i;
    insert into public."system$filedocument" values (9999, 'not-a-uuid', 'x', 1, true, null, null);]]))
  wf.LIST_BATCH = 100
  local seen, last, count, sized = {}, "", 0, 0
  local n = assert(wf.list_files(db, function(f)
    count = count + 1
    t.ok(not seen[f.uuid], "once: " .. f.uuid)
    seen[f.uuid] = true
    t.ok(f.uuid > last, "in order")
    last = f.uuid
    if f.size then sized = sized + 1 end
    -- a query of the caller's own meanwhile, even a failing one, does not disturb the listing
    if count == 150 then t.eq(db:query("select 1/0"), nil) end
  end))
  t.eq(n, 2503)
  t.eq(count, 2503)
  t.eq(sized, 2503 - 250)
  t.eq(#assert(db:query("select name from pg_cursors where name like 'mxpc%'")), 0, "the cursor is closed")
  -- without a function: the list itself; an error in the function closes the cursor too
  local files = assert(wf.list_files(db))
  t.eq(#files, 2503)
  t.eq(files[1].entity, "MyFirstModule.Attachment")
  t.raises(function() wf.list_files(db, function() error("stop here") end) end, "stop here")
  t.eq(#assert(db:query("select name from pg_cursors where name like 'mxpc%'")), 0, "the cursor is closed after an error")
end)

t.test("SIGINT cancels a running query: exit 130", function()
  local dir = t.tmpdir()
  local f = assert(io.open(dir .. "/q.lua", "w"))
  f:write(([[
    local pg = require "mxpc.pg"
    local db = assert(pg.connect{host = "127.0.0.1", port = %s, dbname = "postgres", user = %q, password = %q,
      application_name = "mxpc-sleep-test"})
    io.open("%s/ready", "w"):close()
    db:query("select pg_sleep(60)")
  ]]):format(env.MXPC_PG_PLAIN_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS, dir))
  f:close()
  local started = os.time()
  local out = t.sh(([[
    %s run %s/q.lua 2>%s/err & pid=$!
    for i in $(seq 1 200); do [ -e %s/ready ] && break; sleep 0.05; done
    sleep 0.3; kill -INT $pid; wait $pid; echo "exit=$?"
  ]]):format(t.program(), dir, dir, dir))
  t.contains(out, "exit=130")
  t.ok(os.time() - started < 20, "did not wait for the query")
  -- the server no longer runs it
  local db <close> = assert(pg.connect(params(env.MXPC_PG_PLAIN_PORT)))
  local busy
  for _ = 1, 50 do
    busy = assert(db:query("select count(*) as n from pg_stat_activity where application_name = 'mxpc-sleep-test' and state = 'active'"))[1].n
    if busy == 0 then break end
    os.execute("sleep 0.1")
  end
  t.eq(busy, 0, "query cancelled on the server")
end)

return t.run()
