//! Scenarios checked from inside the container: each writes one config (mirroring an
//! opencontainers/runtime-tools validation program of the same name), runs `berth-checker` as the
//! container process and requires a clean TAP. Scenarios whose config must be refused check that
//! the runtime errors out instead.

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[test]
fn default() {
    let b = Bundle::new(&[]);
    let r = inside(&b, "default");
    assert!(r.passed_containing("namespace pid") && r.passed_containing("mounts: /proc"));
}

#[test]
fn hostname() {
    let mut b = Bundle::new(&[]);
    b.set(&["hostname"], json!("hostname-specific"));
    b.set(&["domainname"], json!("domain.specific"));
    let r = inside(&b, "hostname");
    assert!(r.passed_containing("hostname") && r.passed_containing("domainname"));
}

#[test]
fn root_readonly_true() {
    let mut b = Bundle::new(&[]);
    b.set(&["root", "readonly"], json!(true));
    let r = inside(&b, "root_readonly_true");
    assert!(r.passed_containing("root.readonly"));
}

#[test]
fn mounts() {
    let mut b = Bundle::new(&[]);
    let shared = b.dir().join("shared");
    fs::create_dir(&shared).expect("mkdir shared");
    fs::write(shared.join("file"), "x").expect("write shared file");
    fs::create_dir_all(b.rootfs().join("mnt")).expect("mkdir mnt");
    b.push(
        &["mounts"],
        json!({ "destination": "/mnt/tmpfs", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "noatime", "mode=0700", "size=1m"] }),
    );
    b.push(&["mounts"], json!({ "destination": "/mnt/bind-ro", "type": "bind",
        "source": shared.to_str().expect("utf8 path"), "options": ["rbind", "ro", "nosuid", "rprivate"] }));
    b.push(
        &["mounts"],
        json!({ "destination": "/mnt/bind-rw/", "type": "none",
        "source": shared.to_str().expect("utf8 path"), "options": ["bind", "rw", "nodev"] }),
    );
    b.push(
        &["mounts"],
        json!({ "destination": "/mnt/mqueue", "type": "mqueue", "source": "mqueue",
        "options": ["nosuid", "nodev", "noexec", "relatime"] }),
    );
    let r = inside(&b, "mounts");
    assert!(r.passed_containing("/mnt/tmpfs") && r.passed_containing("/mnt/bind-ro"));
}

#[test]
fn mounts_recursive_ro() {
    // rro (runtime-spec 1.1): every submount of an rbind is read-only too. /sys has submounts
    // (cgroup hierarchies, ...).
    let mut b = Bundle::new(&[]);
    fs::create_dir_all(b.rootfs().join("mnt")).expect("mkdir mnt");
    b.push(
        &["mounts"],
        json!({ "destination": "/mnt/sys", "type": "bind", "source": "/sys",
            "options": ["rbind", "rro", "rnosuid", "rprivate"] }),
    );
    let r = inside(&b, "mounts_recursive_ro");
    assert!(r.passed_containing("/mnt/sys"));
}

#[test]
fn mounts_idmapped() {
    // mounts[].uidMappings/gidMappings (runtime-spec 1.1): an idmapped bind mount, here without
    // a user namespace: the source, owned by root (containerID 0), shows as 1000:1000 (hostID).
    let mut b = Bundle::new(&[]);
    let src = b.dir().join("idmap-src");
    fs::create_dir(&src).expect("mkdir idmap source");
    fs::create_dir_all(b.rootfs().join("mnt")).expect("mkdir mnt");
    b.push(
        &["mounts"],
        json!({ "destination": "/mnt/idmapped", "type": "bind",
            "source": src.to_str().expect("utf8"), "options": ["rbind"],
            "uidMappings": [{ "containerID": 0, "hostID": 1000, "size": 1 }],
            "gidMappings": [{ "containerID": 0, "hostID": 1000, "size": 1 }] }),
    );
    let r = inside(&b, "mounts_idmapped");
    assert!(r.passed_containing("/mnt/idmapped"));
}

#[test]
fn linux_devices() {
    let mut b = Bundle::new(&[]);
    b.push(
        &["linux", "devices"],
        json!({ "path": "/dev/berth-char", "type": "c", "major": 1, "minor": 3,
        "fileMode": 0o640, "uid": 1, "gid": 2 }),
    );
    b.push(
        &["linux", "devices"],
        json!({ "path": "/dev/berth-unbuf", "type": "u", "major": 1, "minor": 5,
        "fileMode": 0o600, "uid": 0, "gid": 0 }),
    );
    b.push(
        &["linux", "devices"],
        json!({ "path": "/dev/berth-block", "type": "b", "major": 7, "minor": 0,
        "fileMode": 0o660, "uid": 0, "gid": 6 }),
    );
    b.push(
        &["linux", "devices"],
        json!({ "path": "/dev/berth-fifo", "type": "p", "fileMode": 0o600 }),
    );
    let r = inside(&b, "linux_devices");
    assert!(r.passed_containing("/dev/berth-char") && r.passed_containing("/dev/berth-fifo"));
}

