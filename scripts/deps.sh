#!/usr/bin/env bash
# Install what berth's build and tests need on a fresh Debian 12 machine (idempotent; run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  # build
  pkg-config libseccomp-dev gcc
  # test fixtures and tools
  busybox-static jq strace file time apache2-utils iproute2 hyperfine debootstrap
  # peers the tests drive: runtimes, engines, registry, image tools
  runc crun podman containerd docker.io docker-registry skopeo umoci buildah
  docker-compose python3-docker netavark aardvark-dns
  nftables iperf3  # published ports (nft -j) and their throughput benchmark
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# crun 1.8.1 refuses to run while cgroup2 holds a controller (hybrid host with hugetlb on cgroup2):
# give hugetlb a v1 hierarchy so crun can be compared against (once per machine).
if [ -d /sys/fs/cgroup/unified ] && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || echo "note: could not mount hugetlb v1 hierarchy" >&2
fi
