//! `/volumes`: create, list, inspect, remove, prune.

use berth_api::filters::Filters;
use berth_api::time::Timestamp;
use berth_api::version::ApiVersion;
use berth_api::volume::{Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse};
use berth_engine::volumes::{CreateRequest, Selector, VolumeView};
use berth_engine::Engine;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};

use crate::error::ApiError;
use crate::http::{self, Body, Query};

/// Engine volume → wire volume.
pub fn to_wire(v: &berth_engine::volumes::Volume) -> Volume {
    Volume {
        name: v.name.clone(),
        driver: v.driver.clone(),
        mountpoint: v.mountpoint.display().to_string(),
        created_at: Some(
            Timestamp {
                secs: v.created_at,
                nanos: 0,
            }
            .rfc3339(),
        ),
        status: None,
        labels: Some(
            v.labels
                .iter()
                .map(|(k, val)| (k.clone(), val.clone()))
                .collect(),
        ),
        scope: "local".to_string(),
        options: Some(
            v.options
                .iter()
                .map(|(k, val)| (k.clone(), val.clone()))
                .collect(),
        ),
        usage_data: None,
    }
}

fn selector(f: &Filters) -> Result<Selector, ApiError> {
    let own = |k: &str| f.get(k).into_iter().map(String::from).collect::<Vec<_>>();
    Ok(Selector {
        name: own("name"),
        driver: own("driver"),
        label: own("label"),
        label_not: own("label!"),
        dangling: f.bool_value("dangling")?,
    })
}

/// `POST /volumes/create`.
pub async fn create(engine: &Engine, body: Incoming) -> Result<Response<Body>, ApiError> {
    let opts: VolumeCreateOptions = http::read_json(body).await?;
    if opts.cluster_volume_spec.is_some() {
        return Err(ApiError::bad_request(
            "cluster volumes need swarm mode, which berth does not have",
        ));
    }
    let v = engine.volumes().create(CreateRequest {
        name: opts.name,
        driver: opts.driver,
        options: opts.driver_opts.unwrap_or_default(),
        labels: opts.labels.unwrap_or_default(),
    })?;
    Ok(http::json(StatusCode::CREATED, &to_wire(&v)))
}

/// `GET /volumes`.
pub fn list(engine: &Engine, q: &Query) -> Result<Response<Body>, ApiError> {
    let f = Filters::parse(q.get("filters").unwrap_or(""))?;
    f.validate(&["name", "driver", "label", "dangling"])?;
    let vols = engine.volumes().list(&selector(&f)?)?;
    let resp = VolumeListResponse {
        volumes: Some(vols.iter().map(|v| to_wire(&v.volume)).collect()),
        warnings: None,
    };
    Ok(http::json(StatusCode::OK, &resp))
}

/// `GET /volumes/{name}`.
pub fn inspect(engine: &Engine, name: &str) -> Result<Response<Body>, ApiError> {
    let VolumeView { volume, .. } = engine.volumes().get(name)?;
    Ok(http::json(StatusCode::OK, &to_wire(&volume)))
}

/// `DELETE /volumes/{name}?force=`.
pub fn remove(engine: &Engine, name: &str, q: &Query) -> Result<Response<Body>, ApiError> {
    engine.volumes().remove(name, q.bool("force"))?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune`: before API 1.42 every unused volume, since then only anonymous ones
/// unless `all=true`.
pub fn prune(engine: &Engine, q: &Query, version: ApiVersion) -> Result<Response<Body>, ApiError> {
    let f = Filters::parse(q.get("filters").unwrap_or(""))?;
    f.validate(&["label", "label!", "all"])?;
    let all = version < ApiVersion::new(1, 42) || f.bool_value("all")?.unwrap_or(false);
    let report = engine.volumes().prune(&selector(&f)?, all)?;
    let resp = VolumePruneResponse {
        volumes_deleted: Some(report.deleted),
        space_reclaimed: report.space_reclaimed,
    };
    Ok(http::json(StatusCode::OK, &resp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn maps_engine_volume_to_wire() {
        let v = berth_engine::volumes::Volume {
            name: "v".into(),
            driver: "local".into(),
            labels: BTreeMap::from([("a".to_string(), "b".to_string())]),
            options: BTreeMap::new(),
            created_at: 1_700_000_000,
            mountpoint: "/var/lib/berth/volumes/v/_data".into(),
        };
        let w = to_wire(&v);
        assert_eq!(w.created_at.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(w.labels.unwrap().get("a").map(String::as_str), Some("b"));
        assert_eq!(w.scope, "local");
        assert_eq!(w.mountpoint, "/var/lib/berth/volumes/v/_data");
    }
}
