#!/usr/bin/env bash
# The REPL on the local stack, as a transcript (tests/e2e/repl.t): help(),
# env "demo-app" with its database, file storage and MendixApp, tables over
# several lines with the credentials hidden. Needs MXPC_STACK_ENV; reads only.
set -uo pipefail
bin=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -n "${MXPC_STACK_ENV:-}" ] || { echo "FAIL: MXPC_STACK_ENV is not set (start tests/stack/up)"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1090
. "$MXPC_STACK_ENV"
export KUBECONFIG=$MXPC_KUBECONFIG PGSSLROOTCERT=$MXPC_PG_CA MXPC_SCRIPTS= MXPC_DATADIR= MXPC_SOURCE_DIR=$src
# the credentials the transcript checks never appear
DEMO_APP_DB_PASSWORD=$(kubectl -n mendix get secret demo-app-database-credentials \
  -o jsonpath='{.data.database-password}' | base64 -d)
[ -n "$DEMO_APP_DB_PASSWORD" ] || { echo "FAIL: no database password for demo-app"; echo "0 passed, 1 failed"; exit 1; }
export DEMO_APP_DB_PASSWORD MXPC_S3_SECRET_KEY
exec python3 "$src/tests/cli/transcript.py" "$bin" "$src/tests/e2e/repl.t"
