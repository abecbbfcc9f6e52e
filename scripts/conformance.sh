#!/usr/bin/env bash
# berth's OCI runtime-spec conformance suite (crates/conformance), run against one or more runtimes
# side by side, with a summary table: one row per scenario, one column per runtime.
#
# usage: scripts/conformance.sh [--build-only] [RUNTIME...]
#   RUNTIME: path or name of a runc-compatible binary (crun, runc, target/release/berth-runtime);
#            default: the workspace's berth-runtime (release, else debug).
#   --build-only: only build the static checker (what scripts/test.sh calls).
#
# The checker runs inside a busybox-only rootfs, so it is linked statically:
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p berth-conformance \
#       --bin berth-checker --target x86_64-unknown-linux-gnu
# Naming the target explicitly keeps RUSTFLAGS away from build scripts and proc macros, and puts
# the result in $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/. The harness takes it from
# BERTH_CHECKER (without it, it copies the dynamic test build plus its libraries into the rootfs).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
triple=x86_64-unknown-linux-gnu
checker=$target_dir/$triple/release/berth-checker

build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi

RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build -q --release -p berth-conformance --bin berth-checker --target "$triple"
if ! ldd "$checker" 2>&1 | grep -q -e 'statically linked' -e 'not a dynamic executable'; then
  echo "conformance: $checker is not statically linked" >&2
  exit 1
fi
[ "$build_only" = 1 ] && { echo "static checker: $checker"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "the conformance suite creates containers: run as root" >&2; exit 1; }

runtimes=("$@")
if [ ${#runtimes[@]} -eq 0 ]; then
  for p in "$target_dir/release/berth-runtime" "$target_dir/debug/berth-runtime"; do
    if [ -x "$p" ]; then runtimes=("$p"); break; fi
  done
  [ ${#runtimes[@]} -gt 0 ] || { echo "no berth-runtime built: give a runtime, e.g. $0 /usr/bin/crun" >&2; exit 1; }
fi

cargo test -q -p berth-conformance --test '*' --no-run 2>/dev/null
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
names=()
for rt in "${runtimes[@]}"; do
  path=$(command -v "$rt" || true)
  [ -n "$path" ] || { echo "runtime not found: $rt" >&2; exit 1; }
  path=$(readlink -f "$path")
  name=$(basename "$rt")
  names+=("$name")
  echo "== $name ($path)" >&2
  BERTH_RUNTIME=$path BERTH_CHECKER=$checker \
    cargo test -p berth-conformance --test '*' --no-fail-fast -- --test-threads=2 --show-output \
    >"$logs/$name.log" 2>&1 || true
  # One line per scenario: "NAME pass|FAIL|skip"; a passing test that printed SKIP is a skip.
  awk '
    /^---- .* stdout ----$/ { cur = $2; next }
    /^SKIP: / && cur != "" { skip[cur] = 1 }
    /^test .* \.\.\. (ok|FAILED|ignored)$/ { res[$2] = $4 }
    END {
      for (t in res) {
        r = res[t] == "ok" ? (t in skip ? "skip" : "pass") : (res[t] == "FAILED" ? "FAIL" : "skip")
        print t, r
      }
    }' "$logs/$name.log" | sort >"$logs/$name.res"
done

# The table.
{
  printf '%-40s' scenario
  for n in "${names[@]}"; do printf ' %-14s' "$n"; done
  printf '\n'
  cat "$logs"/*.res | awk '{print $1}' | sort -u | while read -r t; do
    printf '%-40s' "$t"
    for n in "${names[@]}"; do
      r=$(awk -v t="$t" '$1 == t {print $2}' "$logs/$n.res")
      printf ' %-14s' "${r:--}"
    done
    printf '\n'
  done
  printf '%-40s' 'passed/failed/skipped'
  for n in "${names[@]}"; do
    p=$(grep -c ' pass$' "$logs/$n.res" || true)
    f=$(grep -c ' FAIL$' "$logs/$n.res" || true)
    s=$(grep -c ' skip$' "$logs/$n.res" || true)
    printf ' %-14s' "$p/$f/$s"
  done
  printf '\n'
}
# Why each failure failed, per runtime (first lines of the panic message).
for n in "${names[@]}"; do
  if grep -q ' FAIL$' "$logs/$n.res"; then
    echo
    echo "== failures for $n"
    # Checks that failed inside the container, by how many scenarios they failed in.
    echo "  checks failing inside the container (scenarios):"
    { grep -a '^  not ok ' "$logs/$n.log" || true; } | sed -E 's/^  not ok [0-9]+ - //; s/ # .*//' |
      sort | uniq -c | sort -rn | head -25 | awk '{c = $1; $1 = ""; printf "    %3d %s\n", c, substr($0, 2)}'
    # The panic message and up to three lines after it (the first `not ok` lines).
    awk '
      /^thread .* panicked at/ { sub(/^thread /, ""); sub(/ \(.*/, ""); print "  " $0 ":"; n = 4; next }
      n > 0 && (/^$/ || /^stack backtrace/ || /^note: /) { n = 0 }
      n > 0 { print "      " $0; n-- }' "$logs/$n.log" | cut -c1-220
  fi
done
if [ -n "${CONFORMANCE_LOG_DIR:-}" ]; then mkdir -p "$CONFORMANCE_LOG_DIR" && cp "$logs"/*.log "$CONFORMANCE_LOG_DIR"/; fi
