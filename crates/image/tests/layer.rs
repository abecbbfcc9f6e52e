//! Layer unpacking: compressions, diff ids, whiteouts in both modes, metadata, xattrs.
mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth_image::digest::Digest;
use berth_image::layer::{unpack, Compression, UnpackOptions, WhiteoutMode};
use common::{gzip, TarMaker};

fn sample() -> Vec<u8> {
    TarMaker::new()
        .dir("etc")
        .file("etc/hostname", b"box\n")
        .file_owned("bin/tool", b"#!/bin/sh\n", 0o755, 0, 0)
        .symlink("bin/alias", "tool")
        .hardlink("bin/tool2", "bin/tool")
        .finish()
}

#[test]
fn every_compression_gives_the_same_tree_and_diff_id() {
    let tar = sample();
    let want = Digest::sha256_of(&tar);
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    for (bytes, c, expect) in [
        (tar.clone(), Compression::None, Compression::None),
        (gzip(&tar), Compression::Gzip, Compression::Gzip),
        (zst.clone(), Compression::Zstd, Compression::Zstd),
        (gzip(&tar), Compression::Detect, Compression::Gzip),
        (zst.clone(), Compression::Detect, Compression::Zstd),
        (tar.clone(), Compression::Detect, Compression::None),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let stats = unpack(&bytes[..], c, dir.path(), &UnpackOptions::default()).expect("unpack");
        assert_eq!(stats.diff_id, want, "{c:?}");
        assert_eq!(stats.uncompressed_size, tar.len() as u64);
        assert_eq!(stats.compressed_digest, Digest::sha256_of(&bytes));
        assert_eq!(stats.compressed_size, bytes.len() as u64);
        assert_eq!(stats.compression, expect);
        assert_eq!(
            fs::read(dir.path().join("etc/hostname")).expect("hostname"),
            b"box\n"
        );
        assert_eq!(
            fs::read_link(dir.path().join("bin/alias"))
                .expect("alias")
                .to_str(),
            Some("tool")
        );
        let a = fs::metadata(dir.path().join("bin/tool")).expect("tool");
        let b = fs::metadata(dir.path().join("bin/tool2")).expect("tool2");
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o755);
        assert_eq!(a.mtime(), 1_600_000_000);
    }
}

#[test]
fn media_types_map_to_compressions() {
    use berth_image::images::manifest::media_types as mt;
    assert_eq!(
        Compression::from_media_type(mt::DOCKER_LAYER_GZIP).expect("docker"),
        Compression::Gzip
    );
    assert_eq!(
        Compression::from_media_type(mt::OCI_LAYER_GZIP).expect("oci gz"),
        Compression::Gzip
    );
    assert_eq!(
        Compression::from_media_type(mt::OCI_LAYER_ZSTD).expect("zstd"),
        Compression::Zstd
    );
    assert_eq!(
        Compression::from_media_type(mt::OCI_LAYER_TAR).expect("tar"),
        Compression::None
    );
    assert!(Compression::from_media_type("application/json").is_err());
}

#[test]
fn corrupt_gzip_is_an_error_naming_the_compression() {
    let mut gz = gzip(&sample());
    let n = gz.len();
    gz[n / 2] ^= 0xff;
    gz[n / 2 + 1] ^= 0xff;
    let dir = tempfile::tempdir().expect("tmp");
    let err = unpack(
        &gz[..],
        Compression::Gzip,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect_err("corrupt");
    assert!(
        err.to_string().contains("gzip") || err.to_string().contains("tar"),
        "{err}"
    );
}

#[test]
fn trailing_bytes_after_the_archive_count_in_the_digests() {
    let mut tar = sample();
    tar.extend_from_slice(&[0u8; 10240]);
    let dir = tempfile::tempdir().expect("tmp");
    let stats = unpack(
        &tar[..],
        Compression::None,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect("unpack");
    assert_eq!(stats.diff_id, Digest::sha256_of(&tar));
    assert_eq!(stats.uncompressed_size, tar.len() as u64);
}

#[test]
fn overlay_mode_writes_overlay_whiteouts() {
    if !common::is_root() {
        println!("SKIP: overlay whiteouts (char 0/0, trusted.* xattrs) need root");
        return;
    }
    let tar = TarMaker::new()
        .dir("a")
        .file("a/.wh.gone", b"")
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/new", b"n")
        .file(".wh..wh.plnk", b"")
        .finish();
    let dir = tempfile::tempdir().expect("tmp");
    let stats = unpack(
        &tar[..],
        Compression::None,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect("unpack");
    assert_eq!(stats.whiteouts, 3);
    let m = fs::symlink_metadata(dir.path().join("a/gone")).expect("whiteout");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(!dir.path().join("a/.wh.gone").exists());
    let v = xattr::get(dir.path().join("opaque"), "trusted.overlay.opaque").expect("xattr");
    assert_eq!(v.as_deref(), Some(&b"y"[..]));
    assert_eq!(fs::read(dir.path().join("opaque/new")).expect("new"), b"n");
    assert!(!dir.path().join(".wh..wh.plnk").exists());
}

#[test]
fn delete_mode_applies_layers_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Delete,
        ..UnpackOptions::default()
    };
    let l1 = TarMaker::new()
        .dir("keep")
        .file("keep/f", b"1")
        .dir("gone")
        .file("gone/f", b"1")
        .dir("opq")
        .file("opq/old", b"1")
        .dir("opq/olddir")
        .file("opq/olddir/x", b"1")
        .finish();
    let l2 = TarMaker::new()
        .file(".wh.gone", b"")
        .dir("opq")
        .file("opq/fresh", b"2")
        .file("opq/.wh..wh..opq", b"")
        .file("keep/f", b"2")
        .finish();
    unpack(&l1[..], Compression::None, dir.path(), &opts).expect("l1");
    unpack(&l2[..], Compression::None, dir.path(), &opts).expect("l2");
    assert!(!dir.path().join("gone").exists());
    assert_eq!(fs::read(dir.path().join("keep/f")).expect("keep"), b"2");
    let mut names: Vec<String> = fs::read_dir(dir.path().join("opq"))
        .expect("opq")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["fresh"],
        "opaque dir keeps only this layer's entries"
    );
}

