#!/usr/bin/env bash
# Benchmark berth-runtime against crun and runc, side by side in one run (ANCHORS.md targets).
# usage: scripts/bench-runtime.sh [runs]    -> prints markdown tables (paste into docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
scripts/build-dist.sh >/dev/null   # the shipped, static berth-runtime
berth=${CARGO_TARGET_DIR:-$PWD/target}/dist/berth-runtime
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'for r in crun runc berth; do for id in $(ls "$work/root-$r" 2>/dev/null); do rt_cmd $r delete -f "$id" >/dev/null 2>&1 || true; done; done; rm -rf "$work"' EXIT
scripts/make-busybox-bundle.sh "$work/true" -- /bin/true >/dev/null
scripts/make-busybox-bundle.sh "$work/sleep" -- /bin/sleep 30 >/dev/null
rt_bin() { case $1 in crun) echo /usr/bin/crun;; runc) echo /usr/sbin/runc;; berth) echo "$berth";; esac; }
rt_cmd() { local r=$1; shift; "$(rt_bin $r)" --root "$work/root-$r" "$@"; }
export -f rt_bin rt_cmd; export work berth
rts=(crun runc berth)
# one markdown row per command: median, mean ± σ, and the ratio of medians to crun's
medians() {
  jq -r '(.results[] | select(.command == "crun") | .median) as $c
    | "| runtime | median ms | mean ± σ ms | × crun |", "|---|---|---|---|",
      (.results[] | "| \(.command) | \(.median * 1000 | . * 100 | round / 100) | \(.mean * 1000 | . * 10 | round / 10) ± \(.stddev * 1000 | . * 10 | round / 10) | \(.median / $c | . * 100 | round / 100) |")' "$1"
}

echo "## run of /bin/true (create+start+wait+delete)"
cmds=(); for r in "${rts[@]}"; do cmds+=(-n "$r" "$(rt_bin $r) --root $work/root-$r run --bundle $work/true bench-$r"); done
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/run.json" "${cmds[@]}" >/dev/null
medians "$work/run.json"

echo; echo "## create / start / delete as separate calls"
for step in create start delete; do
  cmds=(); preps=()
  for r in "${rts[@]}"; do
    b=$(rt_bin $r); root=$work/root-$r; id=step-$r
    case $step in
      create) preps+=(--prepare "$b --root $root delete -f $id"); cmds+=(-n "$r" "$b --root $root create --bundle $work/sleep $id");;
      start)  preps+=(--prepare "sh -c '$b --root $root delete -f $id 2>/dev/null; $b --root $root create --bundle $work/sleep $id'"); cmds+=(-n "$r" "$b --root $root start $id");;
      delete) preps+=(--prepare "sh -c '$b --root $root delete -f $id 2>/dev/null; $b --root $root create --bundle $work/sleep $id'"); cmds+=(-n "$r" "$b --root $root delete -f $id");;
    esac
  done
  # hyperfine takes one --prepare per command, in order
  hyperfine -N --warmup 3 --runs $((runs / 2)) -i --export-json "$work/$step.json" "${preps[@]}" "${cmds[@]}" >/dev/null 2>&1 || true
  echo "### $step"; medians "$work/$step.json"
  for r in "${rts[@]}"; do rt_cmd $r delete -f step-$r >/dev/null 2>&1 || true; done
done

echo; echo "## peak RSS of the runtime process during run (KiB, max of 5)"
echo "| runtime | peak RSS KiB |"; echo "|---|---|"
for r in "${rts[@]}"; do
  best=0
  for i in 1 2 3 4 5; do
    kb=$( { /usr/bin/time -f '%M' "$(rt_bin $r)" --root "$work/root-$r" run --bundle "$work/true" rss-$r >/dev/null; } 2>&1 | tail -1)
    [ "$kb" -gt "$best" ] && best=$kb
  done
  echo "| $r | $best |"
done

echo; echo "## syscalls per run (strace -f -c)"
echo "| runtime | syscalls |"; echo "|---|---|"
for r in "${rts[@]}"; do
  strace -f -c -o "$work/strace-$r" "$(rt_bin $r)" --root "$work/root-$r" run --bundle "$work/true" st-$r >/dev/null 2>&1 || true
  n=$(awk '/^100.00/ {print $4}' "$work/strace-$r")
  echo "| $r | ${n:-?} |"
done

echo; echo "## 20 concurrent create+start (sleep 30), wall time"
echo "| runtime | ms |"; echo "|---|---|"
for r in "${rts[@]}"; do
  t0=$(date +%s%N)
  for i in $(seq 1 20); do
    ( rt_cmd $r create --bundle "$work/sleep" c$i-$r >/dev/null && rt_cmd $r start c$i-$r ) &
  done
  wait
  t1=$(date +%s%N)
  echo "| $r | $(( (t1 - t0) / 1000000 )) |"
  for i in $(seq 1 20); do rt_cmd $r delete -f c$i-$r >/dev/null 2>&1 || true; done
done
