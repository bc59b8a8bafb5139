#!/usr/bin/env bash
# End to end on the local stack: back up demo-app, restore it into demo-copy,
# and prove the copy holds the same tables, sequences and files; plus the ways
# it must refuse or fail without damage. Needs MXPC_STACK_ENV; reseeds the
# namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
trap 'rm -rf "$work"; reseed >/dev/null' EXIT

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

if proof; then bad "the proof tells a fresh demo-copy from demo-app"; else ok "the proof tells a fresh demo-copy from demo-app"; fi

run "backup demo-app" 0 backup -n mendix -e demo-app -f "$work/demo.tar.gz"
grep -q "20 files" "$work/out" && ok "backup reports its 20 files" || bad "backup reports its 20 files"
run "the archive verifies" 0 verify "$work/demo.tar.gz"
[ "$(stat -c %a "$work/demo.tar.gz")" = 600 ] && ok "archive mode 0600" || bad "archive mode 0600"
ls -A "$work" | grep -q '^\.' && bad "no temporary files left beside the archive" || ok "no temporary files left beside the archive"

run "backup refuses to overwrite" 1 backup -n mendix -e demo-app -f "$work/demo.tar.gz"
expect_err "... and says how to replace it" "already exists"
run "backup --force replaces" 0 backup -n mendix -e demo-app -f "$work/demo.tar.gz" --force

run "restore refuses a running app" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz"
expect_err "... and names --stop-app" "stop-app"
if proof; then bad "nothing changed after the refusal"; else ok "nothing changed after the refusal"; fi

# a damaged archive is refused before anything is written
head -c 100000 "$work/demo.tar.gz" > "$work/cut.tar.gz"
run "restore refuses a truncated archive" 1 restore -n mendix -e demo-copy -f "$work/cut.tar.gz" --stop-app
expect_err "... naming the problem" "truncated"
[ "$(replicas)" = 1 ] && ok "... without stopping the app" || bad "... without stopping the app"

# a restore that fails inside the database (here: an event trigger refuses
# the first CREATE TABLE, after the old tables were dropped) leaves it as it was
sql() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_copy -c "$1"; }
sql "create schema blocker; create function blocker.refuse() returns event_trigger language plpgsql as
  \$\$ begin if tg_tag = 'CREATE TABLE' then raise exception 'refused by a test trigger'; end if; end \$\$;
  create event trigger refuse_restore on ddl_command_end execute function blocker.refuse();" >/dev/null
before=$(sql 'select count(*) from "myfirstmodule$order"')
run "a failing database restore exits 1" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
expect_err "... names the cause" "refused by a test trigger"
expect_err "... and says the database was left as it was" "left as it was"
after=$(sql 'select count(*) from "myfirstmodule$order"')
[ "$before" = "$after" ] && [ "$before" != 100 ] && ok "... and it was ($after orders)" || bad "database unchanged ($before -> $after)"
[ "$(replicas)" = 1 ] && ok "... and the app was started again" || bad "app started again after the failure"
sql "drop event trigger refuse_restore; drop schema blocker cascade" >/dev/null

# pg_restore dying halfway: psql must not commit the part it got
mkdir "$work/bin"
real=$(command -v pg_restore)
# (it stops before the third CREATE TABLE: what it wrote is complete SQL)
printf '#!/bin/sh\n%s "$@" | awk '"'"'/^CREATE TABLE/ { n++ } n < 3'"'"'\necho "pg_restore: error: simulated failure" >&2\nexit 1\n' "$real" > "$work/bin/pg_restore"
chmod +x "$work/bin/pg_restore"
ln -s "$(command -v psql)" "$work/bin/psql"
before=$(sql 'select count(*) from "myfirstmodule$order"')
MXPC_PG_BINDIR=$work/bin run "a pg_restore that dies halfway fails the restore" 1 \
  restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
expect_err "... with pg_restore's message" "simulated failure"
[ "$(sql 'select count(*) from "myfirstmodule$order"')" = "$before" ] && [ "$(sql "select count(*) from pg_tables where schemaname = 'public'")" = 8 ] \
  && ok "... and nothing of it was committed" || bad "partial restore committed"

run "restore --stop-app into demo-copy" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
[ "$(replicas)" = 1 ] && ok "the app runs again afterwards" || bad "the app runs again afterwards"
if proof; then ok "demo-copy holds demo-app's tables, sequences and files"; else bad "proof"; cat "$work/proof"; fi

