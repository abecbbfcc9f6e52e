//! `start`: open the exec fifo for reading (this releases the init blocked on its write end),
//! remove it (so the status reads `running`), then run the `poststart` hooks.

use std::io::Read;
use std::path::Path;

use oci_spec::runtime::Spec;

use super::Container;
use crate::error::Error;
use crate::init::error_chain;
use crate::state::{Status, EXEC_FIFO};

/// Starts the created container `id`.
pub fn start(root: &Path, id: &str) -> Result<(), Error> {
    let c = Container::load(root, id)?;
    start_loaded(&c, None)
}

/// Starts a loaded container; `spec` saves re-reading config.json (`run` has it).
pub fn start_loaded(c: &Container, spec: Option<&Spec>) -> Result<(), Error> {
    c.check("start", c.status.can_start())?;
    let fifo = c.dir.join(EXEC_FIFO);
    let mut f = std::fs::File::open(&fifo).map_err(Error::io("open exec fifo", &fifo))?;
    let mut b = [0u8; 1];
    let n = f.read(&mut b).map_err(Error::io("read exec fifo", &fifo))?;
    drop(f);
    // The fifo's absence is what makes the live status `running` (no state rewrite needed).
    let _ = std::fs::remove_file(&fifo);
    if n == 0 {
        return Err(Error::Init("container init exited before start".into()));
    }
    let loaded;
    let spec = match spec {
        Some(s) => s,
        None => {
            loaded = c.spec()?;
            &loaded
        }
    };
    if let Some(h) = spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()) {
        crate::hooks::run(
            crate::hooks::HookKind::Poststart,
            h,
            &c.state.to_hook_state(Status::Running),
        )
        .map_err(|e| Error::Hook {
            kind: "poststart",
            msg: error_chain(&e),
        })?;
    }
    Ok(())
}
