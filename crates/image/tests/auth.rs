//! Authentication against real registries: htpasswd Basic auth, and the Bearer token flow with the
//! registry's `auth: token` (JWTs signed by a throw-away RSA key whose self-signed certificate is
//! the registry's root bundle), issued by a tiny token server in this test. `berth login` verifies
//! before storing.
mod registry_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use berth_image::auth::{AuthStore, Credentials};
use berth_image::reference::RegistrySettings;
use berth_image::registry::{RegistryClient, RegistryError};
use registry_support::{block_on, busybox_oci, seed_with, Registry, RegistryOpts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn htpasswd_basic_auth_and_login() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let reg = Registry::start_with(RegistryOpts {
        htpasswd: Some(("alice".into(), "s3cret".into())),
        ..Default::default()
    });
    seed_with(
        &oci,
        &format!("{}/library/busybox:latest", reg.host()),
        false,
        Some("alice:s3cret"),
    );
    let settings = RegistrySettings::default();
    block_on(async {
        let anon = RegistryClient::new(&reg.host(), &settings, None).expect("client");
        let err = anon
            .get_manifest("library/busybox", "latest")
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
        assert!(err.to_string().contains("berth login"), "{err}");

        let store = AuthStore::only(tmp.path().join("auth.json"));
        let err = store
            .login(&reg.host(), "alice", "wrong", &settings)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&reg.host()), "{err}");
        assert!(
            store.credentials_for(&reg.host()).expect("read").is_none(),
            "failed login must not store"
        );
        store
            .login(&reg.host(), "alice", "s3cret", &settings)
            .await
            .expect("login");
        let creds = store
            .credentials_for(&reg.host())
            .expect("read")
            .expect("stored");
        assert_eq!(creds, Credentials::basic("alice", "s3cret"));

        let c = RegistryClient::new(&reg.host(), &settings, Some(creds)).expect("client");
        let m = c
            .get_manifest("library/busybox", "latest")
            .await
            .expect("manifest with basic auth");
        assert!(!m.bytes.is_empty());
        assert!(store.logout(&reg.host()).expect("logout"));
        assert!(store.credentials_for(&reg.host()).expect("read").is_none());
    });
}

/// A token server: checks Basic credentials, signs RS256 JWTs granting what was asked.
struct TokenServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    scopes: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn sign_jwt(key: &std::path::Path, cert_der: &[u8], service: &str, scopes: &[String]) -> String {
    let header = serde_json::json!({
        "typ": "JWT", "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (t, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let claims = serde_json::json!({
        "iss": "berth-test-issuer", "sub": "alice", "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now - 10, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let dir = key.parent().expect("key dir");
    let input = dir.join(format!("jwt-input-{}", std::process::id()));
    std::fs::write(&input, &signing_input).expect("write jwt input");
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&input)
        .output()
        .expect("openssl dgst");
    assert!(out.status.success(), "openssl sign failed");
    format!("{signing_input}.{}", b64url(&out.stdout))
}

async fn start_token_server(
    dir: std::path::PathBuf,
    service: String,
    user: &'static str,
    pass: &'static str,
) -> TokenServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let scopes_seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (requests.clone(), scopes_seen.clone());
    let key = dir.join("key.pem");
    let cert_der = std::fs::read(dir.join("cert.der")).expect("cert der");
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    );
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            r.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(m) => n += m,
                }
            }
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            let url = url::Url::parse(&format!("http://x{path}")).expect("url");
            let scopes: Vec<String> = url
                .query_pairs()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.to_string())
                .collect();
            s.lock().expect("lock").extend(scopes.iter().cloned());
            let authorized = req.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("authorization:")
                    && l[14..].trim() == expected_auth
            });
            let (status, body) = if authorized {
                let jwt = sign_jwt(&key, &cert_der, &service, &scopes);
                (
                    "200 OK",
                    serde_json::json!({"token": jwt, "expires_in": 300}).to_string(),
                )
            } else {
                (
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                        .to_string(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    TokenServer {
        port,
        requests,
        scopes: scopes_seen,
        task,
    }
}

#[test]
fn bearer_token_flow_with_real_registry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let oci = busybox_oci(tmp.path());
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=berth-token-test",
        ])
        .arg("-keyout")
        .arg(keys.join("key.pem"))
        .arg("-out")
        .arg(keys.join("cert.pem"))
        .output()
        .expect("openssl req");
    assert!(
        ok.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = std::process::Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(keys.join("cert.pem"))
        .arg("-out")
        .arg(keys.join("cert.der"))
        .status()
        .expect("openssl x509");
    assert!(ok.success());
    let service = "berth-test-registry".to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let ts = rt.block_on(start_token_server(
        keys.clone(),
        service.clone(),
        "alice",
        "s3cret",
    ));
    let auth_yaml = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {service}\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
        ts.port,
        keys.join("cert.pem").display()
    );
    let reg = Registry::start_with(RegistryOpts {
        auth_yaml: Some(auth_yaml),
        ..Default::default()
    });
    seed_with(
        &oci,
        &format!("{}/library/busybox:latest", reg.host()),
        false,
        Some("alice:s3cret"),
    );
    let settings = RegistrySettings::default();
    rt.block_on(async {
        // anonymous: the token server refuses, and the error says so
        let anon = RegistryClient::new(&reg.host(), &settings, None).expect("client");
        let err = anon
            .get_manifest("library/busybox", "latest")
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Token { .. }), "{err:?}");
        assert!(err.to_string().contains("bad credentials"), "{err}");

        // login: scope-less token with the credentials, as docker login does
        let store = AuthStore::only(tmp.path().join("auth.json"));
        assert!(store
            .login(&reg.host(), "alice", "nope", &settings)
            .await
            .is_err());
        store
            .login(&reg.host(), "alice", "s3cret", &settings)
            .await
            .expect("login with token auth");

        let creds = store
            .credentials_for(&reg.host())
            .expect("read")
            .expect("stored");
        let c = RegistryClient::new(&reg.host(), &settings, Some(creds)).expect("client");
        let before = ts.requests.load(Ordering::SeqCst);
        let m = c
            .get_manifest("library/busybox", "latest")
            .await
            .expect("manifest with bearer token");
        let json: serde_json::Value = serde_json::from_slice(&m.bytes).expect("json");
        for l in json["layers"].as_array().expect("layers") {
            let mut d = c
                .get_blob("library/busybox", l["digest"].as_str().expect("digest"))
                .await
                .expect("blob");
            while d.chunk().await.expect("chunk").is_some() {}
        }
        c.head_manifest("library/busybox", "latest")
            .await
            .expect("head")
            .expect("exists");
        assert_eq!(
            ts.requests.load(Ordering::SeqCst) - before,
            1,
            "one token per scope, cached"
        );
        assert!(ts
            .scopes
            .lock()
            .expect("lock")
            .iter()
            .any(|s| s == "repository:library/busybox:pull"));
    });
    drop(reg);
    drop(ts);
}
