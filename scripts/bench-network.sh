#!/usr/bin/env bash
# Networking benchmark (issue 5, item 8): what a bridge network adds to container start, berth
# against podman (netavark) in the same hyperfine run:
#   berth run --rm --network none busybox true
#   berth run --rm --network <user network> busybox true
#   berth run --rm busybox true                      (the default bridge)
#   podman run --rm --network none busybox true
#   podman run --rm busybox true                     (netavark's default bridge)
# Every engine has private state; berthd gets its own bridge name, 10.x subnets and nftables
# table; podman its own --root/--runroot and a network config dir with an explicit 10.x subnet.
# Everything made here (daemon, registry, interfaces, namespaces, tables) is removed on exit, by
# PID or by the exact name this script gave it.
#
# usage: scripts/bench-network.sh [runs]      (root; runs = hyperfine runs per command, default 30)
#   BENCH_NO_BUILD=1   use $CARGO_TARGET_DIR/dist as it is (skip scripts/build-dist.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
[ -n "${BENCH_NO_BUILD:-}" ] || scripts/build-dist.sh >/dev/null
dist=$CARGO_TARGET_DIR/dist
for b in berthd berth berth-shim berth-runtime; do
  [ -x "$dist/$b" ] || { echo "missing $dist/$b (run scripts/build-dist.sh)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/berth-bench-net.XXXXXX)
# netavark (podman) leaves its iptables-nft skeleton tables behind: remove them at exit unless
# they were there before us
had_nat=$(nft list table ip nat >/dev/null 2>&1 && echo 1 || true)
had_filter=$(nft list table ip filter >/dev/null 2>&1 && echo 1 || true)
bridge=bbench0 table=berth_bench userbr=bbench1 podbr=bbenchpod0
reg_pid="" berthd_pid=""
B() { "$dist/berth" -H "unix://$work/berth.sock" "$@"; }
P() {
  CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf \
    podman --network-config-dir "$work/podman/net" "$@"
}
stop_pid() {
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
cleanup() {
  set +e
  if [ -n "$berthd_pid" ]; then
    ids=$(B ps -aq 2>/dev/null); [ -z "$ids" ] || B rm -f $ids >/dev/null 2>&1
    B network rm benchnet >/dev/null 2>&1
    stop_pid "$berthd_pid"
  fi
  if [ -f "$work/berth/exec/aardvark-dns/aardvark.pid" ]; then
    p=$(cat "$work/berth/exec/aardvark-dns/aardvark.pid")
    grep -qa "$work" "/proc/$p/cmdline" 2>/dev/null && kill "$p"
  fi
  if [ -d "$work/podman" ]; then
    P rm -af -t 0 >/dev/null 2>&1; P rmi -af >/dev/null 2>&1
  fi
  for l in $bridge $userbr $podbr; do ip link del "$l" 2>/dev/null; done
  nft delete table ip $table 2>/dev/null; nft delete table inet $table 2>/dev/null
  [ -n "$had_nat" ] || nft delete table ip nat 2>/dev/null
  [ -n "$had_filter" ] || nft delete table ip filter 2>/dev/null
  stop_pid "$reg_pid"
  for n in "$work"/berth/exec/netns/*; do [ -e "$n" ] && umount -l "$n"; done
  grep -o " $work[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

scripts/registry-fixture.sh image "$work/oci" >/dev/null
read -r port reg_pid < <(scripts/registry-fixture.sh start "$work/registry")
scripts/registry-fixture.sh seed "$work/oci" "$port" busybox:latest
ref=127.0.0.1:$port/busybox:latest

BERTHD_LOG=warn "$dist/berthd" -H "unix://$work/berth.sock" --data-root "$work/berth/data" \
  --exec-root "$work/berth/exec" --bridge $bridge --bip 10.241.0.1/24 \
  --default-address-pool base=10.242.0.0/16,size=24 --ip-forward=false \
  --firewall-table $table >"$work/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 1 100); do B version >/dev/null 2>&1 && break; sleep 0.1; done
B version >/dev/null || { cat "$work/berthd.log" >&2; exit 1; }
B pull -q "$ref" >/dev/null
B network create --subnet 10.243.0.0/24 -o com.docker.network.bridge.name=$userbr benchnet >/dev/null
# first runs create the bridges (once per daemon) and start aardvark-dns: not what we measure
B run --rm "$ref" true; B run --rm --network benchnet "$ref" true

mkdir -p "$work/podman/tmp" "$work/podman/net"
nofile=$(( $(ulimit -Hn) < 4096 ? $(ulimit -Hn) : 4096 ))
cat >"$work/podman/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/podman/events.log"
tmp_dir = "$work/podman/tmp"
[network]
network_config_dir = "$work/podman/net"
default_network = "benchpod"
EOF
cat >"$work/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/podman/root"
runroot = "$work/podman/run"
EOF
# podman 4.3 has no --interface-name: the network file itself, with our bridge name and subnet
cat >"$work/podman/net/benchpod.json" <<EOF
{"name": "benchpod", "id": "$(printf 'b%.0s' $(seq 64))", "driver": "bridge",
 "network_interface": "$podbr", "created": "2026-01-01T00:00:00Z",
 "subnets": [{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}],
 "ipv6_enabled": false, "internal": false, "dns_enabled": false,
 "ipam_options": {"driver": "host-local"}}
EOF
P pull -q --tls-verify=false "$ref" >/dev/null
P run --rm --network benchpod "$ref" true

echo "network start benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "berth $(git rev-parse --short HEAD 2>/dev/null), $(podman --version), $(/usr/lib/podman/netavark --version)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/start.json" \
  -n "berth none" "$dist/berth -H unix://$work/berth.sock run --rm --network none $ref true" \
  -n "berth user network" "$dist/berth -H unix://$work/berth.sock run --rm --network benchnet $ref true" \
  -n "berth default bridge" "$dist/berth -H unix://$work/berth.sock run --rm $ref true" \
  -n "podman none" "env CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf podman --network-config-dir $work/podman/net run --rm --network none $ref true" \
  -n "podman bridge (netavark)" "env CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf podman --network-config-dir $work/podman/net run --rm --network benchpod $ref true" \
  >&2
jq -r '
  (.results[] | select(.command == "berth none") | .median) as $bn
  | (.results[] | select(.command == "podman none") | .median) as $pn
  | "| command | median ms | mean ± σ ms | added over its engine'"'"'s none, ms |", "|---|---|---|---|",
    (.results[] | "| \(.command) | \(.median * 1000 | . * 10 | round / 10) | \(.mean * 1000 | round) ± \(.stddev * 1000 | round) | \(if (.command | startswith("berth")) then ((.median - $bn) * 1000 | . * 10 | round / 10) else ((.median - $pn) * 1000 | . * 10 | round / 10) end) |")' \
  "$work/start.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
