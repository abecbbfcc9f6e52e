//! `features`: the runtime-spec features document (what this runtime implements): OCI versions,
//! hooks, mount options, namespaces (incl. time), capabilities, cgroup drivers, seccomp actions /
//! operators / architectures, AppArmor/SELinux, annotations.

const FEATURES: &str = include_str!("features.json");

/// The features JSON text.
pub fn features_json() -> &'static str {
    FEATURES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_parse_with_oci_types() {
        let f: oci_spec::runtime::Features =
            serde_json::from_str(features_json()).expect("features parse");
        let ns = f
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .expect("namespaces");
        assert!(ns.iter().any(|n| n.to_string() == "time"));
    }
}
