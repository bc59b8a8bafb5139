#!/usr/bin/env bash
# End to end on the local stack: backup/restore --dry-run change nothing
# (database, bucket, replicas) and say why a run would not start; restore
# --safety-backup and --delete-extra-files. Needs MXPC_STACK_ENV; reseeds the
# namespace before and after.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh" "$@"
trap 'rm -rf "$work"; reseed >/dev/null' EXIT
# a failure shows the ends of stderr and stdout
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$work/err" ] && sed 's/^/  /' "$work/err" | tail -5; [ -f "$work/out" ] && sed 's/^/  /' "$work/out" | tail -12; }
expect_out() { if grep -qE "$2" "$work/out"; then ok "$1"; else bad "$1: stdout has no /$2/"; fi; }

# What a run may change: demo-copy's database (all of it, as pg_dump sees it),
# its bucket (key, size, ETag of every object) and its MendixApp's replicas.
fingerprint() {
  PGPASSWORD=$MXPC_PG_SUPERPASS "$MXPC_PG_BINDIR/pg_dump" -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" \
    -d demo_copy | grep -Ev '^(--|\\(un)?restrict )' | md5sum | cut -d' ' -f1
}
listing() {
  "$bin" run /dev/stdin <<'LUA'
local s3 = require "mxpc.s3"
local c = assert(s3.client{endpoint = os.getenv("MXPC_S3_ENDPOINT"), access_key = os.getenv("MXPC_S3_ACCESS_KEY"),
  secret_key = os.getenv("MXPC_S3_SECRET_KEY"), region = "us-east-1", path_style = true})
for _, o in ipairs(assert(c:list("demo-copy-files", ""))) do print(o.key, o.size, o.etag) end
LUA
}
replicas() { kubectl -n mendix get mendixapp demo-copy -o jsonpath='{.spec.replicas}'; }
state() { printf '%s\n%s\n' "$(fingerprint)" "$(replicas)"; listing; }
unchanged() {
  state >"$work/state.now"
  if cmp -s "$work/state.before" "$work/state.now"; then ok "$1: database, bucket and replicas unchanged"
  else bad "$1: something changed"; diff "$work/state.before" "$work/state.now" | head -10; fi
}

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }
run "backup demo-app" 0 backup -n mendix -e demo-app -f "$work/demo.tar.gz"
archive_keys=$(tar -tzf "$work/demo.tar.gz" | sed -n 's|^tree/../../\(.*\)$|\1|p' | sort)
[ "$(echo "$archive_keys" | wc -l)" = 20 ] && ok "the archive holds 20 files" || bad "the archive holds 20 files"
state >"$work/state.before"
[ "$(sed -n 2p "$work/state.before")" = 1 ] && ok "demo-copy runs (1 replica)" || bad "demo-copy runs"
extra_before=$(($(listing | wc -l)))
[ "$extra_before" -gt 0 ] && ok "demo-copy's bucket has $extra_before objects" || bad "demo-copy's bucket has objects"

# ---- backup --dry-run
run "backup --dry-run" 0 backup -n mendix -e demo-app -f "$work/dry.tar.gz" --dry-run
expect_out "... says what it would write" "would write the database and 20 files \([0-9]+ bytes\)"
expect_out "... the database's size" "database: answers, [0-9]+ bytes"
expect_out "... the permissions it asked" "may get mendixapps, get storageinstances, get secrets"
expect_out "... and that the real run would start" "^the real run would start"
[ ! -e "$work/dry.tar.gz" ] && [ -z "$(ls -A "$work" | grep '^\.mxpc-work')" ] && ok "... writes no archive and no working directory" \
  || bad "... writes no archive"
run "backup --dry-run into an existing file" 1 backup -n mendix -e demo-app -f "$work/demo.tar.gz" --dry-run
expect_out "... gives the reason" "^  - .*demo.tar.gz already exists"
# with JSON logs the plan is an event on stderr as well
dry_event() {  # dry_event PYTHON-CONDITION: the dry_run event of $work/err satisfies it
  python3 -c 'import json, sys
e = [j for j in map(json.loads, open(sys.argv[1])) if j.get("event") == "dry_run"]
sys.exit(0 if len(e) == 1 and eval(sys.argv[2], {"e": e[0]}) else 1)' "$work/err" "$1"
}
run "backup --dry-run --log-format json" 0 --log-format json backup -n mendix -e demo-app -f "$work/dry.tar.gz" --dry-run
dry_event 'e["would_start"] is True and e["reasons"] == 0 and "would write the database and 20 files" in e["plan"]' \
  && ok "... the plan is a dry_run event" || bad "... the plan is a dry_run event"
run "backup --dry-run --log-format json into an existing file" 1 --log-format json backup -n mendix -e demo-app \
  -f "$work/demo.tar.gz" --dry-run
