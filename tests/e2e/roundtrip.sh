#!/usr/bin/env bash
# End to end on the local stack: back up demo-app, restore it into demo-copy,
# and prove the copy holds the same tables, sequences and files; plus the ways
# it must refuse or fail without damage. Needs MXPC_STACK_ENV; reseeds the
# namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
trap 'rm -rf "$work"; [ -n "${MXPC_K8S_FAULT_FILE:-}" ] && printf "{\"seconds\": 0}\n" >"$MXPC_K8S_FAULT_FILE"; reseed >/dev/null' EXIT

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

if proof; then bad "the proof tells a fresh demo-copy from demo-app"; else ok "the proof tells a fresh demo-copy from demo-app"; fi

run "backup demo-app" 0 backup -n mendix -e demo-app -f "$work/demo.tar.gz"
grep -q "20 files" "$work/out" && ok "backup reports its 20 files" || bad "backup reports its 20 files"
run "the archive verifies" 0 verify "$work/demo.tar.gz"
[ "$(stat -c %a "$work/demo.tar.gz")" = 600 ] && ok "archive mode 0600" || bad "archive mode 0600"
ls -A "$work" | grep -q '^\.' && bad "no temporary files left beside the archive" || ok "no temporary files left beside the archive"

run "backup refuses to overwrite" 1 backup -n mendix -e demo-app -f "$work/demo.tar.gz"
expect_err "... and says how to replace it" "already exists"
tar_size=$(gzip -dc "$work/demo.tar.gz" | wc -c)
gz6=$(stat -c %s "$work/demo.tar.gz")
run "backup --force --compression-level 0 replaces" 0 backup -n mendix -e demo-app -f "$work/demo.tar.gz" --force --compression-level 0
gz0=$(stat -c %s "$work/demo.tar.gz")
# the tar's headers and padding shrink at the default level; level 0 stores everything
[ "$gz6" -lt "$tar_size" ] && [ "$gz0" -gt "$tar_size" ] && ok "--compression-level reaches the archive ($gz6 < $tar_size < $gz0 bytes)" \
  || bad "--compression-level reaches the archive (default $gz6, tar $tar_size, level 0 $gz0 bytes)"

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

# pg_restore dying halfway: nothing of what it wrote may be committed
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

# a missing pg_restore (or pg_dump) is found before anything is stopped, uploaded or written
mkdir "$work/nopsql"
ln -s "$(command -v psql)" "$work/nopsql/psql"
MXPC_PG_BINDIR=$work/nopsql run "restore without pg_restore is refused" 1 \
  restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
expect_err "... naming pg_restore and where it was looked for" "pg_restore not found in MXPC_PG_BINDIR \($work/nopsql\)"
expect_err "... with a hint" "postgresql-client"
grep -qE "stopping the app|uploading|checking the archive" "$work/err" && bad "... before any change" || ok "... before any change"
[ "$(replicas)" = 1 ] && ok "... the app still runs" || bad "... the app still runs"
MXPC_PG_BINDIR=$work/nopsql run "backup without pg_dump is refused" 1 backup -n mendix -e demo-app -f "$work/nodump.tar.gz"
expect_err "... naming pg_dump" "pg_dump not found in MXPC_PG_BINDIR"
grep -q "resolving" "$work/err" && bad "... before any work" || ok "... before any work"

