#!/usr/bin/env bash
# Fresh machine → build everything → run a container from a busybox-static image made locally.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (containers need namespaces, mounts and cgroups)" >&2; exit 1; }
bash scripts/deps.sh
scripts/build-dist.sh >/dev/null
bundle=${BERTH_QUICKSTART_BUNDLE:-/tmp/berth-quickstart}
scripts/make-busybox-bundle.sh "$bundle" -- sh -c 'echo "hello from berth: $(hostname), pid $$, $(id)"' >/dev/null
echo "+ berth-runtime run --bundle $bundle quickstart"
exec "${CARGO_TARGET_DIR:-target}/dist/berth-runtime" run --bundle "$bundle" "quickstart-$$"
