//! Volume wire types: `POST /volumes/create`, `GET /volumes`, `GET /volumes/{name}`,
//! `POST /volumes/prune`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A volume as `GET /volumes/{name}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<HashMap<String, serde_json::Value>>,
    /// Docker sends `null` for a volume without labels; clients accept both.
    pub labels: Option<HashMap<String, String>>,
    pub scope: String,
    pub options: Option<HashMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsageData>,
}

/// Size and reference count (`system df -v`); `-1` when not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeUsageData {
    pub size: i64,
    pub ref_count: i64,
}

/// Body of `POST /volumes/create`; every field may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeCreateOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<HashMap<String, String>>,
    /// Swarm cluster volumes: accepted and refused by the daemon when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_volume_spec: Option<serde_json::Value>,
}

/// Body of `GET /volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeListResponse {
    pub volumes: Option<Vec<Volume>>,
    pub warnings: Option<Vec<String>>,
}

/// Body of `POST /volumes/prune`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct VolumePruneResponse {
    pub volumes_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_options_accept_what_clients_send() {
        // docker CLI 28
        let o: VolumeCreateOptions = serde_json::from_str(
            r#"{"Driver":"local","DriverOpts":{},"Labels":{"a":"b"},"Name":"v"}"#,
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("v"));
        // docker-py sends only what was given
        let o: VolumeCreateOptions = serde_json::from_str(r#"{"Name":"v","Driver":null}"#).unwrap();
        assert_eq!(o.driver, None);
        let o: VolumeCreateOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o, VolumeCreateOptions::default());
    }

    #[test]
    fn volume_uses_dockers_field_names() {
        let v = Volume {
            name: "v".into(),
            driver: "local".into(),
            mountpoint: "/m".into(),
            created_at: Some("2023-11-14T22:13:20Z".into()),
            scope: "local".into(),
            ..Default::default()
        };
        let j = serde_json::to_value(&v).unwrap();
        for k in [
            "Name",
            "Driver",
            "Mountpoint",
            "CreatedAt",
            "Labels",
            "Scope",
            "Options",
        ] {
            assert!(j.get(k).is_some(), "{k} missing in {j}");
        }
        assert!(j.get("UsageData").is_none());
    }
}
