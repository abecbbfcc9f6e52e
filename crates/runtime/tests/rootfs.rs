//! Privileged tests of `berth_runtime::rootfs` with real mounts.
//!
//! Each test builds a busybox bundle (scripts/make-busybox-bundle.sh) in a temp dir, edits its
//! config.json, and runs one scenario in a fresh process: this test binary re-executed under
//! `unshare --mount --uts --ipc --pid --fork --propagation private` on the ignored
//! `scenario_entry` test. The scenario prepares the rootfs, pivots, finalizes and checks what it
//! sees from inside (mountinfo, stat, reads and writes); its panics fail the parent test. The
//! namespace dies with the process, so no mount outlives a test, and the temp dir is removed by
//! its guard even when the test fails. Run as root: `cargo test -p berth-runtime --test rootfs`.

use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::rootfs::{self, mountinfo, RootfsError};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

const SCENARIO: &str = "BERTH_ROOTFS_SCENARIO";
const BUNDLE: &str = "BERTH_ROOTFS_BUNDLE";

// ---------------------------------------------------------------- parent side

struct Bundle {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Bundle {
    fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A busybox bundle whose config.json went through `edit`.
fn bundle(edit: impl FnOnce(&mut Value, &Path)) -> Bundle {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-bundle.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("run make-busybox-bundle.sh");
    assert!(
        out.status.success(),
        "make-busybox-bundle.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = path.join("config.json");
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read config")).expect("json");
    edit(&mut v, &path);
    std::fs::write(&config, serde_json::to_vec_pretty(&v).expect("json")).expect("write config");
    Bundle { _dir: dir, path }
}

fn push_mount(v: &mut Value, m: Value) {
    v["mounts"].as_array_mut().expect("mounts").push(m);
}

/// Run `scenario` on `b` in fresh namespaces (`extra` unshare flags added); panic with its
/// output when it fails.
fn run(scenario: &str, b: &Bundle, extra: &[&str]) -> bool {
    run_with_prefix(scenario, b, &[], extra)
}

/// `run`, with the `unshare` command itself started by the command line `prefix`.
fn run_with_prefix(scenario: &str, b: &Bundle, prefix: &[&str], extra: &[&str]) -> bool {
    if !is_root() {
        println!("SKIP: {scenario} needs root");
        return false;
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut argv: Vec<&OsStr> = prefix.iter().map(OsStr::new).collect();
    argv.extend(
        [
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--propagation",
            "private",
        ]
        .map(OsStr::new),
    );
    argv.extend(extra.iter().map(OsStr::new));
    argv.push(exe.as_os_str());
    argv.extend(
        [
            "--exact",
            "scenario_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(OsStr::new),
    );
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env(SCENARIO, scenario)
        .env(BUNDLE, &b.path)
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "scenario {scenario} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // libtest prints the first line of output right after "test scenario_entry ... ".
    for line in stdout.lines() {
        if let Some(at) = line.find("SKIP:").or_else(|| line.find("ok: ")) {
            println!("{}", &line[at..]);
        }
    }
    true
}

// ---------------------------------------------------------------- tests

#[test]
fn default_spec_mounts_devices_masks_and_readonly() {
    let b = bundle(|v, bundle| {
        std::fs::create_dir_all(bundle.join("hostdata/sub")).expect("mkdir");
        std::fs::write(bundle.join("hostdata/hello"), "hello\n").expect("write");
        std::fs::write(bundle.join("hostfile"), "file\n").expect("write");
        v["linux"]["sysctl"] = json!({"kernel.shmmax": "12345678", "kernel.msgmax": "4242"});
        v["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
             "fileMode": 0o640, "uid": 1000, "gid": 1001},
            {"path": "/dev/xdir/loop9", "type": "b", "major": 7, "minor": 9}
        ]);
        push_mount(
            v,
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "noatime", "mode=700", "size=1m"]}),
        );
        push_mount(
            v,
            json!({"destination": "/mnt/ro", "type": "bind", "source": "hostdata",
            "options": ["rbind", "ro", "nosuid"]}),
        );
        push_mount(
            v,
            json!({"destination": "/mnt/rro", "type": "bind", "source": "hostdata",
            "options": ["rbind", "rro"]}),
        );
        push_mount(
            v,
            json!({"destination": "/mnt/shared", "source": bundle.join("hostdata"),
            "options": ["rbind", "rshared"]}),
        );
        push_mount(
            v,
            json!({"destination": "/etc/deep/hostfile", "source": "hostfile",
            "options": ["bind", "ro"]}),
        );
        push_mount(
            v,
            json!({"destination": "/rec", "type": "tmpfs", "source": "tmpfs",
            "options": ["rnoexec", "rnosuid"]}),
        );
        push_mount(
            v,
            json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
            "options": ["tmpcopyup", "mode=755"]}),
        );
    });
    run("default", &b, &[]);
}