run "restore --stop-app into demo-copy" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
[ "$(replicas)" = 1 ] && ok "the app runs again afterwards" || bad "the app runs again afterwards"
# the check keeps the dump and the files for the restore when the files are
# few and small against the dump (KEEP_FILES*, set here by edited scripts:
# the demo's dump is small), and the archive is read once; with more files
# the kept ones are dropped and the files read again
"$bin" scripts export "$work/keep" >/dev/null
sed -i '1i require("mxpc.workflow").KEEP_FILES_SHARE = 1000' "$work/keep/scripts/restore.lua"
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore with the files kept by the check" 0 --scripts "$work/keep" restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --stop-app
grep -q "reading the archive again" "$work/err" && bad "... reads the archive once" || ok "... reads the archive once"
if proof; then ok "... and demo-copy holds demo-app's data"; else bad "proof after the restore"; cat "$work/proof"; fi
cp -r "$work/keep" "$work/keep-share" # (the files' share only)
sed -i '1i require("mxpc.workflow").KEEP_FILES = 5' "$work/keep/scripts/restore.lua"
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore with more files than the check keeps" 0 --scripts "$work/keep" restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --stop-app
expect_err "... reads the archive again for them" "reading the archive again files=20 why=.more than 5 files"
ls -A "$work" | grep -q "^\.mxpc-work" && bad "... no working directory left" || ok "... no working directory left"
if proof; then ok "... and demo-copy holds demo-app's data"; else bad "proof after reading again"; cat "$work/proof"; fi
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore with the stock scripts (the demo's files are large against its dump)" 0 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --stop-app
expect_err "... reads the archive again for them" "reading the archive again files=20 why=.more than [0-9]+ bytes of files \(0.25 of the dump's size\)"
if proof; then ok "... and demo-copy holds demo-app's data"; else bad "proof after the stock restore"; cat "$work/proof"; fi

# the Kubernetes API down when the app is to start again: a short outage is
# waited out; after a long one the app is left stopped, and the error says so
# and how to start it (the emulator's outage starts with that PATCH)
[ -n "${MXPC_K8S_FAULT_FILE:-}" ] || bad "env.sh names MXPC_K8S_FAULT_FILE (restart the stack)"
outage() { printf '{"mode": "%s", "seconds": %s, "match": "PATCH .*/mendixapps/demo-copy .*\\"replicas\\": ?[1-9]"}\n' \
  "$1" "$2" >"$MXPC_K8S_FAULT_FILE"; }
for mode in 503 drop; do
  outage $mode 2
  run "an API outage ($mode) of 2 s when starting the app again is waited out" 0 \
    restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
  [ ! -e "$MXPC_K8S_FAULT_FILE" ] && ok "... (the outage happened)" || bad "... (the outage happened)"
  expect_err "... retrying" "could not start the app again.*retrying"
  grep -q "^restored " "$work/out" && ok "... success line" || bad "... success line"
  [ "$(replicas)" = 1 ] && ok "... and the app runs" || bad "... and the app runs"
done
outage 503 60
t0=$SECONDS
run "an API outage of a minute: exit 1" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
took=$((SECONDS - t0))
[ $took -ge 25 ] && [ $took -le 50 ] && ok "... after retrying about 30 s ($took s)" || bad "... after retrying about 30 s ($took s)"
[ ! -s "$work/out" ] && ok "... no success line" || bad "... no success line"
expect_err "... saying the app is left stopped" "error: .*demo-copy is left stopped"
expect_err "... with the command to start it" \
  "hint: .*kubectl -n mendix patch mendixapp demo-copy --type merge -p '\{\"spec\":\{\"replicas\":1\}\}'"
grep -c "left stopped" "$work/err" | grep -qx 1 && ok "... once" || bad "... once"
printf '{"seconds": 0}\n' >"$MXPC_K8S_FAULT_FILE" # the API answers again
[ "$(replicas)" = 0 ] && ok "... and it is stopped" || bad "... and it is stopped"
start=$(sed -n "s/^hint: .*\(kubectl -n mendix patch [^;]*'\).*/\1/p" "$work/err")
eval "$start" >/dev/null && [ "$(replicas)" = 1 ] && ok "... the command in the hint starts it" || bad "the hint's command: $start"
rm -f "$MXPC_K8S_FAULT_FILE"
if proof; then ok "demo-copy holds demo-app's tables, sequences and files"; else bad "proof"; cat "$work/proof"; fi

# archives as Mendix Cloud and older versions make them: built with GNU tar,
# flat tree/ (v4), and a bare database-only dump
mkdir "$work/x" && tar -xzf "$work/demo.tar.gz" -C "$work/x"
(cd "$work/x" && mkdir flat && for f in tree/*/*/*; do mv "$f" flat/; done && rm -r tree && mv flat tree \
  && tar -czf "$work/flat.tar.gz" .metadata db tree)
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore an archive with a flat tree/, made by GNU tar" 0 restore -n mendix -e demo-copy -f "$work/flat.tar.gz" --stop-app
if proof; then ok "... and demo-copy holds demo-app's data"; else bad "proof after the flat archive"; cat "$work/proof"; fi
# the files before the dump (tar of a directory lists it in any order): the
# check cannot keep them all, so it keeps none and the files are read again
(cd "$work/x" && tar -czf "$work/late.tar.gz" .metadata tree db)
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null
run "restore an archive whose files come before its dump" 0 --scripts "$work/keep-share" restore -n mendix \
  -e demo-copy -f "$work/late.tar.gz" --stop-app
expect_err "... reads the archive again for the files" "reading the archive again files=20 why=.files before the dump"
grep -q "demo-copy: database, 20 files" "$work/out" && ok "... restores the 20 files" || bad "... restores the 20 files"
if proof; then ok "... and demo-copy holds demo-app's data"; else bad "proof after files before the dump"; cat "$work/proof"; fi
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
mkdir "$work/strict"
run "backup --strict with a missing file fails" 1 backup -n mendix -e demo-app -f "$work/strict/all.tar.gz" --strict
expect_err "... naming the file" "^error: file [0-9a-f-]+ is missing from storage \(.*\): --strict makes that an error$"
[ -z "$(ls -A "$work/strict")" ] && ok "... and writes nothing" || bad "... and writes nothing: $(ls -A "$work/strict")"

# the sizes come from system$filedocument.size, checked against each GET:
# a size that differs fails the whole backup, with nothing left behind
sql_app() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_TLS_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_app -c "$1"; }
bad_uuid=$(python3 -c "import json; d = json.load(open('$seed_json')); print(d['environments']['demo-app']['files'][3]['uuid'])")
sql_app "update \"system\$filedocument\" set size = size + 1 where __uuid__ = '$bad_uuid'" >/dev/null
mkdir "$work/sizes"
run "a file whose size differs from the database's fails the backup" 1 backup -n mendix -e demo-app \
  -f "$work/sizes/bad.tar.gz" --concurrency 4
