//! `push` to a real registry: chunked upload to an empty registry, skip of blobs it already has,
//! cross-repository mount on the same registry, and skopeo reading (and copying back) the result.
mod registry_support;

use std::sync::Mutex;
use std::time::Duration;

use berth_image::images::ImageStore;
use berth_image::progress::{LayerState, ProgressEvent};
use berth_image::pull::{pull, PullOptions};
use berth_image::push::{push, PushOptions};
use berth_image::reference::{Reference, RegistrySettings};
use berth_image::registry::{BlobPushOutcome, RetryPolicy};
use berth_image::snapshot::Snapshotter;
use berth_image::store::ContentStore;
use registry_support::{block_on, busybox_oci, Registry};

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse_with_default(s, "127.0.0.1:1").expect("reference")
}

#[test]
fn push_chunked_skip_and_mount_then_skopeo_reads_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let src = Registry::start();
    src.seed(&oci, "library/busybox:latest", false);
    let dst = Registry::start();
    let store = ContentStore::open(tmp.path().join("content")).expect("store");
    let images = ImageStore::open(tmp.path().join("images")).expect("images");
    let snaps = Snapshotter::open(tmp.path().join("snapshots")).expect("snapshots");
    let pull_opts = PullOptions {
        settings: RegistrySettings::default(),
        retry: retry(),
        ..Default::default()
    };
    let push_opts = PushOptions {
        settings: RegistrySettings::default(),
        retry: retry(),
        chunk_size: Some(256 * 1024),
        ..Default::default()
    };
    block_on(async {
        let from = reference(&format!("{}/library/busybox:latest", src.host()));
        let rec = pull(
            &from,
            &pull_opts,
            &store,
            &images,
            &snaps,
            &berth_image::progress::ignore,
        )
        .await
        .expect("pull");

        // to an empty registry, big layer in 256 KiB chunks
        let to = reference(&format!("{}/team/busybox:v1", dst.host()));
        images
            .tag(&rec.id.to_string(), &to.to_string())
            .expect("tag");
        let events = Mutex::new(Vec::new());
        let sink = |e: ProgressEvent| events.lock().expect("lock").push(e);
        let res = push(&to, &push_opts, &store, &images, &sink)
            .await
            .expect("push");
        assert_eq!(
            res.digest,
            rec.manifest.to_string(),
            "manifest bytes pushed unchanged"
        );
        assert!(
            res.blobs
                .iter()
                .all(|(_, o)| *o == BlobPushOutcome::Uploaded),
            "{:?}",
            res.blobs
        );
        assert_eq!(res.blobs.len(), 3, "two layers and the config");
        let ev = events.lock().expect("lock").clone();
        assert!(
            ev.iter()
                .filter(|e| matches!(
                    e,
                    ProgressEvent::Layer {
                        state: LayerState::Pushing { .. },
                        ..
                    }
                ))
                .count()
                >= 5,
            "chunk progress"
        );
        assert_eq!(
            ev.last().and_then(|e| e.to_json_message().status),
            Some(format!("v1: digest: {} size: {}", res.digest, res.size))
        );
        let raw = dst.skopeo_raw("team/busybox:v1");
        assert_eq!(raw["config"]["digest"], rec.id.to_string().as_str());
        let out = std::process::Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}", to))
            .arg(format!("oci:{}:copied", tmp.path().join("back").display()))
            .output()
            .expect("skopeo copy");
        assert!(
            out.status.success(),
            "skopeo copy back: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recorded = images.resolve(&to.to_string()).expect("record");
        assert!(recorded.repo_digests.contains(&format!(
            "{}/team/busybox@{}",
            dst.host(),
            res.digest
        )));

        // again: the registry has every blob
        let res = push(
            &to,
            &push_opts,
            &store,
            &images,
            &berth_image::progress::ignore,
        )
        .await
        .expect("push again");
        assert!(
            res.blobs.iter().all(|(_, o)| *o == BlobPushOutcome::Exists),
            "{:?}",
            res.blobs
        );

        // another repository on the same registry: blobs are mounted from team/busybox
        let other = reference(&format!("{}/other/copy:v2", dst.host()));
        images
            .tag(&rec.id.to_string(), &other.to_string())
            .expect("tag");
        let res = push(
            &other,
            &push_opts,
            &store,
            &images,
            &berth_image::progress::ignore,
        )
        .await
        .expect("push mount");
        assert!(
            res.blobs.iter().all(|(_, o)| *o
                == BlobPushOutcome::Mounted {
                    from: "team/busybox".into()
                }),
            "{:?}",
            res.blobs
        );
        assert_eq!(dst.skopeo_raw("other/copy:v2")["layers"], raw["layers"]);

        // and back: a fresh local store pulls what was pushed
        let dir2 = tempfile::tempdir().expect("tempdir");
        let store2 = ContentStore::open(dir2.path().join("c")).expect("store");
        let images2 = ImageStore::open(dir2.path().join("i")).expect("images");
        let snaps2 = Snapshotter::open(dir2.path().join("s")).expect("snaps");
        let back = pull(
            &other,
            &pull_opts,
            &store2,
            &images2,
            &snaps2,
            &berth_image::progress::ignore,
        )
        .await
        .expect("pull back");
        assert_eq!(back.id, rec.id);
        assert_eq!(back.diff_ids, rec.diff_ids);
    });
}
