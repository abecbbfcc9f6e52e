//! Leases: in-process references that keep blobs and snapshots alive while a pull (or any other
//! writer) is between creating them and recording the image that references them — containerd's
//! leases, without the persistence (every writer lives in the one berthd process, and a crash
//! leaves only unreferenced content that the next gc removes anyway).
//!
//! Garbage collection and a failed pull's undo skip anything another lease holds, so
//! `rmi` during a pull, or two pulls sharing layers where one fails, never delete content the
//! other is about to reference.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::digest::Digest;

/// The lease table, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    held: Arc<Mutex<HashMap<Digest, usize>>>,
}

impl Leases {
    /// A new, empty lease (holding nothing yet).
    pub fn lease(&self) -> Lease {
        Lease {
            table: self.clone(),
            ids: HashSet::new(),
        }
    }

    /// How many leases hold `d`.
    pub fn holders(&self, d: &Digest) -> usize {
        self.lock().get(d).copied().unwrap_or(0)
    }

    /// Everything some lease holds.
    pub fn held(&self) -> HashSet<Digest> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, usize>> {
        // a panic while holding this lock leaves the counts consistent (each update is one
        // statement), so a poisoned lock is still usable
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One writer's hold on a set of digests; released on drop.
#[derive(Debug)]
pub struct Lease {
    table: Leases,
    ids: HashSet<Digest>,
}

impl Lease {
    /// Hold `d` too (holding it twice is holding it once).
    pub fn hold(&mut self, d: &Digest) {
        if self.ids.insert(d.clone()) {
            *self.table.lock().entry(d.clone()).or_insert(0) += 1;
        }
    }

    /// Whether a lease other than this one holds `d`.
    pub fn shared(&self, d: &Digest) -> bool {
        self.table.holders(d) > usize::from(self.ids.contains(d))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.table.lock();
        for d in self.ids.drain() {
            if let Some(n) = held.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_holders_and_releases_on_drop() {
        let t = Leases::default();
        let a_d = Digest::sha256_of(b"a");
        let b_d = Digest::sha256_of(b"b");
        let mut a = t.lease();
        a.hold(&a_d);
        a.hold(&a_d);
        assert_eq!(t.holders(&a_d), 1, "one lease holds a digest once");
        assert!(!a.shared(&a_d));
        let mut b = t.lease();
        b.hold(&a_d);
        b.hold(&b_d);
        assert!(a.shared(&a_d) && b.shared(&a_d));
        assert!(!b.shared(&b_d));
        assert!(a.shared(&b_d), "b's hold is another lease for a");
        drop(b);
        assert_eq!(t.held(), HashSet::from([a_d.clone()]));
        drop(a);
        assert!(t.held().is_empty());
    }
}
