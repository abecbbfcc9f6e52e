//! `list`: every container under the state root, as runc prints them (table, `-q`, or JSON).

use std::io::Write;
use std::path::Path;

use super::Container;
use crate::error::Error;

/// Loads every container under `root` (dirs without a readable state are skipped: being created).
pub fn list(root: &Path) -> Result<Vec<Container>, Error> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read state root", root)(e)),
    };
    let mut out: Vec<Container> = rd
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|id| Container::load(root, id).ok())
        })
        .collect();
    out.sort_by(|a, b| a.state.id.cmp(&b.state.id));
    Ok(out)
}

/// Prints the containers: ids only (`quiet`), JSON array, or runc's table.
pub fn print(w: &mut dyn Write, cs: &[Container], quiet: bool, json: bool) -> std::io::Result<()> {
    if quiet {
        for c in cs {
            writeln!(w, "{}", c.state.id)?;
        }
        return Ok(());
    }
    if json {
        let v: Vec<_> = cs.iter().map(|c| c.state.to_oci(c.status)).collect();
        serde_json::to_writer(&mut *w, &v)?;
        return writeln!(w);
    }
    let rows: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
            .chain(cs.iter().map(|c| {
                let pid = if c.status == crate::state::Status::Stopped {
                    0
                } else {
                    c.state.pid
                };
                [
                    c.state.id.clone(),
                    pid.to_string(),
                    c.status.to_string(),
                    c.state.bundle.display().to_string(),
                    c.state.created.clone(),
                    if c.state.owner.is_empty() {
                        "root".into()
                    } else {
                        c.state.owner.clone()
                    },
                ]
            }))
            .collect();
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.len()).max(9);
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[i] + 3));
            }
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}
