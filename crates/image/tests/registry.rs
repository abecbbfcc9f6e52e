//! The registry client against a real Distribution registry on 127.0.0.1: manifests by tag and
//! digest, blobs, tags, error bodies, chunked and monolithic uploads, cross-repository mounts, and
//! retry/resume through a proxy that breaks connections.
mod registry_proxy;
mod registry_support;

use berth_image::reference::RegistrySettings;
use berth_image::registry::{
    sha256_digest, BlobPushOutcome, RegistryClient, RegistryError, RetryPolicy, OCI_MANIFEST,
};
use bytes::Bytes;
use registry_proxy::{Action, Proxy};
use registry_support::{block_on, busybox_oci, Registry};
use std::time::Duration;

fn client(host: &str) -> RegistryClient {
    RegistryClient::new(host, &RegistrySettings::default(), None)
        .expect("client")
        .with_retry(RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        })
}

async fn read_blob(c: &RegistryClient, repo: &str, digest: &str) -> (Vec<u8>, u32) {
    let mut d = c.get_blob(repo, digest).await.expect("get blob");
    let mut out = Vec::new();
    while let Some(chunk) = d.chunk().await.expect("chunk") {
        out.extend_from_slice(&chunk);
    }
    (out, d.resumes())
}

#[test]
fn manifests_blobs_tags_and_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "library/busybox:latest", false);
    reg.seed(&oci, "library/busybox:1.0", false);
    block_on(async {
        let c = client(&reg.host());
        c.ping().await.expect("ping");
        let m = c
            .get_manifest("library/busybox", "latest")
            .await
            .expect("manifest");
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.digest, sha256_digest(&m.bytes));
        let by_digest = c
            .get_manifest("library/busybox", &m.digest)
            .await
            .expect("by digest");
        assert_eq!(by_digest.bytes, m.bytes);
        let head = c
            .head_manifest("library/busybox", "latest")
            .await
            .expect("head")
            .expect("exists");
        assert_eq!(head.digest.as_deref(), Some(m.digest.as_str()));
        assert_eq!(head.size, Some(m.bytes.len() as u64));
        assert!(c
            .head_manifest("library/busybox", "nosuch")
            .await
            .expect("head")
            .is_none());

        let json: serde_json::Value = serde_json::from_slice(&m.bytes).expect("json");
        let layers = json["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 2);
        for l in layers {
            let digest = l["digest"].as_str().expect("digest");
            let (bytes, _) = read_blob(&c, "library/busybox", digest).await;
            assert_eq!(bytes.len() as u64, l["size"].as_u64().expect("size"));
            assert_eq!(sha256_digest(&bytes), digest);
            assert_eq!(
                c.blob_exists("library/busybox", digest)
                    .await
                    .expect("head"),
                Some(bytes.len() as u64)
            );
        }
        let mut tags = c.tags("library/busybox").await.expect("tags");
        tags.sort();
        assert_eq!(tags, ["1.0", "latest"]);

        let err = c
            .get_manifest("library/busybox", "nosuch")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "manifest unknown: library/busybox:nosuch");
        assert!(
            matches!(&err, RegistryError::Api { status: 404, code, .. } if code == "MANIFEST_UNKNOWN")
        );
        let missing = format!("sha256:{}", "0".repeat(64));
        let err = c.get_blob("library/busybox", &missing).await.unwrap_err();
        assert!(err.to_string().starts_with("blob unknown"), "{err}");
        let err = c.get_manifest("nosuch/repo", "latest").await.unwrap_err();
        assert!(err.to_string().contains("nosuch/repo:latest"), "{err}");
    });
}

