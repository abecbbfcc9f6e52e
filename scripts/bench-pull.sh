#!/usr/bin/env bash
# Pull benchmark (ANCHORS.md: Debian minbase from a loopback registry, docker 8.0 s, podman 9.0 s,
# target <= 0.5x docker): berth's pull (download + verify + unpack into a snapshot, layers streamed)
# against `podman pull` and `skopeo copy` + `umoci unpack`, same registry, same disk, one hyperfine run.
#
# usage: scripts/bench-pull.sh [runs]      (root; needs debootstrap, umoci, skopeo, podman, hyperfine)
# The minbase rootfs is made once with debootstrap from the machine's apt mirror and cached in
# $BENCH_CACHE (default /var/tmp/berth-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cache=${BENCH_CACHE:-/var/tmp/berth-bench}
mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -v security | awk '{print $2}' | grep debian | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$cache"
if [ ! -e "$cache/rootfs/.done" ]; then
  rm -rf "$cache/rootfs"
  debootstrap --variant=minbase bookworm "$cache/rootfs" "$mirror" >"$cache/debootstrap.log"
  touch "$cache/rootfs/.done"
fi
if [ ! -e "$cache/oci/index.json" ]; then
  work=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
  umoci init --layout "$cache/oci"
  umoci new --image "$cache/oci:minbase"
  umoci unpack --image "$cache/oci:minbase" "$work/bundle" >/dev/null
  tar -C "$cache/rootfs" --exclude=./.done -cf - . | tar -C "$work/bundle/rootfs" -xpf -
  umoci repack --image "$cache/oci:minbase" "$work/bundle" >/dev/null
  umoci config --image "$cache/oci:minbase" --os linux --architecture amd64 --config.cmd bash >/dev/null
  umoci gc --layout "$cache/oci"
  rm -rf "$work"
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
testbin=$(cargo test --release -q -p berth-image --test pull_bench --no-run --message-format=json 2>/dev/null \
  | jq -r 'select(.executable != null and .target.name == "pull_bench") | .executable' | tail -1)
[ -x "$testbin" ] || { echo "could not build the pull_bench test binary" >&2; exit 1; }

work=$(mktemp -d /var/tmp/berth-bench-run.XXXXXX)
reg_pid=""
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  podman --root "$work/podman" --runroot "$work/podman-run" rmi -af >/dev/null 2>&1 || true
  umount -R "$work/podman/overlay" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
read -r port reg_pid < <(scripts/registry-fixture.sh start "$work/registry")
skopeo copy -q --dest-tls-verify=false "oci:$cache/oci:minbase" "docker://127.0.0.1:$port/bench/minbase:latest"
ref=127.0.0.1:$port/bench/minbase:latest
layer_size=$(skopeo inspect --tls-verify=false --raw "docker://$ref" | jq '[.layers[].size] | add')
echo "image: Debian bookworm minbase, $(du -sh "$cache/rootfs" | cut -f1) unpacked, $layer_size bytes compressed"

hyperfine --runs "$runs" --warmup 1 --export-markdown "$work/pull.md" \
  -n berth --prepare "rm -rf $work/berth" \
  "env BERTH_BENCH_REF=$ref BERTH_BENCH_ROOT=$work/berth $testbin --ignored --exact pull_once --test-threads 1 -q" \
  -n podman --prepare "podman --root $work/podman --runroot $work/podman-run rmi -af >/dev/null 2>&1 || true" \
  "podman --root $work/podman --runroot $work/podman-run pull -q --tls-verify=false $ref" \
  -n skopeo+umoci --prepare "rm -rf $work/oci $work/bundle" \
  "sh -c 'skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/oci:x && umoci unpack --image $work/oci:x $work/bundle >/dev/null'"
cat "$work/pull.md"