#[test]
fn no_pivot_ends_in_the_rootfs() {
    let b = bundle(|v, _| {
        v["root"]["readonly"] = json!(false);
    });
    run("no_pivot", &b, &[]);
}

#[test]
fn symlink_escapes_stay_inside_the_rootfs() {
    let b = bundle(|_, _| {});
    let victim = b.path.parent().expect("parent").join("victim");
    std::fs::create_dir_all(&victim).expect("mkdir victim");
    let rootfs = b.rootfs();
    std::os::unix::fs::symlink(&victim, rootfs.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("../../../../../../../../../../victim", rootfs.join("rel"))
        .expect("symlink");
    std::os::unix::fs::symlink("/", rootfs.join("slash")).expect("symlink");
    std::os::unix::fs::symlink(&victim, rootfs.join("final")).expect("symlink");
    let config = b.path.join("config.json");
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(&config).expect("read")).expect("json");
    for dest in ["/abs/x", "/rel/x", "/slash/x", "/final"] {
        push_mount(
            &mut v,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}),
        );
    }
    push_mount(
        &mut v,
        json!({"destination": "/abs/bound", "type": "bind",
        "source": b.path.join("config.json"), "options": ["bind"]}),
    );
    std::fs::write(&config, serde_json::to_vec(&v).expect("json")).expect("write");
    if run("escape", &b, &[]) {
        // Race-free: nothing else knows this directory; after the namespace is gone it must
        // still be empty (no mount point, no file was ever created in it).
        let left: Vec<_> = std::fs::read_dir(&victim)
            .expect("read victim")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(
            left.is_empty(),
            "created on the host through a symlink: {left:?}"
        );
        assert!(rootfs
            .join(victim.strip_prefix("/").expect("abs"))
            .join("x")
            .is_dir());
        assert!(rootfs.join("victim/x").is_dir());
        assert!(rootfs.join("x").is_dir());
    }
}

#[test]
fn rootfs_propagation_shared_and_unbindable() {
    for prop in ["shared", "unbindable", "private"] {
        let b = bundle(|v, _| {
            v["linux"]["rootfsPropagation"] = json!(prop);
        });
        run(&format!("propagation_{prop}"), &b, &[]);
    }
}

#[test]
fn refused_options_and_destinations_are_named() {
    let b = bundle(|_, _| {});
    run("errors", &b, &[]);
}

#[test]
fn user_namespace_binds_devices() {
    let b = bundle(|v, bundle| {
        // Only what a user namespace may mount, and no cgroup (no cgroupns here).
        v["mounts"] = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            // nosuid/nodev/noexec are locked on this source: `ro` alone must keep them.
            {"destination": "/mnt/lockedro", "type": "bind", "source": bundle.join("locked"),
             "options": ["rbind", "ro"]}
        ]);
        v["root"]["readonly"] = json!(false);
    });
    let locked = b.path.join("locked");
    std::fs::create_dir_all(&locked).expect("mkdir locked");
    // A mount made outside the user namespace: its flags are locked inside it.
    let locked = locked.to_str().expect("utf-8 path");
    let prefix = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs -o nosuid,nodev,noexec tmpfs \"$0\" && exec \"$@\"",
        locked,
    ];
    run_with_prefix("userns", &b, &prefix, &["--user", "--map-root-user"]);
}

