#!/usr/bin/env bash
# End to end: restore -f mendix-cloud://APP/ENVIRONMENT[/SNAPSHOT] against the stack's
# Mendix Cloud stand-in (docs/mendix-cloud.md). Snapshots whose archives are our own
# backup of demo-app and a Mendix-layout archive made by the corpus generator's tar
# writer are restored into demo-copy and proved (tests/e2e/proof.lua); the newest
# snapshot, a given one, --new-snapshot, --database-only (a database_only archive, a
# bare dump); inspect and verify of the same location; every error code a restore
# can meet, a job that fails, a URL that expires mid-read (renewed, or failing
# cleanly), Ctrl-C while polling and while reading: each leaves demo-copy as it was.
# The API key is in no output, log or child's environment.
# Needs MXPC_STACK_ENV (seeded).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
admin() {   # admin PATH [JSON]: the stand-in's test knobs
  curl -sf -X POST -H "X-Admin-Token: $(cat "$MXPC_MENDIX_CLOUD_DIR/admin-token")" \
    --data "${2:-{\}}" "$MXPC_MENDIX_CLOUD_URL/_admin/$1"
}
trap 'kill $(jobs -p) 2>/dev/null; admin reset >/dev/null; rm -rf "$work"' EXIT
export MXPC_MENDIX_API_URL=$MXPC_MENDIX_CLOUD_URL MENDIX_USERNAME=$MXPC_MENDIX_USERNAME \
  MENDIX_API_KEY=$MXPC_MENDIX_API_KEY TMPDIR=$work/tmp
mkdir -p "$TMPDIR"
key=$MXPC_MENDIX_API_KEY
# (the stack's own copies of the keys stay in this shell: the children below must not see any)
export -n MXPC_MENDIX_API_KEY MXPC_MENDIX_NO_BACKUPS_API_KEY
prod=$MXPC_MENDIX_PRODUCTION_ID
app=mendix-cloud://$MXPC_MENDIX_PROJECT_ID
admin reset >/dev/null || { echo "FAIL: the Mendix Cloud stand-in does not answer"; echo "0 passed, 1 failed"; exit 1; }
: >"$work/all"
before_run() { cat "$work/out" "$work/err" >>"$work/all" 2>/dev/null || true; }
# the PostgreSQL programs through wrappers that keep their environment (as /proc/PID/environ has it)
mkdir "$work/bin"
for p in pg_restore psql pg_dump; do
  printf '#!/bin/sh\ncat /proc/$$/environ >"%s/env.%s.$$"\nexec "%s/%s" "$@"\n' "$work" "$p" "$MXPC_PG_BINDIR" "$p" \
    >"$work/bin/$p"
  chmod +x "$work/bin/$p"
done
pg_bindir=$MXPC_PG_BINDIR
export MXPC_PG_BINDIR=$work/bin
psql_copy() { PGPASSWORD=$MXPC_PG_SUPERPASS "$pg_bindir/psql" -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" \
  -U "$MXPC_PG_SUPERUSER" -d demo_copy -c "$1"; }
# what a failed or interrupted restore must leave as it was: the rows, the app's replicas, the objects
state() { echo "$(orders) $(replicas) $(kubectl -n mendix get mendixapp demo-copy -o jsonpath='{.metadata.resourceVersion}')"; }
unchanged() {
  local now; now=$(state)
  if [ "$now" = "$before" ]; then ok "... demo-copy unchanged ($1)"; else bad "... demo-copy unchanged ($1): $before -> $now"; fi
  if [ -z "$(ls -A "$TMPDIR")" ]; then ok "... no working directory left"; else bad "... working directory left: $(ls -A "$TMPDIR")"; fi
}
snapshot() {  # snapshot JSON -> the new snapshot's id
  admin "snapshot/$prod" "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot_id"])'
}

