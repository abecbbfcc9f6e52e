//! Test-only: a temporary directory standing in for one cgroup, with empty control files.

use std::path::{Path, PathBuf};

pub(crate) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A cgroup directory holding the (empty) control files `files`.
    pub(crate) fn new(files: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir for cgroup fixture");
        for f in files {
            std::fs::write(dir.path().join(f), "").expect("create fixture file");
        }
        Fixture { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The content of a control file.
    pub(crate) fn get(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).expect("read fixture file")
    }

    /// Sets the content of a control file (creating it).
    pub(crate) fn set(&self, name: &str, content: &str) {
        std::fs::write(self.file(name), content).expect("write fixture file");
    }
}
