# Sourced by the stack's shell tests. Each check prints "ok - ..." or "FAIL - ...";
# finish prints the closing "N passed, M failed" and exits non-zero on any failure.

PASSED=0
FAILED=0
STACK_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1${2:+: $2}"; }

# run COMMAND...: capture combined output in OUT and the exit code in RC.
run() { OUT=$("$@" 2>&1); RC=$?; }

# expect DESCRIPTION TEST...: pass when TEST succeeds; on failure show the last output.
expect() {
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else fail "$desc" "rc=$RC: $(printf '%s' "$OUT" | tail -n 3 | tr '\n' ' ')"; fi
}
succeeded() { [ "$RC" = 0 ]; }
failed() { [ "$RC" != 0 ]; }
has() { grep -qF -- "$1" <<<"$OUT"; }
lacks() { ! grep -qF -- "$1" <<<"$OUT"; }

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]
  exit
}

# The stack under test comes from MXPC_STACK_ENV; without it the test fails, never skips.
require_stack() {
  if [ -z "${MXPC_STACK_ENV:-}" ]; then
    fail "MXPC_STACK_ENV is set (path of the stack's env.sh; start one with tests/stack/up)"
    finish
  fi
  if [ ! -r "$MXPC_STACK_ENV" ]; then
    fail "MXPC_STACK_ENV=$MXPC_STACK_ENV is readable"
    finish
  fi
  . "$MXPC_STACK_ENV"
}

# need_cmd COMMAND PACKAGE: a missing tool is a failure with a clear message.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 && return
  fail "$1 is installed (Debian package $2)"
  finish
}
