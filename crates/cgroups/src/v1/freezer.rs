//! v1 freezer controller: `freezer.state` FROZEN/THAWED, polled until the kernel reports the
//! state settled (FREEZING means tasks are still being frozen).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{CgroupError, Result};
use crate::file;
use crate::FreezerState;

const STATE: &str = "freezer.state";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sets the freezer state of `dir` and waits until it has settled.
pub fn set(dir: &Path, state: FreezerState) -> Result<()> {
    let wanted = match state {
        FreezerState::Frozen => "FROZEN",
        FreezerState::Thawed => "THAWED",
    };
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        // Re-writing FROZEN nudges tasks that were busy when the first write happened.
        file::write(dir, STATE, wanted)?;
        let now = file::read(dir, STATE)?;
        if now.trim() == wanted {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            if state == FreezerState::Frozen {
                // Leave the cgroup usable rather than half frozen.
                let _ = file::write(dir, STATE, "THAWED");
            }
            return Err(CgroupError::FreezeTimeout {
                path: dir.join(STATE),
                wanted,
                last: now.trim().to_string(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The current state: FROZEN is frozen; THAWED and FREEZING (not settled) are thawed.
pub fn state(dir: &Path) -> Result<FreezerState> {
    Ok(match file::read(dir, STATE)?.trim() {
        "FROZEN" => FreezerState::Frozen,
        _ => FreezerState::Thawed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixture::Fixture;

    #[test]
    fn fixture_settles_immediately() {
        let f = Fixture::new(&[STATE]);
        set(f.path(), FreezerState::Frozen).unwrap();
        assert_eq!(state(f.path()).unwrap(), FreezerState::Frozen);
        set(f.path(), FreezerState::Thawed).unwrap();
        assert_eq!(state(f.path()).unwrap(), FreezerState::Thawed);
    }
}
