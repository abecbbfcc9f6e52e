//! The OCI lifecycle and the runtime's CLI, checked from outside: create/start/kill/delete and
//! the states between them, `state` JSON fields, errors for wrong states, unknown ids and bad
//! configs, pid files, and what `delete` removes (mirroring runtime-tools' create, start, kill,
//! kill_no_effect, killsig, delete, delete_resources, delete_only_create_resources, state,
//! pidfile and misc_props programs).

mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn sleeper() -> Bundle {
    Bundle::new(&["/bin/sleep", "300"])
}

fn alive(pid: i64) -> bool {
    // A zombie still has /proc/<pid>; look at its state letter.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Whether `pid` is dead (or a zombie) within a few seconds.
fn gone_soon(pid: i64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn create() {
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("create");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let st = rt.state(&id).expect("state after create");
    assert_eq!(st["status"], "created", "state after create: {st}");
    let pid = st["pid"].as_i64().expect("created container has a pid");
    assert!(
        pid > 0 && alive(pid),
        "pid {pid} of a created container must be alive"
    );
    // The user process must not run before start: the container's pid is still the runtime's
    // init waiting, not sleep.
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("300"),
        "process.args ran before start: {}",
        String::from_utf8_lossy(&cmdline)
    );
    // The same id again fails and leaves the first container alone.
    let again = rt.create(&id, &b, &[]);
    assert!(
        !again.status.success(),
        "create with a duplicate id succeeded"
    );
    assert_eq!(rt.status(&id).as_deref(), Some("created"));
}

#[test]
fn create_bad_bundle() {
    let rt = Runtime::new();
    let b = sleeper();
    // No config.json written.
    let id = unique_id("badbundle");
    let out = rt.create(&id, &b, &[]);
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    assert!(
        !out.status.success(),
        "create without config.json succeeded"
    );
    assert!(rt.state(&id).is_err(), "a failed create left state behind");
    // A config whose root does not exist.
    let mut b = sleeper();
    b.set(&["root", "path"], json!("no-such-rootfs"));
    b.write();
    let out = rt.create(&id, &b, &[]);
    assert!(
        !out.status.success(),
        "create with a missing root.path succeeded"
    );
    assert!(rt.state(&id).is_err(), "a failed create left state behind");
    // Not JSON at all.
    fs::write(b.dir().join("config.json"), "{ not json").expect("write");
    let out = rt.create(&id, &b, &[]);
    assert!(
        !out.status.success(),
        "create with an unparsable config.json succeeded"
    );
    assert!(rt.state(&id).is_err(), "a failed create left state behind");
}

#[test]
fn start() {
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("start");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let cmdline =
        fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline of the container process");
    assert_eq!(
        cmdline, b"/bin/sleep\x00300\x00",
        "the started process is not process.args"
    );
    assert!(
        !rt.start(&id).status.success(),
        "start of a running container succeeded"
    );
    assert!(
        !rt.start(&unique_id("nosuch")).status.success(),
        "start of an unknown id succeeded"
    );
}

#[test]
fn start_stopped_fails() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]);
    b.write();
    let id = unique_id("startstopped");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", WAIT).expect("true stops");
    assert!(
        !rt.start(&id).status.success(),
        "start of a stopped container succeeded"
    );
}

#[test]
fn state() {
    let rt = Runtime::new();
    let mut b = sleeper();
    b.set(
        &["annotations"],
        json!({ "org.berth.test": "state", "empty": "" }),
    );
    b.write();
    let id = unique_id("state");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let st = rt.state(&id).expect("state");
    assert!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "ociVersion missing: {st}"
    );
    assert_eq!(st["id"], json!(id));
    assert_eq!(st["status"], "created");
    assert!(
        st["pid"].as_i64().is_some_and(|p| p > 0),
        "pid missing: {st}"
    );
    let bundle = st["bundle"].as_str().expect("bundle is a string");
    assert!(
        Path::new(bundle).is_absolute(),
        "bundle {bundle} is not absolute"
    );
    assert_eq!(
        fs::canonicalize(bundle).expect("bundle exists"),
        fs::canonicalize(b.dir()).expect("bundle dir")
    );
    assert_eq!(
        st["annotations"],
        json!({ "org.berth.test": "state", "empty": "" })
    );
    let err = rt.state(&unique_id("nosuch"));
    assert!(err.is_err(), "state of an unknown id succeeded: {err:?}");
}

#[test]
fn kill() {
    // A running container is killed by a signal and becomes stopped.
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("kill");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    ok(&rt.kill(&id, "KILL"), "kill KILL");
    rt.wait_status(&id, "stopped", WAIT)
        .expect("stopped after SIGKILL");
    assert!(
        !rt.kill(&unique_id("nosuch"), "KILL").status.success(),
        "kill of an unknown id succeeded"
    );
}

#[test]
fn kill_created() {
    // The spec allows signalling a created container; SIGKILL must stop it.
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("killcreated");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.kill(&id, "KILL"), "kill KILL of a created container");
    rt.wait_status(&id, "stopped", WAIT)
        .expect("stopped after SIGKILL");
}