#[test]
fn cgroup_namespace_mounts_fresh_hierarchies() {
    let b = bundle(|v, _| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "cgroup"}));
    });
    run("cgroupns", &b, &["--cgroup"]);
}

#[test]
fn idmapped_bind_mount() {
    let b = bundle(|v, bundle| {
        std::fs::create_dir_all(bundle.join("owned")).expect("mkdir");
        std::fs::write(bundle.join("owned/file"), "x").expect("write");
        push_mount(
            v,
            json!({"destination": "/idmapped", "type": "bind",
            "source": bundle.join("owned"), "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}]}),
        );
    });
    run("idmap", &b, &[]);
}

// ---------------------------------------------------------------- child side

/// Where every scenario runs, inside its own namespaces (see `run`).
#[test]
#[ignore = "entry point of the scenarios: run by the other tests inside private namespaces"]
fn scenario_entry() {
    let name = std::env::var(SCENARIO).expect("BERTH_ROOTFS_SCENARIO");
    let bundle = PathBuf::from(std::env::var(BUNDLE).expect("BERTH_ROOTFS_BUNDLE"));
    let spec = Spec::load(bundle.join("config.json")).expect("load config.json");
    let rootfs = bundle.join("rootfs");
    match name.as_str() {
        "default" => {
            // A submount in a bind source (mounted in this namespace only), to tell `ro` (top
            // mount) from `rro` (the whole tree).
            nix::mount::mount(
                Some("tmpfs"),
                &bundle.join("hostdata/sub"),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .expect("tmpfs on hostdata/sub");
            enter(&spec, &rootfs, &bundle, false);
            check_default(&spec);
        }
        "no_pivot" => {
            enter(&spec, &rootfs, &bundle, true);
            check_no_pivot(&bundle);
        }
        "escape" => check_escape(&spec, &rootfs, &bundle),
        p if p.starts_with("propagation_") => {
            enter(&spec, &rootfs, &bundle, false);
            check_propagation(&p["propagation_".len()..]);
        }
        "errors" => check_errors(&spec, &rootfs, &bundle),
        "userns" => {
            enter(&spec, &rootfs, &bundle, false);
            check_userns();
        }
        "idmap" => check_idmap(&spec, &rootfs, &bundle),
        "cgroupns" => {
            enter(&spec, &rootfs, &bundle, false);
            check_cgroupns();
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// The error and all its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn enter(spec: &Spec, rootfs: &Path, bundle: &Path, no_pivot: bool) {
    let t0 = std::time::Instant::now();
    rootfs::prepare(spec, rootfs, bundle).unwrap_or_else(|e| panic!("prepare: {}", chain(&e)));
    rootfs::pivot(rootfs, no_pivot).unwrap_or_else(|e| panic!("pivot: {}", chain(&e)));
    rootfs::set_hostname(spec).unwrap_or_else(|e| panic!("hostname: {}", chain(&e)));
    rootfs::finalize(spec).unwrap_or_else(|e| panic!("finalize: {}", chain(&e)));
    println!(
        "ok: prepare+pivot+finalize of {} mounts in {:?}",
        spec.mounts().as_ref().map_or(0, Vec::len),
        t0.elapsed()
    );
}

fn mounts() -> Vec<mountinfo::MountInfo> {
    mountinfo::read_self().expect("read mountinfo")
}

/// The top mount at `mount_point`.
fn mount_at(mount_point: &str) -> mountinfo::MountInfo {
    mounts()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == Path::new(mount_point))
        .unwrap_or_else(|| panic!("nothing mounted at {mount_point}:\n{:#?}", mounts()))
}

fn has_opt(list: &str, opt: &str) -> bool {
    list.split(',').any(|o| o == opt)
}

fn assert_opts(mount_point: &str, mount_opts: &[&str], super_opts: &[&str]) {
    let m = mount_at(mount_point);
    for o in mount_opts {
        assert!(
            has_opt(&m.mount_options, o),
            "{mount_point}: no {o} in {}",
            m.mount_options
        );
    }
    for o in super_opts {
        assert!(
            has_opt(&m.super_options, o),
            "{mount_point}: no {o} in {}",
            m.super_options
        );
    }
}

fn assert_erofs(path: &str) {
    let err = std::fs::write(path, "x").expect_err(&format!("{path} is writable"));
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{path}: {err}");
}

fn assert_char_dev(path: &str, major: u64, minor: u64) -> std::fs::Metadata {
    let md = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        md.file_type().is_char_device(),
        "{path} is not a char device"
    );
    let rdev = md.rdev();
    assert_eq!(
        (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)),
        (major, minor),
        "{path}"
    );
    md
}

fn check_default(spec: &Spec) {
    assert_eq!(std::env::current_dir().expect("cwd"), Path::new("/"));
    assert!(Path::new("/bin/busybox").is_file());
    // The root: read-only (root.readonly in runc's default spec).
    assert_opts("/", &["ro"], &[]);
    assert_erofs("/newfile");
    // Filesystems of the default spec, with their flags and data.
    assert_eq!(mount_at("/proc").fstype, "proc");
    assert_opts("/dev", &["rw", "nosuid"], &["mode=755"]);
    assert_eq!(mount_at("/dev").fstype, "tmpfs");
    assert_opts(
        "/dev/pts",
        &["nosuid", "noexec"],
        &["mode=620", "ptmxmode=666"],
    );
    assert_opts("/dev/shm", &["nosuid", "noexec", "nodev"], &["size=65536k"]);
    assert_eq!(mount_at("/dev/mqueue").fstype, "mqueue");
    assert_opts("/sys", &["ro", "nosuid", "nodev", "noexec"], &[]);
    // cgroup: a read-only tmpfs holding read-only hierarchies.
    let cg = mount_at("/sys/fs/cgroup");
    if cg.fstype == "tmpfs" {
        assert_opts(
            "/sys/fs/cgroup",
            &["ro", "nosuid", "nodev", "noexec"],
            &["mode=755"],
        );
        assert_opts("/sys/fs/cgroup/memory", &["ro", "nosuid"], &["memory"]);
        assert_eq!(mount_at("/sys/fs/cgroup/memory").fstype, "cgroup");
        // Co-mounted controllers get symlinks (cpu -> cpu,cpuacct); here they may be apart.
        match std::fs::read_link("/sys/fs/cgroup/cpu") {
            Ok(target) => assert_eq!(target, Path::new("cpu,cpuacct")),
            Err(_) => assert_eq!(mount_at("/sys/fs/cgroup/cpu").fstype, "cgroup"),
        }
        if Path::new("/sys/fs/cgroup/unified").exists() {
            assert_eq!(mount_at("/sys/fs/cgroup/unified").fstype, "cgroup2");
            assert_opts("/sys/fs/cgroup/unified", &["ro"], &[]);
        }
        assert!(Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists());
        // The bound directory is the process's own cgroup: it lists this process.
        let procs = std::fs::read_to_string("/sys/fs/cgroup/memory/cgroup.procs").expect("procs");
        assert!(!procs.is_empty());
        assert_erofs("/sys/fs/cgroup/newfile");
    } else {
        assert_eq!(cg.fstype, "cgroup2");
    }
    // Extra mounts.
    assert_opts(
        "/data",
        &["rw", "nosuid", "nodev", "noexec", "noatime"],
        &["mode=700", "size=1024k"],
    );
    assert_eq!(
        std::fs::metadata("/data")
            .expect("/data")
            .permissions()
            .mode()
            & 0o7777,
        0o700
    );
    assert_opts("/mnt/ro", &["ro", "nosuid"], &[]);
    assert_eq!(
        std::fs::read_to_string("/mnt/ro/hello").expect("hello"),
        "hello\n"
    );
    assert!(Path::new("/mnt/ro/sub").is_dir());
    assert_erofs("/mnt/ro/hello");
    std::fs::write("/mnt/ro/sub/f", "x").expect("ro is only the top mount");
    assert_erofs("/mnt/rro/hello");
    assert_erofs("/mnt/rro/sub/g");
    assert_opts("/mnt/rro/sub", &["ro"], &[]);
    let shared = mount_at("/mnt/shared");
    assert!(
        shared.optional.iter().any(|o| o.starts_with("shared:")),
        "/mnt/shared not shared: {:?}",
        shared.optional
    );
    assert_eq!(
        std::fs::read_to_string("/etc/deep/hostfile").expect("file"),
        "file\n"
    );
    assert_opts("/etc/deep/hostfile", &["ro"], &[]);
    assert_opts("/rec", &["noexec", "nosuid"], &[]);
    // tmpcopyup: /etc is a writable tmpfs that kept the image's files.
    assert_eq!(mount_at("/etc").fstype, "tmpfs");
    assert!(std::fs::read_to_string("/etc/passwd")
        .expect("passwd")
        .starts_with("root:"));
    std::fs::write("/etc/new", "x").expect("write into the copied-up /etc");
    // Devices at exact modes, whatever the umask.
    for (p, minor) in [
        ("/dev/null", 3),
        ("/dev/zero", 5),
        ("/dev/full", 7),
        ("/dev/random", 8),
        ("/dev/urandom", 9),
    ] {
        let md = assert_char_dev(p, 1, minor);
        assert_eq!(md.mode() & 0o7777, 0o666, "{p}");
        assert_eq!((md.uid(), md.gid()), (0, 0), "{p}");
    }
    assert_char_dev("/dev/tty", 5, 0);
    let fuse = assert_char_dev("/dev/fuse", 10, 229);
    assert_eq!(fuse.mode() & 0o7777, 0o640);
    assert_eq!((fuse.uid(), fuse.gid()), (1000, 1001));
    let lp = std::fs::symlink_metadata("/dev/xdir/loop9").expect("loop9");
    assert!(lp.file_type().is_block_device());
    assert_eq!(lp.mode() & 0o7777, 0o666);
    // The console: a pty of the container's devpts bound onto /dev/console.
    let master = nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
        .expect("open /dev/ptmx");
    nix::pty::grantpt(&master).expect("grantpt");
    nix::pty::unlockpt(&master).expect("unlockpt");
    let slave = nix::pty::ptsname_r(&master).expect("ptsname");
    assert!(slave.starts_with("/dev/pts/"), "{slave}");
    rootfs::setup_console(Path::new(&slave)).unwrap_or_else(|e| panic!("console: {}", chain(&e)));
    let console = std::fs::metadata("/dev/console").expect("/dev/console");
    assert_eq!(
        console.rdev(),
        std::fs::metadata(&slave).expect("slave").rdev()
    );
    assert_eq!(mount_at("/dev/console").fstype, "devpts");
    // Symlinks.
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
        ("/dev/ptmx", "pts/ptmx"),
    ] {
        assert_eq!(
            std::fs::read_link(link).expect(link),
            Path::new(target),
            "{link}"
        );
    }
    // Masked paths: files read empty, directories are empty and read-only.
    let linux = spec.linux().as_ref().expect("linux");
    let mut masked_seen = 0;
    for p in linux.masked_paths().as_ref().expect("maskedPaths") {
        let Ok(md) = std::fs::metadata(p) else {
            continue;
        };
        masked_seen += 1;
        if md.is_dir() {
            assert_eq!(std::fs::read_dir(p).expect(p).count(), 0, "{p} not empty");
            assert_erofs(&format!("{p}/x"));
        } else {
            let content = std::fs::read(p).unwrap_or_default();
            assert!(content.is_empty(), "{p} readable");
        }
    }
    assert!(masked_seen > 0, "no masked path exists here");
    if Path::new("/proc/kcore").exists() {
        assert_char_dev("/proc/kcore", 1, 3);
    }
    // Read-only paths.
    assert_erofs("/proc/sys/kernel/domainname");
    for p in ["/proc/sysrq-trigger", "/proc/irq/default_smp_affinity"] {
        if Path::new(p).exists() {
            assert_erofs(p);
        }
    }
    // sysctl (ipc namespace) and hostname (uts namespace).
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax")
            .expect("shmmax")
            .trim(),
        "12345678"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/msgmax")
            .expect("msgmax")
            .trim(),
        "4242"
    );
    assert_eq!(
        nix::unistd::gethostname().expect("hostname"),
        OsStr::new(spec.hostname().as_deref().expect("hostname"))
    );
}

