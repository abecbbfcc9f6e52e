//! Containers: records under `<data-root>/containers/<id>/` (`config.v2.json`, written
//! crash-safely, the bundle's `config.json`, the json-file log, /etc files), the lifecycle
//! (create, start through berth-shim, stop, kill, pause, restart, remove, rename), waiting
//! with docker's conditions, attach hand-off to the shim's socket, exec, and re-adoption of
//! running containers when berthd starts again.
//!
//! Per-container runtime state lives under `<exec-root>`: the shim's state dir
//! `shim/<id>/` (shim.pid, exit.json, sockets) and berth-runtime's root `runtime/`.
//! In memory each container is an [`Entry`]: its record behind a mutex and a watch channel of
//! its [`Phase`], which waiters and the exit monitor use.

pub mod archive;
pub mod commit;
pub mod debug;
pub mod exec;
pub mod health;
pub mod list_filter;
pub mod logs;
pub mod names;
pub mod network;
pub mod seccomp;
pub mod spec;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::container::{ContainerConfig, HostConfig, MountPoint};
use berth_api::time::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::events::{Event, EventBus};
use crate::images::Images;
use crate::volumes::VolumeStore;
use crate::ErrorKind;
use spec::ResolvedMount;

/// Docker's zero time, for timestamps never set.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    /// Something else the request names is missing (a network).
    #[error("{0}")]
    NotFoundOther(String),
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("No such image: {0}")]
    NoImage(String),
    #[error(transparent)]
    Image(Box<crate::images::ImageError>),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    #[error("container {id}: {op}")]
    Io {
        id: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: state")]
    State {
        id: String,
        #[source]
        source: crate::state::StateError,
    },
    #[error("container {id}: root filesystem")]
    Snapshot {
        id: String,
        #[source]
        source: berth_image::snapshot::SnapshotError,
    },
    #[error("failed to start container {id}: {message}")]
    Start { id: String, message: String },
    #[error("container {id}: {op}: {message}")]
    Runtime {
        id: String,
        op: &'static str,
        message: String,
    },
}

impl From<crate::images::ImageError> for ContainerError {
    fn from(e: crate::images::ImageError) -> Self {
        ContainerError::Image(Box::new(e))
    }
}

impl ContainerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContainerError::NotFound(_)
            | ContainerError::NotFoundOther(_)
            | ContainerError::NoImage(_) => ErrorKind::NotFound,
            ContainerError::NameInUse { .. } | ContainerError::Conflict(_) => ErrorKind::Conflict,
            ContainerError::BadName(_) | ContainerError::Invalid(_) => ErrorKind::InvalidArgument,
            ContainerError::Spec(spec::SpecError::Invalid(_)) => ErrorKind::InvalidArgument,
            ContainerError::Spec(spec::SpecError::Image(_)) => ErrorKind::InvalidArgument,
            ContainerError::Image(e) => e.kind(),
            ContainerError::Volume(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

/// A container's status, named as docker names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// The process exists (running or paused).
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// The `State` part of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Healthcheck state, when the container has a check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<health::Health>,
}

/// One container, as stored in `config.v2.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// With docker's leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    pub mounts: Vec<MountPoint>,
    /// Named volumes this container holds references on.
    pub volumes: Vec<String>,
    /// Anonymous volumes created for it (removed with `rm -v`).
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    pub rootfs: PathBuf,
    pub log_path: PathBuf,
    pub restart_count: i64,
    /// Set by stop/kill from the user: no restart policy applies to that exit.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Networks it joins, by network name (addresses are given at start).
    #[serde(default)]
    pub networks: BTreeMap<String, network::EndpointConfig>,
}

/// What waiters watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phase {
    /// Number of exits seen since berthd started.
    pub exits: u64,
    pub running: bool,
    pub removed: bool,
    pub exit_code: i64,
}

/// docker's `wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<Self, ContainerError> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(ContainerError::Invalid(format!(
                "invalid condition: {other:?}"
            ))),
        }
    }
}

/// An attach request waiting for the container's shim to exist; the start hands it an ack
/// sender it fires once connected.
type AttachWaiter = oneshot::Sender<oneshot::Sender<()>>;

/// One container in memory.
pub struct Entry {
    rec: Mutex<Record>,
    phase: watch::Sender<Phase>,
    attach_waiters: Mutex<Vec<AttachWaiter>>,
    /// Serialises lifecycle operations (start/stop/remove) on one container.
    op: tokio::sync::Mutex<()>,
}

impl Entry {
    pub fn record(&self) -> Record {
        self.rec.lock().expect("record lock poisoned").clone()
    }
}

/// Paths and binaries the containers need.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub runtime: PathBuf,
    pub shim: PathBuf,
}

/// The container store.
#[derive(Clone)]
pub struct Containers {
    inner: Arc<Inner>,
}

struct Inner {
    paths: Paths,
    root: PathBuf,
    images: Images,
    volumes: Arc<VolumeStore>,
    events: EventBus,
    map: Mutex<HashMap<String, Arc<Entry>>>,
    execs: Mutex<HashMap<String, Arc<exec::Exec>>>,
    networks: Arc<crate::networks::Networks>,
}

/// What `create` needs.
pub struct CreateRequest {
    pub name: Option<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// `NetworkingConfig` (`EndpointsConfig` per network).
    pub networking_config: Option<serde_json::Value>,
}

/// Which containers to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub filters: berth_api::Filters,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = Timestamp::now().unix_nanos() as u64 ^ u64::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t.rotate_left(i as u32 * 7) & 0xff) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> String {
    Timestamp::now().rfc3339_nano()
}

