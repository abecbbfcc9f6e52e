//! `berth debug`: a shell with tools from the host (or from another image) inside a running
//! container's pid, network, ipc, uts and cgroup namespaces — nsenter-style, no sshd.
//!
//! The session is a small OCI container of its own, run in the foreground by
//! `berth-runtime run` through the exec machinery (so TTY, resize, stdio and exit codes work as
//! for `exec`): its spec joins the target's namespaces by path (`/proc/<pid>/ns/*`) and gets its
//! own mount namespace whose root is the tool root — the host's `/usr`, `/etc`, `/lib*`, ...
//! bound read-only into an empty directory, or a throw-away overlay of the image's layers —
//! with a fresh `/proc` of the joined pid namespace: `ps` lists the container's processes and
//! the container's files are at `/proc/1/root`. Its cgroup is a child of the container's
//! (`/berth/<id>/debug-…`), so the container's limits hold for it too. Everything it made
//! (bundle, overlay, cgroup) is removed when the session ends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::container::ExecConfig;
use serde_json::{json, Value};

use super::exec::{Exec, ExecState};
use super::{random_hex, ContainerError, Containers, Record};

/// Host directories bound read-only into a host-tools debug root (symlinks, like the
/// merged-/usr `/bin -> usr/bin`, are recreated as symlinks).
const HOST_TOOL_DIRS: &[&str] = &[
    "bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `POST /containers/{id}/debug` asks for.
#[derive(Debug, Clone, Default)]
pub struct DebugRequest {
    /// Tools from this (local) image instead of the host.
    pub image: Option<String>,
    /// The command (default: `/bin/sh`).
    pub cmd: Vec<String>,
    pub tty: bool,
    pub attach_stdin: bool,
    pub env: Vec<String>,
    /// `[height, width]` of the terminal.
    pub console_size: Option<[u16; 2]>,
}

/// How a debug session's container is made; kept on its [`Exec`].
#[derive(Debug)]
pub struct DebugSetup {
    /// The debug container's id in berth-runtime.
    pub runtime_id: String,
    /// `<exec-root>/debug/<id>`: bundle, root, overlay dirs.
    pub dir: PathBuf,
    /// The image's layer directories, uppermost first (None: host tools).
    pub layers: Option<Vec<PathBuf>>,
    /// Whether an overlay is mounted on `dir/rootfs` (unmounted at cleanup).
    mounted: Mutex<bool>,
}

fn io_err(id: &str, op: String) -> impl FnOnce(std::io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Io {
        id: id.to_string(),
        op,
        source,
    }
}

/// Mounts every debug session gets, besides the tool root.
fn base_mounts() -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}),
        json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}),
        json!({"destination": "/root", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=700"]}),
    ]
}

/// The OCI spec of a debug session joining the namespaces of the process `pid`.
pub fn debug_spec(
    pid: i64,
    cgroup: &str,
    rootfs: &Path,
    extra_mounts: Vec<Value>,
    cfg: &ExecConfig,
    console_size: Option<[u16; 2]>,
    caps: &[String],
) -> Value {
    let ns =
        |kind: &str, name: &str| json!({"type": kind, "path": format!("/proc/{pid}/ns/{name}")});
    let mut env = vec![DEFAULT_PATH.to_string(), "HOME=/root".to_string()];
    if cfg.tty {
        env.push("TERM=xterm".into());
    }
    if let Some(extra) = &cfg.env {
        env.extend(extra.iter().cloned());
    }
    let args = if cfg.cmd.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        cfg.cmd.clone()
    };
    let mut process = json!({
        "terminal": cfg.tty,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": env,
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": false,
    });
    if let Some([h, w]) = console_size.filter(|s| cfg.tty && s[0] > 0 && s[1] > 0) {
        process["consoleSize"] = json!({"height": h, "width": w});
    }
    let mut mounts = base_mounts();
    mounts.extend(extra_mounts);
    json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": false},
        "mounts": mounts,
        "linux": {
            // a child of the container's cgroup: its limits and accounting cover the session,
            // and the session's own cgroup is removed (with what is left in it) at its end
            "cgroupsPath": cgroup,
            "namespaces": [
                ns("pid", "pid"),
                ns("network", "net"),
                ns("ipc", "ipc"),
                ns("uts", "uts"),
                ns("cgroup", "cgroup"),
                {"type": "mount"},
            ],
        },
    })
}

