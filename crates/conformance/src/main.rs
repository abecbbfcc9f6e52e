//! berth-checker: runs as the container's process and verifies from inside what the bundle's
//! config.json asked for, printing TAP on stdout; exits 1 when any check fails, 2 when it can't
//! load its inputs.
//!
//! usage: berth-checker [--spec PATH] [--expect PATH]   (defaults: /.berth-spec/config.json and
//! /.berth-spec/expect.json; `BERTH_SPEC` / `BERTH_EXPECT` override them too). Extra arguments
//! are ignored, so scenarios can pass arbitrary args to test `process.args`.

use berth_conformance::checks;
use berth_conformance::spec::{self, Expect, Spec, EXPECT_PATH, SPEC_PATH};
use berth_conformance::tap::Tap;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut spec_path = PathBuf::from(std::env::var_os("BERTH_SPEC").unwrap_or(SPEC_PATH.into()));
    let mut expect_path =
        PathBuf::from(std::env::var_os("BERTH_EXPECT").unwrap_or(EXPECT_PATH.into()));
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--spec") => spec_path = args.next().map(PathBuf::from).unwrap_or(spec_path),
            Some("--expect") => expect_path = args.next().map(PathBuf::from).unwrap_or(expect_path),
            _ => {}
        }
    }
    let spec: Spec = match spec::load(&spec_path) {
        Ok(s) => s,
        Err(e) => {
            println!(
                "Bail out! {e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    // Without expectations only the namespace checks are skipped.
    let expect: Expect = spec::load(&expect_path).unwrap_or_default();
    let mut tap = Tap::new(std::io::stdout().lock());
    checks::run_all(&spec, &expect, &mut tap);
    if tap.finish() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
