#!/usr/bin/env bash
# Make an OCI runtime bundle (rootfs + config.json) from Debian's busybox-static, with no network.
# usage: scripts/make-busybox-bundle.sh DIR [-- ARGS...]   (default args: sh)
set -euo pipefail
dir=${1:?usage: make-busybox-bundle.sh DIR}
shift || true
[ "${1:-}" = "--" ] && shift
bb=$(command -v busybox || true)
[ -n "$bb" ] || { echo "busybox-static is needed (apt-get install busybox-static)" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run}
cp "$bb" "$dir/rootfs/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$dir/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
echo 'nogroup:x:65534:' >> "$dir/rootfs/etc/group"
chmod 1777 "$dir/rootfs/tmp"
(cd "$dir" && runc spec 2>/dev/null || crun spec)
if [ $# -gt 0 ]; then
  args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
  (cd "$dir" && jq --argjson a "$args" '.process.args = $a | .process.terminal = false' config.json > c.tmp && mv c.tmp config.json)
else
  (cd "$dir" && jq '.process.terminal = false' config.json > c.tmp && mv c.tmp config.json)
fi
