//! `push`: an image from the content store to a registry.
//!
//! Layers go first (concurrently): a layer the registry already has is skipped; one that an image
//! in the local database was pulled from or pushed to another repository of the same registry is
//! mounted from there (`POST …/blobs/uploads/?mount=&from=`); the rest are uploaded, in chunks when
//! `chunk_size` is set. Then the config, then the manifest with its original bytes, so the digest
//! the registry reports is the one stored locally. The pushed repo digest is added to the record.
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_spec::image::ImageManifest;

use crate::auth::{AuthError, AuthStore, Credentials};
use crate::digest::Digest;
use crate::images::{ImageError, ImageRecord, ImageStore};
use crate::progress::{LayerState, ProgressEvent, ProgressFn};
use crate::reference::{Reference, RegistrySettings};
use crate::registry::{BlobPushOutcome, RegistryClient, RegistryError, RetryPolicy};
use crate::store::{ContentStore, StoreError};

/// Errors of a push; each names the reference.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The image is not in the local database.
    #[error("push {reference}: no such local image")]
    NotFound {
        /// The reference pushed.
        reference: String,
        /// Cause.
        #[source]
        source: ImageError,
    },
    /// A reference with only a digest cannot be pushed (a tag names what to write).
    #[error("push {reference}: a tag is needed to push")]
    NoTag {
        /// The reference pushed.
        reference: String,
    },
    /// Reading the image's blobs failed.
    #[error("push {reference}: content store")]
    Store {
        /// The reference pushed.
        reference: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The stored manifest is not valid.
    #[error("push {reference}: invalid stored manifest {digest}: {reason}")]
    Invalid {
        /// The reference pushed.
        reference: String,
        /// The manifest.
        digest: String,
        /// Why.
        reason: String,
    },
    /// Credentials could not be read.
    #[error("push {reference}: reading credentials")]
    Auth {
        /// The reference pushed.
        reference: String,
        /// Cause.
        #[source]
        source: AuthError,
    },
    /// The registry refused or failed.
    #[error("push {reference}")]
    Registry {
        /// The reference pushed.
        reference: String,
        /// Cause.
        #[source]
        source: RegistryError,
    },
    /// Recording the pushed digest failed.
    #[error("push {reference}: recording the repo digest")]
    Images {
        /// The reference pushed.
        reference: String,
        /// Cause.
        #[source]
        source: ImageError,
    },
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Insecure registries (mirrors are for pulls only).
    pub settings: RegistrySettings,
    /// Credentials to use; else looked up in `auth`.
    pub credentials: Option<Credentials>,
    /// Where stored logins are.
    pub auth: Option<AuthStore>,
    /// Upload blobs larger than this in chunks of this size; `None`: one PUT per blob.
    pub chunk_size: Option<u64>,
    /// Blobs uploaded at once.
    pub max_concurrent_uploads: usize,
    /// Retries of transient registry failures.
    pub retry: RetryPolicy,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            settings: RegistrySettings::from_env(),
            credentials: None,
            auth: None,
            chunk_size: None,
            max_concurrent_uploads: 3,
            retry: RetryPolicy::default(),
        }
    }
}

/// What was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// Digest of the manifest on the registry.
    pub digest: String,
    /// Manifest size.
    pub size: u64,
    /// Per blob (layers, then config): how it got there.
    pub blobs: Vec<(String, BlobPushOutcome)>,
}

