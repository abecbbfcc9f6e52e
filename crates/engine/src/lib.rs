//! berth-engine: the engine's domain, independent of any wire format.
//!
//! [`Engine`] ties together the pieces the daemon serves: daemon configuration ([`config`]),
//! host facts and identity ([`host`]), the events bus ([`events`]), named volumes ([`volumes`])
//! and crash-safe state files ([`state`]). images ([`images`]) and containers ([`containers`]).

pub mod config;
pub mod containers;
pub mod events;
pub mod host;
pub mod images;
pub mod networks;
pub mod state;
pub mod volumes;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use config::DaemonConfig;
use containers::{ContainerError, Containers};
use events::EventBus;
use host::HostFacts;
use images::{ImageError, Images};
use volumes::{VolumeError, VolumeStore};

/// What kind of failure an engine error is; the API layer maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    InvalidArgument,
    Internal,
}

/// Why the engine couldn't start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("create directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("engine identity")]
    Identity(#[source] state::StateError),
    #[error("load volumes")]
    Volumes(#[source] VolumeError),
    #[error("open images")]
    Images(#[source] ImageError),
    #[error("load containers")]
    Containers(#[source] ContainerError),
    #[error("networks")]
    Networks(#[source] networks::NetworkError),
}

/// Seconds since the Unix epoch.
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What `/info` reports, in domain terms.
#[derive(Debug, Clone)]
pub struct SystemSummary {
    pub id: String,
    pub host: HostFacts,
    pub containers: u64,
    pub containers_running: u64,
    pub containers_paused: u64,
    pub containers_stopped: u64,
    pub images: u64,
    pub volumes: u64,
    pub data_root: PathBuf,
    pub runtime_name: String,
    pub runtime_path: PathBuf,
    pub event_listeners: u64,
    pub debug: bool,
}

/// The running engine.
pub struct Engine {
    config: DaemonConfig,
    id: String,
    events: EventBus,
    volumes: std::sync::Arc<VolumeStore>,
    images: Images,
    containers: Containers,
    networks: std::sync::Arc<networks::Networks>,
}

/// Name of the one OCI runtime berth uses.
pub const RUNTIME_NAME: &str = "berth";

fn make_dir(path: &Path, mode: u32) -> Result<(), EngineError> {
    let err = |source| EngineError::Dir {
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(path).map_err(err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)
}

impl Engine {
    /// Create the data and exec roots (0711: traversable, not listable) and load state.
    pub fn open(config: DaemonConfig) -> Result<Self, EngineError> {
        make_dir(&config.data_root, 0o711)?;
        make_dir(&config.exec_root, 0o711)?;
        let id = host::load_or_create_id(&config.data_root).map_err(EngineError::Identity)?;
        let events = EventBus::new();
        let volumes = std::sync::Arc::new(
            VolumeStore::open(&config.data_root, events.clone()).map_err(EngineError::Volumes)?,
        );
        let images = Images::open(&config.data_root, config.registry.clone(), events.clone())
            .map_err(EngineError::Images)?;
        let networks = std::sync::Arc::new(
            networks::Networks::open(
                &config.network,
                &config.data_root,
                &config.exec_root,
                events.clone(),
            )
            .map_err(EngineError::Networks)?,
        );
        let containers = Containers::open(
            containers::Paths {
                data_root: config.data_root.clone(),
                exec_root: config.exec_root.clone(),
                runtime: config.runtime_path.clone(),
                shim: config.shim_path.clone(),
            },
            images.clone(),
            volumes.clone(),
            events.clone(),
            networks.clone(),
        )
        .map_err(EngineError::Containers)?;
        Ok(Self {
            config,
            id,
            events,
            volumes,
            images,
            containers,
            networks,
        })
    }

    pub fn networks(&self) -> &networks::Networks {
        &self.networks
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    pub fn volumes(&self) -> &VolumeStore {
        &self.volumes
    }

    pub fn images(&self) -> &Images {
        &self.images
    }

    pub fn containers(&self) -> &Containers {
        &self.containers
    }

    /// Facts for `/info`.
    pub fn summary(&self) -> SystemSummary {
        let (containers, running, paused, stopped) = self.containers.counts();
        SystemSummary {
            id: self.id.clone(),
            host: HostFacts::read(),
            containers,
            containers_running: running,
            containers_paused: paused,
            containers_stopped: stopped,
            images: self.images.count() as u64,
            volumes: self.volumes.count() as u64,
            data_root: self.config.data_root.clone(),
            runtime_name: RUNTIME_NAME.to_string(),
            runtime_path: self.config.runtime_path.clone(),
            event_listeners: self.events.listeners() as u64,
            debug: self.config.debug,
        }
    }
}
