//! `/_ping`, `/version`, `/info`.

use std::collections::HashMap;

use berth_api::system::{
    Commit, ComponentVersion, DiskUsage, IndexInfo, Platform, PluginsInfo, RegistryServiceConfig,
    Runtime, SwarmInfo, SystemInfo, SystemVersion,
};
use berth_api::time::Timestamp;
use berth_api::version::{MAX_API_VERSION, MIN_API_VERSION};
use berth_engine::host::{self, HostFacts};
use berth_engine::Engine;
use hyper::{Method, Response, StatusCode};

use crate::error::ApiError;
use crate::handlers::volumes::to_wire;
use crate::http::{self, Body, Query};

/// berth's version, as `/version` and `/info` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit berth was built from, when the build passed it in.
pub const GIT_COMMIT: &str = match option_env!("BERTH_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// `GET`/`HEAD /_ping`: `OK`, never cached; the `Api-Version` header (added to every response)
/// is what the docker CLI negotiates with.
pub fn ping(method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_bytes("OK")
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Cache-Control", "no-cache, no-store, must-revalidate")
        .header("Pragma", "no-cache")
        .header("Builder-Version", "1")
        .header("Swarm", "inactive")
        .body(body)
        .expect("static headers are valid")
}

/// `GET /version`.
pub fn version() -> Response<Body> {
    let h = HostFacts::read();
    let arch = host::go_arch(&h.architecture).to_string();
    let details: HashMap<String, String> = [
        ("ApiVersion", MAX_API_VERSION.to_string()),
        ("MinAPIVersion", MIN_API_VERSION.to_string()),
        ("GitCommit", GIT_COMMIT.to_string()),
        ("GoVersion", "rust".to_string()),
        ("Os", "linux".to_string()),
        ("Arch", arch.clone()),
        ("KernelVersion", h.kernel_version.clone()),
        ("Experimental", "false".to_string()),
        ("BuildTime", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let v = SystemVersion {
        platform: Some(Platform {
            name: format!("berth {VERSION}"),
        }),
        components: Some(vec![ComponentVersion {
            name: "Engine".to_string(),
            version: VERSION.to_string(),
            details: Some(details),
        }]),
        version: VERSION.to_string(),
        api_version: MAX_API_VERSION.to_string(),
        min_api_version: Some(MIN_API_VERSION.to_string()),
        git_commit: Some(GIT_COMMIT.to_string()),
        go_version: Some("rust".to_string()),
        os: "linux".to_string(),
        arch,
        kernel_version: Some(h.kernel_version),
        experimental: None,
        build_time: Some(String::new()),
    };
    http::json(StatusCode::OK, &v)
}

/// `GET /info`.
pub fn info(engine: &Engine) -> Response<Body> {
    let s = engine.summary();
    let (nfd, threads) = host::process_counts();
    let i64_of = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut runtimes = HashMap::new();
    runtimes.insert(
        s.runtime_name.clone(),
        Runtime {
            path: s.runtime_path.display().to_string(),
            runtime_args: None,
        },
    );
    let mut index = HashMap::new();
    index.insert(
        "docker.io".to_string(),
        IndexInfo {
            name: "docker.io".to_string(),
            mirrors: Vec::new(),
            secure: true,
            official: true,
        },
    );
    let info = SystemInfo {
        id: s.id.clone(),
        containers: i64_of(s.containers),
        containers_running: i64_of(s.containers_running),
        containers_paused: i64_of(s.containers_paused),
        containers_stopped: i64_of(s.containers_stopped),
        images: i64_of(s.images),
        driver: "overlay2".to_string(),
        driver_status: Some(vec![
            [
                "Backing Filesystem".to_string(),
                host::backing_filesystem(&s.data_root),
            ],
            ["Supports d_type".to_string(), "true".to_string()],
            ["Using metacopy".to_string(), "false".to_string()],
            ["Native Overlay Diff".to_string(), "true".to_string()],
            ["userxattr".to_string(), "false".to_string()],
        ]),
        plugins: PluginsInfo {
            volume: Some(vec!["local".to_string()]),
            network: Some(vec!["host".to_string(), "none".to_string()]),
            authorization: None,
            log: Some(vec!["json-file".to_string()]),
        },
        memory_limit: s.host.cgroup.memory_limit,
        swap_limit: s.host.cgroup.swap_limit,
        cpu_cfs_period: s.host.cgroup.cpu_cfs_period,
        cpu_cfs_quota: s.host.cgroup.cpu_cfs_quota,
        cpu_shares: s.host.cgroup.cpu_shares,
        cpu_set: s.host.cgroup.cpuset,
        pids_limit: s.host.cgroup.pids_limit,
        oom_kill_disable: s.host.cgroup_version == "1" && s.host.cgroup.memory_limit,
        ipv4_forwarding: s.host.ipv4_forwarding,
        debug: s.debug,
        nfd: i64_of(nfd),
        ngoroutines: i64_of(threads),
        system_time: Timestamp::now().rfc3339_nano(),
        logging_driver: "json-file".to_string(),
        cgroup_driver: "cgroupfs".to_string(),
        cgroup_version: s.host.cgroup_version.clone(),
        nevents_listener: i64_of(s.event_listeners),
        kernel_version: s.host.kernel_version.clone(),
        operating_system: s.host.operating_system.clone(),
        os_version: s.host.os_version.clone(),
        os_type: "linux".to_string(),
        architecture: s.host.architecture.clone(),
        index_server_address: "https://index.docker.io/v1/".to_string(),
        registry_config: Some(RegistryServiceConfig {
            insecure_registry_cidrs: Some(vec!["127.0.0.0/8".to_string(), "::1/128".to_string()]),
            index_configs: Some(index),
            mirrors: Some(Vec::new()),
        }),
        ncpu: i64::from(s.host.ncpu),
        mem_total: i64_of(s.host.mem_total),
        generic_resources: None,
        docker_root_dir: s.data_root.display().to_string(),
        http_proxy: std::env::var("HTTP_PROXY").unwrap_or_default(),
        https_proxy: std::env::var("HTTPS_PROXY").unwrap_or_default(),
        no_proxy: std::env::var("NO_PROXY").unwrap_or_default(),
        name: s.host.hostname.clone(),
        labels: Vec::new(),
        experimental_build: false,
        server_version: VERSION.to_string(),
        runtimes,
        default_runtime: s.runtime_name.clone(),
        swarm: SwarmInfo {
            local_node_state: "inactive".to_string(),
            ..Default::default()
        },
        live_restore_enabled: false,
        isolation: String::new(),
        init_binary: String::new(),
        containerd_commit: Commit::default(),
        runc_commit: Commit::default(),
        init_commit: Commit::default(),
        security_options: Vec::new(),
        cdi_spec_dirs: Vec::new(),
        warnings: None,
    };
    http::json(StatusCode::OK, &info)
}

/// `GET /system/df[?type=volume&type=...]`: volumes with their sizes and reference counts;
/// containers, images and build cache are empty until those stores are attached to the engine.
pub fn disk_usage(engine: &Engine, q: &Query) -> Result<Response<Body>, ApiError> {
    let kinds = q.all("type");
    for k in &kinds {
        if !matches!(k.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(ApiError::bad_request(format!("unknown object type: {k}")));
        }
    }
    let want = |k: &str| kinds.is_empty() || kinds.iter().any(|x| x == k);
    let volumes = want("volume").then(|| {
        engine
            .volumes()
            .usage()
            .into_iter()
            .map(|(view, size)| {
                let mut v = to_wire(&view.volume);
                v.usage_data = Some(berth_api::volume::VolumeUsageData {
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    ref_count: i64::try_from(view.refs.len()).unwrap_or(i64::MAX),
                });
                v
            })
            .collect()
    });
    let containers = engine.containers();
    let records = containers
        .list(&berth_engine::containers::ListOptions {
            all: true,
            ..Default::default()
        })
        .unwrap_or_default();
    let images = engine.images();
    let mut layers_size = 0i64;
    let image_rows = want("image").then(|| {
        let list = images.list().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for i in &list {
            for c in i.chain_ids() {
                if seen.insert(c.clone()) {
                    layers_size += images.snapshots().size(&c).unwrap_or(0) as i64;
                }
            }
        }
        list.iter()
            .map(|i| {
                let id = i.id.to_string();
                let used = records.iter().filter(|r| r.image_id == id).count();
                serde_json::json!({
                    "Id": id,
                    "ParentId": "",
                    "RepoTags": i.repo_tags.iter().map(|t| images.familiar(t)).collect::<Vec<_>>(),
                    "RepoDigests": i.repo_digests.iter().map(|t| images.familiar(t)).collect::<Vec<_>>(),
                    "Created": i.created.as_deref()
                        .and_then(|c| berth_api::time::parse_timestamp(c).ok())
                        .map(|t| t.unix_nanos() / 1_000_000_000).unwrap_or(0),
                    "Size": i.size,
                    "SharedSize": 0,
                    "VirtualSize": i.size,
                    "Labels": {},
                    "Containers": used,
                })
            })
            .collect()
    });
    let container_rows = want("container").then(|| {
        records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "Id": r.id,
                    "Names": [r.name],
                    "Image": r.image,
                    "ImageID": r.image_id,
                    "Command": std::iter::once(r.path.clone()).chain(r.args.iter().cloned()).collect::<Vec<_>>().join(" "),
                    "Created": berth_api::time::parse_timestamp(&r.created)
                        .map(|t| t.unix_nanos() / 1_000_000_000).unwrap_or(0),
                    "SizeRw": images.snapshots().usage(&r.id).unwrap_or(0),
                    "SizeRootFs": 0,
                    "State": r.state.status.as_str(),
                    "Status": r.state.status.as_str(),
                    "Labels": r.config.labels,
                    "Mounts": r.mounts,
                })
            })
            .collect()
    });
    let du = DiskUsage {
        layers_size,
        images: image_rows,
        containers: container_rows,
        volumes,
        build_cache: want("build-cache").then(Vec::new),
    };
    Ok(http::json(StatusCode::OK, &du))
}
