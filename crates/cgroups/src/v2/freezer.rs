//! v2 freezer: `cgroup.freeze` (kernel 5.2+, works without any controller enabled), settled
//! when `cgroup.events` says `frozen 1` (or `frozen 0` when thawing).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{CgroupError, Result};
use crate::file;
use crate::FreezerState;

const TIMEOUT: Duration = Duration::from_secs(5);

fn frozen(dir: &Path) -> Result<Option<bool>> {
    let events = file::read_flat_keyed(dir, "cgroup.events")?;
    Ok(events.get("frozen").map(|&v| v == 1))
}

/// Writes `cgroup.freeze` and waits for `cgroup.events` to agree.
pub fn set(dir: &Path, state: FreezerState) -> Result<()> {
    let want = state == FreezerState::Frozen;
    file::write(dir, "cgroup.freeze", if want { "1" } else { "0" })?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        match frozen(dir)? {
            Some(f) if f == want => return Ok(()),
            None => return Ok(()), // no `frozen` key: nothing to wait for
            Some(_) => {}
        }
        if start.elapsed() > TIMEOUT {
            if want {
                let _ = file::write(dir, "cgroup.freeze", "0");
            }
            return Err(CgroupError::FreezeTimeout {
                path: dir.join("cgroup.events"),
                wanted: if want { "frozen 1" } else { "frozen 0" },
                last: file::read(dir, "cgroup.events").unwrap_or_default(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The state from `cgroup.freeze` (what was asked; `cgroup.events` says whether it settled).
pub fn state(dir: &Path) -> Result<FreezerState> {
    Ok(
        match file::read_opt(dir, "cgroup.freeze")?
            .as_deref()
            .map(str::trim)
        {
            Some("1") => FreezerState::Frozen,
            _ => FreezerState::Thawed,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;

    #[test]
    fn waits_for_events_to_agree() {
        let f = Fixture::new(&["cgroup.freeze"]);
        f.set("cgroup.events", "populated 1\nfrozen 1\n");
        set(f.path(), FreezerState::Frozen).unwrap();
        assert_eq!(f.get("cgroup.freeze"), "1");
        assert_eq!(state(f.path()).unwrap(), FreezerState::Frozen);
    }
}
