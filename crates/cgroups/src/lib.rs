//! berth-cgroups: cgroups v1, v2 and hybrid behind one trait.
