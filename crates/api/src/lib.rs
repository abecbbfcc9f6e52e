//! berth-api: the Docker Engine API as it travels on the wire.
//!
//! Only wire types live here (Docker's JSON field names, every optional field an `Option`), plus the
//! small pieces of wire grammar every endpoint shares: API versions, the `filters` query parameter
//! and Docker's timestamps. Domain types live in `berth-engine`; the daemon converts between them.

pub mod container;
pub mod error;
pub mod event;
pub mod filters;
pub mod image;
pub mod network;
pub mod system;
pub mod time;
pub mod version;
pub mod volume;

pub use error::ErrorResponse;
pub use filters::Filters;
pub use version::ApiVersion;
