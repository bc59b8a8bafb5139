-- The database restore (database.start_restore: pg_restore or pg_dump ->
-- db:load on a connection of ours, in one transaction) and export_snapshot,
-- against the local stack's PostgreSQL: every way it can fail leaves the
-- database as it was.
local t = require "t"
local pg = require "mxpc.pg"
local wf = require "mxpc.workflow"

local env = t.stack_env()
local BIN = env.MXPC_PG_BINDIR

local function db_env(dbname, port, sslmode)
  return { namespace = "test", name = dbname, database = { host = "127.0.0.1", port = tonumber(port or env.MXPC_PG_PLAIN_PORT),
    dbname = dbname, user = env.MXPC_PG_SUPERUSER, password = env.MXPC_PG_SUPERPASS, sslmode = sslmode or "disable" } }
end

local function connect(dbname, port, sslmode)
  local e = db_env(dbname, port, sslmode).database
  return assert(pg.connect { host = e.host, port = e.port, dbname = dbname, user = e.user, password = e.password,
    sslmode = e.sslmode, connect_timeout = 5 })
end

-- What a database holds: its tables in schema public, each with its rows' md5.
local function fingerprint(dbname, port, sslmode)
  local db <close> = connect(dbname, port, sslmode)
  local out = {}
  for _, r in ipairs(assert(db:query("select tablename from pg_tables where schemaname = 'public' order by 1"))) do
    local q = ('select count(*) as n, md5(coalesce(string_agg(t::text, \',\' order by t::text), \'\')) as h ' ..
      'from public.%s t'):format(pg.quote_ident(r.tablename))
    local row = assert(db:query(q))[1]
    out[#out + 1] = ("%s %d %s"):format(r.tablename, row.n, row.h)
  end
  return table.concat(out, "\n")
end

local admin = connect("postgres")
assert(admin:exec("set client_min_messages = warning"))
local function recreate(name)
  assert(admin:exec(("drop database if exists %s with (force)"):format(name)))
  assert(admin:exec(("create database %s"):format(name)))
  t.cleanup(function() admin:exec(("drop database if exists %s with (force)"):format(name)) end)
end

-- The source: a Mendix-like database, a few MB of SQL so that a failure
-- half-way is half-way. The target: other contents a failed restore must keep.
recreate("mxpc_relay_src")
recreate("mxpc_relay_dst")
do
  local src <close> = connect("mxpc_relay_src")
  assert(src:exec([[
    create table "system$filedocument" (id bigint primary key, "__uuid__" text, hascontents boolean, size bigint,
      name text);
    insert into "system$filedocument"
      select i, md5(i::text)::uuid::text, true, i * 10, 'file ' || i from generate_series(1, 20) i;
    create table "myfirstmodule$log" (id bigint primary key, at timestamp, level text, message text, payload bytea);
    insert into "myfirstmodule$log" select i, timestamp '2026-01-01' + i * interval '1 second', 'INFO',
      repeat(md5(i::text), 8), decode(md5(i::text), 'hex') from generate_series(1, 40000) i;
    create index on "myfirstmodule$log" (at);
  ]]))
  local dst <close> = connect("mxpc_relay_dst")
  assert(dst:exec([[create table kept (id int primary key, note text);
    insert into kept values (1, 'the database as it was'), (2, 'before the restore');]]))
end
local DUMP = t.tmpdir() .. "/src.backup"
assert(wf.dump_database(db_env("mxpc_relay_src"), DUMP))
local BEFORE = fingerprint("mxpc_relay_dst")
local SOURCE = fingerprint("mxpc_relay_src")

-- A directory of PostgreSQL programs where `name` is a script (`body`, with
-- $REAL the real program), the others the real ones.
local function bindir_with(name, body)
  local dir = t.tmpdir()
  for _, p in ipairs { "pg_dump", "pg_restore", "psql" } do
    if p == name then
      t.write(dir .. "/" .. p, ("#!/bin/sh\nREAL=%s/%s\n%s\n"):format(BIN, p, body))
      t.sh("chmod 755 " .. dir .. "/" .. p)
    else
      t.sh(("ln -s %s/%s %s/%s"):format(BIN, p, dir, p))
    end
  end
  return dir
end

-- Runs Lua code in a child program with MXPC_PG_BINDIR=bindir: its output and exit code.
local function run_with_bindir(bindir, code)
  local dir = t.tmpdir()
  t.write(dir .. "/s.lua", ([[
    local wf = require "mxpc.workflow"
    local function db_env(dbname)
      return { namespace = "test", database = { host = "127.0.0.1", port = %s, dbname = dbname, user = %q,
        password = %q, sslmode = "disable" } }
    end
  ]]):format(env.MXPC_PG_PLAIN_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS) .. code)
  return t.sh(("MXPC_PG_BINDIR=%s %s run %s/s.lua"):format(bindir, t.program(), dir))
end

-- A child run with `bin` as MXPC_PG_BINDIR that starts a restore of `dump`
-- into mxpc_relay_dst, waits for the load and prints loaded()'s answer (and,
-- so that a commit after a failure shows, commit()'s): its output and code.
local function loaded_in_child(bin, dump)
  return run_with_bindir(bin, ([[
    local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { dump = %q }))
    local ok, err = h:loaded()
    print(ok, err.code, err.message, err.hint)
    print(h:commit("select 1;"))
  ]]):format(dump))
