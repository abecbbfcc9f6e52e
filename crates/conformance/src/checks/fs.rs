//! Filesystem view of the container: the root (read-only, propagation), every `mounts[]` entry with
//! its type, source and options, default devices and /dev symlinks, `linux.devices`, masked paths
//! and read-only paths.

use crate::mountinfo::{self, MountInfo};
use crate::spec::{Device, Expect, Mount, Spec};
use crate::tap::{Outcome, Tap};
use nix::errno::Errno;
use nix::sys::stat::{major, minor, SFlag};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

pub fn check<W: Write>(spec: &Spec, expect: &Expect, tap: &mut Tap<W>) {
    let mounts = match mountinfo::read_self() {
        Ok(m) => m,
        Err(why) => {
            tap.fail("read /proc/self/mountinfo", why);
            return;
        }
    };
    let linux = spec.linux.as_ref();
    if let Some(want) = &expect.root_root {
        let r = match mountinfo::topmost(&mounts, "/") {
            Some(m) if &m.root == want => Ok(()),
            Some(m) => Err(format!(
                "/ is {} of its filesystem, expected {want}",
                m.root
            )),
            None => Err("no mount at / in mountinfo".into()),
        };
        tap.record("root.path: / is the bundle's rootfs", r);
    }
    if let Some(root) = &spec.root {
        if root.readonly {
            tap.record(
                "root.readonly: / is mounted read-only",
                root_readonly(&mounts),
            );
        }
    }
    if let Some(prop) = linux.and_then(|l| l.rootfs_propagation.as_deref()) {
        let want = expect.rootfs_propagation.as_deref().unwrap_or(prop);
        tap.record(
            &format!("linux.rootfsPropagation: / is {prop}"),
            rootfs_propagation(&mounts, want),
        );
    }
    for m in &spec.mounts {
        tap.record(
            &format!("mounts: {} is mounted as asked", m.destination),
            mount_matches(&mounts, m, expect),
        );
    }
    default_devices(spec, tap);
    for d in linux.map(|l| l.devices.as_slice()).unwrap_or_default() {
        tap.record(&format!("linux.devices: {}", d.path), device_matches(d));
    }
    for p in linux.map(|l| l.masked_paths.as_slice()).unwrap_or_default() {
        tap.record(&format!("linux.maskedPaths: {p} is masked"), masked(p));
    }
    for p in linux
        .map(|l| l.readonly_paths.as_slice())
        .unwrap_or_default()
    {
        tap.record(
            &format!("linux.readonlyPaths: {p} is read-only"),
            readonly(&mounts, p),
        );
    }
}

fn root_readonly(mounts: &[MountInfo]) -> Result<(), String> {
    let root = mountinfo::topmost(mounts, "/").ok_or("no mount at / in mountinfo")?;
    if !root.has_option("ro") {
        return Err(format!("/ has options {:?}", root.options));
    }
    match std::fs::File::create("/.berth-readonly-probe") {
        Ok(_) => {
            let _ = std::fs::remove_file("/.berth-readonly-probe");
            Err("creating /.berth-readonly-probe succeeded".into())
        }
        Err(e) if e.raw_os_error() == Some(Errno::EROFS as i32) => Ok(()),
        Err(e) => Err(format!(
            "creating a file in / failed with {e}, expected EROFS"
        )),
    }
}

fn rootfs_propagation(mounts: &[MountInfo], prop: &str) -> Outcome {
    let Some(root) = mountinfo::topmost(mounts, "/") else {
        return Outcome::Fail("no mount at / in mountinfo".into());
    };
    let want = match prop {
        "shared" | "rshared" => "shared",
        "slave" | "rslave" => "slave",
        "private" | "rprivate" => "private",
        "unbindable" | "runbindable" => "unbindable",
        other => return Outcome::Fail(format!("unknown propagation {other} in config")),
    };
    if root.propagation() == want {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "/ is {} (optional fields {:?})",
            root.propagation(),
            root.optional
        ))
    }
}