#[test]
fn linux_masked_paths() {
    let mut b = Bundle::new(&[]);
    let root = b.rootfs();
    fs::create_dir(root.join("masked-dir")).expect("mkdir");
    fs::write(root.join("masked-dir/secret"), "secret").expect("write");
    fs::write(root.join("masked-file"), "secret").expect("write");
    for p in ["/masked-dir", "/masked-file", "/masked-missing"] {
        b.push(&["linux", "maskedPaths"], json!(p));
    }
    let r = inside(&b, "linux_masked_paths");
    assert!(
        r.passed_containing("/masked-dir is masked")
            && r.passed_containing("/masked-file is masked")
    );
}

#[test]
fn linux_readonly_paths() {
    let mut b = Bundle::new(&[]);
    b.set(&["root", "readonly"], json!(false));
    let root = b.rootfs();
    fs::create_dir(root.join("readonly-dir")).expect("mkdir");
    fs::write(root.join("readonly-dir/file"), "x").expect("write");
    fs::write(root.join("readonly-file"), "x").expect("write");
    for p in ["/readonly-dir", "/readonly-file", "/readonly-missing"] {
        b.push(&["linux", "readonlyPaths"], json!(p));
    }
    let r = inside(&b, "linux_readonly_paths");
    assert!(
        r.passed_containing("/readonly-dir is read-only")
            && r.passed_containing("/readonly-file is read-only")
    );
}

#[test]
fn linux_mount_label() {
    if fs::metadata("/sys/fs/selinux/enforce").is_err() {
        return skip("SELinux is not enabled: mountLabel can't be applied or observed");
    }
    let mut b = Bundle::new(&[]);
    b.set(
        &["linux", "mountLabel"],
        json!("system_u:object_r:container_file_t:s0:c1,c2"),
    );
    inside(&b, "linux_mount_label");
}

#[test]
fn linux_process_apparmor_profile() {
    let enabled = fs::read_to_string("/sys/module/apparmor/parameters/enabled").unwrap_or_default();
    if enabled.trim() != "Y" {
        return skip("AppArmor is not enabled on this kernel");
    }
    let mut b = Bundle::new(&[]);
    b.set(&["process", "apparmorProfile"], json!("unconfined"));
    inside(&b, "linux_process_apparmor_profile");
}

#[test]
fn linux_ns_nopath() {
    let mut b = Bundle::new(&[]);
    for ns in ["pid", "network", "ipc", "uts", "mount", "cgroup"] {
        b.set_namespace(ns, None);
    }
    let r = inside(&b, "linux_ns_nopath");
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert!(
            r.passed_containing(&format!("namespace {ns}")),
            "namespace {ns} not verified"
        );
    }
}

#[test]
fn linux_ns_itype() {
    // Without a type entry a namespace is inherited from the runtime. The mount namespace stays
    // new: a container without one would pivot the host's root.
    let mut b = Bundle::new(&[]);
    for ns in ["pid", "network", "ipc", "uts", "cgroup"] {
        b.remove_namespace(ns);
    }
    b.config.as_object_mut().expect("object").remove("hostname");
    let r = inside(&b, "linux_ns_itype");
    for ns in ["pid", "net", "ipc", "uts", "cgroup"] {
        assert!(
            r.passed_containing(&format!("namespace {ns}")),
            "namespace {ns} not verified"
        );
    }
}

/// A process holding fresh namespaces to join, killed on drop.
struct NsHolder {
    unshare: Child,
    pub pid: u32,
}

