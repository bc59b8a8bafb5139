#!/usr/bin/env bash
# The portable package (tools/package) in a minimal root filesystem: glibc,
# /bin/sh, pg_dump, pg_restore and psql with the libraries they need, nothing
# else. Run as uid 1001 with the root read-only and a tmpfs on /tmp, like a
# bitnami/postgresql pod: version, where every library is loaded from, a full
# backup of demo-app, verify, restore into demo-copy (with the proof), and
# https to S3 with the CA bundle where Debian, RHEL and Alpine keep it, from
# SSL_CERT_FILE, and missing.
#
# Usage: chroot.sh SOURCE_DIR PACKAGE_BUILD_DIR PROGRAM
#   PACKAGE_BUILD_DIR  the build directory tools/package reuses
#   PROGRAM            a build of the program, for the proof (runs outside)
# Needs root (mount namespace, chroot) and the stack (MXPC_STACK_ENV).
set -uo pipefail

# shellcheck source=tests/package/lib.sh
. "$(dirname "$0")/lib.sh" "$@"

# --- outside: the package and the root --------------------------------------
if [ -z "$inner" ]; then
  [ -n "${MXPC_STACK_ENV:-}" ] || fatal "MXPC_STACK_ENV is not set (start tests/stack/up)"
  [ "$(id -u)" = 0 ] || fatal "needs root (a mount namespace and chroot)"
  for t in unshare chroot mount ldd; do command -v $t >/dev/null || fatal "missing $t"; done
  # shellcheck disable=SC1090
  . "$MXPC_STACK_ENV"
  work=$(mktemp -d /tmp/mxpc-package-test.XXXXXX)
  trap 'rm -rf "$work"; "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >/dev/null' EXIT
  "$src/tests/stack/seed" --env-file "$MXPC_STACK_ENV" >"$work/seed.log" 2>&1 || { cat "$work/seed.log"; fatal "seeding"; }

  start=$(date +%s)
  pkg=$("$src/tools/package" -o "$work/dist" "$pkgbuild" 2>"$work/err") || { bad "tools/package"; finish; }
  ok "tools/package wrote $(basename "$pkg") ($(stat -c %s "$pkg") bytes, $(($(date +%s) - start)) s)"
  case $(basename "$pkg") in
    mxpc-data-migration-[0-9]*.[0-9]*.[0-9]*-linux-*.tar.gz) ok "... named mxpc-data-migration-VERSION-linux-ARCH.tar.gz" ;;
    *) bad "package name $(basename "$pkg")" ;;
  esac

  root=$work/root
  mkdir -p "$root"/{bin,usr/bin,tmp,proc,dev,etc,opt}
  # copy_elf FILE DEST: FILE at DEST in the root, and every library the loader
  # resolves for it at the path it resolves it to
  copy_elf() {
    install -D -m 0755 "$(readlink -f "$1")" "$root$2"
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
      [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
  }
  copy_elf /bin/sh /bin/sh
  for t in pg_dump pg_restore psql; do copy_elf "${MXPC_PG_BINDIR:-/usr/lib/postgresql/15/bin}/$t" "/usr/bin/$t"; done
  touch "$root/dev/null"
  tar -xzf "$pkg" -C "$root/opt" || fatal "cannot unpack $pkg"
  pkgname=$(basename "$pkg" .tar.gz)
  [ -x "$root/opt/$pkgname/mxpc-data-migration" ] && ok "the package unpacks to $pkgname/mxpc-data-migration" ||
    bad "no $pkgname/mxpc-data-migration in the package"
  for f in share/man/man1/mxpc-data-migration.1 share/bash-completion/completions/mxpc-data-migration \
           share/zsh/site-functions/_mxpc-data-migration; do
    [ -s "$root/opt/$pkgname/$f" ] && ok "the package has $f" || bad "the package has no $f"
  done
  # the docs that messages and --help name are in the package
  docs_missing=
  for doc in $(grep -rhoE 'docs/[a-z0-9-]+\.md' "$src/lua" "$src/src" "$src/scripts" | sort -u); do
    [ -s "$root/opt/$pkgname/share/doc/mxpc-data-migration/$doc" ] || docs_missing="$docs_missing $doc"
  done
  [ -z "$docs_missing" ] && ok "the package has the docs the program names" || bad "the package lacks$docs_missing"
  need=$(tar -xzOf "$pkg" "$pkgname/share/doc/mxpc-data-migration/REQUIRES" | awk '{print $2}')
  # the README says which systems it runs on: the glibc it names is the one the package needs
  readme=$(grep -o 'glibc [0-9][0-9.]* or newer' "$src/README.md" | head -1 | awk '{print $2}')
  [ "$readme" = "$need" ] && ok "the README names the glibc the package needs ($need)" ||
    bad "the README names glibc '${readme:-none}', the package needs $need"
  have=$(ldd --version | sed -n '1s/.* //p')
  [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | tail -1)" = "$have" ] &&
    ok "it needs glibc $need, this one is $have" || bad "it needs glibc '$need', this one is $have"
  # the root holds glibc, sh and the pg tools' libraries: none of the program's own
  outside=$(cd "$root" && find . -path ./opt -prune -o -name '*.so*' -print | sed 's|.*/||' | sort)
  missing_here=0
  for l in "$root/opt/$pkgname"/lib/*; do
    echo "$outside" | grep -qx "$(basename "$l")" || missing_here=$((missing_here + 1))
  done
  for l in libcurl.so.4 libarchive.so.13 liblua5.4.so.0; do
    echo "$outside" | grep -qx "$l" && bad "the root has $l outside the package"
  done
  ok "the root has $(echo "$outside" | wc -l) libraries (pg tools and sh), $missing_here of the package's $(ls "$root/opt/$pkgname/lib" | wc -l) not among them"

  passed_outer=$passed failed_outer=$failed
  export work root pkgname src host_bin passed_outer failed_outer
  unshare --mount --propagation private bash "$0" --inner
  exit $?
fi

# --- inside a mount namespace: read-only root, uid 1001 ----------------------
enter_root

jail /bin/sh -c 'while read -r k v; do case $k in Uid:|Gid:|Groups:) echo "$k $v" ;; esac; done < /proc/self/status'
ids=$(tr -s '\t ' '  ' < "$work/out" | sed 's/ *$//' | tr '\n' ';')
check "runs as uid 1001, gid 1001, no other groups ($ids)" \
  test "$ids" = "Uid: 1001 1001 1001 1001;Gid: 1001 1001 1001 1001;Groups:;"
if jail /bin/sh -c 'echo x > /opt/x'; then bad "the root is read-only"; else ok "the root is read-only"; fi
check "/tmp is writable" jail /bin/sh -c 'echo x > /tmp/x'

check "version runs" jail "$P" version
check "... and prints the version" out_has '^mxpc-data-migration [0-9]+\.[0-9]+\.[0-9]+$'
check "... with no CA bundle in the root: says to set SSL_CERT_FILE" out_has '^  CA bundle +none found \(set SSL_CERT_FILE\)$'
check "--version runs" jail "$P" --version

# every object the loader maps is the package's or glibc's
# (LD_DEBUG for the program alone, not for chroot before it)
jail /bin/sh -c "LD_DEBUG=libs exec $P version"
loaded=$(sed -n 's/.*calling init: \(.*\)/\1/p' "$work/err" | sed 's/ *$//' | sort -u)
strays=$(echo "$loaded" | grep -vE "^/opt/$pkgname/lib/|^/lib/x86_64-linux-gnu/(libc|libm|libresolv|libpthread|libdl|librt)\.so\.[0-9]+$|^/lib64/ld-linux" || true)
if [ -n "$loaded" ] && [ -z "$strays" ]; then ok "every library is the package's or glibc's ($(echo "$loaded" | wc -l) loaded)"
else bad "libraries from outside the package: ${strays:-none traced}"; fi
check "... libcurl among them, from the package" grep -qx "/opt/$pkgname/lib/libcurl.so.4" <<<"$loaded"
check "... libpq from the package, not the pg tools' copy" grep -qx "/opt/$pkgname/lib/libpq.so.5" <<<"$loaded"
# the same binary without its lib/ does not start: the root cannot stand in for the package
cp "$root$P" "$root/tmp/lonely" && chmod 0755 "$root/tmp/lonely"
if jail /tmp/lonely version; then bad "the binary needs its lib/"; else
  check "the binary without its lib/ does not start (libcurl.so.4 missing)" err_has 'libcurl\.so\.4'
fi

# backup, verify, restore against the stack
backup_restore

# jump-pod --apply from the package: the next steps copy this very package into the pod
if jail "$P" jump-pod -n mendix -e demo-app --name mxpc-pkg-jump --apply; then
  check "jump-pod --apply from the package: the one command that copies it into the pod" \
    err_has "^  tar -C /opt -czf - $pkgname \| kubectl -n mendix exec -i mxpc-pkg-jump -- tar -xzf - -C /tmp\$"
  check "... and runs it there" err_has "exec mxpc-pkg-jump -- /tmp/$pkgname/mxpc-data-migration backup -n mendix -e demo-app"
else bad "jump-pod --apply from the package"; fi
jail "$P" jump-pod -n mendix -e demo-app --name mxpc-pkg-jump --delete >/dev/null 2>&1

# https to S3: demo-https keeps its files behind the stack's private CA
backup_https() { jail "$@" "$P" backup -n mendix -e demo-https -f /tmp/https.tar.gz --force; }
if backup_https; then bad "https without any CA bundle fails"; else
  check "https without any CA bundle fails: no CA bundle found, set SSL_CERT_FILE" \
    err_has 'no CA bundle found; set SSL_CERT_FILE$'
  check "... naming no bundle path" bash -c '! grep -q "ca-certificates.crt\|ca-bundle" "$0"' "$work/err"
fi
check "https with SSL_CERT_FILE" backup_https SSL_CERT_FILE=/tmp/s3-ca.crt
for place in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
  mount -t tmpfs tmpfs "$root/etc" && install -D -m 0644 "$MXPC_S3_CA" "$root$place"
  check "https with the system's bundle in $place" backup_https
  jail "$P" version
  check "... which version names" out_has "^  CA bundle +$place\$"
  umount "$root/etc"
done
finish
