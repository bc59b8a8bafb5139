#!/bin/bash
# The stack's life cycle, on a second stack with its own directory and free ports (the
# shared stack named by MXPC_STACK_ENV must stay healthy throughout): up is fast, binds
# 127.0.0.1 only and writes env.sh; a second up fails clearly; missing binaries are named
# with their Debian package; a failed start-up leaves no process; down leaves no process,
# no listening port and no directory.
. "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
require_stack
need_cmd ss iproute2
SHARED_DIR=$MXPC_STACK_DIR

run "$STACK_HERE/status" "$SHARED_DIR"
expect "the shared stack is healthy before" succeeded
succeeded || finish

WORK=$(mktemp -d)
chmod 0755 "$WORK"   # the postgres user must be able to reach the stack inside
DIR=$WORK/stack
cleanup() {
  for d in "$DIR" "$WORK/failed"; do
    [ -e "$d" ] && "$STACK_HERE/down" "$d" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A free port for each of STACK_PORTS (lib.sh; the OSD picks its own): P1 for the
# first (PostgreSQL TLS), P2 the second, ...; ports() runs a command with them.
. "$STACK_HERE/lib.sh"
NPORTS=${#STACK_PORTS[@]}
read -r -a FREE < <(python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])' "$NPORTS")
PORT_ENV=()
for i in "${!STACK_PORTS[@]}"; do
  printf -v "P$((i + 1))" %s "${FREE[i]}"
  IFS=: read -r _ var _ <<<"${STACK_PORTS[i]}"
  PORT_ENV+=("$var=${FREE[i]}")
done
ports() {
  env -u MXPC_STACK_DIR "${PORT_ENV[@]}" "$@"
}

# stack_pids DIR: every live process in the process groups the stack recorded.
stack_pids() {
  local groups f stat
  groups=" $(cat "$1"/pids/*.pid 2>/dev/null | tr '\n' ' ') "
  for f in /proc/[0-9]*/stat; do
    read -r stat 2>/dev/null <"$f" || continue
    local pid=${f#/proc/}
    pid=${pid%/stat}
    stat=${stat##*) }
    set -- $stat
    [ "$1" != Z ] && [[ $groups == *" $3 "* ]] && echo "$pid"
  done
}
# named_procs DIR: how many processes have DIR in their command line (builtins only,
# so that no helper process of ours is counted).
named_procs() {
  local f n=0 args
  for f in /proc/[0-9]*/cmdline; do
    mapfile -d '' args 2>/dev/null <"$f" || continue
    [[ "${args[*]}" == *"$1"* ]] && n=$((n + 1))
  done
  echo "$n"
}
# listening TCP sockets of the given pids, as "address:port"
listening() {
  local pids=" $* "
  ss -ltnpH | while read -r _ _ _ local _ users; do
    for p in $(grep -o 'pid=[0-9]*' <<<"$users" | cut -d= -f2); do
      [[ $pids == *" $p "* ]] && { echo "$local"; break; }
    done
  done | sort -u
}

# ---- missing software is named with its package
run env PATH=/nonexistent-dir /bin/bash "$STACK_HERE/up" "$WORK/nothing"
expect "without openssl on PATH up fails" failed
expect "... naming openssl and its Debian package" has "openssl not found: install the Debian package openssl"
mkdir "$WORK/bin"
IFS=: read -ra path_dirs <<<"$PATH"
for d in "${path_dirs[@]}"; do
  [ -d "$d" ] && find "$d" -maxdepth 1 \( -type f -o -type l \) ! -name radosgw \
    -exec ln -sf -t "$WORK/bin" {} + 2>/dev/null
done
run ports env PATH="$WORK/bin" "$STACK_HERE/up" "$WORK/nothing"
expect "without radosgw up fails naming the package" has "radosgw not found: install the Debian package radosgw"
run ports env MXPC_PG_BINDIR=/nonexistent "$STACK_HERE/up" "$WORK/nothing"
expect "without PostgreSQL up fails naming postgresql-15" has "install the Debian package postgresql-15"
run ports env MXPC_AZURITE=/nonexistent/azurite-blob "$STACK_HERE/up" "$WORK/nothing"
expect "without Azurite up fails naming tools/install-deps" \
  has "/nonexistent/azurite-blob not found: install Azurite"
expect "... and creates nothing" [ ! -e "$WORK/nothing" ]
if [ "$(id -u)" = 0 ]; then
  mkdir -m 0700 "$WORK/closed"
  run ports "$STACK_HERE/up" "$WORK/closed/stack"
  expect "up as root in a directory the postgres user cannot reach fails clearly" \
    has "the postgres user cannot reach $WORK/closed/stack"
  expect "... and leaves nothing" [ ! -e "$WORK/closed/stack" ]
fi

# ---- up
start=$EPOCHREALTIME
run ports "$STACK_HERE/up" "$DIR"
ms=$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))
expect "up starts a second stack" succeeded
succeeded || finish
expect "up took $((ms / 1000)).$((ms % 1000 / 100))s (a guard against a hang, not a speed target)" [ "$ms" -lt 120000 ]
expect "up prints a summary naming env.sh" has ". $DIR/env.sh"
missing=()
for v in MXPC_STACK_DIR MXPC_PG_TLS_PORT MXPC_PG_PLAIN_PORT MXPC_PG_WRONGHOST_PORT MXPC_PG_CA \
         MXPC_PG_SUPERUSER MXPC_PG_SUPERPASS MXPC_S3_ENDPOINT MXPC_S3_HTTPS_ENDPOINT MXPC_S3_CA \
         MXPC_S3_CA_DIR MXPC_S3_ACCESS_KEY MXPC_S3_SECRET_KEY MXPC_K8S_URL MXPC_K8S_CA \
         MXPC_KUBECONFIG MXPC_KUBECONFIG_RESTRICTED MXPC_KUBECONFIG_NOBODY \
         MXPC_K8S_RESTRICTED_TOKEN MXPC_K8S_NOBODY_TOKEN MXPC_K8S_ADMIN_TOKEN MXPC_OIDC_ISSUER \
         MXPC_IRSA_TOKEN_FILE MXPC_STS_ENDPOINT MXPC_STS_DIR MXPC_IRSA_ROLE_ARN MXPC_RDS_PORT \
         MXPC_MENDIX_CLOUD_URL MXPC_MENDIX_USERNAME MXPC_MENDIX_API_KEY MXPC_MENDIX_PROJECT_ID \
         MXPC_AZURE_BLOB_ENDPOINT MXPC_AZURE_ACCOUNT_NAME MXPC_AZURE_ACCOUNT_KEY MXPC_AZURE_CA \
         MXPC_AZURE_CA_BUNDLE MXPC_AZURE_AUTHORITY_HOST MXPC_AZURE_TENANT_ID MXPC_AZURE_CLIENT_ID \
         MXPC_AZURE_WI_CLIENT_ID MXPC_AZURE_FEDERATED_TOKEN_FILE MXPC_ENTRA_CA MXPC_ENTRA_PG_PORT \
         MXPC_SM_ENDPOINT MXPC_SM_ACCESS_KEY MXPC_VAULT_ADDR MXPC_VAULT_CA MXPC_KEYVAULT_URL \
         MXPC_AZURE_RBAC_ENDPOINT MXPC_AZURE_READER_CLIENT_ID MXPC_AZURE_READER_PRINCIPAL_ID; do
  (. "$DIR/env.sh" && [ -n "${!v:-}" ]) || missing+=("$v")
done
expect "env.sh exports every documented variable" [ ${#missing[@]} = 0 ]
[ ${#missing[@]} = 0 ] || echo "   missing: ${missing[*]}"
run bash -c ". '$DIR/env.sh' && [ \"\$MXPC_PG_TLS_PORT\" = $P1 ] && [ \"\$MXPC_K8S_URL\" = https://127.0.0.1:$P7 ]"
expect "env.sh carries the chosen ports" succeeded
run "$STACK_HERE/status" "$DIR"
expect "status: every daemon running" succeeded
expect "status lists the daemons" [ "$(grep -c ' running ' <<<"$OUT")" = ${#STACK_DAEMONS[@]} ]

pids=$(stack_pids "$DIR" | tr '\n' ' ')
socks=$(listening $pids)
alternatives=$(IFS='|'; echo "${FREE[*]}")
expect "the stack listens on its $NPORTS ports" \
  [ "$(grep -cE ":($alternatives)\$" <<<"$socks")" = "$NPORTS" ]
expect "every listening socket of the stack is on 127.0.0.1 ($(wc -l <<<"$socks") sockets)" \
  [ -z "$(grep -v '^127\.0\.0\.1:' <<<"$socks")" ]
run env PGPASSWORD="$(. "$DIR/env.sh"; echo "$MXPC_PG_SUPERPASS")" \
  psql -X -At -d "host=127.0.0.1 port=$P2 user=postgres dbname=postgres sslmode=disable" -c "SELECT 1"
expect "its PostgreSQL answers" [ "$OUT" = 1 ]
run curl -sf --cacert "$DIR/tls/k8s-ca.crt" "https://127.0.0.1:$P7/readyz"
expect "its Kubernetes API answers" [ "$OUT" = ok ]
run curl -sf --cacert "$DIR/tls/k8s-ca.crt" "https://127.0.0.1:$P7/.well-known/openid-configuration"
expect "it is an OIDC issuer, without authentication" has "\"jwks_uri\": \"https://127.0.0.1:$P7/openid/v1/jwks\""

# ---- up twice
run ports "$STACK_HERE/up" "$DIR"
expect "up on a running stack's directory fails" failed
expect "... saying it is already running and how to stop it" has "already running in $DIR"
run "$STACK_HERE/status" "$DIR"
expect "... and the stack keeps running" succeeded
run ports "$STACK_HERE/up" "$WORK/other"
expect "up on busy ports fails naming the port and its variable" \
  has "port $P1 on 127.0.0.1 is in use; set MXPC_PG_TLS_PORT"
mkdir "$WORK/foreign" && touch "$WORK/foreign/file"
run "$STACK_HERE/up" "$WORK/foreign"
expect "up refuses a non-empty directory that is not a stack" has "is not a stack directory"
run "$STACK_HERE/down" "$WORK/foreign"
expect "down refuses to delete a directory that is not a stack" \
  eval 'failed && [ -e "$WORK/foreign/file" ]'

# ---- down
run "$STACK_HERE/down" "$DIR"
expect "down succeeds" succeeded
expect "down removed the directory" [ ! -e "$DIR" ]
left=0
for p in $pids; do [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && left=$((left + 1)); done
expect "no process of the stack is left ($(wc -w <<<"$pids") were running)" [ "$left" = 0 ]
expect "no process names the directory" [ "$(named_procs "$DIR")" = 0 ]
still=()
for s in $socks; do
  ss -ltnH "sport = :${s##*:}" | grep -q . && still+=("$s")
done
expect "no port of the stack is still listening" [ ${#still[@]} = 0 ]
run "$STACK_HERE/down" "$DIR"
expect "down again is harmless" eval 'succeeded && has "no stack"'

# ---- a start-up that fails half-way stops what it started
mkdir "$WORK/fakepg"
printf '#!/bin/sh\necho "initdb: simulated failure" >&2\nexit 1\n' >"$WORK/fakepg/initdb"
chmod +x "$WORK/fakepg/initdb"
ln -s "${MXPC_PG_BINDIR:-/usr/lib/postgresql/15/bin}/postgres" "$WORK/fakepg/postgres"
ln -s "${MXPC_PG_BINDIR:-/usr/lib/postgresql/15/bin}/pg_isready" "$WORK/fakepg/pg_isready"
run ports env MXPC_PG_BINDIR="$WORK/fakepg" "$STACK_HERE/up" "$WORK/failed"
expect "up fails when initdb fails" failed
expect "... pointing at the logs" has "PostgreSQL setup failed"
expect "... and leaves no process behind" [ "$(named_procs "$WORK/failed")" = 0 ]
run "$STACK_HERE/status" "$WORK/failed"
expect "status of a stack that is not running fails" failed
run ports "$STACK_HERE/up" "$WORK/failed"
expect "up on the failed stack's directory says to remove it" has "not running; remove it first"
run "$STACK_HERE/down" "$WORK/failed"
expect "down removes the failed stack" eval 'succeeded && [ ! -e "$WORK/failed" ]'

run "$STACK_HERE/status" "$SHARED_DIR"
# (on failure, the message shows the daemons that do not run or answer)
succeeded || OUT=$(grep -E '^  [a-z-]+ +[0-9-]+ +' <<<"$OUT" | grep -v ' running ')
expect "the shared stack is still healthy after" succeeded

finish
