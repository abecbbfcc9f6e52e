//! Docker's default seccomp profile, turned into the OCI `linux.seccomp` object.
//!
//! Docker's profile format (also what podman ships as `/usr/share/containers/seccomp.json`)
//! has per-rule `includes`/`excludes` on capabilities and architectures; this module resolves
//! them for the container's capability set on this machine's architecture, like docker's
//! `seccomp.GetDefaultProfile`. The profile is read from the system file when present (it is
//! kept current by the distribution), else from a copy of the same file compiled in.

use serde::Deserialize;
use serde_json::{json, Value};

/// Where the system's profile lives.
pub const SYSTEM_PROFILE: &str = "/usr/share/containers/seccomp.json";

const BUILTIN: &str = include_str!("seccomp-default.json");

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Filter {
    caps: Vec<String>,
    arches: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
    #[serde(default)]
    errno_ret: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

/// Docker's name for this machine's architecture.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn seccomp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "x86" => "SCMP_ARCH_X86",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// The default profile for a container with `caps`; `None` when no profile can be read.
pub fn default_profile(caps: &[String]) -> Option<Value> {
    if let Ok(data) = std::fs::read(SYSTEM_PROFILE) {
        match from_docker_json(&data, caps) {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!(path = SYSTEM_PROFILE, error = %e, "seccomp profile unusable, using the built-in one")
            }
        }
    }
    from_docker_json(BUILTIN.as_bytes(), caps).ok()
}

/// Convert a docker-format profile to OCI for `caps` on this architecture.
pub fn from_docker_json(data: &[u8], caps: &[String]) -> Result<Value, serde_json::Error> {
    let p: Profile = serde_json::from_slice(data)?;
    let arch = go_arch();
    let has = |c: &String| caps.contains(c);
    let mut arches = Vec::new();
    for m in &p.arch_map {
        if m.architecture == seccomp_arch() {
            arches.push(m.architecture.clone());
            arches.extend(m.sub_architectures.iter().cloned());
        }
    }
    let mut syscalls = Vec::new();
    for r in &p.syscalls {
        if !r.includes.arches.is_empty() && !r.includes.arches.iter().any(|a| a == arch) {
            continue;
        }
        if r.excludes.arches.iter().any(|a| a == arch) {
            continue;
        }
        if !r.includes.caps.is_empty() && !r.includes.caps.iter().all(has) {
            continue;
        }
        if r.excludes.caps.iter().any(has) {
            continue;
        }
        let mut names = r.names.clone();
        if let Some(n) = &r.name {
            names.push(n.clone());
        }
        if names.is_empty() {
            continue;
        }
        let mut s = json!({"names": names, "action": r.action});
        if let Some(a) = r.args.as_ref().filter(|a| !a.is_empty()) {
            s["args"] = json!(a);
        }
        if let Some(e) = r.errno_ret {
            s["errnoRet"] = json!(e);
        }
        syscalls.push(s);
    }
    let mut out = json!({"defaultAction": p.default_action, "syscalls": syscalls});
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_decide_which_rules_apply() {
        let none = from_docker_json(BUILTIN.as_bytes(), &[]).expect("profile");
        let admin =
            from_docker_json(BUILTIN.as_bytes(), &["CAP_SYS_ADMIN".to_string()]).expect("profile");
        let allowed = |v: &Value, name: &str| {
            v["syscalls"].as_array().expect("syscalls").iter().any(|s| {
                s["action"] == "SCMP_ACT_ALLOW"
                    && s["names"]
                        .as_array()
                        .is_some_and(|n| n.iter().any(|x| x == name))
            })
        };
        assert!(allowed(&none, "read"));
        assert!(!allowed(&none, "bpf"));
        assert!(allowed(&admin, "bpf"));
        assert_eq!(none["defaultAction"], "SCMP_ACT_ERRNO");
    }
}