end

-- A child run printed `wanted` (the error) and the hint, and the database is as it was.
local function failed_unchanged(out, code, wanted)
  t.eq(code, 0, out)
  t.contains(out, wanted)
  t.contains(out, "left as it was")
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end

t.test("a restore from a dump replaces the contents, hook SQL in the same transaction", function()
  local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { dump = DUMP }))
  assert(h:loaded())
  assert(h:commit([[create table hooked as select count(*) as n from "myfirstmodule$log";]]))
  local got = fingerprint("mxpc_relay_dst")
  t.contains(got, "myfirstmodule$log 40000")
  t.contains(got, "hooked 1")
  t.ok(not got:find("kept", 1, true), "the old table is gone")
  -- back to the state the other tests start from
  local dst <close> = connect("mxpc_relay_dst")
  assert(dst:exec([[drop table "myfirstmodule$log", "system$filedocument", hooked;
    create table kept (id int primary key, note text);
    insert into kept values (1, 'the database as it was'), (2, 'before the restore');]]))
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

-- The backends of ours on the restore's target (the load's connection),
-- once the server has seen its client gone (within 5 s).
local function our_backends()
  local n
  for _ = 1, 100 do
    n = #assert(admin:query("select pid from pg_stat_activity where datname = 'mxpc_relay_dst' " ..
      "and application_name = 'mxpc-data-migration' and pid <> pg_backend_pid()"))
    if n == 0 then break end
    require("mxpc.runtime").sleep(0.05)
  end
  return n
end

t.test("pg_restore killed half-way: nothing is committed, the database is unchanged", function()
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | head -c 300000; kill -9 $$]])
  local out, code = loaded_in_child(bin, DUMP)
  failed_unchanged(out, code, "nil\tpg_restore\tpg_restore was killed by signal 9 (SIGKILL)")
  t.eq(our_backends(), 0)
end)

t.test("pg_restore ending after whole statements, but failing: judged by its status, nothing committed", function()
  -- the SQL up to the first COPY's data: whole statements, so that it alone looks complete
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | sed '/FROM stdin;$/,$d'; exit 3]])
  local out, code = loaded_in_child(bin, DUMP)
  failed_unchanged(out, code, "nil\tpg_restore\tpg_restore failed (exit status 3)")
end)

