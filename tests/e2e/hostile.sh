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
probe_seen() { grep -q "$probe" "$pglog"; }
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
PGSSLMODE=disable backup "PGSSLMODE=disable below verify-full is refused" 2
expect_err "... naming PGSSLMODE" "PGSSLMODE disable would lower"
backup "--db-sslmode with an unknown mode is a usage error" 2 --db-sslmode strict
expect_err "... listing the modes" "expected disable, allow, prefer, require, verify-ca or verify-full"
check "nothing was sent in any of these" '! probe_seen'

# the control: verify-ca checks the CA only, so this server is reached and
# turns the unknown role away (the probe shows up in its log)
database_secret "?sslmode=verify-ca"
backup "verify-ca reaches the server (the control)" 1
check "... and its log shows the probe" 'probe_seen'

finish
