#!/usr/bin/env bash
# End to end on the local stack: archives that never touch a disk of their own.
# backup -f - piped into restore -f -, with the proof; refusals (a terminal,
# empty input, no room to spool); and failures and Ctrl-C on either side of the
# pipe: the reader sees a broken archive, nothing is restored, and no spool
# file or working directory is left. Needs MXPC_STACK_ENV; reseeds the
# namespace before and after.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" "$@"
# the private working directories (and the spool file) of both sides go here
export TMPDIR=$work/tmp
mkdir "$TMPDIR"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"; reseed >/dev/null' EXIT
# both sides of a pipe write their own stderr file: show them all
bad() { failed=$((failed + 1)); echo "FAIL $1"; for f in "$work"/*.err; do [ -f "$f" ] && { echo "  $f:"; tail -4 "$f" | sed 's/^/  /'; }; done; }
tmp_empty() { [ -z "$(ls -A "$TMPDIR")" ]; }

"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { echo "FAIL: seeding"; tail -20 "$work/seed.log"; echo "0 passed, 1 failed"; exit 1; }

# --- the pipe ---------------------------------------------------------------------
"$bin" backup -n mendix -e demo-app -f - 2>"$work/backup.err" \
  | "$bin" restore -n mendix -e demo-copy -f - --stop-app >"$work/restore.out" 2>"$work/restore.err"
codes="${PIPESTATUS[*]}"
check "backup -f - | restore -f - both exit 0" '[ "$codes" = "0 0" ]'
check "... the backup reports on stderr" 'grep -q "written to standard output: database [0-9]* bytes, 20 files" "$work/backup.err"'
check "... the restore read standard input" 'grep -q "restored standard input into mendix/demo-copy: database, 20 files" "$work/restore.out"'
check "... after copying it into the working directory" 'grep -q "reading the archive from standard input into the working directory" "$work/restore.err"'
if proof; then ok "demo-copy holds demo-app's tables, sequences and files"; else bad "proof"; cat "$work/proof"; fi
check "no spool file or working directory left" tmp_empty

"$bin" -q backup -n mendix -e demo-app -f - >"$work/demo.tar.gz" 2>"$work/q.err"
check "backup -f - > file: a valid archive" '"$bin" verify "$work/demo.tar.gz" >/dev/null 2>&1'
check "... and nothing but the archive on stdout" 'gzip -t "$work/demo.tar.gz"'
"$bin" backup -n mendix -e demo-app -f - --dry-run >"$work/dry.out" 2>"$work/dry.err"
check "backup --dry-run -f - says where the archive would go, and writes no archive" \
  '[ $? = 0 ] && grep -q "archive: would go to standard output" "$work/dry.out" && ! grep -q "written to" "$work/dry.out"'
# hooks that write to standard output every way there is, while the archive is
# written and after: none of it reaches the archive's stream, all of it stderr
cat >"$work/hooks.lua" <<'LUA'
local n = 0
return {
  before_backup = function()
    print("hook", "before")
    io.stdout:write("hook stdout-write\n")
    io.stdout:flush()
    os.execute("echo hook os-execute")
    local p = io.popen("echo hook popen-w", "w"); p:close()
  end,
  select_file = function()
    n = n + 1
    if n == 2 then
      _G.print = function(...) io.stdout:write(table.concat({ ... }, " "), "\n"); io.stdout:flush() end
      print("hook replaced-print")
      os.execute("printf 'hook raw-fd1\\n' >&1")
    end
    return true
  end,
  after_backup = function() io.write("hook after\n"); io.stdout:flush(); os.execute("echo hook after-execute") end,
}
LUA
"$bin" -q backup -n mendix -e demo-app -f - --hooks "$work/hooks.lua" >"$work/hooked.tar.gz" 2>"$work/hooked.err"
check "backup -f - with hooks that write to stdout: exit 0" '[ $? = 0 ]'
check "... the archive stays valid" 'gzip -t "$work/hooked.tar.gz" && "$bin" verify "$work/hooked.tar.gz" >/dev/null 2>&1'
check "... nothing after it on stdout" '[ "$(gzip -dc "$work/hooked.tar.gz" | wc -c)" -gt 0 ] && ! grep -aq "hook" "$work/hooked.tar.gz"'
for what in "before" "stdout-write" "os-execute" "popen-w" "replaced-print" "raw-fd1" "after" "after-execute"; do
  check "... what they write goes to stderr: $what" 'grep -aq "hook[[:space:]]$what" "$work/hooked.err"'
done
"$bin" -q backup -n mendix -e demo-app -f - --database-only >"$work/db.backup" 2>"$work/q.err"
check "backup -f - --database-only: a bare dump on stdout" '[ "$(head -c 5 "$work/db.backup")" = PGDMP ]'
"$bin" restore -n mendix -e demo-copy -f - --stop-app <"$work/db.backup" >"$work/restore.out" 2>"$work/restore.err"
check "restore -f - of a database-only backup" '[ $? = 0 ] && grep -q "database, 0 files" "$work/restore.out" && [ "$(orders)" = 100 ]'
check "... and no spool file left" tmp_empty

# --- refusals -----------------------------------------------------------------------
# input that is not an archive, or never ends, is refused as it arrives. These
# run with memory, file size and time limited, so that a regression fails
# here instead of filling the memory or the disk: ulimit -v (under ASan, which
# reserves terabytes of address space, its hard_rss_limit_mb instead), ulimit
# -f 100 MiB (SIGXFSZ), 60 s.
# (grep -c, not -q: with pipefail, ldd cut short by -q would make the test false)
under_asan=$(ldd "$bin" 2>/dev/null | grep -c libasan)
limited() {
  if [ "$under_asan" != 0 ]; then
    (ulimit -f 102400; ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=1500 timeout 60 "$@")
  else
    (ulimit -f 102400 -v 1500000; timeout 60 "$@")
  fi
}
refused_at_once() { # name, pattern, command producing the input
  local name=$1 pattern=$2
  shift 2
  local t0=$SECONDS
  "$@" 2>/dev/null | limited "$bin" restore -n mendix -e demo-copy -f - --stop-app >"$work/zero.out" 2>"$work/zero.err"
  local code=${PIPESTATUS[1]}
  check "$name: refused (exit 1) in $((SECONDS - t0)) s" '[ "$code" = 1 ]'
  check "... saying why" 'grep -q -- "$pattern" "$work/zero.err"'
  check "... before the app is stopped" '! grep -q "stopping the app" "$work/zero.err" && [ "$(replicas)" = 1 ]'
  check "... and leaves no spool file" tmp_empty
}
refused_at_once "/dev/zero on stdin" \
  "^error: standard input is not a backup archive: it starts with the bytes 00 00 00 00 00 00 00 00, not with" cat /dev/zero
refused_at_once "text on stdin" "it starts with the bytes 68 65 6c 6c 6f 0a, not with those of a .tar.gz archive" \
  echo hello
refused_at_once "gzip-compressed zeros that never end" \
  "^error: standard input: more than 1048576 bytes of data after the end of the tar archive" sh -c 'gzip -1 </dev/zero'
mkdir "$work/other" && echo x >"$work/other/notes.txt"
refused_at_once "a .tar.gz of something else" \
  'not a backup archive: entry "notes.txt": not part of the backup archive layout' tar -czf - -C "$work/other" notes.txt
refused_at_once "an archive that breaks in the middle, then never ends" "^error: standard input: .*corrupt gzip data" \
  sh -c "head -c 200000 '$work/demo.tar.gz'; head -c 4096 /dev/urandom; cat /dev/zero"
script -qec "$bin backup -n mendix -e demo-app -f -" /dev/null >"$work/tty.out" 2>&1
code=$?
check "backup -f - to a terminal is refused (exit 2)" '[ $code = 2 ] && grep -q "refusing to write the archive to a terminal" "$work/tty.out"'
check "... before any work" '! grep -q "dumping the database" "$work/tty.out"'
script -qec "$bin restore -n mendix -e demo-copy -f -" /dev/null >"$work/tty.out" 2>&1
code=$?
check "restore -f - from a terminal is refused (exit 2)" '[ $code = 2 ] && grep -q "standard input is a terminal" "$work/tty.out"'

"$bin" restore -n mendix -e demo-copy -f - --stop-app </dev/null >"$work/empty.out" 2>"$work/empty.err"
check "restore from empty standard input fails" '[ $? = 1 ] && grep -q "standard input is empty" "$work/empty.err"'
check "... and leaves no spool file" tmp_empty

before=$(orders)
MXPC_MIN_FREE=$((1 << 62)) "$bin" restore -n mendix -e demo-copy -f - --stop-app <"$work/demo.tar.gz" >"$work/space.out" 2>"$work/space.err"
check "no room to spool standard input: exit 1" '[ $? = 1 ]'
check "... saying where and what to do" 'grep -q "not enough space in $TMPDIR/\\.\?mxpc-work-.* for the archive read from standard input" "$work/space.err" && grep -q "TMPDIR" "$work/space.err"'
check "... without touching the app or the database" '[ "$(replicas)" = 1 ] && [ "$(orders)" = "$before" ]'
check "... and leaves no spool file" tmp_empty

head -c 300000 "$work/demo.tar.gz" | "$bin" restore -n mendix -e demo-copy -f - --stop-app >"$work/cut.out" 2>"$work/cut.err"
check "a truncated archive on stdin is refused" '[ $? = 1 ] && grep -q "truncated" "$work/cut.err"'
check "... before the app is stopped" '[ "$(replicas)" = 1 ] && ! grep -q "stopping the app" "$work/cut.err"'
check "... and leaves no spool file" tmp_empty

"$bin" restore -n mendix -e demo-copy -f - <"$work/demo.tar.gz" >"$work/run.out" 2>"$work/run.err"
check "restore -f - into a running app is refused after the check" '[ $? = 1 ] && grep -q "is running" "$work/run.err"'
check "... and the spool file is removed" tmp_empty

# --- failures and Ctrl-C on either side of the pipe ---------------------------------
# larger files, so that there is time to interrupt
"$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" --files 24 --file-size-dist 4m:1 >"$work/seed.log" 2>&1 \
  || { bad "seeding larger files"; }
before=$(orders)

# the backup is interrupted while it streams: the restore reading the pipe sees
# a broken archive, and changes nothing (the first 100 kB pass at once, the
# rest only after a while: the signal comes once part of the archive is out
# and the backup is still writing, however fast or slow it is)
mkfifo "$work/pipe"
{ head -c 100000; : >"$work/first"; sleep 3; cat; } <"$work/pipe" \
  | "$bin" restore -n mendix -e demo-copy -f - --stop-app >"$work/r.out" 2>"$work/r.err" & rpid=$!
"$bin" backup -n mendix -e demo-app -f - >"$work/pipe" 2>"$work/b.err" & bpid=$!
wait_for '[ -e "$work/first" ]' 180 || bad "the backup wrote part of the archive"
kill -INT $bpid; wait $bpid; bcode=$?
wait $rpid; rcode=$?
check "interrupted backup -f - exits 130" '[ $bcode = 130 ] && grep -q "^error: interrupted by SIGINT$" "$work/b.err"'
check "... the restore reading it fails (exit 1)" '[ $rcode = 1 ]'
check "... because the archive is broken" 'grep -Eq "error: standard input: .*(truncated|end-of-archive|unexpected end)" "$work/r.err"'
check "... before the app is stopped" '! grep -q "stopping the app" "$work/r.err" && [ "$(replicas)" = 1 ]'
check "... the database is untouched" '[ "$(orders)" = "$before" ]'
check "... and neither side left a file in TMPDIR" tmp_empty

# what the interrupted backup wrote is not a valid archive, for gzip, tar and verify
# (a reader that waits holds the backup up, so the signal comes before its end)
# (the reader takes the first 100 kB, then waits: the signal comes once part of
# the archive is out and the backup is still writing, however fast or slow it is)
mkfifo "$work/pipe2"
{ head -c 100000; sleep 3; cat; } <"$work/pipe2" >"$work/partial.tar.gz" & cpid=$!
"$bin" backup -n mendix -e demo-app -f - >"$work/pipe2" 2>"$work/b.err" & bpid=$!
wait_for '[ "$(stat -c %s "$work/partial.tar.gz")" -ge 100000 ]' 180 || bad "the backup wrote part of the archive"
kill -TERM $bpid; wait $bpid; bcode=$?
wait $cpid
check "backup -f - stopped by SIGTERM exits 143" '[ $bcode = 143 ]'
check "... its output is not empty" '[ -s "$work/partial.tar.gz" ]'
check "... gzip finds no end" '! gzip -t "$work/partial.tar.gz" 2>/dev/null'
check "... tar sees a broken archive" '! tar -tzf "$work/partial.tar.gz" >/dev/null 2>&1'
check "... and verify rejects it" '! "$bin" verify "$work/partial.tar.gz" >/dev/null 2>&1'
check "... no working directory left" tmp_empty

# the restore is interrupted while it copies standard input
"$bin" -q backup -n mendix -e demo-app -f - >"$work/full.tar.gz" 2>"$work/b.err"
{ head -c 2000000 "$work/full.tar.gz"; sleep 30; } 2>/dev/null \
  | "$bin" restore -n mendix -e demo-copy -f - --stop-app >"$work/r.out" 2>"$work/r.err" & rpid=$!
wait_for '[ -n "$(find "$TMPDIR" -name archive -size +1000k)" ]' 180 || bad "the restore spooled its input"
kill -INT $rpid; wait $rpid; rcode=$?
check "restore -f - interrupted while spooling exits 130" '[ $rcode = 130 ]'
check "restore -f - interrupted while spooling: the spool file is removed" tmp_empty
check "... with the interruption reported" 'grep -q "^error: interrupted by SIGINT$" "$work/r.err"'
check "... and nothing changed" '[ "$(replicas)" = 1 ] && [ "$(orders)" = "$before" ]'
kill $(jobs -p) 2>/dev/null

# a restore interrupted while it uploads the files (after the spool was checked)
"$bin" restore -n mendix -e demo-copy -f - --stop-app <"$work/full.tar.gz" >"$work/r.out" 2>"$work/r.err" & rpid=$!
wait_for 'grep -q "connected to the database" "$work/r.err"' 180 || bad "the restore reached the upload"
kill -INT $rpid; wait $rpid; rcode=$?
check "restore -f - interrupted while restoring exits 130" '[ $rcode = 130 ]'
check "... the app ran on (--stop-app stops it only for the database phase)" \
  '[ "$(replicas)" = 1 ] && ! grep -q "stopping the app" "$work/r.err"'
check "... leaves the database untouched" '[ "$(orders)" = "$before" ]'
check "... and removes the spool file" tmp_empty

finish