t.test("the database connection killed half-way: an error, the database is unchanged", function()
  -- pg_restore's SQL held after 300,000 bytes, so that the load is surely half-way when its backend goes
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | { head -c 300000; sleep 2; cat; }]])
  local out, code = run_with_bindir(bin, ([[
    local pg, runtime = require "mxpc.pg", require "mxpc.runtime"
    local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { dump = %q }))
    local t0 = runtime.monotonic()
    while h.load:bytes() < 300000 and runtime.monotonic() - t0 < 20 do runtime.sleep(0.01) end
    local admin = assert(pg.connect { host = "127.0.0.1", port = %s, dbname = "postgres", user = %q, password = %q })
    local killed = assert(admin:query("select pg_terminate_backend(pid) as ok from pg_stat_activity " ..
      "where datname = 'mxpc_relay_dst' and application_name = 'mxpc-data-migration' and pid <> pg_backend_pid()"))
    print("killed", #killed)
    local ok, err = h:loaded()
    print(ok, err.code, err.message, err.hint)
    local ok2, err2 = h:commit()
    print("commit", ok2, err2 == err)
  ]]):format(DUMP, env.MXPC_PG_PLAIN_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS))
  t.contains(out, "killed\t1")
  t.contains(out, "commit\tnil\ttrue")
  failed_unchanged(out, code, "nil\trestore\trestoring the database failed: ")
end)

-- A source with a large object: pg_restore -f writes BEGIN; and COMMIT; around it (for a
-- psql without --single-transaction), which must not end the restore's one transaction.
recreate("mxpc_relay_lo")
do
  local lo <close> = connect("mxpc_relay_lo")
  assert(lo:exec([[create table t (id int primary key, doc oid);
    insert into t select 1, lo_from_bytea(0, 'the large object');]]))
end
local LO_DUMP = t.tmpdir() .. "/lo.backup"
assert(wf.dump_database(db_env("mxpc_relay_lo"), LO_DUMP))

local function large_objects()
  local db <close> = connect("mxpc_relay_dst")
  return assert(db:query("select count(*) as n from pg_largeobject_metadata"))[1].n
end

t.test("large objects: pg_restore's own BEGIN and COMMIT do not end the restore's transaction", function()
  -- all of pg_restore's SQL, then a failure: nothing of it, the large object included, may be committed
  local bin = bindir_with("pg_restore", [["$REAL" "$@"; exit 3]])
  local out, code = loaded_in_child(bin, LO_DUMP)
  failed_unchanged(out, code, "nil\tpg_restore\tpg_restore failed (exit status 3)")
  t.eq(large_objects(), 0)
  -- and a restore that succeeds has it
  assert(wf.restore_database(db_env("mxpc_relay_dst"), LO_DUMP))
  local dst <close> = connect("mxpc_relay_dst")
  t.eq(assert(dst:query("select convert_from(lo_get(doc), 'UTF8') as s from t"))[1].s, "the large object")
  assert(dst:exec([[select lo_unlink(doc) from t; drop table t;
    create table kept (id int primary key, note text);
    insert into kept values (1, 'the database as it was'), (2, 'before the restore');]]))
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
  t.eq(large_objects(), 0)
end)

t.test("a ROLLBACK in pg_restore's SQL is refused, the database unchanged", function()
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | sed 's/^CREATE INDEX /ROLLBACK;\nCREATE INDEX /']])
  local out, code = loaded_in_child(bin, DUMP)
  failed_unchanged(out, code, "a ROLLBACK statement in the SQL: the restore runs in one transaction, which only the "
    .. "tool ends")
end)

t.test("pg_restore's SQL ending inside a table's data, exit 0: an error, nothing committed", function()
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | head -c 300000]])
  local out, code = loaded_in_child(bin, DUMP)
  failed_unchanged(out, code, "nil\trestore\trestoring the database failed: PostgreSQL ")
  t.contains(out, "the SQL ended in the middle of a table's COPY data")
end)

