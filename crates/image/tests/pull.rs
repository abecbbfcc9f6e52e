//! `pull` against a real registry: by tag, by digest, through an index, gzip and zstd layers,
//! layer skipping, mirrors and the default registry setting, retries through a flaky proxy, and
//! a corrupted blob on the registry's disk (clear error, nothing left behind).
mod registry_proxy;
mod registry_support;

use std::sync::Mutex;
use std::time::Duration;

use berth_image::images::ImageStore;
use berth_image::progress::{LayerState, ProgressEvent};
use berth_image::pull::{pull, Platform, PullError, PullOptions};
use berth_image::reference::{Reference, RegistrySettings};
use berth_image::registry::{RegistryClient, RetryPolicy, OCI_INDEX};
use berth_image::snapshot::Snapshotter;
use berth_image::store::ContentStore;
use registry_proxy::{Action, Proxy};
use registry_support::{block_on, busybox_oci, Registry};

struct Local {
    _dir: tempfile::TempDir,
    store: ContentStore,
    images: ImageStore,
    snaps: Snapshotter,
}

fn local() -> Local {
    let dir = tempfile::tempdir().expect("tempdir");
    Local {
        store: ContentStore::open(dir.path().join("content")).expect("store"),
        images: ImageStore::open(dir.path().join("images")).expect("images"),
        snaps: Snapshotter::open(dir.path().join("snapshots")).expect("snapshotter"),
        _dir: dir,
    }
}

fn opts() -> PullOptions {
    PullOptions {
        settings: RegistrySettings::default(),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        ..Default::default()
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse_with_default(s, "127.0.0.1:1").expect("reference")
}

/// The manifest of `repo:tag` as the registry serves it.
async fn manifest_json(reg: &Registry, repo: &str, tag: &str) -> serde_json::Value {
    let c = RegistryClient::new(&reg.host(), &RegistrySettings::default(), None).expect("client");
    let m = c.get_manifest(repo, tag).await.expect("manifest");
    serde_json::from_slice(&m.bytes).expect("manifest json")
}

/// Flips `n` bytes in the middle of a stored blob (same size, so only the digest can tell).
fn corrupt_blob(reg: &Registry, digest: &str, n: usize) {
    let path = reg.blob_data_path(digest);
    let mut data = std::fs::read(&path).expect("read blob");
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + n] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &data).expect("corrupt blob");
}

struct Events(Mutex<Vec<ProgressEvent>>);
impl Events {
    fn new() -> Self {
        Events(Mutex::new(Vec::new()))
    }
    fn sink(&self) -> impl Fn(ProgressEvent) + Send + Sync + '_ {
        move |e| self.0.lock().expect("lock").push(e)
    }
    fn layer_states(&self, pred: impl Fn(&LayerState) -> bool) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| matches!(e, ProgressEvent::Layer { state, .. } if pred(state)))
            .count()
    }
    fn statuses(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| e.to_json_message().status)
            .collect()
    }
}

