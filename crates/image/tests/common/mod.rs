//! Shared helpers for berth-image integration tests.
//!
//! - [`TarMaker`] writes tar streams in memory, including entries the `tar` crate refuses to
//!   build (absolute paths, `..`, hostile links): headers are filled byte by byte, with GNU
//!   long-name records for names over 99 bytes.
//! - [`busybox_oci_layout`] makes a small real OCI image layout with umoci:
//!   `umoci init --layout DIR`, `umoci new --image DIR:latest`, `umoci insert --image DIR:latest
//!   ROOTFS /` (ROOTFS holds the static busybox and its `sh`/`ls`/`cat` links), and
//!   `umoci config --image DIR:latest --config.cmd sh`. Returns `None` (tests print SKIP) when
//!   umoci or a static busybox is missing.
//! - [`Outside`]: a directory next to the destination that attacks aim at, with a victim file
//!   whose content, mode and link count are checked after each hostile unpack.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds a tar stream entry by entry.
#[derive(Default)]
pub struct TarMaker {
    out: Vec<u8>,
}

/// Tar type flags used by the tests.
pub mod kind {
    /// Regular file.
    pub const FILE: u8 = b'0';
    /// Hard link.
    pub const HARDLINK: u8 = b'1';
    /// Symbolic link.
    pub const SYMLINK: u8 = b'2';
    /// Char device.
    pub const CHAR: u8 = b'3';
    /// Block device.
    pub const BLOCK: u8 = b'4';
    /// Directory.
    pub const DIR: u8 = b'5';
    /// FIFO.
    pub const FIFO: u8 = b'6';
    /// PAX local header.
    pub const PAX: u8 = b'x';
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

impl TarMaker {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        name: &[u8],
        typeflag: u8,
        link: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        dev: (u32, u32),
    ) -> [u8; 512] {
        let mut h = [0u8; 512];
        let n = name.len().min(100);
        h[..n].copy_from_slice(&name[..n]);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], u64::from(uid));
        octal(&mut h[116..124], u64::from(gid));
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = typeflag;
        let l = link.len().min(100);
        h[157..157 + l].copy_from_slice(&link[..l]);
        h[257..263].copy_from_slice(b"ustar ");
        h[263..265].copy_from_slice(b" \0");
        octal(&mut h[329..337], u64::from(dev.0));
        octal(&mut h[337..345], u64::from(dev.1));
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        h
    }

    fn push_data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// Any entry, raw: name and link bytes exactly as given.
    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        &mut self,
        name: &[u8],
        typeflag: u8,
        link: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
        data: &[u8],
        dev: (u32, u32),
    ) -> &mut Self {
        if name.len() > 99 {
            let mut v = name.to_vec();
            v.push(0);
            let h = Self::header(
                b"././@LongLink",
                b'L',
                b"",
                0o644,
                0,
                0,
                v.len() as u64,
                (0, 0),
            );
            self.out.extend_from_slice(&h);
            self.push_data(&v);
        }
        if link.len() > 99 {
            let mut v = link.to_vec();
            v.push(0);
            let h = Self::header(
                b"././@LongLink",
                b'K',
                b"",
                0o644,
                0,
                0,
                v.len() as u64,
                (0, 0),
            );
            self.out.extend_from_slice(&h);
            self.push_data(&v);
        }
        let h = Self::header(name, typeflag, link, mode, uid, gid, data.len() as u64, dev);
        self.out.extend_from_slice(&h);
        self.push_data(data);
        self
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), kind::FILE, b"", 0o644, 0, 0, data, (0, 0))
    }

    /// A regular file with mode and owner.
    pub fn file_owned(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> &mut Self {
        self.raw(
            name.as_bytes(),
            kind::FILE,
            b"",
            mode,
            uid,
            gid,
            data,
            (0, 0),
        )
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), kind::DIR, b"", 0o755, 0, 0, b"", (0, 0))
    }

    /// A symlink.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            kind::SYMLINK,
            target.as_bytes(),
            0o777,
            0,
            0,
            b"",
            (0, 0),
        )
    }

    /// A hardlink.
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            kind::HARDLINK,
            target.as_bytes(),
            0o644,
            0,
            0,
            b"",
            (0, 0),
        )
    }

    /// A PAX header whose size field claims `claimed` bytes (followed by `actual` bytes).
    pub fn pax_claiming(&mut self, claimed: u64, actual: &[u8]) -> &mut Self {
        let h = Self::header(
            b"PaxHeaders/x",
            kind::PAX,
            b"",
            0o644,
            0,
            0,
            claimed,
            (0, 0),
        );
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(actual);
        self
    }

    /// The archive with its end marker.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.out);
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

/// gzip-compress bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A destination and an "outside" directory with a victim file, side by side.
pub struct Outside {
    /// Holds both.
    pub tmp: tempfile::TempDir,
    /// Where layers are unpacked.
    pub dest: PathBuf,
    /// What attacks aim at.
    pub outside: PathBuf,
    /// `outside/victim`.
    pub victim: PathBuf,
}

impl Outside {
    /// Fresh directories; the victim holds `original` with mode 0640.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        fs::create_dir(&dest).expect("dest");
        fs::create_dir(&outside).expect("outside");
        let victim = outside.join("victim");
        fs::write(&victim, b"original").expect("victim");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o640)).expect("chmod");
        Self {
            tmp,
            dest,
            outside,
            victim,
        }
    }

    /// Panic unless the outside directory holds exactly the untouched victim.
    pub fn assert_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .expect("ls")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("victim")],
            "outside gained entries"
        );
        let m = fs::symlink_metadata(&self.victim).expect("victim stat");
        assert!(m.is_file(), "victim replaced");
        assert_eq!(m.mode() & 0o7777, 0o640, "victim mode changed");
        assert_eq!(m.nlink(), 1, "victim got hardlinked");
        assert_eq!(
            fs::read(&self.victim).expect("read"),
            b"original",
            "victim content changed"
        );
    }

    /// The outside path without its leading `/`, as it appears under `dest` when a layer names
    /// it absolutely.
    pub fn outside_rel(&self) -> PathBuf {
        self.outside.strip_prefix("/").expect("absolute").to_owned()
    }
}

/// A static busybox on this machine, if any.
pub fn static_busybox() -> Option<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let out = Command::new("file").arg("-L").arg(p).output().ok()?;
        if String::from_utf8_lossy(&out.stdout).contains("statically linked") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make an OCI image layout at `dir` with tag `latest`: busybox-static at /bin/busybox with
/// links sh, ls, cat, echo, true; Cmd ["sh"]. `None` when umoci or busybox-static is missing.
pub fn busybox_oci_layout(dir: &Path) -> Option<()> {
    let umoci = which("umoci")?;
    let busybox = static_busybox()?;
    let staging = tempfile::tempdir().expect("tmp");
    let root = staging.path().join("rootfs");
    fs::create_dir_all(root.join("bin")).expect("bin");
    fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    for l in ["sh", "ls", "cat", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(l)).expect("link");
    }
    fs::create_dir_all(root.join("etc")).expect("etc");
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    let image = format!("{}:latest", dir.display());
    run(Command::new(&umoci).args(["init", "--layout"]).arg(dir));
    run(Command::new(&umoci).args(["new", "--image", &image]));
    run(Command::new(&umoci)
        .args(["insert", "--image", &image])
        .arg(&root)
        .arg("/"));
    run(Command::new(&umoci).args(["config", "--image", &image, "--config.cmd", "sh"]));
    Some(())
}

/// Path of a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Unmounts a mount point on drop (tests clean up even when they fail).
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// True when running as root (privileged tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