t.test("a restore_sql hook that ends the transaction: said, not taken for a rollback", function()
  local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { dump = DUMP }))
  assert(h:loaded())
  local ok, err = h:commit("COMMIT;")
  t.eq(ok, nil)
  t.contains(err.message, "the restore_sql hook's SQL ended the restore's transaction")
  t.ok(not err.hint:find("left as it was", 1, true), err.hint)
  -- (it did commit: back to the state the other tests start from)
  local dst <close> = connect("mxpc_relay_dst")
  assert(dst:exec([[drop table "myfirstmodule$log", "system$filedocument";
    create table kept (id int primary key, note text);
    insert into kept values (1, 'the database as it was'), (2, 'before the restore');]]))
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("a statement the server refuses: its message and the statement, the database unchanged", function()
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | sed 's/^CREATE INDEX /CREATE INDEXX /']])
  local out, code = loaded_in_child(bin, DUMP)
  failed_unchanged(out, code, "nil\trestore\trestoring the database failed: PostgreSQL ")
  t.contains(out, 'syntax error at or near "INDEXX" (SQLSTATE 42601)')
  t.contains(out, "at: CREATE INDEXX ")
  t.eq(our_backends(), 0)
end)

t.test("a psql command in the SQL other than \\restrict: refused, the database unchanged", function()
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | sed 's/^SET default_tablespace/\\connect other\nSET default_tablespace/']])
  local out, code = loaded_in_child(bin, DUMP)
  failed_unchanged(out, code, "psql's \\connect command: only SQL, COPY data and \\restrict lines can be restored")
end)

