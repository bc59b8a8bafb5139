# The start of every end-to-end test, sourced as:  . "$(dirname "$0")/lib.sh" "$@"
# $1 is the program. Reads the stack's env.sh (MXPC_STACK_ENV; fails, never
# skips, without it) and sets bin, src (the source tree), seed_json and work (a
# temporary directory: the caller's EXIT trap removes it). Defines:
#   ok NAME, bad NAME             count and print a result (bad shows $work/err)
#   check NAME CONDITION          ok or bad by an eval'ed condition
#   expect_err NAME REGEX         ok if $work/err matches the extended regular expression
#   run NAME EXPECTED_EXIT ARGS   the program, stdout to $work/out, stderr to $work/err
#                                 (after before_run, which a test may define)
#   run_env NAME EXIT VAR=VALUE|-uVAR... -- ARGS   the same with a changed environment
#   wait_for CONDITION [SECONDS]  polls for up to SECONDS (default 30)
#   proof                         does demo-copy hold demo-app's data? ($work/proof)
#   replicas, orders              demo-copy's spec.replicas, and its order rows
#   reseed [ARGS]                 tests/stack/seed with ARGS
#   entra_lifetime SECONDS        the lifetime of the Entra ID stand-in's tokens from now on
#   finish                        prints the counts; its status is the result
set -uo pipefail
bin=$1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${MXPC_STACK_ENV:-}" ] || { echo "FAIL: MXPC_STACK_ENV is not set (start tests/stack/up)"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC1090
. "$MXPC_STACK_ENV"
export KUBECONFIG=$MXPC_KUBECONFIG PGSSLROOTCERT=$MXPC_PG_CA MXPC_SCRIPTS= MXPC_DATADIR=
seed_json=$MXPC_STACK_DIR/seed.json
work=$(mktemp -d)
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$work/err" ] && tail -5 "$work/err" | cat -v | sed 's/^/  /'; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
expect_err() { if grep -qE -- "$2" "$work/err"; then ok "$1"; else bad "$1: stderr has no /$2/"; fi; }
before_run() { :; }
run() {
  local name=$1 want=$2
  shift 2
  before_run
  "$bin" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name (exit $got, expected $want)"; fi
}
run_env() {
  local name=$1 want=$2 envs=()
  shift 2
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  before_run
  env "${envs[@]}" "$bin" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name (exit $got, expected $want)"; fi
}
wait_for() { for _ in $(seq 1 $((${2:-30} * 20))); do eval "$1" && return 0; sleep 0.05; done; return 1; }
proof() { "$bin" run "$src/tests/e2e/proof.lua" "$seed_json" demo-app demo-copy >"$work/proof" 2>&1; }
replicas() { kubectl -n mendix get mendixapp demo-copy -o jsonpath='{.spec.replicas}'; }
orders() { PGPASSWORD=$MXPC_PG_SUPERPASS psql -Atq -h 127.0.0.1 -p "$MXPC_PG_PLAIN_PORT" -U "$MXPC_PG_SUPERUSER" \
  -d demo_copy -c 'select count(*) from "myfirstmodule$order"'; }
reseed() { "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" "$@"; }
entra_lifetime() {
  python3 - "$MXPC_ENTRA_DIR/config.json" "$1" <<'PY'
import json, os, sys
path, seconds = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    doc = json.load(f)
doc["token_lifetime"] = seconds
with open(path + ".tmp", "w") as f:
    json.dump(doc, f)
os.replace(path + ".tmp", path)
PY
}
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; }