#[test]
fn pax_xattrs_and_times_are_applied() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", &b"hi"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
    ])
    .expect("pax");
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o600);
    h.set_mtime(12345);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "f", &b"x"[..]).expect("f");
    let tar = b.into_inner().expect("tar");
    let dir = tempfile::tempdir().expect("tmp");
    unpack(
        &tar[..],
        Compression::None,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect("unpack");
    let f = dir.path().join("f");
    match xattr::get(&f, "user.note") {
        Ok(v) => assert_eq!(v.as_deref(), Some(&b"hi"[..])),
        Err(e) => println!("SKIP: user xattrs unsupported here: {e}"),
    }
    // A layer cannot plant overlay's own markers through PAX.
    assert_eq!(
        xattr::get(&f, "trusted.overlay.opaque").ok().flatten(),
        None
    );
    assert_eq!(fs::metadata(&f).expect("f").mtime(), 12345);
}

#[test]
fn directory_times_survive_their_children() {
    let mut t = TarMaker::new();
    t.dir("d");
    for i in 0..20 {
        t.file(&format!("d/f{i}"), b"x");
    }
    let tar = t.finish();
    let dir = tempfile::tempdir().expect("tmp");
    unpack(
        &tar[..],
        Compression::None,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect("unpack");
    assert_eq!(
        fs::metadata(dir.path().join("d")).expect("d").mtime(),
        1_600_000_000
    );
}

#[test]
fn a_slow_reader_is_fine() {
    // Feeds one byte at a time: the pipeline must not assume full reads.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
    let gz = gzip(&sample());
    let dir = tempfile::tempdir().expect("tmp");
    let stats = unpack(
        Trickle(&gz),
        Compression::Detect,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect("unpack");
    assert_eq!(stats.compressed_digest, Digest::sha256_of(&gz));
    let mut sink = Vec::new();
    sink.write_all(b"").expect("noop");
    assert!(dir.path().join("bin/tool").is_file());
}

#[test]
fn setgid_parents_do_not_leak_their_group_or_bit() {
    if !common::is_root() {
        println!("SKIP: chown to other groups needs root");
        return;
    }
    let tar = TarMaker::new()
        .raw(b"g", common::kind::DIR, b"", 0o2775, 0, 50, b"", (0, 0))
        .file_owned("g/f", b"x", 0o644, 0, 0)
        .raw(b"g/d", common::kind::DIR, b"", 0o755, 0, 0, b"", (0, 0))
        .symlink("g/l", "f")
        .finish();
    let dir = tempfile::tempdir().expect("tmp");
    unpack(
        &tar[..],
        Compression::None,
        dir.path(),
        &UnpackOptions::default(),
    )
    .expect("unpack");
    let m = |p: &str| fs::symlink_metadata(dir.path().join(p)).expect(p);
    assert_eq!((m("g").mode() & 0o7777, m("g").gid()), (0o2775, 50));
    assert_eq!((m("g/f").mode() & 0o7777, m("g/f").gid()), (0o644, 0));
    assert_eq!((m("g/d").mode() & 0o7777, m("g/d").gid()), (0o755, 0));
    assert_eq!(m("g/l").gid(), 0);
}
