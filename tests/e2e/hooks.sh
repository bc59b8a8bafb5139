#!/usr/bin/env bash
# End to end on the local stack: the hooks of backup and restore (docs/hooks.md)
# fire in order with their context, a failing one fails the run (a restore
# rolls back), the --files-* options take the files they say, bad values are
# usage errors, and every example in scripts/examples/ does what it says.
# Needs MXPC_STACK_ENV; reseeds the namespace before and after.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh" "$@"
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid"; rm -rf "$work"; reseed >/dev/null' EXIT
# here check runs a command (not a string to eval)
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
sql_app() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_TLS_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_app -c "$1"; }
sql_copy() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_copy -c "$1"; }
# every table of demo_copy's schema public with the md5 of its sorted rows
fingerprint() {
  local t
  for t in $(sql_copy "select tablename from pg_tables where schemaname = 'public' order by 1"); do
    printf '%s %s\n' "$t" "$(sql_copy "select count(*) || ':' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from public.\"$t\" x")"
  done
}
# the UUIDs of the files in an archive, sorted
archive_uuids() { tar -tzf "$1" | sed -n 's|^tree/.*/\([0-9a-f-]\{36\}\)$|\1|p' | sort; }
# the UUIDs of demo-app's files in use that also match the SQL condition $1, sorted
files_where() { sql_app "select __uuid__ from \"system\$filedocument\" where hascontents and __uuid__ is not null and ($1) order by 1"; }
replicas() { kubectl -n mendix get mendixapp demo-copy -o jsonpath='{.spec.replicas}'; }

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
total=$(files_where true | wc -l)

# --- every hook point, in order, with its context ------------------------------
export HOOKS_LOG=$work/hooks.log
cat >"$work/all.lua" <<'LUA'
local function note(fmt, ...)
  local f = assert(io.open(os.getenv("HOOKS_LOG"), "a"))
  f:write(fmt:format(...), "\n")
  f:close()
end
local function rows(ctx) return ctx.db:query('select count(*) as n from "myfirstmodule$customer"')[1].n end
return {
  before_backup = function(ctx)
    note("before_backup %s %s %s customers=%d storage=%s file=%s", ctx.workflow, ctx.env.namespace, ctx.env.name,
      rows(ctx), type(ctx.storage), ctx.options.file)
  end,
  select_file = function(file)
    note("select_file %s %s %s %s %s", file.uuid, file.entity, file.size, file.changed, file.has_contents)
    return true
  end,
  after_backup = function(ctx, s) note("after_backup files=%d of %d selected=%d", s.files, s.total, s.selected) end,
  before_restore = function(ctx)
    note("before_restore %s %s customers=%d storage=%s", ctx.workflow, ctx.env.name, rows(ctx), type(ctx.storage))
  end,
  restore_sql = function(ctx) note("restore_sql"); return "select 1" end,
  after_restore = function(ctx, s) note("after_restore files=%d customers=%d", s.files, rows(ctx)) end,
  on_error = function(ctx, err) note("on_error %s", err.message) end,
}
LUA
points() { cut -d' ' -f1 "$HOOKS_LOG" | uniq | paste -sd' '; }

run "backup with hooks" 0 backup -n mendix -e demo-app -f "$work/all.tar.gz" --hooks "$work/all.lua"
check "... before_backup, select_file for each file, after_backup" [ "$(points)" = "before_backup select_file after_backup" ]
check "... before_backup's context: workflow, environment, database, storage, options" \
  grep -qx "before_backup backup mendix demo-app customers=50 storage=userdata file=$work/all.tar.gz" "$HOOKS_LOG"
check "... select_file once per file in use ($total)" [ "$(grep -c '^select_file' "$HOOKS_LOG")" = "$total" ]
line=$(grep '^select_file' "$HOOKS_LOG" | head -1)
uuid=$(cut -d' ' -f2 <<<"$line")
want=$(sql_app "select __uuid__ || ' ' || submetaobjectname || ' ' || size || ' ' || to_char(changeddate, 'YYYY-MM-DD HH24:MI:SS') || ' true' from \"system\$filedocument\" where __uuid__ = '$uuid'")
check "... with the file's uuid, entity, size, change date, has_contents ($want)" [ "select_file $want" = "$line" ]
check "... after_backup's summary" grep -qx "after_backup files=$total of $total selected=$total" "$HOOKS_LOG"

