//! Image config → runtime spec: what `docker run IMAGE` derives from the image.
//!
//! [`runtime_spec_from_image`] merges the image's Entrypoint/Cmd/Env/WorkingDir/User with the
//! run overrides into an OCI runtime spec (docker's default capability set, the default mounts and
//! namespaces of `oci_spec`). [`ImageDefaults`] keeps what the engine needs beyond the spec
//! (ExposedPorts, Volumes, Labels, StopSignal, and Docker's Healthcheck, which the OCI config type
//! does not carry, so it is parsed from the raw config JSON). [`resolve_user`] turns `user[:group]`
//! into ids by reading the container's /etc/passwd and /etc/group *inside* its rootfs.
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec, User};
use serde::Deserialize;

/// The PATH docker gives containers whose image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors deriving a runtime spec.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither the image nor the run options give a command.
    #[error("no command specified: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    /// The user cannot be resolved.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    /// The group cannot be resolved.
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    /// The raw config is not JSON of the expected shape.
    #[error("image config JSON is invalid")]
    Json(#[source] serde_json::Error),
    /// An env entry is malformed.
    #[error("invalid environment entry {0:?}")]
    BadEnv(String),
    /// Building the spec failed.
    #[error("building the runtime spec")]
    Spec(#[source] oci_spec::OciSpecError),
    /// Reading a file inside the rootfs failed.
    #[error("reading {path} inside the container rootfs")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `docker run` can override.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--entrypoint` (an empty vec clears the image's entrypoint). Overriding it drops the
    /// image's Cmd, as docker does.
    pub entrypoint: Option<Vec<String>>,
    /// Command arguments after the image name.
    pub cmd: Option<Vec<String>>,
    /// `-e KEY=VALUE` (a bare `KEY` is ignored here: the CLI resolves it from its environment).
    pub env: Vec<String>,
    /// `-w`.
    pub working_dir: Option<String>,
    /// `-u user[:group]`.
    pub user: Option<String>,
    /// `--group-add` (numeric).
    pub group_add: Vec<u32>,
    /// `-t`.
    pub tty: bool,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// The container rootfs, to resolve user names against its /etc/passwd and /etc/group.
    pub rootfs: Option<PathBuf>,
}

/// Docker's HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Zero means the default (30 s).
    pub interval: Duration,
    /// Zero means the default (30 s).
    pub timeout: Duration,
    /// Zero means none.
    pub start_period: Duration,
    /// Zero means the default (5 s).
    pub start_interval: Duration,
    /// Zero means the default (3).
    pub retries: u32,
}

impl Healthcheck {
    /// Whether the check is disabled (`HEALTHCHECK NONE`).
    pub fn is_disabled(&self) -> bool {
        self.test.first().map(String::as_str) == Some("NONE")
    }
}

/// Image settings the engine needs that are not part of the runtime spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// `"80/tcp"` style keys.
    pub exposed_ports: Vec<String>,
    /// Anonymous volume paths.
    pub volumes: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
    /// e.g. `SIGTERM` (None: the engine's default).
    pub stop_signal: Option<String>,
    /// Docker's healthcheck.
    pub healthcheck: Option<Healthcheck>,
    /// Docker's `Shell` (for shell-form RUN/HEALTHCHECK).
    pub shell: Vec<String>,
    /// `OnBuild` triggers (kept for `inspect`).
    pub on_build: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawHealth {
    #[serde(default)]
    test: Option<Vec<String>>,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    start_period: Option<u64>,
    #[serde(default)]
    start_interval: Option<u64>,
    #[serde(default)]
    retries: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawContainerConfig {
    #[serde(default)]
    exposed_ports: Option<HashMap<String, serde_json::Value>>,
    #[serde(default)]
    volumes: Option<HashMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default)]
    healthcheck: Option<RawHealth>,
    #[serde(default)]
    shell: Option<Vec<String>>,
    #[serde(default)]
    on_build: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    config: Option<RawContainerConfig>,
}