#[test]
fn pull_by_tag_then_digest_skips_existing_layers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "library/busybox:latest", false);
    let l = local();
    block_on(async {
        let r = reference(&format!("{}/library/busybox:latest", reg.host()));
        let ev = Events::new();
        let rec = pull(&r, &opts(), &l.store, &l.images, &l.snaps, &ev.sink())
            .await
            .expect("pull");
        assert_eq!(
            rec.repo_tags,
            [format!("{}/library/busybox:latest", reg.host())]
        );
        assert_eq!(rec.layers.len(), 2);
        assert_eq!(rec.diff_ids.len(), 2);
        assert!(rec.repo_digests[0].starts_with(&format!("{}/library/busybox@sha256:", reg.host())));
        for d in rec.layers.iter().chain([&rec.id, &rec.manifest]) {
            assert!(l.store.has(d), "blob {d} stored");
        }
        let chains = rec.chain_ids();
        let base = l.snaps.fs_path(&chains[0]);
        assert!(
            base.join("bin/busybox").is_file(),
            "busybox unpacked in {}",
            base.display()
        );
        assert_eq!(
            std::fs::read_link(base.join("bin/sh"))
                .expect("sh link")
                .to_str(),
            Some("busybox")
        );
        let top = l.snaps.fs_path(&chains[1]);
        assert_eq!(
            std::fs::read_to_string(top.join("etc/berth-fixture")).expect("layer 2"),
            "berth registry fixture\n"
        );
        assert_eq!(ev.layer_states(|s| *s == LayerState::Complete), 2);
        let statuses = ev.statuses();
        assert_eq!(statuses[0], "Pulling from library/busybox");
        assert!(statuses.iter().any(|s| s.starts_with("Digest: sha256:")));
        assert!(statuses
            .last()
            .expect("last")
            .starts_with("Status: Downloaded newer image for"));

        // again, by digest: every layer already exists, nothing downloaded
        let pinned = r
            .with_digest(rec.repo_digests[0].split('@').nth(1).expect("digest"))
            .expect("digest ref");
        let ev = Events::new();
        let again = pull(&pinned, &opts(), &l.store, &l.images, &l.snaps, &ev.sink())
            .await
            .expect("pull by digest");
        assert_eq!(again.id, rec.id);
        assert_eq!(ev.layer_states(|s| *s == LayerState::AlreadyExists), 2);
        assert_eq!(
            ev.layer_states(|s| matches!(s, LayerState::Downloading { .. })),
            0
        );
        assert_eq!(l.images.list().expect("list").len(), 1);

        // snapshots pruned, blobs kept: the layers are unpacked from the local blobs. The
        // registry's copies are corrupted first, so a download would fail the pull.
        for c in rec.chain_ids().iter().rev() {
            l.snaps.remove(c).expect("remove snapshot");
        }
        for d in &rec.layers {
            let p = reg.blob_data_path(&d.to_string());
            let mut data = std::fs::read(&p).expect("read blob");
            let last = data.len() - 1;
            data[last] ^= 0xff;
            std::fs::write(&p, data).expect("corrupt");
        }
        let ev = Events::new();
        let rec2 = pull(&pinned, &opts(), &l.store, &l.images, &l.snaps, &ev.sink())
            .await
            .expect("re-pull with snapshots pruned");
        assert_eq!(rec2.id, rec.id);
        assert!(l.snaps.fs_path(&chains[0]).join("bin/busybox").is_file());
        assert_eq!(
            ev.layer_states(|s| matches!(s, LayerState::Downloading { .. })),
            0,
            "nothing downloaded"
        );
        assert_eq!(ev.layer_states(|s| *s == LayerState::Complete), 2);

        let err = pull(
            &reference(&format!("{}/library/busybox:nosuch", reg.host())),
            &opts(),
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .unwrap_err();
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        assert!(
            text.contains("manifest unknown: library/busybox:nosuch"),
            "{text}"
        );
    });
}

