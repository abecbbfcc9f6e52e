//! Hostile layers are contained: one crafted tar per attack, and after each the directory the
//! attack aimed at (a tempdir "outside" next to the destination) is checked untouched.
mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth_image::layer::{unpack, Compression, LayerError, UnpackOptions, WhiteoutMode};
use common::{gzip, kind, Outside, TarMaker};

fn run(
    o: &Outside,
    tar: &[u8],
    opts: &UnpackOptions,
) -> Result<berth_image::layer::LayerStats, LayerError> {
    unpack(tar, Compression::Detect, &o.dest, opts)
}

fn delete_mode() -> UnpackOptions {
    UnpackOptions {
        whiteouts: WhiteoutMode::Delete,
        ..UnpackOptions::default()
    }
}

#[test]
fn absolute_paths_land_inside_dest() {
    let o = Outside::new();
    let victim = o.victim.to_str().expect("utf8");
    let tar = TarMaker::new()
        .file(victim, b"pwned")
        .file("/etc/passwd", b"root::0:0::/:/bin/sh\n")
        .finish();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    o.assert_untouched();
    assert_eq!(
        fs::read(o.dest.join(o.outside_rel()).join("victim")).expect("inside"),
        b"pwned"
    );
    assert!(o.dest.join("etc/passwd").is_file());
}

#[test]
fn dotdot_components_are_refused() {
    for name in [
        "../outside/victim",
        "a/../../outside/victim",
        "./../../../../../../outside/victim",
    ] {
        let o = Outside::new();
        let tar = TarMaker::new().file(name, b"pwned").finish();
        let err = run(&o, &tar, &UnpackOptions::default()).expect_err(name);
        assert!(
            err.to_string().contains("climbs above the layer root"),
            "{name}: {err}"
        );
        o.assert_untouched();
    }
    // `..` that stays inside is just cleaned.
    let o = Outside::new();
    let tar = TarMaker::new().dir("a").file("a/../b", b"ok").finish();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    assert_eq!(fs::read(o.dest.join("b")).expect("b"), b"ok");
}

#[test]
fn writing_through_a_symlinked_parent_stays_inside() {
    // a -> / then a/etc/x: resolves to dest/etc/x.
    let o = Outside::new();
    let tar = TarMaker::new()
        .dir("etc")
        .symlink("a", "/")
        .file("a/etc/x", b"inside")
        .finish();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    assert_eq!(fs::read(o.dest.join("etc/x")).expect("x"), b"inside");
    o.assert_untouched();

    // b -> <outside> (absolute) and c -> ../../../.. (relative), then a write through each.
    let o = Outside::new();
    let outside = o.outside.to_str().expect("utf8").to_owned();
    let tar = TarMaker::new()
        .symlink("b", &outside)
        .file("b/victim", b"pwned")
        .symlink("c", "../../../../../..")
        .file(&format!("c{outside}/victim"), b"pwned")
        .finish();
    let r = run(&o, &tar, &UnpackOptions::default());
    o.assert_untouched();
    if r.is_ok() {
        // Whatever was written went under dest.
        assert_eq!(
            fs::read(o.dest.join(o.outside_rel()).join("victim")).expect("inside"),
            b"pwned"
        );
    }
}

#[test]
fn a_file_replaces_a_symlink_of_the_same_name() {
    let o = Outside::new();
    let tar = TarMaker::new()
        .symlink("f", o.victim.to_str().expect("utf8"))
        .file("f", b"replaced")
        .finish();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    let m = fs::symlink_metadata(o.dest.join("f")).expect("f");
    assert!(m.is_file());
    assert_eq!(fs::read(o.dest.join("f")).expect("f"), b"replaced");
    o.assert_untouched();
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let o = Outside::new();
    let tar = TarMaker::new().hardlink("ln", "../outside/victim").finish();
    let err = run(&o, &tar, &UnpackOptions::default()).expect_err("refused");
    assert!(err.to_string().contains("outside the layer"), "{err}");
    o.assert_untouched();
    // An absolute target is resolved inside dest, where it does not exist.
    let o = Outside::new();
    let tar = TarMaker::new()
        .hardlink("ln", o.victim.to_str().expect("utf8"))
        .finish();
    assert!(run(&o, &tar, &UnpackOptions::default()).is_err());
    o.assert_untouched();
    // A hardlink whose target's parent is a symlink out: resolved inside dest.
    let o = Outside::new();
    let tar = TarMaker::new()
        .symlink("d", o.outside.to_str().expect("utf8"))
        .hardlink("ln", "d/victim")
        .finish();
    assert!(run(&o, &tar, &UnpackOptions::default()).is_err());
    o.assert_untouched();
}

