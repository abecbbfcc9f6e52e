#!/usr/bin/env bash
# Published-port TCP throughput (issue 5, target >= 90% of host loopback): iperf3 from the host to
# 127.0.0.1:<hostport>, DNATed by berth's Firewall::publish into a network namespace behind a Linux
# bridge and veth pair (the world a container gets, built by the test itself without berthd), against
# iperf3 over host loopback, alternating loopback / published, medians. Needs root and iperf3
# (scripts/deps.sh). Usage: [BERTH_BENCH_MTU=65535] scripts/bench-ports.sh [SECONDS_PER_RUN=5] [ROUNDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { echo "iperf3 is missing: run scripts/deps.sh" >&2; exit 1; }
seconds=${1:-5}
rounds=${2:-5}
cargo build -q -p berth-network --tests
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) CPUs, $(uname -r))"
BERTH_BENCH_SECONDS=$seconds BERTH_BENCH_ROUNDS=$rounds \
  cargo test -q -p berth-network --test ports published_port_throughput -- --ignored --nocapture 2>&1 |
  grep -E 'Gbit/s|published/loopback|MTU|SKIP'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
