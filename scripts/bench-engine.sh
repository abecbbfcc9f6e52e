#!/usr/bin/env bash
# Engine benchmark (issue 4, item 9; ANCHORS.md "Engines"): berth against podman and docker, all three
# in the same run, each with private state, one local registry serving the busybox-static image:
#   run --rm busybox true, exec into a running container, logs of 100k lines (hyperfine, peers in one
#   invocation per metric); 50 sequential `run -d ... sleep 600` (wall time); supervisor memory per
#   running container (berth-shim / conmon / containerd-shim, /proc/PID/smaps_rollup); daemon idle RSS.
#
# usage: scripts/bench-engine.sh [runs]      (root; runs = hyperfine runs per command, default 20)
#   BENCH_NO_BUILD=1   use $CARGO_TARGET_DIR/dist as it is (skip scripts/build-dist.sh)
#   BENCH_N=50         containers for the detached-start metric
#   BENCH_PEERS="podman docker"   which peers to run (docker needs dockerd + containerd)
# Everything started here (berthd, registry, dockerd) is stopped by PID on exit; containers are
# removed through their engine; nothing is killed by name.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
n=${BENCH_N:-50}
peers=${BENCH_PEERS:-podman docker}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
[ -n "${BENCH_NO_BUILD:-}" ] || scripts/build-dist.sh >/dev/null
dist=$CARGO_TARGET_DIR/dist
for b in berthd berth berth-shim berth-runtime; do
  [ -x "$dist/$b" ] || { echo "missing $dist/$b (run scripts/build-dist.sh)" >&2; exit 1; }
done
has_peer() { [[ " $peers " == *" $1 "* ]]; }