# --- the archives: our own backup, a Mendix-layout one, a database-only one ----------------
"$bin" -q backup -n mendix -e demo-app -f "$work/demo.tar.gz" >/dev/null 2>"$work/err"
"$bin" -q backup -n mendix -e demo-app -f "$work/demo.backup" --database-only >/dev/null 2>>"$work/err"
check "backups of demo-app (an archive and a database-only one)" '[ -s "$work/demo.tar.gz" ] && [ -s "$work/demo.backup" ]'
# the same data as the Portal's older layout (flat tree/<uuid>, directory entries, PAX),
# written by the corpus generator's tar writer (tests/archive/corpus.py), not ours
python3 - "$src/tests/archive" "$work/demo.tar.gz" "$work/portal.tar.gz" <<'PY'
import sys, tarfile
sys.path.insert(0, sys.argv[1])
import corpus
members = [corpus.member("db", kind=tarfile.DIRTYPE), corpus.member("tree", kind=tarfile.DIRTYPE)]
with tarfile.open(sys.argv[2]) as t:
    for m in t.getmembers():
        if m.isfile():
            name = m.name if not m.name.startswith("tree/") else "tree/" + m.name.rsplit("/", 1)[1]
            members.append(corpus.member(name, t.extractfile(m).read()))
open(sys.argv[3], "wb").write(corpus.gz(corpus.tar_bytes(members)))
PY
"$bin" inspect "$work/portal.tar.gz" >"$work/out" 2>&1
check "a Mendix-layout archive of the same data (flat layout, by the corpus's writer)" 'grep -q "layout flat" "$work/out"'
portal=$(snapshot "{\"archive\": \"$work/portal.tar.gz\", \"comment\": \"Mendix layout\", \"created_at\": \"2020-01-01T00:00:00.000Z\"}")
snapshot "{\"archive\": \"$work/demo.tar.gz\", \"db_archive\": \"$work/demo.backup\", \"comment\": \"our own backup\"}" >/dev/null

# --- inspect and verify read the same location ------------------------------------------
run "inspect mendix-cloud://PROJECT/Production" 0 inspect "$app/Production"
check "... our backup: 20 files" 'grep -q "^files: *20," "$work/out"'
run "verify mendix-cloud://PROJECT/Production/SNAPSHOT" 0 verify "$app/Production/$portal"
check "... would restore" 'grep -q "^OK: .* would restore" "$work/out"'

# --- restores, proved ----------------------------------------------------------------------
psql_copy 'delete from "myfirstmodule$order_customer"; delete from "myfirstmodule$order"'
proof; check "before: demo-copy does not hold demo-app's data" '! grep -q "^proved" "$work/proof"'
run "restore -f mendix-cloud://PROJECT/Production (the newest snapshot: our own backup)" 0 \
  restore -n mendix -e demo-copy -f "$app/Production" --stop-app
expect_err "... said it waited for the archive" "the archive of snapshot .*: completed"
proof; check "... demo-copy holds demo-app's data (proof.lua)" 'grep -q "^proved" "$work/proof"'
psql_copy 'delete from "myfirstmodule$order_customer"; delete from "myfirstmodule$order"'
run "restore -f .../Production/SNAPSHOT (the Mendix-layout archive)" 0 \
  restore -n mendix -e demo-copy -f "$app/Production/$portal" --stop-app
proof; check "... demo-copy holds demo-app's data again" 'grep -q "^proved" "$work/proof"'

psql_copy 'delete from "myfirstmodule$order_customer"; delete from "myfirstmodule$order"'
run "restore --new-snapshot" 0 restore -n mendix -e demo-copy -f "$app/Production" --new-snapshot --stop-app
proof; check "... proved" 'grep -q "^proved" "$work/proof"'
"$bin" list "$app/Production" >"$work/list" 2>/dev/null
check "... the new snapshot is listed, its comment naming the target" 'grep -q "completed .*snapshot for a restore into mendix/demo-copy$" "$work/list"'

psql_copy 'delete from "myfirstmodule$order_customer"; delete from "myfirstmodule$order"'
curl -sf -H "X-Admin-Token: $(cat "$MXPC_MENDIX_CLOUD_DIR/admin-token")" "$MXPC_MENDIX_CLOUD_URL/_admin/requests" >/dev/null
run "restore --database-only (a database_only archive: a bare dump)" 0 \
  restore -n mendix -e demo-copy -f "$app/Production" --database-only --stop-app
expect_err "... asked for database_only" "data_type=database_only"
check "... the orders are back" '[ "$(orders)" = 100 ]'
proof; check "... proved" 'grep -q "^proved" "$work/proof"'
check "... no working directory left" '[ -z "$(ls -A "$TMPDIR")" ]'

