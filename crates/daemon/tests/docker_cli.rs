//! The real docker CLI against berthd, end to end: a local Distribution registry on 127.0.0.1
//! seeded with a busybox-static image (scripts/registry-fixture.sh: umoci + skopeo), berthd
//! with its default registry pointed there, then `docker pull/images/run/ps/logs/exec/inspect/
//! stop/rm`, volumes across containers, exit codes, and `kill -9` of berthd with a running
//! container that is re-adopted and whose exit code is recorded later.
//! Everything is cleaned up by Drop guards: berthd and the registry killed by PID, containers
//! removed, leftover shims killed by PID, overlays under the temp data root unmounted, cgroups
//! of the test's containers removed.

mod common;
#[path = "support/docker.rs"]
mod docker;
#[path = "support/fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use docker::Docker;
use fixture::{ensure_siblings, have, Cleanup, Registry};

fn start_daemon(dir: Option<tempfile::TempDir>, reg: &Registry) -> Daemon {
    let r = format!("127.0.0.1:{}", reg.port);
    let args = ["--default-registry", r.as_str()];
    match dir {
        Some(dir) => Daemon::start_in(dir, &args),
        None => Daemon::start_with(&args),
    }
}

#[test]
fn docker_cli_runs_containers_end_to_end() {
    for bin in ["docker", "docker-registry", "umoci", "skopeo", "jq"] {
        if !have(bin) {
            println!("SKIP: {bin} is not installed");
            return;
        }
    }
    ensure_siblings(Path::new(env!("CARGO_BIN_EXE_berthd")));
    let reg = Registry::start();
    let d = start_daemon(None, &reg);
    let _cleanup = Cleanup {
        data_root: d.data_root.clone(),
        exec_root: d.exec_root.clone(),
    };
    let docker = Docker::new(&d);
    let image = format!("127.0.0.1:{}/busybox", reg.port);

    // pull by full name, and a short name through the default registry (never docker.io)
    let out = docker.ok(&["pull", &image], &d);
    assert!(
        out.contains("Pull complete") || out.contains("Downloaded"),
        "{out}"
    );
    docker.ok(&["pull", "-q", "busybox"], &d);
    let images = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"], &d);
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    assert!(
        images.lines().any(|l| l == format!("{image}:latest")),
        "{images}"
    );

    // run --rm with output and exit codes
    let t = Instant::now();
    assert_eq!(
        docker.ok(&["run", "--rm", &image, "echo", "hi"], &d),
        "hi\n"
    );
    println!("docker run --rm echo hi: {:?}", t.elapsed());
    let out = docker.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = docker.run(&[
        "run",
        "--rm",
        "-a",
        "stdout",
        &image,
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).as_ref(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        ("out\n", ""),
        "attach to stdout only"
    );
    let out = docker.run(&["run", "--rm", &image, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such file"),
        "{out:?}"
    );
    let all = docker.ok(&["ps", "-aq"], &d);
    assert_eq!(
        all.trim(),
        "",
        "--rm containers are gone, even one that failed to start: {all}"
    );

    // detached container: ps, logs, exec, inspect, stop, rm
    docker.ok(
        &[
            "run",
            "-d",
            "--init",
            "--name",
            "web",
            &image,
            "sh",
            "-c",
            "echo started; exec sleep 30",
        ],
        &d,
    );
    let ps = docker.ok(&["ps", "--format", "{{.Names}} {{.Status}}"], &d);
    assert!(ps.lines().any(|l| l.starts_with("web Up")), "{ps}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = docker.ok(&["logs", "web"], &d);
        if logs == "started\n" {
            break;
        }
        assert!(Instant::now() < deadline, "logs: {logs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(docker.ok(&["exec", "web", "echo", "hi"], &d), "hi\n");
    if have("script") {
        // exec -it: a terminal from the runtime's console socket, bridged both ways
        let out = Command::new("script")
            .args([
                "-qec",
                "docker exec -it web sh -c 'tty; exit 3'",
                "/dev/null",
            ])
            .env("DOCKER_HOST", &docker.host)
            .env("DOCKER_CONFIG", docker.config.path())
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/dev/pts/"), "exec -it output: {text:?}");
        assert_eq!(out.status.code(), Some(3), "{out:?}");
    }
    let out = docker.run(&["exec", "web", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.Name}}",
            "web",
        ],
        &d,
    );
    assert_eq!(st.trim(), "running true /web");
    let dup = docker.run(&["run", "-d", "--name", "web", &image, "true"]);
    assert!(!dup.status.success());
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already in use"),
        "{dup:?}"
    );
    let rm = docker.run(&["rm", "web"]);
    assert!(!rm.status.success(), "rm of a running container needs -f");
    let t = Instant::now();
    docker.ok(&["stop", "web"], &d);
    // docker-init (--init) forwards SIGTERM to sleep, which dies of it
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "sleep stops on SIGTERM"
    );
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web",
        ],
        &d,
    );
    assert_eq!(st.trim(), "exited 143");
    docker.ok(&["rm", "web"], &d);
    let gone = docker.run(&["inspect", "web"]);
    assert!(!gone.status.success());

    // a named volume keeps data across containers
    docker.ok(
        &[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            &image,
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
        &d,
    );
    assert_eq!(
        docker.ok(
            &["run", "--rm", "-v", "keep:/data", &image, "cat", "/data/f"],
            &d
        ),
        "kept\n"
    );
    docker.ok(&["volume", "rm", "keep"], &d);
    // --volumes-from shares another container's volumes
    docker.ok(
        &["create", "--name", "vsrc", "-v", "vf:/data", &image, "true"],
        &d,
    );
    docker.ok(
        &[
            "run",
            "--rm",
            "--volumes-from",
            "vsrc",
            &image,
            "sh",
            "-c",
            "echo shared > /data/f",
        ],
        &d,
    );
    assert_eq!(
        docker.ok(
            &["run", "--rm", "-v", "vf:/data", &image, "cat", "/data/f"],
            &d
        ),
        "shared\n"
    );
    docker.ok(&["rm", "vsrc"], &d);
    docker.ok(&["volume", "rm", "vf"], &d);
    // a new volume over image content starts with a copy of it (docker's copy-up)
    assert_eq!(
        docker.ok(
            &[
                "run",
                "--rm",
                "-v",
                "seeded:/etc",
                &image,
                "cat",
                "/etc/berth-fixture"
            ],
            &d
        ),
        "berth registry fixture\n"
    );
    docker.ok(&["volume", "rm", "seeded"], &d);

    // --network none has only loopback; an unsupported network is a clear error
    let links = docker.ok(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "ls",
            "/sys/class/net",
        ],
        &d,
    );
    assert_eq!(links.trim(), "lo");
    let bad = docker.run(&["run", "--rm", "--network", "bridge", &image, "true"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("network"),
        "{bad:?}"
    );

    // kill -9 berthd with a running container: re-adopted, exit code recorded later
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "survivor",
            &image,
            "sh",
            "-c",
            "sleep 2; exit 7",
        ],
        &d,
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(d.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9 berthd");
    let dir = d.stop();
    let d = start_daemon(Some(dir), &reg);
    let docker = Docker::new(&d);
    let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", "survivor"], &d);
    assert_eq!(st.trim(), "running", "re-adopted as running");
    assert_eq!(docker.ok(&["wait", "survivor"], &d).trim(), "7");
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "survivor",
        ],
        &d,
    );
    assert_eq!(st.trim(), "exited 7");
    docker.ok(&["rm", "survivor"], &d);

    // restart policy: on-failure:2 restarts twice, then stays exited
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            &image,
            "sh",
            "-c",
            "echo run; exit 1",
        ],
        &d,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = docker.ok(
            &[
                "inspect",
                "-f",
                "{{.RestartCount}} {{.State.Status}}",
                "flaky",
            ],
            &d,
        );
        if st.trim() == "2 exited" {
            break;
        }
        assert!(Instant::now() < deadline, "restart policy: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.ExitCode}}",
            "flaky",
        ],
        &d,
    );
    assert_eq!(st.trim(), "2 1");
    assert_eq!(
        docker.ok(&["logs", "--tail", "2", "flaky"], &d),
        "run\nrun\n"
    );
    docker.ok(&["rm", "flaky"], &d);

    // healthcheck from run flags: unhealthy while the file is missing, healthy once it exists
    docker.ok(
        &[
            "run",
            "-d",
            "--name",
            "checked",
            "--health-cmd",
            "test -f /tmp/ok",
            "--health-interval",
            "100ms",
            "--health-retries",
            "2",
            &image,
            "sh",
            "-c",
            "sleep 1; touch /tmp/ok; exec sleep 30",
        ],
        &d,
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = docker.ok(
            &["inspect", "-f", "{{.State.Health.Status}}", "checked"],
            &d,
        );
        let st = st.trim().to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "health states seen: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.contains(&"unhealthy".to_string()),
        "health states seen: {seen:?}"
    );
    let ps = docker.ok(
        &["ps", "--format", "{{.Status}}", "--filter", "name=checked"],
        &d,
    );
    assert!(ps.contains("(healthy)"), "{ps}");
    // ps --filter health= (containers without a check are "none"), before= / since=
    docker.ok(&["run", "-d", "--name", "later", &image, "sleep", "30"], &d);
    for (filter, want) in [
        ("health=healthy", "checked"),
        ("health=unhealthy", ""),
        ("health=none", "later"),
        ("since=checked", "later"),
        ("before=later", "checked"),
    ] {
        let ps = docker.ok(
            &[
                "ps",
                "--filter",
                filter,
                "--filter",
                "name=^(checked|later)$",
                "--format",
                "{{.Names}}",
            ],
            &d,
        );
        assert_eq!(ps.trim(), want, "ps --filter {filter}");
    }
    docker.ok(&["rm", "-f", "checked", "later"], &d);

    // bad input: right status, clear message, nothing half-created
    let before = std::fs::read_dir(d.data_root.join("containers"))
        .expect("containers dir")
        .count();
    let create = |name: &str, body: &str| {
        d.request(
            "POST",
            &format!("/v1.47/containers/create?name={name}"),
            Some(body.as_bytes()),
        )
    };
    let ok_body = format!(r#"{{"Image":"{image}","Cmd":["true"]}}"#);
    let r = create("badjson", "{\"Image\":");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = create("bad%20name", &ok_body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("Invalid container name"), "{}", r.text());
    let r = create("noimg", r#"{"Image":"nosuch:1","Cmd":["true"]}"#);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("No such image"), "{}", r.text());
    let r = create(
        "nobind",
        &format!(
            r#"{{"Image":"{image}","HostConfig":{{"Mounts":[{{"Type":"bind","Source":"/nonexistent/berth","Target":"/x"}}]}}}}"#
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("does not exist"), "{}", r.text());
    let r = create(
        "badcap",
        &format!(r#"{{"Image":"{image}","HostConfig":{{"CapAdd":["CAP_NOPE"]}}}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = create(
        "badvol",
        &format!(r#"{{"Image":"{image}","HostConfig":{{"Binds":["v1:relative"]}}}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        d.request("GET", "/v1.47/containers/nosuch/json", None)
            .status,
        404
    );
    assert_eq!(
        d.request("POST", "/v1.47/containers/nosuch/start", None)
            .status,
        404
    );
    assert_eq!(
        d.request("DELETE", "/v1.47/containers/nosuch", None).status,
        404
    );
    assert_eq!(
        d.request("GET", "/v1.47/exec/nosuch/json", None).status,
        404
    );
    let after = std::fs::read_dir(d.data_root.join("containers"))
        .expect("containers dir")
        .count();
    assert_eq!(before, after, "failed creates left directories behind");
    let vols = docker.ok(&["volume", "ls", "-q"], &d);
    assert!(
        !vols.lines().any(|v| v == "v1"),
        "failed create kept volume v1: {vols}"
    );

    // docker-py (Debian's python3-docker) drives the same endpoints its own way
    let py_ok = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if py_ok {
        let script = format!(
            r#"
import docker
c = docker.DockerClient(base_url="{host}")
assert c.containers.run("{image}", "echo hi-py", remove=True) == b"hi-py\n"
ct = c.containers.run("{image}", ["sh", "-c", "echo bg; exec sleep 20"], detach=True, name="pyc")
assert c.containers.get("pyc").status == "running"
r = ct.exec_run("echo exec-py")
assert (r.exit_code, r.output) == (0, b"exec-py\n"), r
ct.kill()
assert ct.wait()["StatusCode"] == 137
assert ct.logs() == b"bg\n"
ct.remove()
try:
    c.containers.run("{image}", "sh -c 'exit 3'", remove=True)
    raise SystemExit("no ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3
print("docker-py ok")
"#,
            host = d.host(),
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "docker-py: {}{}\nberthd log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            d.log()
        );
    } else {
        println!("SKIP: docker-py (python3-docker) is not installed");
    }

    // docker-compose 1.29: two services, a shared named volume, a completion dependency
    // (network_mode none: berth has no container networks yet)
    if have("docker-compose") {
        let proj = tempfile::tempdir().expect("compose dir");
        std::fs::write(
            proj.path().join("docker-compose.yml"),
            format!(
                r#"version: "2.4"
services:
  init:
    image: {image}
    network_mode: none
    command: sh -c "echo seeded > /data/f"
    volumes: [shared:/data]
  app:
    image: {image}
    network_mode: none
    command: cat /data/f
    volumes: [shared:/data]
    depends_on:
      init:
        condition: service_completed_successfully
volumes:
  shared: {{}}
"#
            ),
        )
        .expect("compose file");
        let compose = |args: &[&str]| {
            Command::new("docker-compose")
                .args(["-p", "berthtest"])
                .args(args)
                .current_dir(proj.path())
                .env("DOCKER_HOST", &docker.host)
                .env("DOCKER_CONFIG", docker.config.path())
                .stdin(Stdio::null())
                .output()
                .expect("docker-compose")
        };
        let up = compose(&["up", "--no-color"]);
        let text = String::from_utf8_lossy(&up.stdout);
        assert!(
            up.status.success(),
            "compose up: {text}{}",
            String::from_utf8_lossy(&up.stderr)
        );
        assert!(text.contains("seeded"), "compose up output: {text}");
        let down = compose(&["down", "-v"]);
        assert!(down.status.success(), "compose down: {down:?}");
        assert_eq!(docker.ok(&["ps", "-aq"], &d).trim(), "");
        let vols = docker.ok(&["volume", "ls", "-q"], &d);
        assert!(!vols.contains("berthtest_shared"), "{vols}");
    } else {
        println!("SKIP: docker-compose is not installed");
    }

    // after a reboot the rootfs overlay is gone: start mounts it again
    docker.ok(
        &[
            "create",
            "--name",
            "rebooted",
            &image,
            "cat",
            "/etc/berth-fixture",
        ],
        &d,
    );
    let merged = docker.ok(
        &[
            "inspect",
            "-f",
            "{{.GraphDriver.Data.MergedDir}}",
            "rebooted",
        ],
        &d,
    );
    nix::mount::umount2(merged.trim(), nix::mount::MntFlags::MNT_DETACH).expect("unmount rootfs");
    assert_eq!(
        docker.ok(&["start", "-a", "rebooted"], &d),
        "berth registry fixture\n"
    );
    docker.ok(&["rm", "rebooted"], &d);

    // an image in use can't be removed without -f; unused it can
    docker.ok(&["create", "--name", "holder", &image, "true"], &d);
    let rmi = docker.run(&["rmi", &image]);
    assert!(!rmi.status.success(), "{rmi:?}");
    docker.ok(&["rm", "holder"], &d);
    docker.ok(&["rmi", &image], &d);

    // prune: stopped containers, then every unused image
    docker.ok(&["create", "--name", "stale", "busybox", "true"], &d);
    let out = docker.ok(&["container", "prune", "-f"], &d);
    assert!(out.contains("Deleted Containers"), "{out}");
    assert_eq!(docker.ok(&["ps", "-aq"], &d).trim(), "");
    let out = docker.ok(&["image", "prune", "-af"], &d);
    assert!(out.contains("Deleted"), "{out}");
    assert_eq!(docker.ok(&["images", "-q"], &d).trim(), "");
    // removed containers' writable layers are unmounted and deleted (in the background)
    let layers = d.data_root.join("image/snapshots/containers");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(&layers).map(|r| r.count()).unwrap_or(0) > 0 {
        assert!(
            Instant::now() < deadline,
            "container layers left in {}",
            layers.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