#[test]
fn pull_index_picks_platform_and_zstd_layers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "zstd/busybox:latest", true);
    let l = local();
    block_on(async {
        let c =
            RegistryClient::new(&reg.host(), &RegistrySettings::default(), None).expect("client");
        let amd = c
            .get_manifest("zstd/busybox", "latest")
            .await
            .expect("manifest");
        let m: serde_json::Value = serde_json::from_slice(&amd.bytes).expect("json");
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        // an arm64 manifest: same layers, its own config
        let mut cfg: serde_json::Value = {
            let mut d = c
                .get_blob("zstd/busybox", m["config"]["digest"].as_str().expect("cfg"))
                .await
                .expect("config");
            let mut b = Vec::new();
            while let Some(x) = d.chunk().await.expect("chunk") {
                b.extend_from_slice(&x);
            }
            serde_json::from_slice(&b).expect("config json")
        };
        cfg["architecture"] = "arm64".into();
        let cfg_bytes = serde_json::to_vec(&cfg).expect("json");
        let cfg_path = tmp.path().join("arm-config");
        std::fs::write(&cfg_path, &cfg_bytes).expect("write");
        let cfg_digest = berth_image::registry::sha256_digest(&cfg_bytes);
        c.push_blob(
            "zstd/busybox",
            &cfg_digest,
            cfg_bytes.len() as u64,
            &cfg_path,
            None,
            None,
            &|_| {},
        )
        .await
        .expect("push arm config");
        let mut arm = m.clone();
        arm["config"]["digest"] = cfg_digest.clone().into();
        arm["config"]["size"] = cfg_bytes.len().into();
        let arm_bytes = bytes::Bytes::from(serde_json::to_vec(&arm).expect("json"));
        let arm_digest = c
            .put_manifest(
                "zstd/busybox",
                "arm",
                "application/vnd.oci.image.manifest.v1+json",
                arm_bytes.clone(),
            )
            .await
            .expect("put arm");
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_digest, "size": arm_bytes.len(),
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.digest, "size": amd.bytes.len(),
                 "platform": {"os": "linux", "architecture": "amd64"}},
            ],
        });
        let index_digest = c
            .put_manifest(
                "zstd/busybox",
                "multi",
                OCI_INDEX,
                bytes::Bytes::from(serde_json::to_vec(&index).expect("json")),
            )
            .await
            .expect("put index");
        assert_eq!(
            reg.skopeo_raw("zstd/busybox:multi")["manifests"][1]["digest"],
            amd.digest.as_str()
        );

        let r = reference(&format!("{}/zstd/busybox:multi", reg.host()));
        let rec = pull(
            &r,
            &opts(),
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .expect("pull index");
        assert_eq!(rec.manifest.to_string(), amd.digest);
        assert_eq!(
            rec.index.as_ref().map(|d| d.to_string()),
            Some(index_digest.clone())
        );
        assert_eq!(
            rec.repo_digests,
            [format!("{}/zstd/busybox@{index_digest}", reg.host())]
        );
        let base = l.snaps.fs_path(&rec.chain_ids()[0]);
        assert!(base.join("bin/busybox").is_file(), "zstd layer unpacked");

        let arm_opts = PullOptions {
            platform: Some("linux/arm64/v8".parse::<Platform>().expect("platform")),
            ..opts()
        };
        let ev = Events::new();
        let rec_arm = pull(&r, &arm_opts, &l.store, &l.images, &l.snaps, &ev.sink())
            .await
            .expect("pull arm64");
        assert_eq!(rec_arm.manifest.to_string(), arm_digest);
        assert_eq!(rec_arm.id.to_string(), cfg_digest);
        assert_eq!(
            ev.layer_states(|s| *s == LayerState::AlreadyExists),
            2,
            "same layers, same snapshots"
        );

        let s390 = PullOptions {
            platform: Some("linux/s390x".parse::<Platform>().expect("platform")),
            ..opts()
        };
        let err = pull(
            &r,
            &s390,
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PullError::NoPlatform { .. }), "{err:?}");
        assert!(
            err.to_string().contains("linux/arm64/v8, linux/amd64"),
            "{err}"
        );

        // a single-platform manifest is checked against an explicit --platform (docker's
        // "does not match the specified platform"), and nothing is recorded for it
        let single = reference(&format!("{}/zstd/busybox@{}", reg.host(), amd.digest));
        let arm64 = PullOptions {
            platform: Some("linux/arm64".parse::<Platform>().expect("platform")),
            ..opts()
        };
        let before = l.images.list().expect("list").len();
        let err = pull(
            &single,
            &arm64,
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PullError::PlatformMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("linux/amd64"), "{err}");
        assert_eq!(
            l.images.list().expect("list").len(),
            before,
            "no image recorded"
        );
        let amd64 = PullOptions {
            platform: Some("linux/amd64".parse::<Platform>().expect("platform")),
            ..opts()
        };
        pull(
            &single,
            &amd64,
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .expect("matching platform pulls");
    });
}

#[test]
fn pull_docker_schema2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    registry_support::seed_format(
        &oci,
        &format!("{}/docker/busybox:v2s2", reg.host()),
        false,
        None,
        Some("v2s2"),
    );
    let raw = reg.skopeo_raw("docker/busybox:v2s2");
    assert_eq!(raw["mediaType"], berth_image::registry::DOCKER_MANIFEST);
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let l = local();
    block_on(async {
        let r = reference(&format!("{}/docker/busybox:v2s2", reg.host()));
        let rec = pull(
            &r,
            &opts(),
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .expect("pull v2s2");
        assert_eq!(
            rec.manifest_media_type,
            berth_image::registry::DOCKER_MANIFEST
        );
        assert!(l
            .snaps
            .fs_path(&rec.chain_ids()[0])
            .join("bin/busybox")
            .is_file());
    });
}