dry_event 'e["would_start"] is False and e["reasons"] == 1 and "already exists" in e["why"] and "hint:" in e["why"]' \
  && ok "... saying why it would not start" || bad "... saying why it would not start"

# ---- restore --dry-run
run "restore --dry-run of a running app without --stop-app: exit 1" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --dry-run
expect_out "... with the reason" "^  - environment mendix/demo-copy is running"
unchanged "restore --dry-run"
run "restore --dry-run --stop-app --delete-extra-files --safety-backup" 0 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --dry-run --stop-app --delete-extra-files --safety-backup "$work/safety-dry.tar.gz"
expect_out "... would stop the app" "would stop the app \(1 replicas"
expect_out "... asks for the --stop-app verbs" "may patch mendixapps, list pods"
expect_out "... counts overwritten and new objects" "would upload 20 files \([0-9]+ bytes\): 0 overwrite objects there, 20 are new"
expect_out "... and the objects the archive lacks" "^  $extra_before files in storage are not in the archive: --delete-extra-files would delete them"
expect_out "... names the safety backup" "would first write a safety backup to $work/safety-dry.tar.gz"
[ ! -e "$work/safety-dry.tar.gz" ] && ok "... writes no safety backup" || bad "... writes no safety backup"
unchanged "restore --dry-run --stop-app --delete-extra-files"
grep -q "stopping the app\|uploading" "$work/err" && bad "... logs no change" || ok "... logs no change"

# a refused verb: the restricted user may not scale the app
run "restore --dry-run --stop-app as a user without patch/list: exit 1" 1 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --dry-run --stop-app --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
expect_out "... names patch on mendixapps" 'may not patch mendixapps.privatecloud.mendix.com in namespace "mendix" \(--stop-app\)'
expect_out "... and list on pods" 'may not list pods in namespace "mendix"'
expect_out "... with the RBAC rule" 'hint: the user of context "[^"]*" needs a Role in namespace "mendix" with the rule \{apiGroups: \[""\], resources: \["pods"\], verbs: \["list"\]\}, bound to it by a RoleBinding \(the whole Role: docs/jump-pod.md#permissions\)$'
expect_out "... two reasons" "would not start \(2 reasons\)"
unchanged "a refused dry run"
# a misspelt namespace is refused like a missing permission: the hint says to check it first
run "backup --dry-run in a misspelt namespace, as a restricted user: exit 1" 1 backup -n mendixx -e demo-app \
  -f "$work/never.tar.gz" --dry-run --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
expect_out "... says to check the namespace first" 'hint: check the namespace "mendixx" first \(one that does not exist is refused the same way\); if it is right, the user'
run "backup in a misspelt namespace, as a restricted user: exit 1" 1 backup -n mendixx -e demo-app \
  -f "$work/never.tar.gz" --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
expect_err "... says to check the namespace first" '^hint: check the namespace "mendixx" first'
run "backup in a namespace that does not exist, as a user who may see that: exit 1" 1 backup -n mendixx -e demo-app \
  -f "$work/never.tar.gz"
expect_err "... says so" 'not found|does not exist'
# ... which a stopped app does not need: --stop-app leaves it alone
kubectl -n mendix patch mendixapp demo-copy --type merge -p '{"spec":{"replicas":0}}' >/dev/null
run "restore --dry-run --stop-app of a stopped app as that user: exit 0" 0 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --dry-run --stop-app --kubeconfig "$MXPC_KUBECONFIG_RESTRICTED"
expect_out "... says the app is stopped" "^  the app is stopped$"
kubectl -n mendix patch mendixapp demo-copy --type merge -p '{"spec":{"replicas":1}}' >/dev/null
run "backup --dry-run as a user without any rights: exit 1" 1 backup -n mendix -e demo-app -f "$work/x.tar.gz" \
  --dry-run --kubeconfig "$MXPC_KUBECONFIG_NOBODY"
expect_out "... names get secrets" 'may not get secrets in namespace "mendix"'

# an unreachable database: the Secret points at a closed port
kubectl -n mendix get secret demo-copy-database-credentials -o json | python3 -c '
import base64, json, sys
s = json.load(sys.stdin)
c = base64.b64decode(s["data"]["config"]).decode().replace(":'"$MXPC_PG_PLAIN_PORT"'", ":1")
print(json.dumps({"data": {"config": base64.b64encode(c.encode()).decode()}}))' >"$work/patch.json"
kubectl -n mendix patch secret demo-copy-database-credentials --type merge --patch-file "$work/patch.json" >/dev/null \
  && ok "the database Secret points at port 1" || bad "patching the Secret"
run "restore --dry-run with the database unreachable: exit 1" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" \
  --dry-run --stop-app
