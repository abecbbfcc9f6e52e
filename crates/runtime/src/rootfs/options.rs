//! Mount options of the OCI runtime spec (fstab style strings) -> what the kernel calls take.
//!
//! The table is runc's (`libcontainer/specconv`): plain flags for mount(2), propagation changes
//! applied one by one after the mount, recursive attributes for mount_setattr(AT_RECURSIVE),
//! idmap, runc's `tmpcopyup` extension, and everything else kept as filesystem data.
//! Later options override earlier ones (`ro,rw` is read-write), as with mount(8).

use nix::mount::MsFlags;

use berth_sys::mount::attr;

/// Whether an idmapped mount applies to the top mount or the whole tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// `idmap`: only the mount itself.
    Top,
    /// `ridmap`: the mount and every mount below it.
    Recursive,
}

/// One mount's options, sorted by the call that applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (including `MS_BIND`, `MS_REC`, `MS_REMOUNT`).
    pub flags: MsFlags,
    /// Flags the options explicitly turned off (`rw`, `suid`, `dev`...): never re-added from the
    /// source mount when a bind remount has to keep locked flags.
    pub cleared: MsFlags,
    /// Propagation changes (`MS_SHARED`, `MS_SLAVE | MS_REC`...), applied in order after the mount.
    pub propagation: Vec<MsFlags>,
    /// `MOUNT_ATTR_*` to set on the whole tree (`rro`, `rnosuid`, ...).
    pub rec_set: u64,
    /// `MOUNT_ATTR_*` to clear on the whole tree (`rrw`, `rsuid`, ...).
    pub rec_clear: u64,
    /// `idmap` / `ridmap`.
    pub idmap: Option<Idmap>,
    /// runc's `tmpcopyup`: copy the destination's content into a new tmpfs.
    pub tmpcopyup: bool,
    /// Everything else, passed to the filesystem as data (`mode=755`, `size=65536k`).
    pub data: Vec<String>,
}

/// `MS_NOSYMFOLLOW` (Linux 5.10), absent from nix's `MsFlags`.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// A mount(2) flag option: `(name, clears, flag)`.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("acl", false, MsFlags::MS_POSIXACL),
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("iversion", false, MsFlags::MS_I_VERSION),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("loud", true, MsFlags::MS_SILENT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noacl", true, MsFlags::MS_POSIXACL),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("noiversion", true, MsFlags::MS_I_VERSION),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("nosymfollow", false, MS_NOSYMFOLLOW),
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("silent", false, MsFlags::MS_SILENT),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

/// A recursive mount_setattr option: `(name, clears, MOUNT_ATTR_*)`.
const REC_ATTRS: &[(&str, bool, u64)] = &[
    ("rro", false, attr::RDONLY),
    ("rrw", true, attr::RDONLY),
    ("rnosuid", false, attr::NOSUID),
    ("rsuid", true, attr::NOSUID),
    ("rnodev", false, attr::NODEV),
    ("rdev", true, attr::NODEV),
    ("rnoexec", false, attr::NOEXEC),
    ("rexec", true, attr::NOEXEC),
    ("rnodiratime", false, attr::NODIRATIME),
    ("rdiratime", true, attr::NODIRATIME),
    ("rrelatime", false, attr::RELATIME),
    ("rnorelatime", true, attr::RELATIME),
    ("rnoatime", false, attr::NOATIME),
    ("ratime", true, attr::NOATIME),
    ("rstrictatime", false, attr::STRICTATIME),
    ("rnostrictatime", true, attr::STRICTATIME),
    ("rnosymfollow", false, attr::NOSYMFOLLOW),
    ("rsymfollow", true, attr::NOSYMFOLLOW),
];

/// The propagation flags of `name` (`rprivate` -> `MS_PRIVATE | MS_REC`), as used by mount
/// options and `linux.rootfsPropagation`.
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    let flags = match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    };
    Some(flags)
}