rm -f "$HOOKS_LOG"
copy_customers=$(sql_copy 'select count(*) from "myfirstmodule$customer"')
run "restore with hooks" 0 restore -n mendix -e demo-copy -f "$work/all.tar.gz" --stop-app --hooks "$work/all.lua"
check "... before_restore, restore_sql, after_restore" [ "$(points)" = "before_restore restore_sql after_restore" ]
check "... before_restore sees the database as it was (demo-copy's $copy_customers customers)" \
  grep -qx "before_restore restore demo-copy customers=$copy_customers storage=userdata" "$HOOKS_LOG"
check "... after_restore a fresh connection to the restored one" grep -qx "after_restore files=$total customers=50" "$HOOKS_LOG"

# an exported copy of the scripts calls the hooks too, found as hooks.lua beside them
"$bin" scripts export "$work/exported" >/dev/null 2>&1
cp "$work/all.lua" "$work/exported/hooks.lua"
rm -f "$HOOKS_LOG"
run "backup with exported scripts and DIR/hooks.lua" 0 --scripts "$work/exported" backup -n mendix -e demo-app \
  -f "$work/exported.tar.gz"
check "... calls the hooks" [ "$(points)" = "before_backup select_file after_backup" ]

# a restore's safety backup runs without hooks: every file, no backup hooks
cat >"$work/exported/hooks.lua" <<'LUA'
local all = dofile(os.getenv("WORK") .. "/all.lua")
all.select_file = function() return false end
return all
LUA
export WORK=$work
rm -f "$HOOKS_LOG"
run "restore --safety-backup with DIR/hooks.lua" 0 --scripts "$work/exported" restore -n mendix -e demo-copy \
  -f "$work/all.tar.gz" --stop-app --safety-backup "$work/safety.tar.gz"
check "... only the restore's hooks are called" [ "$(points)" = "before_restore restore_sql after_restore" ]
want=$(sql_copy "select __uuid__ from \"system\$filedocument\" where hascontents and __uuid__ is not null order by 1")
check "... the safety backup holds every file ($(wc -l <<<"$want"))" [ "$(archive_uuids "$work/safety.tar.gz")" = "$want" ]

# --- failing hooks ------------------------------------------------------------------
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
before=$(fingerprint)
cat >"$work/raise.lua" <<'LUA'
local all = dofile(os.getenv("WORK") .. "/all.lua")
all.restore_sql = function() error("no SQL today", 0) end
return all
LUA
rm -f "$HOOKS_LOG"
run "a restore_sql that raises fails the restore" 1 restore -n mendix -e demo-copy -f "$work/all.tar.gz" --stop-app \
  --hooks "$work/raise.lua"
expect_err "... naming the hook" "^error: hook restore_sql \(.*/raise.lua\) failed: no SQL today$"
check "... on_error is told, before the run ends" [ "$(points)" = "before_restore on_error" ]
check "... the database is unchanged" [ "$(fingerprint)" = "$before" ]
check "... and the app runs again" [ "$(replicas)" = 1 ]

# the SQL runs after the data is loaded, inside the transaction: its failure
# rolls everything back
cat >"$work/badselect.lua" <<'LUA'
local all = dofile(os.getenv("WORK") .. "/all.lua")
local n = 0
all.select_file = function(f) n = n + 1; if n == 3 then error("cannot judge " .. f.uuid, 0) end; return true end
return all
LUA
rm -f "$HOOKS_LOG"
run "a select_file that raises fails the backup" 1 backup -n mendix -e demo-app -f "$work/badselect.tar.gz" \
  --hooks "$work/badselect.lua"
expect_err "... naming the hook" "^error: hook select_file \(.*/badselect.lua\) failed: cannot judge [0-9a-f-]{36}$"
check "... before_backup, then on_error" [ "$(points)" = "before_backup on_error" ]
check "... on_error gets the error" grep -q "^on_error hook select_file .* failed: cannot judge" "$HOOKS_LOG"
check "... no archive" [ ! -e "$work/badselect.tar.gz" ]
no_dot_files() { ! ls -A "$work" | grep -q '^\.'; }
check "... nothing left beside it" no_dot_files

