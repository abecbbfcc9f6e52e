//! Volume store tests against a real temporary data root (the mount test uses a real tmpfs).

use super::*;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    events: EventBus,
    store: VolumeStore,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let events = EventBus::new();
    let store = VolumeStore::open(&root, events.clone()).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        events,
        store,
    }
}

fn named(name: &str) -> CreateRequest {
    CreateRequest {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

fn with_labels(name: &str, labels: &[(&str, &str)]) -> CreateRequest {
    CreateRequest {
        name: Some(name.to_string()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn create_is_idempotent_and_persistent() {
    let f = fixture();
    let v = f.store.create(with_labels("data", &[("a", "1")])).unwrap();
    assert_eq!(v.mountpoint, f.root.join("volumes/data/_data"));
    assert!(v.mountpoint.is_dir());
    assert!(f.root.join("volumes/data/volume.json").is_file());
    // Same name again: the existing volume, labels unchanged.
    let again = f.store.create(with_labels("data", &[("b", "2")])).unwrap();
    assert_eq!(again, v);
    let reopened = VolumeStore::open(&f.root, EventBus::new()).unwrap();
    assert_eq!(reopened.get("data").unwrap().volume, v);
    let (past, _) = f.events.subscribe(Some(0));
    let actions: Vec<_> = past
        .iter()
        .map(|e| (e.action.as_str(), e.actor_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![("create", "data")],
        "one create event, not two"
    );
}

#[test]
fn anonymous_volumes_get_random_names_and_the_label() {
    let f = fixture();
    let v = f.store.create(CreateRequest::default()).unwrap();
    assert_eq!(v.name.len(), 64);
    assert!(v.name.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(v.is_anonymous());
}

#[test]
fn refuses_bad_names_drivers_options() {
    let f = fixture();
    for bad in ["a", "-x", "a/b", "../x", "a b", ".hidden"] {
        let e = f.store.create(named(bad)).unwrap_err();
        assert!(matches!(e, VolumeError::InvalidName(_)), "{bad}: {e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    let e = f
        .store
        .create(CreateRequest {
            driver: Some("nfs-plugin".into()),
            ..named("x1")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = f
        .store
        .create(CreateRequest {
            options: [("bogus".to_string(), "1".to_string())].into(),
            ..named("x2")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("invalid option key"), "{e}");
    assert!(!f.root.join("volumes/x2").exists(), "nothing half-created");
}

#[test]
fn list_filters() {
    let f = fixture();
    f.store
        .create(with_labels(
            "web-data",
            &[("tier", "front"), ("env", "prod")],
        ))
        .unwrap();
    f.store
        .create(with_labels("db-data", &[("tier", "back")]))
        .unwrap();
    f.store.create(named("cache")).unwrap();
    f.store.acquire("db-data", "ctr1").unwrap();
    let names = |sel: Selector| -> Vec<String> {
        f.store
            .list(&sel)
            .unwrap()
            .into_iter()
            .map(|v| v.volume.name)
            .collect()
    };
    assert_eq!(names(Selector::default()).len(), 3);
    assert_eq!(
        names(Selector {
            name: vec!["data".into()],
            ..Default::default()
        }),
        vec!["db-data", "web-data"]
    );
    assert_eq!(
        names(Selector {
            name: vec!["^web".into()],
            ..Default::default()
        }),
        vec!["web-data"]
    );
    assert_eq!(
        names(Selector {
            label: vec!["tier".into()],
            ..Default::default()
        }),
        vec!["db-data", "web-data"]
    );
    assert_eq!(
        names(Selector {
            label: vec!["tier=front".into(), "env=prod".into()],
            ..Default::default()
        }),
        vec!["web-data"]
    );
    assert_eq!(
        names(Selector {
            dangling: Some(false),
            ..Default::default()
        }),
        vec!["db-data"]
    );
    assert_eq!(
        names(Selector {
            dangling: Some(true),
            ..Default::default()
        }),
        vec!["cache", "web-data"]
    );
    assert_eq!(
        names(Selector {
            driver: vec!["other".into()],
            ..Default::default()
        })
        .len(),
        0
    );
    assert!(f
        .store
        .list(&Selector {
            name: vec!["(".into()],
            ..Default::default()
        })
        .is_err());
}

#[test]
fn remove_respects_use_and_force() {
    let f = fixture();
    f.store.create(named("busy")).unwrap();
    f.store.acquire("busy", "ctr1").unwrap();
    f.store.acquire("busy", "ctr2").unwrap();
    let e = f.store.remove("busy", true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        e.to_string(),
        "remove busy: volume is in use - [ctr1, ctr2]"
    );
    f.store.release("busy", "ctr1").unwrap();
    f.store.release("busy", "ctr1").unwrap();
    assert!(f.store.remove("busy", false).is_err());
    f.store.release("busy", "ctr2").unwrap();
    f.store.remove("busy", false).unwrap();
    assert!(!f.root.join("volumes/busy").exists());
    let e = f.store.remove("busy", false).unwrap_err();
    assert_eq!(e.to_string(), "get busy: no such volume");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    f.store.remove("busy", true).unwrap();
    let leftovers: Vec<_> = fs::read_dir(f.root.join("volumes")).unwrap().collect();
    assert!(leftovers.is_empty(), "trash left behind");
}

#[test]
fn prune_only_anonymous_unless_all() {
    let f = fixture();
    let anon = f.store.create(CreateRequest::default()).unwrap();
    fs::write(anon.mountpoint.join("f"), vec![0u8; 1000]).unwrap();
    let anon_used = f.store.create(CreateRequest::default()).unwrap();
    f.store.acquire(&anon_used.name, "c").unwrap();
    f.store
        .create(with_labels("keep", &[("keep", "yes")]))
        .unwrap();
    f.store.create(named("plain")).unwrap();
    let r = f.store.prune(&Selector::default(), false).unwrap();
    assert_eq!(r.deleted, vec![anon.name.clone()]);
    assert_eq!(r.space_reclaimed, 1000);
    let r = f
        .store
        .prune(
            &Selector {
                label_not: vec!["keep".into()],
                ..Default::default()
            },
            true,
        )
        .unwrap();
    assert_eq!(r.deleted, vec!["plain".to_string()]);
    let left: Vec<_> = f
        .store
        .list(&Selector::default())
        .unwrap()
        .into_iter()
        .map(|v| v.volume.name)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn loads_bare_directories_and_cleans_trash() {
    let f = fixture();
    fs::create_dir_all(f.root.join("volumes/handmade/_data")).unwrap();
    fs::create_dir_all(f.root.join("volumes/.trash-old-123/_data")).unwrap();
    let s = VolumeStore::open(&f.root, EventBus::new()).unwrap();
    assert_eq!(s.get("handmade").unwrap().volume.driver, "local");
    assert!(!f.root.join("volumes/.trash-old-123").exists());
}

fn is_mountpoint(p: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

#[test]
fn tmpfs_option_volume_mounts_on_first_use_and_unmounts_after_last() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("SKIP: mounting needs root");
        return;
    }
    let f = fixture();
    let opts: HashMap<String, String> = [
        ("type", "tmpfs"),
        ("device", "tmpfs"),
        ("o", "size=4m,nosuid"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let v = f
        .store
        .create(CreateRequest {
            options: opts,
            ..named("scratch")
        })
        .unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(v.mountpoint.clone());
    assert!(!is_mountpoint(&v.mountpoint));
    f.store.acquire("scratch", "a").unwrap();
    f.store.acquire("scratch", "b").unwrap();
    assert!(is_mountpoint(&v.mountpoint));
    let st = nix::sys::statfs::statfs(&v.mountpoint).unwrap();
    assert_eq!(st.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
    f.store.release("scratch", "a").unwrap();
    assert!(is_mountpoint(&v.mountpoint), "still used by b");
    f.store.release("scratch", "b").unwrap();
    assert!(!is_mountpoint(&v.mountpoint));
    let (past, _) = f.events.subscribe(Some(0));
    let actions: Vec<_> = past.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["create", "mount", "mount", "unmount", "unmount"]
    );
}

#[test]
fn export_import_round_trip_and_rules() {
    let f = fixture();
    let v = f.store.create(named("src")).unwrap();
    fs::create_dir(v.mountpoint.join("dir")).unwrap();
    fs::write(v.mountpoint.join("dir/a.txt"), b"alpha").unwrap();
    let tarball = f.store.export("src", Vec::new()).unwrap();
    assert!(
        f.store.get("src").unwrap().refs.is_empty(),
        "export released its reference"
    );

    // Into a volume that doesn't exist yet: created.
    let (restored, stats) = f.store.import("copy", &tarball[..]).unwrap();
    assert!(stats.entries >= 3);
    assert_eq!(
        fs::read(restored.mountpoint.join("dir/a.txt")).unwrap(),
        b"alpha"
    );
    assert!(f.store.get("copy").unwrap().refs.is_empty());
    // Into a non-empty volume: refused, data intact.
    let e = f.store.import("copy", &tarball[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        fs::read(restored.mountpoint.join("dir/a.txt")).unwrap(),
        b"alpha"
    );
    // Into a volume in use: refused.
    f.store.create(named("used")).unwrap();
    f.store.acquire("used", "c").unwrap();
    assert_eq!(
        f.store.import("used", &tarball[..]).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    // A hostile tar for a new volume: refused and nothing left behind.
    let mut evil = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_size(0);
    evil.append_data(&mut h, "dev", std::io::empty()).unwrap();
    let evil = evil.into_inner().unwrap();
    let e = f.store.import("fresh", &evil[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(matches!(
        f.store.get("fresh"),
        Err(VolumeError::NotFound(_))
    ));
    assert!(!f.root.join("volumes/fresh").exists());
    // Garbage in: an invalid argument too.
    let e = f
        .store
        .import("fresh", &b"not a tar at all, just text......"[..])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn usage_counts_bytes_and_references() {
    let f = fixture();
    let v = f.store.create(named("sized")).unwrap();
    fs::write(v.mountpoint.join("a"), vec![1u8; 4096]).unwrap();
    fs::hard_link(v.mountpoint.join("a"), v.mountpoint.join("b")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", v.mountpoint.join("l")).unwrap();
    f.store.acquire("sized", "c1").unwrap();
    let u = f.store.usage();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].1, 4096, "hard links once, symlinks not followed");
    assert_eq!(u[0].0.refs, vec!["c1".to_string()]);
}
