//! Snapshots on real overlay mounts: layers unpacked into per-chain-id snapshots, a container's
//! merged view (whiteouts and opaque dirs applied by the kernel), writes landing in its upper
//! layer, and the copy-mode fallback giving the same view.
mod common;

use std::fs;
use std::path::Path;

use berth_image::digest::Digest;
use berth_image::layer::{unpack, Compression, UnpackOptions};
use berth_image::snapshot::{chain_ids, Mode, Snapshotter};
use common::{MountGuard, TarMaker};

fn layers() -> Vec<Vec<u8>> {
    vec![
        TarMaker::new()
            .dir("etc")
            .file("etc/os-release", b"base")
            .file("etc/remove-me", b"x")
            .dir("var")
            .dir("var/cache")
            .file("var/cache/old", b"old")
            .dir("var/cache/olddir")
            .file("var/cache/olddir/deep", b"old")
            .finish(),
        TarMaker::new()
            .dir("etc")
            .file("etc/.wh.remove-me", b"")
            .file("etc/added", b"l2")
            .dir("var/cache")
            .file("var/cache/.wh..wh..opq", b"")
            .file("var/cache/new", b"new")
            .finish(),
    ]
}

/// Unpack `layers` into `s`, returning the chain ids.
fn build(s: &Snapshotter, layers: &[Vec<u8>]) -> Vec<Digest> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    let chain = chain_ids(&diff_ids);
    for (i, l) in layers.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| &chain[p]);
        let p = s.prepare(&chain[i], parent).expect("prepare");
        let opts = s.unpack_options(&UnpackOptions::default());
        let stats = unpack(&l[..], Compression::None, p.path(), &opts).expect("unpack");
        assert_eq!(stats.diff_id, diff_ids[i]);
        p.commit(stats.uncompressed_size).expect("commit");
    }
    chain
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn check_view(root: &Path) {
    assert_eq!(
        fs::read(root.join("etc/os-release")).expect("base"),
        b"base"
    );
    assert_eq!(fs::read(root.join("etc/added")).expect("added"), b"l2");
    assert!(
        !root.join("etc/remove-me").exists(),
        "whiteout hides the lower file"
    );
    assert_eq!(
        names(&root.join("var/cache")),
        vec!["new"],
        "opaque dir hides the lower entries"
    );
}

#[test]
fn overlay_container_sees_merged_layers() {
    if !common::is_root() || Mode::detect() != Mode::Overlay {
        println!("SKIP: overlayfs needs root and kernel support");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let s = Snapshotter::open_with_mode(dir.path(), Mode::Overlay).expect("open");
    let chain = build(&s, &layers());
    assert!(chain.iter().all(|c| s.exists(c)));
    let m = s.mount_for_container("c1", &chain).expect("mount");
    let _guard = MountGuard(m.path.clone());
    assert!(m.mounted);
    assert_eq!(m.lowerdirs[0], s.fs_path(&chain[1]), "top layer first");
    check_view(&m.path);
    // Writes go to the container's upper layer; snapshots stay pristine.
    fs::write(m.path.join("etc/os-release"), b"changed").expect("write");
    fs::remove_file(m.path.join("etc/added")).expect("rm");
    assert_eq!(
        fs::read(s.fs_path(&chain[0]).join("etc/os-release")).expect("lower"),
        b"base"
    );
    assert!(s.fs_path(&chain[1]).join("etc/added").exists());
    assert!(s.usage("c1").expect("usage") > 0);
    // A second container shares the snapshots and sees the pristine image.
    let m2 = s.mount_for_container("c2", &chain).expect("mount c2");
    let _guard2 = MountGuard(m2.path.clone());
    check_view(&m2.path);
    assert!(
        s.mount_for_container("c2", &chain).is_err(),
        "one writable layer per container"
    );
    // Snapshots used by containers survive a prune with no image roots.
    assert!(s.prune(&[]).expect("prune").is_empty());
    s.remove_container("c1").expect("remove c1");
    s.remove_container("c2").expect("remove c2");
    assert!(!m.path.exists());
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(dir.path().to_str().expect("utf8")),
        "nothing left mounted"
    );
    assert_eq!(s.prune(&[]).expect("prune").len(), 2);
}

#[test]
fn copy_mode_gives_the_same_view() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Snapshotter::open_with_mode(dir.path(), Mode::Copy).expect("open");
    let chain = build(&s, &layers());
    // Each copy-mode snapshot is a full tree; the base one is untouched by the layer above.
    assert!(s.fs_path(&chain[0]).join("etc/remove-me").exists());
    check_view(&s.fs_path(&chain[1]));
    let m = s.mount_for_container("c", &chain).expect("copy");
    assert!(!m.mounted);
    check_view(&m.path);
    fs::write(m.path.join("etc/os-release"), b"changed").expect("write");
    assert_eq!(
        fs::read(s.fs_path(&chain[1]).join("etc/os-release")).expect("snap"),
        b"base"
    );
    assert_eq!(
        fs::read(s.fs_path(&chain[0]).join("etc/os-release")).expect("snap"),
        b"base"
    );
    s.remove_container("c").expect("remove");
    assert!(!m.path.exists());
}

#[test]
fn copy_mode_needs_the_parent_committed() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Snapshotter::open_with_mode(dir.path(), Mode::Copy).expect("open");
    let a = Digest::sha256_of(b"a");
    let b = Digest::sha256_of(b"b");
    let err = s.prepare(&b, Some(&a)).expect_err("parent missing");
    assert!(err.to_string().contains("not committed"), "{err}");
}

#[test]
fn overlay_with_more_layers_than_mount_options_fit() {
    if !common::is_root() || Mode::detect() != Mode::Overlay {
        println!("SKIP: overlayfs needs root and kernel support");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let s = Snapshotter::open_with_mode(dir.path(), Mode::Overlay).expect("open");
    let mut layers: Vec<Vec<u8>> = (0..60)
        .map(|i| {
            TarMaker::new()
                .file(&format!("layer{i}"), format!("{i}").as_bytes())
                .finish()
        })
        .collect();
    layers.push(TarMaker::new().file(".wh.layer0", b"").finish());
    let chain = build(&s, &layers);
    let m = s
        .mount_for_container("many", &chain)
        .expect("mount 61 layers");
    let _guard = MountGuard(m.path.clone());
    assert!(
        m.overlay_options().expect("opts").len() > 4096,
        "the test needs a long option string"
    );
    assert_eq!(fs::read(m.path.join("layer59")).expect("top-ish"), b"59");
    assert_eq!(fs::read(m.path.join("layer1")).expect("low"), b"1");
    assert!(
        !m.path.join("layer0").exists(),
        "whiteout in the top layer applies"
    );
    s.remove_container("many").expect("remove");
}