/// Removes trailing slashes and `.` components the way filepath.Clean would for absolute paths.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn mount_matches(mounts: &[MountInfo], m: &Mount, expect: &Expect) -> Result<(), String> {
    let dest = clean(&m.destination);
    let Some(found) = mountinfo::topmost(mounts, &dest) else {
        return Err(format!("nothing is mounted at {dest}"));
    };
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        idmapped(found, m, expect.source_owner.get(&dest).copied())?;
    }
    if m.is_bind() {
        if let Some(root) = expect.bind_roots.get(&dest) {
            if &found.root != root {
                return Err(format!(
                    "{dest} binds {} of its filesystem, expected {root} (source {:?})",
                    found.root, m.source
                ));
            }
        }
    }
    let kind = m.kind.as_deref().unwrap_or("");
    if !m.is_bind() && !kind.is_empty() && kind != "none" {
        // cgroup v1 is a tmpfs holding one mount per hierarchy; v2 is one cgroup2 mount.
        let ok = if kind == "cgroup" || kind == "cgroup2" {
            matches!(found.fstype.as_str(), "cgroup" | "cgroup2" | "tmpfs")
        } else {
            found.fstype == kind
        };
        if !ok {
            return Err(format!("{dest} has type {}, expected {kind}", found.fstype));
        }
        if let Some(src) = m.source.as_deref() {
            if kind != "cgroup" && kind != "cgroup2" && found.source != src {
                return Err(format!(
                    "{dest} has source {}, expected {src}",
                    found.source
                ));
            }
        }
    }
    // A cgroup v1 mount is a tmpfs with one mount per hierarchy under it: the options (ro, ...)
    // must hold on the hierarchies, the tmpfs is only their holder.
    let mut targets = vec![found];
    if kind == "cgroup" && found.fstype == "tmpfs" {
        let prefix = format!("{dest}/");
        targets = mounts
            .iter()
            .filter(|x| x.mount_point.starts_with(&prefix) && x.fstype.starts_with("cgroup"))
            .collect();
        if targets.is_empty() {
            return Err(format!(
                "{dest} is a tmpfs without cgroup hierarchies under it"
            ));
        }
    }
    let mut wrong = Vec::new();
    // Recursive mount attributes (rro, rnosuid, ...; runtime-spec 1.1) hold on every mount at
    // or below the destination.
    let prefix = format!("{}/", dest.trim_end_matches('/'));
    for opt in &m.options {
        let Some(attr) = recursive_attr(opt) else {
            continue;
        };
        for below in mounts
            .iter()
            .filter(|x| x.mount_point == dest || x.mount_point.starts_with(&prefix))
        {
            if !below.has_option(attr) {
                wrong.push(format!(
                    "{}: {opt} but {attr} missing from {:?}",
                    below.mount_point, below.options
                ));
            }
        }
    }
    for t in targets {
        for opt in &m.options {
            if let Err(why) = option_holds(t, opt) {
                wrong.push(format!("{}: {why}", t.mount_point));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Whether one spec mount option is visible in the mount's mountinfo entry. Options that leave no
/// trace (bind, rbind, newinstance, ...) hold trivially.
fn option_holds(m: &MountInfo, opt: &str) -> Result<(), String> {
    let present = |o: &str| {
        if m.has_option(o) {
            Ok(())
        } else {
            Err(format!("option {opt} missing from {:?}", m.options))
        }
    };
    let absent = |o: &str| {
        if m.has_option(o) {
            Err(format!("option {opt} asked but {o} is set"))
        } else {
            Ok(())
        }
    };
    let propagation = |want: &str| {
        if m.propagation() == want {
            Ok(())
        } else {
            Err(format!(
                "propagation is {}, expected {want}",
                m.propagation()
            ))
        }
    };
    match opt {
        "ro" | "nosuid" | "nodev" | "noexec" | "noatime" | "relatime" | "nodiratime" => {
            present(opt)
        }
        "rw" => present("rw"),
        "suid" => absent("nosuid"),
        "dev" => absent("nodev"),
        "exec" => absent("noexec"),
        "atime" => absent("noatime"),
        "strictatime" => absent("relatime").and(absent("noatime")),
        "shared" | "rshared" => propagation("shared"),
        "slave" | "rslave" => propagation("slave"),
        "private" | "rprivate" => propagation("private"),
        "unbindable" | "runbindable" => propagation("unbindable"),
        _ => match opt.split_once('=') {
            Some((key @ ("mode" | "ptmxmode"), want)) => {
                let parse = |s: &str| u32::from_str_radix(s, 8).ok();
                // tmpfs leaves its default mode (1777) out of the options.
                let shown = match m.super_option(key) {
                    None if m.fstype == "tmpfs" && key == "mode" => Some("1777"),
                    other => other,
                };
                match (parse(want), shown.and_then(parse)) {
                    (Some(a), Some(b)) if a == b => Ok(()),
                    _ => Err(format!(
                        "{key} is {}, expected {want}",
                        shown.unwrap_or("absent")
                    )),
                }
            }
            Some((key @ ("uid" | "gid"), want)) => {
                // Some filesystems (devpts) show ids as the initial user namespace sees them.
                let map = if key == "uid" {
                    "/proc/self/uid_map"
                } else {
                    "/proc/self/gid_map"
                };
                let host = want.parse().ok().and_then(|id| to_host_id(map, id));
                match m.super_option(key) {
                    Some(got) if got == want || host.is_some_and(|h| got == h.to_string()) => {
                        Ok(())
                    }
                    got => Err(format!("{key} is {got:?}, expected {want}")),
                }
            }
            Some(("size", want)) if m.fstype == "tmpfs" => {
                match (
                    size_bytes(want),
                    m.super_option("size").and_then(size_bytes),
                ) {
                    (Some(a), Some(b)) if a == b => Ok(()),
                    (_, _) => Err(format!(
                        "size is {:?}, expected {want}",
                        m.super_option("size")
                    )),
                }
            }
            _ => Ok(()),
        },
    }
}

/// The host id of a container id through an id map file (`/proc/self/uid_map`).
fn to_host_id(map: &str, id: u32) -> Option<u32> {
    let text = std::fs::read_to_string(map).ok()?;
    super::ns::parse_id_map(&text)
        .ok()?
        .into_iter()
        .find(|m| id >= m.container_id && id - m.container_id < m.size)
        .map(|m| m.host_id + (id - m.container_id))
}

/// An idmapped mount (runtime-spec 1.1 mounts[].uidMappings): the kernel marks it `idmapped`,
/// and an id S of the source filesystem (containerID side of the mapping) shows as
/// hostID + (S - containerID) on the host, then through the container's own user namespace.
fn idmapped(found: &MountInfo, m: &Mount, owner: Option<(u32, u32)>) -> Result<(), String> {
    if !found.has_option("idmapped") {
        return Err(format!(
            "{} is not idmapped: {:?}",
            found.mount_point, found.options
        ));
    }
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    let through_mount = |maps: &[crate::spec::IdMapping], id: u32| {
        maps.iter()
            .find(|x| id >= x.container_id && id - x.container_id < x.size)
            .map(|x| x.host_id + (id - x.container_id))
    };
    let seen = |maps: &[crate::spec::IdMapping], id: u32, own_map: &str| {
        through_mount(maps, id)
            .and_then(|host| to_container_id(own_map, host))
            .unwrap_or(65534)
    };
    let md =
        std::fs::metadata(&found.mount_point).map_err(|e| format!("{}: {e}", found.mount_point))?;
    let want_uid = seen(&m.uid_mappings, uid, "/proc/self/uid_map");
    let want_gid = seen(&m.gid_mappings, gid, "/proc/self/gid_map");
    if (md.uid(), md.gid()) != (want_uid, want_gid) {
        return Err(format!(
            "{} is owned by {}:{}, expected {want_uid}:{want_gid} (source owner {uid}:{gid} through the mapping)",
            found.mount_point,
            md.uid(),
            md.gid()
        ));
    }
    Ok(())
}

/// A host id as this process's user namespace sees it (`None`: unmapped).
fn to_container_id(map: &str, host: u32) -> Option<u32> {
    let text = std::fs::read_to_string(map).ok()?;
    super::ns::parse_id_map(&text)
        .ok()?
        .into_iter()
        .find(|m| host >= m.host_id && host - m.host_id < m.size)
        .map(|m| m.container_id + (host - m.host_id))
}

/// The per-mount flag a recursive mount attribute option sets on every submount.
fn recursive_attr(opt: &str) -> Option<&'static str> {
    Some(match opt {
        "rro" => "ro",
        "rnosuid" => "nosuid",
        "rnodev" => "nodev",
        "rnoexec" => "noexec",
        "rnoatime" => "noatime",
        "rrelatime" => "relatime",
        "rnodiratime" => "nodiratime",
        _ => return None,
    })
}

fn size_bytes(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

fn default_devices<W: Write>(spec: &Spec, tap: &mut Tap<W>) {
    let mut devices = vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    if spec.process.as_ref().is_some_and(|p| p.terminal) {
        devices.push(("/dev/console", 0, 0));
    }
    for (path, maj, min) in devices {
        let r = (|| {
            let md = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
            if !md.file_type().is_char_device() {
                return Err(format!("{path} is not a character device"));
            }
            let rdev = md.rdev();
            // /dev/console is the terminal's pty: any char device will do.
            if path != "/dev/console" && (major(rdev), minor(rdev)) != (maj, min) {
                return Err(format!(
                    "{path} is {}:{}, expected {maj}:{min}",
                    major(rdev),
                    minor(rdev)
                ));
            }
            Ok(())
        })();
        tap.record(&format!("default device {path}"), r);
    }
    let ptmx = match std::fs::symlink_metadata("/dev/ptmx") {
        Ok(md) if md.file_type().is_symlink() => match std::fs::read_link("/dev/ptmx") {
            Ok(t) if t.as_os_str() == "pts/ptmx" || t.as_os_str() == "/dev/pts/ptmx" => Ok(()),
            Ok(t) => Err(format!("/dev/ptmx points to {}", t.display())),
            Err(e) => Err(format!("/dev/ptmx: {e}")),
        },
        Ok(md) if md.file_type().is_char_device() => Ok(()),
        Ok(_) => Err("/dev/ptmx is neither a symlink nor a device".into()),
        Err(e) => Err(format!("/dev/ptmx: {e}")),
    };
    tap.record("default device /dev/ptmx", ptmx);
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let r = match std::fs::read_link(link) {
            Ok(t) if t.as_os_str() == target => Ok(()),
            Ok(t) => Err(format!(
                "{link} points to {}, expected {target}",
                t.display()
            )),
            Err(e) => Err(format!("{link} is not a symlink: {e}")),
        };
        tap.record(&format!("default symlink {link}"), r);
    }
}

fn device_matches(d: &Device) -> Result<(), String> {
    let md = std::fs::metadata(&d.path).map_err(|e| format!("{}: {e}", d.path))?;
    let fmt = SFlag::from_bits_truncate(md.mode()) & SFlag::S_IFMT;
    let want = match d.kind.as_str() {
        "c" | "u" => SFlag::S_IFCHR,
        "b" => SFlag::S_IFBLK,
        "p" => SFlag::S_IFIFO,
        other => return Err(format!("unknown device type {other} in config")),
    };
    if fmt != want {
        return Err(format!(
            "{} has file type {fmt:?}, expected {want:?}",
            d.path
        ));
    }
    if d.kind != "p" {
        let (maj, min) = (major(md.rdev()), minor(md.rdev()));
        if (maj as i64, min as i64) != (d.major, d.minor) {
            return Err(format!(
                "{} is {maj}:{min}, expected {}:{}",
                d.path, d.major, d.minor
            ));
        }
    }
    if let Some(mode) = d.file_mode {
        if md.mode() & 0o7777 != mode & 0o7777 {
            return Err(format!(
                "{} has mode {:o}, expected {:o}",
                d.path,
                md.mode() & 0o7777,
                mode & 0o7777
            ));
        }
    }
    if let Some(uid) = d.uid {
        if md.uid() != uid {
            return Err(format!("{} has uid {}, expected {uid}", d.path, md.uid()));
        }
    }
    if let Some(gid) = d.gid {
        if md.gid() != gid {
            return Err(format!("{} has gid {}, expected {gid}", d.path, md.gid()));
        }
    }
    Ok(())
}

fn masked(path: &str) -> Outcome {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Outcome::Skip(format!("{path} does not exist in the container"))
        }
        Err(e) => return Outcome::Fail(format!("{path}: {e}")),
    };
    if md.is_dir() {
        return match std::fs::read_dir(path) {
            Ok(mut entries) => match entries.next() {
                None => Outcome::Pass,
                Some(e) => Outcome::Fail(format!(
                    "{path} lists {:?}",
                    e.map(|e| e.file_name()).unwrap_or_default()
                )),
            },
            Err(e) if e.raw_os_error() == Some(Errno::EACCES as i32) => Outcome::Pass,
            Err(e) => Outcome::Fail(format!("listing {path}: {e}")),
        };
    }
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let mut b = [0u8; 1];
            match f.read(&mut b) {
                Ok(0) => Outcome::Pass,
                Ok(_) => Outcome::Fail(format!("{path} is readable")),
                Err(e) => Outcome::Fail(format!("reading {path}: {e}, expected end of file")),
            }
        }
        Err(e) => Outcome::Fail(format!("opening {path}: {e}")),
    }
}

