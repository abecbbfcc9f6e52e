#!/usr/bin/env bash
# Memory per supervised container: N berth-shims each watching a `sleep` container, side by side
# with N podman conmons (podman --runtime crun) in the same run. Prints per-process averages of
# RSS, PSS and private memory (/proc/<pid>/smaps_rollup), taken RSS_SETTLE seconds (default 2)
# after the last start: an idle shim gives back its code pages after 1 s (docs/shim.md).
# usage: crates/shim/bench/rss.sh [N] [SHIM_BIN...]
#   (default N=10; default SHIM_BIN: the shipped static build, scripts/build-dist.sh)
# Needs root, busybox-static, jq; podman + conmon for the conmon row (skipped without them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ws=$(cd "$here/../../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ws/target}
n=${1:-10}
shift || true
tmp=$(mktemp -d)
ctrs=()
img=
cleanup() {
  for r in "$tmp"/root*; do
    [ -d "$r" ] || continue
    for id in $(ls "$r"); do "$runtime" --root "$r" delete -f "$id" >/dev/null 2>&1 || true; done
  done
  for c in "${ctrs[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  if [ -n "$img" ]; then podman rmi -f "$img" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$ws" && cargo build -q --release -p berth-runtime --bin berth-runtime)
runtime=$CARGO_TARGET_DIR/release/berth-runtime
if [ $# -eq 0 ]; then
  "$ws/scripts/build-dist.sh" >/dev/null
  set -- "$CARGO_TARGET_DIR/dist/berth-shim"
fi
settle=${RSS_SETTLE:-2}

"$ws/scripts/make-busybox-bundle.sh" "$tmp/bundle" -- sleep 1000 >/dev/null
jq 'del(.process.capabilities.ambient)' "$tmp/bundle/config.json" > "$tmp/c.json"
mv "$tmp/c.json" "$tmp/bundle/config.json"

avg() { # pids... -> "RSS PSS PRIVATE" averages in KiB
  for p in "$@"; do cat "/proc/$p/smaps_rollup"; done |
    awk -v n=$# '/^Rss:/{r+=$2} /^Pss:/{p+=$2} /^Private_(Clean|Dirty):/{v+=$2}
                 END{printf "%d %d %d\n", r/n, p/n, v/n}'
}
row() { printf '%-22s %4s %9s %9s %12s %10s\n' "$@"; }
row supervisor N "RSS KiB" "PSS KiB" "private KiB" "binary B"

k=0
for shim in "$@"; do
  k=$((k+1))
  mkdir -p "$tmp/root$k"
  pids=()
  for i in $(seq "$n"); do
    st=$tmp/state$k-$i
    "$shim" --id rss$i --bundle "$tmp/bundle" --runtime "$runtime" --runtime-root "$tmp/root$k" \
      --state-dir "$st" --log-path "$st/c.log" --stdin
    pids+=("$(cat "$st/shim.pid")")
  done
  sleep "$settle"
  read -r rss pss priv < <(avg "${pids[@]}")
  row "$(basename "$shim")" "$n" "$rss" "$pss" "$priv" "$(stat -c %s "$shim")"
  for i in $(seq "$n"); do "$runtime" --root "$tmp/root$k" kill rss$i KILL; done
done

if command -v podman >/dev/null && command -v conmon >/dev/null; then
  img=localhost/berth-rss-busybox:$$
  tar -C "$tmp/bundle/rootfs" -c . | podman import -q - "$img" >/dev/null 2>&1
  # root here lacks CAP_SYS_RESOURCE: podman's default limits can't be raised, so ask for ours
  lims=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
  pids=()
  for i in $(seq "$n"); do
    c=$(podman --runtime crun run -d "${lims[@]}" --network none "$img" sleep 1000 2>/dev/null)
    ctrs+=("$c")
    pids+=("$(podman inspect -f '{{.State.ConmonPid}}' "$c" 2>/dev/null)")
  done
  sleep "$settle"
  read -r rss pss priv < <(avg "${pids[@]}")
  row "conmon $(conmon --version | awk 'NR==1{print $3}')" "$n" "$rss" "$pss" "$priv" "$(stat -c %s "$(command -v conmon)")"
else
  echo "conmon: SKIP (podman or conmon not installed)"
fi