impl ImageDefaults {
    /// Parse from the raw image config JSON (the blob whose digest is the image id).
    pub fn from_config_json(bytes: &[u8]) -> Result<ImageDefaults, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(ConfigError::Json)?;
        let c = raw.config.unwrap_or_default();
        let mut exposed: Vec<String> = c.exposed_ports.unwrap_or_default().into_keys().collect();
        exposed.sort();
        let mut volumes: Vec<String> = c.volumes.unwrap_or_default().into_keys().collect();
        volumes.sort();
        let ns = |v: Option<u64>| Duration::from_nanos(v.unwrap_or(0));
        let healthcheck = c.healthcheck.and_then(|h| {
            let test = h.test.unwrap_or_default();
            (!test.is_empty()).then(|| Healthcheck {
                test,
                interval: ns(h.interval),
                timeout: ns(h.timeout),
                start_period: ns(h.start_period),
                start_interval: ns(h.start_interval),
                retries: h.retries.unwrap_or(0),
            })
        });
        Ok(ImageDefaults {
            exposed_ports: exposed,
            volumes,
            labels: c.labels.unwrap_or_default(),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
            healthcheck,
            shell: c.shell.unwrap_or_default(),
            on_build: c.on_build.unwrap_or_default(),
        })
    }
}

/// Docker's default capability set for containers.
pub fn default_capabilities() -> Vec<Capability> {
    vec![
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ]
}

