//! Privileged tests on this machine's real cgroup hierarchies: a unique test cgroup
//! (`/berth-test-<pid>-<n>/...`) is created, a real child process is put in it, limits are
//! applied and read back from the kernel files, the child is frozen and thawed, and everything is
//! removed again — by a Drop guard, so also when an assertion fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_cgroups::{create_manager_with, FreezerState, Layout, Manager, Mode};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};

static N: AtomicUsize = AtomicUsize::new(0);

fn unique_root() -> PathBuf {
    PathBuf::from(format!(
        "/berth-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Kills the children, then removes the cgroup (thawed first), whatever happened in the test.
struct Guard {
    manager: Box<dyn Manager>,
    children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.manager.freeze(FreezerState::Thawed);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.manager.destroy();
    }
}

fn privileged_layout() -> Option<Layout> {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: cgroup tests need root");
        return None;
    }
    match Layout::detect() {
        Ok(l) => Some(l),
        Err(e) => {
            println!("SKIP: no cgroup hierarchy: {e}");
            None
        }
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(name).display()))
}

fn proc_state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    let after = &s[s.rfind(')').expect("comm ends with )") + 2..];
    after.chars().next().expect("state field")
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    let f: Vec<&str> = s[s.rfind(')').expect("comm") + 2..].split(' ').collect();
    // Fields after comm start at state (field 3); utime is field 14, stime 15.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// `(major, minor)` of the first whole block device in /sys/block.
fn first_block_device() -> Option<(i64, i64)> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names.iter().find_map(|p| {
        let s = std::fs::read_to_string(p.join("dev")).ok()?;
        let (a, b) = s.trim().split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    })
}

fn dev(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().expect("device rule")
}

fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .swap(128 << 20)
                .reservation(32 << 20)
                .kernel_tcp(16 << 20)
                .swappiness(10u64)
                .disable_oom_killer(true)
                .build()
                .expect("memory"),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(20_000)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .expect("cpu"),
        )
        .pids(LinuxPidsBuilder::default().limit(50).build().expect("pids"))
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4 << 21)
            .build()
            .expect("hugetlb")])
        .devices(vec![
            dev(false, LinuxDeviceType::A, None, None, "rwm"),
            dev(true, LinuxDeviceType::C, Some(10), Some(229), "rwm"),
            dev(true, LinuxDeviceType::B, Some(8), Some(20), "rw"),
            dev(true, LinuxDeviceType::B, Some(10), Some(200), "r"),
        ])
        .build()
        .expect("resources")
}

