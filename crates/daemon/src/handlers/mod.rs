//! One module per API resource; each handler parses the request, calls one engine function and
//! formats the answer.

pub mod archive;
pub mod backup;
pub mod commit;
pub mod containers;
pub mod debug;
pub mod events;
pub mod images;
pub mod networks;
pub mod system;
pub mod volumes;
