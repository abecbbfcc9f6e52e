//! Bad input must fail with one clear line, a non-zero exit, and leave nothing behind: no state
//! dir, no cgroup, no mount, no process.

mod common;

use common::{can_run, uid, Bundle, Runtime};

/// Runs `create` for `id` on `b` and checks failure + message + no leftovers.
fn fails_cleanly(rt: &Runtime, b: &Bundle, id: &str, want: &str) {
    let before = common::mounts_under(&b.path());
    let o = rt
        .cmd()
        .args(["create", "-b", b.path().to_str().expect("utf8"), id])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("spawn create");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "create {id:?} succeeded");
    assert!(err.contains(want), "stderr {err:?} lacks {want:?}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "want one line, got {err:?}"
    );
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if valid && id != "." && id != ".." {
        assert!(
            !rt.root.path().join(id).exists(),
            "state dir of {id} left behind"
        );
        for d in common::cgroup_dirs(id) {
            assert!(!d.exists(), "cgroup {} left behind", d.display());
        }
    }
    assert_eq!(
        common::mounts_under(&b.path()),
        before,
        "mounts left behind"
    );
    // no process of ours still runs with this bundle
    let leaked: Vec<_> = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("cwd")).ok())
        .filter(|cwd| cwd.starts_with(b.path()))
        .collect();
    assert!(
        leaked.is_empty(),
        "processes left in the bundle: {leaked:?}"
    );
}

#[test]
fn bad_configs_fail_cleanly() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["true"]);
    b.edit(|v| {
        v.as_object_mut().expect("obj").remove("process");
    });
    fails_cleanly(&rt, &b, &uid("noproc"), "process is missing");

    let b = Bundle::new(&["true"]);
    b.edit(|v| v["linux"]["namespaces"][0]["type"] = "bogus".into());
    fails_cleanly(&rt, &b, &uid("badns"), "config.json");

    let b = Bundle::new(&["true"]);
    b.edit(|v| v["process"]["args"] = serde_json::json!([]));
    fails_cleanly(&rt, &b, &uid("noargs"), "args[0]");

    let b = Bundle::new(&["true"]);
    b.edit(|v| v["root"]["path"] = "nonexistent-rootfs".into());
    fails_cleanly(&rt, &b, &uid("norootfs"), "nonexistent-rootfs");

    let b = Bundle::new(&["nosuch"]);
    fails_cleanly(
        &rt,
        &b,
        &uid("nocmd"),
        "container init: exec \"nosuch\": no such file or directory",
    );

    let b = Bundle::new(&["true"]);
    b.edit(|v| v["process"]["cwd"] = "/proc/self/fd/4".into());
    fails_cleanly(&rt, &b, &uid("fdcwd"), "cwd");

    let b = Bundle::new(&["true"]);
    for bad in ["../x", "a/b", "", "..", "x y"] {
        fails_cleanly(&rt, &b, bad, "invalid container id");
    }
}

#[test]
fn duplicate_id_is_refused_and_first_survives() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&["sleep", "30"]);
    let id = uid("dup");
    rt.detached(&["create", "-b", b.path().to_str().expect("utf8"), &id]);
    let o = rt
        .cmd()
        .args(["create", "-b", b.path().to_str().expect("utf8"), &id])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("create");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(rt.state(&id)["status"], "created");
    rt.ok(&["delete", "--force", &id]);
    for d in common::cgroup_dirs(&id) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
}

#[test]
fn errors_are_logged_as_json_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.json");
    let o = std::process::Command::new(common::BIN)
        .arg("--root")
        .arg(dir.path())
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", "nosuch"])
        .output()
        .expect("state");
    assert!(!o.status.success());
    let line = std::fs::read_to_string(&log).expect("log written");
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("json line");
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().expect("msg").contains("nosuch"));
    assert!(v["time"].is_string());
}

#[test]
fn delete_force_clears_a_state_dir_without_valid_state() {
    let rt = Runtime::new();
    let dir = rt.root.path().join("half-made");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let o = rt.run(&["delete", "half-made"]);
    assert!(
        !o.status.success(),
        "delete without --force of an unreadable container must fail"
    );
    rt.ok(&["delete", "--force", "half-made"]);
    assert!(!dir.exists());
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("state.json"), b"{not json").expect("write");
    rt.ok(&["delete", "--force", "half-made"]);
    assert!(!dir.exists());
}