#[test]
fn v1_full_lifecycle_on_the_real_hierarchy() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    if layout.mode == Mode::Unified {
        println!("SKIP: no v1 hierarchies on this machine");
        return;
    }
    let root = unique_root();
    let path = root.join("c1");
    let manager = create_manager_with(&layout, Some(&path), "c1").expect("manager");
    let mut g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let dirs = g.manager.dirs();
    assert!(dirs.iter().all(|d| d.is_dir()), "{dirs:?}");

    let child = Command::new("sleep")
        .arg("100")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id();
    g.children.push(child);
    g.manager
        .add_task(Pid::from_raw(pid as i32))
        .expect("add_task");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    for line in cg.lines() {
        assert!(
            line.ends_with(path.to_str().expect("utf8")),
            "{line} in\n{cg}"
        );
    }

    g.manager.apply(&resources()).expect("apply");
    let d = |c: &str| {
        dirs.iter()
            .find(|d| d.to_string_lossy().contains(&format!("/{c}/")))
            .unwrap_or_else(|| panic!("no {c} dir in {dirs:?}"))
            .clone()
    };
    assert_eq!(
        read(&d("memory"), "memory.limit_in_bytes").trim(),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        read(&d("memory"), "memory.memsw.limit_in_bytes").trim(),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        read(&d("memory"), "memory.soft_limit_in_bytes").trim(),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        read(&d("memory"), "memory.kmem.tcp.limit_in_bytes").trim(),
        (16u64 << 20).to_string()
    );
    assert_eq!(read(&d("memory"), "memory.swappiness").trim(), "10");
    assert!(read(&d("memory"), "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(
        read(&d("hugetlb"), "hugetlb.2MB.limit_in_bytes").trim(),
        (4u64 << 21).to_string()
    );
    assert_eq!(read(&d("cpu"), "cpu.shares").trim(), "512");
    assert_eq!(read(&d("cpu"), "cpu.cfs_quota_us").trim(), "20000");
    assert_eq!(read(&d("cpu"), "cpu.cfs_period_us").trim(), "100000");
    assert_eq!(read(&d("cpuset"), "cpuset.cpus").trim(), "0");
    assert_eq!(read(&d("pids"), "pids.max").trim(), "50");
    // The config's allow rules come first, in order, as runtime-tools checks them.
    let list: Vec<String> = read(&d("devices"), "devices.list")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        list[..3],
        ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"],
        "{list:?}"
    );
    assert!(list.contains(&"c 1:3 rwm".to_string()), "{list:?}");

    // Throttling on a real block device of this machine.
    if let Some((major, minor)) = first_block_device() {
        let r = LinuxResourcesBuilder::default()
            .block_io(
                LinuxBlockIoBuilder::default()
                    .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(major)
                        .minor(minor)
                        .rate(1_048_576u64)
                        .build()
                        .expect("throttle")])
                    .build()
                    .expect("blkio"),
            )
            .build()
            .expect("resources");
        g.manager.apply(&r).expect("apply blkio");
        assert_eq!(
            read(&d("blkio"), "blkio.throttle.read_bps_device").trim(),
            format!("{major}:{minor} 1048576")
        );
    } else {
        println!("SKIP: no block device for the blkio throttle check");
    }
    // The weight goes to blkio.weight (CFQ) or blkio.bfq.weight (BFQ), whichever exists.
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| d("blkio").join(f).exists());
    if let Some(f) = weight_file {
        let r: LinuxResources =
            serde_json::from_str(r#"{"blockIO":{"weight":321}}"#).expect("json");
        g.manager.apply(&r).expect("apply blkio weight");
        assert!(read(&d("blkio"), f).contains("321"), "{f}");
    } else {
        println!("SKIP: no blkio weight file");
    }

    let stats = g.manager.stats().expect("stats");
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 50);
    assert_eq!(stats.memory.usage.limit, 64 << 20);
    assert_eq!(stats.cpuset.cpus, vec![0]);
    let json = serde_json::to_value(&stats).expect("json");
    assert!(json["memory"]["raw"].get("rss").is_some(), "{json}");

    assert_eq!(
        g.manager.pids().expect("pids"),
        vec![Pid::from_raw(pid as i32)]
    );
    assert_eq!(g.manager.oom_kills().expect("oom count"), 0);

    g.manager.freeze(FreezerState::Frozen).expect("freeze");
    assert_eq!(g.manager.state().expect("state"), FreezerState::Frozen);
    assert_eq!(
        proc_state(pid),
        'D',
        "a v1-frozen task sleeps uninterruptibly"
    );
    let e = g.manager.enter().expect_err("entering a frozen cgroup");
    assert!(e.to_string().contains("frozen"), "{e}");
    g.manager.freeze(FreezerState::Thawed).expect("thaw");
    assert_eq!(g.manager.state().expect("state"), FreezerState::Thawed);
    // Running again: not in the freezer's uninterruptible sleep any more.
    let mut tries = 0;
    while proc_state(pid) == 'D' && tries < 100 {
        std::thread::sleep(Duration::from_millis(10));
        tries += 1;
    }
    assert_ne!(proc_state(pid), 'D');

    // SIGTERM goes through the freeze/list/signal path, SIGKILL through cgroup.kill in hybrid.
    g.manager.kill_all(Signal::SIGTERM).expect("kill_all TERM");
    let status = g.children[0].wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
    g.children.clear();

    g.manager.destroy().expect("destroy");
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
        let top = d
            .ancestors()
            .find(|a| a.ends_with(root.file_name().expect("name")));
        assert!(
            top.is_some_and(|t| !t.exists()),
            "{} left behind",
            root.display()
        );
    }
}

