//! `ps`: the processes of a container's cgroup, as a JSON array of pids or through `ps(1)` with
//! its output filtered to those pids (runc's behaviour).

use std::io::Write;
use std::path::Path;

use super::Container;
use crate::error::Error;

/// Pids of container `id`.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, Error> {
    let c = Container::load(root, id)?;
    c.check("ps", c.status != crate::state::Status::Stopped)?;
    let pids = c.cgroup()?.pids().map_err(Error::Cgroup)?;
    Ok(pids.into_iter().map(|p| p.as_raw()).collect())
}

/// Runs `ps <args>` (default `-ef`) and prints the header plus the lines whose PID is in `pids`.
pub fn print_table(w: &mut dyn Write, pids: &[i32], ps_args: &[String]) -> Result<(), Error> {
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(Error::io("run", "ps"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Usage("ps output has no PID column".into()))?;
    let io = |e| Error::io("write", "stdout")(e);
    writeln!(w, "{header}").map_err(io)?;
    for l in lines {
        let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(w, "{l}").map_err(|e| Error::io("write", "stdout")(e))?;
        }
    }
    Ok(())
}
