//! One module per command group; each turns parsed flags into API calls and prints the answer
//! the way docker prints it.

/// `println!` that reports a failed write (a closed pipe) as an error instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?;
    }};
}

/// `print!` that reports a failed write as an error instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($t)*)?;
    }};
}

pub mod archive;
pub mod attach;
pub mod commit;
pub mod container;
pub mod cp;
pub mod debug;
pub mod diff;
pub mod events;
pub mod image;
pub mod login;
pub mod network;
pub mod port;
pub mod rename;
pub mod stats;
pub mod system;
pub mod top;
pub mod tty;
pub mod update;
pub mod volume;
pub mod wait;

use serde_json::Value;

use crate::client::Client;
use crate::template::Template;

/// Render `value` with `--format`, or return `None` when no format was given.
pub fn format_one(format: Option<&str>, value: &Value) -> anyhow::Result<Option<String>> {
    let Some(f) = format else { return Ok(None) };
    let t = Template::parse(f)?;
    let mut s = t.render(value)?;
    s.push('\n');
    Ok(Some(s))
}

/// JSON with docker's 4-space indentation.
pub fn pretty(value: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(value, &mut ser).expect("a JSON value always serializes");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// `inspect` of several objects of one kind (`path` gives each one's API path): docker prints the
/// ones found and an error line for each missing one, failing if any was.
pub async fn inspect_each(
    client: &Client,
    names: &[String],
    format: Option<&str>,
    path: impl Fn(&str) -> String,
) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut found = Vec::new();
    for n in names {
        match client.get_json::<Value>(&path(n)).await {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    print_inspect(&found, format)?;
    Ok(ok)
}

/// docker's inspect output: a JSON array, or one `--format` line per object.
pub fn print_inspect(found: &[Value], format: Option<&str>) -> anyhow::Result<()> {
    if format.is_some() {
        for v in found {
            if let Some(s) = format_one(format, v)? {
                out!("{s}");
            }
        }
    } else {
        outln!("{}", pretty(&Value::Array(found.to_vec())));
    }
    Ok(())
}