#[test]
fn kill_all_sigkill_reaches_processes_in_sub_cgroups() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    let root = unique_root();
    let manager = create_manager_with(&layout, Some(&root), "k").expect("manager");
    let mut g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    for _ in 0..3 {
        let c = Command::new("sleep").arg("100").spawn().expect("spawn");
        g.manager
            .add_task(Pid::from_raw(c.id() as i32))
            .expect("add");
        g.children.push(c);
    }
    // One process in a nested cgroup of every hierarchy, as a container's own sub-cgroup would be.
    let nested = Command::new("sleep").arg("100").spawn().expect("spawn");
    for d in g.manager.dirs() {
        std::fs::create_dir(d.join("sub")).expect("sub cgroup");
        if d.to_string_lossy().contains("/cpuset/") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                std::fs::write(d.join("sub").join(f), read(&d, f).trim()).expect("init cpuset");
            }
        }
        std::fs::write(d.join("sub/cgroup.procs"), nested.id().to_string()).expect("join sub");
    }
    g.children.push(nested);
    assert_eq!(g.manager.pids().expect("pids").len(), 4);
    g.manager.kill_all(Signal::SIGKILL).expect("kill_all");
    for c in &mut g.children {
        let st = c.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(libc::SIGKILL)
        );
    }
    g.children.clear();
    g.manager
        .destroy()
        .expect("destroy removes sub-cgroups first");
    assert!(g.manager.dirs().iter().all(|d| !d.exists()));
}

/// The cgroup2 mount to test v2 on: the unified hierarchy of a hybrid machine, or the root.
fn cgroup2_mount(layout: &Layout) -> Option<PathBuf> {
    let u = layout.unified.clone();
    if u.is_none() {
        println!("SKIP: no cgroup2 hierarchy mounted");
    }
    u
}

