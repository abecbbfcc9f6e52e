//! Registry credentials in docker's `config.json` format: `login` (verified against the registry
//! before it is stored), `logout`, and `credentials_for` lookups.
//!
//! berth writes its own file (under its data root) and reads it first; docker's file
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) is read as a fallback so existing
//! `docker login`s work. Entries are `{"auths": {"<registry>": {"auth": base64("user:password")}}}`,
//! optionally with `identitytoken` (an OAuth2 refresh token). Keys are matched after normalisation
//! (`https://index.docker.io/v1/` is docker.io, schemes and paths are dropped). Files are written
//! with mode 0600 through a temporary file and a rename, so a crash never leaves half a file.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::reference::{normalize_registry, RegistrySettings, DOCKER_HUB};
use crate::registry::{RegistryClient, RegistryError};

/// The key docker uses for Docker Hub in `auths`.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or an identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
    /// OAuth2 refresh token (`identitytoken`), used instead of the password for Bearer registries.
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Plain user name and password.
    pub fn basic(username: &str, password: &str) -> Self {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
            identity_token: None,
        }
    }
}

/// docker's `AuthConfig`, as the engine API receives it base64url-encoded in `X-Registry-Auth`.
#[derive(Debug, Default, serde::Deserialize)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

impl Credentials {
    /// Decodes an `X-Registry-Auth` header value (base64url JSON `AuthConfig`, padded or not).
    /// `Ok(None)` for an empty config (anonymous), an error naming the header otherwise.
    pub fn from_x_registry_auth(header: &str) -> Result<Option<Credentials>, AuthError> {
        let bad = |reason: String| AuthError::XRegistryAuth { reason };
        let header = header.trim();
        if header.is_empty() {
            return Ok(None);
        }
        let trimmed = header.trim_end_matches('=');
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let cfg: AuthConfig =
            serde_json::from_slice(&raw).map_err(|e| bad(format!("not an auth config: {e}")))?;
        let (mut username, mut password) = (cfg.username, cfg.password);
        if username.is_empty() && !cfg.auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cfg.auth.trim())
                .map_err(|e| bad(format!("auth field is not base64: {e}")))?;
            let text =
                String::from_utf8(decoded).map_err(|_| bad("auth field is not utf-8".into()))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| bad("auth field is not user:password".into()))?;
            username = u.to_string();
            password = p.to_string();
        }
        let identity_token = [cfg.identity_token, cfg.registry_token]
            .into_iter()
            .find(|t| !t.is_empty());
        if username.is_empty() && password.is_empty() && identity_token.is_none() {
            return Ok(None);
        }
        Ok(Some(Credentials {
            username,
            password,
            identity_token,
        }))
    }
}

/// Errors reading, verifying or writing credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A config file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not the JSON it should be.
    #[error("{path}: invalid credentials file")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` entry is not base64 of `user:password`.
    #[error(
        "{path}: entry for {registry} has an invalid auth field (expected base64 of user:password)"
    )]
    BadEntry {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        registry: String,
    },
    /// An `X-Registry-Auth` header could not be decoded.
    #[error("invalid X-Registry-Auth header: {reason}")]
    XRegistryAuth {
        /// Why.
        reason: String,
    },
    /// The registry refused the credentials (or could not be reached) at login.
    #[error("login to {registry} failed")]
    Login {
        /// The registry.
        registry: String,
        /// Cause.
        #[source]
        source: RegistryError,
    },
}

/// Where credentials are read from and written to.
#[derive(Debug, Clone)]
pub struct AuthStore {
    /// berth's own file: read first, the only one written.
    own: PathBuf,
    /// docker's file, read as a fallback.
    docker: Option<PathBuf>,
}

impl AuthStore {
    /// berth's file at `own` (typically `<data-root>/auth.json`), plus docker's file from
    /// `$DOCKER_CONFIG` or `$HOME/.docker` as a read-only fallback.
    pub fn new(own: impl Into<PathBuf>) -> Self {
        let docker = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .map(|d| d.join("config.json"));
        AuthStore {
            own: own.into(),
            docker,
        }
    }

    /// Only berth's file, no docker fallback (tests, isolated setups).
    pub fn only(own: impl Into<PathBuf>) -> Self {
        AuthStore {
            own: own.into(),
            docker: None,
        }
    }

    /// berth's own file.
    pub fn path(&self) -> &Path {
        &self.own
    }

    /// Stored credentials for `registry` (`docker.io`, `host:port`), if any.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        let want = normalize_registry(registry);
        for path in std::iter::once(&self.own).chain(self.docker.iter()) {
            let doc = read_config(path)?;
            let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
                continue;
            };
            for (key, entry) in auths {
                if normalize_registry(key) != want {
                    continue;
                }
                if let Some(c) = decode_entry(path, key, entry)? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Verifies `username`/`password` against `registry` (`GET /v2/` with them, answering a Bearer
    /// challenge with a scope-less token request) and stores them in berth's file.
    pub async fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
        settings: &RegistrySettings,
    ) -> Result<(), AuthError> {
        let creds = Credentials::basic(username, password);
        let registry = normalize_registry(registry);
        let login_err = |source| AuthError::Login {
            registry: registry.clone(),
            source,
        };
        let client =
            RegistryClient::new(&registry, settings, Some(creds.clone())).map_err(login_err)?;
        client.ping().await.map_err(login_err)?;
        self.store(&registry, &creds)
    }

    /// Writes `creds` for `registry` into berth's file (no verification).
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), AuthError> {
        let registry = normalize_registry(registry);
        let mut doc = read_config(&self.own)?;
        let auths = auths_mut(&mut doc);
        auths.retain(|k, _| normalize_registry(k) != registry);
        let mut entry = Map::new();
        let raw = format!("{}:{}", creds.username, creds.password);
        entry.insert(
            "auth".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        );
        if let Some(t) = &creds.identity_token {
            entry.insert("identitytoken".into(), Value::String(t.clone()));
        }
        let key = if registry == DOCKER_HUB {
            DOCKER_HUB_AUTH_KEY.to_string()
        } else {
            registry
        };
        auths.insert(key, Value::Object(entry));
        write_config(&self.own, &doc)
    }