/// Merge env lists: later entries override earlier ones with the same key, order of first
/// appearance kept.
pub fn merge_env(base: &[String], overrides: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(overrides) {
        let Some((k, _)) = e.split_once('=') else {
            if e.is_empty() {
                return Err(ConfigError::BadEnv(e.clone()));
            }
            continue;
        };
        if k.is_empty() {
            return Err(ConfigError::BadEnv(e.clone()));
        }
        match out
            .iter_mut()
            .find(|x| x.split_once('=').map(|(xk, _)| xk) == Some(k))
        {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    Ok(out)
}

/// Build the runtime spec for a container of `config` with `overrides`.
pub fn runtime_spec_from_image(
    config: &ImageConfiguration,
    overrides: &RunOptions,
) -> Result<Spec, ConfigError> {
    let c = config.config().clone().unwrap_or_default();
    let (entrypoint, cmd) = match &overrides.entrypoint {
        Some(ep) => (ep.clone(), overrides.cmd.clone().unwrap_or_default()),
        None => (
            c.entrypoint().clone().unwrap_or_default(),
            overrides
                .cmd
                .clone()
                .or_else(|| c.cmd().clone())
                .unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    let image_env = c.env().clone().unwrap_or_default();
    let mut env = if image_env.iter().any(|e| e.starts_with("PATH=")) {
        Vec::new()
    } else {
        vec![DEFAULT_PATH.to_owned()]
    };
    env = merge_env(&env, &image_env)?;
    if overrides.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_owned());
    }
    if let Some(h) = &overrides.hostname {
        env = merge_env(&env, &[format!("HOSTNAME={h}")])?;
    }
    env = merge_env(&env, &overrides.env)?;

    let cwd = overrides
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| c.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_owned());

    let user_spec = overrides
        .user
        .clone()
        .or_else(|| c.user().clone())
        .unwrap_or_default();
    let (uid, gid, mut groups) = resolve_user(&user_spec, overrides.rootfs.as_deref())?;
    groups.extend(overrides.group_add.iter().copied());
    groups.sort_unstable();
    groups.dedup();

    let caps: oci_spec::runtime::Capabilities = default_capabilities().into_iter().collect();
    let capabilities = LinuxCapabilities::default();
    let mut capabilities = capabilities;
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(Some(Default::default()));
    capabilities.set_ambient(Some(Default::default()));

    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids((!groups.is_empty()).then_some(groups));

    let mut process = Process::default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    process.set_user(user);
    process.set_terminal(Some(overrides.tty));
    process.set_capabilities(Some(capabilities));
    process.set_no_new_privileges(Some(false));

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_hostname(
        overrides
            .hostname
            .clone()
            .or_else(|| Some(String::new()))
            .filter(|h| !h.is_empty()),
    );
    let mut annotations = HashMap::new();
    if let Some(sig) = c.stop_signal() {
        annotations.insert(
            "org.opencontainers.image.stopSignal".to_owned(),
            sig.clone(),
        );
    }
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Resolve `user[:group]` (names or ids) to (uid, gid, supplementary gids), reading
/// `/etc/passwd` and `/etc/group` inside `rootfs` when names need it. An empty user is root.
pub fn resolve_user(
    spec: &str,
    rootfs: Option<&Path>,
) -> Result<(u32, u32, Vec<u32>), ConfigError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = rootfs
        .map(|r| read_in_root(r, "etc/passwd"))
        .transpose()?
        .flatten()
        .unwrap_or_default();
    let groupf = rootfs
        .map(|r| read_in_root(r, "etc/group"))
        .transpose()?
        .flatten()
        .unwrap_or_default();
    let pw: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let gr: Vec<Vec<&str>> = groupf
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();

    let (uid, name, mut gid) = if user.is_empty() {
        (0, Some("root".to_owned()), 0)
    } else if let Ok(uid) = user.parse::<u32>() {
        let entry = pw.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid));
        (
            uid,
            entry.map(|f| f[0].to_owned()),
            entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
        )
    } else {
        let f = pw
            .iter()
            .find(|f| f[0] == user)
            .ok_or_else(|| ConfigError::UnknownUser {
                user: user.to_owned(),
            })?;
        let uid = f[2].parse().map_err(|_| ConfigError::UnknownUser {
            user: user.to_owned(),
        })?;
        (uid, Some(user.to_owned()), f[3].parse().unwrap_or(0))
    };
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| ConfigError::UnknownGroup {
                    group: g.to_owned(),
                })?,
        };
    }
    // Supplementary groups listing the user by name (only when no group was forced, like docker).
    let mut extra = Vec::new();
    if group.is_none() {
        if let Some(n) = &name {
            for f in &gr {
                if f.len() >= 4 && f[3].split(',').any(|m| m == n) {
                    if let Ok(g) = f[2].parse::<u32>() {
                        if g != gid {
                            extra.push(g);
                        }
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// Read a small file inside `root`, resolving symlinks as if `root` were `/`. Missing is `None`.
fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, ConfigError> {
    let err = |source| ConfigError::Rootfs {
        path: root.join(rel),
        source,
    };
    let dir = nix::fcntl::open(
        root,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(dir.as_fd(), rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .map_err(err)?;
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> ImageConfiguration {
        serde_json::from_str(json).expect("config")
    }

    const BASE: &str = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
        "config":{"Entrypoint":["/ep"],"Cmd":["a","b"],"Env":["FOO=1","PATH=/bin"],"WorkingDir":"/srv","User":"7:8","StopSignal":"SIGQUIT",
        "ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},"Labels":{"k":"v"},
        "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":2}}}"#;

    #[test]
    fn image_values_flow_into_the_spec() {
        let spec = runtime_spec_from_image(&cfg(BASE), &RunOptions::default()).expect("spec");
        let p = spec.process().as_ref().expect("process");
        assert_eq!(p.args().as_ref().expect("args"), &["/ep", "a", "b"]);
        assert_eq!(p.env().as_ref().expect("env"), &["FOO=1", "PATH=/bin"]);
        assert_eq!(p.cwd(), Path::new("/srv"));
        assert_eq!((p.user().uid(), p.user().gid()), (7, 8));
        assert_eq!(
            spec.annotations()
                .as_ref()
                .expect("ann")
                .get("org.opencontainers.image.stopSignal")
                .map(String::as_str),
            Some("SIGQUIT")
        );
        let caps = p
            .capabilities()
            .as_ref()
            .expect("caps")
            .bounding()
            .as_ref()
            .expect("b")
            .len();
        assert_eq!(caps, 14);
    }

    #[test]
    fn overrides_win_and_entrypoint_override_drops_cmd() {
        let o = RunOptions {
            entrypoint: Some(vec!["/bin/sh".into()]),
            env: vec!["FOO=2".into(), "NEW=x".into()],
            working_dir: Some("/w".into()),
            user: Some("0".into()),
            tty: true,
            ..Default::default()
        };
        let spec = runtime_spec_from_image(&cfg(BASE), &o).expect("spec");
        let p = spec.process().as_ref().expect("process");
        assert_eq!(p.args().as_ref().expect("args"), &["/bin/sh"]);
        assert_eq!(
            p.env().as_ref().expect("env"),
            &["FOO=2", "PATH=/bin", "TERM=xterm", "NEW=x"]
        );
        assert_eq!(p.cwd(), Path::new("/w"));
        assert_eq!(p.user().uid(), 0);
        assert_eq!(p.terminal(), Some(true));
        let o = RunOptions {
            cmd: Some(vec!["c".into()]),
            ..Default::default()
        };
        let spec = runtime_spec_from_image(&cfg(BASE), &o).expect("spec");
        assert_eq!(
            spec.process()
                .as_ref()
                .expect("p")
                .args()
                .as_ref()
                .expect("a"),
            &["/ep", "c"]
        );
    }

    #[test]
    fn no_command_is_an_error_and_default_path_is_added() {
        let c = cfg(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#,
        );
        assert!(matches!(
            runtime_spec_from_image(&c, &RunOptions::default()),
            Err(ConfigError::NoCommand)
        ));
        let o = RunOptions {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let spec = runtime_spec_from_image(&c, &o).expect("spec");
        assert_eq!(
            spec.process()
                .as_ref()
                .expect("p")
                .env()
                .as_ref()
                .expect("e"),
            &[DEFAULT_PATH]
        );
    }

    #[test]
    fn defaults_include_healthcheck() {
        let d = ImageDefaults::from_config_json(BASE.as_bytes()).expect("defaults");
        assert_eq!(d.exposed_ports, vec!["80/tcp"]);
        assert_eq!(d.volumes, vec!["/data"]);
        assert_eq!(d.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(d.stop_signal.as_deref(), Some("SIGQUIT"));
        let h = d.healthcheck.expect("hc");
        assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(h.interval, Duration::from_secs(1));
        assert_eq!(h.retries, 2);
        assert!(!h.is_disabled());
    }

    #[test]
    fn users_resolve_inside_the_rootfs_only() {
        let root = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(root.path().join("etc")).expect("etc");
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/sh\n",
        )
        .expect("w");
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:www\n",
        )
        .expect("w");
        assert_eq!(
            resolve_user("www", Some(root.path())).expect("www"),
            (33, 33, vec![50])
        );
        assert_eq!(
            resolve_user("www:staff", Some(root.path())).expect("www:staff"),
            (33, 50, vec![])
        );
        assert_eq!(
            resolve_user("1000:1000", None).expect("numeric"),
            (1000, 1000, vec![])
        );
        assert_eq!(resolve_user("", None).expect("root"), (0, 0, vec![]));
        assert!(matches!(
            resolve_user("nobody", Some(root.path())),
            Err(ConfigError::UnknownUser { .. })
        ));
        // /etc/group as an absolute symlink out of the rootfs resolves inside it (and is missing).
        std::fs::write(outside.path().join("group"), "evil:x:4242:www\n").expect("w");
        std::fs::remove_file(root.path().join("etc/group")).expect("rm");
        std::os::unix::fs::symlink(outside.path().join("group"), root.path().join("etc/group"))
            .expect("ln");
        assert_eq!(
            resolve_user("www", Some(root.path())).expect("www"),
            (33, 33, vec![])
        );
    }
}