fn check_no_pivot(bundle: &Path) {
    assert_eq!(std::env::current_dir().expect("cwd"), Path::new("/"));
    assert!(Path::new("/bin/busybox").is_file());
    assert!(!bundle.exists(), "the host's bundle path is visible");
    assert_eq!(mount_at("/proc").fstype, "proc");
    // The chroot's / is the rootfs mount, and no host proc/sysfs is left visible.
    let root = mount_at("/");
    assert!(Path::new("/etc/passwd").is_file());
    assert!(root.mount_point == Path::new("/"));
    std::fs::write("/tmp/x", "x").expect("root is writable");
}

fn check_escape(spec: &Spec, rootfs: &Path, bundle: &Path) {
    let victim = bundle.parent().expect("parent").join("victim");
    rootfs::prepare(spec, rootfs, bundle).unwrap_or_else(|e| panic!("prepare: {}", chain(&e)));
    let rootfs = std::fs::canonicalize(rootfs).expect("canonicalize");
    let inside = |p: &Path| rootfs.join(p.strip_prefix("/").expect("abs"));
    let points: Vec<PathBuf> = mounts().into_iter().map(|m| m.mount_point).collect();
    for expect in [
        inside(&victim).join("x"),
        rootfs.join("victim/x"),
        rootfs.join("x"),
        inside(&victim),
        inside(&victim).join("bound"),
    ] {
        assert!(
            points.contains(&expect),
            "no mount at {expect:?}: {points:#?}"
        );
    }
    for p in &points {
        assert!(!p.starts_with(&victim), "mount on the host at {p:?}");
    }
    assert_eq!(std::fs::read_dir(&victim).expect("victim").count(), 0);
}

