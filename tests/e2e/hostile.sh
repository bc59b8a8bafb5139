#!/usr/bin/env bash
# A hostile environment on the local stack, in its own namespace: a database
# server whose certificate names another host, Secrets holding terminal escape
# sequences and line breaks, an archive with invalid UTF-8 in its .metadata,
# and the REPL showing a raw Secret. No password may reach a server that TLS
# should have refused, nothing from outside may reach the terminal raw, JSON
# output stays valid, and no secret shows in any encoding. Needs
# MXPC_STACK_ENV; leaves the seeded namespace alone.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
unset PGSSLMODE
ns=mxpc-hostile
trap 'rm -rf "$work"; kubectl delete namespace "$ns" --ignore-not-found >/dev/null 2>&1' EXIT
# every run marks where the database server's log stood (probe_seen reads from there)
before_run() { log_mark=$(stat -c %s "$pglog" 2>/dev/null || echo 0); }

kubectl delete namespace "$ns" --ignore-not-found >/dev/null 2>&1
kubectl create namespace "$ns" >/dev/null || { echo "FAIL: cannot create namespace $ns"; echo "0 passed, 1 failed"; exit 1; }
kubectl -n "$ns" create -f - >/dev/null <<'YAML' || { echo "FAIL: cannot create the environment"; echo "0 passed, 1 failed"; exit 1; }
apiVersion: privatecloud.mendix.com/v1alpha1
kind: MendixApp
metadata: {name: hostile}
spec: {replicas: 0}
---
apiVersion: privatecloud.mendix.com/v1alpha1
kind: StorageInstance
metadata: {name: hostile-database}
spec: {type: database, plan: postgres}
---
apiVersion: privatecloud.mendix.com/v1alpha1
kind: StorageInstance
metadata: {name: hostile-file}
spec: {type: file, plan: minio}
YAML

# A probe role name no server has seen: if it shows in a server's log, the
# program got as far as sending its credentials there.
probe=probe_$(date +%s%N)
probe_password=pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
s3_secret=$MXPC_S3_SECRET_KEY
# secret NAME KEY=VALUE...: (re)creates a Secret of the environment
secret() {
  local name=$1 kv args=()
  shift
  for kv in "$@"; do args+=("--from-literal=$kv"); done
  kubectl -n "$ns" delete secret "$name" --ignore-not-found >/dev/null
  kubectl -n "$ns" create secret generic "$name" "${args[@]}" >/dev/null
}
files_secret() {
  secret hostile-file "storage-endpoint=${1:-$MXPC_S3_ENDPOINT}" storage-bucket-name=hostile-files \
    "storage-access-key-id=$MXPC_S3_ACCESS_KEY" "storage-secret-access-key=$s3_secret"
}
# database_secret JDBC_QUERY [HOST]: the wrong-host server, with the probe role
database_secret() {
  secret hostile-database "database-jdbc-url=jdbc:postgresql://127.0.0.1:$MXPC_PG_WRONGHOST_PORT/postgres$1" \
    "database-host=${2:-127.0.0.1:$MXPC_PG_WRONGHOST_PORT}" database-name=postgres "database-username=$probe" \
    "database-password=$probe_password"
}
files_secret
pglog=$MXPC_STACK_DIR/log/pg-wronghost.log
# (in what the server logged during the last run)
probe_seen() { tail -c +$((log_mark + 1)) "$pglog" | grep "$probe" >/dev/null; } # (grep -q would end the pipe early: tail, killed by SIGPIPE, fails it under pipefail)
backup() {
  local name=$1 want=$2
  shift 2
  run "$name" "$want" backup -n "$ns" -e hostile -f "$work/b.tar.gz" --force "$@"
}

# --- TLS as the environment asks for it ------------------------------------------
[ -r "$pglog" ] && ok "the wrong-host server's log is readable" || bad "no log at $pglog"

