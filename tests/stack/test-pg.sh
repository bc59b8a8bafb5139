#!/bin/bash
# The three PostgreSQL servers: strict TLS (verify-full) works with the stack's CA given
# as sslrootcert or PGSSLROOTCERT and fails without it, with another CA, and against the
# server whose certificate names another host; the plain server serves sslmode=prefer
# in plaintext and refuses sslmode=require; the TLS servers refuse plaintext.
. "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
require_stack
PSQL=${MXPC_PG_BINDIR:+$MXPC_PG_BINDIR/}psql
[ -x "$PSQL" ] || PSQL=psql
need_cmd "$PSQL" postgresql-client-15

EMPTY_HOME=$(mktemp -d)   # no ~/.postgresql/root.crt to fall back on
trap 'rm -rf "$EMPTY_HOME"' EXIT

# q CONNINFO SQL: one query as the superuser, nothing from the caller's PG* variables.
q() {
  env -u PGSSLROOTCERT -u PGSSLMODE -u PGHOST -u PGPORT HOME="$EMPTY_HOME" \
    PGPASSWORD="$MXPC_PG_SUPERPASS" PGCONNECT_TIMEOUT=5 \
    "$PSQL" -X -At -d "$1 user=$MXPC_PG_SUPERUSER dbname=postgres" -c "$2"
}
SSL_IN_USE="SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
TLS="host=127.0.0.1 port=$MXPC_PG_TLS_PORT"
PLAIN="host=127.0.0.1 port=$MXPC_PG_PLAIN_PORT"
WRONG="host=127.0.0.1 port=$MXPC_PG_WRONGHOST_PORT"

run q "$PLAIN sslmode=disable" "SELECT 1"
expect "the plain server answers (superuser, password over TCP)" [ "$OUT" = 1 ]
succeeded || finish

# ---- strict TLS
run q "$TLS sslmode=verify-full sslrootcert=$MXPC_PG_CA" "$SSL_IN_USE"
expect "TLS server: verify-full with sslrootcert=MXPC_PG_CA, on TLS" [ "$OUT" = t ]
run env PGSSLROOTCERT="$MXPC_PG_CA" HOME="$EMPTY_HOME" PGPASSWORD="$MXPC_PG_SUPERPASS" \
  "$PSQL" -X -At -d "$TLS sslmode=verify-full user=$MXPC_PG_SUPERUSER dbname=postgres" -c "$SSL_IN_USE"
expect "TLS server: verify-full with PGSSLROOTCERT" [ "$OUT" = t ]
run q "host=localhost port=$MXPC_PG_TLS_PORT sslmode=verify-full sslrootcert=$MXPC_PG_CA" "SELECT 1"
expect "TLS server: the certificate also names localhost" [ "$OUT" = 1 ]
run q "$TLS sslmode=verify-full" "SELECT 1"
expect "TLS server: verify-full without a CA fails" has "root certificate file"
run q "$TLS sslmode=verify-full sslrootcert=$MXPC_S3_CA" "SELECT 1"
expect "TLS server: verify-full with another CA fails" has "certificate verify failed"
run q "$TLS sslmode=require" "$SSL_IN_USE"
expect "TLS server: require (no verification) uses TLS" [ "$OUT" = t ]
run q "$TLS sslmode=prefer" "$SSL_IN_USE"
expect "TLS server: prefer uses TLS" [ "$OUT" = t ]
run q "$TLS sslmode=disable" "SELECT 1"
expect "TLS server: plaintext is refused" has "no encryption"

# ---- certificate for the wrong host
run q "$WRONG sslmode=verify-full sslrootcert=$MXPC_PG_CA" "SELECT 1"
expect "wrong-host server: verify-full fails on the host name" \
  has "does not match host name \"127.0.0.1\""
expect "... and names the certificate's host" has "$MXPC_PG_WRONGHOST_NAME"
run q "$WRONG sslmode=verify-ca sslrootcert=$MXPC_PG_CA" "$SSL_IN_USE"
expect "wrong-host server: verify-ca passes (only the name is wrong)" [ "$OUT" = t ]
run q "$WRONG sslmode=prefer" "$SSL_IN_USE"
expect "wrong-host server: prefer (not strict) connects over TLS" [ "$OUT" = t ]

# ---- not strict: plaintext fallback
run q "$PLAIN sslmode=prefer" "$SSL_IN_USE"
expect "plain server: prefer falls back to plaintext" [ "$OUT" = f ]
run q "$PLAIN sslmode=require" "SELECT 1"
expect "plain server: require fails" has "server does not support SSL"
run q "$PLAIN sslmode=verify-full sslrootcert=$MXPC_PG_CA" "SELECT 1"
expect "plain server: verify-full fails" has "server does not support SSL"

# ---- passwords
run env HOME="$EMPTY_HOME" PGPASSWORD=wrong "$PSQL" -X -At \
  -d "$PLAIN sslmode=disable user=$MXPC_PG_SUPERUSER dbname=postgres" -c "SELECT 1"
expect "a wrong password is refused" has "password authentication failed"
run q "$PLAIN sslmode=disable" "SHOW password_encryption"
expect "passwords are scram-sha-256" [ "$OUT" = scram-sha-256 ]
run q "$PLAIN sslmode=disable" "SHOW server_version_num"
expect "the servers are PostgreSQL 15" [ "${OUT:0:2}" = 15 ]
run q "$TLS sslmode=verify-full sslrootcert=$MXPC_PG_CA" "SHOW listen_addresses"
expect "the servers listen on 127.0.0.1 only" [ "$OUT" = 127.0.0.1 ]

finish
