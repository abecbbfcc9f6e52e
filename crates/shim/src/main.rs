//! `berth-shim`: parse the command line, then become the container's monitor
//! ([`berth_shim::daemon::run`]). Contract: docs/shim.md.

use std::process::ExitCode;

use berth_shim::config::{usage, Config};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("--version") => {
            println!(
                "berth-shim {} (protocol {})",
                env!("CARGO_PKG_VERSION"),
                berth_shim::protocol::VERSION
            );
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let cfg = match Config::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-shim: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    ExitCode::from(u8::try_from(berth_shim::daemon::run(cfg)).unwrap_or(1))
}