impl MountOptions {
    /// Sort `options` by the call that applies them. Nothing is dropped except mount(8)'s
    /// userspace-only `x-*` options: what isn't a known flag is filesystem data.
    pub fn parse<S: AsRef<str>>(options: &[S]) -> Self {
        let mut out = MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            idmap: None,
            tmpcopyup: false,
            data: Vec::new(),
        };
        for option in options {
            let option = option.as_ref();
            if let Some(&(_, clears, flag)) = FLAGS.iter().find(|(n, _, _)| *n == option) {
                if clears {
                    out.flags.remove(flag);
                    out.cleared.insert(flag);
                } else {
                    out.flags.insert(flag);
                    out.cleared.remove(flag);
                }
            } else if let Some(p) = propagation_flags(option) {
                out.propagation.push(p);
            } else if let Some(&(_, clears, flag)) = REC_ATTRS.iter().find(|(n, _, _)| *n == option)
            {
                let is_atime = flag & attr::ATIME_MASK == flag;
                if is_atime {
                    // The atime mode is an enum inside ATIME_MASK: mount_setattr(2) changes it
                    // only with the whole mask cleared. Clearing a mode means relatime (0);
                    // clearing relatime itself is a no-op, as with runc.
                    if !(clears && flag == 0) {
                        out.rec_clear |= attr::ATIME_MASK;
                        out.rec_set &= !attr::ATIME_MASK;
                        if !clears {
                            out.rec_set |= flag;
                        }
                    }
                } else if clears {
                    out.rec_clear |= flag;
                    out.rec_set &= !flag;
                } else {
                    out.rec_set |= flag;
                    out.rec_clear &= !flag;
                }
            } else if option == "idmap" {
                out.idmap = Some(Idmap::Top);
            } else if option == "ridmap" {
                out.idmap = Some(Idmap::Recursive);
            } else if option == "tmpcopyup" {
                out.tmpcopyup = true;
            } else if option == "notmpcopyup" {
                // crun/podman spelling of the default.
                out.tmpcopyup = false;
            } else if option.starts_with("x-") {
                // mount(8): "x-*" options are for userspace applications, never for the kernel.
            } else if !option.is_empty() {
                out.data.push(option.to_string());
            }
        }
        out
    }

    /// Whether the options make this a bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Whether the whole tree is bound (`rbind`).
    pub fn is_recursive_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC)
    }

    /// Flags a bind mount needs a remount for (everything but bind/rec/remount itself).
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }

    /// Filesystem data as mount(2) takes it, `None` when there is none.
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_data_and_overrides() {
        let o = MountOptions::parse(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.is_bind());

        let o = MountOptions::parse(&["ro", "rw", "suid", "nosuid"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert_eq!(o.cleared, MsFlags::MS_RDONLY);
        assert_eq!(o.data_string(), None);
    }

    #[test]
    fn bind_rbind_and_remount_flags() {
        let o = MountOptions::parse(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind() && o.is_recursive_bind());
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);

        let o = MountOptions::parse(&["bind", "shared", "unbindable"]);
        assert!(o.is_bind() && !o.is_recursive_bind());
        assert!(o.remount_flags().is_empty());
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_SHARED, MsFlags::MS_UNBINDABLE]
        );
    }

    #[test]
    fn every_runtime_spec_flag_is_known() {
        for name in [
            "async",
            "atime",
            "bind",
            "defaults",
            "dev",
            "diratime",
            "dirsync",
            "exec",
            "iversion",
            "lazytime",
            "loud",
            "mand",
            "noatime",
            "nodev",
            "nodiratime",
            "noexec",
            "noiversion",
            "nolazytime",
            "nomand",
            "norelatime",
            "nostrictatime",
            "nosuid",
            "nosymfollow",
            "rbind",
            "relatime",
            "remount",
            "ro",
            "rw",
            "silent",
            "strictatime",
            "suid",
            "sync",
            "private",
            "rprivate",
            "shared",
            "rshared",
            "slave",
            "rslave",
            "unbindable",
            "runbindable",
            "rro",
            "rrw",
            "rnosuid",
            "rsuid",
            "rnodev",
            "rdev",
            "rnoexec",
            "rexec",
            "rnodiratime",
            "rdiratime",
            "rrelatime",
            "rnorelatime",
            "rnoatime",
            "ratime",
            "rstrictatime",
            "rnostrictatime",
            "rnosymfollow",
            "rsymfollow",
            "idmap",
            "ridmap",
            "tmpcopyup",
            "notmpcopyup",
        ] {
            let o = MountOptions::parse(&[name]);
            assert!(o.data.is_empty(), "{name} was taken as data");
        }
        assert_eq!(MountOptions::parse(&["nosymfollow"]).flags, MS_NOSYMFOLLOW);
        assert_eq!(
            MountOptions::parse(&["sync", "dirsync", "mand", "silent", "lazytime"]).flags,
            MsFlags::MS_SYNCHRONOUS
                | MsFlags::MS_DIRSYNC
                | MsFlags::MS_MANDLOCK
                | MsFlags::MS_SILENT
                | MsFlags::MS_LAZYTIME
        );
        assert_eq!(
            MountOptions::parse(&["strictatime", "nostrictatime", "relatime"]).flags,
            MsFlags::MS_RELATIME
        );
    }

    #[test]
    fn recursive_attrs() {
        let o = MountOptions::parse(&["rro", "rnosuid", "rnodev", "rnoexec"]);
        assert_eq!(
            o.rec_set,
            attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC
        );
        assert_eq!(o.rec_clear, 0);
        assert!(o.flags.is_empty());

        let o = MountOptions::parse(&["rro", "rrw"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, attr::RDONLY));

        // atime modes clear the whole atime mask.
        let o = MountOptions::parse(&["rnoatime"]);
        assert_eq!((o.rec_set, o.rec_clear), (attr::NOATIME, attr::ATIME_MASK));
        let o = MountOptions::parse(&["rnoatime", "rstrictatime"]);
        assert_eq!(
            (o.rec_set, o.rec_clear),
            (attr::STRICTATIME, attr::ATIME_MASK)
        );
        let o = MountOptions::parse(&["rnoatime", "rrelatime"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, attr::ATIME_MASK));
        let o = MountOptions::parse(&["ratime"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, attr::ATIME_MASK));
        let o = MountOptions::parse(&["rnorelatime"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, 0));
    }

    #[test]
    fn idmap_copyup_and_unknown_options() {
        assert_eq!(
            MountOptions::parse(&["bind", "idmap"]).idmap,
            Some(Idmap::Top)
        );
        assert_eq!(
            MountOptions::parse(&["rbind", "ridmap"]).idmap,
            Some(Idmap::Recursive)
        );
        assert!(MountOptions::parse(&["tmpcopyup"]).tmpcopyup);
        let o = MountOptions::parse(&["tmpcopyup", "notmpcopyup"]);
        assert!(!o.tmpcopyup && o.data.is_empty());
        let o = MountOptions::parse(&["x-systemd.automount", "frobnicate", "uid=5"]);
        assert_eq!(o.data, vec!["frobnicate".to_string(), "uid=5".to_string()]);
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation_flags("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(
            propagation_flags("unbindable"),
            Some(MsFlags::MS_UNBINDABLE)
        );
        assert_eq!(propagation_flags("bogus"), None);
    }
}