for query in "?sslmode=VERIFY-FULL" "?ssl=true" "?ssl=TRUE&loginTimeout=5" "?sslmode=Verify-Full&ssl=false"; do
  database_secret "$query"
  backup "JDBC URL $query, certificate for another host: the backup fails" 1
  expect_err "... on the host name" 'does not match host name "127.0.0.1"'
  check "... before any credentials reached the server" '! probe_seen'
done

database_secret "?sslmode=verify_full"
backup "an sslmode pgjdbc does not know is an error" 1
expect_err "... naming the value and the Secret" "Secret $ns/hostile-database: database-jdbc-url: sslmode \"verify_full\" is not"
check "... and nothing was sent" '! probe_seen'

database_secret "?sslmode=prefer"
backup "--db-sslmode verify-full raises prefer" 1 --db-sslmode verify-full
expect_err "... so the host name is checked" 'does not match host name'
check "... before any credentials reached the server" '! probe_seen'
PGSSLMODE=VERIFY-FULL backup "PGSSLMODE=VERIFY-FULL raises prefer too" 1
expect_err "... so the host name is checked" 'does not match host name'
check "... before any credentials reached the server" '! probe_seen'

database_secret "?sslmode=verify-full"
backup "--db-sslmode require below the environment's verify-full is a usage error" 2 --db-sslmode require
expect_err "... saying it would lower the mode" "--db-sslmode require would lower the TLS mode verify-full"
check "... before connecting" '! probe_seen'
PGSSLMODE=disable backup "PGSSLMODE=disable below verify-full is refused" 2
expect_err "... naming PGSSLMODE" "PGSSLMODE disable would lower"
check "... before connecting" '! probe_seen'
backup "--db-sslmode with an unknown mode is a usage error" 2 --db-sslmode strict
expect_err "... listing the modes" "expected disable, allow, prefer, require, verify-ca or verify-full"
# a server without TLS: the hint names who asked for TLS (here the flag, not the storage plan)
run "--db-sslmode require against a server without TLS fails" 1 backup -n mendix -e demo-copy -f "$work/nt.tar.gz" \
  --db-sslmode require
expect_err "... the hint names the flag" "^hint: the server does not offer TLS, but --db-sslmode require asks for it \(the environment asks for prefer\): leave --db-sslmode out$"

# the control: verify-ca checks the CA only, so this server is reached and
# turns the unknown role away (the probe shows up in its log)
database_secret "?sslmode=verify-ca"
backup "verify-ca reaches the server (the control)" 1
check "... and its log shows the probe" 'probe_seen'

# --- values from outside never reach the terminal raw ------------------------------
raw_controls() { LC_ALL=C grep -c $'[\x01-\x08\x0b-\x1f\x7f]' "$1"; }
database_secret "?sslmode=verify-full" $'\e[31mevil\e[0m.invalid:5432'
backup "an escape sequence in database-host: the backup fails" 1
check "... with no raw escape sequence on the terminal" '[ "$(raw_controls "$work/err")" = 0 ]'
expect_err "... but the value escaped" 'evil\\x1b\[0m\.invalid'
"$bin" --log-format json backup -n "$ns" -e hostile -f "$work/b.tar.gz" --force >"$work/out" 2>"$work/err"
check "... and with --log-format json, every line is JSON" \
  'python3 -c "import json, sys; [json.loads(l) for l in open(sys.argv[1], encoding=\"utf-8\")]" "$work/err"'

database_secret "?sslmode=verify-full"
files_secret $'ftp://x\r\ninfo: backup written to /tmp/x'
backup "CR LF in storage-endpoint: the backup fails" 1
check "... without a forged second line" '! grep -q "^info: backup written" "$work/err"'
check "... and without a raw CR" '[ "$(raw_controls "$work/err")" = 0 ]'
expect_err "... naming the value, escaped" 'ftp://x\\r\\ninfo: backup written'
files_secret

# error bodies from the Kubernetes API and from S3 quote what they were asked
# for: a name with an escape sequence and a line break comes back escaped
cat >"$work/bodies.lua" <<'LUA'
local which, ns = ...
if which == "k8s" then
  local c = assert(require("mxpc.k8s").connect {})
  assert(c:get("secrets", "x\27[31m\r\nerror: forged", ns))