/// Pushes the local image named `reference` to its registry.
pub async fn push(
    reference: &Reference,
    opts: &PushOptions,
    store: &ContentStore,
    images: &ImageStore,
    progress: ProgressFn<'_>,
) -> Result<PushResult, PushError> {
    let rs = reference.to_string();
    let Some(tag) = reference.tag() else {
        return Err(PushError::NoTag { reference: rs });
    };
    let record = images.resolve(&rs).map_err(|source| PushError::NotFound {
        reference: rs.clone(),
        source,
    })?;
    let store_err = |source| PushError::Store {
        reference: rs.clone(),
        source,
    };
    let reg_err = |source| PushError::Registry {
        reference: rs.clone(),
        source,
    };
    let manifest_bytes = Bytes::from(store.read(&record.manifest).map_err(store_err)?);
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| PushError::Invalid {
            reference: rs.clone(),
            digest: record.manifest.to_string(),
            reason: e.to_string(),
        })?;
    let creds = match &opts.credentials {
        Some(c) => Some(c.clone()),
        None => match &opts.auth {
            Some(a) => {
                a.credentials_for(reference.registry())
                    .map_err(|source| PushError::Auth {
                        reference: rs.clone(),
                        source,
                    })?
            }
            None => None,
        },
    };
    let client = RegistryClient::new(reference.registry(), &opts.settings, creds)
        .map_err(reg_err)?
        .with_retry(opts.retry);
    let repo = reference.repository();
    progress(ProgressEvent::PushTarget {
        name: reference.name(),
    });

    let mount_sources = mount_sources(images, reference);
    let mut blobs: Vec<(Digest, u64, bool)> = Vec::new();
    for l in manifest.layers() {
        let d: Digest =
            l.digest()
                .to_string()
                .parse()
                .map_err(|e: crate::digest::DigestError| PushError::Invalid {
                    reference: rs.clone(),
                    digest: record.manifest.to_string(),
                    reason: e.to_string(),
                })?;
        progress(ProgressEvent::Layer {
            id: d.hex()[..12].to_string(),
            state: LayerState::Preparing,
        });
        blobs.push((d, l.size(), true));
    }
    blobs.push((record.id.clone(), manifest.config().size(), false));
    let outcomes: Vec<(String, BlobPushOutcome)> = stream::iter(0..blobs.len())
        .map(|i| {
            // an index, not a reference, keeps the future Send
            let (digest, size, is_layer) = &blobs[i];
            let from = mount_sources
                .iter()
                .find(|(_, r)| r.layers.contains(digest) || r.id == *digest)
                .map(|(repo, _)| repo.as_str());
            push_one(
                &client, repo, store, digest, *size, *is_layer, from, opts, progress, &rs,
            )
        })
        .buffer_unordered(opts.max_concurrent_uploads.max(1))
        .try_collect()
        .await?;
    let mut ordered = Vec::new();
    for (d, _, _) in &blobs {
        if let Some(o) = outcomes.iter().find(|(od, _)| *od == d.to_string()) {
            ordered.push(o.clone());
        }
    }

    let digest = client
        .put_manifest(
            repo,
            tag,
            &record.manifest_media_type,
            manifest_bytes.clone(),
        )
        .await
        .map_err(reg_err)?;
    progress(ProgressEvent::Digest {
        tag: Some(tag.to_string()),
        digest: digest.clone(),
        size: Some(manifest_bytes.len() as u64),
    });
    let repo_digest = format!("{}@{digest}", reference.name());
    if !record.repo_digests.contains(&repo_digest) {
        let mut updated = record.clone();
        updated.repo_digests.push(repo_digest);
        images.put(updated).map_err(|source| PushError::Images {
            reference: rs.clone(),
            source,
        })?;
    }
    Ok(PushResult {
        digest,
        size: manifest_bytes.len() as u64,
        blobs: ordered,
    })
}

/// Repositories on the same registry that local images came from or went to, with their record:
/// candidates to mount blobs from.
fn mount_sources(images: &ImageStore, target: &Reference) -> Vec<(String, ImageRecord)> {
    let mut out = Vec::new();
    let Ok(list) = images.list() else {
        return out;
    };
    for rec in list {
        for name in rec.repo_digests.iter().chain(rec.repo_tags.iter()) {
            let Ok(r) = Reference::parse_with_default(name, target.registry()) else {
                continue;
            };
            if r.registry() == target.registry()
                && r.repository() != target.repository()
                && !out.iter().any(|(repo, x): &(String, ImageRecord)| {
                    *repo == r.repository() && x.id == rec.id
                })
            {
                out.push((r.repository().to_string(), rec.clone()));
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn push_one(
    client: &RegistryClient,
    repo: &str,
    store: &ContentStore,
    digest: &Digest,
    size: u64,
    is_layer: bool,
    mount_from: Option<&str>,
    opts: &PushOptions,
    progress: ProgressFn<'_>,
    rs: &str,
) -> Result<(String, BlobPushOutcome), PushError> {
    let id = digest.hex()[..12].to_string();
    let path = store.blob_path(digest);
    if !path.is_file() {
        return Err(PushError::Store {
            reference: rs.to_string(),
            source: StoreError::NotFound(digest.clone()),
        });
    }
    let report = |current: u64| {
        if is_layer {
            progress(ProgressEvent::Layer {
                id: id.clone(),
                state: LayerState::Pushing {
                    current,
                    total: Some(size),
                },
            });
        }
    };
    let outcome = client
        .push_blob(
            repo,
            &digest.to_string(),
            size,
            &path,
            mount_from,
            opts.chunk_size,
            &report,
        )
        .await
        .map_err(|source| PushError::Registry {
            reference: rs.to_string(),
            source,
        })?;
    if is_layer {
        let state = match &outcome {
            BlobPushOutcome::Exists => LayerState::LayerAlreadyExists,
            BlobPushOutcome::Mounted { from } => LayerState::MountedFrom {
                repository: from.clone(),
            },
            BlobPushOutcome::Uploaded => LayerState::Pushed,
        };
        progress(ProgressEvent::Layer { id, state });
    }
    Ok((digest.to_string(), outcome))
}