impl Containers {
    /// `POST /containers/{id}/debug`: a debug session on a running container, started and
    /// attached like an exec (`POST /exec/{id}/start`); returns its exec id.
    pub fn debug_create(&self, key: &str, req: DebugRequest) -> Result<String, ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        if !rec.state.status.is_alive() || rec.state.pid <= 0 {
            return Err(ContainerError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let layers = match &req.image {
            None => None,
            Some(name) => {
                let img = self.images().resolve(name).map_err(|e| match e.kind() {
                    crate::ErrorKind::NotFound => ContainerError::NoImage(name.clone()),
                    _ => e.into(),
                })?;
                let snaps = self.images().snapshots();
                Some(
                    img.chain_ids()
                        .iter()
                        .rev()
                        .map(|c| snaps.fs_path(c))
                        .collect::<Vec<_>>(),
                )
            }
        };
        let id = random_hex(32);
        let short = &id[..16];
        let setup = DebugSetup {
            runtime_id: format!("debug-{short}"),
            dir: self.paths().exec_root.join("debug").join(short),
            layers,
            mounted: Mutex::new(false),
        };
        let cmd = if req.cmd.is_empty() {
            vec!["/bin/sh".to_string()]
        } else {
            req.cmd
        };
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: rec.id.clone(),
            config: ExecConfig {
                attach_stdin: req.attach_stdin,
                attach_stdout: true,
                attach_stderr: true,
                tty: req.tty,
                env: Some(req.env),
                cmd,
                privileged: true,
                console_size: req.console_size,
                ..ExecConfig::default()
            },
            state: Mutex::new(ExecState::default()),
            debug: Some(setup),
        });
        self.execs()
            .lock()
            .expect("exec map lock poisoned")
            .insert(id.clone(), exec);
        self.publish_event("exec_create: debug", &rec, &[("execID", id.clone())]);
        Ok(id)
    }

    /// Prepare the session's root and bundle; the `berth-runtime run` command that runs it.
    pub(crate) fn debug_command(
        &self,
        rec: &Record,
        exec: &Exec,
        d: &DebugSetup,
        console_size: Option<[u16; 2]>,
    ) -> Result<tokio::process::Command, ContainerError> {
        let result = self.debug_prepare(rec, exec, d, console_size);
        if result.is_err() {
            self.debug_cleanup(d);
        }
        result
    }

    fn debug_prepare(
        &self,
        rec: &Record,
        exec: &Exec,
        d: &DebugSetup,
        console_size: Option<[u16; 2]>,
    ) -> Result<tokio::process::Command, ContainerError> {
        // the process may have been replaced since the session was created
        let pid = self.get(&rec.id)?.record().state.pid;
        if pid <= 0 {
            return Err(ContainerError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let rootfs = d.dir.join("rootfs");
        let bundle = d.dir.join("bundle");
        for p in [&rootfs, &bundle] {
            std::fs::create_dir_all(p)
                .map_err(io_err(&rec.id, format!("create {}", p.display())))?;
        }
        let mut extra = Vec::new();
        match &d.layers {
            Some(layers) => {
                let (upper, work) = (d.dir.join("upper"), d.dir.join("work"));
                for p in [&upper, &work] {
                    std::fs::create_dir_all(p)
                        .map_err(io_err(&rec.id, format!("create {}", p.display())))?;
                }
                let lowers: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
                let data = format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lowers.join(":"),
                    upper.display(),
                    work.display()
                );
                nix::mount::mount(
                    Some("overlay"),
                    &rootfs,
                    Some("overlay"),
                    nix::mount::MsFlags::empty(),
                    Some(data.as_str()),
                )
                .map_err(|e| ContainerError::Io {
                    id: rec.id.clone(),
                    op: format!("mount the debug image at {}", rootfs.display()),
                    source: e.into(),
                })?;
                *d.mounted.lock().expect("debug lock poisoned") = true;
            }
            None => {
                for name in HOST_TOOL_DIRS {
                    let host = Path::new("/").join(name);
                    let Ok(meta) = std::fs::symlink_metadata(&host) else {
                        continue;
                    };
                    let inside = rootfs.join(name);
                    if meta.is_symlink() {
                        let target = std::fs::read_link(&host)
                            .map_err(io_err(&rec.id, format!("read link {}", host.display())))?;
                        let _ = std::fs::remove_file(&inside);
                        std::os::unix::fs::symlink(&target, &inside)
                            .map_err(io_err(&rec.id, format!("link {}", inside.display())))?;
                    } else if meta.is_dir() {
                        std::fs::create_dir_all(&inside)
                            .map_err(io_err(&rec.id, format!("create {}", inside.display())))?;
                        extra.push(json!({
                            "destination": format!("/{name}"),
                            "type": "bind",
                            "source": host,
                            "options": ["rbind", "ro", "nosuid", "nodev"],
                        }));
                    }
                }
                for name in ["proc", "dev", "sys", "tmp", "run", "root"] {
                    let p = rootfs.join(name);
                    std::fs::create_dir_all(&p)
                        .map_err(io_err(&rec.id, format!("create {}", p.display())))?;
                }
            }
        }
        // root's tools with root's powers: every capability berthd itself holds (not "all":
        // a host root without e.g. CAP_SYS_RESOURCE cannot grant it)
        let mut held: Vec<caps::Capability> = caps::read(None, caps::CapSet::Permitted)
            .map_err(|e| ContainerError::Io {
                id: rec.id.clone(),
                op: "read berthd's capabilities".into(),
                source: std::io::Error::other(e.to_string()),
            })?
            .into_iter()
            .collect();
        held.sort_by_key(|c| c.index());
        let caps: Vec<String> = held.iter().map(|c| c.to_string()).collect();
        let spec = debug_spec(
            pid,
            &format!("/berth/{}/{}", rec.id, d.runtime_id),
            &rootfs,
            extra,
            &exec.config,
            console_size.or(exec.config.console_size),
            &caps,
        );
        let cfg = bundle.join("config.json");
        std::fs::write(&cfg, serde_json::to_vec_pretty(&spec).unwrap_or_default())
            .map_err(io_err(&rec.id, format!("write {}", cfg.display())))?;
        let mut cmd = tokio::process::Command::new(&self.paths().runtime);
        cmd.arg("--root")
            .arg(self.runtime_root_path())
            .arg("run")
            .arg("--bundle")
            .arg(&bundle);
        Ok(cmd)
    }

    /// Remove what a debug session made (its overlay, bundle and root directory).
    pub(crate) fn debug_cleanup(&self, d: &DebugSetup) {
        let mut mounted = d.mounted.lock().expect("debug lock poisoned");
        if *mounted {
            let rootfs = d.dir.join("rootfs");
            if let Err(e) = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %rootfs.display(), error = %e, "unmount debug root");
            }
            *mounted = false;
        }
        // the root holds only empty mount points and symlinks once nothing is mounted
        if let Err(e) = std::fs::remove_dir_all(&d.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %d.dir.display(), error = %e, "remove debug dir");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_joins_the_namespaces_by_path_with_its_own_mount_namespace() {
        let cfg = ExecConfig {
            tty: true,
            env: Some(vec!["A=1".into()]),
            ..ExecConfig::default()
        };
        let s = debug_spec(
            42,
            "/berth/c/debug-x",
            Path::new("/x/rootfs"),
            vec![],
            &cfg,
            Some([24, 80]),
            &[],
        );
        let ns = s["linux"]["namespaces"].as_array().expect("namespaces");
        for (kind, name) in [
            ("pid", "pid"),
            ("network", "net"),
            ("ipc", "ipc"),
            ("uts", "uts"),
            ("cgroup", "cgroup"),
        ] {
            assert!(
                ns.iter()
                    .any(|n| n["type"] == kind && n["path"] == format!("/proc/42/ns/{name}")),
                "{kind}"
            );
        }
        assert!(ns
            .iter()
            .any(|n| n["type"] == "mount" && n.get("path").is_none()));
        assert_eq!(s["process"]["args"], json!(["/bin/sh"]));
        assert_eq!(s["process"]["consoleSize"]["width"], 80);
        assert!(s["process"]["env"]
            .as_array()
            .expect("env")
            .contains(&json!("A=1")));
        assert!(
            s.get("hostname").is_none(),
            "the uts namespace is joined, not named"
        );
        assert!(s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["type"] == "proc"));
    }
}