#[test]
fn v2_freeze_and_device_program_on_the_real_cgroup2() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    let Some(mount) = cgroup2_mount(&layout) else {
        return;
    };
    let v2 = Layout::unified_at(&mount);
    let root = unique_root();
    let manager = create_manager_with(&v2, Some(&root), "v2").expect("manager");
    let mut g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let dir = g.manager.dirs().remove(0);

    // A busy child: frozen, its CPU time stops growing.
    let busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn busy");
    let busy_pid = busy.id();
    g.children.push(busy);
    g.manager
        .add_task(Pid::from_raw(busy_pid as i32))
        .expect("add busy");
    g.manager.freeze(FreezerState::Frozen).expect("freeze");
    assert_eq!(g.manager.state().expect("state"), FreezerState::Frozen);
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    let t0 = cpu_ticks(busy_pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(busy_pid), t0, "a frozen task does not run");
    g.manager.freeze(FreezerState::Thawed).expect("thaw");
    assert!(read(&dir, "cgroup.events").contains("frozen 0"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(busy_pid) > t0, "a thawed task runs again");
    // cpu.stat exists on every cgroup2 directory, even without the cpu controller.
    let stats = g.manager.stats().expect("v2 stats");
    assert!(stats.cpu.usage.total > 0, "{stats:?}");
    assert_eq!(
        g.manager.pids().expect("pids"),
        vec![Pid::from_raw(busy_pid as i32)]
    );

    // Device program: allow everything but /dev/kmsg (c 1:11).
    let rules = LinuxResourcesBuilder::default()
        .devices(vec![
            dev(true, LinuxDeviceType::A, None, None, "rwm"),
            dev(false, LinuxDeviceType::C, Some(1), Some(11), "rwm"),
        ])
        .build()
        .expect("resources");
    g.manager.apply(&rules).expect("attach device program");
    g.manager.apply(&rules).expect("replace device program");
    assert_eq!(
        berth_cgroups::v2::devices::attached_count(&dir).expect("query"),
        1
    );

    let mut probe = Command::new("sh")
        .args([
            "-c",
            "read _; if true < /dev/kmsg; then echo kmsg-open; else echo kmsg-denied; fi; \
             if true < /dev/null; then echo null-open; else echo null-denied; fi",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn probe");
    g.manager
        .add_task(Pid::from_raw(probe.id() as i32))
        .expect("add probe");
    let mut stdin = probe.stdin.take().expect("stdin");
    let stdout = probe.stdout.take().expect("stdout");
    g.children.push(probe);
    stdin.write_all(b"go\n").expect("release probe");
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert_eq!(lines, ["kmsg-denied", "null-open"]);

    g.manager.kill_all(Signal::SIGKILL).expect("cgroup.kill");
    for c in &mut g.children {
        let _ = c.wait();
    }
    g.children.clear();
    g.manager.destroy().expect("destroy");
    assert!(!dir.exists());
    assert!(!mount
        .join(root.strip_prefix("/").expect("absolute"))
        .exists());
}

#[test]
fn unknown_page_size_and_missing_controller_errors_name_the_file() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    if layout.mode == Mode::Unified {
        println!("SKIP: no v1 hierarchies on this machine");
        return;
    }
    let root = unique_root();
    let manager = create_manager_with(&layout, Some(&root), "e").expect("manager");
    let g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let r: LinuxResources =
        serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"3MB","limit":1}]}"#).expect("json");
    let e = g.manager.apply(&r).expect_err("3MB pages do not exist");
    assert!(e.to_string().contains("hugetlb.3MB.limit_in_bytes"), "{e}");
    assert!(
        std::error::Error::source(&e).is_some(),
        "errno kept as source"
    );
    let has_net_cls = layout.v1.iter().any(|h| h.has("net_cls"));
    let r: LinuxResources = serde_json::from_str(r#"{"network":{"classID":1}}"#).expect("json");
    match g.manager.apply(&r) {
        Ok(()) => assert!(has_net_cls),
        Err(e) => {
            assert!(!has_net_cls);
            assert!(e.to_string().contains("net_cls is not available"), "{e}");
        }
    }
}

#[test]
fn enter_puts_a_forked_child_in_the_v1_cgroups_and_leave_returns() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    if layout.mode == Mode::Unified {
        println!("SKIP: no v1 hierarchies on this machine");
        return;
    }
    let root = unique_root();
    let manager = create_manager_with(&layout, Some(&root), "enter").expect("manager");
    let mut g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let before = std::fs::read_to_string("/proc/thread-self/cgroup").expect("own cgroups");

    let t = std::time::Instant::now();
    let entered = g.manager.enter().expect("enter");
    let enter_time = t.elapsed();
    assert!(entered.cgroup_fd().is_some() == layout.unified.is_some());
    // This test thread forks now: the child inherits the thread's cgroups.
    let child = Command::new("sleep").arg("100").spawn().expect("spawn");
    let pid = child.id();
    g.children.push(child);
    let t = std::time::Instant::now();
    // std's spawn cannot clone into a cgroup: finish adds the child to cgroup2 itself.
    entered
        .finish(Pid::from_raw(pid as i32), false)
        .expect("finish");
    let leave_time = t.elapsed();

    assert_eq!(
        std::fs::read_to_string("/proc/thread-self/cgroup").expect("own cgroups"),
        before,
        "the caller is back where it was"
    );
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("child cgroups");
    let want = root.to_str().expect("utf8");
    for line in cg.lines() {
        assert!(line.ends_with(want), "{line} in\n{cg}");
    }
    assert_eq!(
        g.manager.pids().expect("pids"),
        vec![Pid::from_raw(pid as i32)]
    );

    // For comparison, the classic way for a second child.
    let other = Command::new("sleep").arg("100").spawn().expect("spawn");
    let t = std::time::Instant::now();
    g.manager
        .add_task(Pid::from_raw(other.id() as i32))
        .expect("add_task");
    let add_time = t.elapsed();
    g.children.push(other);
    println!("enter {enter_time:?}, finish {leave_time:?}, add_task {add_time:?}");
    assert_eq!(g.manager.pids().expect("pids").len(), 2);
}

