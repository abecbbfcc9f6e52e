//! Registry credentials on the client side, as the docker CLI keeps them: `berth login` has
//! berthd check them (`POST /auth`) and stores them in a docker-style `config.json`
//! (`$BERTH_CONFIG/config.json`, else `~/.berth/config.json`; docker's own file is read as a
//! fallback), `berth logout` removes them, and pull/push send them as `X-Registry-Auth`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use base64::Engine as _;
use berth_image::auth::{AuthStore, Credentials};
use bytes::Bytes;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{read_json, Client};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry (host[:port]); Docker Hub (the daemon's default registry) when absent
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

/// Why credentials could not be read, asked for or stored.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("credentials file {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: Box<berth_image::auth::AuthError>,
    },
    #[error("read {what} from stdin")]
    Stdin {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Missing(&'static str),
}

const HUB: &str = "docker.io";

/// Where berth keeps credentials (docker's file is only read).
pub fn store() -> AuthStore {
    let dir = std::env::var_os("BERTH_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".berth")))
        .unwrap_or_else(|| PathBuf::from(".berth"));
    AuthStore::new(dir.join("config.json"))
}

/// The registry an image name lives in, as docker decides it: the first component when it
/// looks like a host (has `.` or `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(name: &str) -> String {
    match name.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => HUB.to_string(),
    }
}

/// `X-Registry-Auth` for `name` from the stored credentials, if any.
pub fn registry_auth_for(name: &str) -> Result<Option<String>, LoginError> {
    let s = store();
    let registry = registry_of(name);
    let creds = s
        .credentials_for(&registry)
        .map_err(|source| LoginError::Store {
            path: s.path().to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(creds.map(|c| encode(&c, &registry)))
}

fn encode(c: &Credentials, server: &str) -> String {
    let mut v = json!({"username": c.username, "password": c.password, "serveraddress": server});
    if let Some(t) = &c.identity_token {
        v["identitytoken"] = json!(t);
    }
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

fn read_line(what: &'static str) -> Result<String, LoginError> {
    let mut s = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut s)
        .map_err(|source| LoginError::Stdin { what, source })?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a password from the terminal without echo.
fn prompt_password() -> Result<String, LoginError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let line = read_line("password");
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
    eprintln!();
    line
}

/// `berth login`.
pub async fn login(client: &Client, a: LoginArgs) -> anyhow::Result<bool> {
    let server = a.server.clone().unwrap_or_else(|| HUB.to_string());
    let tty = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if tty && !a.password_stdin => {
            eprint!("Username: ");
            std::io::stderr().flush()?;
            read_line("username")?
        }
        None => return Err(LoginError::Missing("username is required: use -u USER").into()),
    };
    let password = match (a.password, a.password_stdin) {
        (Some(p), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => read_line("password")?,
        (None, false) if tty => prompt_password()?,
        (None, false) => {
            return Err(LoginError::Missing(
                "password is required: use -p PASSWORD or --password-stdin",
            )
            .into())
        }
    };
    if username.is_empty() || password.is_empty() {
        return Err(LoginError::Missing("username and password must not be empty").into());
    }
    let body = json!({"username": username, "password": password, "serveraddress": server});
    let resp = client
        .call(Method::POST, "/auth", Some(Bytes::from(body.to_string())))
        .await?;
    let answer: Value = read_json(resp).await?;
    let s = store();
    s.store(&server, &Credentials::basic(&username, &password))
        .map_err(|source| LoginError::Store {
            path: s.path().to_path_buf(),
            source: Box::new(source),
        })?;
    outln!("{}", answer["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(true)
}

/// `berth logout [SERVER]`.
pub fn logout(server: Option<String>) -> anyhow::Result<bool> {
    let server = server.unwrap_or_else(|| HUB.to_string());
    let s = store();
    let removed = s.logout(&server).map_err(|source| LoginError::Store {
        path: s.path().to_path_buf(),
        source: Box::new(source),
    })?;
    if removed {
        outln!("Removing login credentials for {server}");
    } else {
        outln!("Not logged in to {server}");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_found_like_docker() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/x/y:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("quay.io/a/b"), "quay.io");
    }

    #[test]
    fn auth_header_is_dockers_json() {
        let h = encode(&Credentials::basic("u", "p"), "r:1");
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(h)
            .expect("base64url");
        let v: Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(v["username"], "u");
        assert_eq!(v["password"], "p");
        assert_eq!(v["serveraddress"], "r:1");
    }
}