# archives as Mendix Cloud and older versions make them: built with GNU tar,
# flat tree/ (v4), and a bare database-only dump
mkdir "$work/x" && tar -xzf "$work/demo.tar.gz" -C "$work/x"
(cd "$work/x" && mkdir flat && for f in tree/*/*/*; do mv "$f" flat/; done && rm -r tree && mv flat tree \
  && tar -czf "$work/flat.tar.gz" .metadata db tree)
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore an archive with a flat tree/, made by GNU tar" 0 restore -n mendix -e demo-copy -f "$work/flat.tar.gz" --stop-app
if proof; then ok "... and demo-copy holds demo-app's data"; else bad "proof after the flat archive"; cat "$work/proof"; fi
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
cp "$work/x/db/db.backup" "$work/database-only.backup"
run "restore a database-only .backup" 0 restore -n mendix -e demo-copy -f "$work/database-only.backup" --stop-app
grep -q "0 files" "$work/out" && ok "... which restores no files" || bad "... which restores no files"
[ "$(sql 'select count(*) from "myfirstmodule$order"')" = 100 ] && ok "... but the database" || bad "... but the database"

# one part at a time: the database only, then the files only
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "backup --database-only writes a bare dump" 0 backup -n mendix -e demo-app -f "$work/db-only.backup" --database-only
[ "$(head -c 5 "$work/db-only.backup")" = PGDMP ] && [ "$(stat -c %a "$work/db-only.backup")" = 600 ] \
  && ok "... starting with PGDMP, mode 0600" || bad "... starting with PGDMP, mode 0600"
run "restore --database-only from a full archive" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app --database-only
grep -q "database, 0 files" "$work/out" && ok "... restores no files" || bad "... restores no files"
if proof; then bad "the files are not there yet"; else grep -q "^files: 0 of 20" "$work/proof" && ok "the files are not there yet" || bad "the files are not there yet"; fi
run "restore --files-only" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app --files-only
grep -q "demo-copy: 20 files" "$work/out" && ok "... restores the 20 files and not the database" || bad "... restores the files only"
if proof; then ok "both parts restored separately make the whole"; else bad "both parts"; cat "$work/proof"; fi
run "restore --files-only of a database-only backup is refused" 2 restore -n mendix -e demo-copy -f "$work/db-only.backup" --files-only
expect_err "... saying why" "no files to restore"

# demo-https keeps its files behind https with the stack's own CA
SSL_CERT_FILE= SSL_CERT_DIR= run "backup over https without the CA fails" 1 backup -n mendix -e demo-https -f "$work/https.tar.gz"
expect_err "... pointing at SSL_CERT_FILE" "SSL_CERT_FILE"
grep -q "dumping the database" "$work/err" && bad "... before the database dump" || ok "... before the database dump"
SSL_CERT_FILE=$MXPC_S3_CA run "backup over https with SSL_CERT_FILE" 0 backup -n mendix -e demo-https -f "$work/https.tar.gz"
SSL_CERT_DIR=$MXPC_S3_CA_DIR run "backup over https with SSL_CERT_DIR" 0 backup -n mendix -e demo-https -f "$work/https.tar.gz" --force
grep -q "2 files" "$work/out" && ok "... with its 2 files" || bad "... with its 2 files"

# with exactly the seed's RBAC (get on secrets, mendixapps, storageinstances)
run "backup with only the seed's permissions" 0 backup -n mendix -e demo-app -f "$work/rbac.tar.gz" \
  --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
run "restore --stop-app without patch permission is refused" 1 restore -n mendix -e demo-copy -f "$work/rbac.tar.gz" \
  --stop-app --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
expect_err "... naming the rule to add" 'resources: \["mendixapps"\], verbs: \["patch"\]'
run "restore --stop-app with patch on mendixapps and list on pods" 0 restore -n mendix -e demo-copy \
  -f "$work/rbac.tar.gz" --stop-app --kubeconfig "$MXPC_KUBECONFIG_SCALE"

# no credential ever printed, at any log level
"$bin" -vv backup -n mendix -e demo-app -f "$work/v.tar.gz" >"$work/out" 2>"$work/err"
secrets=$(python3 -c "
import json; d = json.load(open('$seed_json'))
print('\n'.join(e['database']['password'] for e in d['environments'].values()))")
leaked=0
for s in $secrets "$MXPC_S3_SECRET_KEY"; do grep -qF "$s" "$work/out" "$work/err" && leaked=1; done
[ $leaked = 0 ] && ok "no password or secret key in the output" || bad "a secret was printed"

# a file that disappeared is reported, the backup still completes
key=$(python3 -c "import json; d = json.load(open('$seed_json')); print(d['environments']['demo-app']['files'][0]['key'])")
"$bin" run /dev/stdin <<LUA >/dev/null 2>&1
local s3 = require "mxpc.s3"
local c = assert(s3.client{endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true})
assert(c:delete("mendix-shared", "$key"))
LUA
run "backup with a missing file completes" 0 backup -n mendix -e demo-app -f "$work/missing.tar.gz"
expect_err "... and warns about it" "file not found in storage, skipped"
grep -q "19 files" "$work/out" && grep -q "1 missing" "$work/out" && ok "... and counts it" || bad "missing file counted"

finish