expect_err "... naming the file and both sizes" "$bad_uuid.*expected"
[ -z "$(ls -A "$work/sizes")" ] && ok "... and leaves nothing behind" || bad "... and leaves nothing behind: $(ls -A "$work/sizes")"

# without a size column the sizes are asked with HEAD requests (the missing
# file is still missing)
sql_app 'alter table "system$filedocument" drop column size' >/dev/null
run "backup of a database without system\$filedocument.size" 0 backup -n mendix -e demo-app -f "$work/heads.tar.gz" --concurrency 3 --window 1
grep -q "19 files" "$work/out" && grep -q "1 missing" "$work/out" && ok "... finds the sizes and the missing file" || bad "sizes by HEAD"
run "... --strict: the missing file found by HEAD fails it" 1 backup -n mendix -e demo-app -f "$work/strict/heads.tar.gz" --strict
expect_err "... naming the file" "^error: file [0-9a-f-]+ is missing from storage \(.*\): --strict makes that an error$"
[ -z "$(ls -A "$work/strict")" ] && ok "... and writes nothing" || bad "... and writes nothing: $(ls -A "$work/strict")"
run "... and the archive verifies" 0 verify "$work/heads.tar.gz"

# an S3 endpoint holding user:password@ is refused with one line and a hint, no Lua
# source position (only --debug shows where), no password
hostport=${MXPC_S3_ENDPOINT#http://}
endpoint=$(printf 'http://someone:hunter22@%s/mendix-shared' "$hostport" | base64 -w0)
kubectl -n mendix patch secret demo-app-file-credentials -p "{\"data\":{\"storage-endpoint\":\"$endpoint\"}}" >/dev/null
run "an endpoint with user:password@ is refused" 1 backup -n mendix -e demo-app -f "$work/userinfo.tar.gz"
expect_err "... saying why" "^error: S3 endpoint http://someone:\*\*\*@$hostport holds a user name and password$"
expect_err "... with a hint" "^hint: write it as https://host"
grep -qE "\.lua:[0-9]+:|hunter22" "$work/err" && bad "... no source position, no password" || ok "... no source position, no password"
[ -e "$work/userinfo.tar.gz" ] && bad "... and no archive" || ok "... and no archive"
run "--debug shows where" 1 --debug backup -n mendix -e demo-app -f "$work/userinfo.tar.gz"
expect_err "... in a traceback" "storage\.lua:[0-9]+: in"

finish