fn check_propagation(prop: &str) {
    let root = mount_at("/");
    match prop {
        "shared" => assert!(
            root.optional.iter().any(|o| o.starts_with("shared:")),
            "/ not shared: {:?}",
            root.optional
        ),
        "private" => assert!(
            !root
                .optional
                .iter()
                .any(|o| o.starts_with("shared:") || o.starts_with("master:")),
            "/ not private: {:?}",
            root.optional
        ),
        "unbindable" => {
            assert!(
                root.optional.iter().any(|o| o == "unbindable"),
                "{:?}",
                root.optional
            );
            let r = nix::mount::mount(
                Some("/"),
                "/root",
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            );
            assert_eq!(r, Err(nix::errno::Errno::EINVAL), "bind of an unbindable /");
        }
        other => panic!("{other}"),
    }
}

fn with_mount(spec: &Spec, m: Value) -> Spec {
    let mut v = serde_json::to_value(spec).expect("json");
    v["mounts"] = json!([m]);
    v["linux"]["devices"] = json!([]);
    serde_json::from_value(v).expect("spec")
}

fn check_errors(spec: &Spec, rootfs: &Path, bundle: &Path) {
    let cases = [
        (
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "mode=755", "bogus_opt=1"]}),
            "option \"bogus_opt=1\" refused",
        ),
        (
            json!({"destination": "/b", "type": "bind", "source": "/tmp",
                   "options": ["rbind", "size=1m"]}),
            "unknown option \"size=1m\"",
        ),
        (
            json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}),
            "only a proc filesystem can be mounted on /proc",
        ),
        (
            json!({"destination": "/proc/sys", "type": "bind", "source": "/tmp",
                   "options": ["rbind"]}),
            "inside /proc",
        ),
        (
            json!({"destination": "/p", "type": "proc", "source": "proc", "options": ["hidepid=wrong"]}),
            "hidepid=wrong",
        ),
        (
            json!({"destination": "/n", "type": "nosuchfs", "source": "x"}),
            "mount \"nosuchfs\" on \"/n\"",
        ),
        (
            json!({"destination": "/m", "type": "bind", "source": "/nonexistent/source"}),
            "bind mount \"/nonexistent/source\" on \"/m\"",
        ),
    ];
    for (m, want) in cases {
        let mut s = with_mount(spec, m.clone());
        if m["destination"]
            .as_str()
            .is_some_and(|d| d.starts_with("/proc"))
        {
            // With proc mounted first, as a real spec has it.
            let mut v = serde_json::to_value(&s).expect("json");
            v["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}, m]);
            s = serde_json::from_value(v).expect("spec");
        }
        let err = rootfs::prepare(&s, rootfs, bundle).expect_err(&format!("{m} was accepted"));
        let text = chain(&err);
        assert!(
            text.contains(want),
            "{m}: error {text:?} does not name {want:?}"
        );
        println!("ok: {text}");
    }
    // An unknown rootfsPropagation.
    let mut v = serde_json::to_value(spec).expect("json");
    v["linux"]["rootfsPropagation"] = json!("sideways");
    let s: Spec = serde_json::from_value(v).expect("spec");
    assert!(matches!(
        rootfs::prepare(&s, rootfs, bundle),
        Err(RootfsError::UnknownPropagation { .. })
    ));
}