#[test]
fn memory_limit_is_enforced_and_the_oom_kill_counted() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    let root = unique_root();
    let manager = create_manager_with(&layout, Some(&root), "oom").expect("manager");
    let mut g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let limit = 32i64 << 20;
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()
                .expect("memory"),
        )
        .build()
        .expect("resources");
    g.manager.apply(&r).expect("apply");
    // `tail` keeps the current "line" in memory, and /dev/zero has no newline.
    let entered = g.manager.enter().expect("enter");
    let child = Command::new("tail").arg("/dev/zero").spawn();
    entered.leave().expect("leave");
    g.children.push(child.expect("spawn tail"));
    let status = g.children[0].wait().expect("wait");
    g.children.clear();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "killed by the OOM killer"
    );
    assert_eq!(g.manager.oom_kills().expect("oom count"), 1);
    let stats = g.manager.stats().expect("stats");
    assert!(
        stats.memory.usage.max >= (limit as u64) / 2,
        "{:?}",
        stats.memory.usage
    );
}

#[test]
fn cfs_and_realtime_budgets_on_a_top_level_cgroup() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    let Some(cpu) = layout.v1.iter().find(|h| h.has("cpu")) else {
        println!("SKIP: no v1 cpu controller");
        return;
    };
    if !cpu.mount.join("cpu.rt_runtime_us").exists() {
        println!("SKIP: no realtime group scheduling (CONFIG_RT_GROUP_SCHED)");
        return;
    }
    let root = unique_root();
    let manager = create_manager_with(&layout, Some(&root), "rt").expect("manager");
    let g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let dir = cpu.mount.join(root.strip_prefix("/").expect("absolute"));
    // Like runtime-tools: several period/quota pairs in a row on the same cgroup, including a
    // period shorter than the quota before it.
    for (period, quota) in [
        (100_000u64, 50_000i64),
        (500_000, 200_000),
        (100_000, 200_000),
    ] {
        let r = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .period(period)
                    .quota(quota)
                    .realtime_period(1_000_000u64)
                    .realtime_runtime(10_000)
                    .build()
                    .expect("cpu"),
            )
            .build()
            .expect("resources");
        g.manager.apply(&r).expect("apply cpu");
        assert_eq!(read(&dir, "cpu.cfs_period_us").trim(), period.to_string());
        assert_eq!(read(&dir, "cpu.cfs_quota_us").trim(), quota.to_string());
        assert_eq!(read(&dir, "cpu.rt_runtime_us").trim(), "10000");
        assert_eq!(read(&dir, "cpu.rt_period_us").trim(), "1000000");
    }
}

#[test]
fn destroy_with_a_live_process_fails_fast_then_succeeds_after_kill() {
    let Some(layout) = privileged_layout() else {
        return;
    };
    let root = unique_root();
    let manager = create_manager_with(&layout, Some(&root), "busy").expect("manager");
    let mut g = Guard {
        manager,
        children: Vec::new(),
    };
    g.manager.create().expect("create");
    let c = Command::new("sleep").arg("100").spawn().expect("spawn");
    g.manager
        .add_task(Pid::from_raw(c.id() as i32))
        .expect("add");
    g.children.push(c);
    let t = std::time::Instant::now();
    let e = g
        .manager
        .destroy()
        .expect_err("a populated cgroup cannot be removed");
    assert!(e.to_string().contains("busy"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "one shared retry window, not one per hierarchy: {:?}",
        t.elapsed()
    );
    g.manager.kill_all(Signal::SIGKILL).expect("kill");
    for c in &mut g.children {
        let _ = c.wait();
    }
    g.children.clear();
    g.manager.destroy().expect("destroy after kill");
    assert!(g.manager.dirs().iter().all(|d| !d.exists()));
}
