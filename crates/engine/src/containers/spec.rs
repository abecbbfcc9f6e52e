//! A container's OCI runtime spec: the image's defaults (`berth_image::config`) with what
//! `docker create` asked for laid over them — mounts (binds, volumes, tmpfs, /etc files),
//! resources, capabilities, privileged mode, read-only root, seccomp (docker's default profile),
//! no-new-privileges, network mode, cgroups path and the init binary.
//!
//! The spec from the image crate is edited as JSON: the overrides are a flat list of field
//! writes, far clearer than oci-spec's builders for this kind of patching.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_api::container::{ContainerConfig, HostConfig};
use serde_json::{json, Value};

use super::seccomp;

/// Errors of spec building; all of them are the caller's fault (400) unless `Image`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] berth_image::config::ConfigError),
    #[error("encode runtime spec")]
    Encode(#[source] serde_json::Error),
}

/// A mount the engine resolved (volume names already turned into paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Host path (bind, volume) or empty (tmpfs).
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    /// tmpfs options (`size=…,mode=…`), extra bind options.
    pub options: Vec<String>,
    /// Volume name for `volume` mounts.
    pub name: Option<String>,
}

/// Everything the spec needs besides the image config.
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub host: &'a HostConfig,
    pub rootfs: &'a Path,
    pub mounts: &'a [ResolvedMount],
    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` files to bind in.
    pub etc_files: &'a [(PathBuf, &'static str)],
    /// docker-init on the host, if `Init` is asked for.
    pub init: Option<&'a Path>,
    /// The pinned network namespace to join (bridge networks); None: a new one, or the host's.
    pub netns: Option<&'a Path>,
}

/// A network mode's syntax (whether the network exists is the network module's business).
pub fn check_network_mode(mode: &str) -> Result<(), SpecError> {
    match mode.strip_prefix("container:") {
        Some("") => Err(SpecError::Invalid(
            "invalid network mode: container: needs a container name or id".into(),
        )),
        _ if mode.contains(char::is_whitespace) => {
            Err(SpecError::Invalid(format!("invalid network mode {mode:?}")))
        }
        _ => Ok(()),
    }
}

/// Build the spec JSON.
pub fn build(
    image_config: &oci_spec::image::ImageConfiguration,
    input: &SpecInput<'_>,
) -> Result<Value, SpecError> {
    let c = input.config;
    let h = input.host;
    check_network_mode(&h.network_mode)?;
    let hostname = if c.hostname.is_empty() {
        input.id.chars().take(12).collect()
    } else {
        c.hostname.clone()
    };
    let mut entrypoint = c.entrypoint.clone();
    let mut cmd = c.cmd.clone();
    if let Some(init) = input.init.filter(|_| h.init.unwrap_or(false)) {
        let _ = init;
        let image_ep = image_config
            .config()
            .as_ref()
            .and_then(|cc| cc.entrypoint().clone())
            .unwrap_or_default();
        let ep = entrypoint.take().unwrap_or(image_ep);
        let image_cmd = if c.entrypoint.is_some() {
            vec![]
        } else {
            image_config
                .config()
                .as_ref()
                .and_then(|cc| cc.cmd().clone())
                .unwrap_or_default()
        };
        let rest = cmd.take().unwrap_or(image_cmd);
        entrypoint = Some(vec!["/sbin/docker-init".to_string(), "--".to_string()]);
        cmd = Some(ep.into_iter().chain(rest).collect());
    }
    let opts = berth_image::config::RunOptions {
        entrypoint,
        cmd,
        env: c
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.contains('='))
            .collect(),
        working_dir: Some(c.working_dir.clone()).filter(|w| !w.is_empty()),
        user: Some(c.user.clone()).filter(|u| !u.is_empty()),
        group_add: h
            .group_add
            .clone()
            .unwrap_or_default()
            .iter()
            .filter_map(|g| g.parse().ok())
            .collect(),
        tty: c.tty,
        hostname: Some(hostname.clone()),
        rootfs: Some(input.rootfs.to_path_buf()),
    };
    if let Some(w) = &opts.working_dir {
        if !w.starts_with('/') {
            return Err(SpecError::Invalid(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
    }
    let spec = berth_image::config::runtime_spec_from_image(image_config, &opts)?;
    let mut v = serde_json::to_value(&spec).map_err(SpecError::Encode)?;
    v["root"] = json!({"path": input.rootfs, "readonly": h.readonly_rootfs});
    v["hostname"] = json!(hostname);
    if let Some([height, width]) = h.console_size.filter(|s| c.tty && s[0] > 0 && s[1] > 0) {
        // the runtime sizes the pty before the process runs: a resize sent after start
        // races with a process that asks for its size at once (`stty size`)
        v["process"]["consoleSize"] = json!({"height": height, "width": width});
    }
    if c.open_stdin && !c.tty {
        // stdin stays open for attach; nothing in the spec, the shim holds it
    }

    // namespaces
    let mut ns = vec!["pid", "ipc", "uts", "mount"];
    let host_net = h.network_mode == "host";
    if !host_net && input.netns.is_none() {
        ns.push("network");
    }
    let mut ns: Vec<Value> = ns.iter().map(|t| json!({"type": t})).collect();
    if let Some(path) = input.netns.filter(|_| !host_net) {
        ns.push(json!({"type": "network", "path": path}));
    }
    v["linux"]["namespaces"] = Value::Array(ns);
    v["linux"]["cgroupsPath"] = json!(format!("/berth/{}", input.id));

    // mounts
    let mut mounts: Vec<Value> = default_mounts(h.privileged);
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for m in input.mounts {
        targets.insert(m.destination.clone());
    }
    mounts.retain(|m| {
        m["destination"]
            .as_str()
            .is_none_or(|d| !targets.contains(d))
    });
    for (src, dst) in input.etc_files {
        if targets.contains(*dst) {
            continue;
        }
        mounts.push(json!({"destination": dst, "type": "bind", "source": src,
            "options": ["rbind", "rprivate"]}));
    }
    if let Some(init) = input.init.filter(|_| h.init.unwrap_or(false)) {
        mounts.push(
            json!({"destination": "/sbin/docker-init", "type": "bind", "source": init,
            "options": ["rbind", "ro", "rprivate"]}),
        );
    }
    for m in input.mounts {
        if !m.destination.starts_with('/') {
            return Err(SpecError::Invalid(format!(
                "invalid mount config: mount path must be absolute: {}",
                m.destination
            )));
        }
        let mut options = Vec::new();
        match m.kind.as_str() {
            "tmpfs" => {
                options.extend(["nosuid", "nodev", "noexec"].map(String::from));
                options.extend(m.options.iter().cloned());
                if m.read_only {
                    options.push("ro".into());
                }
                mounts.push(json!({"destination": m.destination, "type": "tmpfs",
                    "source": "tmpfs", "options": options}));
            }
            _ => {
                options.push("rbind".into());
                options.push(if m.read_only { "ro" } else { "rw" }.into());
                options.push("rprivate".into());
                options.extend(m.options.iter().cloned());
                mounts.push(json!({"destination": m.destination, "type": "bind",
                    "source": m.source, "options": options}));
            }
        }
    }
    v["mounts"] = Value::Array(mounts);

    // resources
    let mut res = json!({"devices": [{"allow": h.privileged, "access": "rwm"}]});
    if !h.privileged {
        let mut devs = vec![json!({"allow": false, "access": "rwm"})];
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, -1),
        ] {
            let mut d = json!({"allow": true, "type": "c", "major": major, "access": "rwm"});
            if minor >= 0 {
                d["minor"] = json!(minor);
            }
            devs.push(d);
        }
        res["devices"] = Value::Array(devs);
    }
    if h.memory > 0 {
        res["memory"] = json!({"limit": h.memory});
        if h.memory_swap != 0 {
            res["memory"]["swap"] = json!(h.memory_swap);
        }
    }
    let mut cpu = serde_json::Map::new();
    if h.nano_cpus > 0 {
        if h.cpu_quota > 0 {
            return Err(SpecError::Invalid(
                "conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
            ));
        }
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(h.nano_cpus / 10_000));
    } else if h.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(h.cpu_quota));
        cpu.insert(
            "period".into(),
            json!(if h.cpu_period > 0 {
                h.cpu_period
            } else {
                100_000
            }),
        );
    }
    if h.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(h.cpu_shares));
    }
    if !h.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(h.cpuset_cpus));
    }
    if !h.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(h.cpuset_mems));
    }
    if h.memory_reservation > 0 {
        res["memory"]["reservation"] = json!(h.memory_reservation);
    }
    if h.blkio_weight > 0 && blkio_weight_supported() {
        res["blockIO"] = json!({"weight": h.blkio_weight});
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
        res["pids"] = json!({"limit": p});
    }
    v["linux"]["resources"] = res;

    // capabilities
    let caps = capabilities(h)?;
    let caps_json = json!(caps);
    for set in ["bounding", "effective", "permitted"] {
        v["process"]["capabilities"][set] = caps_json.clone();
    }
    let mut nnp = false;
    let mut seccomp_mode = if h.privileged {
        "unconfined"
    } else {
        "default"
    }
    .to_string();
    for o in h.security_opt.iter().flatten() {
        let (k, val) = o
            .split_once('=')
            .or_else(|| o.split_once(':'))
            .unwrap_or((o.as_str(), "true"));
        match k {
            "no-new-privileges" => nnp = val != "false",
            "seccomp" => seccomp_mode = val.to_string(),
            "label" | "apparmor" => {}
            _ => return Err(SpecError::Invalid(format!("invalid --security-opt: {o:?}"))),
        }
    }
    v["process"]["noNewPrivileges"] = json!(nnp);
    if h.privileged {
        v["linux"]["maskedPaths"] = json!([]);
        v["linux"]["readonlyPaths"] = json!([]);
    } else {
        v["linux"]["maskedPaths"] = json!([
            "/proc/asound",
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap"
        ]);
        v["linux"]["readonlyPaths"] = json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]);
    }
    match seccomp_mode.as_str() {
        "unconfined" => {}
        "default" => {
            if let Some(profile) = seccomp::default_profile(&caps) {
                v["linux"]["seccomp"] = profile;
            }
        }
        path => {
            let data = std::fs::read(path).map_err(|e| {
                SpecError::Invalid(format!("opening seccomp profile ({path}) failed: {e}"))
            })?;
            let profile = seccomp::from_docker_json(&data, &caps).map_err(|e| {
                SpecError::Invalid(format!("decoding seccomp profile ({path}) failed: {e}"))
            })?;
            v["linux"]["seccomp"] = profile;
        }
    }
    if let Some(sig) = &c.stop_signal {
        v["annotations"]["org.opencontainers.image.stopSignal"] = json!(sig);
    }
    Ok(v)
}

fn default_mounts(privileged: bool) -> Vec<Value> {
    let sys_opts = if privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
            "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ]
}

/// Every capability there is (what `--privileged` and `--cap-add ALL` give), in kernel bit order,
/// from the `caps` crate the runtime uses too: one list of names for the whole project.
fn all_caps() -> Vec<String> {
    let mut all: Vec<caps::Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.iter().map(|c| c.to_string()).collect()
}

/// Whether the host's cgroups can weight block IO (v1 `blkio.weight`/`blkio.bfq.weight`, or the
/// v2 `io` controller); without it docker discards `--blkio-weight`, and so does berth.
pub fn blkio_weight_supported() -> bool {
    let v1 = std::path::Path::new("/sys/fs/cgroup/blkio");
    v1.join("blkio.weight").exists()
        || v1.join("blkio.bfq.weight").exists()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
}

/// Docker's default set.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn normalize_cap(c: &str) -> Result<String, SpecError> {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if full.parse::<caps::Capability>().is_ok() {
        Ok(full)
    } else {
        Err(SpecError::Invalid(format!("unknown capability: {c:?}")))
    }
}

/// The capability set after `--privileged`, `--cap-add` and `--cap-drop` (docker's rules:
/// drops apply to the default set, adds win over drops, `ALL` on either side).
pub fn capabilities(h: &HostConfig) -> Result<Vec<String>, SpecError> {
    if h.privileged {
        return Ok(all_caps());
    }
    let add: Vec<String> = h
        .cap_add
        .iter()
        .flatten()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = h
        .cap_drop
        .iter()
        .flatten()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let mut set: Vec<String> = if drop.iter().any(|d| d == "ALL") {
        vec![]
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|a| a == "ALL") {
        return Ok(all_caps());
    }
    for a in add {
        if !set.contains(&a) {
            set.push(a);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_add_drop_follow_docker() {
        let mut h = HostConfig {
            cap_drop: Some(vec!["chown".into(), "NET_RAW".into()]),
            cap_add: Some(vec!["SYS_ADMIN".into()]),
            ..HostConfig::default()
        };
        let caps = capabilities(&h).expect("caps");
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_KILL".to_string()));
        h.cap_drop = Some(vec!["ALL".into()]);
        assert_eq!(capabilities(&h).expect("caps"), vec!["CAP_SYS_ADMIN"]);
        h.cap_add = Some(vec!["bogus".into()]);
        assert!(capabilities(&h).is_err());
        h.privileged = true;
        h.cap_add = None;
        assert_eq!(capabilities(&h).expect("caps").len(), 41);
        assert_eq!(all_caps()[0], "CAP_CHOWN");
        assert_eq!(all_caps()[40], "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn network_modes() {
        for ok in [
            "",
            "default",
            "none",
            "host",
            "bridge",
            "mynet",
            "container:abc",
        ] {
            check_network_mode(ok).expect(ok);
        }
        let e = check_network_mode("container:").expect_err("empty container");
        assert!(e.to_string().contains("container name or id"), "{e}");
    }
}
