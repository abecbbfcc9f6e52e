//! save / load / import / export against real tools: a busybox OCI layout made with umoci,
//! docker-archives made by skopeo, and our own archives read back by skopeo.
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use berth_image::archive::{export, import, load, load_dir, save, ImportOptions};
use berth_image::images::ImageStore;
use berth_image::layer::UnpackOptions;
use berth_image::snapshot::{Mode, Snapshotter};
use berth_image::store::ContentStore;
use common::TarMaker;

struct Env {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    store: ContentStore,
    images: ImageStore,
    snaps: Snapshotter,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_owned();
    // Copy mode works without privileges; the overlay path is covered by tests/snapshot.rs.
    Env {
        store: ContentStore::open(root.join("content")).expect("store"),
        images: ImageStore::open(root.join("images")).expect("images"),
        snaps: Snapshotter::open_with_mode(root.join("snap"), Mode::Copy).expect("snap"),
        root,
        _tmp: tmp,
    }
}

fn busybox_layout(dir: &Path) -> bool {
    if common::busybox_oci_layout(dir).is_none() {
        println!("SKIP: umoci or a static busybox is missing");
        return false;
    }
    true
}

fn top_rootfs(e: &Env, rec: &berth_image::images::ImageRecord) -> std::path::PathBuf {
    e.snaps.fs_path(rec.chain_ids().last().expect("layers"))
}

fn oci_config_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    let m = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    let mbytes = fs::read(
        layout
            .join("blobs/sha256")
            .join(m.trim_start_matches("sha256:")),
    )
    .expect("manifest");
    let man: serde_json::Value = serde_json::from_slice(&mbytes).expect("json");
    man["config"]["digest"].as_str().expect("config").to_owned()
}

