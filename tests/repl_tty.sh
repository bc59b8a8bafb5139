#!/usr/bin/env bash
# The REPL on a real terminal (tmux): line editing through libedit, a
# continued chunk, Tab completion of globals, fields and methods, Ctrl-C
# stopping running code and clearing a half-typed line, Ctrl-D leaving, and
# the history file written.
set -euo pipefail
bin=$1
home=$(mktemp -d)
sock=$home/tmux.sock
tm() { tmux -S "$sock" "$@"; }
trap 'tm kill-server 2>/dev/null || true; rm -rf "$home"' EXIT
fail() { echo "FAIL: $*"; echo "--- screen:"; tm capture-pane -t r -p || true; echo "0 passed, 1 failed"; exit 1; }
type_line() { tm send-keys -t r -l "$1"; tm send-keys -t r Enter; }
screen_has() { # wait up to 5 s for a line matching the regex
  for _ in $(seq 1 100); do tm capture-pane -t r -p -J | grep -qE "$1" && return 0; sleep 0.05; done
  return 1
}
# complete_to TYPED LINE: types TYPED and Tab, then the prompt's line must be LINE
complete_to() {
  tm send-keys -t r -l "$1"
  tm send-keys -t r Tab
  local rx
  rx=$(printf '%s' "$2" | sed 's/[][\\.^$*+?(){}|]/\\&/g')
  screen_has "^> $rx\$" || fail "$1<Tab> did not complete the line to $2"
}

tm new-session -d -s r -x 200 -y 40 "HOME=$home MXPC_SCRIPTS= $bin repl; echo exited=\$?; sleep 5"
screen_has "Ctrl-D leaves" || fail "no banner"
type_line 'for i = 1, 2 do'
screen_has '^>> $' || fail "no continuation prompt"
type_line 'print(i * 10)'
type_line 'end'
screen_has '^20$' || fail "loop did not run"
# Tab: a method (the common part of get, get_many, get_string, then the one
# left), a global, a module's field; the completed line runs
# (each time once the new prompt shows: keys typed while the program works
# are not yet the prompt's)
prompt() { screen_has '^> ?$' || fail "no prompt after $1"; }
type_line 'c = s3.client{endpoint = "http://127.0.0.1:1", access_key = "tty-key", secret_key = "tty-secret-key"}'
prompt "making the client"
complete_to 'c:g' 'c:get'
complete_to '_st' 'c:get_string'
tm send-keys -t r C-c
prompt "Ctrl-C on a completed line"
complete_to 'str' 'string'
complete_to '.fo' 'string.format'
type_line '("%d-%s", 42, "done")'
screen_has '^"42-done"$' || fail "the completed line did not run"
prompt "running it"
complete_to 'print(wf.reso' 'print(wf.resolve'
tm send-keys -t r C-c
prompt "Ctrl-C on a completed line"
type_line 'while true do end'
sleep 0.3
tm send-keys -t r C-c
screen_has '^\^?C?error: interrupted by SIGINT$' || fail "Ctrl-C did not stop the loop"
# each key only once the prompt shows what came before (keys typed while the
# program prints are not yet the prompt's)
screen_has '^> ?$' || fail "no prompt after the interrupted loop"
tm send-keys -t r -l 'half typed'
screen_has '^> half typed$' || fail "the prompt did not take the typed text"
tm send-keys -t r C-c
screen_has '^> ?$' || fail "no new prompt after Ctrl-C on a typed line"
type_line '"after"'
screen_has '^"after"$' || fail "prompt did not come back after Ctrl-C"
tm send-keys -t r C-d
screen_has '^exited=0$' || fail "Ctrl-D did not leave with exit 0"
grep -q 'while.*true.*do.*end' "$home/.mxpc-data-migration_history" || fail "history not written"
echo "1 passed, 0 failed"