#[test]
fn hardlink_to_a_symlink_pointing_out_links_the_symlink() {
    let o = Outside::new();
    let tar = TarMaker::new()
        .symlink("s", o.victim.to_str().expect("utf8"))
        .hardlink("h", "s")
        .file("h", b"replaces the link, not the victim")
        .finish();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    assert!(fs::symlink_metadata(o.dest.join("s"))
        .expect("s")
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(o.dest.join("h")).expect("h").is_file());
    o.assert_untouched();
    let o = Outside::new();
    let tar = TarMaker::new()
        .symlink("s", o.victim.to_str().expect("utf8"))
        .hardlink("h", "s")
        .finish();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    let h = fs::symlink_metadata(o.dest.join("h")).expect("h");
    assert!(
        h.file_type().is_symlink(),
        "the link is to the symlink itself"
    );
    assert_eq!(
        h.ino(),
        fs::symlink_metadata(o.dest.join("s")).expect("s").ino()
    );
    o.assert_untouched();
}

#[test]
fn device_nodes_only_when_allowed() {
    let tar = TarMaker::new()
        .raw(b"dev/null2", kind::CHAR, b"", 0o666, 0, 0, b"", (1, 3))
        .raw(b"dev/sda9", kind::BLOCK, b"", 0o660, 0, 6, b"", (8, 9))
        .raw(b"fifo", kind::FIFO, b"", 0o600, 0, 0, b"", (0, 0))
        .finish();
    let o = Outside::new();
    let stats = run(&o, &tar, &UnpackOptions::rootless()).expect("rootless");
    assert_eq!(stats.skipped_devices, 2);
    assert!(
        !o.dest.join("dev/null2").exists()
            && fs::symlink_metadata(o.dest.join("dev/sda9")).is_err()
    );
    assert!(fs::symlink_metadata(o.dest.join("fifo"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    o.assert_untouched();
    if !common::is_root() {
        println!("SKIP: creating device nodes needs root");
        return;
    }
    let o = Outside::new();
    let stats = run(&o, &tar, &UnpackOptions::default()).expect("root");
    assert_eq!(stats.skipped_devices, 0);
    let m = fs::symlink_metadata(o.dest.join("dev/null2")).expect("null2");
    assert!(m.file_type().is_char_device());
    assert_eq!(
        (
            nix::sys::stat::major(m.rdev()),
            nix::sys::stat::minor(m.rdev())
        ),
        (1, 3)
    );
    assert_eq!(m.mode() & 0o7777, 0o666, "mode exact, no umask");
    let m = fs::symlink_metadata(o.dest.join("dev/sda9")).expect("sda9");
    assert!(m.file_type().is_block_device());
    assert_eq!(m.gid(), 6);
}

#[test]
fn modes_and_owners_are_exactly_what_the_tar_says() {
    let tar = TarMaker::new()
        .file_owned("suid", b"x", 0o4755, 1234, 5678)
        .file_owned("sgid", b"x", 0o2711, 0, 42)
        .file_owned("open", b"x", 0o777, 0, 0)
        .raw(b"sticky", kind::DIR, b"", 0o1777, 0, 0, b"", (0, 0))
        .finish();
    let o = Outside::new();
    run(&o, &tar, &UnpackOptions::default()).expect("unpack");
    let m = |n: &str| fs::symlink_metadata(o.dest.join(n)).expect(n);
    if common::is_root() {
        assert_eq!(
            (m("suid").mode() & 0o7777, m("suid").uid(), m("suid").gid()),
            (0o4755, 1234, 5678)
        );
        assert_eq!((m("sgid").mode() & 0o7777, m("sgid").gid()), (0o2711, 42));
    } else {
        println!("SKIP: chown to other ids needs root");
    }
    assert_eq!(m("open").mode() & 0o7777, 0o777, "umask not applied");
    assert_eq!(m("sticky").mode() & 0o7777, 0o1777);
    // Rootless: owned by us, and no setuid/setgid handed to our identity.
    let o = Outside::new();
    run(&o, &tar, &UnpackOptions::rootless()).expect("rootless");
    let me = nix::unistd::geteuid().as_raw();
    let s = fs::symlink_metadata(o.dest.join("suid")).expect("suid");
    assert_eq!((s.mode() & 0o7777, s.uid()), (0o755, me));
    assert_eq!(
        fs::symlink_metadata(o.dest.join("sgid"))
            .expect("sgid")
            .mode()
            & 0o7777,
        0o711
    );
}

#[test]
fn a_gigabyte_pax_header_is_bounded() {
    let o = Outside::new();
    let tar = TarMaker::new()
        .pax_claiming(1 << 30, &[b'a'; 8192])
        .finish();
    let err = run(&o, &tar, &UnpackOptions::default()).expect_err("bounded");
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(
        chain.contains("1073741824") && chain.contains("limit of 1048576"),
        "{chain}"
    );
    o.assert_untouched();
}

#[test]
fn decompression_bombs_are_stopped_at_the_limit() {
    let zeros = vec![0u8; 48 << 20];
    let mut t = TarMaker::new();
    t.file("zeros", &zeros);
    let gz = gzip(&t.finish());
    assert!(gz.len() < 1 << 20, "a real bomb: {} bytes", gz.len());
    let o = Outside::new();
    let opts = UnpackOptions {
        max_uncompressed_size: 16 << 20,
        ..UnpackOptions::default()
    };
    let err = run(&o, &gz, &opts).expect_err("too large");
    assert!(err.to_string().contains("limit of 16777216 bytes"), "{err}");
    let o = Outside::new();
    let opts = UnpackOptions {
        max_ratio: Some(100),
        ..UnpackOptions::default()
    };
    let err = run(&o, &gz, &opts).expect_err("ratio");
    assert!(err.to_string().contains("more than 100:1"), "{err}");
    // The same layer within limits unpacks.
    let o = Outside::new();
    run(&o, &gz, &UnpackOptions::default()).expect("fine");
    assert_eq!(
        fs::metadata(o.dest.join("zeros")).expect("zeros").len(),
        48 << 20
    );
}

#[test]
fn overlong_names_are_refused() {
    let o = Outside::new();
    let long_component = format!("d/{}", "n".repeat(300));
    let tar = TarMaker::new().file(&long_component, b"x").finish();
    let err = run(&o, &tar, &UnpackOptions::default()).expect_err("name");
    assert!(err.to_string().contains("limit of 255"), "{err}");
    let long_path = vec!["abcdefghij"; 420].join("/");
    let tar = TarMaker::new().file(&long_path, b"x").finish();
    let err = run(&o, &tar, &UnpackOptions::default()).expect_err("path");
    assert!(err.to_string().contains("limit of 4096"), "{err}");
    o.assert_untouched();
}

#[test]
fn a_file_replaces_a_directory_with_children() {
    for opts in [UnpackOptions::default(), delete_mode()] {
        let o = Outside::new();
        let tar = TarMaker::new()
            .dir("d")
            .dir("d/sub")
            .file("d/sub/child", b"c")
            .file("d", b"now a file")
            .finish();
        run(&o, &tar, &opts).expect("unpack");
        assert_eq!(fs::read(o.dest.join("d")).expect("d"), b"now a file");
        // and back: a directory replaces the file
        let tar = TarMaker::new()
            .file("e", b"file")
            .dir("e")
            .file("e/x", b"x")
            .finish();
        run(&o, &tar, &opts).expect("unpack");
        assert_eq!(fs::read(o.dest.join("e/x")).expect("e/x"), b"x");
        o.assert_untouched();
    }
}

#[test]
fn whiteouts_cannot_reach_outside() {
    for opts in [UnpackOptions::default(), delete_mode()] {
        let o = Outside::new();
        let tar = TarMaker::new().file("../.wh.victim", b"").finish();
        assert!(run(&o, &tar, &opts).is_err());
        o.assert_untouched();
        let o = Outside::new();
        let outside = o.outside.to_str().expect("utf8").to_owned();
        let tar = TarMaker::new()
            .symlink("l", &outside)
            .file("l/.wh.victim", b"")
            .file("l/.wh..wh..opq", b"")
            .file(&format!("{outside}/.wh.victim"), b"")
            .finish();
        let _ = run(&o, &tar, &opts);
        o.assert_untouched();
        let tar = TarMaker::new().file("x/.wh..", b"").finish();
        assert!(run(&o, &tar, &opts).is_err());
        o.assert_untouched();
    }
}
