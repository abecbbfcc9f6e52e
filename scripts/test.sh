#!/usr/bin/env bash
# berth's test command (what .ci/run calls): format, lints, then every test tier, as root.
#   unit tests beside the code, privileged integration tests (real namespaces, mounts, cgroups),
#   and end-to-end tests driving the binaries with real peers (podman, ctr, dockerd, skopeo, registry).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the tests create containers: run as root" >&2; exit 1; }
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo build --workspace --all-targets -q
# the conformance checker must be static: it runs inside a busybox-only rootfs
if [ -x scripts/conformance.sh ]; then scripts/conformance.sh --build-only; fi
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/berth-test.log
