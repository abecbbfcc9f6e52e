//! Test fixtures shared by the registry, pull, push and auth tests: a real Distribution registry
//! (`/usr/bin/docker-registry`) on a free 127.0.0.1 port with its own config and storage, killed by
//! PID on drop, and a small busybox OCI image made with umoci by scripts/registry-fixture.sh.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry; stopped (by PID) and its storage removed on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// Extra registry configuration.
#[derive(Default)]
pub struct RegistryOpts {
    /// htpasswd basic auth with this user and password.
    pub htpasswd: Option<(String, String)>,
    /// Raw `auth:` section (e.g. token auth), indented as in the YAML file.
    pub auth_yaml: Option<String>,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(RegistryOpts::default())
    }

    pub fn start_with(opts: RegistryOpts) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} missing (apt-get install docker-registry)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("mkdir storage");
        let mut auth = String::new();
        if let Some((user, pass)) = &opts.htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            );
        }
        if let Some(a) = &opts.auth_yaml {
            auth = a.clone();
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            storage.display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let reg = Registry { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Path of a blob in the registry's filesystem storage.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// skopeo copies the OCI layout `src` into `repo_tag` here (zstd recompresses the layers).
    pub fn seed(&self, src: &Path, repo_tag: &str, zstd: bool) {
        seed_with(src, &format!("{}/{repo_tag}", self.host()), zstd, None)
    }

    /// `skopeo inspect --raw` of a reference on this registry.
    pub fn skopeo_raw(&self, repo_tag: &str) -> serde_json::Value {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {repo_tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("manifest json")
    }
}

pub fn seed_with(src: &Path, dest: &str, zstd: bool, creds: Option<&str>) {
    seed_format(src, dest, zstd, creds, None)
}

/// Like [`seed_with`], converting the manifest (`v2s2` for docker schema 2).
pub fn seed_format(src: &Path, dest: &str, zstd: bool, creds: Option<&str>, format: Option<&str>) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
    if let Some(f) = format {
        cmd.args(["--format", f]);
    }
    if zstd {
        cmd.args(["--dest-compress-format", "zstd", "--dest-compress"]);
    }
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    let out = cmd
        .arg(format!("oci:{}:busybox", src.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy to {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the busybox OCI layout (tag `busybox`, two gzip layers) under `dir/oci`.
pub fn busybox_oci(dir: &Path) -> PathBuf {
    let out = dir.join("oci");
    let status = Command::new(repo_root().join("scripts/registry-fixture.sh"))
        .arg("image")
        .arg(&out)
        .status()
        .expect("run scripts/registry-fixture.sh image");
    assert!(status.success(), "making the busybox OCI image failed");
    out
}

/// Runs `f` on a fresh multi-thread tokio runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}