#[test]
fn killsig() {
    // The signal named on the command line is the one delivered (by name and by number).
    for (sig, code) in [("TERM", "15"), ("USR1", "10"), ("SIGHUP", "1"), ("2", "2")] {
        let rt = Runtime::new();
        let mut b = Bundle::new(&[
            "/bin/sh",
            "-c",
            "for s in HUP INT USR1 TERM; do trap \"echo $s > /out/sig; exit 0\" $s; done; \
             touch /out/ready; while true; do sleep 0.05; done",
        ]);
        let out = b.dir().join("out");
        fs::create_dir(&out).expect("mkdir out");
        b.push(
            &["mounts"],
            json!({ "destination": "/out", "type": "bind",
            "source": out.to_str().expect("utf8"), "options": ["rbind", "rw"] }),
        );
        b.write();
        let id = unique_id("killsig");
        ok(&rt.create(&id, &b, &[]), "create");
        let _c = Container {
            rt: &rt,
            id: id.clone(),
        };
        ok(&rt.start(&id), "start");
        for _ in 0..500 {
            if out.join("ready").exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(out.join("ready").exists(), "the trap script did not start");
        ok(&rt.kill(&id, sig), &format!("kill {sig}"));
        rt.wait_status(&id, "stopped", WAIT)
            .unwrap_or_else(|s| panic!("not stopped after {sig}: {s:?}"));
        let got = fs::read_to_string(out.join("sig")).unwrap_or_default();
        let want = match code {
            "1" => "HUP",
            "2" => "INT",
            "10" => "USR1",
            _ => "TERM",
        };
        assert_eq!(got.trim(), want, "kill {sig} delivered the wrong signal");
    }
}

#[test]
fn kill_no_effect() {
    // Signalling a stopped container must not change it, and is an error.
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]);
    b.write();
    let id = unique_id("killnoeffect");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", WAIT).expect("true stops");
    let before = rt.state(&id).expect("state");
    let killed = rt.kill(&id, "KILL");
    let after = rt.state(&id).expect("state after kill");
    assert_eq!(before, after, "kill changed a stopped container");
    // "... MUST have no effect on the container and MUST generate an error."
    assert!(
        !killed.status.success(),
        "kill of a stopped container did not report an error"
    );
}

