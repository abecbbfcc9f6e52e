//! Manifests and indexes in both dialects (OCI image spec 1.1 and Docker v2 schema 2), their media
//! types, `--platform` parsing and platform selection from an index.
//!
//! The documents themselves are `oci_spec` types (Docker's schema 2 has the same JSON shape); this
//! module only classifies them and answers "which child matches this platform".
use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::digest::Digest;

/// Media types this crate understands.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI layer, uncompressed.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI layer, gzip.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI layer, zstd.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable layer (deprecated), gzip.
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// Docker v2 schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer, gzip.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker layer, uncompressed (seen in the wild).
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker foreign layer (Windows base layers).
    pub const DOCKER_LAYER_FOREIGN: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Docker schema 1 (refused: unsigned content, no config).
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// The media types a registry `Accept` header should list for a pull.
    pub const ACCEPT: &[&str] = &[
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ];

    /// True for an image manifest (either dialect).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// True for an index / manifest list (either dialect).
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }
}

/// Manifests bigger than this are refused (registries cap them at 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Errors parsing manifests and platforms.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of a known shape.
    #[error("manifest is not valid JSON of media type {media_type}")]
    Json {
        media_type: String,
        #[source]
        source: serde_json::Error,
    },
    /// A media type this crate does not handle.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// A bad `--platform` string.
    #[error("invalid platform {input:?}: expected os/arch[/variant]")]
    BadPlatform { input: String },
    /// No entry of the index matches.
    #[error("no manifest in the index matches platform {wanted} (available: {available})")]
    NoMatchingPlatform { wanted: Platform, available: String },
    /// A descriptor's digest is not a sha256 digest.
    #[error("descriptor digest {0:?} is not a sha256 digest")]
    BadDigest(String),
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum AnyManifest {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Box<ImageManifest>),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
}

impl AnyManifest {
    /// Parse `bytes`. The media type comes from `media_type` (e.g. the HTTP Content-Type) or the
    /// document's own `mediaType`, or failing both from its shape (`manifests` → index).
    pub fn parse(bytes: &[u8], media_type: Option<&str>) -> Result<AnyManifest, ManifestError> {
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            media_type: media_type.unwrap_or("(unknown)").to_owned(),
            source,
        })?;
        let mt = media_type
            .filter(|m| !m.is_empty() && *m != "application/json")
            .map(str::to_owned)
            .or(probe.media_type.clone())
            .unwrap_or_else(|| {
                if probe.manifests.is_some() {
                    media_types::OCI_INDEX.to_owned()
                } else {
                    media_types::OCI_MANIFEST.to_owned()
                }
            });
        if probe.schema_version == Some(1) || mt == media_types::DOCKER_SCHEMA1_SIGNED {
            return Err(ManifestError::UnsupportedMediaType(mt));
        }
        let json = |source| ManifestError::Json {
            media_type: mt.clone(),
            source,
        };
        if media_types::is_index(&mt) {
            Ok(AnyManifest::Index(
                serde_json::from_slice(bytes).map_err(json)?,
            ))
        } else if media_types::is_manifest(&mt) || probe.config.is_some() {
            Ok(AnyManifest::Manifest(Box::new(
                serde_json::from_slice(bytes).map_err(json)?,
            )))
        } else {
            Err(ManifestError::UnsupportedMediaType(mt))
        }
    }

    /// Digests this document points at (index → manifests; manifest → config, then layers).
    pub fn children(&self) -> Vec<Digest> {
        let descs: Vec<&Descriptor> = match self {
            AnyManifest::Index(i) => i.manifests().iter().collect(),
            AnyManifest::Manifest(m) => std::iter::once(m.config()).chain(m.layers()).collect(),
        };
        descs
            .into_iter()
            .filter_map(|d| descriptor_digest(d).ok())
            .collect()
    }
}

/// A descriptor's digest as a [`Digest`].
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    let s = d.digest().to_string();
    s.parse().map_err(|_| ManifestError::BadDigest(s))
}

/// A target platform: `os/arch[/variant]`, with optional os.version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// GOARCH spelling, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// e.g. `v7`, `v8`.
    pub variant: Option<String>,
    /// Only matched when set.
    pub os_version: Option<String>,
}

impl Default for Platform {
    /// linux/amd64 (berth's only target today).
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            os_version: None,
        }
    }
}

impl Platform {
    /// The platform of the running host.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
            os_version: None,
        }
    }

    fn normalized(&self) -> (String, String, Option<String>) {
        let os = self.os.to_ascii_lowercase();
        let mut arch = self.architecture.to_ascii_lowercase();
        let mut variant = self.variant.as_ref().map(|v| v.to_ascii_lowercase());
        match arch.as_str() {
            "x86_64" | "x86-64" => arch = "amd64".into(),
            "aarch64" => {
                arch = "arm64".into();
            }
            "armhf" => {
                arch = "arm".into();
                variant = Some("v7".into());
            }
            "armel" => {
                arch = "arm".into();
                variant = Some("v6".into());
            }
            "i386" | "386" => arch = "386".into(),
            _ => {}
        }
        // arm64 is v8 unless said otherwise; plain `arm` defaults to v7 (containerd's normalisation).
        if arch == "arm64" && variant.as_deref() == Some("v8") {
            variant = None;
        }
        if arch == "arm" && variant.is_none() {
            variant = Some("v7".into());
        }
        if arch == "amd64" && variant.as_deref() == Some("v1") {
            variant = None;
        }
        (os, arch, variant)
    }

    /// Whether a descriptor's platform satisfies this one. A wanted variant must match exactly;
    /// a wanted os.version must match when the candidate states one.
    pub fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        self.matches_platform(&Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
            os_version: p.os_version().clone(),
        })
    }

    /// Whether an image config (a single-platform image) is of this platform.
    pub fn matches_config(&self, c: &oci_spec::image::ImageConfiguration) -> bool {
        self.matches_platform(&Platform {
            os: c.os().to_string(),
            architecture: c.architecture().to_string(),
            variant: c.variant().clone(),
            os_version: c.os_version().clone(),
        })
    }

    fn matches_platform(&self, cand: &Platform) -> bool {
        let (wo, wa, wv) = self.normalized();
        let (co, ca, cv) = cand.normalized();
        if wo != co || wa != ca {
            return false;
        }
        if wv.is_some() && wv != cv {
            return false;
        }
        match (&self.os_version, &cand.os_version) {
            (Some(w), Some(c)) => w == c,
            _ => true,
        }
    }
}