fn readonly(mounts: &[MountInfo], path: &str) -> Outcome {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Outcome::Skip(format!("{path} does not exist in the container"))
        }
        Err(e) => return Outcome::Fail(format!("{path}: {e}")),
    };
    let clean_path = clean(path);
    match mountinfo::containing(mounts, &clean_path) {
        Some(m) if m.has_option("ro") => {}
        Some(m) => {
            return Outcome::Fail(format!(
                "{path} is on {} mounted {:?}",
                m.mount_point, m.options
            ))
        }
        None => return Outcome::Fail(format!("no mount contains {path}")),
    }
    let open_w = |p: &std::path::Path| std::fs::OpenOptions::new().write(true).open(p).map(|_| ());
    let erofs = |e: &std::io::Error| e.raw_os_error() == Some(Errno::EROFS as i32);
    if !md.is_dir() {
        return match open_w(std::path::Path::new(path)) {
            Ok(()) => Outcome::Fail(format!("writing to {path} succeeded")),
            Err(e) if erofs(&e) => Outcome::Pass,
            Err(e) => Outcome::Fail(format!("writing to {path} failed with {e}, expected EROFS")),
        };
    }
    let probe = format!("{clean_path}/.berth-readonly-probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            return Outcome::Fail(format!("creating {probe} succeeded"));
        }
        Err(e) if erofs(&e) => return Outcome::Pass,
        Err(_) => {}
    }
    // Pseudo filesystems (procfs) refuse new files with ENOENT before looking at the mount flags:
    // write to a file that exists below instead.
    match first_file(std::path::Path::new(&clean_path), 3) {
        None => Outcome::Pass,
        Some(f) => match open_w(&f) {
            Ok(()) => Outcome::Fail(format!("opening {} for writing succeeded", f.display())),
            Err(e) if erofs(&e) => Outcome::Pass,
            Err(e) => Outcome::Fail(format!(
                "writing to {} failed with {e}, expected EROFS",
                f.display()
            )),
        },
    }
}

