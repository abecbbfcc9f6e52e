//! `/networks` wire types: create request, the network resource (list and inspect),
//! connect/disconnect bodies, prune answer.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One `IPAM.Config` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// `IPAM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    pub driver: String,
    pub config: Option<Vec<IpamConfig>>,
    pub options: Option<HashMap<String, String>>,
}

/// Body of `POST /networks/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    pub name: String,
    pub check_duplicate: Option<bool>,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub options: Option<HashMap<String, String>>,
    pub labels: Option<HashMap<String, String>>,
}

/// Answer of `POST /networks/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// A container in a network's `Containers` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// A network as list and inspect show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: HashMap<String, String>,
    pub config_only: bool,
    pub containers: HashMap<String, NetworkContainer>,
    pub options: HashMap<String, String>,
    pub labels: HashMap<String, String>,
}

/// Body of `POST /networks/{id}/connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnectRequest {
    pub container: String,
    pub endpoint_config: Option<serde_json::Value>,
}

/// Body of `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
}

/// Answer of `POST /networks/prune`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPruneResponse {
    pub networks_deleted: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_from_docker_cli() {
        let r: NetworkCreateRequest = serde_json::from_str(
            r#"{"Name":"n","CheckDuplicate":true,"Driver":"bridge","Internal":true,
            "IPAM":{"Driver":"default","Config":[{"Subnet":"10.1.0.0/24","IPRange":"10.1.0.128/25","Gateway":"10.1.0.254"}]},
            "Options":{"com.docker.network.bridge.name":"br9"},"Labels":{"a":"b"}}"#,
        )
        .expect("parse");
        assert!(r.internal);
        let c = &r.ipam.expect("ipam").config.expect("config")[0];
        assert_eq!(c.ip_range.as_deref(), Some("10.1.0.128/25"));
        assert_eq!(c.gateway.as_deref(), Some("10.1.0.254"));
        let v = serde_json::to_value(NetworkResource::default()).expect("json");
        assert!(v.get("IPAM").is_some() && v.get("EnableIPv6").is_some());
    }
}
