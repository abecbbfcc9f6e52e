//! berth-engine: the engine's domain, independent of any wire format.
//!
//! [`Engine`] ties together the pieces the daemon serves: daemon configuration ([`config`]),
//! host facts and identity ([`host`]), the events bus ([`events`]), named volumes ([`volumes`])
//! and crash-safe state files ([`state`]). Containers and images plug in here in later steps.

pub mod config;
pub mod events;
pub mod host;
pub mod state;
pub mod volumes;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use config::DaemonConfig;
use events::EventBus;
use host::HostFacts;
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
    volumes: VolumeStore,
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
        let volumes =
            VolumeStore::open(&config.data_root, events.clone()).map_err(EngineError::Volumes)?;
        Ok(Self {
            config,
            id,
            events,
            volumes,
        })
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

    /// Facts for `/info`. Containers and images are counted by their stores once those are
    /// attached to the engine; until then there are none, and 0 is the truth.
    pub fn summary(&self) -> SystemSummary {
        SystemSummary {
            id: self.id.clone(),
            host: HostFacts::read(),
            containers: 0,
            containers_running: 0,
            containers_paused: 0,
            containers_stopped: 0,
            images: 0,
            volumes: self.volumes.count() as u64,
            data_root: self.config.data_root.clone(),
            runtime_name: RUNTIME_NAME.to_string(),
            runtime_path: self.config.runtime_path.clone(),
            event_listeners: self.events.listeners() as u64,
            debug: self.config.debug,
        }
    }
}