impl NsHolder {
    fn new() -> NsHolder {
        let mut unshare = Command::new("unshare")
            .args([
                "--net", "--ipc", "--uts", "--cgroup", "--pid", "--fork", "sleep", "120",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare (util-linux)");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        for _ in 0..500 {
            let text = fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                // The child has the new namespaces once it has exec'd sleep.
                if fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| !e.ends_with("unshare"))
                {
                    return NsHolder { unshare, pid };
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = unshare.kill();
        let _ = unshare.wait();
        panic!("unshare did not start its child");
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn linux_ns_path() {
    require_root();
    let holder = NsHolder::new();
    let mut b = Bundle::new(&[]);
    for (kind, proc_name) in [
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("cgroup", "cgroup"),
        ("pid", "pid"),
    ] {
        b.set_namespace(kind, Some(&format!("/proc/{}/ns/{proc_name}", holder.pid)));
    }
    let r = inside(&b, "linux_ns_path");
    for ns in ["net", "ipc", "uts", "cgroup", "pid"] {
        assert!(
            r.passed_containing(&format!("namespace {ns}")),
            "namespace {ns} not verified"
        );
    }
}

#[test]
fn linux_ns_path_type() {
    // A path to a namespace of another type must be refused.
    require_root();
    let holder = NsHolder::new();
    let mut b = Bundle::new(&[]);
    b.set_namespace("uts", Some(&format!("/proc/{}/ns/net", holder.pid)));
    assert_create_fails(&b, "linux_ns_path_type");
}

#[test]
fn linux_rootfs_propagation() {
    for prop in ["shared", "slave", "private", "unbindable"] {
        let mut b = Bundle::new(&[]);
        b.set(&["linux", "rootfsPropagation"], json!(prop));
        if prop == "slave" && !host_mount_shared(b.dir()) {
            // MS_SLAVE on a mount whose master isn't shared leaves it private.
            b.expect
                .insert("rootfs_propagation".into(), json!("private"));
        }
        let r = inside(&b, &format!("linux_rootfs_propagation_{prop}"));
        assert!(
            r.passed_containing(&format!("/ is {prop}")),
            "{prop} not verified"
        );
    }
}

/// Whether the host mount holding `path` is shared (has a peer group).
fn host_mount_shared(path: &std::path::Path) -> bool {
    let mounts = berth_conformance::mountinfo::read_self().expect("host mountinfo");
    let p = path.canonicalize().expect("canonical bundle path");
    berth_conformance::mountinfo::containing(&mounts, &p.to_string_lossy())
        .is_some_and(|m| m.propagation() == "shared")
}

#[test]
fn linux_seccomp() {
    let mut b = Bundle::new(&[]);
    b.set(
        &["linux", "seccomp"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                { "names": ["getcwd"], "action": "SCMP_ACT_ERRNO" },
                { "names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22 }
            ]
        }),
    );
    let r = inside(&b, "linux_seccomp");
    assert!(
        r.passed_containing("getcwd fails with errno 1")
            && r.passed_containing("uname fails with errno 22")
    );
}

#[test]
fn linux_sysctl() {
    let mut b = Bundle::new(&[]);
    b.set(
        &["linux", "sysctl"],
        json!({
            "net.ipv4.ip_forward": "1",
            "net.ipv4.ip_local_port_range": "1025 60999",
            "kernel.shmmni": "8192",
            "kernel.msgmax": "4096"
        }),
    );
    let r = inside(&b, "linux_sysctl");
    assert!(r.passed_containing("net.ipv4.ip_forward") && r.passed_containing("kernel.shmmni"));
}

#[test]
fn linux_uid_mappings() {
    let mut b = Bundle::new(&[]);
    b.set_namespace("user", None);
    b.set(
        &["linux", "uidMappings"],
        json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]),
    );
    b.set(
        &["linux", "gidMappings"],
        json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]),
    );
    let r = inside(&b, "linux_uid_mappings");
    assert!(r.passed_containing("linux.uidMappings") && r.passed_containing("namespace user"));
}

#[test]
fn linux_gid_mappings() {
    // Different ranges for uids and gids, so a runtime writing one map into the other shows.
    let mut b = Bundle::new(&[]);
    b.set_namespace("user", None);
    b.set(
        &["linux", "uidMappings"],
        json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]),
    );
    b.set(
        &["linux", "gidMappings"],
        json!([
            { "containerID": 0, "hostID": 300000, "size": 1000 },
            { "containerID": 1000, "hostID": 400000, "size": 64536 }
        ]),
    );
    let r = inside(&b, "linux_gid_mappings");
    assert!(r.passed_containing("linux.gidMappings"));
}

#[test]
fn linux_time_offsets() {
    if fs::metadata("/proc/self/ns/time").is_err() {
        return skip("kernel has no time namespaces");
    }
    let mut b = Bundle::new(&[]);
    b.set_namespace("time", None);
    b.set(
        &["linux", "timeOffsets"],
        json!({
            "monotonic": { "secs": 86400, "nanosecs": 0 },
            "boottime": { "secs": 3600, "nanosecs": 500 }
        }),
    );
    let r = inside(&b, "linux_time_offsets");
    assert!(r.passed_containing("linux.timeOffsets") && r.passed_containing("namespace time"));
}