t.test("a restore_sql hook that fails rolls back the whole restore", function()
  local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { dump = DUMP }))
  assert(h:loaded())
  local ok, err = h:commit("select 1/0;")
  t.eq(ok, nil)
  t.eq(err.code, "restore")
  t.contains(err.message, "division by zero")
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("the server's DETAIL and HINT of a failing restore_sql: lines of their own", function()
  local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { dump = DUMP }))
  assert(h:loaded())
  local ok, err = h:commit([[DO $$ BEGIN RAISE EXCEPTION 'refused' USING DETAIL = 'too many rows',
    HINT = 'load fewer'; END $$;]])
  t.eq(ok, nil)
  t.eq(err.lines, true)
  t.ok(err.message:find("refused (SQLSTATE P0001)\nDETAIL:  too many rows\nHINT:  load fewer\nCONTEXT:  ", 1, true),
    err.message)
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("restore_database: a failing hook SQL and a bad dump leave the database unchanged", function()
  local ok, err = wf.restore_database(db_env("mxpc_relay_dst"), DUMP, "select no_such_column from kept;")
  t.eq(ok, nil)
  t.contains(err.message, "no_such_column")
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
  local bad = t.tmpdir() .. "/bad.backup"
  t.write(bad, "PGDMP not really")
  local ok2, err2 = wf.restore_database(db_env("mxpc_relay_dst"), bad)
  t.eq(ok2, nil)
  t.eq(err2.code, "pg_restore")
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("Ctrl-C while the load runs: exit 130, pg_restore and our backend gone, the database unchanged", function()
  local bin = bindir_with("pg_restore", [[echo $$ > "$(dirname "$0")/producer.pid"; "$REAL" "$@"; exec sleep 30]])
  local dir = t.tmpdir()
  local out = t.sh(([[
    cat > %s/s.lua <<'EOF'
    local wf = require "mxpc.workflow"
    local h <close> = assert(wf.start_restore({ database = { host = "127.0.0.1", port = %s, dbname = "mxpc_relay_dst",
      user = %q, password = %q, sslmode = "disable" } }, { dump = %q }))
    io.open(%q, "w"):close()
    h:loaded()
    print("not reached")
EOF
    MXPC_PG_BINDIR=%s %s run %s/s.lua 2>%s/err & pid=$!
    for i in $(seq 1 400); do [ -e %s/ready ] && [ -s %s/producer.pid ] && break; sleep 0.05; done
    sleep 1
    kill -INT $pid; wait $pid; echo "exit=$?"
    kill -0 $(cat %s/producer.pid) 2>/dev/null && echo producer-alive || echo producer-gone
  ]]):format(dir, env.MXPC_PG_PLAIN_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS, DUMP, dir .. "/ready",
    bin, t.program(), dir, dir, dir, bin, bin))
  t.contains(out, "exit=130")
  t.contains(out, "producer-gone")
  t.ok(not out:find("not reached", 1, true), out)
  t.eq(our_backends(), 0)
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("Ctrl-C while the server runs a long statement of the load: cancelled at once, exit 130", function()
  local bin = bindir_with("pg_restore", [["$REAL" "$@" | sed 's/^CREATE INDEX /SELECT pg_sleep(60);\nCREATE INDEX /']])
  local dir = t.tmpdir()
  t.write(dir .. "/s.lua", ([[
    local wf = require "mxpc.workflow"
    local h <close> = assert(wf.start_restore({ database = { host = "127.0.0.1", port = %s, dbname = "mxpc_relay_dst",
      user = %q, password = %q, sslmode = "disable" } }, { dump = %q }))
    h:loaded()
    print("not reached")
  ]]):format(env.MXPC_PG_PLAIN_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS, DUMP))
  t.sh(([[(MXPC_PG_BINDIR=%s sh -c 'echo $$ > %s/pid; exec "$0" "$@"' %s run %s/s.lua >%s/out 2>&1;
    echo $? > %s/exit) >/dev/null 2>&1 &]]):format(bin, dir, t.program(), dir, dir, dir))
  local runtime = require "mxpc.runtime"
  local function read(name)
    local f = io.open(dir .. "/" .. name)
    local s = f and f:read("a")
    if f then f:close() end
    return s and s ~= "" and s or nil
  end
  local sleeping = "select count(*) as n from pg_stat_activity where state = 'active' " ..
    "and query like '%SELECT pg_sleep(60);%' and pid <> pg_backend_pid()"
  for _ = 1, 400 do
    if assert(admin:query(sleeping))[1].n > 0 then break end
    runtime.sleep(0.05)
  end
  t.ok(assert(admin:query(sleeping))[1].n >= 1, "the long statement runs")
  local start = runtime.monotonic()
  t.sh("kill -INT " .. read("pid"):match("%d+"))
  while not read("exit") and runtime.monotonic() - start < 30 do runtime.sleep(0.05) end
  t.ok(runtime.monotonic() - start < 5, "the statement was cancelled, not waited for")
  t.eq(read("exit"), "130\n", read("out"))
  t.ok(not read("out"):find("not reached", 1, true), read("out"))
  t.eq(assert(admin:query(sleeping))[1].n, 0)
  t.eq(our_backends(), 0)
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("environment to environment: the demo database streamed from pg_dump into the load, no file", function()
  recreate("mxpc_relay_copy")
  local source = db_env("demo_app", env.MXPC_PG_TLS_PORT, "require")
  local h <close> = assert(wf.start_restore(db_env("mxpc_relay_copy"), { from_env = source }))
  assert(h:loaded())
  assert(h:commit())
  local want = fingerprint("demo_app", env.MXPC_PG_TLS_PORT, "require")
  t.contains(want, "system$filedocument")
  t.eq(fingerprint("mxpc_relay_copy"), want)
end)

t.test("a failing pg_dump of the source: nothing committed", function()
  local source = db_env("mxpc_no_such_database")
  local h <close> = assert(wf.start_restore(db_env("mxpc_relay_dst"), { from_env = source }))
  local ok, err = h:loaded()
  t.eq(ok, nil)
  t.eq(err.code, "pg_dump")
  t.contains(err.message, "mxpc_no_such_database")
  t.eq(fingerprint("mxpc_relay_dst"), BEFORE)
end)

t.test("export_snapshot: rows added after it are neither dumped nor listed", function()
  local snap <close> = assert(wf.export_snapshot(db_env("mxpc_relay_src")))
  t.ok(snap.id:match("^%x+%-%x+%-%d+$"), snap.id)
  local src <close> = connect("mxpc_relay_src")
  assert(src:exec([[insert into "system$filedocument" values (21, md5('21')::uuid::text, true, 210, 'late');
    insert into "myfirstmodule$log" (id) values (40001);]]))
  local dump = t.tmpdir() .. "/snap.backup"
  local d <close> = assert(wf.start_dump(db_env("mxpc_relay_src"), dump, { snapshot = snap.id }))
  assert(d.finish())
  local files = assert(snap:list_files())
  t.eq(#files, 20, "the file added later is not listed")
  recreate("mxpc_relay_snap")
  assert(wf.restore_database(db_env("mxpc_relay_snap"), dump))
  t.eq(fingerprint("mxpc_relay_snap"), SOURCE, "the rows added later are not in the dump")
  snap:close()
  snap:close()
  assert(src:exec([[delete from "system$filedocument" where id = 21; delete from "myfirstmodule$log" where id = 40001]]))
end)

t.test("export_snapshot: where the server refuses, nil and an error of code snapshot", function()
  -- (functions are per database: revoked in the source's)
  local src <close> = connect("mxpc_relay_src")
  assert(src:exec("revoke execute on function pg_export_snapshot() from public"))
  assert(admin:exec("drop role if exists mxpc_relay_user"))
  assert(admin:exec("create role mxpc_relay_user login password 'relay-user-pw'"))
  t.cleanup(function() admin:exec("drop role if exists mxpc_relay_user") end)
  assert(src:exec("grant connect on database mxpc_relay_src to mxpc_relay_user"))
  local e = db_env("mxpc_relay_src")
  e.database.user, e.database.password = "mxpc_relay_user", "relay-user-pw"
  local snap, err = wf.export_snapshot(e)
  t.eq(snap, nil)
  t.eq(err.code, "snapshot")
  t.contains(err.message, "permission denied")
  -- on a connection the caller gave: it is left usable, outside a transaction
  local conn <close> = assert(wf.connect_database(e))
  t.eq(wf.export_snapshot(conn), nil)
  t.eq(assert(conn:query("select 1 as one"))[1].one, 1)
  assert(src:exec("grant execute on function pg_export_snapshot() to public"))
end)

t.test("check_dump_space: the space the dump needs, and an early error with that number", function()
  local conn <close> = connect("mxpc_relay_src")
  local need = assert(wf.dump_space(conn))
  local all = assert(wf.dump_space(conn, 0))
  t.ok(all > 4000000 and all < 40000000, "the tables' data: " .. all)
  t.eq(need, math.ceil(all * wf.DUMP_SHRINK))
  t.ok(wf.check_dump_space(conn, t.tmpdir()))
  local script = t.tmpdir() .. "/space.lua"
  t.write(script, ([[
    local pg, wf = require "mxpc.pg", require "mxpc.workflow"
    local c = assert(pg.connect { host = "127.0.0.1", port = %s, dbname = "mxpc_relay_src", user = %q, password = %q })
    local ok, err = wf.check_dump_space(c, "/tmp")
    print(ok, err.code, err.message, err.hint)
  ]]):format(env.MXPC_PG_PLAIN_PORT, env.MXPC_PG_SUPERUSER, env.MXPC_PG_SUPERPASS))
  local out, code = t.sh(("MXPC_MIN_FREE=%d %s run %s"):format(1 << 60, t.program(), script))
  t.eq(code, 0, out)
  t.contains(out, ("nil\tspace\tnot enough space in /tmp for the database dump: it needs %d bytes more"):format(need))
  t.contains(out, "write the archive where there is room")
  -- a dump of the database is indeed smaller than the bound
  local dump = t.tmpdir() .. "/d.backup"
  t.ok(assert(wf.dump_database(db_env("mxpc_relay_src"), dump)) <= need, "the dump fits the estimate")
end)

return t.run()
