#!/usr/bin/env bash
# The arm64 portable package (tools/package --arch arm64, cross-built on amd64) in a
# bare arm64 root: arm64 glibc and the arm64 PostgreSQL client tools (unpacked by
# tools/install-deps), nothing else, under qemu-user-static. Run as uid 1001 with
# the root read-only and a tmpfs on /tmp: every object in the package is arm64
# (file, readelf), version, where every library is loaded from, a backup of
# demo-app (a small database and 20 files) from the amd64 stack, verify, restore
# into demo-copy with the proof package.chroot uses.
#
# The kernel runs arm64 programs through binfmt_misc: if qemu-aarch64 is not
# registered, it is registered as Debian's qemu-user-static would
# (/usr/lib/binfmt.d/qemu-aarch64.conf, flag F: the emulator is opened now, so the
# root needs no copy of it), and left registered.
#
# Usage: arm64.sh SOURCE_DIR PACKAGE_BUILD_DIR PROGRAM
#   PACKAGE_BUILD_DIR  the build directory tools/package --arch arm64 reuses
#   PROGRAM            a build of the program, for the proof (runs outside)
# Needs root (binfmt_misc, mount namespace, chroot) and the stack (MXPC_STACK_ENV).
set -uo pipefail

# shellcheck source=tests/package/lib.sh
. "$(dirname "$0")/lib.sh" "$@"
pgtools=/opt/mxpc/arm64-postgresql-client-15/usr/lib/postgresql/15/bin

# --- outside: the package and the root --------------------------------------
if [ -z "$inner" ]; then
  [ -n "${MXPC_STACK_ENV:-}" ] || fatal "MXPC_STACK_ENV is not set (start tests/stack/up)"
  [ "$(id -u)" = 0 ] || fatal "needs root (binfmt_misc, a mount namespace and chroot)"
  for t in unshare chroot mount file readelf qemu-aarch64-static; do command -v $t >/dev/null || fatal "missing $t (tools/install-deps)"; done
  [ -x "$pgtools/pg_dump" ] || fatal "no arm64 pg_dump in $pgtools (tools/install-deps)"
  # shellcheck disable=SC1090
  . "$MXPC_STACK_ENV"
  work=$(mktemp -d /tmp/mxpc-package-arm64.XXXXXX)
  trap 'rm -rf "$work"; "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null' EXIT
  "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { cat "$work/seed.log"; fatal "seeding"; }

  start=$(date +%s)
  pkg=$("$src/tools/package" -o "$work/dist" --arch arm64 "$pkgbuild" 2>"$work/err") || { bad "tools/package --arch arm64"; finish; }
  ok "tools/package --arch arm64 wrote $(basename "$pkg") ($(stat -c %s "$pkg") bytes, $(($(date +%s) - start)) s)"
  case $(basename "$pkg") in
    mxpc-data-migration-[0-9]*.[0-9]*.[0-9]*-linux-arm64.tar.gz) ok "... named mxpc-data-migration-VERSION-linux-arm64.tar.gz" ;;
    *) bad "package name $(basename "$pkg")" ;;
  esac
  check "... and listed in SHA256SUMS beside it" bash -c 'cd "$0" && grep -q " $1\$" SHA256SUMS && sha256sum -c --quiet SHA256SUMS' \
    "$work/dist" "$(basename "$pkg")"

  root=$work/root
  mkdir -p "$root"/{tmp,proc,dev,etc,opt,usr/bin}
  tar -xzf "$pkg" -C "$root/opt" || fatal "cannot unpack $pkg"
  pkgname=$(basename "$pkg" .tar.gz)
  # every ELF object in the package is arm64: file and readelf agree
  elves=0 strays=
  while read -r f; do
    file -b "$f" | grep -q '^ELF' || continue
    elves=$((elves + 1))
    file -b "$f" | grep -q 'ARM aarch64' && [ "$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')" = AArch64 ] ||
      strays="$strays ${f#"$root/opt/"}"
  done < <(find "$root/opt/$pkgname" -type f)
  [ "$elves" -gt 1 ] && [ -z "$strays" ] && ok "all $elves ELF objects in the package are arm64 (file, readelf)" ||
    bad "objects not for arm64:${strays:- none found}"
  need=$(tar -xzOf "$pkg" "$pkgname/share/doc/mxpc-data-migration/REQUIRES" | awk '{print $2}')
  documented=$(sed -n 's/.*`arm64` package needs glibc \([0-9][0-9.]*\).*/\1/p' "$src/docs/jump-pod.md" | head -1)
  [ "$documented" = "$need" ] && ok "docs/jump-pod.md names the glibc the arm64 package needs ($need)" ||
    bad "docs/jump-pod.md names glibc '${documented:-none}' for arm64, the package needs $need"

  # the root: arm64 glibc and the pg tools with the libraries the arm64 loader resolves for them
  for t in pg_dump pg_restore psql; do
    install -D -m 0755 "$pgtools/$t" "$root/usr/bin/$t"
    qemu-aarch64-static -L / /lib/ld-linux-aarch64.so.1 --list "$pgtools/$t" |
      awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
        [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
      done
  done
  touch "$root/dev/null"
  notarm=$(cd "$root" && find . -path ./opt -prune -o -type f -print | while read -r f; do
    file -b "$f" | grep -q '^ELF' && ! file -b "$f" | grep -q 'ARM aarch64' && echo "$f"; done)
  [ -z "$notarm" ] && ok "the root holds arm64 objects only" || bad "not arm64 in the root: $notarm"

  # binfmt_misc: the kernel hands arm64 programs (and those they spawn: pg_dump) to qemu
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>"$work/err"
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] && grep -v '^#' "$conf" > /proc/sys/fs/binfmt_misc/register 2>"$work/err" ||
      fatal "cannot register qemu-aarch64 with binfmt_misc ($conf)"
  fi
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 && ok "binfmt_misc runs arm64 programs with qemu-aarch64-static" ||
    bad "qemu-aarch64 is registered without flag F (the root has no emulator)"

  passed_outer=$passed failed_outer=$failed
  export work root pkgname src host_bin passed_outer failed_outer
  unshare --mount --propagation private bash "$0" --inner
  exit $?