#[test]
fn process() {
    let mut b = Bundle::new(&[CHECKER, "--extra", "an arg with spaces", ""]);
    b.set(&["process", "cwd"], json!("/tmp"));
    b.push(&["process", "env"], json!("BERTH_A=1"));
    b.push(&["process", "env"], json!("BERTH_EQ=a=b"));
    b.push(&["process", "env"], json!("BERTH_EMPTY="));
    b.set(&["process", "noNewPrivileges"], json!(false));
    b.set(&["process", "user", "umask"], json!(0o027));
    let r = inside(&b, "process");
    assert!(r.passed_containing("process.args") && r.passed_containing("process.user.umask"));
}

#[test]
fn process_user() {
    let mut b = Bundle::new(&[]);
    b.set(
        &["process", "user"],
        json!({ "uid": 1000, "gid": 1000, "additionalGids": [5, 1001] }),
    );
    let r = inside(&b, "process_user");
    assert!(r.passed_containing("process.user.uid") && r.passed_containing("additionalGids"));
}

/// Every capability this host's bounding set holds (root here may lack some, e.g. SYS_RESOURCE).
fn host_capabilities() -> Vec<String> {
    let status = fs::read_to_string("/proc/self/status").expect("read status");
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapBnd in status");
    berth_conformance::checks::process::mask_names(bnd)
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn process_capabilities() {
    let mut b = Bundle::new(&[]);
    let all = json!(host_capabilities());
    b.set(
        &["process", "capabilities"],
        json!({
            "bounding": all, "effective": all, "inheritable": all, "permitted": all, "ambient": all
        }),
    );
    let r = inside(&b, "process_capabilities");
    assert!(r.passed_containing("CapEff") && r.passed_containing("CapBnd"));
}

#[test]
fn process_capabilities_fail() {
    let mut b = Bundle::new(&[]);
    b.push(&["process", "capabilities", "bounding"], json!("CAP_TEST"));
    assert_create_fails(&b, "process_capabilities_fail");
}

#[test]
fn process_oom_score_adj() {
    let mut b = Bundle::new(&[]);
    b.set(&["process", "oomScoreAdj"], json!(500));
    let r = inside(&b, "process_oom_score_adj");
    assert!(r.passed_containing("process.oomScoreAdj"));
}

#[test]
fn process_rlimits() {
    let mut b = Bundle::new(&[]);
    b.set(
        &["process", "rlimits"],
        json!([
            { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048 },
            { "type": "RLIMIT_CORE", "soft": 1024, "hard": 4096 },
            { "type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000 }
        ]),
    );
    let r = inside(&b, "process_rlimits");
    assert!(r.passed_containing("RLIMIT_CORE") && r.passed_containing("RLIMIT_NPROC"));
}

#[test]
fn process_rlimits_fail() {
    let mut b = Bundle::new(&[]);
    b.push(
        &["process", "rlimits"],
        json!({ "type": "RLIMIT_TEST", "soft": 1, "hard": 1 }),
    );
    assert_create_fails(&b, "process_rlimits_fail");
}

#[test]
fn process_io_priority() {
    let mut b = Bundle::new(&[]);
    b.set(
        &["process", "ioPriority"],
        json!({ "class": "IOPRIO_CLASS_BE", "priority": 3 }),
    );
    let r = inside(&b, "process_io_priority");
    assert!(r.passed_containing("process.ioPriority"));
}

#[test]
fn linux_personality() {
    let mut b = Bundle::new(&[]);
    b.set(&["linux", "personality"], json!({ "domain": "LINUX32" }));
    let r = inside(&b, "linux_personality");
    assert!(r.passed_containing("linux.personality"));
}

#[test]
fn process_scheduler() {
    let mut b = Bundle::new(&[]);
    b.set(
        &["process", "scheduler"],
        json!({ "policy": "SCHED_BATCH", "nice": 5 }),
    );
    let r = inside(&b, "process_scheduler");
    assert!(r.passed_containing("process.scheduler"));
}

#[test]
fn config_updates_without_affect() {
    // Changing config.json after create must not change the container.
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    b.write();
    let id = unique_id("config_updates");
    ok(&rt.create(&id, &b, &[]), "create");
    let _guard = Container {
        rt: &rt,
        id: id.clone(),
    };
    b.set(&["process", "args"], json!(["/bin/false"]));
    b.set(&["hostname"], json!("changed-after-create"));
    let text = serde_json::to_vec(&b.config).expect("serialize");
    fs::write(b.dir().join("config.json"), text).expect("rewrite config.json");
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", Duration::from_secs(20))
        .unwrap_or_else(|s| panic!("container did not stop: {s:?}"));
    let r = parse_tap(&b.stdout());
    assert_tap(&r, &b);
    assert!(r.passed_containing("hostname"));
}
