#!/usr/bin/env bash
# Fills the build context of deploy/image/Containerfile: CONTEXT/rootfs/ holds the server
# binary, the shared libraries and loader it needs (found with ldd), the CA certificates,
# and /etc/passwd, /etc/group and /etc/nsswitch.conf naming the non-root user 65532.
# The same tree, unpacked, is what the image runs; nothing is fetched.
# Usage: deploy/image/stage.sh SERVER_BINARY CONTEXT_DIR
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 SERVER_BINARY CONTEXT_DIR" >&2; exit 2; }
binary=$1
context=$2
[ -x "$binary" ] || { echo "error: $binary is not an executable" >&2; exit 1; }
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || { echo "error: $ca_bundle is missing (Debian package ca-certificates)" >&2; exit 1; }

rootfs="$context/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs"

# The binary without its debug information: the image needs no symbols, and it is a
# quarter of the size.
objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/pci-vault-server"
chmod 0755 "$rootfs/usr/local/bin/pci-vault-server"

# Every shared library the binary loads, and the dynamic loader, at the paths ldd
# resolved them to (the loader's path is compiled into the binary). Symlinks are copied
# as the files they name.
libraries=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libraries" ] || { echo "error: ldd found no libraries for $binary" >&2; exit 1; }
for library in $libraries; do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done
# The loader's canonical path when /lib64 is a symlink on the build host.
interpreter=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ -n "$interpreter" ] && [ ! -e "$rootfs$interpreter" ]; then
  mkdir -p "$rootfs$(dirname "$interpreter")"
  cp -L "$interpreter" "$rootfs$interpreter"
fi

cp -L "$ca_bundle" "$rootfs$ca_bundle"

cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/nonexistent:/sbin/nologin
pci-vault:x:65532:65532:pci-vault-server:/nonexistent:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
pci-vault:x:65532:
GROUP
# Host names (Redis, a Kubernetes service) resolve through /etc/hosts, then DNS; both are
# built into glibc, so no NSS module is needed.
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
chmod -R u=rwX,go=rX "$rootfs"
echo "staged $(du -sh "$rootfs" | cut -f1) in $rootfs"
