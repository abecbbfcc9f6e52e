//! `events`: runc's JSON lines `{"type":"stats","id":..,"data":{..}}`, once with `--stats`, or
//! every `--interval` until the container stops.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// How often the OOM counter is read between stats events: an `oom` event reaches the caller
/// within this time. One small file read per tick.
const OOM_TICK: Duration = Duration::from_millis(100);

/// Prints one stats event (`once`), or one every `interval` plus an `oom` event (runc's
/// `{"type":"oom","id":..}`) whenever the cgroup's OOM-kill count grows, until the container
/// stops.
pub fn events(
    w: &mut dyn Write,
    root: &Path,
    id: &str,
    once: bool,
    interval: Duration,
) -> Result<(), Error> {
    let emit = |w: &mut dyn Write, ev: &serde_json::Value| -> Result<(), Error> {
        serde_json::to_writer(&mut *w, ev).map_err(|e| Error::Usage(e.to_string()))?;
        writeln!(w).map_err(Error::io("write", "stdout"))?;
        w.flush().map_err(Error::io("write", "stdout"))
    };
    if once {
        return emit(w, &stats_event(root, id)?);
    }
    let c = Container::load(root, id)?;
    c.check("get events of", c.status != Status::Stopped)?;
    let cgroup = c.cgroup()?;
    let mut ooms = cgroup.oom_kills().unwrap_or(0);
    let mut next_stats = Instant::now();
    loop {
        if Instant::now() >= next_stats {
            emit(w, &stats_event(root, id)?)?;
            next_stats += interval;
        }
        std::thread::sleep(OOM_TICK.min(interval));
        // the count survives the container's death (the cgroup outlives it until delete), so
        // an OOM kill that ended the container is still reported before returning
        if let Ok(n) = cgroup.oom_kills() {
            if n > ooms {
                emit(w, &serde_json::json!({"type": "oom", "id": id}))?;
                ooms = n;
            }
        }
        let c = Container::load(root, id)?;
        if c.status == Status::Stopped {
            return Ok(());
        }
    }
}
