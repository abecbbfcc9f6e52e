//! Image references (`busybox`, `host:5000/ns/img:tag`, `img@sha256:…`) and the registry settings that
//! decide where a short name goes.
//!
//! Parsing follows docker's `distribution/reference` grammar: the first path component is a registry
//! host when it contains `.` or `:`, is `localhost`, or has an upper-case letter; otherwise the name
//! belongs to the *default registry*. The default registry is a setting (`BERTH_DEFAULT_REGISTRY`, or
//! [`RegistrySettings::default_registry`] from the engine's config) so that nothing — tests above all —
//! ever reaches docker.io unless asked to. Single-component names on the default registry get docker's
//! `library/` prefix. A tag defaults to `latest` unless a digest is given.
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The registry short names resolve to when nothing else is configured.
pub const DOCKER_HUB: &str = "docker.io";
/// Environment variable that overrides the default registry for short names.
pub const DEFAULT_REGISTRY_ENV: &str = "BERTH_DEFAULT_REGISTRY";
/// Environment variable listing extra insecure (plain http) registries, comma separated.
pub const INSECURE_REGISTRIES_ENV: &str = "BERTH_INSECURE_REGISTRIES";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Why a reference string was refused; each variant names the offending part.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The reference was empty.
    #[error("invalid reference: empty string")]
    Empty,
    /// A repository path component broke the grammar (lowercase alphanumerics and separators).
    #[error("invalid reference {reference:?}: repository component {component:?} must be lowercase letters, digits and separators (., _, __, -) between them")]
    Component {
        reference: String,
        component: String,
    },
    /// The registry host part was malformed.
    #[error("invalid reference {reference:?}: registry host {host:?} is not a valid host[:port]")]
    Host { reference: String, host: String },
    /// The tag broke `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("invalid reference {reference:?}: tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    Tag { reference: String, tag: String },
    /// The digest was not `algorithm:hex` (sha256 needs 64 lowercase hex digits).
    #[error("invalid reference {reference:?}: digest {digest:?} must be algorithm:hex (sha256 with 64 lowercase hex digits)")]
    Digest { reference: String, digest: String },
    /// The repository name was longer than 255 characters.
    #[error("invalid reference {reference:?}: repository name is {len} characters, more than 255")]
    NameTooLong { reference: String, len: usize },
}

/// A fully qualified image reference: registry, repository path, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses `s` with the default registry taken from the environment (see [`RegistrySettings::from_env`]).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        Self::parse_with_default(s, &RegistrySettings::from_env().default_registry)
    }

    /// Parses `s`; a name without a registry host goes to `default_registry`.
    pub fn parse_with_default(s: &str, default_registry: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                validate_digest(d).map_err(|()| ReferenceError::Digest {
                    reference: s.to_string(),
                    digest: d.to_string(),
                })?;
                (rest, Some(d.to_string()))
            }
            None => (s, None),
        };
        // the tag is after the last ':' that follows the last '/' (a ':' before it is a port)
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(ReferenceError::Tag {
                        reference: s.to_string(),
                        tag: tag.to_string(),
                    });
                }
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path, defaulted) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                if !valid_host(first) {
                    return Err(ReferenceError::Host {
                        reference: s.to_string(),
                        host: first.to_string(),
                    });
                }
                (normalize_registry(first), remainder.to_string(), false)
            }
            _ => (normalize_registry(default_registry), name.to_string(), true),
        };
        let repository = if (defaulted || registry == DOCKER_HUB) && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        for component in repository.split('/') {
            if !valid_component(component) {
                return Err(ReferenceError::Component {
                    reference: s.to_string(),
                    component: component.to_string(),
                });
            }
        }
        let full_len = registry.len() + 1 + repository.len();
        if full_len > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong {
                reference: s.to_string(),
                len: full_len,
            });
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Registry host as used for requests' identity (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// Repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }
    /// The tag, if any (always set when no digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest (`sha256:…`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag {
                reference: self.to_string(),
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
    /// The same repository pinned to `digest` (tag dropped): the "repo digest" docker records.
    pub fn with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        validate_digest(digest).map_err(|()| ReferenceError::Digest {
            reference: self.to_string(),
            digest: digest.to_string(),
        })?;
        Ok(Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }
    /// docker's short form: `busybox:latest` for `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_deref());
        s
    }
}

fn push_suffix(s: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d);
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        push_suffix(&mut s, self.tag.as_deref(), self.digest.as_deref());
        f.write_str(&s)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// `index.docker.io` and `registry-1.docker.io` are docker.io; everything else is kept (lower-cased host).
pub fn normalize_registry(host: &str) -> String {
    let host = host
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn validate_digest(d: &str) -> Result<(), ()> {
    let (algo, hex) = d.split_once(':').ok_or(())?;
    let algo_ok = !algo.is_empty()
        && algo.as_bytes()[0].is_ascii_alphabetic()
        && algo
            .bytes()
            .all(|x| x.is_ascii_alphanumeric() || b"-_+.".contains(&x));
    if !algo_ok || hex.len() < 32 || !hex.bytes().all(|x| x.is_ascii_hexdigit()) {
        return Err(());
    }
    if algo == "sha256" && (hex.len() != 64 || hex.bytes().any(|x| x.is_ascii_uppercase())) {
        return Err(());
    }
    Ok(())
}

fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("ipv6", Some(p)),
            None if after.is_empty() => ("ipv6", None),
            None => return false,
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|x| x.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        })
}

