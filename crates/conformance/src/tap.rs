//! A TAP (Test Anything Protocol, version 13 subset) writer: `ok N - desc`, `not ok N - desc # why`,
//! `ok N - desc # SKIP why`, and the plan `1..N` printed last.

use std::io::Write;

/// The result of one check: `Ok(())`, a failure with its reason, or a skip with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

impl From<Result<(), String>> for Outcome {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Outcome::Pass,
            Err(why) => Outcome::Fail(why),
        }
    }
}

/// Collects numbered results and writes them to an output as they come.
pub struct Tap<W: Write> {
    out: W,
    count: usize,
    failed: usize,
}

impl<W: Write> Tap<W> {
    pub fn new(out: W) -> Self {
        Tap {
            out,
            count: 0,
            failed: 0,
        }
    }

    /// Records one result. Newlines in the description or reason are flattened: TAP is line based.
    pub fn record(&mut self, desc: &str, outcome: impl Into<Outcome>) {
        self.count += 1;
        let desc = one_line(desc);
        let line = match outcome.into() {
            Outcome::Pass => format!("ok {} - {desc}", self.count),
            Outcome::Skip(why) => format!("ok {} - {desc} # SKIP {}", self.count, one_line(&why)),
            Outcome::Fail(why) => {
                self.failed += 1;
                format!("not ok {} - {desc} # {}", self.count, one_line(&why))
            }
        };
        // A lost line shows up as a wrong plan, which the harness reports.
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    pub fn pass(&mut self, desc: &str) {
        self.record(desc, Outcome::Pass);
    }

    pub fn fail(&mut self, desc: &str, why: impl Into<String>) {
        self.record(desc, Outcome::Fail(why.into()));
    }

    pub fn skip(&mut self, desc: &str, why: impl Into<String>) {
        self.record(desc, Outcome::Skip(why.into()));
    }

    /// Writes the plan and returns how many checks failed.
    pub fn finish(mut self) -> usize {
        let _ = writeln!(self.out, "1..{}", self.count);
        let _ = self.out.flush();
        self.failed
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_results_and_counts_failures() {
        let mut buf = Vec::new();
        let mut tap = Tap::new(&mut buf);
        tap.pass("a");
        tap.fail("b", "because\nreasons");
        tap.skip("c", "absent");
        tap.record("d", Err::<(), String>("x".into()));
        assert_eq!(tap.finish(), 2);
        let text = String::from_utf8(buf).expect("utf8");
        assert_eq!(
            text,
            "ok 1 - a\nnot ok 2 - b # because reasons\nok 3 - c # SKIP absent\nnot ok 4 - d # x\n1..4\n"
        );
    }
}
