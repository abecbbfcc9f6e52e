#!/usr/bin/env bash
# Published-port TCP throughput (issue 5, target >= 90% of host loopback), iperf3 3.x, one stream,
# alternating loopback / published, medians:
#  1. library: iperf3 from the host to 127.0.0.1:<hostport>, DNATed by berth's Firewall::publish into a
#     network namespace behind a Linux bridge and veth pair, built by the test itself without berthd;
#  2. engine (skip with BENCH_ENGINE=0): a private berthd (own bridge, 10.242.0.0/24, own nftables table,
#     --ip-forward=false), `docker run -d -p 127.0.0.1:<port>:5201` of the host's iperf3 (run through the
#     host's ld.so from a read-only /usr mount) in a busybox-static image imported for the run.
# Both against iperf3 over host loopback. Needs root, iperf3 and the docker CLI (scripts/deps.sh).
# Usage: [BERTH_BENCH_MTU=65535] scripts/bench-ports.sh [SECONDS_PER_RUN=5] [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { echo "iperf3 is missing: run scripts/deps.sh" >&2; exit 1; }
seconds=${1:-5}
rounds=${2:-5}
echo "== library path (Firewall::publish, no berthd)"
cargo build -q -p berth-network --tests
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs, $(uname -r))"
BERTH_BENCH_SECONDS=$seconds BERTH_BENCH_ROUNDS=$rounds \
  cargo test -q -p berth-network --test ports published_port_throughput -- --ignored --nocapture 2>&1 |
  grep -E 'Gbit/s|published/loopback|MTU|SKIP'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${BENCH_ENGINE:-1}" = 0 ] && exit 0

echo "== through berthd (docker run -p)"
command -v docker >/dev/null || { echo "SKIP: docker CLI missing"; exit 0; }
cargo build -q -p berth-daemon -p berth-shim -p berth-runtime
bin=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/debug
tmp=$(mktemp -d /tmp/berth-bench-ports.XXXXXX)
table=berth_bench_ports
bridge=bbp-def0
berthd_pid=""
lo_pid=""
cleanup() {
  set +e
  DOCKER_HOST=unix://$tmp/berth.sock docker rm -f bench-iperf >/dev/null 2>&1
  [ -n "$lo_pid" ] && kill "$lo_pid" 2>/dev/null
  [ -n "$berthd_pid" ] && kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null
  nft delete table ip "$table" 2>/dev/null
  ip link del "$bridge" 2>/dev/null
  for m in $(grep -o " $tmp[^ ]*" /proc/mounts | sort -r); do umount -l "$m"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin/berthd" -H "unix://$tmp/berth.sock" --data-root "$tmp/data" --exec-root "$tmp/exec" \
  --bridge "$bridge" --bip 10.242.0.1/24 --default-address-pool base=10.243.0.0/16,size=24 \
  --ip-forward=false --firewall-table "$table" >"$tmp/berthd.log" 2>&1 &
berthd_pid=$!
export DOCKER_HOST=unix://$tmp/berth.sock DOCKER_CONFIG=$tmp/docker-config
for _ in $(seq 100); do [ -S "$tmp/berth.sock" ] && break; sleep 0.05; done
scripts/make-busybox-bundle.sh "$tmp/bundle" >/dev/null
tar -C "$tmp/bundle/rootfs" -c . | docker import - bench-busybox >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lo_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lib=/usr/lib/x86_64-linux-gnu
docker run -d --name bench-iperf -p "127.0.0.1:$port:5201" -v /usr:/host/usr:ro bench-busybox \
  "/host$lib/ld-linux-x86-64.so.2" --library-path "/host$lib" /host/usr/bin/iperf3 -s >/dev/null
if [ -n "${BERTH_BENCH_MTU:-}" ]; then
  # what a bigger MTU on berth's bridge and veths would give (berthd sets none: 1500)
  sandbox=$(docker inspect -f '{{.NetworkSettings.SandboxKey}}' bench-iperf)
  ip link set "$bridge" mtu "$BERTH_BENCH_MTU"
  for port_dev in /sys/class/net/"$bridge"/brif/*; do ip link set "$(basename "$port_dev")" mtu "$BERTH_BENCH_MTU"; done
  nsenter --net="$sandbox" ip link set eth0 mtu "$BERTH_BENCH_MTU"
  echo "bridge and veth MTU $BERTH_BENCH_MTU"
fi
iperf3 -s -B 127.0.0.1 -p "$lo_port" >/dev/null 2>&1 &
lo_pid=$!
client() { # port -> bits/s (retried while the server starts)
  for _ in $(seq 50); do
    if out=$(iperf3 -c 127.0.0.1 -p "$1" -t "$seconds" -J 2>/dev/null); then
      jq '.end.sum_received.bits_per_second' <<<"$out"; return
    fi
    sleep 0.1
  done
  echo "iperf3 to 127.0.0.1:$1 never connected" >&2; exit 1
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
lo=(); pub=()
for _ in $(seq "$rounds"); do
  lo+=("$(client "$lo_port")")
  pub+=("$(client "$port")")
done
lo_m=$(printf '%s\n' "${lo[@]}" | median)
pub_m=$(printf '%s\n' "${pub[@]}" | median)
gbit() { awk '{printf "%.2f ", $1/1e9}'; }
echo "loopback  Gbit/s: $(printf '%s\n' "${lo[@]}" | gbit)(median $(echo "$lo_m" | gbit | tr -d ' '))"
echo "published Gbit/s: $(printf '%s\n' "${pub[@]}" | gbit)(median $(echo "$pub_m" | gbit | tr -d ' '))"
awk -v p="$pub_m" -v l="$lo_m" 'BEGIN {printf "published/loopback: %.1f%%\n", p / l * 100}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
