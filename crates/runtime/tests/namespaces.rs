//! Namespaces end to end: a new user namespace with id maps (written by the parent), a time
//! namespace with offsets, a cgroup namespace; and a second container joining the first one's
//! network, ipc, uts and pid namespaces by path (a pod).

mod common;

use std::time::Duration;

use common::{can_run, uid, Bundle, Runtime};

#[test]
fn user_time_and_cgroup_namespaces() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; cut -d' ' -f1 /proc/uptime; cat /proc/self/cgroup",
    ]);
    b.edit(|v| {
        let ns = v["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.push(serde_json::json!({"type": "user"}));
        ns.push(serde_json::json!({"type": "time"}));
        ns.push(serde_json::json!({"type": "cgroup"}));
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        v["linux"]["timeOffsets"] = serde_json::json!({"boottime": {"secs": 864000}});
    });
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg("200000:200000")
        .arg(b.path().join("rootfs"))
        .status()
        .expect("chown");
    assert!(st.success());
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .expect("uptime")
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("f64");
    let out = rt.ok(&[
        "run",
        "-b",
        b.path().to_str().expect("utf8"),
        &uid("userns"),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {out}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"],
        "{out}"
    );
    let uptime: f64 = lines[2].parse().expect("uptime");
    assert!(
        uptime > host_uptime + 863000.0,
        "time offset not applied: {uptime} vs host {host_uptime}"
    );
    // in its own cgroup namespace the container's cgroup is the root
    assert!(
        lines[3..].iter().all(|l| l.ends_with(":/")),
        "cgroup ns: {out}"
    );
}

#[test]
fn second_container_joins_first_ones_namespaces_by_path() {
    if !can_run() {
        return;
    }
    let rt = Runtime::new();
    let b1 = Bundle::new(&["sleep", "60"]);
    b1.edit(|v| v["hostname"] = "pod-host".into());
    let id1 = uid("pod-a");
    rt.detached(&["run", "-d", "-b", b1.path().to_str().expect("utf8"), &id1]);
    let pid1 = rt.state(&id1)["pid"].as_i64().expect("pid");

    let b2 = Bundle::new(&["sh", "-c", "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo"]);
    b2.edit(|v| {
        v.as_object_mut().expect("obj").remove("hostname");
        for ns in v["linux"]["namespaces"].as_array_mut().expect("namespaces") {
            let t = ns["type"].as_str().expect("type").to_owned();
            let name = match t.as_str() {
                "network" => "net",
                "ipc" | "uts" | "pid" => &t,
                _ => continue,
            };
            ns["path"] = format!("/proc/{pid1}/ns/{name}").into();
        }
    });
    let out = rt.ok(&[
        "run",
        "-b",
        b2.path().to_str().expect("utf8"),
        &uid("pod-b"),
    ]);
    assert_eq!(
        out, "pod-host\nsleep 60 \n",
        "joined uts and pid namespaces: {out}"
    );
    rt.ok(&["kill", &id1, "KILL"]);
    std::thread::sleep(Duration::from_millis(100));
    rt.ok(&["delete", "--force", &id1]);
}
