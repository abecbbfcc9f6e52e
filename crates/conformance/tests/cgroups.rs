//! `linux.resources` read back from the cgroup files, from outside (the host's view of the
//! container's cgroups after create) and from inside (the checker through the container's own
//! cgroup mounts), for absolute and relative `cgroupsPath` (runtime-tools' linux_cgroups_* and
//! linux_cgroups_relative_* programs). delete must remove the cgroups it created.

mod common;

use berth_conformance::cgroups::{self, CgroupDir};
use berth_conformance::spec::Resources;
use berth_conformance::tap::Outcome;
use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs one cgroup scenario: `resources` with an absolute or relative cgroupsPath.
fn scenario(name: &str, resources: Value, relative: bool, controllers: &[&str]) {
    let rt = Runtime::new();
    let mut b = Bundle::new(&[]);
    let cg = if relative {
        unique_id(name)
    } else {
        nested_cgroup(name)
    };
    let _cleanup = CgroupCleanup(cg.clone());
    b.set(&["linux", "cgroupsPath"], json!(cg));
    // Keep the default deny-all device rule unless the scenario brings its own rules.
    let mut res = resources;
    if res.get("devices").is_none() {
        res["devices"] = b.config["linux"]["resources"]["devices"].clone();
    }
    b.set(&["linux", "resources"], res.clone());
    b.write();
    let id = unique_id(name);
    ok(&rt.create(&id, &b, &[]), "create");
    let guard = Container {
        rt: &rt,
        id: id.clone(),
    };
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");

    // Outside: where the container's cgroups are, and what they hold.
    let proc_cgroup =
        fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/pid/cgroup");
    let mounts = berth_conformance::mountinfo::read_self().expect("host mountinfo");
    let locate = |c: &str| cgroups::locate(&proc_cgroup, &mounts, c);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for c in controllers {
        let dir: CgroupDir =
            locate(c).unwrap_or_else(|| panic!("container is in no {c} cgroup: {proc_cgroup}"));
        let s = dir.path.to_string_lossy().into_owned();
        assert!(
            s.ends_with(&cg),
            "{c} cgroup {s} does not end with cgroupsPath {cg}"
        );
        if !relative {
            let mount_root = dir.path.to_string_lossy().trim_end_matches(&cg).to_string();
            assert!(
                mount_root.starts_with("/sys/fs/cgroup/")
                    && !mount_root
                        .trim_start_matches("/sys/fs/cgroup/")
                        .contains('/'),
                "absolute cgroupsPath {cg} was not placed at the hierarchy root: {s}"
            );
        }
        dirs.push(dir.path);
    }
    let parsed: Resources = serde_json::from_value(res).expect("resources parse");
    let mut failed = Vec::new();
    for (desc, outcome) in cgroups::check(&parsed, &locate) {
        println!("outside: {desc}: {outcome:?}");
        if let Outcome::Fail(why) = outcome {
            failed.push(format!("{desc}: {why}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} set cgroup values wrong (seen from the host):\n  {}",
        runtime_name(),
        failed.join("\n  ")
    );

    // Inside: the checker reads the same values through the container's cgroup mounts.
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", Duration::from_secs(20))
        .expect("checker stops");
    let report = parse_tap(&b.stdout());
    assert_tap(&report, &b);
    ok(&rt.delete(&id, false), "delete");
    std::mem::forget(guard);
    for d in dirs {
        assert!(!d.exists(), "delete left cgroup {} behind", d.display());
    }
}

fn cpus() -> Value {
    json!({ "cpu": { "shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0" } })
}

fn memory() -> Value {
    json!({ "memory": { "limit": 52428800, "reservation": 26214400, "swap": 104857600,
        "kernelTCP": 10485760, "swappiness": 50, "disableOOMKiller": true } })
}

fn pids() -> Value {
    json!({ "pids": { "limit": 1000 } })
}

fn hugetlb() -> Value {
    json!({ "hugepageLimits": [{ "pageSize": "2MB", "limit": 4194304 }] })
}

fn devices() -> Value {
    json!({ "devices": [
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm" },
        { "allow": true, "type": "b", "major": 8, "minor": 20, "access": "rw" },
        { "allow": true, "type": "b", "major": 10, "minor": 200, "access": "r" }
    ] })
}

fn hugetlb_present() -> bool {
    Path::new("/sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes").exists()
}

#[test]
fn linux_cgroups_cpus() {
    scenario("cg-cpus", cpus(), false, &["cpu", "cpuset"]);
}

#[test]
fn linux_cgroups_relative_cpus() {
    scenario("cg-rcpus", cpus(), true, &["cpu", "cpuset"]);
}

#[test]
fn linux_cgroups_memory() {
    scenario("cg-memory", memory(), false, &["memory"]);
}

#[test]
fn linux_cgroups_relative_memory() {
    scenario("cg-rmemory", memory(), true, &["memory"]);
}

#[test]
fn linux_cgroups_pids() {
    scenario("cg-pids", pids(), false, &["pids"]);
}

#[test]
fn linux_cgroups_relative_pids() {
    scenario("cg-rpids", pids(), true, &["pids"]);
}

#[test]
fn linux_cgroups_hugetlb() {
    if !hugetlb_present() {
        return skip("no 2MB hugetlb controller files");
    }
    scenario("cg-hugetlb", hugetlb(), false, &["hugetlb"]);
}

#[test]
fn linux_cgroups_relative_hugetlb() {
    if !hugetlb_present() {
        return skip("no 2MB hugetlb controller files");
    }
    scenario("cg-rhugetlb", hugetlb(), true, &["hugetlb"]);
}

#[test]
fn linux_cgroups_devices() {
    scenario("cg-devices", devices(), false, &["devices"]);
}

#[test]
fn linux_cgroups_relative_devices() {
    scenario("cg-rdevices", devices(), true, &["devices"]);
}

#[test]
fn linux_cgroups_blkio() {
    if !blkio_weight_present() {
        return skip("no blkio weight files on this kernel (no proportional I/O scheduler)");
    }
    scenario(
        "cg-blkio",
        json!({ "blockIO": { "weight": 500 } }),
        false,
        &["blkio"],
    );
}

#[test]
fn linux_cgroups_network() {
    if !Path::new("/sys/fs/cgroup/net_cls").exists() {
        return skip("net_cls/net_prio hierarchies are not mounted");
    }
    scenario(
        "cg-network",
        json!({ "network": { "classID": 1048577 } }),
        false,
        &["net_cls"],
    );
}

/// Whether a blkio cgroup below the root has a weight file (the root never has BFQ's).
fn blkio_weight_present() -> bool {
    let probe = Path::new("/sys/fs/cgroup/blkio").join(unique_id("probe"));
    if fs::create_dir(&probe).is_err() {
        return false;
    }
    let present = probe.join("blkio.weight").exists() || probe.join("blkio.bfq.weight").exists();
    let _ = fs::remove_dir(&probe);
    present
}

#[test]
fn linux_cgroups_relative_blkio() {
    if !blkio_weight_present() {
        return skip("no blkio weight files on this kernel (no proportional I/O scheduler)");
    }
    scenario(
        "cg-rblkio",
        json!({ "blockIO": { "weight": 500 } }),
        true,
        &["blkio"],
    );
}

#[test]
fn linux_cgroups_relative_network() {
    if !Path::new("/sys/fs/cgroup/net_cls").exists() {
        return skip("net_cls/net_prio hierarchies are not mounted");
    }
    scenario(
        "cg-rnetwork",
        json!({ "network": { "classID": 1048577 } }),
        true,
        &["net_cls"],
    );
}