# --- every error code on the restore path: exit 1, worded, nothing changed -------------------
before=$(state)
restore=(restore -n mendix -e demo-copy --stop-app -f)
run_env "a wrong API key" 1 MENDIX_API_KEY=wrong-key-0123456789 -- "${restore[@]}" "$app/Production"
expect_err "... rejected credentials" "Mendix Cloud rejected the API credentials"
unchanged "401"
run_env "no credentials" 1 MENDIX_API_KEY= -- "${restore[@]}" "$app/Production"
expect_err "... says which variable" "MENDIX_API_KEY is not set"
run_env "NO_ACCESS" 1 MENDIX_USERNAME="$MXPC_MENDIX_NO_BACKUPS_USER" MENDIX_API_KEY="$MXPC_MENDIX_NO_BACKUPS_API_KEY" -- \
  "${restore[@]}" "$app/Production"
expect_err "... the permissions to give" "'API Rights' and 'Access to Backups'"
unchanged "NO_ACCESS"
run "ENVIRONMENT_NOT_FOUND" 1 "${restore[@]}" "$app/00000000-0000-0000-0000-000000000000"
expect_err "... worded" "has no environment 00000000-0000-0000-0000-000000000000"
run "an unknown environment name" 1 "${restore[@]}" "$app/Staging"
expect_err "... the names there are" "it has: Production, Acceptance"
run "NOT_FOUND (no such snapshot)" 1 "${restore[@]}" "$app/Production/51dc7872-771e-4c3e-853b-352359444db6"
expect_err "... what to do" "list mendix-cloud://"
unchanged "NOT_FOUND"
for spec in "not_supported:NOT_SUPPORTED:is not in Mendix Cloud" \
            "unavailable:SERVICE_UNAVAILABLE:contact Mendix Support" \
            "listing_fails:SNAPSHOT_LISTING_FAILED:could not list the snapshots" \
            "busy:ENVIRONMENT_BUSY:is busy" \
            "maintenance:INVALID_STATE:wait until it is finished" \
            "fail_jobs:a job that fails:Mendix Cloud reports that the archive of snapshot .* failed"; do
  knob=${spec%%:*}; rest=${spec#*:}; code=${rest%%:*}; words=${rest#*:}
  admin reset >/dev/null; admin "environment/$prod" "{\"$knob\": true}" >/dev/null
  extra=(); case $knob in busy|maintenance) extra=(--new-snapshot) ;; esac
  run "$code" 1 "${restore[@]}" "$app/Production" "${extra[@]}"
  if tr '\n' ' ' <"$work/err" | grep -qE "$words"; then ok "... worded, with what to do"; else bad "... worded: /$words/"; fi
  unchanged "$code"
done
admin reset >/dev/null
run "restore --dry-run of a Mendix Cloud snapshot" 0 "${restore[@]}" "$app/Production" --dry-run
check "... says what it would do" 'grep -qi "would" "$work/out"'
unchanged "--dry-run"
run "backup -f mendix-cloud://: exit 2, the Portal" 2 backup -n mendix -e demo-app -f "$app/Production"
expect_err "... how to upload" "only through the Mendix Portal"

# --- a URL that expires mid-read ------------------------------------------------------------
ours=$(snapshot "{\"archive\": \"$work/demo.tar.gz\", \"db_archive\": \"$work/demo.backup\"}")
psql_copy 'delete from "myfirstmodule$order_customer"; delete from "myfirstmodule$order"'
size=$(stat -c %s "$work/demo.tar.gz")
# served slowly from the stand-in, valid for 2 s, the answer cut off after 3 s: the resume is refused
admin "environment/$prod" "{\"local_downloads\": true, \"url_seconds\": 2, \"download_rate\": $((size / 5)), \"drop_at\": $((size * 3 / 5))}" >/dev/null
run "a URL that expires mid-read: a fresh one, the read goes on" 0 -v "${restore[@]}" "$app/Production/$ours"
expect_err "... refused, a fresh URL asked for" "asking Mendix Cloud for a fresh one"
expect_err "... the cut-off read resumed" "GET .*/_download/.*: transfer closed with .* retrying"
expect_err "... refused at the byte reached" "bytes $((size * 3 / 5))-[0-9]*\\): HTTP 403 .*expired"
proof; check "... proved" 'grep -q "^proved" "$work/proof"'
curl -sf -H "X-Admin-Token: $(cat "$MXPC_MENDIX_CLOUD_DIR/admin-token")" "$MXPC_MENDIX_CLOUD_URL/_admin/requests" \
  >"$work/requests"