/// The first regular file below `dir` (depth first, at most `depth` levels down) that this
/// process could write if the mount allowed it: permission checks come before the read-only one.
fn first_file(dir: &std::path::Path, depth: u32) -> Option<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let euid = nix::unistd::geteuid().as_raw();
    for e in &entries {
        let writable = e.metadata().is_ok_and(|m| {
            m.is_file() && ((m.uid() == euid && m.mode() & 0o200 != 0) || m.mode() & 0o002 != 0)
        });
        if writable {
            return Some(e.path());
        }
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| first_file(&e.path(), depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(opts: &str, optional: &str, fstype: &str, sup: &str) -> MountInfo {
        let line = format!("1 0 0:1 / /x {opts} {optional} - {fstype} src {sup}");
        mountinfo::parse(&line.replace("  ", " ")).expect("parse")[0].clone()
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean("/a/b/"), "/a/b");
        assert_eq!(clean("/a/./b/../c"), "/a/c");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn options_map_to_mountinfo() {
        let m = entry(
            "ro,nosuid,relatime",
            "shared:3",
            "tmpfs",
            "rw,size=65536k,mode=755",
        );
        assert!(option_holds(&m, "ro").is_ok());
        assert!(option_holds(&m, "nodev").is_err());
        assert!(option_holds(&m, "dev").is_ok());
        assert!(option_holds(&m, "suid").is_err());
        assert!(option_holds(&m, "strictatime").is_err());
        assert!(option_holds(&m, "rshared").is_ok());
        assert!(option_holds(&m, "private").is_err());
        assert!(option_holds(&m, "mode=0755").is_ok());
        assert!(option_holds(&m, "mode=700").is_err());
        assert!(option_holds(&m, "size=64m").is_ok());
        assert!(option_holds(&m, "newinstance").is_ok());
    }

    #[test]
    fn recursive_read_only_covers_submounts() {
        let rbind = Mount {
            destination: "/m".into(),
            kind: Some("bind".into()),
            source: Some("/sys".into()),
            options: vec!["rbind".into(), "rro".into()],
            ..Mount::default()
        };
        let all_ro = "1 0 0:1 / /m ro - sysfs sysfs rw\n2 1 0:2 / /m/sub ro - tmpfs tmpfs rw\n";
        let sub_rw = "1 0 0:1 / /m ro - sysfs sysfs rw\n2 1 0:2 / /m/sub rw - tmpfs tmpfs rw\n";
        let expect = Expect::default();
        let m = mountinfo::parse(all_ro).expect("parse");
        assert!(mount_matches(&m, &rbind, &expect).is_ok());
        let m = mountinfo::parse(sub_rw).expect("parse");
        assert!(mount_matches(&m, &rbind, &expect).is_err());
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(size_bytes("65536k"), Some(64 << 20));
        assert_eq!(size_bytes("1g"), Some(1 << 30));
        assert_eq!(size_bytes("12"), Some(12));
        assert_eq!(size_bytes("x"), None);
    }
}