/// Where images come from: the default registry for short names, per-registry mirrors, and which
/// registries may be spoken to over plain http. The engine fills this from its config file; the
/// environment can override the default registry and add insecure registries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct RegistrySettings {
    /// Registry for names without a host part (`busybox`). docker.io unless configured.
    pub default_registry: String,
    /// Mirrors tried in order before the registry itself, keyed by registry host (`docker.io`).
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registries (host[:port]) reached over plain http. Loopback addresses always are.
    pub insecure_registries: Vec<String>,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            default_registry: DOCKER_HUB.to_string(),
            mirrors: BTreeMap::new(),
            insecure_registries: Vec::new(),
        }
    }
}

impl RegistrySettings {
    /// Defaults, overridden by `BERTH_DEFAULT_REGISTRY` and extended by `BERTH_INSECURE_REGISTRIES`.
    pub fn from_env() -> Self {
        Self::default().with_env_overrides()
    }

    /// Applies the environment on top of settings read from a config file.
    pub fn with_env_overrides(mut self) -> Self {
        if let Ok(r) = std::env::var(DEFAULT_REGISTRY_ENV) {
            if !r.trim().is_empty() {
                self.default_registry = normalize_registry(r.trim());
            }
        }
        if let Ok(list) = std::env::var(INSECURE_REGISTRIES_ENV) {
            self.insecure_registries.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(normalize_registry),
            );
        }
        self
    }

    /// Parses a reference with these settings' default registry.
    pub fn parse(&self, s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_with_default(s, &self.default_registry)
    }

    /// Endpoints to try for `registry`, mirrors first, the registry itself last.
    pub fn endpoints(&self, registry: &str) -> Vec<String> {
        let mut v: Vec<String> = self.mirrors.get(registry).cloned().unwrap_or_default();
        v.push(registry.to_string());
        v
    }

    /// Whether `host` (host[:port]) is spoken to over plain http: loopback, or listed as insecure.
    pub fn is_insecure(&self, host: &str) -> bool {
        is_loopback_host(host) || self.insecure_registries.iter().any(|h| h == host)
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    if bare == "localhost" {
        return true;
    }
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse_with_default(s, DOCKER_HUB).expect(s)
    }

    #[test]
    fn normalizes_short_names() {
        assert_eq!(p("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(
            p("busybox:1.36").to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(p("user/img").to_string(), "docker.io/user/img:latest");
        assert_eq!(
            p("index.docker.io/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(p("busybox").familiar(), "busybox:latest");
        assert_eq!(p("user/img:t").familiar(), "user/img:t");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let r = p("host:5000/ns/img:tag");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("host:5000", "ns/img", Some("tag"))
        );
        assert_eq!(r.manifest_reference(), "tag");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("img@{d}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.manifest_reference(), d);
        let r = p(&format!("localhost/img:tag@{d}"));
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("localhost", "img", Some("tag"))
        );
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.to_string(), format!("localhost/img:tag@{d}"));
        let r = p("[::1]:5000/img");
        assert_eq!(r.registry(), "[::1]:5000");
        let r = p("127.0.0.1:5000/a/b/c");
        assert_eq!(r.repository(), "a/b/c");
        assert_eq!(r.familiar(), "127.0.0.1:5000/a/b/c:latest");
    }

    #[test]
    fn default_registry_is_a_setting() {
        let s = RegistrySettings {
            default_registry: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        let r = s.parse("busybox").expect("parse");
        assert_eq!(r.to_string(), "127.0.0.1:5000/library/busybox:latest");
        assert!(s.is_insecure(r.registry()));
        let r = s.parse("example.com/x").expect("parse");
        assert_eq!(r.registry(), "example.com");
        assert!(!s.is_insecure("example.com"));
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = Reference::parse_with_default("Busybox", DOCKER_HUB).unwrap_err();
        assert!(
            matches!(&e, ReferenceError::Component { component, .. } if component == "Busybox"),
            "{e}"
        );
        let e = Reference::parse_with_default("busybox:bad tag", DOCKER_HUB).unwrap_err();
        assert!(
            matches!(&e, ReferenceError::Tag { tag, .. } if tag == "bad tag"),
            "{e}"
        );
        let e = Reference::parse_with_default("busybox@sha256:abc", DOCKER_HUB).unwrap_err();
        assert!(
            matches!(&e, ReferenceError::Digest { digest, .. } if digest == "sha256:abc"),
            "{e}"
        );
        let e = Reference::parse_with_default("bad_host.:99/x", DOCKER_HUB).unwrap_err();
        assert!(matches!(&e, ReferenceError::Host { .. }), "{e}");
        let e = Reference::parse_with_default("a//b", DOCKER_HUB).unwrap_err();
        assert!(matches!(&e, ReferenceError::Component { component, .. } if component.is_empty()));
        assert_eq!(
            Reference::parse_with_default("", DOCKER_HUB),
            Err(ReferenceError::Empty)
        );
        let e = Reference::parse_with_default("a--b/c__d/e.f/g-h", DOCKER_HUB);
        assert!(e.is_ok(), "{e:?}");
        assert!(Reference::parse_with_default("a___b", DOCKER_HUB).is_err());
        assert!(Reference::parse_with_default("-ab", DOCKER_HUB).is_err());
        assert!(Reference::parse_with_default(&"a".repeat(300), DOCKER_HUB).is_err());
    }

    #[test]
    fn loopback_detection() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.3.4.5:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "[::2]:1"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
