#!/usr/bin/env bash
# Pull benchmark (ANCHORS.md: Debian minbase from a loopback registry, docker 8.0 s, podman 9.0 s,
# target <= 0.5x docker): berth's pull (download + verify + unpack into a snapshot, layers streamed)
# against `docker pull`, `podman pull` and `skopeo copy` + `umoci unpack`, same registry, same disk, one hyperfine run.
#
# usage: scripts/bench-pull.sh [runs]      (root; needs debootstrap, umoci, skopeo, podman, hyperfine)
# The minbase rootfs is made once with debootstrap from the machine's apt mirror and cached in
# $BENCH_CACHE (default /var/tmp/berth-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cache=${BENCH_CACHE:-/var/tmp/berth-bench}
mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -v security | awk '{print $2}' | grep debian | head -1 || true)
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
dockerd_pid=""
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null || true
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    umount -R "$work/docker" 2>/dev/null || true
  fi
  for r in "$work"/podman-[0-9]*; do
    [ -d "$r" ] || continue
    podman --root "$r" --runroot "$work/podman-run-${r##*-}" rmi -af >/dev/null 2>&1 || true
    umount -R "$r/overlay" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
read -r port reg_pid < <(scripts/registry-fixture.sh start "$work/registry")
skopeo copy -q --dest-tls-verify=false "oci:$cache/oci:minbase" "docker://127.0.0.1:$port/bench/minbase:latest"
ref=127.0.0.1:$port/bench/minbase:latest
layer_size=$(skopeo inspect --tls-verify=false --raw "docker://$ref" | jq '[.layers[].size] | add')
# docker: a private dockerd (its own managed containerd), no host networking touched.
mkdir -p "$work/docker"
dsock=$work/docker/docker.sock
dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" -H "unix://$dsock" \
  --pidfile "$work/docker/dockerd.pid" --bridge=none --iptables=false --ip-forward=false \
  >"$work/docker/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 150); do docker -H "unix://$dsock" version >/dev/null 2>&1 && break; sleep 0.2; done
docker -H "unix://$dsock" version >/dev/null || { tail "$work/docker/dockerd.log" >&2; exit 1; }
echo "image: Debian bookworm minbase, $(du -sh "$cache/rootfs" | cut -f1) unpacked, $layer_size bytes compressed"

# Every run writes into a fresh directory and nothing is deleted until the end: ext4 scans for
# "recently deleted" inodes when creating files right after a big rm -rf (perf: recently_deleted
# in ext4_create), which would slow whichever tool runs after a cleanup. The sh wrapper and the
# counter cost the same for all three.
echo 0 > "$work/n"
next='n=$(($(cat '"$work"'/n)+1)); echo $n > '"$work"'/n'
# docker pulls into one data root: its image is removed before each of its runs (--prepare, not timed).
hyperfine --runs "$runs" --warmup 1 --export-markdown "$work/pull.md" --export-json "$work/pull.json" \
  --prepare true --prepare true --prepare true \
  --prepare "sh -c 'docker -H unix://$dsock rmi -f $ref >/dev/null 2>&1 || true'" \
  -n berth \
  "sh -c '$next; BERTH_BENCH_REF=$ref BERTH_BENCH_ROOT=$work/berth-\$n $testbin --ignored --exact pull_once --test-threads 1 -q >/dev/null'" \
  -n podman \
  "sh -c '$next; podman --root $work/podman-\$n --runroot $work/podman-run-\$n pull -q --tls-verify=false $ref >/dev/null'" \
  -n skopeo+umoci \
  "sh -c '$next; skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/oci-\$n:x && umoci unpack --image $work/oci-\$n:x $work/bundle-\$n >/dev/null'" \
  -n docker \
  "docker -H unix://$dsock pull -q $ref"
cat "$work/pull.md"
echo; echo "medians (s):"
jq -r '.results[] | "\(.command)\t\(.median | . * 1000 | round / 1000)"' "$work/pull.json"
