//! One pull for scripts/bench-pull.sh (hyperfine runs this test binary): `BERTH_BENCH_REF` into a
//! fresh store under `BERTH_BENCH_ROOT`. Ignored in normal runs; it needs the benchmark registry.
use berth_image::images::ImageStore;
use berth_image::pull::{pull, PullOptions};
use berth_image::reference::{Reference, RegistrySettings};
use berth_image::snapshot::Snapshotter;
use berth_image::store::ContentStore;

#[test]
#[ignore = "benchmark: run by scripts/bench-pull.sh with BERTH_BENCH_REF and BERTH_BENCH_ROOT"]
fn pull_once() {
    let reference = std::env::var("BERTH_BENCH_REF").expect("BERTH_BENCH_REF");
    let root =
        std::path::PathBuf::from(std::env::var("BERTH_BENCH_ROOT").expect("BERTH_BENCH_ROOT"));
    let reference = Reference::parse_with_default(&reference, "127.0.0.1").expect("reference");
    let store = ContentStore::open(root.join("content")).expect("store");
    let images = ImageStore::open(root.join("images")).expect("images");
    let snaps = Snapshotter::open(root.join("snapshots")).expect("snapshots");
    let opts = PullOptions {
        settings: RegistrySettings::default(),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rec = rt
        .block_on(pull(
            &reference,
            &opts,
            &store,
            &images,
            &snaps,
            &berth_image::progress::ignore,
        ))
        .expect("pull");
    assert!(!rec.layers.is_empty());
}
