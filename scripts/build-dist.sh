#!/usr/bin/env bash
# Build the shipped binaries into target/dist/:
#   berth-runtime and berth-shim as static executables (one per container operation / per running
#   container: no ld.so, libc.so or libseccomp.so to fault in each time — lower RSS, faster start),
#   berthd and berth as ordinary release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
triple=x86_64-unknown-linux-gnu
cargo build --release --workspace --bins -q
# --target keeps RUSTFLAGS away from build scripts and proc-macros (which can't be static)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -q --target "$triple" \
  -p berth-runtime -p berth-shim
mkdir -p "$target_dir/dist"
for b in berth-runtime berth-shim; do
  install -m 0755 "$target_dir/$triple/release/$b" "$target_dir/dist/$b"
done
for b in berthd berth; do
  [ -x "$target_dir/release/$b" ] && install -m 0755 "$target_dir/release/$b" "$target_dir/dist/$b"
done
ls "$target_dir/dist"