expect_out "... with the reason" "^  - .*127\.0\.0\.1.*1.*(refused|connect)"
expect_out "... and still checks the storage" "would upload 20 files"
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || bad "reseeding"
state >"$work/state.before"

touch "$work/demo.tar.gz.copy"
run "restore --dry-run --safety-backup of an existing file: exit 1" 1 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --dry-run --stop-app --safety-backup "$work/demo.tar.gz.copy"
expect_out "... never replaced" "^  - --safety-backup: .*demo.tar.gz.copy already exists"
rm "$work/demo.tar.gz.copy"

# ---- restore --safety-backup
mkdir "$work/bin"
ln -s "$MXPC_PG_BINDIR/pg_restore" "$work/bin/pg_restore"
ln -s "$MXPC_PG_BINDIR/psql" "$work/bin/psql"
printf '#!/bin/sh\necho "pg_dump: error: simulated failure" >&2\nexit 1\n' >"$work/bin/pg_dump"
chmod +x "$work/bin/pg_dump"
MXPC_PG_BINDIR=$work/bin run "a failing safety backup fails the restore" 1 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --stop-app --safety-backup "$work/safety.tar.gz"
expect_err "... saying nothing was restored" "error: the safety backup failed, nothing was restored: .*simulated failure"
[ ! -e "$work/safety.tar.gz" ] && ok "... leaves no safety backup" || bad "... leaves no safety backup"
unchanged "a failed safety backup"
run "restore --safety-backup into a missing directory is refused first" 1 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --stop-app --safety-backup "$work/no/such/dir/s.tar.gz"
expect_err "... naming it" "error: --safety-backup: cannot write .*: the directory $work/no/such/dir does not exist"
grep -q "stopping the app" "$work/err" && bad "... before the app is stopped" || ok "... before the app is stopped"

run "restore --stop-app --safety-backup" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app \
  --safety-backup "$work/safety.tar.gz"
expect_out "... the backup's own line" "^backup of mendix/demo-copy written to $work/safety.tar.gz"
expect_out "... and the restore names it" "^restored .*; safety backup in $work/safety.tar.gz$"
run "... the safety backup verifies" 0 verify "$work/safety.tar.gz"
# restoring the safety backup gives back the database as it was
run "... and restores what was there" 0 restore -n mendix -e demo-copy -f "$work/safety.tar.gz" --stop-app
[ "$(fingerprint)" = "$(sed -n 1p "$work/state.before")" ] && ok "... the database as it was" || bad "... the database as it was"

# ---- restore --delete-extra-files
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || bad "reseeding"
run "restore without --delete-extra-files" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
n=$(listing | wc -l)
[ "$n" = $((20 + extra_before)) ] && ok "... the objects the archive lacks stay ($n objects)" || bad "... extras stay ($n objects)"
run "restore --delete-extra-files" 0 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app --delete-extra-files
expect_out "... says how many it deleted" "20 files \([0-9]+ bytes\), $extra_before files the archive lacks deleted"
[ "$(listing | cut -f1 | sort)" = "$archive_keys" ] && ok "... the bucket holds exactly the archive's files" \
  || bad "... the bucket holds exactly the archive's files: $(listing | wc -l) objects"
if "$bin" run "$src/tests/e2e/proof.lua" "$MXPC_STACK_DIR/seed.json" demo-app demo-copy >"$work/proof" 2>&1; then
  ok "... and the proof holds"; else bad "proof"; cat "$work/proof"; fi

# a failed restore deletes nothing: the database restore fails (an event trigger)
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || bad "reseeding"
sql() { PGOPTIONS="-c client_min_messages=warning" PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" -d demo_copy -c "$1"; }
sql "create schema blocker; create function blocker.refuse() returns event_trigger language plpgsql as
  \$\$ begin if tg_tag = 'CREATE TABLE' then raise exception 'refused by a test trigger'; end if; end \$\$;
  create event trigger refuse_restore on ddl_command_end execute function blocker.refuse();" >/dev/null
run "a failing restore with --delete-extra-files" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app \
  --delete-extra-files
n=$(listing | wc -l)
[ "$n" = $((20 + extra_before)) ] && ok "... deletes nothing ($n objects)" || bad "... deletes nothing ($n objects)"
grep -q "deleting the files" "$work/err" && bad "... not even tried" || ok "... not even tried"
sql "drop event trigger refuse_restore; drop schema blocker cascade" >/dev/null

# deleting refused (a bucket policy denies s3:DeleteObject): the restore is complete, the error says so
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || bad "reseeding"
bucket_policy() {
  PYTHONPATH=$src/tests/stack python3 -c '
import json, os, sys
from stacklib import S3
s3 = S3(os.environ["MXPC_S3_ENDPOINT"], os.environ["MXPC_S3_ACCESS_KEY"], os.environ["MXPC_S3_SECRET_KEY"])
deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam:::user/mxpc"]},
  "Action": ["s3:DeleteObject"], "Resource": ["arn:aws:s3:::demo-copy-files/*"]}]}
