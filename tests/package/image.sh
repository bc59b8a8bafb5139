#!/usr/bin/env bash
# The image scheduled backups run in (tools/image): an OCI image archive that
# skopeo reads, tagged VERSION-pgMAJOR, an image index of linux/amd64 and
# linux/arm64, running as 1001:1001, holding nothing but the tool, the PostgreSQL
# client tools, glibc, /bin/sh and the CA certificates (no compiler, no package
# manager), the arm64 image arm64 objects only; its root runs the tool as uid
# 1001, read-only.
#
# Usage: image.sh SOURCE_DIR PACKAGE_BUILD_DIR
# Needs root (a mount namespace and chroot) and skopeo.
set -uo pipefail
src=$1 pkgbuild=$2
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -s "$work/err" ] && sed 's/^/  /' "$work/err" | tail -8; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }
work=$(mktemp -d /tmp/mxpc-image-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ "$(id -u)" = 0 ] || { bad "needs root (a mount namespace and chroot)"; finish; }
command -v skopeo >/dev/null || { bad "needs skopeo (tools/install-deps)"; finish; }

start=$(date +%s)
archive=$("$src/tools/image" -o "$work/dist" "$pkgbuild" 2>"$work/err") || { bad "tools/image"; finish; }
ok "tools/image wrote $(basename "$archive") ($(stat -c %s "$archive") bytes, $(($(date +%s) - start)) s)"
version=$("$pkgbuild/mxpc-data-migration" version | sed -n '1s/^mxpc-data-migration //p')
check "... named mxpc-data-migration-VERSION-pg15.oci.tar" '[ "$(basename "$archive")" = "mxpc-data-migration-$version-pg15.oci.tar" ]'

skopeo inspect "oci-archive:$archive" >"$work/inspect.json" 2>"$work/err"
check "skopeo inspect reads it" '[ -s "$work/inspect.json" ]'
skopeo inspect --config "oci-archive:$archive" >"$work/config.json" 2>"$work/err"
check "... its config: user 1001:1001, the tool as entrypoint, its version and PostgreSQL major" \
  'python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))[\"config\"]