work=$(mktemp -d /var/tmp/berth-bench-engine.XXXXXX)
# Persistent state on disk (ext4), runtime state on tmpfs, as installed engines have them
# (/var/lib/{berth,containers,docker} and /run/{berth,containers,docker}): each engine's exec
# root / runroot is under $run, a private tmpfs.
run=$work/run
mkdir -p "$run"
mount -t tmpfs -o mode=0711 berth-bench-run "$run"
reg_pid="" berthd_pid="" dockerd_pid=""
B() { BERTH_HOST=unix://$work/berth.sock "$dist/berth" "$@"; }
P() { CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf \
  podman "$@"; }
D() { docker -H "unix://$work/docker/docker.sock" "$@"; }
stop_pid() { # pid: TERM, wait up to 10 s, then KILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
cleanup() {
  set +e
  if [ -n "$berthd_pid" ]; then
    ids=$(B ps -aq 2>/dev/null); [ -z "$ids" ] || B rm -f $ids >/dev/null 2>&1
    stop_pid "$berthd_pid"
    # shims left behind (berthd died early): each names its own pid file under our exec root
    for f in "$run"/berth/shim/*/shim.pid; do
      [ -f "$f" ] || continue
      p=$(cat "$f"); grep -qa "$work" "/proc/$p/cmdline" 2>/dev/null && kill -9 "$p"
    done
  fi
  if has_peer podman && [ -d "$work/podman" ]; then
    P rm -af -t 0 >/dev/null 2>&1; P rmi -af >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    ids=$(D ps -aq 2>/dev/null); [ -z "$ids" ] || D rm -f $ids >/dev/null 2>&1
    stop_pid "$dockerd_pid"
  fi
  stop_pid "$reg_pid"
  grep -o " $work[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "# $*" >&2; }

# --- registry with the busybox-static image --------------------------------------------------
scripts/registry-fixture.sh image "$work/oci" >/dev/null
read -r port reg_pid < <(scripts/registry-fixture.sh start "$work/registry")
scripts/registry-fixture.sh seed "$work/oci" "$port" busybox:latest
ref=127.0.0.1:$port/busybox:latest

rss_of() { # pid -> "RSS PSS" KiB
  awk '/^Rss:/{r=$2} /^Pss:/{p=$2} END{print r+0, p+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo "0 0"
}
# --- berthd (private roots and socket; networking off when the flags exist) -------------------
extra=()
if "$dist/berthd" --help 2>&1 | grep -q -- '--bridge'; then extra+=(--bridge none); fi
if "$dist/berthd" --help 2>&1 | grep -q -- '--ip-forward'; then extra+=(--ip-forward=false); fi
BERTHD_LOG=warn "$dist/berthd" -H "unix://$work/berth.sock" --data-root "$work/berth/data" \
  --exec-root "$run/berth" "${extra[@]}" >"$work/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 1 100); do B version >/dev/null 2>&1 && break; sleep 0.1; done
B version >/dev/null || { cat "$work/berthd.log" >&2; exit 1; }
sleep 1
read -r idle_rss idle_pss < <(rss_of "$berthd_pid")
B pull -q "$ref" >/dev/null 2>&1 || B pull "$ref" >/dev/null
net=(); B run --help 2>&1 | grep -q -- '--network' && net=(--network none)

# --- podman (own storage, cgroupfs, file events, k8s-file logs) -------------------------------
if has_peer podman; then
  mkdir -p "$work/podman/tmp"
  # root here lacks CAP_SYS_RESOURCE: podman's default 1048576 nofile/nproc can't be set
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
EOF
  cat >"$work/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/podman/root"
runroot = "$run/podman"
EOF
  P pull -q --tls-verify=false "$ref" >/dev/null
fi

# --- dockerd (private data/exec root and socket, no bridge, no iptables) ----------------------
if has_peer docker; then
  mkdir -p "$work/docker"
  dockerd --data-root "$work/docker/data" --exec-root "$run/docker" \
    -H "unix://$work/docker/docker.sock" --pidfile "$work/docker/dockerd.pid" \
    --bridge=none --iptables=false --ip-forward=false >"$work/docker/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 150); do D version >/dev/null 2>&1 && break; sleep 0.2; done
  D version >/dev/null || { tail "$work/docker/dockerd.log" >&2; exit 1; }
  D pull -q "$ref" >/dev/null
fi

avg_mem() { # pids... -> "RSS PSS private" average KiB
  [ $# -gt 0 ] || { echo "- - -"; return; }
  for p in "$@"; do cat "/proc/$p/smaps_rollup"; done |
    awk -v n=$# '/^Rss:/{r+=$2} /^Pss:/{p+=$2} /^Private_(Clean|Dirty):/{v+=$2}
                 END{printf "%d %d %d\n", r/n, p/n, v/n}'
}
# hyperfine JSON -> one markdown row per command: median, mean ± σ, × the given reference command
table() { # json ref-name
  jq -r --arg ref "$2" '
    ((.results[] | select(.command == $ref) | .median) // null) as $r
    | "| command | median ms | mean ± σ ms | × \($ref) |", "|---|---|---|---|",
      (.results[] | "| \(.command) | \(.median * 1000 | . * 10 | round / 10) | \(.mean * 1000 | round) ± \(.stddev * 1000 | round) | \(if $r then (.median / $r | . * 100 | round / 100) else "-" end) |")' "$1"
}
ref_peer=podman; has_peer podman || ref_peer=docker

echo "engine benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "berth $(git rev-parse --short HEAD), $(podman --version 2>/dev/null) (crun, conmon), dockerd $(dockerd --version 2>/dev/null | cut -d" " -f3 | tr -d ,) (containerd-shim-runc-v2)"
read -r r p < <(rss_of "$berthd_pid")
echo; echo "## berthd idle: $idle_rss KiB RSS / $idle_pss KiB PSS after start; $r KiB RSS / $p KiB PSS after a pull (threads: $(ls /proc/$berthd_pid/task | wc -l))"

# --- run --rm true --------------------------------------------------------------------------
cmds=(-n berth "$dist/berth run --rm ${net[*]} $ref true")
has_peer podman && cmds+=(-n podman "env CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf podman run --rm --network none $ref true")
has_peer docker && cmds+=(-n docker "docker -H unix://$work/docker/docker.sock run --rm --network none $ref true")
export BERTH_HOST=unix://$work/berth.sock
log "run --rm"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run.json" "${cmds[@]}" >/dev/null
echo; echo "## run --rm busybox true ($runs runs, load $(cut -d' ' -f1 /proc/loadavg))"; table "$work/run.json" "$ref_peer"

# --- exec ----------------------------------------------------------------------------------
log "exec"
B run -d --name bench-exec "${net[@]}" "$ref" sleep 600 >/dev/null
cmds=(-n berth "$dist/berth exec bench-exec true")
if has_peer podman; then P run -d --name bench-exec --network none "$ref" sleep 600 >/dev/null
  cmds+=(-n podman "env CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf podman exec bench-exec true"); fi
if has_peer docker; then D run -d --name bench-exec --network none "$ref" sleep 600 >/dev/null
  cmds+=(-n docker "docker -H unix://$work/docker/docker.sock exec bench-exec true"); fi
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/exec.json" "${cmds[@]}" >/dev/null
echo; echo "## exec CTR true ($runs runs, load $(cut -d' ' -f1 /proc/loadavg))"
table "$work/exec.json" "$(has_peer docker && echo docker || echo berth)"

# --- logs of 100k lines ---------------------------------------------------------------------
log "logs"
gen="yes 'a line of container output, about fifty bytes long' | head -n 100000"
B run --name bench-logs "${net[@]}" "$ref" sh -c "$gen" >/dev/null
cmds=(-n berth "$dist/berth logs bench-logs")
if has_peer podman; then P run --name bench-logs --network none "$ref" sh -c "$gen" >/dev/null
  cmds+=(-n podman "env CONTAINERS_CONF=$work/podman/containers.conf CONTAINERS_STORAGE_CONF=$work/podman/storage.conf podman logs bench-logs"); fi
if has_peer docker; then D run --name bench-logs --network none "$ref" sh -c "$gen" >/dev/null
  cmds+=(-n docker "docker -H unix://$work/docker/docker.sock logs bench-logs"); fi
for e in B $(has_peer podman && echo P) $(has_peer docker && echo D); do
  l=$($e logs bench-logs 2>&1 | wc -l); [ "$l" = 100000 ] || echo "warning: $e logs gave $l lines" >&2
done
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/logs.json" "${cmds[@]}" >/dev/null
echo; echo "## logs of 100,000 lines to /dev/null ($runs runs, load $(cut -d' ' -f1 /proc/loadavg))"
table "$work/logs.json" "$ref_peer"

# --- N detached starts (rounds, engine order rotated), then supervisor memory ----------------
# Every container adds mounts (its rootfs) the next starts of every engine pay for, and the
# machine's load drifts: each round starts N per engine, in a rotated order, then removes them.
start_n() { # engine-fn name-prefix extra-args... -> wall ms
  local e=$1 pfx=$2; shift 2
  local t0 t1
  t0=$(date +%s%N)
  for i in $(seq 1 "$n"); do $e run -d --name "$pfx$i" "$@" "$ref" sleep 600 >/dev/null; done
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
supervisors() { # engine -> pids of its supervisors for the bench-d containers
  case $1 in
    berth) for f in "$run"/berth/shim/*/shim.pid; do echo "$(cat "$f")"; done ;;
    podman) for c in $(P ps -q --filter name=bench-d); do P inspect -f '{{.State.ConmonPid}}' "$c"; done ;;
    docker) # containerd-shims of our private dockerd: their command line names its socket
      for p in $(ls /proc | grep -E '^[0-9]+$'); do
        c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
        [[ $c == *containerd-shim* && $c == *"$run/docker"* ]] && echo "$p"
      done ;;
  esac
}
engines=(berth); has_peer podman && engines+=(podman); has_peer docker && engines+=(docker)
declare -A fn=([berth]=B [podman]=P [docker]=D) times=() mem=()
rounds=${BENCH_START_ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
  k=$(( (r - 1) % ${#engines[@]} ))
  order=("${engines[@]:k}" "${engines[@]:0:k}")
  for e in "${order[@]}"; do
    log "round $r: start $n ($e)"
    if [ "$e" = berth ]; then extra=("${net[@]}"); else extra=(--network none); fi
    times[$e]+="$(start_n "${fn[$e]}" bench-d "${extra[@]}") "
  done
  if [ "$r" = 1 ]; then
    sleep 2   # an idle berth-shim gives back its code pages after 1 s
    for e in "${engines[@]}"; do
      mapfile -t pids < <(supervisors "$e")
      mem[$e]="${#pids[@]} $(avg_mem "${pids[@]}")"
    done
    read -r br bp < <(rss_of "$berthd_pid")
  fi
  log "round $r: removing"
  for e in "${engines[@]}"; do
    ids=$(${fn[$e]} ps -aq --filter name=bench-d)
    [ -z "$ids" ] || ${fn[$e]} rm -f $ids >/dev/null 2>&1 || true
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ref_t=$(echo "${times[$ref_peer]:-}" | median)
echo; echo "## start of $n detached containers (sequential \`run -d busybox sleep 600\`), $rounds rounds, engine order rotated"
echo "| engine | median wall ms | rounds ms | × $ref_peer | supervisor (round 1, all engines' containers running) | RSS KiB | PSS KiB | private KiB |"
echo "|---|---|---|---|---|---|---|---|"
declare -A sup=([berth]=berth-shim [podman]=conmon [docker]=containerd-shim)
for e in "${engines[@]}"; do
  m=$(echo "${times[$e]}" | median)
  read -r cnt mr mp mv <<<"${mem[$e]}"
  echo "| $e | $m | ${times[$e]% } | $(awk -v a="$m" -v b="$ref_t" 'BEGIN{printf "%.2f", a/b}') | ${sup[$e]} ×$cnt | $mr | $mp | $mv |"
done
echo; echo "berthd with $((n + 2)) containers: $br KiB RSS / $bp KiB PSS; load at end $(cut -d' ' -f1-3 /proc/loadavg)"
log "removing containers"
