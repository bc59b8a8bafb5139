# Shared by the package tests (chroot.sh, arm64.sh): reporting, and inside their
# mount namespace the read-only root run as uid 1001. Sourced with the script's
# arguments (SOURCE_DIR PACKAGE_BUILD_DIR PROGRAM, or --inner in the namespace);
# the caller sets work, root, pkgname (exported with passed_outer, failed_outer
# for --inner).
if [ "${1:-}" = --inner ]; then
  inner=1
else
  inner=
  src=$1 pkgbuild=$2 host_bin=$3
fi
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -s "$work/err" ] && sed 's/^/  /' "$work/err" | tail -8; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }
fatal() { echo "FAIL $*"; failed=$((failed + 1)); finish; }

# enter_root: (in the mount namespace) the root read-only, a tmpfs on /tmp with
# the stack's kubeconfig and CA files, /proc, /dev/null; P the program's path in it
enter_root() {
  passed=$passed_outer failed=$failed_outer
  # shellcheck disable=SC1090
  . "$MXPC_STACK_ENV"
  mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" || fatal "cannot make the root read-only"
  mount -t tmpfs -o mode=1777,size=256m tmpfs "$root/tmp" || fatal "cannot mount /tmp"
  mount -t proc proc "$root/proc" || fatal "cannot mount /proc"
  mount --bind /dev/null "$root/dev/null" || fatal "cannot bind /dev/null"
  install -m 0644 "$MXPC_KUBECONFIG" "$root/tmp/kubeconfig"
  install -m 0644 "$MXPC_PG_CA" "$root/tmp/pg-ca.crt"
  install -m 0644 "$MXPC_S3_CA" "$root/tmp/s3-ca.crt"
  P=/opt/$pkgname/mxpc-data-migration
  chroot=$(command -v chroot)
}

# jail [VAR=VALUE...] COMMAND ARGS...: in the root as 1001:1001, with only these
# variables; stdout to $work/out, stderr to $work/err; returns the exit code
jail() {
  local vars=()
  while [[ ${1:-} == *=* ]]; do vars+=("$1"); shift; done
  env -i HOME=/tmp PATH=/usr/bin:/bin TMPDIR=/tmp KUBECONFIG=/tmp/kubeconfig PGSSLROOTCERT=/tmp/pg-ca.crt "${vars[@]}" \
    "$chroot" --userspec=1001:1001 "$root" "$@" >"$work/out" 2>"$work/err"
}
out_has() { grep -qE "$1" "$work/out"; }
err_has() { grep -qE "$1" "$work/err"; }

# backup_restore: in the root, a backup of demo-app, verify, a restore into
# demo-copy; then the proof (tests/e2e/proof.lua, by the build's program outside)
backup_restore() {
  check "backup of demo-app" jail "$P" backup -n mendix -e demo-app -f /tmp/demo.tar.gz
  check "... its 20 files" out_has "20 files"
  check "... the archive belongs to uid 1001" test "$(stat -c %u "$root/tmp/demo.tar.gz")" = 1001
  check "verify the archive" jail "$P" verify /tmp/demo.tar.gz
  check "restore into demo-copy" jail "$P" restore -n mendix -e demo-copy -f /tmp/demo.tar.gz --stop-app
  if MXPC_SCRIPTS= MXPC_DATADIR= "$host_bin" run "$src/tests/e2e/proof.lua" "$MXPC_STACK_DIR/seed.json" demo-app demo-copy >"$work/err" 2>&1; then
    ok "demo-copy holds demo-app's tables, sequences and files"
  else bad "the proof after the restore"; fi
}
