#!/usr/bin/env bash
# Progress and JSON logs on the local stack. The files are served through
# bench/latency_proxy.py (30 ms each way), so a copy lasts long enough to be
# seen: on a terminal (tmux) one status line rewritten in place and erased at
# the end; without a terminal periodic lines (MXPC_PROGRESS_INTERVAL=0.2);
# with --log-format json every stderr line of a backup, a restore, a failing
# run and a usage error is JSON, with numbers as numbers, progress events,
# error codes and the summaries; -q shows no progress. Needs MXPC_STACK_ENV;
# reseeds the namespace before and after.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh" "$@"
sock=$work/tmux.sock
tm() { tmux -S "$sock" "$@"; }
proxy_pid=
cleanup() {
  tm kill-server 2>/dev/null || true
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  reseed >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
# a failure shows the last 8 lines of stderr
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$work/err" ] && sed 's/^/  /' "$work/err" | tail -8; }

# the S3 server behind the latency proxy, and the environments seeded to use it
python3 "$src/bench/latency_proxy.py" --target "${MXPC_S3_ENDPOINT#http://}" --delay 30 >"$work/proxy.out" &
proxy_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/proxy.out" && break; sleep 0.05; done
proxy=$(sed -n 's/^listening on //p' "$work/proxy.out")
[ -n "$proxy" ] || { echo "FAIL: the latency proxy did not start"; echo "0 passed, 1 failed"; exit 1; }
sed "s|^export MXPC_S3_ENDPOINT=.*|export MXPC_S3_ENDPOINT=http://$proxy|" "$MXPC_STACK_ENV" >"$work/env.sh"
"$src/tests/stack/seed" --env-file "$work/env.sh" --out "$work/seed.json" --files 30 --file-size-dist 64k:1 \
  >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

# --- without a terminal: a line every MXPC_PROGRESS_INTERVAL seconds ---------
MXPC_PROGRESS_INTERVAL=0.2 "$bin" backup -n mendix -e demo-app -f "$work/a.tar.gz" --concurrency 1 \
  >"$work/out" 2>"$work/err"; rc=$?
check "backup through the slow storage" '[ $rc = 0 ] && [ -s "$work/a.tar.gz" ]'
grep '^info: copying files [0-9]*%' "$work/err" >"$work/lines"
check "periodic lines while the files are copied ($(wc -l <"$work/lines"))" '[ "$(wc -l <"$work/lines")" -ge 4 ]'
check "... with files, bytes, rate and time left" \
  'grep -qE "^info: copying files [0-9]+%, [0-9]+/30 files, [0-9.]+ (B|KiB|MiB) of [0-9.]+ (KiB|MiB), [0-9.]+ (B|KiB|MiB)/s, [0-9]+:[0-9]{2} left$" "$work/lines"'
check "... counting up" 'sed -E "s/.*, ([0-9]+)\/30 files.*/\1/" "$work/lines" | sort -n -c'
check "... and a last line for the phase" \
  'tail -1 "$work/lines" | grep -qE "^info: copying files 100%, 30/30 files, ([0-9.]+ [KM]iB) of \1, .*/s, in [0-9]+:[0-9]{2}$"'
check "no control characters without a terminal" '! grep -qP "[\\r\\x1b]" "$work/err"'

"$bin" -q backup -n mendix -e demo-app -f "$work/q.tar.gz" --concurrency 1 >"$work/out" 2>"$work/err"; rc=$?
check "-q: no progress" '[ $rc = 0 ] && [ ! -s "$work/err" ]'

MXPC_PROGRESS_INTERVAL=0.2 "$bin" restore -n mendix -e demo-copy -f "$work/a.tar.gz" --stop-app --concurrency 1 \
  >"$work/out" 2>"$work/err"; rc=$?
check "restore through the slow storage" '[ $rc = 0 ]'
check "periodic lines while the files are uploaded" \
  '[ "$(grep -cE "^info: uploading files [0-9]+%, [0-9]+/30 files" "$work/err")" -ge 3 ]'

# --- on a terminal: one line rewritten in place --------------------------------
tm new-session -d -s p -x 160 -y 40 "bash --norc --noprofile"
tm pipe-pane -t p -o "cat >>'$work/raw'"
tm send-keys -t p "MXPC_SCRIPTS= MXPC_DATADIR= KUBECONFIG=$KUBECONFIG PGSSLROOTCERT=$PGSSLROOTCERT $bin backup -n mendix -e demo-app -f $work/t.tar.gz --concurrency 1; echo exited=\$?" Enter
for _ in $(seq 1 600); do tm capture-pane -t p -p | grep -q '^exited=' && break; sleep 0.05; done
tm capture-pane -t p -p >"$work/screen"
cp "$work/raw" "$work/err" 2>/dev/null
check "backup on a terminal" 'grep -q "^exited=0$" "$work/screen"'
python3 - "$work/raw" >"$work/statuses" <<'EOF'
import re, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
# the status line: \r, the text, erase to the end of the line
for m in re.findall(r"\r([^\r\n\x1b]+)\x1b\[K", raw):
    print(m)
EOF
grep '^copying files' "$work/statuses" >"$work/status"
check "the copy's status line is rewritten in place ($(sort -u "$work/status" | wc -l) states)" \
  '[ "$(sort -u "$work/status" | wc -l)" -ge 4 ]'
check "... with %, files, bytes, rate and time left" \
  'grep -qE "^copying files [0-9]+%, [0-9]+/30 files, [0-9.]+ (B|KiB|MiB) of [0-9.]+ (KiB|MiB), [0-9.]+ (B|KiB|MiB)/s, [0-9]+:[0-9]{2} left" "$work/status"'
check "... the dump's shown while it runs" 'grep -q "^dumping the database, " "$work/statuses"'
check "... and erased at the end: no progress left on the screen" \
  '! grep -qE "copying files|dumping the database," "$work/screen" && grep -q "^backup of mendix/demo-app written" "$work/screen"'
check "log lines stay whole above it" 'grep -q "^info: backup written " "$work/screen"'

# Ctrl-C while the line shows: it is erased, the error line stands alone
tm send-keys -t p "clear; MXPC_SCRIPTS= MXPC_DATADIR= KUBECONFIG=$KUBECONFIG PGSSLROOTCERT=$PGSSLROOTCERT $bin backup -n mendix -e demo-app -f $work/c.tar.gz --concurrency 1; echo exited=\$?" Enter
for _ in $(seq 1 600); do tm capture-pane -t p -p | grep -qE '^copying files [1-9]' && break; sleep 0.05; done
tm send-keys -t p C-c
for _ in $(seq 1 600); do tm capture-pane -t p -p | grep -q '^exited=' && break; sleep 0.05; done
tm capture-pane -t p -p >"$work/screen"
check "Ctrl-C on a terminal: exit 130" 'grep -q "^exited=130$" "$work/screen"'
check "... the status line erased, one error line in its place" \
  'grep -qE "^(\^C)?error: interrupted by SIGINT$" "$work/screen" && ! grep -q "copying files" "$work/screen"'

# --- JSON: every line of every kind of run ---------------------------------------
json_ok() { # FILE: every line is a JSON object; prints what it found
  python3 - "$1" <<'EOF'
import json, sys
kinds = set()
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    o = json.loads(line)
    assert isinstance(o, dict), f"line {n} is not an object"
    assert isinstance(o.get("time"), str) and o.get("level") and isinstance(o.get("msg"), str), f"line {n}: {line}"
    ev = o.get("event")
    if ev == "progress":
        for k in ("done", "bytes", "seconds"):
            assert type(o[k]) in (int, float), f"line {n}: {k} is not a number: {line}"
        for k in ("total", "rate", "eta", "total_bytes"):
            assert o[k] is None or type(o[k]) in (int, float), f"line {n}: {k}: {line}"
        assert o["phase"] and o["unit"] in ("files", "objects", "bytes"), line
        kinds.add("progress:" + o["phase"])
    elif ev == "error":
        assert o["level"] == "error" and isinstance(o["code"], str) and type(o["exit"]) is int, line
        kinds.add("error:" + o["code"])
    elif ev == "summary":
        assert type(o["bytes"]) is int and type(o["seconds"]) is int, line
        kinds.add("summary")
    for k in ("replicas", "pods", "dump_bytes", "missing"):
        assert k not in o or type(o[k]) is int, f"line {n}: {k} is not a number: {line}"
print(" ".join(sorted(kinds)))
EOF
}
"$bin" --log-format json backup -n mendix -e demo-app -f "$work/j.tar.gz" >"$work/out" 2>"$work/err"; rc=$?
check "json backup" '[ $rc = 0 ]'
kinds=$(json_ok "$work/err") && ok "... every stderr line is JSON ($kinds)" || bad "... every stderr line is JSON"
check "... with progress events of the dump, its way into the archive and the copy, and the summary" \
  '[[ " $kinds " == *" progress:copy "* && " $kinds " == *" progress:archive_dump "* && " $kinds " == *" progress:dump "* && " $kinds " == *" summary "* ]]'
"$bin" restore --log-format json -n mendix -e demo-copy -f "$work/j.tar.gz" --stop-app >"$work/out" 2>"$work/err"; rc=$?
check "json restore" '[ $rc = 0 ]'
kinds=$(json_ok "$work/err") && ok "... every stderr line is JSON ($kinds)" || bad "... every stderr line is JSON"
check "... with progress events of the check, the uploads and the database, and the summary" \
  '[[ " $kinds " == *" progress:check "* && " $kinds " == *" progress:upload "* && " $kinds " == *" progress:restore "* && " $kinds " == *" summary "* ]]'
check "... the database's progress counts the dump read, to its size" 'python3 -c "
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
last = [e for e in ev if e.get(\"phase\") == \"restore\"][-1]
assert last[\"final\"] and last[\"unit\"] == \"bytes\" and last[\"total\"] > 0 and last[\"done\"] == last[\"total\"], last
" "$work/err"'
head -c 100000 "$work/j.tar.gz" >"$work/cut.tar.gz"
"$bin" --log-format json restore -n mendix -e demo-copy -f "$work/cut.tar.gz" --stop-app >"$work/out" 2>"$work/err"; rc=$?
check "json failing restore exits 1" '[ $rc = 1 ]'
kinds=$(json_ok "$work/err") && ok "... every stderr line is JSON ($kinds)" || bad "... every stderr line is JSON"
check "... ending in an error event with its code" 'tail -1 "$work/err" | grep -q "\"event\":\"error\"" && [[ "$kinds" == *error:* ]]'
"$bin" backup -n mendix --log-format json --no-such-option >"$work/out" 2>"$work/err"; rc=$?
check "json usage error exits 2" '[ $rc = 2 ]'
kinds=$(json_ok "$work/err") && ok "... every stderr line is JSON ($kinds)" || bad "... every stderr line is JSON"
check "... one error event with code usage" '[ "$(wc -l <"$work/err")" = 1 ] && [ "$kinds" = "error:usage" ]'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