assert c[\"User\"] == \"1001:1001\", c[\"User\"]
assert c[\"Entrypoint\"] == [\"mxpc-data-migration\"], c
assert c[\"Labels\"][\"org.opencontainers.image.version\"] == sys.argv[2], c[\"Labels\"]
assert c[\"Labels\"][\"mxpc-data-migration.postgresql-major\"] == \"15\", c[\"Labels\"]
" "$work/config.json" "$version"'
mkdir "$work/oci"
tar -xf "$archive" -C "$work/oci"
check "... tagged $version-pg15" \
  'grep -q "\"org.opencontainers.image.ref.name\": \"$version-pg15\"" "$work/oci/index.json"'
skopeo inspect --raw "oci-archive:$archive" >"$work/raw.json" 2>"$work/err"
check "skopeo inspect --raw shows an image index of linux/amd64 and linux/arm64" \
  'python3 -c "
import json, sys
i = json.load(open(sys.argv[1]))
assert i[\"mediaType\"] == \"application/vnd.oci.image.index.v1+json\", i
p = sorted(m[\"platform\"][\"os\"] + \"/\" + m[\"platform\"][\"architecture\"] for m in i[\"manifests\"])
assert p == [\"linux/amd64\", \"linux/arm64\"], p
" "$work/raw.json"'
skopeo inspect --override-arch arm64 --config "oci-archive:$archive" >"$work/config-arm64.json" 2>"$work/err"
check "... the arm64 image's config says arm64, user 1001:1001" \
  'python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))
assert c[\"architecture\"] == \"arm64\", c[\"architecture\"]
assert c[\"config\"][\"User\"] == \"1001:1001\"
" "$work/config-arm64.json"'
check "SHA256SUMS beside it lists the image and both packages" \
  'cd "$work/dist" && [ "$(wc -l < SHA256SUMS)" = 3 ] && grep -q " $(basename "$archive")\$" SHA256SUMS && sha256sum -c --quiet SHA256SUMS'
packages=()
for p in "$work"/dist/*.tar.gz; do packages+=(--package "$p"); done
again=$("$src/tools/image" -o "$work/again" "${packages[@]}" "$pkgbuild" 2>/dev/null)
check "... the same inputs give the same image (digests)" 'cmp -s "$archive" "$again"'

# the layer's files
# layer_of ARCH: the digest of that image's layer
layer_of() {
  python3 -c "
import json, sys
blob = lambda d: json.load(open(sys.argv[1] + '/blobs/sha256/' + d.split(':')[1]))
i = blob(json.load(open(sys.argv[1] + '/index.json'))['manifests'][0]['digest'])
m = [m for m in i['manifests'] if m['platform']['architecture'] == sys.argv[2]][0]
print(blob(m['digest'])['layers'][0]['digest'].split(':')[1])" "$work/oci" "$1"
}
mkdir "$work/root" "$work/root-arm64"
tar -xzf "$work/oci/blobs/sha256/$(layer_of amd64)" -C "$work/root"
tar -xzf "$work/oci/blobs/sha256/$(layer_of arm64)" -C "$work/root-arm64"
notarm=$(cd "$work/root-arm64" && find . -type f | while read -r f; do
  file -b "$f" | grep -q '^ELF' && ! file -b "$f" | grep -q 'ARM aarch64' && echo "$f"; done)
check "the arm64 image holds arm64 objects only (file): sh, pg_dump, the tool and their libraries" \
  '[ -z "$notarm" ] && [ -x "$work/root-arm64/usr/bin/pg_dump" ] && [ -x "$work/root-arm64/bin/sh" ] &&
   [ -x "$work/root-arm64/opt/mxpc-data-migration/mxpc-data-migration" ] || { echo "  not arm64: $notarm"; false; }'

(cd "$work/root" && find . ! -type d | sed 's|^\./||' | sort) > "$work/files"
grep -vE '^(bin/sh|usr/bin/(pg_dump|pg_restore|psql)|opt/mxpc-data-migration/.+|etc/(passwd|group)|etc/ssl/certs/ca-certificates\.crt|(usr/)?lib(64|/x86_64-linux-gnu|/aarch64-linux-gnu)?/[^/]+\.so(\.[0-9]+)*)$' \
  "$work/files" > "$work/extra" || true
check "the image holds only the tool, the client tools, libraries, sh, passwd/group and CA certificates ($(wc -l < "$work/files") files)" \
  '[ ! -s "$work/extra" ] || { sed "s/^/  extra: /" "$work/extra" | head; false; }'
check "... no compiler, no package manager, no other interpreter" \
  '! grep -qE "(^|/)(gcc|g\+\+|cc|c\+\+|clang|ld|as|make|apt|apt-get|dpkg|rpm|yum|dnf|apk|pip3?|npm|python3?|perl)$" "$work/files"'
check "... /tmp is there, writable by all" '[ "$(stat -c %a "$work/root/tmp")" = 1777 ]'

# its root runs the tool as uid 1001, read-only
cat > "$work/inner.sh" <<'EOF'
root=$1
mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" || exit 90
mount -t tmpfs -o mode=1777,size=16m tmpfs "$root/tmp" || exit 91
mount -t proc proc "$root/proc" || exit 92   # as in every container
chroot=$(command -v chroot)
jail() { env -i PATH=/opt/mxpc-data-migration:/usr/bin:/bin HOME=/tmp TMPDIR=/tmp "$chroot" --userspec=1001:1001 "$root" "$@"; }
jail mxpc-data-migration version > "$root/../version.out" 2>&1 || exit 1
jail pg_dump --version > "$root/../pg_dump.out" 2>&1 || exit 2
jail /bin/sh -c 'echo x > /opt/x' 2>/dev/null && exit 3
jail /bin/sh -c 'echo x > /tmp/x' || exit 4
exit 0
EOF
# the arm64 root too, where the kernel runs arm64 programs (package.arm64 registers qemu-aarch64)
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  unshare --mount --propagation private bash "$work/inner.sh" "$work/root-arm64" 2>"$work/err"
  rc=$?
  check "the arm64 image's root runs the tool (emulated) as uid 1001, pg_dump 15, read-only root" \
    '[ $rc = 0 ] && grep -q "^mxpc-data-migration $version$" "$work/version.out" && grep -q "^pg_dump (PostgreSQL) 15" "$work/pg_dump.out"'
fi
unshare --mount --propagation private bash "$work/inner.sh" "$work/root" 2>"$work/err"
rc=$?
check "its root runs the tool as uid 1001 (version: $(head -1 "$work/version.out" 2>/dev/null))" '[ $rc != 1 ] && [ $rc -lt 90 ] && grep -q "^mxpc-data-migration $version$" "$work/version.out"'
check "... and pg_dump 15" '[ $rc != 2 ] && grep -q "^pg_dump (PostgreSQL) 15" "$work/pg_dump.out"'
check "... with a read-only root and a writable /tmp" '[ $rc = 0 ]'
finish
