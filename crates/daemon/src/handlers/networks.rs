//! `/networks`: list (filters), inspect, create, remove, connect, disconnect, prune.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::network::{
    Ipam, IpamConfig, NetworkConnectRequest, NetworkContainer, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse, NetworkResource,
};
use berth_engine::networks::{CreateNetwork, NetworkError};
use berth_engine::Engine;
use berth_network::store::Network;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};

use crate::error::ApiError;
use crate::http::{self, Body, Query};

impl From<NetworkError> for ApiError {
    fn from(e: NetworkError) -> Self {
        if e.is_forbidden() {
            return ApiError::new(StatusCode::FORBIDDEN, crate::error::chain(&e));
        }
        Self::from_engine(e.kind(), &e)
    }
}

/// Engine network → wire resource.
pub fn to_wire(n: &Network) -> NetworkResource {
    let config = n
        .pool
        .map(|p| {
            vec![IpamConfig {
                subnet: Some(p.subnet.to_string()),
                ip_range: p.range.map(|r| r.to_string()),
                gateway: Some(p.gateway.to_string()),
            }]
        })
        .unwrap_or_default();
    let prefix = n.pool.map(|p| p.subnet.prefix_len()).unwrap_or(0);
    NetworkResource {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: "local".into(),
        driver: n.driver.clone(),
        enable_ipv6: false,
        ipam: Ipam {
            driver: "default".into(),
            config: Some(config),
            options: None,
        },
        internal: n.internal,
        attachable: n.attachable,
        ingress: false,
        config_from: HashMap::from([("Network".to_string(), String::new())]),
        config_only: false,
        containers: n
            .endpoints
            .values()
            .map(|e| {
                (
                    e.container.clone(),
                    NetworkContainer {
                        name: e.name.clone(),
                        endpoint_id: e.endpoint_id.clone(),
                        mac_address: e.mac.clone(),
                        ipv4_address: format!("{}/{prefix}", e.ip),
                        ipv6_address: String::new(),
                    },
                )
            })
            .collect(),
        options: n.options.clone().into_iter().collect(),
        labels: n.labels.clone().into_iter().collect(),
    }
}

fn matches(f: &Filters, n: &Network, used: bool) -> Result<bool, ApiError> {
    if f.contains("name") && !f.get("name").iter().any(|v| n.name.contains(v)) {
        return Ok(false);
    }
    if f.contains("id") && !f.get("id").iter().any(|v| n.id.starts_with(v)) {
        return Ok(false);
    }
    if f.contains("driver") && !f.get("driver").contains(&n.driver.as_str()) {
        return Ok(false);
    }
    if f.contains("label") && !f.labels_match("label", &n.labels.clone().into_iter().collect()) {
        return Ok(false);
    }
    if f.contains("type") {
        let t = if n.predefined { "builtin" } else { "custom" };
        if !f.get("type").contains(&t) {
            return Ok(false);
        }
    }
    if let Some(d) = f.bool_value("dangling")? {
        if d == (used || n.predefined) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `GET /networks`.
pub fn list(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let f = Filters::parse(q.get("filters").unwrap_or(""))?;
    f.validate(&["name", "id", "label", "driver", "type", "dangling", "scope"])?;
    let mut out = Vec::new();
    for n in engine.networks().list() {
        let used = !n.endpoints.is_empty() || !engine.containers().on_network(&n.id).is_empty();
        if matches(&f, &n, used)? {
            let mut w = to_wire(&n);
            // docker lists without the Containers map
            w.containers.clear();
            out.push(w);
        }
    }
    Ok(http::json(StatusCode::OK, &out))
}

/// `GET /networks/{id}`.
pub fn inspect(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let n = engine.networks().get(id)?;
    Ok(http::json(StatusCode::OK, &to_wire(&n)))
}

/// `POST /networks/create`.
pub async fn create(engine: &Arc<Engine>, body: Incoming) -> Result<Response<Body>, ApiError> {
    let req: NetworkCreateRequest = http::read_json(body).await?;
    if req.enable_ipv6 == Some(true) {
        return Err(ApiError::bad_request("berth networks are IPv4 only"));
    }
    let configs = req
        .ipam
        .as_ref()
        .and_then(|i| i.config.clone())
        .unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad_request(
            "berth networks take one IPv4 subnet (IPAM.Config has more)",
        ));
    }
    let c = configs.into_iter().next().unwrap_or_default();
    let engine2 = engine.clone();
    let n = tokio::task::spawn_blocking(move || {
        engine2.networks().create(CreateNetwork {
            name: req.name,
            driver: req.driver,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.unwrap_or_default().into_iter().collect(),
            options: req.options.unwrap_or_default().into_iter().collect(),
            subnet: c.subnet,
            gateway: c.gateway,
            ip_range: c.ip_range,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(http::json(
        StatusCode::CREATED,
        &NetworkCreateResponse {
            id: n.id,
            warning: String::new(),
        },
    ))
}

/// `DELETE /networks/{id}`.
pub async fn remove(engine: &Arc<Engine>, id: &str) -> Result<Response<Body>, ApiError> {
    let n = engine.networks().get(id)?;
    let users = engine.containers().on_network(&n.id);
    if let Some(r) = users.iter().find(|r| r.state.status.is_alive()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "error while removing network: network {} id {} has active endpoints (container {})",
                n.name,
                n.id,
                r.name.trim_start_matches('/')
            ),
        ));
    }
    let engine2 = engine.clone();
    let nid = n.id.clone();
    tokio::task::spawn_blocking(move || engine2.networks().remove(&nid))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    engine: &Arc<Engine>,
    id: &str,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let req: NetworkConnectRequest = http::read_json(body).await?;
    engine
        .containers()
        .connect(&req.container, id, req.endpoint_config.as_ref())
        .await?;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    engine: &Arc<Engine>,
    id: &str,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let req: NetworkDisconnectRequest = http::read_json(body).await?;
    engine.containers().disconnect(&req.container, id).await?;
    Ok(http::empty(StatusCode::OK))
}

/// `POST /networks/prune`.
pub async fn prune(engine: &Arc<Engine>, q: &Query) -> Result<Response<Body>, ApiError> {
    let f = Filters::parse(q.get("filters").unwrap_or(""))?;
    f.validate(&["label", "label!", "until"])?;
    let until = super::images::until_secs(&f)?;
    let engine2 = engine.clone();
    let removed = tokio::task::spawn_blocking(move || {
        let containers = engine2.containers().clone();
        engine2.networks().prune(|n| {
            if !containers.on_network(&n.id).is_empty() {
                return true;
            }
            let created = berth_api::time::parse_timestamp(&n.created)
                .map(|t| t.secs)
                .unwrap_or(0);
            if until.is_some_and(|u| created >= u) {
                return true;
            }
            let labels: HashMap<String, String> = n.labels.clone().into_iter().collect();
            if f.contains("label") && !f.labels_match("label", &labels) {
                return true;
            }
            if f.contains("label!") && f.labels_match("label!", &labels) {
                return true;
            }
            false
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(http::json(
        StatusCode::OK,
        &NetworkPruneResponse {
            networks_deleted: removed,
        },
    ))
}
