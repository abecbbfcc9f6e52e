//! `start`: open the exec fifo for reading (this releases the init blocked on its write end),
//! remove it (so the status reads `running`); when there are `poststart` hooks, wait until the
//! init has run its `startContainer` hooks and exec'd the user process, then run them.
//!
//! The init keeps the fifo's write end open close-on-exec after the go byte: EOF on our side is
//! the `execve` (or the init's death); text before EOF is the init's error.

use std::io::Read;
use std::path::Path;

use oci_spec::runtime::Spec;

use super::Container;
use crate::error::Error;
use crate::init::error_chain;
use crate::state::{Status, EXEC_FIFO};

/// Starts the created container `id`. Failing `poststart` hooks don't fail the start: each is
/// passed to `warn` (and the remaining hooks still run), as the spec asks.
pub fn start(root: &Path, id: &str, warn: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let c = Container::load(root, id)?;
    start_loaded(&c, None, warn)
}

/// Starts a loaded container; `spec` saves re-reading config.json (`run` has it).
pub fn start_loaded(
    c: &Container,
    spec: Option<&Spec>,
    warn: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    c.check("start", c.status.can_start())?;
    let loaded;
    let spec = match spec {
        Some(s) => s,
        None => {
            loaded = c.spec()?;
            &loaded
        }
    };
    let poststart = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().as_ref())
        .filter(|h| !h.is_empty());
    let fifo = c.dir.join(EXEC_FIFO);
    let mut f = std::fs::File::open(&fifo).map_err(Error::io("open exec fifo", &fifo))?;
    let mut b = [0u8; 1];
    let n = f.read(&mut b).map_err(Error::io("read exec fifo", &fifo))?;
    // The fifo's absence is what makes the live status `running` (no state rewrite needed).
    let _ = std::fs::remove_file(&fifo);
    if n == 0 {
        return Err(Error::Init("container init exited before start".into()));
    }
    // Only poststart hooks must be ordered after the user process's execve; without them, return
    // once the init is released, as runc and crun do (waiting costs the init's exec, ~1-2 ms).
    let Some(poststart) = poststart else {
        return Ok(());
    };
    // Blocks until the init execs (EOF) or reports why it could not.
    let mut failure = Vec::new();
    f.read_to_end(&mut failure)
        .map_err(Error::io("read exec fifo", &fifo))?;
    drop(f);
    if !failure.is_empty() {
        return Err(Error::Init(String::from_utf8_lossy(&failure).into_owned()));
    }
    let errs = crate::hooks::run_all(
        crate::hooks::HookKind::Poststart,
        poststart,
        &c.state.to_hook_state(Status::Running),
    );
    for e in errs {
        warn(&format!("poststart hook failed: {}", error_chain(&e)));
    }
    Ok(())
}