#[test]
fn uploads_chunked_monolithic_and_mounted() {
    let reg = Registry::start();
    block_on(async {
        let c = client(&reg.host());
        let dir = tempfile::tempdir().expect("tempdir");
        // a blob of 300 KiB that doesn't compress, uploaded in 64 KiB chunks
        let data: Vec<u8> = (0..300 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let path = dir.path().join("blob");
        std::fs::write(&path, &data).expect("write");
        let digest = sha256_digest(&data);
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |n: u64| seen.lock().expect("lock").push(n);
        let out = c
            .push_blob(
                "a/one",
                &digest,
                data.len() as u64,
                &path,
                None,
                Some(64 * 1024),
                &progress,
            )
            .await
            .expect("chunked push");
        assert_eq!(out, BlobPushOutcome::Uploaded);
        assert_eq!(
            seen.lock().expect("lock").len(),
            5,
            "one progress call per chunk"
        );
        let (back, _) = read_blob(&c, "a/one", &digest).await;
        assert_eq!(back, data);
        // again: already there
        let out = c
            .push_blob(
                "a/one",
                &digest,
                data.len() as u64,
                &path,
                None,
                None,
                &progress,
            )
            .await
            .expect("push again");
        assert_eq!(out, BlobPushOutcome::Exists);
        // into another repository: mounted, not uploaded
        let out = c
            .push_blob(
                "b/two",
                &digest,
                data.len() as u64,
                &path,
                Some("a/one"),
                None,
                &progress,
            )
            .await
            .expect("mount");
        assert_eq!(
            out,
            BlobPushOutcome::Mounted {
                from: "a/one".into()
            }
        );
        assert_eq!(
            c.blob_exists("b/two", &digest).await.expect("head"),
            Some(data.len() as u64)
        );
        // a mount from a repository that lacks the blob falls back to an upload
        let small = b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}".to_vec();
        let spath = dir.path().join("config");
        std::fs::write(&spath, &small).expect("write");
        let sdigest = sha256_digest(&small);
        let out = c
            .push_blob(
                "b/two",
                &sdigest,
                small.len() as u64,
                &spath,
                Some("c/none"),
                None,
                &progress,
            )
            .await
            .expect("mount fallback");
        assert_eq!(out, BlobPushOutcome::Uploaded);
        // a manifest referring to both, readable by skopeo
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sdigest, "size": small.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": data.len()}],
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("json"));
        let d = c
            .put_manifest("b/two", "v1", OCI_MANIFEST, bytes.clone())
            .await
            .expect("put manifest");
        assert_eq!(d, sha256_digest(&bytes));
        let raw = reg.skopeo_raw("b/two:v1");
        assert_eq!(raw["layers"][0]["digest"], digest.as_str());
        // a wrong digest is refused by the registry with its error text
        let bad = format!("sha256:{}", "1".repeat(64));
        let err = c
            .push_blob(
                "b/two",
                &bad,
                small.len() as u64,
                &spath,
                None,
                None,
                &progress,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("digest"), "{err}");
    });
}

#[test]
fn retries_dropped_connections_and_resumes_broken_downloads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start();
    reg.seed(&oci, "library/busybox:latest", false);
    let port = reg.port;
    block_on(async {
        let direct = client(&reg.host());
        let m = direct
            .get_manifest("library/busybox", "latest")
            .await
            .expect("manifest");
        let json: serde_json::Value = serde_json::from_slice(&m.bytes).expect("json");
        let big = json["layers"][0]["digest"]
            .as_str()
            .expect("digest")
            .to_string();

        // the first two connections are dropped before any answer
        let proxy = Proxy::start(port, |i| if i < 2 { Action::Drop } else { Action::Pass }).await;
        let c = client(&proxy.host());
        let via = c
            .get_manifest("library/busybox", "latest")
            .await
            .expect("manifest through flaky proxy");
        assert_eq!(via.digest, m.digest);
        assert!(proxy.connections.load(std::sync::atomic::Ordering::SeqCst) >= 3);

        // the first blob answer is cut after 200 KB: the download resumes with Range
        let proxy = Proxy::start(port, |i| {
            if i == 0 {
                Action::Truncate(200_000)
            } else {
                Action::Pass
            }
        })
        .await;
        let c = client(&proxy.host());
        let (bytes, resumes) = read_blob(&c, "library/busybox", &big).await;
        assert_eq!(sha256_digest(&bytes), big);
        assert!(resumes >= 1, "download should have resumed");

        // 503 then 429 answers are retried too
        let proxy = Proxy::start(port, |i| match i {
            0 => Action::Status(503),
            1 => Action::Status(429),
            _ => Action::Pass,
        })
        .await;
        let c = client(&proxy.host());
        let via = c
            .get_manifest("library/busybox", "latest")
            .await
            .expect("manifest after 503 and 429");
        assert_eq!(via.digest, m.digest);
        // ... but not forever: the last answer's status is reported
        let proxy = Proxy::start(port, |_| Action::Status(503)).await;
        let c = client(&proxy.host());
        let err = c
            .get_manifest("library/busybox", "latest")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Api { status: 503, .. }),
            "{err:?}"
        );
        assert_eq!(
            proxy.connections.load(std::sync::atomic::Ordering::SeqCst),
            4
        );

        // a registry that never answers: bounded retries, then a clear error
        let proxy = Proxy::start(port, |_| Action::Drop).await;
        let c = client(&proxy.host());
        let err = c
            .get_manifest("library/busybox", "latest")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::RetriesExhausted { attempts: 4, .. }),
            "{err:?}"
        );
        assert_eq!(
            proxy.connections.load(std::sync::atomic::Ordering::SeqCst),
            4
        );
    });
}