impl Containers {
    /// Load every record under `<data-root>/containers`.
    pub fn open(
        paths: Paths,
        images: Images,
        volumes: Arc<VolumeStore>,
        events: EventBus,
        networks: Arc<crate::networks::Networks>,
    ) -> Result<Self, ContainerError> {
        let root = paths.data_root.join("containers");
        let io = |op: &str| {
            let op = op.to_string();
            move |source| ContainerError::Io {
                id: String::new(),
                op,
                source,
            }
        };
        std::fs::create_dir_all(&root).map_err(io("create containers dir"))?;
        std::fs::create_dir_all(paths.exec_root.join("shim")).map_err(io("create shim dir"))?;
        std::fs::create_dir_all(paths.exec_root.join("runtime"))
            .map_err(io("create runtime dir"))?;
        let mut map = HashMap::new();
        for e in std::fs::read_dir(&root).map_err(io("list containers"))? {
            let e = e.map_err(io("list containers"))?;
            let p = e.path().join("config.v2.json");
            match crate::state::read_json::<Record>(&p) {
                Ok(Some(rec)) => {
                    let (tx, _) = watch::channel(Phase {
                        running: rec.state.status.is_alive(),
                        exit_code: rec.state.exit_code,
                        ..Phase::default()
                    });
                    map.insert(
                        rec.id.clone(),
                        Arc::new(Entry {
                            rec: Mutex::new(rec),
                            phase: tx,
                            attach_waiters: Mutex::new(Vec::new()),
                            op: tokio::sync::Mutex::new(()),
                        }),
                    );
                }
                Ok(None) => {
                    // a directory without its record: a create that crashed half-way
                    tracing::warn!(dir = %e.path().display(), "removing container dir without record");
                    let id = e.file_name().to_string_lossy().into_owned();
                    let _ = images.snapshots().remove_container(&id);
                    let _ = std::fs::remove_dir_all(e.path());
                }
                Err(err) => {
                    tracing::warn!(path = %p.display(), error = %err, "unreadable container record")
                }
            }
        }
        // writable layers whose container record is gone (a removal cut short)
        if let Ok(layers) = images.snapshots().containers() {
            for id in layers.iter().filter(|id| !map.contains_key(*id)) {
                tracing::info!(container = %id, "removing root filesystem without a container");
                if let Err(e) = images.snapshots().remove_container(id) {
                    tracing::warn!(container = %id, error = %e, "removing orphan root filesystem");
                }
            }
        }
        // volume references of existing containers
        for entry in map.values() {
            let rec = entry.record();
            for v in &rec.volumes {
                if let Err(e) = volumes.acquire(v, &rec.id) {
                    tracing::warn!(volume = %v, container = %rec.id, error = %e, "re-acquire volume");
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                paths,
                root,
                images,
                volumes,
                events,
                map: Mutex::new(map),
                execs: Mutex::new(HashMap::new()),
                networks,
            }),
        })
    }

    /// Re-adopt containers that were running when berthd stopped: a live shim keeps them
    /// running (and is watched again), an exit record gives the exit code. Must run inside
    /// the tokio runtime.
    pub fn adopt(&self) {
        let entries: Vec<Arc<Entry>> = self.entries();
        for entry in entries {
            let rec = entry.record();
            if !rec.state.status.is_alive() {
                continue;
            }
            let dir = self.shim_dir(&rec.id);
            match berth_shim::client::status(&dir) {
                Ok(berth_shim::client::ShimStatus::Running { .. }) => {
                    tracing::info!(container = %rec.id, "re-adopted running container");
                    self.spawn_monitor(entry.clone());
                    self.spawn_health(entry.clone());
                }
                Ok(berth_shim::client::ShimStatus::Exited(r)) => {
                    self.record_exit(&entry, Some(r));
                }
                Ok(berth_shim::client::ShimStatus::Lost) | Err(_) => {
                    self.record_exit(&entry, None);
                }
            }
        }
        self.release_dead_endpoints();
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.inner
            .map
            .lock()
            .expect("container map lock poisoned")
            .values()
            .cloned()
            .collect()
    }

    pub fn images(&self) -> &Images {
        &self.inner.images
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.inner.root.join(id)
    }

    /// The shim's state dir.
    pub fn shim_dir(&self, id: &str) -> PathBuf {
        self.inner.paths.exec_root.join("shim").join(id)
    }

    fn runtime_root(&self) -> PathBuf {
        self.inner.paths.exec_root.join("runtime")
    }

    /// Find by full id, name (with or without `/`) or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Arc<Entry>, ContainerError> {
        let map = self.inner.map.lock().expect("container map lock poisoned");
        if let Some(e) = map.get(key) {
            return Ok(e.clone());
        }
        let name = format!("/{}", key.trim_start_matches('/'));
        if let Some(e) = map
            .values()
            .find(|e| e.rec.lock().expect("record lock poisoned").name == name)
        {
            return Ok(e.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&Arc<Entry>> = map
                .iter()
                .filter(|(id, _)| id.starts_with(key))
                .map(|(_, e)| e)
                .collect();
            if hits.len() == 1 {
                return Ok(hits[0].clone());
            }
            if hits.len() > 1 {
                return Err(ContainerError::Invalid(format!(
                    "multiple IDs found with provided prefix: {key}"
                )));
            }
        }
        Err(ContainerError::NotFound(key.to_string()))
    }

    /// Which container uses image `image_id`, if any (for `rmi`).
    pub fn using_image(&self, image_id: &str) -> Option<String> {
        self.entries().into_iter().find_map(|e| {
            let r = e.rec.lock().expect("record lock poisoned");
            (r.image_id == image_id).then(|| r.id.chars().take(12).collect())
        })
    }

    /// Counts for `/info`: (total, running, paused, stopped).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let mut c = (0, 0, 0, 0);
        for e in self.entries() {
            c.0 += 1;
            match e.record().state.status {
                Status::Running => c.1 += 1,
                Status::Paused => c.2 += 1,
                _ => c.3 += 1,
            }
        }
        c
    }

    pub(crate) fn save_record(&self, rec: &Record) -> Result<(), ContainerError> {
        self.save(rec)
    }

    fn save(&self, rec: &Record) -> Result<(), ContainerError> {
        crate::state::write_json(&self.dir(&rec.id).join("config.v2.json"), rec).map_err(|source| {
            ContainerError::State {
                id: rec.id.clone(),
                source,
            }
        })
    }

    fn publish(&self, action: &str, rec: &Record, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "name".to_string(),
            rec.name.trim_start_matches('/').to_string(),
        );
        attrs.insert("image".to_string(), rec.image.clone());
        for (k, v) in rec.config.labels.iter().flatten() {
            attrs.insert(k.clone(), v.clone());
        }
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.inner
            .events
            .publish(Event::now("container", action, &rec.id, attrs));
    }

    fn name_taken(&self, name: &str) -> Option<String> {
        self.entries().into_iter().find_map(|e| {
            let r = e.rec.lock().expect("record lock poisoned");
            (r.name == name).then(|| r.id.clone())
        })
    }

    /// `POST /containers/create`.
    pub fn create(&self, req: CreateRequest) -> Result<(String, Vec<String>), ContainerError> {
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !names::valid(&n) {
                    return Err(ContainerError::BadName(n));
                }
                format!("/{}", n.trim_start_matches('/'))
            }
            None => {
                let mut n = String::new();
                for retry in 0..10 {
                    let seed = u64::from_str_radix(&random_hex(8), 16).unwrap_or(0);
                    n = format!("/{}", names::random(seed, retry));
                    if self.name_taken(&n).is_none() {
                        break;
                    }
                }
                n
            }
        };
        if let Some(id) = self.name_taken(&name) {
            return Err(ContainerError::NameInUse {
                name: name.trim_start_matches('/').to_string(),
                id,
            });
        }
        spec::check_network_mode(&req.host_config.network_mode)?;
        let image = req.config.image.clone();
        if image.is_empty() {
            return Err(ContainerError::Invalid("config.Image is required".into()));
        }
        let img = match self.inner.images.resolve(&image) {
            Ok(i) => i,
            Err(crate::images::ImageError::NotFound(_)) => {
                let shown = match self.inner.images.parse(&image) {
                    Ok(r) if r.digest().is_none() && r.tag().is_some() && !image.contains(':') => {
                        format!("{image}:latest")
                    }
                    _ => image.clone(),
                };
                return Err(ContainerError::NoImage(shown));
            }
            Err(e) => return Err(e.into()),
        };
        let id = random_hex(32);
        let dir = self.dir(&id);
        std::fs::create_dir_all(&dir).map_err(|source| ContainerError::Io {
            id: id.clone(),
            op: format!("create {}", dir.display()),
            source,
        })?;
        let mut acquired: Vec<String> = Vec::new();
        let mut anonymous: Vec<String> = Vec::new();
        let result = self.create_inner(
            &id,
            &name,
            &img,
            &req.config,
            &req.host_config,
            req.networking_config.as_ref(),
            &mut acquired,
            &mut anonymous,
        );
        match result {
            Ok((rec, warnings)) => {
                let entry = Arc::new(Entry {
                    rec: Mutex::new(rec.clone()),
                    phase: watch::channel(Phase::default()).0,
                    attach_waiters: Mutex::new(Vec::new()),
                    op: tokio::sync::Mutex::new(()),
                });
                self.inner
                    .map
                    .lock()
                    .expect("container map lock poisoned")
                    .insert(id.clone(), entry);
                self.publish("create", &rec, &[]);
                Ok((id, warnings))
            }
            Err(e) => {
                for v in &acquired {
                    let _ = self.inner.volumes.release(v, &id);
                }
                for v in &anonymous {
                    let _ = self.inner.volumes.remove(v, true);
                }
                let _ = self.inner.images.snapshots().remove_container(&id);
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_inner(
        &self,
        id: &str,
        name: &str,
        img: &berth_image::images::ImageRecord,
        config: &ContainerConfig,
        host: &HostConfig,
        networking: Option<&serde_json::Value>,
        acquired: &mut Vec<String>,
        anonymous: &mut Vec<String>,
    ) -> Result<(Record, Vec<String>), ContainerError> {
        let net_plan = self.plan_network(id, config, host, networking)?;
        // --network container:X takes X's host and domain names, like docker
        let shared_names;
        let config = match &net_plan.names {
            Some((hostname, domainname)) => {
                shared_names = ContainerConfig {
                    hostname: hostname.clone(),
                    domainname: domainname.clone(),
                    ..config.clone()
                };
                &shared_names
            }
            None => config,
        };
        let dir = self.dir(id);
        let io = |op: String| {
            let id = id.to_string();
            move |source| ContainerError::Io { id, op, source }
        };
        let raw = self.inner.images.config_json(img)?;
        let image_config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&raw)
            .map_err(|e| ContainerError::Invalid(format!("image config of {}: {e}", img.id)))?;
        let defaults = berth_image::config::ImageDefaults::from_config_json(&raw)
            .map_err(spec::SpecError::from)?;

        // mounts: resolve before anything is mounted, so bad input leaves nothing behind
        let mut mounts: Vec<ResolvedMount> = Vec::new();
        let mut points: Vec<MountPoint> = Vec::new();
        let want_volume = |name: Option<&str>,
                           dest: &str,
                           ro: bool,
                           acquired: &mut Vec<String>,
                           anonymous: &mut Vec<String>,
                           mounts: &mut Vec<ResolvedMount>,
                           points: &mut Vec<MountPoint>|
         -> Result<(), ContainerError> {
            let vname = match name {
                Some(n) => {
                    if self.inner.volumes.get(n).is_err() {
                        self.inner.volumes.create(crate::volumes::CreateRequest {
                            name: Some(n.to_string()),
                            ..Default::default()
                        })?;
                    }
                    n.to_string()
                }
                None => {
                    let v = self
                        .inner
                        .volumes
                        .create(crate::volumes::CreateRequest::default())?;
                    anonymous.push(v.name.clone());
                    v.name
                }
            };
            let path = self.inner.volumes.acquire(&vname, id)?;
            acquired.push(vname.clone());
            mounts.push(ResolvedMount {
                kind: "volume".into(),
                source: path.clone(),
                destination: dest.to_string(),
                read_only: ro,
                options: vec![],
                name: Some(vname.clone()),
            });
            points.push(MountPoint {
                kind: "volume".into(),
                name: Some(vname),
                source: path.display().to_string(),
                destination: dest.to_string(),
                driver: Some("local".into()),
                mode: if ro { "ro".into() } else { "z".into() },
                rw: !ro,
                propagation: String::new(),
            });
            Ok(())
        };
        let mut binds: Vec<(String, String, bool)> = Vec::new();
        for b in host.binds.iter().flatten() {
            let parts: Vec<&str> = b.split(':').collect();
            let (src, dst, mode) = match parts.as_slice() {
                [s, d] => (*s, *d, ""),
                [s, d, m] => (*s, *d, *m),
                _ => {
                    return Err(ContainerError::Invalid(format!(
                        "invalid volume specification: '{b}'"
                    )))
                }
            };
            let ro = mode.split(',').any(|m| m == "ro");
            if !dst.starts_with('/') {
                return Err(ContainerError::Invalid(format!(
                    "invalid volume specification: '{b}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
                )));
            }
            binds.push((src.to_string(), dst.to_string(), ro));
        }
        for (src, dst, ro) in binds {
            if src.starts_with('/') {
                if !Path::new(&src).exists() {
                    // docker creates a missing bind source for -v; refuse only for --mount
                    std::fs::create_dir_all(&src)
                        .map_err(io(format!("create bind source {src}")))?;
                }
                mounts.push(ResolvedMount {
                    kind: "bind".into(),
                    source: PathBuf::from(&src),
                    destination: dst.clone(),
                    read_only: ro,
                    options: vec![],
                    name: None,
                });
                points.push(MountPoint {
                    kind: "bind".into(),
                    name: None,
                    source: src,
                    destination: dst,
                    driver: None,
                    mode: if ro { "ro".into() } else { String::new() },
                    rw: !ro,
                    propagation: "rprivate".into(),
                });
            } else {
                want_volume(
                    Some(&src),
                    &dst,
                    ro,
                    acquired,
                    anonymous,
                    &mut mounts,
                    &mut points,
                )?;
            }
        }
        for m in host.mounts.iter().flatten() {
            match m.kind.as_str() {
                "bind" => {
                    if !Path::new(&m.source).is_absolute() || !Path::new(&m.source).exists() {
                        return Err(ContainerError::Invalid(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source
                        )));
                    }
                    mounts.push(ResolvedMount {
                        kind: "bind".into(),
                        source: PathBuf::from(&m.source),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        options: vec![],
                        name: None,
                    });
                    points.push(MountPoint {
                        kind: "bind".into(),
                        name: None,
                        source: m.source.clone(),
                        destination: m.target.clone(),
                        driver: None,
                        mode: String::new(),
                        rw: !m.read_only,
                        propagation: "rprivate".into(),
                    });
                }
                "volume" => {
                    let n = Some(m.source.as_str()).filter(|s| !s.is_empty());
                    want_volume(
                        n,
                        &m.target,
                        m.read_only,
                        acquired,
                        anonymous,
                        &mut mounts,
                        &mut points,
                    )?;
                }
                "tmpfs" => {
                    let mut options = Vec::new();
                    if let Some(t) = &m.tmpfs_options {
                        if let Some(s) = t.size_bytes.filter(|s| *s > 0) {
                            options.push(format!("size={s}"));
                        }
                        if let Some(md) = t.mode {
                            options.push(format!("mode={md:o}"));
                        }
                    }
                    mounts.push(ResolvedMount {
                        kind: "tmpfs".into(),
                        source: PathBuf::new(),
                        destination: m.target.clone(),
                        read_only: m.read_only,
                        options,
                        name: None,
                    });
                    points.push(MountPoint {
                        kind: "tmpfs".into(),
                        destination: m.target.clone(),
                        rw: !m.read_only,
                        ..MountPoint::default()
                    });
                }
                other => {
                    return Err(ContainerError::Invalid(format!(
                        "invalid mount config: mount type {other:?} is not supported"
                    )))
                }
            }
        }
        for spec in host.volumes_from.iter().flatten() {
            let (src, mode) = match spec.rsplit_once(':') {
                Some((s, m)) if m == "ro" || m == "rw" => (s, Some(m)),
                _ => (spec.as_str(), None),
            };
            let other = self.get(src)?.record();
            for mp in &other.mounts {
                if mounts.iter().any(|m| m.destination == mp.destination) {
                    continue;
                }
                let ro = match mode {
                    Some(m) => m == "ro",
                    None => !mp.rw,
                };
                match (mp.kind.as_str(), &mp.name) {
                    ("volume", Some(n)) => want_volume(
                        Some(n),
                        &mp.destination,
                        ro,
                        acquired,
                        anonymous,
                        &mut mounts,
                        &mut points,
                    )?,
                    ("bind", _) => {
                        mounts.push(ResolvedMount {
                            kind: "bind".into(),
                            source: PathBuf::from(&mp.source),
                            destination: mp.destination.clone(),
                            read_only: ro,
                            options: vec![],
                            name: None,
                        });
                        let mut p = mp.clone();
                        p.rw = !ro;
                        points.push(p);
                    }
                    _ => {}
                }
            }
        }
        for (dst, opts) in host.tmpfs.iter().flatten() {
            mounts.push(ResolvedMount {
                kind: "tmpfs".into(),
                source: PathBuf::new(),
                destination: dst.clone(),
                read_only: false,
                options: opts
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(String::from)
                    .collect(),
                name: None,
            });
        }
        // anonymous volumes from the image's VOLUME
        let mut image_volumes: Vec<String> = defaults.volumes.clone();
        image_volumes.extend(config.volumes.iter().flatten().map(|(k, _)| k.clone()));
        image_volumes.sort();
        image_volumes.dedup();
        for v in image_volumes {
            if mounts.iter().any(|m| m.destination == v) {
                continue;
            }
            want_volume(
                None,
                &v,
                false,
                acquired,
                anonymous,
                &mut mounts,
                &mut points,
            )?;
        }

        // /etc files
        let hostname = if config.hostname.is_empty() {
            id.chars().take(12).collect::<String>()
        } else {
            config.hostname.clone()
        };
        let hostname_path = dir.join("hostname");
        std::fs::write(&hostname_path, format!("{hostname}\n"))
            .map_err(io("write hostname".into()))?;
        let hosts_path = dir.join("hosts");
        let hosts = if host.network_mode == "host" {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{hostname}\n")
        };
        std::fs::write(&hosts_path, hosts).map_err(io("write hosts".into()))?;
        let resolv_path = dir.join("resolv.conf");
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&resolv_path, resolv).map_err(io("write resolv.conf".into()))?;
        let mut etc_files = [
            (hostname_path, "/etc/hostname"),
            (hosts_path, "/etc/hosts"),
            (resolv_path, "/etc/resolv.conf"),
        ];
        if let Some(shared) = &net_plan.shared_etc {
            // --network container:X shares X's names, like docker
            for (path, dst) in etc_files.iter_mut() {
                *path = shared.join(dst.trim_start_matches("/etc/"));
            }
        }

        let chain = img.chain_ids();
        let rootfs = self
            .inner
            .images
            .snapshots()
            .mount_for_container(id, &chain)
            .map_err(|source| ContainerError::Snapshot {
                id: id.to_string(),
                source,
            })?;
        // like docker: an empty volume mounted where the image has files starts with a copy
        for m in mounts.iter().filter(|m| m.kind == "volume") {
            seed_volume(&rootfs.path, &m.destination, &m.source);
        }
        let init = Path::new("/usr/bin/docker-init");
        let spec_json = spec::build(
            &image_config,
            &spec::SpecInput {
                id,
                config,
                host,
                rootfs: &rootfs.path,
                mounts: &mounts,
                etc_files: &etc_files,
                init: init.exists().then_some(init),
                netns: net_plan.netns.as_deref(),
            },
        )?;
        crate::state::write_json(&dir.join("config.json"), &spec_json).map_err(|source| {
            ContainerError::State {
                id: id.to_string(),
                source,
            }
        })?;
        let args: Vec<String> = spec_json["process"]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut stored_config = config.clone();
        if stored_config.labels.is_none() {
            stored_config.labels = Some(HashMap::new());
        }
        if let Some(l) = stored_config.labels.as_mut() {
            for (k, v) in &defaults.labels {
                l.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if stored_config.stop_signal.is_none() {
            stored_config.stop_signal = defaults.stop_signal.clone();
        }
        // Config.Healthcheck fields left zero take the image's; `NONE` disables
        let image_health = defaults
            .healthcheck
            .as_ref()
            .map(health::from_image)
            .unwrap_or_default();
        let mut hc: health::HealthConfig = stored_config
            .healthcheck
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if hc.test.is_empty() {
            hc.test = image_health.test.clone();
        }
        for (mine, theirs) in [
            (&mut hc.interval, image_health.interval),
            (&mut hc.timeout, image_health.timeout),
            (&mut hc.start_period, image_health.start_period),
            (&mut hc.start_interval, image_health.start_interval),
            (&mut hc.retries, image_health.retries),
        ] {
            if *mine == 0 {
                *mine = theirs;
            }
        }
        stored_config.healthcheck = hc
            .argv()
            .is_some()
            .then(|| serde_json::to_value(&hc).unwrap_or_default());
        if stored_config.hostname.is_empty() {
            stored_config.hostname = hostname;
        }
        if stored_config.env.as_ref().is_none_or(|e| e.is_empty()) {
            stored_config.env = spec_json["process"]["env"].as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            });
        }
        if stored_config.cmd.is_none() {
            stored_config.cmd = image_config.config().as_ref().and_then(|c| c.cmd().clone());
        }
        if stored_config.entrypoint.is_none() {
            stored_config.entrypoint = image_config
                .config()
                .as_ref()
                .and_then(|c| c.entrypoint().clone());
        }
        // Docker's merge: the image's EXPOSE ports join the container's (what -P publishes).
        if let Some(ports) = image_config
            .config()
            .as_ref()
            .and_then(|c| c.exposed_ports().clone())
        {
            let exposed = stored_config.exposed_ports.get_or_insert_with(HashMap::new);
            for p in ports {
                let key = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                exposed.entry(key).or_insert_with(|| serde_json::json!({}));
            }
        }
        let mut host_config = host.clone();
        host_config.network_mode = net_plan.mode.clone();
        if host_config
            .log_config
            .as_ref()
            .is_none_or(|l| l.kind.is_empty())
        {
            host_config.log_config = Some(berth_api::container::LogConfig {
                kind: "json-file".into(),
                config: Some(HashMap::new()),
            });
        }
        let rec = Record {
            id: id.to_string(),
            name: name.to_string(),
            created: now(),
            image: config.image.clone(),
            image_id: img.id.to_string(),
            path: args.first().cloned().unwrap_or_default(),
            args: args.iter().skip(1).cloned().collect(),
            config: stored_config,
            host_config,
            state: State {
                status: Status::Created,
                pid: 0,
                exit_code: 0,
                error: String::new(),
                oom_killed: false,
                started_at: ZERO_TIME.into(),
                finished_at: ZERO_TIME.into(),
                health: None,
            },
            mounts: points,
            volumes: acquired.clone(),
            anonymous_volumes: anonymous.clone(),
            rootfs: rootfs.path,
            log_path: dir.join(format!("{id}-json.log")),
            restart_count: 0,
            stopped_by_user: false,
            networks: net_plan.endpoints,
        };
        self.save(&rec)?;
        Ok((rec, vec![]))
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(&self, key: &str) -> Result<bool, ContainerError> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let rec = entry.record();
        match rec.state.status {
            Status::Running | Status::Paused | Status::Restarting => return Ok(false),
            Status::Removing | Status::Dead => {
                return Err(ContainerError::Conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )))
            }
            Status::Created | Status::Exited => {}
        }
        self.start_locked(&entry).await?;
        Ok(true)
    }

    async fn start_locked(&self, entry: &Arc<Entry>) -> Result<(), ContainerError> {
        let rec = entry.record();
        let id = rec.id.clone();
        self.ensure_rootfs(&rec)?;
        {
            let this = self.clone();
            let r = rec.clone();
            let up = tokio::task::spawn_blocking(move || this.network_up(&r))
                .await
                .map_err(|e| ContainerError::Start {
                    id: id.clone(),
                    message: e.to_string(),
                })
                .and_then(|r| r);
            if let Err(e) = up {
                // waiters see the failed start as an exit, like any other start failure
                self.start_failed(entry, &e.to_string());
                return Err(e);
            }
        }
        let state_dir = self.shim_dir(&id);
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).map_err(|source| ContainerError::Io {
            id: id.clone(),
            op: format!("create {}", state_dir.display()),
            source,
        })?;
        let log = match rec.host_config.log_config.as_ref().map(|l| l.kind.as_str()) {
            Some("none") => berth_shim::client::LogDriver::None,
            _ => {
                let mut rotation = berth_shim::client::Rotation {
                    max_size: None,
                    max_files: 1,
                };
                if let Some(cfg) = rec
                    .host_config
                    .log_config
                    .as_ref()
                    .and_then(|l| l.config.as_ref())
                {
                    if let Some(s) = cfg.get("max-size") {
                        if let Ok(b) = berth_shim::config::parse_size(std::ffi::OsStr::new(s)) {
                            rotation.max_size = Some(b);
                        }
                    }
                    if let Some(n) = cfg.get("max-file").and_then(|n| n.parse().ok()) {
                        rotation.max_files = n;
                    }
                }
                berth_shim::client::LogDriver::JsonFile {
                    path: rec.log_path.clone(),
                    rotation,
                }
            }
        };
        let cfg = berth_shim::client::Config {
            id: id.clone(),
            bundle: self.dir(&id),
            runtime: self.inner.paths.runtime.clone(),
            runtime_root: self.runtime_root(),
            state_dir: state_dir.clone(),
            tty: rec.config.tty,
            stdin: rec.config.open_stdin,
            log,
            runtime_args: vec![],
            no_start: true,
        };
        let shim = self.inner.paths.shim.clone();
        let spawned = tokio::task::spawn_blocking(move || berth_shim::client::spawn(&shim, &cfg))
            .await
            .map_err(|e| ContainerError::Start {
                id: id.clone(),
                message: e.to_string(),
            })?;
        if let Err(e) = spawned {
            entry
                .attach_waiters
                .lock()
                .expect("waiters lock poisoned")
                .clear();
            let message = e.to_string();
            self.start_failed(entry, &message);
            return Err(ContainerError::Start { id, message });
        }
        // hand the created container to waiting attach clients before it runs
        let waiters: Vec<AttachWaiter> =
            std::mem::take(&mut *entry.attach_waiters.lock().expect("waiters lock poisoned"));
        let mut acks = Vec::new();
        for w in waiters {
            let (tx, rx) = oneshot::channel();
            if w.send(tx).is_ok() {
                acks.push(rx);
            }
        }
        for a in acks {
            let _ = tokio::time::timeout(Duration::from_secs(5), a).await;
        }
        let sd = state_dir.clone();
        let started = tokio::task::spawn_blocking(move || berth_shim::client::start(&sd))
            .await
            .map_err(|e| ContainerError::Start {
                id: id.clone(),
                message: e.to_string(),
            })?;
        if let Err(e) = started {
            let message = e.to_string();
            self.start_failed(entry, &message);
            return Err(ContainerError::Start { id, message });
        }
        let pid = self.runtime_pid(&id).unwrap_or(0);
        let rec = self.set_state(entry, |s| {
            s.status = Status::Running;
            s.pid = pid;
            s.exit_code = 0;
            s.error.clear();
            s.oom_killed = false;
            s.started_at = now();
            s.finished_at = ZERO_TIME.into();
        });
        {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            r.stopped_by_user = false;
        }
        entry.phase.send_modify(|p| p.running = true);
        // an attach that registered while the container was being started connects now
        let late: Vec<AttachWaiter> =
            std::mem::take(&mut *entry.attach_waiters.lock().expect("waiters lock poisoned"));
        for w in late {
            let (tx, _rx) = oneshot::channel();
            let _ = w.send(tx);
        }
        self.publish("start", &rec, &[]);
        self.spawn_monitor(entry.clone());
        self.spawn_health(entry.clone());
        Ok(())
    }

    /// After a reboot the container's overlay is no longer mounted: mount it again from the
    /// snapshotter's layout (`containers/<id>/{upper,work,merged}` over the image's layers).
    fn ensure_rootfs(&self, rec: &Record) -> Result<(), ContainerError> {
        use std::os::unix::fs::MetadataExt;
        let snaps = self.inner.images.snapshots();
        if snaps.mode() != berth_image::snapshot::Mode::Overlay {
            return Ok(());
        }
        let merged = &rec.rootfs;
        let (Some(cdir), Ok(m)) = (merged.parent(), std::fs::metadata(merged)) else {
            return Ok(());
        };
        let mounted = std::fs::metadata(cdir).is_ok_and(|p| p.dev() != m.dev());
        if mounted {
            return Ok(());
        }
        let img = self.inner.images.resolve(&rec.image_id)?;
        let lowers: Vec<String> = img
            .chain_ids()
            .iter()
            .rev()
            .map(|c| snaps.fs_path(c).display().to_string())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            cdir.join("upper").display(),
            cdir.join("work").display()
        );
        nix::mount::mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| ContainerError::Io {
            id: rec.id.clone(),
            op: format!("remount rootfs {}", merged.display()),
            source: e.into(),
        })?;
        tracing::info!(container = %rec.id, "remounted root filesystem");
        Ok(())
    }

    /// A start that failed ends the run: waiters see an exit (128), and an auto-remove
    /// container goes, as with docker.
    fn start_failed(&self, entry: &Arc<Entry>, message: &str) {
        self.network_down(&entry.record().id);
        let rec = self.set_state(entry, |s| {
            s.status = Status::Exited;
            s.exit_code = 128;
            s.error = message.to_string();
        });
        entry.phase.send_modify(|p| {
            p.running = false;
            p.exits += 1;
            p.exit_code = 128;
        });
        if rec.host_config.auto_remove {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.remove(&rec.id, true, false).await {
                    tracing::warn!(container = %rec.id, error = %e, "auto-remove after failed start");
                }
            });
        }
    }

    fn runtime_pid(&self, id: &str) -> Option<i64> {
        let p = self.runtime_root().join(id).join("state.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        v["pid"].as_i64()
    }

    /// Update the state, persist, return the new record.
    fn set_state(&self, entry: &Entry, f: impl FnOnce(&mut State)) -> Record {
        let rec = {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            f(&mut r.state);
            r.clone()
        };
        if let Err(e) = self.save(&rec) {
            tracing::error!(container = %rec.id, error = %e, "saving container state");
        }
        rec
    }

    /// Watch the shim until it ends, then record the exit.
    fn spawn_monitor(&self, entry: Arc<Entry>) {
        let this = self.clone();
        tokio::spawn(async move {
            let id = entry.record().id;
            let dir = this.shim_dir(&id);
            wait_shim_gone(&dir).await;
            let rec = berth_shim::state::ExitRecord::load(&dir).ok().flatten();
            this.record_exit(&entry, rec);
        });
    }

    fn record_exit(&self, entry: &Arc<Entry>, exit: Option<berth_shim::state::ExitRecord>) {
        self.network_down(&entry.record().id);
        let (code, oom, finished, error) = match &exit {
            Some(r) => (
                i64::from(r.exit_code),
                r.oom_killed.unwrap_or(false),
                r.finished_at.clone(),
                String::new(),
            ),
            None => (
                255,
                false,
                now(),
                "berth-shim exited without an exit record".to_string(),
            ),
        };
        let update = |s: &mut State| {
            s.status = Status::Exited;
            s.pid = 0;
            s.exit_code = code;
            s.oom_killed = oom;
            s.finished_at = finished;
            s.error = error;
        };
        // an auto-removed container's exit needs no fsync: its record is removed next, and
        // after a crash in between the shim's exit.json still tells the exit
        let auto_remove = entry
            .rec
            .lock()
            .expect("record lock poisoned")
            .host_config
            .auto_remove;
        let rec = if auto_remove {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            update(&mut r.state);
            r.clone()
        } else {
            self.set_state(entry, update)
        };
        if oom {
            self.publish("oom", &rec, &[]);
        }
        self.publish("die", &rec, &[("exitCode", code.to_string())]);
        entry.phase.send_modify(|p| {
            p.running = false;
            p.exits += 1;
            p.exit_code = code;
        });
        if rec.host_config.auto_remove {
            let this = self.clone();
            let id = rec.id.clone();
            tokio::spawn(async move {
                if let Err(e) = this.remove(&id, true, false).await {
                    tracing::warn!(container = %id, error = %e, "auto-remove");
                }
            });
            return;
        }
        if self.should_restart(&rec) {
            let this = self.clone();
            let entry = entry.clone();
            let n = rec.restart_count;
            tokio::spawn(async move {
                let backoff = Duration::from_millis(100u64 << n.clamp(0, 9));
                tokio::time::sleep(backoff).await;
                let _op = entry.op.lock().await;
                let r = entry.record();
                if r.state.status != Status::Exited || r.stopped_by_user {
                    return;
                }
                {
                    let mut r = entry.rec.lock().expect("record lock poisoned");
                    r.restart_count += 1;
                }
                if let Err(e) = this.start_locked(&entry).await {
                    tracing::warn!(container = %r.id, error = %e, "restart");
                } else {
                    let rec = entry.record();
                    this.publish("restart", &rec, &[]);
                }
            });
        }
    }

    fn should_restart(&self, rec: &Record) -> bool {
        if rec.stopped_by_user {
            return false;
        }
        let p = &rec.host_config.restart_policy;
        match p.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                rec.state.exit_code != 0
                    && (p.maximum_retry_count == 0 || rec.restart_count < p.maximum_retry_count)
            }
            _ => false,
        }
    }

    /// Run berth-runtime with `args` (after `--root`).
    fn runtime(&self, id: &str, op: &'static str, args: &[&str]) -> Result<(), ContainerError> {
        let out = std::process::Command::new(&self.inner.paths.runtime)
            .arg("--root")
            .arg(self.runtime_root())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| ContainerError::Io {
                id: id.to_string(),
                op: format!("run {}", self.inner.paths.runtime.display()),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ContainerError::Runtime {
                id: id.to_string(),
                op,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, key: &str, signal: &str) -> Result<(), ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        if !rec.state.status.is_alive() {
            return Err(ContainerError::Conflict(format!(
                "cannot kill container: {}: container {} is not running",
                key, rec.id
            )));
        }
        let sig = normalize_signal(signal)?;
        {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            r.stopped_by_user = true;
        }
        let this = self.clone();
        let id = rec.id.clone();
        let s = sig.clone();
        tokio::task::spawn_blocking(move || this.runtime(&id, "kill", &["kill", &id, &s]))
            .await
            .map_err(|e| ContainerError::Invalid(e.to_string()))??;
        self.publish("kill", &rec, &[("signal", signal_number(&sig).to_string())]);
        Ok(())
    }

    /// `POST /containers/{id}/stop`: the stop signal, `timeout` seconds, then SIGKILL.
    /// Returns false when it was not running (304).
    pub async fn stop(
        &self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<bool, ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        if !rec.state.status.is_alive() {
            return Ok(false);
        }
        let sig = signal
            .map(String::from)
            .or(rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let t = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let mut rx = entry.phase.subscribe();
        if rec.state.status == Status::Paused {
            let _ = self.unpause(key).await;
        }
        if let Err(e) = self.kill(key, &sig).await {
            if entry.record().state.status.is_alive() {
                return Err(e);
            }
        }
        let stopped = matches!(
            tokio::time::timeout(
                Duration::from_secs(u64::try_from(t.max(0)).unwrap_or(0)),
                rx.wait_for(|p| !p.running),
            )
            .await,
            Ok(Ok(_))
        );
        if !stopped || t < 0 {
            let _ = self.kill(key, "SIGKILL").await;
            let _ =
                tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|p| !p.running)).await;
        }
        self.publish("stop", &entry.record(), &[]);
        Ok(true)
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(&self, key: &str, timeout: Option<i64>) -> Result<(), ContainerError> {
        self.stop(key, timeout, None).await?;
        self.start(key).await?;
        let rec = self.get(key)?.record();
        self.publish("restart", &rec, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/pause` / unpause.
    pub async fn pause(&self, key: &str) -> Result<(), ContainerError> {
        self.pause_resume(key, true).await
    }

    pub async fn unpause(&self, key: &str) -> Result<(), ContainerError> {
        self.pause_resume(key, false).await
    }

    async fn pause_resume(&self, key: &str, pause: bool) -> Result<(), ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        let ok = if pause {
            rec.state.status == Status::Running
        } else {
            rec.state.status == Status::Paused
        };
        if !ok {
            return Err(ContainerError::Conflict(format!(
                "container {} is {}",
                rec.id,
                if pause { "not running" } else { "not paused" }
            )));
        }
        let this = self.clone();
        let id = rec.id.clone();
        let verb = if pause { "pause" } else { "resume" };
        tokio::task::spawn_blocking(move || this.runtime(&id, verb, &[verb, &id]))
            .await
            .map_err(|e| ContainerError::Invalid(e.to_string()))??;
        let rec = self.set_state(&entry, |s| {
            s.status = if pause {
                Status::Paused
            } else {
                Status::Running
            }
        });
        self.publish(if pause { "pause" } else { "unpause" }, &rec, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: the exit code once `cond` holds.
    pub async fn wait(&self, key: &str, cond: WaitCondition) -> Result<i64, ContainerError> {
        let entry = self.get(key)?;
        let mut rx = entry.phase.subscribe();
        let start = *rx.borrow();
        let status = entry.record().state.status;
        let p = match cond {
            WaitCondition::NotRunning => {
                if !status.is_alive() && status != Status::Created {
                    return Ok(entry.record().state.exit_code);
                }
                if status == Status::Created {
                    return Ok(0);
                }
                rx.wait_for(|p| !p.running || p.removed).await.map(|p| *p)
            }
            WaitCondition::NextExit => rx
                .wait_for(|p| p.exits > start.exits || p.removed)
                .await
                .map(|p| *p),
            WaitCondition::Removed => rx.wait_for(|p| p.removed).await.map(|p| *p),
        };
        match p {
            Ok(p) => Ok(p.exit_code),
            // the sender is gone only when the entry is dropped after removal
            Err(_) => Ok(entry.record().state.exit_code),
        }
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(
        &self,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        if rec.state.status.is_alive() {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container \"{}\": container is {}: stop the container before removing or force remove",
                    rec.name,
                    rec.state.status.as_str()
                )));
            }
            let mut rx = entry.phase.subscribe();
            let _ = self.kill(&rec.id, "SIGKILL").await;
            let _ =
                tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|p| !p.running)).await;
        }
        let _op = entry.op.lock().await;
        if entry.phase.borrow().removed {
            return Ok(());
        }
        // in memory only: the record is about to go, and a crash half-way leaves it exited
        let rec = {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            r.state.status = Status::Removing;
            r.clone()
        };
        let id = rec.id.clone();
        let this = self.clone();
        let r2 = rec.clone();
        tokio::task::spawn_blocking(move || this.remove_files(&r2, volumes))
            .await
            .map_err(|e| ContainerError::Invalid(e.to_string()))??;
        self.inner
            .map
            .lock()
            .expect("container map lock poisoned")
            .remove(&id);
        self.publish("destroy", &rec, &[]);
        entry
            .attach_waiters
            .lock()
            .expect("waiters lock poisoned")
            .clear();
        entry.phase.send_modify(|p| p.removed = true);
        Ok(())
    }

    fn remove_files(&self, rec: &Record, volumes: bool) -> Result<(), ContainerError> {
        let id = &rec.id;
        self.network_down(id);
        // a runtime container left behind (shim killed) is deleted by force
        if self.runtime_root().join(id).exists() {
            let _ = self.runtime(id, "delete", &["delete", "--force", id]);
        }
        for v in &rec.volumes {
            let _ = self.inner.volumes.release(v, id);
        }
        if volumes {
            for v in &rec.anonymous_volumes {
                if let Err(e) = self.inner.volumes.remove(v, true) {
                    tracing::warn!(volume = %v, error = %e, "removing anonymous volume");
                }
            }
        }
        let _ = std::fs::remove_dir_all(self.shim_dir(id));
        std::fs::remove_dir_all(self.dir(id)).map_err(|source| ContainerError::Io {
            id: id.clone(),
            op: "remove container dir".into(),
            source,
        })?;
        // The rootfs goes last, in the background: unmounting an overlay syncs the filesystem
        // under it, which takes as long as everyone's dirty pages (tens of ms on a busy
        // machine) and nobody needs to wait for. A crash before it is done leaves a layer
        // without a record, which `open` removes.
        let snaps = self.inner.images.snapshots().clone();
        let id = id.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-rm-rootfs".into())
            .stack_size(64 << 10)
            .spawn({
                let snaps = snaps.clone();
                let id = id.clone();
                move || {
                    if let Err(e) = snaps.remove_container(&id) {
                        tracing::warn!(container = %id, error = %e, "removing root filesystem");
                    }
                }
            });
        if spawned.is_err() {
            snaps
                .remove_container(&id)
                .map_err(|source| ContainerError::Snapshot { id, source })?;
        }
        Ok(())
    }

    /// `POST /containers/{id}/update`: resources (applied live through `berth-runtime
    /// update` when running, and kept for later starts) and the restart policy.
    pub async fn update(&self, key: &str, u: &HostConfig) -> Result<(), ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        let mut args: Vec<String> = vec!["update".into()];
        if u.memory > 0 {
            args.extend(["--memory".into(), u.memory.to_string()]);
        }
        if u.memory_swap != 0 {
            args.extend(["--memory-swap".into(), u.memory_swap.to_string()]);
        }
        if u.nano_cpus > 0 {
            args.extend([
                "--cpu-period".into(),
                "100000".into(),
                "--cpu-quota".into(),
                (u.nano_cpus / 10_000).to_string(),
            ]);
        } else if u.cpu_quota > 0 {
            args.extend(["--cpu-quota".into(), u.cpu_quota.to_string()]);
            if u.cpu_period > 0 {
                args.extend(["--cpu-period".into(), u.cpu_period.to_string()]);
            }
        }
        if u.cpu_shares > 0 {
            args.extend(["--cpu-shares".into(), u.cpu_shares.to_string()]);
        }
        if let Some(p) = u.pids_limit.filter(|p| *p != 0) {
            args.extend(["--pids-limit".into(), p.to_string()]);
        }
        if !u.cpuset_cpus.is_empty() {
            args.extend(["--cpuset-cpus".into(), u.cpuset_cpus.clone()]);
        }
        if !u.cpuset_mems.is_empty() {
            args.extend(["--cpuset-mems".into(), u.cpuset_mems.clone()]);
        }
        if u.memory_reservation > 0 {
            args.extend([
                "--memory-reservation".into(),
                u.memory_reservation.to_string(),
            ]);
        }
        // docker discards a weight the kernel can't apply ("Weight discarded"), so does berth
        let blkio_weight = if spec::blkio_weight_supported() {
            u.blkio_weight
        } else {
            if u.blkio_weight > 0 {
                tracing::warn!(container = %rec.id, "the kernel does not support block IO weight: weight discarded");
            }
            0
        };
        if blkio_weight > 0 {
            args.extend(["--blkio-weight".into(), blkio_weight.to_string()]);
        }
        if rec.state.status.is_alive() && args.len() > 1 {
            args.push(rec.id.clone());
            let this = self.clone();
            let id = rec.id.clone();
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                this.runtime(&id, "update", &refs)
            })
            .await
            .map_err(|e| ContainerError::Invalid(e.to_string()))??;
        }
        let rec = {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            let h = &mut r.host_config;
            if u.memory > 0 {
                h.memory = u.memory;
            }
            if u.memory_swap != 0 {
                h.memory_swap = u.memory_swap;
            }
            if u.nano_cpus > 0 {
                h.nano_cpus = u.nano_cpus;
            }
            if u.cpu_quota > 0 {
                h.cpu_quota = u.cpu_quota;
            }
            if u.cpu_period > 0 {
                h.cpu_period = u.cpu_period;
            }
            if u.cpu_shares > 0 {
                h.cpu_shares = u.cpu_shares;
            }
            if u.pids_limit.is_some_and(|p| p != 0) {
                h.pids_limit = u.pids_limit;
            }
            if !u.cpuset_cpus.is_empty() {
                h.cpuset_cpus = u.cpuset_cpus.clone();
            }
            if !u.cpuset_mems.is_empty() {
                h.cpuset_mems = u.cpuset_mems.clone();
            }
            if u.memory_reservation > 0 {
                h.memory_reservation = u.memory_reservation;
            }
            if blkio_weight > 0 {
                h.blkio_weight = blkio_weight;
            }
            if !u.restart_policy.name.is_empty() {
                if h.auto_remove && u.restart_policy.name != "no" {
                    return Err(ContainerError::Invalid(
                        "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                    ));
                }
                h.restart_policy = u.restart_policy.clone();
            }
            r.clone()
        };
        // later starts use the new limits: patch the bundle's resources too
        let bundle = self.dir(&rec.id).join("config.json");
        if let Some(mut spec) = std::fs::read(&bundle)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            let h = &rec.host_config;
            let res = &mut spec["linux"]["resources"];
            if h.memory > 0 {
                res["memory"]["limit"] = serde_json::json!(h.memory);
            }
            if h.nano_cpus > 0 {
                res["cpu"]["period"] = serde_json::json!(100_000);
                res["cpu"]["quota"] = serde_json::json!(h.nano_cpus / 10_000);
            }
            if h.cpu_shares > 0 {
                res["cpu"]["shares"] = serde_json::json!(h.cpu_shares);
            }
            if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
                res["pids"] = serde_json::json!({"limit": p});
            }
            if !h.cpuset_cpus.is_empty() {
                res["cpu"]["cpus"] = serde_json::json!(h.cpuset_cpus);
            }
            if !h.cpuset_mems.is_empty() {
                res["cpu"]["mems"] = serde_json::json!(h.cpuset_mems);
            }
            if h.memory_reservation > 0 {
                res["memory"]["reservation"] = serde_json::json!(h.memory_reservation);
            }
            if h.blkio_weight > 0 {
                res["blockIO"] = serde_json::json!({"weight": h.blkio_weight});
            }
            crate::state::write_json(&bundle, &spec).map_err(|source| ContainerError::State {
                id: rec.id.clone(),
                source,
            })?;
        }
        self.save(&rec)?;
        self.publish("update", &rec, &[]);
        Ok(())
    }

    /// `GET /containers/{id}/export`: the container's root filesystem as a tar.
    pub fn export<W: std::io::Write>(&self, key: &str, out: W) -> Result<(), ContainerError> {
        let rec = self.get(key)?.record();
        self.ensure_rootfs(&rec)?;
        berth_image::archive::export(&rec.rootfs, out)
            .map_err(|e| ContainerError::from(crate::images::ImageError::from(e)))?;
        self.publish("export", &rec, &[]);
        Ok(())
    }

    /// `GET /containers/{id}/changes`: what the writable layer holds relative to the image,
    /// as (path, kind) with docker's kinds 0 modified, 1 added, 2 deleted.
    pub fn changes(&self, key: &str) -> Result<Vec<(String, u8)>, ContainerError> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let rec = self.get(key)?.record();
        let snaps = self.inner.images.snapshots();
        let Some(cdir) = rec.rootfs.parent() else {
            return Ok(vec![]);
        };
        let upper = cdir.join("upper");
        if snaps.mode() != berth_image::snapshot::Mode::Overlay || !upper.is_dir() {
            return Err(ContainerError::Invalid(
                "changes need the overlay snapshotter".into(),
            ));
        }
        let img = self.inner.images.resolve(&rec.image_id)?;
        let lowers: Vec<PathBuf> = img.chain_ids().iter().map(|c| snaps.fs_path(c)).collect();
        let in_image = |rel: &Path| {
            lowers
                .iter()
                .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
        };
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = upper.join(&rel);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let r = rel.join(e.file_name());
                let Ok(m) = e.metadata() else { continue };
                let path = format!("/{}", r.display());
                if m.file_type().is_char_device() && m.rdev() == 0 {
                    out.push((path, 2));
                    continue;
                }
                out.push((path, if in_image(&r) { 0 } else { 1 }));
                if m.is_dir() {
                    stack.push(r);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, key: &str, new: &str) -> Result<(), ContainerError> {
        if !names::valid(new) {
            return Err(ContainerError::BadName(new.to_string()));
        }
        let name = format!("/{}", new.trim_start_matches('/'));
        let entry = self.get(key)?;
        if let Some(id) = self.name_taken(&name) {
            return Err(ContainerError::NameInUse {
                name: new.trim_start_matches('/').to_string(),
                id,
            });
        }
        let (old, rec) = {
            let mut r = entry.rec.lock().expect("record lock poisoned");
            let old = std::mem::replace(&mut r.name, name);
            (old, r.clone())
        };
        self.save(&rec)?;
        self.publish("rename", &rec, &[("oldName", old)]);
        Ok(())
    }

    /// Records for `GET /containers/json`, newest first.
    pub fn list(&self, o: &ListOptions) -> Result<Vec<Record>, ContainerError> {
        let f = &o.filters;
        f.validate(&[
            "name", "label", "status", "id", "ancestor", "exited", "before", "since", "volume",
            "network", "health", "is-task", "expose", "publish",
        ])
        .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let mut recs: Vec<Record> = self.entries().iter().map(|e| e.record()).collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let ancestors: Vec<String> = f
            .get("ancestor")
            .iter()
            .filter_map(|a| self.inner.images.resolve(a).ok().map(|r| r.id.to_string()))
            .collect();
        let ports = |key: &str| -> Result<Vec<list_filter::PortFilter>, ContainerError> {
            f.get(key)
                .iter()
                .map(|p| list_filter::PortFilter::parse(p).map_err(ContainerError::Invalid))
                .collect()
        };
        let (expose, publish) = (ports("expose")?, ports("publish")?);
        // before/since name a container: only those created before / after it
        let created_of = |key: &str| -> Result<Option<String>, ContainerError> {
            match f.get(key).first() {
                Some(k) => Ok(Some(self.get(k)?.record().created)),
                None => Ok(None),
            }
        };
        let (before, since) = (created_of("before")?, created_of("since")?);
        let mut out = Vec::new();
        for r in recs {
            let status = r.state.status.as_str();
            if before.as_ref().is_some_and(|b| r.created >= *b)
                || since.as_ref().is_some_and(|s| r.created <= *s)
                || (f.contains("network") && !list_filter::network(&r, &f.get("network")))
                || (f.contains("health") && !list_filter::health(&r, &f.get("health")))
                || (f.contains("is-task") && !list_filter::is_task(&f.get("is-task")))
                || (!expose.is_empty() && !list_filter::expose(&r, &expose))
                || (!publish.is_empty() && !list_filter::publish(&r, &publish))
            {
                continue;
            }
            if !o.all && !r.state.status.is_alive() && !f.contains("status") {
                continue;
            }
            if f.contains("status") && !f.get("status").contains(&status) {
                continue;
            }
            if f.contains("id") && !f.get("id").iter().any(|p| r.id.starts_with(p)) {
                continue;
            }
            if f.contains("name") {
                let n = r.name.trim_start_matches('/');
                let ok = f.get("name").iter().any(|p| {
                    let p = p.trim_start_matches('/');
                    regex::Regex::new(p)
                        .map(|re| re.is_match(n))
                        .unwrap_or(false)
                });
                if !ok {
                    continue;
                }
            }
            if f.contains("label") {
                let labels: HashMap<String, String> = r.config.labels.clone().unwrap_or_default();
                if !f.labels_match("label", &labels) {
                    continue;
                }
            }
            if f.contains("ancestor") && !ancestors.contains(&r.image_id) {
                continue;
            }
            if f.contains("exited") {
                let code = r.state.exit_code.to_string();
                if r.state.status != Status::Exited || !f.get("exited").contains(&code.as_str()) {
                    continue;
                }
            }
            if f.contains("volume")
                && !f.get("volume").iter().any(|v| {
                    r.mounts
                        .iter()
                        .any(|m| m.name.as_deref() == Some(v) || m.destination == *v)
                })
            {
                continue;
            }
            out.push(r);
            if o.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// The record of one container.
    pub fn inspect(&self, key: &str) -> Result<Record, ContainerError> {
        Ok(self.get(key)?.record())
    }

    /// The list API's `Ports` of a container (`docker ps` PORTS): its published mappings, then
    /// its exposed ports without one.
    pub fn list_ports(&self, rec: &Record) -> Vec<serde_json::Value> {
        let ports: Vec<berth_network::ports::PortMapping> = self
            .inner
            .networks
            .store()
            .of_container(&rec.id)
            .into_iter()
            .flat_map(|(_, e)| e.ports)
            .collect();
        let exposed = rec
            .config
            .exposed_ports
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok());
        match berth_network::ports::to_docker_list(&ports, exposed.as_ref()) {
            serde_json::Value::Array(list) => list,
            _ => Vec::new(),
        }
    }

    /// Exec ids of a container.
    pub fn exec_ids(&self, id: &str) -> Vec<String> {
        self.inner
            .execs
            .lock()
            .expect("exec map lock poisoned")
            .values()
            .filter(|e| e.container_id == id)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Connect to the container's attach socket; waits for the start of a created container.
    pub async fn attach(&self, key: &str) -> Result<AttachConn, ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        let ack = match rec.state.status {
            Status::Running | Status::Paused => None,
            Status::Created | Status::Exited if !entry.phase.borrow().running => {
                if rec.state.status == Status::Exited && rec.host_config.auto_remove {
                    return Err(ContainerError::Conflict(
                        "You cannot attach to a stopped container, start it first".into(),
                    ));
                }
                let (tx, rx) = oneshot::channel();
                entry
                    .attach_waiters
                    .lock()
                    .expect("waiters lock poisoned")
                    .push(tx);
                let ack = rx.await.map_err(|_| {
                    ContainerError::Conflict(format!("container {} was removed", rec.id))
                })?;
                Some(ack)
            }
            _ => None,
        };
        let dir = self.shim_dir(&rec.id);
        let sock = tokio::task::spawn_blocking(move || berth_shim::client::Attach::connect(&dir))
            .await
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        if let Some(a) = ack {
            let _ = a.send(());
        }
        let sock = sock.map_err(|e| {
            ContainerError::Conflict(format!("attach to container {}: {e}", rec.id))
        })?;
        let std = sock
            .socket()
            .try_clone()
            .map_err(|source| ContainerError::Io {
                id: rec.id.clone(),
                op: "clone attach socket".into(),
                source,
            })?;
        std.set_nonblocking(true)
            .map_err(|source| ContainerError::Io {
                id: rec.id.clone(),
                op: "attach socket".into(),
                source,
            })?;
        let stream =
            tokio::net::UnixStream::from_std(std).map_err(|source| ContainerError::Io {
                id: rec.id.clone(),
                op: "attach socket".into(),
                source,
            })?;
        self.publish("attach", &entry.record(), &[]);
        Ok(AttachConn {
            stream,
            tty: rec.config.tty,
        })
    }

    /// `GET /containers/{id}/logs`: the log path, whether the container has a TTY, and a
    /// liveness check for follow.
    pub fn log_source(
        &self,
        key: &str,
    ) -> Result<(PathBuf, bool, impl Fn() -> bool + Send + 'static), ContainerError> {
        let entry = self.get(key)?;
        let rec = entry.record();
        if rec
            .host_config
            .log_config
            .as_ref()
            .is_some_and(|l| l.kind == "none")
        {
            return Err(ContainerError::Invalid(
                "configured logging driver does not support reading".into(),
            ));
        }
        let rx = entry.phase.subscribe();
        Ok((rec.log_path, rec.config.tty, move || {
            let p = *rx.borrow();
            p.running && !p.removed
        }))
    }

    /// `GET /containers/{id}/top`: `ps -ef` rows of the container's processes.
    pub async fn top(
        &self,
        key: &str,
        ps_args: &str,
    ) -> Result<(Vec<String>, Vec<Vec<String>>), ContainerError> {
        let rec = self.get(key)?.record();
        if !rec.state.status.is_alive() {
            return Err(ContainerError::Conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let runtime = self.inner.paths.runtime.clone();
        let root = self.runtime_root();
        let id = rec.id.clone();
        let args = if ps_args.is_empty() { "-ef" } else { ps_args }.to_string();
        tokio::task::spawn_blocking(move || top_rows(&runtime, &root, &id, &args))
            .await
            .map_err(|e| ContainerError::Invalid(e.to_string()))?
    }

    pub(crate) fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    pub(crate) fn runtime_root_path(&self) -> PathBuf {
        self.runtime_root()
    }

    pub(crate) fn bundle_dir(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    pub(crate) fn execs(&self) -> &Mutex<HashMap<String, Arc<exec::Exec>>> {
        &self.inner.execs
    }

    pub(crate) fn publish_event(&self, action: &str, rec: &Record, extra: &[(&str, String)]) {
        self.publish(action, rec, extra);
    }
}

/// Copy the image's content at `dest` (inside `rootfs`) into the empty volume dir `volume`,
/// keeping modes and owners. Symlinks on the way are not followed out of the rootfs: the
/// path is resolved component by component and must stay a real directory.
fn seed_volume(rootfs: &Path, dest: &str, volume: &Path) {
    let mut src = rootfs.to_path_buf();
    for c in Path::new(dest).components() {
        if let std::path::Component::Normal(n) = c {
            src.push(n);
            match std::fs::symlink_metadata(&src) {
                Ok(m) if m.is_dir() => {}
                _ => return,
            }
        }
    }
    let empty = std::fs::read_dir(volume).is_ok_and(|mut d| d.next().is_none());
    let has = std::fs::read_dir(&src).is_ok_and(|mut d| d.next().is_some());
    if !empty || !has {
        return;
    }
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(volume)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            tracing::warn!(dest, error = %String::from_utf8_lossy(&o.stderr).trim(), "seeding volume")
        }
        Err(e) => tracing::warn!(dest, error = %e, "seeding volume"),
    }
}

/// An attach connection to a container's shim.
pub struct AttachConn {
    pub stream: tokio::net::UnixStream,
    pub tty: bool,
}

/// Waits until the shim of `dir` is gone: a small dedicated thread polls the shim's pidfd
/// (no timer, no slot taken from the runtime's bounded blocking pool).
async fn wait_shim_gone(dir: &Path) {
    let d = dir.to_path_buf();
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("berth-wait".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let _ = berth_shim::client::wait_exit(&d, None);
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = rx.await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "no wait thread; polling the shim");
            let pid = berth_shim::state::load_pid(dir).ok().flatten().unwrap_or(0);
            while pid > 0 && berth_shim::client::is_shim(pid, dir) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn top_rows(
    runtime: &Path,
    root: &Path,
    id: &str,
    ps_args: &str,
) -> Result<(Vec<String>, Vec<Vec<String>>), ContainerError> {
    let out = std::process::Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["ps", "--format", "json", id])
        .output()
        .map_err(|source| ContainerError::Io {
            id: id.into(),
            op: "berth-runtime ps".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(ContainerError::Runtime {
            id: id.into(),
            op: "ps",
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let ps = std::process::Command::new("ps")
        .args(ps_args.split_whitespace())
        .output()
        .map_err(|source| ContainerError::Io {
            id: id.into(),
            op: "ps".into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&ps.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| {
        ContainerError::Invalid(format!("couldn't find PID field in ps output: {header}"))
    })?;
    let mut rows = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i64>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        rows.push(row);
    }
    Ok((titles, rows))
}

const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// `TERM`, `sigterm`, `15` → `SIGTERM`.
pub fn normalize_signal(s: &str) -> Result<String, ContainerError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok("SIGKILL".into());
    }
    if let Ok(n) = s.parse::<i32>() {
        if let Some((name, _)) = SIGNALS.iter().find(|(_, v)| *v == n) {
            return Ok(name.to_string());
        }
        if (34..=64).contains(&n) {
            return Ok(n.to_string());
        }
    }
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    if SIGNALS.iter().any(|(n, _)| *n == full) {
        Ok(full)
    } else {
        Err(ContainerError::Invalid(format!("invalid signal: {s}")))
    }
}

fn signal_number(s: &str) -> i32 {
    SIGNALS
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .or_else(|| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_normalise() {
        assert_eq!(normalize_signal("term").expect("term"), "SIGTERM");
        assert_eq!(normalize_signal("9").expect("9"), "SIGKILL");
        assert_eq!(normalize_signal("SIGUSR1").expect("usr1"), "SIGUSR1");
        assert!(normalize_signal("NOPE").is_err());
        assert_eq!(signal_number("SIGTERM"), 15);
    }

    #[test]
    fn wait_conditions_parse() {
        assert_eq!(
            WaitCondition::parse("").expect("default"),
            WaitCondition::NotRunning
        );
        assert_eq!(
            WaitCondition::parse("removed").expect("removed"),
            WaitCondition::Removed
        );
        assert!(WaitCondition::parse("bogus").is_err());
    }
}