fi

# --- inside a mount namespace: read-only root, uid 1001 ----------------------
enter_root

check "version runs (arm64, emulated)" jail "$P" version
check "... and prints the version" out_has '^mxpc-data-migration [0-9]+\.[0-9]+\.[0-9]+$'
# every object the loader maps is the package's or glibc's (LD_DEBUG reaches the
# chroot program too: its amd64 objects are left out)
jail LD_DEBUG=libs "$P" version
loaded=$(sed -n 's/.*calling init: \(.*\)/\1/p' "$work/err" | sed 's/ *$//' | grep -vE "x86[-_]64" | sort -u)
strays=$(echo "$loaded" | grep -vE "^/opt/$pkgname/lib/|^/lib/aarch64-linux-gnu/(libc|libm|libresolv|libpthread|libdl|librt)\.so\.[0-9]+$|^/lib/ld-linux-aarch64" || true)
if [ -n "$loaded" ] && [ -z "$strays" ]; then ok "every library is the package's or glibc's ($(echo "$loaded" | wc -l) loaded)"
else bad "libraries from outside the package: ${strays:-none traced}"; fi
check "... libcurl among them, from the package" grep -qx "/opt/$pkgname/lib/libcurl.so.4" <<<"$loaded"
check "... libpq from the package, not the pg tools' copy" grep -qx "/opt/$pkgname/lib/libpq.so.5" <<<"$loaded"
check "... glibc from the root's /lib/aarch64-linux-gnu" grep -qx "/lib/aarch64-linux-gnu/libc.so.6" <<<"$loaded"

# backup, verify, restore against the (amd64) stack
t0=$(date +%s)
backup_restore
echo "     (backup, verify, restore and the proof under emulation: $(($(date +%s) - t0)) s)"
finish