if sys.argv[1] == "deny":
    s3.request("PUT", "demo-copy-files", query=[("policy", "")], body=json.dumps(deny).encode())
else:
    s3.request("DELETE", "demo-copy-files", query=[("policy", "")])' "$1"
}
bucket_policy deny && ok "a bucket policy denies s3:DeleteObject" || bad "a bucket policy denies s3:DeleteObject"
run "restore --delete-extra-files when deleting is refused: exit 1" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" \
  --stop-app --delete-extra-files
expect_err "... the restore is complete, deleting stopped" \
  "error: the restore is complete, but deleting the files the archive lacks stopped after 0 of $extra_before: access denied"
[ "$(replicas)" = 1 ] && ok "... the app was started again" || bad "... the app was started again"
bucket_policy allow
if "$bin" run "$src/tests/e2e/proof.lua" "$MXPC_STACK_DIR/seed.json" demo-app demo-copy >"$work/proof" 2>&1; then
  ok "... and the restore holds"; else bad "proof after a refused delete"; cat "$work/proof"; fi

# a check added to an edited script is part of its dry run (the dry run is the script)
"$bin" scripts export "$work/edited" >/dev/null 2>&1 || bad "scripts export"
python3 - "$work/edited/scripts/backup.lua" <<'PY' || bad "editing the exported backup.lua"
import sys
p = sys.argv[1]; s = open(p).read()
anchor = "local env = plan:check(wf.resolve(opts))\n"
assert anchor in s, "backup.lua has no resolve line"
s = s.replace(anchor, anchor + 'plan:check(nil, "the site check of this copy refuses it")\n')
open(p, "w").write(s)
PY
run "backup --dry-run with an edited script's own check: exit 1" 1 --scripts "$work/edited" backup -n mendix -e demo-app \
  -f "$work/edited.tar.gz" --dry-run
expect_out "... gives that reason" "^  - the site check of this copy refuses it$"
expect_out "... and still makes the others" "would write the database and 20 files"
run "the real backup with that script: exit 1" 1 --scripts "$work/edited" backup -n mendix -e demo-app \
  -f "$work/edited.tar.gz"
expect_err "... raises it" "error: the site check of this copy refuses it"
[ ! -e "$work/edited.tar.gz" ] && ok "... and writes nothing" || bad "... and writes nothing"

# a table the database user does not own: the restore could not drop it, so the
# real run refuses before it stops the app or uploads anything (as the dry run says)
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || bad "reseeding"
sql "create table public.not_yours (id int); alter table public.not_yours owner to $MXPC_PG_SUPERUSER" >/dev/null
state >"$work/state.before"
run "restore --dry-run into a database with a table of another role: exit 1" 1 restore -n mendix -e demo-copy \
  -f "$work/demo.tar.gz" --dry-run --stop-app
expect_out "... names it" "^  - 1 tables, views or sequences in schema public belong to another role"
run "restore into it: exit 1" 1 restore -n mendix -e demo-copy -f "$work/demo.tar.gz" --stop-app
expect_err "... with the same reason" "error: 1 tables, views or sequences in schema public belong to another role"
grep -q "uploading" "$work/err" && bad "... before any upload" || ok "... before any upload"
unchanged "a restore refused for a table of another role"
sql "drop table public.not_yours" >/dev/null

# without ListBucket (the IRSA role's policy) --delete-extra-files is refused before anything changes
AWS_WEB_IDENTITY_TOKEN_FILE=$MXPC_IRSA_TOKEN_FILE AWS_ROLE_ARN=$MXPC_IRSA_ROLE_ARN AWS_ENDPOINT_URL_STS=$MXPC_STS_ENDPOINT \
  AWS_EC2_METADATA_DISABLED=true run "restore --dry-run --delete-extra-files without s3:ListBucket: exit 1" 1 \
  restore -n mendix -e demo-irsa -f "$work/demo.tar.gz" --dry-run --delete-extra-files
expect_out "... naming s3:ListBucket and the bucket" "needs s3:ListBucket on arn:aws:s3:::demo-irsa-files"
AWS_WEB_IDENTITY_TOKEN_FILE=$MXPC_IRSA_TOKEN_FILE AWS_ROLE_ARN=$MXPC_IRSA_ROLE_ARN AWS_ENDPOINT_URL_STS=$MXPC_STS_ENDPOINT \
  AWS_EC2_METADATA_DISABLED=true run "restore --dry-run without s3:ListBucket and without --delete-extra-files: exit 0" 0 \
  restore -n mendix -e demo-irsa -f "$work/demo.tar.gz" --dry-run
expect_out "... the counts are unknown, said so" "how many overwrite objects is unknown"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
