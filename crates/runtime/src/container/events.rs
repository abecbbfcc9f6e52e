//! `events`: runc's JSON lines `{"type":"stats","id":..,"data":{..}}`, once with `--stats`, or
//! every `--interval` until the container stops.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::Container;
use crate::error::Error;
use crate::state::Status;

/// One stats event for container `id`.
pub fn stats_event(root: &Path, id: &str) -> Result<serde_json::Value, Error> {
    let c = Container::load(root, id)?;
    c.check("get stats of", c.status != Status::Stopped)?;
    let stats = c.cgroup()?.stats().map_err(Error::Cgroup)?;
    Ok(serde_json::json!({"type": "stats", "id": id, "data": stats}))
}

/// Prints one event (`once`) or one every `interval` while the container lives.
pub fn events(
    w: &mut dyn Write,
    root: &Path,
    id: &str,
    once: bool,
    interval: Duration,
) -> Result<(), Error> {
    loop {
        let ev = stats_event(root, id)?;
        serde_json::to_writer(&mut *w, &ev).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(w).map_err(Error::io("write", "stdout"))?;
        w.flush().map_err(Error::io("write", "stdout"))?;
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
        let c = Container::load(root, id)?;
        if c.status == Status::Stopped {
            return Ok(());
        }
    }
}
