//! Hostile and ordinary tar streams against `extract_tar`, and export round trips.

use super::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A tar entry with a raw name (bypassing the tar crate's own path checks).
fn raw_entry(b: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    b.extend(std::iter::repeat_n(0u8, pad));
}

fn finish(mut b: Vec<u8>) -> Vec<u8> {
    b.extend(std::iter::repeat_n(0u8, 1024));
    b
}

struct Scene {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let outside = tmp.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    Scene {
        _tmp: tmp,
        dest,
        outside,
    }
}

fn outside_untouched(s: &Scene) {
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("victim")],
        "something was written outside"
    );
    assert_eq!(fs::read(s.outside.join("victim")).unwrap(), b"original");
}

#[test]
fn refuses_absolute_paths() {
    let s = scene();
    let mut b = Vec::new();
    let target = format!("{}/abs", s.outside.display());
    raw_entry(&mut b, &target, tar::EntryType::Regular, "", b"x");
    let err = extract_tar(&finish(b)[..], &s.dest).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Unsafe {
                reason: "absolute path",
                ..
            }
        ),
        "{err}"
    );
    outside_untouched(&s);
}

#[test]
fn refuses_dot_dot() {
    let s = scene();
    let mut b = Vec::new();
    raw_entry(
        &mut b,
        "a/../../outside/dotdot",
        tar::EntryType::Regular,
        "",
        b"x",
    );
    let err = extract_tar(&finish(b)[..], &s.dest).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Unsafe {
                reason: "path contains ..",
                ..
            }
        ),
        "{err}"
    );
    outside_untouched(&s);
}

#[test]
fn symlink_in_archive_cannot_carry_writes_out() {
    let s = scene();
    let mut b = Vec::new();
    raw_entry(
        &mut b,
        "link",
        tar::EntryType::Symlink,
        s.outside.to_str().unwrap(),
        b"",
    );
    raw_entry(&mut b, "link/pwned", tar::EntryType::Regular, "", b"evil");
    let err = extract_tar(&finish(b)[..], &s.dest).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    outside_untouched(&s);
    // A link climbing above the root resolves to the root itself: the write lands inside.
    let mut b = Vec::new();
    raw_entry(
        &mut b,
        "up",
        tar::EntryType::Symlink,
        "../../../../../../..",
        b"",
    );
    raw_entry(&mut b, "up/pwned2", tar::EntryType::Regular, "", b"evil");
    extract_tar(&finish(b)[..], &s.dest).unwrap();
    outside_untouched(&s);
    assert_eq!(fs::read(s.dest.join("pwned2")).unwrap(), b"evil");
}

#[test]
fn file_entry_replaces_a_symlink_instead_of_writing_through_it() {
    let s = scene();
    let mut b = Vec::new();
    raw_entry(
        &mut b,
        "f",
        tar::EntryType::Symlink,
        s.outside.join("victim").to_str().unwrap(),
        b"",
    );
    raw_entry(&mut b, "f", tar::EntryType::Regular, "", b"new");
    extract_tar(&finish(b)[..], &s.dest).unwrap();
    outside_untouched(&s);
    assert!(fs::symlink_metadata(s.dest.join("f")).unwrap().is_file());
}

#[test]
fn symlink_already_on_disk_is_contained() {
    let s = scene();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("planted")).unwrap();
    let mut b = Vec::new();
    raw_entry(&mut b, "planted/x", tar::EntryType::Regular, "", b"evil");
    assert!(extract_tar(&finish(b)[..], &s.dest).is_err());
    outside_untouched(&s);
    std::os::unix::fs::symlink("/", s.dest.join("planted-root")).unwrap();
    let mut b = Vec::new();
    raw_entry(
        &mut b,
        "planted-root/y",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    extract_tar(&finish(b)[..], &s.dest).unwrap();
    assert_eq!(
        fs::read(s.dest.join("y")).unwrap(),
        b"evil",
        "\"/\" means the volume root"
    );
}

#[test]
fn hard_links_stay_inside() {
    let s = scene();
    let mut b = Vec::new();
    raw_entry(&mut b, "h", tar::EntryType::Link, "../outside/victim", b"");
    let err = extract_tar(&finish(b)[..], &s.dest).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    let mut b = Vec::new();
    raw_entry(
        &mut b,
        "l",
        tar::EntryType::Symlink,
        s.outside.to_str().unwrap(),
        b"",
    );
    raw_entry(&mut b, "h", tar::EntryType::Link, "l/victim", b"");
    let err = extract_tar(&finish(b)[..], &s.dest).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Sys {
                source: Errno::ENOENT,
                ..
            }
        ),
        "{err}"
    );
    outside_untouched(&s);
    assert_eq!(fs::metadata(s.outside.join("victim")).unwrap().nlink(), 1);
}

#[test]
fn refuses_device_nodes() {
    let s = scene();
    let mut b = Vec::new();
    raw_entry(&mut b, "sda", tar::EntryType::Block, "", b"");
    let err = extract_tar(&finish(b)[..], &s.dest).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsupported { .. }), "{err}");
    assert!(fs::symlink_metadata(s.dest.join("sda")).is_err());
}

#[test]
fn round_trip_keeps_content_modes_owners_links() {
    let s = scene();
    let src = s.dest.join("src");
    fs::create_dir_all(src.join("d/e")).unwrap();
    fs::write(src.join("d/file"), b"hello").unwrap();
    nix::unistd::chown(
        &src.join("d/file"),
        Some(Uid::from_raw(1234)),
        Some(Gid::from_raw(5678)),
    )
    .unwrap();
    fs::set_permissions(src.join("d/file"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::hard_link(src.join("d/file"), src.join("hard")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs-link")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(src.join("d/e/big"), &big).unwrap();
    // A long name needs the GNU extension.
    let long = "n".repeat(150);
    fs::write(src.join(&long), b"long").unwrap();

    let tarball = write_tar(&src, Vec::new()).unwrap();
    let dst = s.dest.join("dst");
    fs::create_dir(&dst).unwrap();
    let stats = extract_tar(&tarball[..], &dst).unwrap();
    assert!(stats.entries >= 8, "{stats:?}");

    assert_eq!(fs::read(dst.join("d/file")).unwrap(), b"hello");
    let md = fs::metadata(dst.join("d/file")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4750);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(md.nlink(), 2, "hard link restored as a link");
    assert_eq!(
        fs::read_link(dst.join("abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(fs::symlink_metadata(dst.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo_like());
    assert_eq!(fs::read(dst.join("d/e/big")).unwrap(), big);
    assert_eq!(fs::read(dst.join(&long)).unwrap(), b"long");
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn export_does_not_follow_symlinks_out() {
    let s = scene();
    let src = s.dest.join("src");
    fs::create_dir(&src).unwrap();
    std::os::unix::fs::symlink(&s.outside, src.join("out")).unwrap();
    let tarball = write_tar(&src, Vec::new()).unwrap();
    let mut ar = tar::Archive::new(&tarball[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec!["./", "out"]);
}
