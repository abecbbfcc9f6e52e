//! Content store and image database under concurrency, and garbage collection driven by image
//! records.
use std::io::Write;
use std::sync::Arc;

use berth_image::digest::Digest;
use berth_image::images::{ImageRecord, ImageStore};
use berth_image::store::{ContentStore, StoreError};

#[test]
fn concurrent_writers_of_the_same_blob_all_succeed() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(ContentStore::open(dir.path()).expect("open"));
    let data: Arc<Vec<u8>> = Arc::new((0..2_000_000u32).map(|i| (i % 251) as u8).collect());
    let want = Digest::sha256_of(&data);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, data, want) = (Arc::clone(&store), Arc::clone(&data), want.clone());
            std::thread::spawn(move || {
                let mut w = store
                    .writer(Some(&want), Some(data.len() as u64))
                    .expect("writer");
                for chunk in data.chunks(65536) {
                    w.write_all(chunk).expect("write");
                }
                w.commit().expect("commit")
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), want);
    }
    assert_eq!(store.list().expect("list"), vec![want.clone()]);
    assert_eq!(store.read(&want).expect("read"), *data);
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .expect("ingest")
            .count(),
        0
    );
}

#[test]
fn a_reader_never_sees_a_partial_blob() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = ContentStore::open(dir.path()).expect("open");
    let data = vec![42u8; 1 << 20];
    let d = Digest::sha256_of(&data);
    let mut w = store.writer(Some(&d), None).expect("writer");
    w.write_all(&data[..1000]).expect("write");
    assert!(!store.has(&d), "not visible before commit");
    assert!(matches!(store.open_blob(&d), Err(StoreError::NotFound(_))));
    w.write_all(&data[1000..]).expect("write");
    w.commit().expect("commit");
    assert_eq!(store.size(&d).expect("size"), 1 << 20);
}

#[test]
fn gc_follows_image_records() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = ContentStore::open(tmp.path().join("c")).expect("store");
    let images = ImageStore::open(tmp.path().join("i")).expect("images");
    let mk = |seed: &str| {
        let layer = store
            .write_bytes(format!("layer {seed}").as_bytes())
            .expect("layer");
        let config = store
            .write_bytes(format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}},"comment":"{seed}"}}"#).as_bytes())
            .expect("config");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]}}"#
        );
        let manifest = store.write_bytes(m.as_bytes()).expect("manifest");
        ImageRecord {
            id: config,
            manifest,
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            index: None,
            repo_tags: vec![format!("example.com/{seed}:1")],
            repo_digests: vec![],
            created: None,
            size: 1,
            layers: vec![layer.clone()],
            diff_ids: vec![layer],
            stored_at: None,
        }
    };
    let a = mk("a");
    let b = mk("b");
    images.put(a.clone()).expect("put a");
    images.put(b.clone()).expect("put b");
    let stats = store.gc(&images.gc_roots().expect("roots")).expect("gc");
    assert!(stats.removed.is_empty(), "everything is referenced");
    images.remove("example.com/a:1").expect("remove a");
    let stats = store.gc(&images.gc_roots().expect("roots")).expect("gc");
    let mut removed = stats.removed.clone();
    removed.sort();
    let mut want = vec![a.id.clone(), a.manifest.clone(), a.layers[0].clone()];
    want.sort();
    assert_eq!(removed, want);
    for d in [&b.id, &b.manifest, &b.layers[0]] {
        assert!(store.has(d));
    }
}

#[test]
fn concurrent_image_updates_are_not_lost() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_owned();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                // Each thread opens its own handle, as separate processes would.
                let images = ImageStore::open(&root).expect("open");
                let id = Digest::sha256_of(format!("img{i}").as_bytes());
                images
                    .put(ImageRecord {
                        id: id.clone(),
                        manifest: id,
                        manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                        index: None,
                        repo_tags: vec![format!("example.com/img:{i}")],
                        repo_digests: vec![],
                        created: None,
                        size: 0,
                        layers: vec![],
                        diff_ids: vec![],
                        stored_at: None,
                    })
                    .expect("put");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let images = ImageStore::open(&root).expect("open");
    assert_eq!(images.list().expect("list").len(), 8);
    for i in 0..8 {
        assert!(images.get(&format!("example.com/img:{i}")).is_some());
    }
}