check "... the download host got no Mendix header (only Range and If-Match)" 'python3 -c "
import json, sys
seen = [r for r in json.load(open(sys.argv[1])) if r[\"path\"].startswith(\"/_download/\")]
assert len(seen) >= 3, seen
for r in seen:
    assert not [h for h in r[\"headers\"] if h.lower().startswith(\"mendix\") or h.lower() == \"authorization\"], r
" "$work/requests"'
before=$(state)
admin reset >/dev/null
ours=$(snapshot "{\"archive\": \"$work/demo.tar.gz\", \"db_archive\": \"$work/demo.backup\"}")
admin "environment/$prod" "{\"local_downloads\": true, \"url_seconds\": 2, \"download_rate\": $((size / 5)), \"drop_at\": $((size * 3 / 5))}" >/dev/null
psql_copy 'select 1' >/dev/null
before_run
"$bin" "${restore[@]}" "$app/Production/$ours" >"$work/out" 2>"$work/err" & pid=$!
wait_for 'grep -q "checking the archive" "$work/err"' 20
admin "environment/$prod" '{"fail_jobs": true}' >/dev/null
wait $pid; code=$?
check "... when no fresh URL comes: exit 1 ($code)" '[ $code = 1 ]'
expect_err "... says why" "Mendix Cloud reports that the archive of snapshot .* failed"
unchanged "an expired URL that is not renewed"
admin reset >/dev/null

# --- Ctrl-C while polling and while reading -------------------------------------------------
# interrupted NAME WHEN ARGS...: the restore, Ctrl-C once stderr matches WHEN (and a second more)
interrupted() {
  local name=$1 when=$2 pid code start took
  shift 2
  before_run
  "$bin" "${restore[@]}" "$@" >"$work/out" 2>"$work/err" & pid=$!
  wait_for 'grep -q "$when" "$work/err"' 20 || bad "$name: /$when/ never came"
  sleep 1
  start=$EPOCHREALTIME; kill -INT $pid; wait $pid; code=$?
  took=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
  check "$name: exit 130 at once ($took ms)" '[ $code = 130 ] && [ $took -lt 2000 ] && grep -q "^error: interrupted by SIGINT$" "$work/err"'
  unchanged "$name"
}
admin "environment/$prod" '{"never_finish": true}' >/dev/null
interrupted "Ctrl-C while polling" "the archive of snapshot .*: running" "$app/Production"
admin reset >/dev/null
ours=$(snapshot "{\"archive\": \"$work/demo.tar.gz\", \"db_archive\": \"$work/demo.backup\"}")
admin "environment/$prod" "{\"local_downloads\": true, \"download_rate\": $((size / 10))}" >/dev/null
interrupted "Ctrl-C while reading" "checking the archive" "$app/Production/$ours"
admin reset >/dev/null

# --- the API key is nowhere ------------------------------------------------------------------
ours=$(snapshot "{\"archive\": \"$work/demo.tar.gz\", \"db_archive\": \"$work/demo.backup\"}")
run "a restore under -vv --log-format json" 0 -vv --log-format json "${restore[@]}" "$app/Production/$ours"
proof; check "... proved (demo-copy is left with demo-app's data)" 'grep -q "^proved" "$work/proof"'
before_run
check "the API key appears in no output or log of any run above" '! grep -qF "$key" "$work/all"'
check "... which did talk to the API" 'grep -q "Mendix Cloud request" "$work/all"'
n=$(find "$work" -maxdepth 1 -name "env.*" | wc -l)
check "... nor in the environment of any of the $n pg_restore/pg_dump children" \
  '[ "$n" -gt 5 ] && ls "$work"/env.pg_restore.* >/dev/null && ! grep -qF "$key" "$work"/env.* && ! grep -qa MENDIX_API_KEY "$work"/env.*'
check "... (whose environment was read: PATH is there)" 'grep -qa "PATH=" "$work"/env.pg_restore.*'
finish
