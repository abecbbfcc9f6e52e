//! One module per API resource; each handler parses the request, calls one engine function and
//! formats the answer.

pub mod backup;
pub mod events;
pub mod system;
pub mod volumes;
