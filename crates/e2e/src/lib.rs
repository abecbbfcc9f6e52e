//! berth-e2e owns no library code: it is the end-to-end suite (`tests/*.rs`) that drives the real
//! callers of an OCI runtime — podman (via conmon), containerd's runc shim v2 (via `ctr`) and
//! dockerd (via its containerd) — with `berth-runtime` in runc's place, on a busybox image made
//! locally (no network). Shared test helpers live in `tests/common/mod.rs`.
//!
//! The tests need root and the peers installed (podman, conmon, containerd, ctr, dockerd, docker,
//! skopeo, umoci, busybox-static, script); a missing tool prints `SKIP: reason`.
//!
//! `berth-runtime` is found by building it: each test binary runs `cargo build -p berth-runtime`
//! into the target dir and profile the test binary itself was built in (derived from
//! `std::env::current_exe()`), so `cargo test -p berth-e2e` alone never runs a stale runtime.
//! `BERTH_RUNTIME=/path/to/berth-runtime` skips the build and tests that binary instead.
//!
//! The suite is itself checked against the reference: `BERTH_RUNTIME=/usr/sbin/runc cargo test -p
//! berth-e2e` passes every step, so a step that fails for berth-runtime names a difference from
//! runc, not a quirk of the engines or of this machine.