fn check_userns() {
    // mknod is refused in a user namespace: the host's nodes are bound instead.
    assert_char_dev("/dev/null", 1, 3);
    assert_char_dev("/dev/urandom", 1, 9);
    std::fs::write("/dev/null", "x").expect("write /dev/null");
    assert_opts("/sys", &["ro"], &[]);
    assert_opts("/mnt/lockedro", &["ro", "nosuid", "nodev", "noexec"], &[]);
    assert_eq!(
        std::fs::read_link("/dev/ptmx").expect("ptmx"),
        Path::new("pts/ptmx")
    );
}

fn check_idmap(spec: &Spec, rootfs: &Path, bundle: &Path) {
    match rootfs::prepare(spec, rootfs, bundle) {
        Ok(()) => {}
        Err(
            e @ RootfsError::Idmap {
                source: Some(nix::errno::Errno::EINVAL | nix::errno::Errno::EOPNOTSUPP),
                ..
            },
        ) if e.to_string().contains("idmap the mount") => {
            println!("SKIP: idmapped mounts unsupported here: {}", chain(&e));
            return;
        }
        Err(e) => panic!("prepare: {}", chain(&e)),
    }
    rootfs::pivot(rootfs, false).unwrap_or_else(|e| panic!("pivot: {}", chain(&e)));
    let md = std::fs::metadata("/idmapped/file").expect("stat idmapped file");
    assert_eq!((md.uid(), md.gid()), (1000, 2000), "ids not mapped");
    assert!(mount_at("/idmapped").mount_options.contains("idmapped"));
}

fn check_cgroupns() {
    let cg = mount_at("/sys/fs/cgroup");
    if cg.fstype == "cgroup2" {
        assert_eq!(cg.root, Path::new("/"));
        assert_opts("/sys/fs/cgroup", &["ro"], &[]);
        return;
    }
    assert_eq!(cg.fstype, "tmpfs");
    // Fresh mounts in the namespace: each shows the namespace's root, read-only.
    let memory = mount_at("/sys/fs/cgroup/memory");
    assert_eq!(memory.fstype, "cgroup");
    assert_eq!(memory.root, Path::new("/"));
    assert_opts(
        "/sys/fs/cgroup/memory",
        &["ro", "nosuid", "nodev", "noexec"],
        &["memory"],
    );
    assert_eq!(mount_at("/sys/fs/cgroup/systemd").root, Path::new("/"));
    if Path::new("/sys/fs/cgroup/unified").exists() {
        let unified = mount_at("/sys/fs/cgroup/unified");
        assert_eq!(
            (unified.fstype.as_str(), unified.root.as_path()),
            ("cgroup2", Path::new("/"))
        );
    }
    assert!(Path::new("/sys/fs/cgroup/memory/cgroup.procs").is_file());
}