impl FromStr for Platform {
    type Err = ManifestError;
    /// `os/arch[/variant]`, e.g. `linux/arm64/v8`; an OS alone means this host's architecture
    /// on it, an architecture alone means linux on it (containerd's reading).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ManifestError::BadPlatform {
            input: s.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(bad());
        }
        const OSES: &[&str] = &[
            "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
        ];
        const ARCHES: &[&str] = &[
            "amd64", "x86_64", "x86-64", "arm64", "aarch64", "arm", "armhf", "armel", "386",
            "i386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64",
        ];
        let host = Platform::host();
        let (os, arch, variant) = match parts.as_slice() {
            // one part, as containerd reads it: an OS on this host's architecture, or an
            // architecture on linux
            [os] if OSES.contains(&os.to_ascii_lowercase().as_str()) => {
                (*os, host.architecture.as_str(), None)
            }
            [arch] if ARCHES.contains(&arch.to_ascii_lowercase().as_str()) => {
                ("linux", *arch, None)
            }
            [_] => return Err(bad()),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some((*v).to_owned())),
            _ => return Err(bad()),
        };
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            architecture: arch.to_ascii_lowercase(),
            variant,
            os_version: None,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Pick the manifest descriptor for `platform` from an index. Entries without a platform (e.g.
/// attestation manifests) are skipped. Among matches, one that names the exact variant wins, then
/// the first in index order (the registry's preference).
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    let mut best: Option<&Descriptor> = None;
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        if !platform.matches(p) {
            continue;
        }
        // Skip buildkit attestations ("unknown/unknown" is filtered above; be explicit anyway).
        if d.annotations()
            .as_ref()
            .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
        {
            continue;
        }
        let exact_variant = platform.variant.is_some() && p.variant() == &platform.variant;
        match best {
            None => best = Some(d),
            Some(b) => {
                let b_exact = platform.variant.is_some()
                    && b.platform().as_ref().and_then(|bp| bp.variant().clone())
                        == platform.variant;
                if exact_variant && !b_exact {
                    best = Some(d);
                }
            }
        }
    }
    best.ok_or_else(|| ManifestError::NoMatchingPlatform {
        wanted: platform.clone(),
        available: index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| {
                let mut s = format!("{}/{}", p.os(), p.architecture());
                if let Some(v) = p.variant() {
                    s.push('/');
                    s.push_str(v);
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index() -> ImageIndex {
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
            {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{D1}","size":1,"platform":{{"architecture":"arm","os":"linux","variant":"v6"}}}},
            {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{D2}","size":1,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}},
            {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{D3}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        match AnyManifest::parse(j.as_bytes(), None).expect("parse") {
            AnyManifest::Index(i) => *i,
            AnyManifest::Manifest(_) => panic!("index expected"),
        }
    }

    #[test]
    fn platform_parse_and_display() {
        let p: Platform = "linux/arm64/v8".parse().expect("p");
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "arm64".parse().expect("p");
        assert_eq!(p.to_string(), "linux/arm64");
        let p: Platform = "linux".parse().expect("p");
        assert_eq!(
            p,
            Platform::host(),
            "an OS alone is on this host's architecture"
        );
        for bad in ["", "nosuch", "linux//amd64", "a/b/c/d", "linux/ amd64"] {
            let e = bad.parse::<Platform>().expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn select_picks_default_and_variants() {
        let idx = index();
        let d = select_platform(&idx, &Platform::default()).expect("amd64");
        assert_eq!(d.digest().to_string(), D3);
        let d = select_platform(&idx, &"linux/arm/v6".parse().expect("p")).expect("v6");
        assert_eq!(d.digest().to_string(), D1);
        // plain arm means v7
        let d = select_platform(&idx, &"linux/arm".parse().expect("p")).expect("v7");
        assert_eq!(d.digest().to_string(), D2);
        let e = select_platform(&idx, &"linux/s390x".parse().expect("p")).expect_err("none");
        assert!(e.to_string().contains("linux/s390x"), "{e}");
        assert!(e.to_string().contains("linux/amd64"), "{e}");
    }

    #[test]
    fn classify_manifests() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{D1}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{D2}","size":1}}]}}"#
        );
        let parsed = AnyManifest::parse(m.as_bytes(), None).expect("parse");
        assert!(matches!(parsed, AnyManifest::Manifest(_)));
        assert_eq!(
            parsed
                .children()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec![D1, D2]
        );
        assert!(AnyManifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).is_err());
        assert!(AnyManifest::parse(b"not json", None).is_err());
    }
}