    /// Removes berth's stored credentials for `registry`; `false` when there were none.
    pub fn logout(&self, registry: &str) -> Result<bool, AuthError> {
        let registry = normalize_registry(registry);
        let mut doc = read_config(&self.own)?;
        let auths = auths_mut(&mut doc);
        let before = auths.len();
        auths.retain(|k, _| normalize_registry(k) != registry);
        if auths.len() == before {
            return Ok(false);
        }
        write_config(&self.own, &doc)?;
        Ok(true)
    }
}

fn auths_mut(doc: &mut Value) -> &mut Map<String, Value> {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let obj = doc.as_object_mut().expect("made an object just above");
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    auths.as_object_mut().expect("made an object just above")
}

fn decode_entry(path: &Path, key: &str, entry: &Value) -> Result<Option<Credentials>, AuthError> {
    let bad = || AuthError::BadEntry {
        path: path.to_path_buf(),
        registry: key.to_string(),
    };
    let identity_token = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (mut username, mut password) = (String::new(), String::new());
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = raw.split_once(':').ok_or_else(bad)?;
        username = u.to_string();
        password = p.to_string();
    } else if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        username = u.to_string();
        password = p.to_string();
    } else if identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username,
        password,
        identity_token,
    }))
}

fn read_config(path: &Path) -> Result<Value, AuthError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Value::Object(Map::new())),
        Ok(b) => serde_json::from_slice(&b).map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Map::new())),
        Err(source) => Err(AuthError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `doc` to `path` atomically with mode 0600 (temp file in the same dir, fsync, rename).
fn write_config(path: &Path, doc: &Value) -> Result<(), AuthError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AuthError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(doc).expect("a json value always serializes");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_lookup_logout_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/auth.json");
        let store = AuthStore::only(&path);
        assert_eq!(store.credentials_for("127.0.0.1:5000").expect("read"), None);
        store
            .store("127.0.0.1:5000", &Credentials::basic("alice", "pa:ss"))
            .expect("store");
        store
            .store("docker.io", &Credentials::basic("bob", "x"))
            .expect("store");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let c = store
            .credentials_for("127.0.0.1:5000")
            .expect("read")
            .expect("found");
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "pa:ss")
        );
        let c = store
            .credentials_for("index.docker.io")
            .expect("read")
            .expect("found");
        assert_eq!(c.username, "bob");
        let doc: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert!(doc["auths"][DOCKER_HUB_AUTH_KEY]["auth"].is_string());
        assert!(store.logout("127.0.0.1:5000").expect("logout"));
        assert!(!store.logout("127.0.0.1:5000").expect("logout"));
        assert_eq!(store.credentials_for("127.0.0.1:5000").expect("read"), None);
        assert!(store.credentials_for("docker.io").expect("read").is_some());
    }

    #[test]
    fn decodes_x_registry_auth() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE.encode(v);
        let c = Credentials::from_x_registry_auth(&enc(
            r#"{"username":"alice","password":"p?w>","serveraddress":"127.0.0.1:5000"}"#,
        ))
        .expect("decode")
        .expect("credentials");
        assert_eq!(c, Credentials::basic("alice", "p?w>"));
        let c = Credentials::from_x_registry_auth(&enc(r#"{"auth":"dTpw"}"#))
            .expect("decode")
            .expect("credentials");
        assert_eq!(c, Credentials::basic("u", "p"));
        let c = Credentials::from_x_registry_auth(&enc(r#"{"identitytoken":"rt"}"#))
            .expect("decode")
            .expect("credentials");
        assert_eq!(c.identity_token.as_deref(), Some("rt"));
        assert_eq!(
            Credentials::from_x_registry_auth(&enc("{}")).expect("decode"),
            None
        );
        assert_eq!(Credentials::from_x_registry_auth("").expect("decode"), None);
        let e = Credentials::from_x_registry_auth("%%%").unwrap_err();
        assert!(e.to_string().contains("X-Registry-Auth"), "{e}");
    }

    #[test]
    fn reads_docker_style_entries_and_keeps_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example.com/v1/":{"auth":"dTpw"},"tok.example.com":{"auth":"","identitytoken":"rt"}},"credsStore":"none"}"#,
        )
        .expect("write");
        let store = AuthStore::only(&path);
        let c = store
            .credentials_for("reg.example.com")
            .expect("read")
            .expect("found");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let c = store
            .credentials_for("tok.example.com")
            .expect("read")
            .expect("found");
        assert_eq!(c.identity_token.as_deref(), Some("rt"));
        store
            .store("x.example.com", &Credentials::basic("a", "b"))
            .expect("store");
        let doc: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(doc["credsStore"], "none");
        std::fs::write(&path, r#"{"auths":{"bad.example.com":{"auth":"!!!"}}}"#).expect("write");
        let e = store.credentials_for("bad.example.com").unwrap_err();
        assert!(e.to_string().contains("bad.example.com"), "{e}");
    }
}