else
  local c = assert(require("mxpc.s3").client { endpoint = os.getenv("MXPC_S3_ENDPOINT"), region = "us-east-1",
    access_key = os.getenv("MXPC_S3_ACCESS_KEY"), secret_key = os.getenv("MXPC_S3_SECRET_KEY"), path_style = true })
  local ok, err = c:create_bucket(ns)
  assert(ok or err.code == "exists", err)
  local _, gerr = c:get_string(ns, "x\27[31m\r\nerror: forged")
  c:delete_bucket(ns)
  error(gerr, 0)
end
LUA
for which in k8s s3; do
  run "a $which error body naming a hostile object" 1 run "$work/bodies.lua" "$which" "$ns"
  check "... shows it escaped, on one line" '[ "$(raw_controls "$work/err")" = 0 ] && ! grep -q "^error: forged" "$work/err"'
  expect_err "... naming it" 'x\\x1b\[31m\\r\\nerror: forged'
done

# restore: the same rules for --db-sslmode and PGSSLMODE, before anything is touched
mkdir -p "$work/a/db" && cp "$src/tests/archive/fixtures/sample.backup" "$work/a/db/db.backup"
printf '{"duration":"0","dumpSize":"2387","modelVersion":"1.0.0.40","databaseSize":"1","filesSize":"0"}' >"$work/a/.metadata"
tar -czf "$work/a.tar.gz" -C "$work/a" .metadata db
database_secret "?ssl=true"
run "restore --db-sslmode prefer below ssl=true is a usage error" 2 restore -n "$ns" -e hostile -f "$work/a.tar.gz" \
  --db-sslmode prefer
expect_err "... saying it would lower verify-full" "--db-sslmode prefer would lower the TLS mode verify-full"
database_secret "?sslmode=require"
PGSSLMODE=verify-full run "restore with PGSSLMODE=verify-full against the wrong host fails" 1 \
  restore -n "$ns" -e hostile -f "$work/a.tar.gz" --database-only
expect_err "... on the host name" 'does not match host name'
check "... before any credentials reached the server" '! probe_seen'

# --- the REPL never shows a secret, decoded or in base64 ---------------------------------
database_secret "?sslmode=verify-full"
secret hostile-extra "DB_PW=$probe_password" "url=postgres://u:$probe_password@h/db"
repl() {
  printf '%s\n' "$@" | "$bin" repl >"$work/out" 2>"$work/err"
  cat "$work/err" >>"$work/out"
}
leaks() {
  local s
  for s in "$probe_password" "$s3_secret" "$(printf %s "$probe_password" | base64 -w0)" \
      "$(printf %s "$s3_secret" | base64 -w0)"; do
    grep -qF -- "$s" "$work/out" && return 0
  done
  return 1
}
repl 'c = assert(k8s.connect{})' "c:get(\"secrets\", \"hostile-database\", \"$ns\")" \
  "c:get(\"secrets\", \"hostile-file\", \"$ns\")"
check "the REPL shows a raw Secret without its values, decoded or in base64" '! leaks'
check "... but with its keys" 'grep -q "database-password" "$work/out" && grep -q "storage-secret-access-key" "$work/out"'
repl 'c = assert(k8s.connect{})' "l = c:list(\"secrets\", {namespace = \"$ns\"})" 'l' 'l.items[1]' \
  "s = c:get(\"secrets\", \"hostile-database\", \"$ns\")" 's.data["database-password"]' \
  'print(s.data["database-password"])' "k8s.secret_data(c:get(\"secrets\", \"hostile-file\", \"$ns\"))" \
  "c:request(\"GET\", \"/api/v1/namespaces/$ns/secrets/hostile-file\")" \
  "c:get(\"secrets\", \"hostile-extra\", \"$ns\")"
check "... nor in a list, a single value, print, secret_data or a raw request" '! leaks'
check "... which all ran" '[ "$(grep -c "^error" "$work/out")" = 0 ] && grep -q "hostile-files" "$work/out"'

finish
