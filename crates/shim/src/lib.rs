//! berth-shim: the per-container monitor that outlives berthd (like containerd-shim or
//! conmon), and the client side berthd uses to talk to it.
//!
//! One shim per container holds the container's stdio, writes its log in docker's json-file
//! format, serves attach clients over `<state-dir>/attach.sock`, reaps the init (as its child
//! subreaper) and records how it ended in `<state-dir>/exit.json`. Contract: docs/shim.md.
//!
//! Modules: [`config`] (the command line), [`daemon`] (fork, setsid, create + start),
//! [`monitor`] (the epoll loop), [`logfile`] (json-file format and rotation), [`protocol`]
//! (frames), [`state`] (shim.pid, exit.json), [`runtime`] (berth-runtime calls),
//! [`sockpath`] (long socket paths), [`client`] (berthd's side).

pub mod client;
pub mod config;
pub mod daemon;
pub mod logfile;
pub mod monitor;
pub mod protocol;
pub mod runtime;
pub mod sockpath;
pub mod state;
pub mod timefmt;