# Ctrl-C during a hook (the hook signals its own process): on_error still
# hears of it (it can do local work: the signal stops what waits), exit 130
cat >"$work/selfint.lua" <<'LUA'
local all = dofile(os.getenv("WORK") .. "/all.lua")
all.select_file = function()
  local stat <close> = assert(io.open("/proc/self/stat"))
  -- (through mxpc.process: os.execute's system() ignores SIGINT meanwhile)
  local kill <close> = assert(require("mxpc.process").spawn({ "kill", "-INT", tostring(stat:read("n")) }))
  kill:wait()
  require("mxpc.runtime").sleep(60)
  error("the signal did not interrupt the hook", 0)
end
return all
LUA
rm -f "$HOOKS_LOG"
run "Ctrl-C in a hook ends the backup with 130" 130 backup -n mendix -e demo-app -f "$work/selfint.tar.gz" \
  --hooks "$work/selfint.lua"
check "... on_error is told" grep -qx "on_error interrupted by SIGINT" "$HOOKS_LOG"
check "... no archive" [ ! -e "$work/selfint.tar.gz" ]
check "... nothing left beside it" no_dot_files

cat >"$work/badsql.lua" <<'LUA'
return { restore_sql = function() return [[
DO $$ BEGIN RAISE EXCEPTION 'refused with % customers loaded', (SELECT count(*) FROM "myfirstmodule$customer")
  USING HINT = 'load fewer'; END $$;
]] end }
LUA
run "restore_sql whose SQL fails fails the restore" 1 restore -n mendix -e demo-copy -f "$work/all.tar.gz" --stop-app \
  --hooks "$work/badsql.lua"
expect_err "... after the data was loaded" "refused with 50 customers loaded \(SQLSTATE P0001\)$"
expect_err "... the server's HINT on a line of its own, not a literal \\n" "^  HINT:  load fewer$"
expect_err "... and says the database was left as it was" "left as it was"
check "... the database is unchanged" [ "$(fingerprint)" = "$before" ]

cat >"$work/refuse.lua" <<'LUA'
return { before_restore = function(ctx) error({ code = "refused", message = "not on a Friday", hint = "wait" }, 0) end }
LUA
run "a before_restore that raises stops the restore" 1 restore -n mendix -e demo-copy -f "$work/all.tar.gz" \
  --stop-app --hooks "$work/refuse.lua"
expect_err "... with its message" "^error: hook before_restore \(.*\) failed: not on a Friday$"
expect_err "... and hint" "^hint: wait$"
check "... nothing restored" [ "$(fingerprint)" = "$before" ]
check "... the app runs again" [ "$(replicas)" = 1 ]

# a hook may not end the process: os.exit fails the hook, and the run cleans up
printf 'return { before_restore = function() os.exit(0) end }\n' >"$work/exit.lua"
run "a before_restore that calls os.exit fails the restore" 1 restore -n mendix -e demo-copy -f "$work/all.tar.gz" \
  --stop-app --hooks "$work/exit.lua"
expect_err "... saying the hook tried to exit" \
  "^error: hook before_restore \(.*/exit.lua\) failed: it tried to exit the process \(os.exit\(0\)\), which a hook may not do$"
check "... nothing restored" [ "$(fingerprint)" = "$before" ]
check "... the app runs again" [ "$(replicas)" = 1 ]

# pg_dump runs while select_file is asked (it waits 3 s first here: still running when the hook exits)
mkdir -p "$work/slowbin"
ln -sf "$MXPC_PG_BINDIR/pg_restore" "$MXPC_PG_BINDIR/psql" "$work/slowbin/"
printf '#!/bin/sh\necho $$ >"%s/pg_dump.pid"\nsleep 3\nexec "%s/pg_dump" "$@"\n' "$work" "$MXPC_PG_BINDIR" >"$work/slowbin/pg_dump"
chmod +x "$work/slowbin/pg_dump"
printf 'return { select_file = function() os.exit(0) end }\n' >"$work/exit.lua"
MXPC_PG_BINDIR=$work/slowbin run "a select_file that calls os.exit fails the backup" 1 backup -n mendix -e demo-app \
  -f "$work/exit.tar.gz" --hooks "$work/exit.lua"
expect_err "... saying the hook tried to exit" "^error: hook select_file \(.*\) failed: it tried to exit the process"
check "... no archive" [ ! -e "$work/exit.tar.gz" ]
check "... nothing left beside it (the working directory is gone)" no_dot_files
pg_dump_gone() { [ -s "$work/pg_dump.pid" ] && ! kill -0 "$(cat "$work/pg_dump.pid")" 2>/dev/null; }
check "... pg_dump was started and is stopped" pg_dump_gone

printf 'return { befor_backup = function() end, after_restore = function() end }\n' >"$work/typo.lua"
run "an unknown hook name is an error" 1 backup -n mendix -e demo-app -f "$work/typo.tar.gz" --hooks "$work/typo.lua"
expect_err "... naming it" "unknown hook name: befor_backup \(did you mean before_backup\?\)"
grep -q "resolving" "$work/err" && bad "... before any work" || ok "... before any work"

# --- selecting files without code ------------------------------------------------------
n_of() { grep -q ", $1 of $total files selected" "$work/out"; }
run "--files-of twice, --files-larger-than" 0 backup -n mendix -e demo-app -f "$work/sel1.tar.gz" \
  --files-of MyFirstModule.Attachment --files-of System.Image --files-larger-than 1k
want=$(files_where "submetaobjectname in ('MyFirstModule.Attachment', 'System.Image') and size > 1024")
check "... the archive holds exactly those files ($(wc -l <<<"$want"))" [ "$(archive_uuids "$work/sel1.tar.gz")" = "$want" ]
check "... counted in the summary line" n_of "$(wc -l <<<"$want")"
run "... and the archive verifies" 0 verify "$work/sel1.tar.gz"

run "--files-changed-since with a zone, --files-smaller-than" 0 backup -n mendix -e demo-app -f "$work/sel2.tar.gz" \
  --files-changed-since 2024-03-01T10:10:00+01:00 --files-smaller-than 0.5MiB
want=$(files_where "changeddate >= '2024-03-01 09:10:00' and size < 524288")
check "... the archive holds exactly those files ($(wc -l <<<"$want"))" [ "$(archive_uuids "$work/sel2.tar.gz")" = "$want" ]
check "... counted" n_of "$(wc -l <<<"$want")"

cat >"$work/select.lua" <<'LUA'
return { select_file = function(f) return f.entity ~= "System.FileDocument" end }
LUA
run "options and select_file together" 0 backup -n mendix -e demo-app -f "$work/sel3.tar.gz" \
  --files-changed-since 2024-03-01 --files-smaller-than 16k --hooks "$work/select.lua"
want=$(files_where "submetaobjectname <> 'System.FileDocument' and size < 16384")
check "... the archive holds exactly those files ($(wc -l <<<"$want"))" [ "$(archive_uuids "$work/sel3.tar.gz")" = "$want" ]

bad_value() {
  local name=$1 pattern=$2
  shift 2
  run "$name: usage error" 2 backup -n mendix -e demo-app -f "$work/never.tar.gz" "$@"
  expect_err "... saying why" "$pattern"
}
bad_value "a size without a number" 'invalid --files-larger-than "MB": expected a size' --files-larger-than MB
bad_value "an unknown unit" 'invalid --files-smaller-than "10XB"' --files-smaller-than 10XB
bad_value "a day that does not exist" 'invalid --files-changed-since "2024-02-30": no such day' --files-changed-since 2024-02-30
bad_value "an offset beyond 14 hours" 'invalid --files-changed-since "2024-03-01T09:00\+99:00": no such time-zone offset' \
  --files-changed-since 2024-03-01T09:00+99:00
bad_value "a date in another format" 'invalid --files-changed-since "01/03/2024"' --files-changed-since 01/03/2024
bad_value "an entity without a module" 'invalid --files-of "Attachment": expected Module.Entity' --files-of Attachment
bad_value "a selection of nothing" "select no file" --files-larger-than 1M --files-smaller-than 1k
bad_value "a selection with --database-only" "a database-only backup has none" --files-of System.Image --database-only
bad_value "a missing hooks file" 'invalid --hooks ".*/none.lua": no such file' --hooks "$work/none.lua"
bad_value "an entity the database does not have" \
  'invalid --files-of "MyFirstModule.Photo": no file of the database is of that entity; its files are of MyFirstModule.Attachment, System.FileDocument, System.Image$' \
  --files-of System.Image --files-of MyFirstModule.Photo
bad_value "an entity in the wrong case" \
  'invalid --files-of "MyFirstModule.attachment": .* \(did you mean MyFirstModule.Attachment\?\)' --files-of MyFirstModule.attachment
bad_value "... also with --dry-run" '\(did you mean MyFirstModule\.Attachment\?\)' --files-of MyFirstModule.attachment --dry-run
check "no archive from any of them" [ ! -e "$work/never.tar.gz" ]

# --- the examples --------------------------------------------------------------------------
examples=$src/scripts/examples
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "example anonymise_emails: restore" 0 restore -n mendix -e demo-copy -f "$work/all.tar.gz" --stop-app \
  --hooks "$examples/anonymise_emails.lua"
check "... every address is anonymised (50)" [ "$(sql_copy "select count(*) from \"myfirstmodule\$customer\" where email = 'customer-' || id || '@example.invalid'")" = 50 ]
names='select count(*) || md5(string_agg(name, $$,$$ order by id)) from "myfirstmodule$customer"'
check "... the rest as in the backup" [ "$(sql_copy "$names")" = "$(sql_app "$names")" ]

run "example small_attachments: backup" 0 backup -n mendix -e demo-app -f "$work/small.tar.gz" \
  --hooks "$examples/small_attachments.lua"
want=$(files_where "submetaobjectname = 'MyFirstModule.Attachment' and size < 10 * 1024 * 1024")
check "... only the attachments under 10 MiB ($(wc -l <<<"$want"))" [ "$(archive_uuids "$work/small.tar.gz")" = "$want" ]

mkdir "$work/webhook"
python3 "$src/tests/e2e/webhook_server.py" "$work/webhook" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do [ -e "$work/webhook/port" ] && break; sleep 0.1; done
MXPC_WEBHOOK_URL=http://127.0.0.1:$(cat "$work/webhook/port")/backups \
  run "example webhook: backup" 0 backup -n mendix -e demo-app -f "$work/hook.tar.gz" --hooks "$examples/webhook.lua"
check "... POSTed one JSON summary" python3 - "$work/webhook/requests.jsonl" "$work/hook.tar.gz" "$total" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert len(reqs) == 1, reqs
r = reqs[0]
assert (r["method"], r["path"], r["headers"]["Content-Type"]) == ("POST", "/backups", "application/json"), r
s = json.loads(r["body"])
assert s["event"] == "backup" and s["environment"] == "demo-app" and s["namespace"] == "mendix", s
assert s["file"] == sys.argv[2] and s["files"] == int(sys.argv[3]) and s["database_bytes"] > 0, s
PY
MXPC_WEBHOOK_URL=http://127.0.0.1:1/backups \
  run "... a webhook that does not answer is a warning" 0 backup -n mendix -e demo-app -f "$work/hook2.tar.gz" \
  --hooks "$examples/webhook.lua"
expect_err "... saying so" "warn: the webhook failed"

run "example refuse_backup: a good database is backed up" 0 backup -n mendix -e demo-app -f "$work/checked.tar.gz" \
  --hooks "$examples/refuse_backup.lua"
sql_app 'delete from "myfirstmodule$order_customer" where "myfirstmodule$orderid" = (select min(id) from "myfirstmodule$order")' >/dev/null
run "... a failing check refuses the backup" 1 backup -n mendix -e demo-app -f "$work/refused.tar.gz" \
  --hooks "$examples/refuse_backup.lua"
expect_err "... naming the check" 'backup refused: the check "every order has a customer" failed'
check "... and writes nothing" [ ! -e "$work/refused.tar.gz" ]
grep -q "dumping the database" "$work/err" && bad "... before any work" || ok "... before any work"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