#[test]
fn delete() {
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("delete");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    // Not stopped: delete without --force must fail and change nothing.
    assert!(
        !rt.delete(&id, false).status.success(),
        "delete of a running container succeeded"
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    ok(&rt.kill(&id, "KILL"), "kill");
    rt.wait_status(&id, "stopped", WAIT).expect("stopped");
    ok(&rt.delete(&id, false), "delete of a stopped container");
    assert!(rt.state(&id).is_err(), "state still answers after delete");
    assert!(
        !rt.delete(&id, false).status.success(),
        "delete of a deleted container succeeded"
    );
}

#[test]
fn delete_created() {
    // A created container (never started) can be deleted with --force; its init is gone after.
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("deletecreated");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    ok(
        &rt.delete(&id, true),
        "delete --force of a created container",
    );
    assert!(rt.state(&id).is_err(), "state still answers after delete");
    assert!(
        gone_soon(pid),
        "the container's init {pid} survived delete --force"
    );
}

#[test]
fn delete_force_running() {
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("deleteforce");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    ok(
        &rt.delete(&id, true),
        "delete --force of a running container",
    );
    assert!(
        rt.state(&id).is_err(),
        "state still answers after delete --force"
    );
    assert!(gone_soon(pid), "process {pid} survived delete --force");
}

/// The cgroup directories a process is in, per v1 controller, as host paths.
fn cgroup_dirs(pid: i64) -> Vec<std::path::PathBuf> {
    let proc_cgroup =
        fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/pid/cgroup");
    let mounts = berth_conformance::mountinfo::read_self().expect("host mountinfo");
    ["memory", "pids", "cpu", "devices"]
        .into_iter()
        .filter_map(|c| berth_conformance::cgroups::locate(&proc_cgroup, &mounts, c))
        .map(|d| d.path)
        .collect()
}

#[test]
fn delete_resources() {
    // delete removes what create made: the state, the process, the container's cgroups.
    let rt = Runtime::new();
    let mut b = sleeper();
    let cg = nested_cgroup("delres");
    let _cleanup = CgroupCleanup(cg.clone());
    b.set(&["linux", "cgroupsPath"], json!(cg));
    b.set(&["linux", "resources", "pids"], json!({ "limit": 100 }));
    b.write();
    let id = unique_id("deleteresources");
    ok(&rt.create(&id, &b, &[]), "create");
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let dirs: Vec<_> = cgroup_dirs(pid)
        .into_iter()
        .filter(|d| d.to_string_lossy().ends_with(&cg))
        .collect();
    assert!(!dirs.is_empty(), "the container is not in cgroup {cg}");
    ok(&rt.delete(&id, true), "delete --force");
    assert!(gone_soon(pid), "process {pid} survived delete");
    for d in &dirs {
        assert!(!d.exists(), "cgroup {} survived delete", d.display());
    }
    let leftover: Vec<_> = fs::read_dir(rt.root.path())
        .expect("read root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftover.is_empty(),
        "delete left state behind: {leftover:?}"
    );
}

/// A cgroup made by the test (not by the runtime), removed on drop.
struct OwnCgroup(std::path::PathBuf);

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn delete_only_create_resources() {
    // A cgroup the container was moved into by someone else must survive delete.
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("deleteonly");
    let own = OwnCgroup(Path::new("/sys/fs/cgroup/pids").join(unique_id("foreign")));
    fs::create_dir(&own.0).expect("create a foreign pids cgroup");
    ok(&rt.create(&id, &b, &[]), "create");
    let c = Container {
        rt: &rt,
        id: id.clone(),
    };
    let pid = rt.state(&id).expect("state")["pid"].as_i64().expect("pid");
    fs::write(own.0.join("cgroup.procs"), pid.to_string())
        .expect("move the container into the foreign cgroup");
    ok(&rt.delete(&id, true), "delete --force");
    std::mem::forget(c);
    assert!(own.0.exists(), "delete removed a cgroup it did not create");
    for _ in 0..100 {
        if fs::remove_dir(&own.0).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pidfile() {
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let id = unique_id("pidfile");
    let pidfile = b.dir().join("container.pid");
    let out = rt.create(&id, &b, &["--pid-file", pidfile.to_str().expect("utf8")]);
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&out, "create --pid-file");
    let text = fs::read_to_string(&pidfile).expect("pid file written by create");
    let st = rt.state(&id).expect("state");
    assert_eq!(
        text.trim().parse::<i64>().ok(),
        st["pid"].as_i64(),
        "pid file {text:?} vs state {st}"
    );
}

#[test]
fn misc_props() {
    // Unknown annotation keys and unknown properties must be accepted; invalid values refused.
    let rt = Runtime::new();
    let mut b = Bundle::new(&["/bin/true"]);
    b.set(&["annotations"], json!({ "org.berth.unknown-key": "" }));
    b.set(&["unknownProperty"], json!({ "nested": [1, 2] }));
    b.set(&["process", "unknownProcessField"], json!(true));
    b.write();
    let id = unique_id("miscprops");
    ok(
        &rt.create(&id, &b, &[]),
        "create with unknown annotation and properties",
    );
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    ok(&rt.start(&id), "start");
    rt.wait_status(&id, "stopped", WAIT).expect("true stops");
    ok(&rt.delete(&id, false), "delete");

    let mut bad = Bundle::new(&["/bin/true"]);
    bad.set(&["ociVersion"], json!("invalid"));
    assert_create_fails(&bad, "miscprops-version");
}

#[test]
fn invalid_namespace_type() {
    // Values that can't be mapped to the kernel must be errors, not silently dropped.
    let mut b = Bundle::new(&["/bin/true"]);
    b.push(&["linux", "namespaces"], json!({ "type": "nosuchns" }));
    assert_create_fails(&b, "badns");
}

#[test]
fn process_args_empty() {
    // process.args is REQUIRED with at least one entry.
    let mut b = Bundle::new(&["/bin/true"]);
    b.set(&["process", "args"], json!([]));
    assert_create_fails(&b, "noargs");
}

#[test]
fn process_cwd_relative() {
    // process.cwd "MUST be an absolute path".
    let mut b = Bundle::new(&["/bin/true"]);
    b.set(&["process", "cwd"], json!("relative/cwd"));
    assert_create_fails(&b, "relcwd");
}

#[test]
fn run_exit_code() {
    // `run` is not in the OCI CLI spec but every runtime has it: create + start + wait + delete,
    // exiting with the container's code.
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/sh", "-c", "exit 7"]);
    b.write();
    let id = unique_id("run");
    let out = rt.run(&["run", "--bundle", b.dir().to_str().expect("utf8 path"), &id]);
    let _c = Container {
        rt: &rt,
        id: id.clone(),
    };
    assert_eq!(
        out.status.code(),
        Some(7),
        "run exit code; stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rt.state(&id).is_err(), "run left the container behind");
}

#[test]
fn create_empty_id() {
    // runtime-tools create: an empty id must be refused.
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let out = rt.create("", &b, &[]);
    let _c = Container {
        rt: &rt,
        id: String::new(),
    };
    assert!(!out.status.success(), "create with an empty id succeeded");
    let leftover: Vec<_> = fs::read_dir(rt.root.path())
        .expect("read root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftover.is_empty(),
        "refused create left state: {leftover:?}"
    );
}

#[test]
fn create_path_id() {
    // An id is a name, not a path: one that would escape the state root must be refused.
    let rt = Runtime::new();
    let b = sleeper();
    b.write();
    let escape = format!("../{}", unique_id("escape"));
    let out = rt.create(&escape, &b, &[]);
    let _c = Container {
        rt: &rt,
        id: escape.clone(),
    };
    let outside = rt.root.path().join(&escape);
    let escaped = outside.exists();
    let _ = fs::remove_dir_all(&outside);
    assert!(!out.status.success(), "create with id {escape:?} succeeded");
    assert!(
        !escaped,
        "create wrote state outside its root: {}",
        outside.display()
    );
}