#[test]
fn oci_layout_dir_loads_and_round_trips_through_save() {
    let e = env();
    let layout = e.root.join("layout");
    if !busybox_layout(&layout) {
        return;
    }
    let loaded = load_dir(
        &e.store,
        &e.images,
        &e.snaps,
        &layout,
        &UnpackOptions::default(),
    )
    .expect("load dir");
    assert_eq!(loaded.len(), 1);
    let rec = loaded[0].record.clone();
    assert_eq!(rec.id.to_string(), oci_config_digest(&layout));
    assert!(top_rootfs(&e, &rec).join("bin/busybox").is_file());

    // Name it, save it, forget it, load it back: same id, same name, same content.
    e.images
        .tag(&rec.id.to_string(), "docker.io/library/busybox:latest")
        .expect("tag");
    let archive = e.root.join("saved.tar");
    save(
        &e.store,
        &e.images,
        &["busybox".to_owned()],
        fs::File::create(&archive).expect("create"),
    )
    .expect("save");
    e.images.remove(&rec.id.to_string()).expect("remove");
    let gc = e
        .store
        .gc(&e.images.gc_roots().expect("roots"))
        .expect("gc");
    assert!(!gc.removed.is_empty());
    assert_eq!(e.snaps.prune(&[]).expect("prune").len(), 1);
    let loaded = load(
        &e.store,
        &e.images,
        &e.snaps,
        fs::File::open(&archive).expect("open"),
        &UnpackOptions::default(),
    )
    .expect("load");
    assert_eq!(
        loaded[0].record.id, rec.id,
        "image id survives the round trip"
    );
    assert_eq!(loaded[0].tags, vec!["docker.io/library/busybox:latest"]);
    assert_eq!(
        e.images
            .get("docker.io/library/busybox:latest")
            .expect("tagged")
            .id,
        rec.id
    );
    assert!(top_rootfs(&e, &loaded[0].record)
        .join("bin/busybox")
        .is_file());

    // The archive is both a docker-archive and an OCI layout, and skopeo reads it as each.
    let names = list_tar(&archive);
    for n in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    if common::which("skopeo").is_some() {
        for src in [
            format!("docker-archive:{}", archive.display()),
            format!("oci-archive:{}", archive.display()),
        ] {
            let out = Command::new("skopeo")
                .args(["inspect", "--config", &src])
                .output()
                .expect("skopeo");
            assert!(
                out.status.success(),
                "{src}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let cfg = Command::new("skopeo")
                .args(["inspect", "--raw", "--config", &src])
                .output()
                .expect("skopeo");
            assert_eq!(
                berth_image::digest::Digest::sha256_of(&cfg.stdout),
                rec.id,
                "{src}: same config"
            );
        }
    } else {
        println!("SKIP: skopeo missing, archive not cross-checked");
    }
}

fn list_tar(p: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(p).output().expect("tar");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .collect()
}

#[test]
fn skopeo_docker_archive_and_oci_tar_load() {
    let e = env();
    let layout = e.root.join("layout");
    if !busybox_layout(&layout) {
        return;
    }
    if common::which("skopeo").is_none() {
        println!("SKIP: skopeo missing");
        return;
    }
    let want = oci_config_digest(&layout);
    let da = e.root.join("docker-archive.tar");
    let out = Command::new("skopeo")
        .args([
            "copy",
            &format!("oci:{}:latest", layout.display()),
            &format!("docker-archive:{}:example.com/test/bb:v1", da.display()),
        ])
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded = load(
        &e.store,
        &e.images,
        &e.snaps,
        fs::File::open(&da).expect("open"),
        &UnpackOptions::default(),
    )
    .expect("load");
    assert_eq!(loaded[0].record.id.to_string(), want);
    assert_eq!(loaded[0].tags, vec!["example.com/test/bb:v1"]);
    assert!(top_rootfs(&e, &loaded[0].record)
        .join("bin/busybox")
        .is_file());

    // An OCI layout as a (gzip-compressed) tar stream loads the same image.
    let e2 = env();
    let tgz = e2.root.join("layout.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&layout)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let loaded = load(
        &e2.store,
        &e2.images,
        &e2.snaps,
        fs::File::open(&tgz).expect("open"),
        &UnpackOptions::default(),
    )
    .expect("load");
    assert_eq!(loaded[0].record.id.to_string(), want);
}

#[test]
fn hostile_archive_paths_are_only_keys() {
    let e = env();
    let outside = e.root.join("outside-victim");
    fs::write(&outside, b"original").expect("victim");
    let manifest = format!(
        r#"[{{"Config":"../../{0}","RepoTags":["x:1"],"Layers":["/{0}"]}}]"#,
        outside.display()
    );
    let tar = TarMaker::new()
        .file(&format!("../../{}", outside.display()), b"pwned")
        .symlink("link", outside.to_str().expect("utf8"))
        .file("manifest.json", manifest.as_bytes())
        .finish();
    let r = load(
        &e.store,
        &e.images,
        &e.snaps,
        &tar[..],
        &UnpackOptions::default(),
    );
    assert!(r.is_err(), "nonsense archive refused");
    assert_eq!(fs::read(&outside).expect("victim"), b"original");
    assert!(e.images.list().expect("list").is_empty());
}

#[test]
fn import_then_export_round_trips_a_rootfs() {
    let e = env();
    let rootfs_tar = TarMaker::new()
        .dir("bin")
        .file_owned("bin/hello", b"#!/bin/sh\necho hi\n", 0o755, 0, 0)
        .symlink("bin/hi", "hello")
        .dir("etc")
        .file("etc/motd", b"welcome")
        .finish();
    let gz = common::gzip(&rootfs_tar);
    let opts = ImportOptions {
        tag: Some("imported/rootfs:1".into()),
        cmd: Some(vec!["/bin/hello".into()]),
        ..Default::default()
    };
    let rec = import(
        &e.store,
        &e.images,
        &e.snaps,
        &gz[..],
        &UnpackOptions::default(),
        &opts,
    )
    .expect("import");
    assert_eq!(rec.repo_tags, vec!["docker.io/imported/rootfs:1"]);
    assert_eq!(
        rec.diff_ids,
        vec![berth_image::digest::Digest::sha256_of(&rootfs_tar)]
    );
    assert_eq!(
        rec.layers,
        vec![berth_image::digest::Digest::sha256_of(&gz)]
    );
    let cfg: serde_json::Value = e.store.read_json(&rec.id).expect("config");
    assert_eq!(cfg["config"]["Cmd"][0], "/bin/hello");
    assert_eq!(cfg["rootfs"]["diff_ids"][0], rec.diff_ids[0].to_string());
    assert!(e.store.has(&rec.manifest));

    let m = e
        .snaps
        .mount_for_container("exp", &rec.chain_ids())
        .expect("rootfs");
    fs::write(m.path.join("etc/new"), b"container write").expect("write");
    let mut out = Vec::new();
    export(&m.path, &mut out).expect("export");
    e.snaps.remove_container("exp").expect("cleanup");
    let mut names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .expect("entries")
        .map(|en| {
            en.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned()
        })
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["bin", "bin/hello", "bin/hi", "etc", "etc/motd", "etc/new"]
    );
}

#[test]
fn saving_an_unknown_name_writes_nothing() {
    let e = env();
    let mut out = Vec::new();
    let err = save(&e.store, &e.images, &["nope:1".to_owned()], &mut out).expect_err("unknown");
    assert!(err.to_string().contains("nope:1"), "{err}");
    assert!(out.is_empty());
}