/// Two pulls sharing a layer, one failing: the failed pull's undo (and a gc from `rmi` meanwhile)
/// must not delete the layer the other pull is about to record an image on. The "other pull" is
/// its lease, taken the way pull takes it; concurrency 1 makes the failing pull commit layer 1
/// before layer 2's corrupted blob fails it.
#[test]
fn failed_pull_keeps_what_another_pull_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "library/busybox:latest", false);
    let l = local();
    block_on(async {
        let json = manifest_json(&reg, "library/busybox", "latest").await;
        let digest = |v: &serde_json::Value| v.as_str().expect("digest").to_string();
        let layer0: berth_image::digest::Digest = digest(&json["layers"][0]["digest"])
            .parse()
            .expect("digest");
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(reg.blob_data_path(&digest(&json["config"]["digest"])))
                .expect("config blob"),
        )
        .expect("config json");
        // the first chain id is the first diff id
        let chain0: berth_image::digest::Digest = digest(&config["rootfs"]["diff_ids"][0])
            .parse()
            .expect("diff id");
        corrupt_blob(&reg, &digest(&json["layers"][1]["digest"]), 1);

        let mut other_snaps = l.snaps.leases().lease();
        other_snaps.hold(&chain0);
        let mut other_blobs = l.store.leases().lease();
        other_blobs.hold(&layer0);

        let r = reference(&format!("{}/library/busybox:latest", reg.host()));
        let one_at_a_time = PullOptions {
            max_concurrent_downloads: 1,
            ..opts()
        };
        let err = pull(
            &r,
            &one_at_a_time,
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .unwrap_err();
        assert!(matches!(&err, PullError::LayerMismatch { .. }), "{err:?}");
        assert!(l.snaps.exists(&chain0), "layer 1's snapshot is kept");
        assert!(l.store.has(&layer0), "layer 1's blob is kept");
        l.store.gc(&[]).expect("gc");
        l.snaps.prune(&[]).expect("prune");
        assert!(
            l.snaps.exists(&chain0) && l.store.has(&layer0),
            "gc keeps what a lease holds"
        );
        drop((other_snaps, other_blobs));
        l.store.gc(&[]).expect("gc");
        l.snaps.prune(&[]).expect("prune");
        assert!(
            !l.snaps.exists(&chain0) && !l.store.has(&layer0),
            "released: unreferenced content goes"
        );
    });
}

#[test]
fn corrupted_blob_fails_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "library/busybox:latest", false);
    let l = local();
    block_on(async {
        let json = manifest_json(&reg, "library/busybox", "latest").await;
        let big = json["layers"][0]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        corrupt_blob(&reg, &big, 64);

        let r = reference(&format!("{}/library/busybox:latest", reg.host()));
        let err = pull(
            &r,
            &opts(),
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, PullError::LayerMismatch { what: "digest", .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&big) && text.contains("digest mismatch"),
            "{text}"
        );
        assert!(
            l.store.list().expect("list").is_empty(),
            "no blob left: {:?}",
            l.store.list()
        );
        assert!(l.images.list().expect("list").is_empty(), "no image record");
        let left: Vec<_> = std::fs::read_dir(l._dir.path().join("content/ingest"))
            .expect("ingest")
            .collect();
        assert!(left.is_empty(), "no partial ingest files");
        assert!(
            l.snaps.list().expect("snapshots").is_empty(),
            "no snapshot left"
        );
    });
}

#[test]
fn retries_mirrors_and_default_registry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "library/busybox:latest", false);
    let port = reg.port;
    block_on(async {
        // a proxy that drops the first two connections and cuts the next answer short
        let proxy = Proxy::start(port, |i| match i {
            0 | 1 => Action::Drop,
            2 => Action::Truncate(300),
            _ => Action::Pass,
        })
        .await;
        let l = local();
        let r = reference(&format!("{}/library/busybox:latest", proxy.host()));
        let rec = pull(
            &r,
            &opts(),
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .expect("pull through flaky proxy");
        assert_eq!(rec.layers.len(), 2);

        // short name → default registry setting; its mirror (the real one) answers, the
        // configured default registry itself is a dead port
        let dead = registry_support::free_port();
        let mut settings = RegistrySettings {
            default_registry: format!("127.0.0.1:{dead}"),
            ..Default::default()
        };
        settings
            .mirrors
            .insert(format!("127.0.0.1:{dead}"), vec![reg.host()]);
        let r = settings.parse("busybox").expect("short name");
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:{dead}/library/busybox:latest")
        );
        let l = local();
        let rec = pull(
            &r,
            &PullOptions { settings, ..opts() },
            &l.store,
            &l.images,
            &l.snaps,
            &berth_image::progress::ignore,
        )
        .await
        .expect("pull via mirror");
        assert_eq!(
            rec.repo_tags,
            [format!("127.0.0.1:{dead}/library/busybox:latest")]
        );
    });
}
