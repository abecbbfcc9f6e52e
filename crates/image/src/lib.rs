//! berth-image: images and distribution.
//!
//! Owns everything about images, as a library the engine calls: the sha256 content store, image
//! metadata (names → manifests), layer unpacking (hostile tars contained), overlay snapshots per
//! chain id, image config → runtime spec, the OCI distribution registry client (pull/push, auth),
//! and docker-archive / OCI-layout save and load.
pub mod archive;
pub mod auth;
pub mod config;
pub mod digest;
pub mod images;
pub mod layer;
pub mod lease;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
