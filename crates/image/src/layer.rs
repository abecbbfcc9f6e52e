//! Layer unpacking: a (compressed) tar stream applied to a directory, hostile input contained.
//!
//! [`unpack`] reads a stream (img2 feeds it straight from the HTTP download), detects or takes the
//! compression, and computes while streaming both the compressed digest and the diff id (sha256 of
//! the uncompressed tar). Decompression and hashing run on the calling thread; parsing the tar and
//! creating files run on a second thread, so the two overlap. Whiteouts become overlayfs
//! whiteouts (char device 0/0, `trusted.overlay.opaque=y`) for snapshot layers, or deletions when
//! layers are applied into one directory. Limits bound the uncompressed size, the expansion ratio
//! and the size of tar metadata records; see `apply` for how paths are kept inside `dest`.
pub mod apply;
pub mod tar;

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{sync_channel, Receiver};

use crate::digest::{Digest, DigestingReader, Hasher};
use crate::images::manifest::media_types;

/// Errors unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A filesystem call failed.
    #[error("{op} {path}")]
    Fs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// An I/O operation failed.
    #[error("layer: {op}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The compressed stream is corrupt or could not be read.
    #[error("reading the {compression} layer stream")]
    Decompress {
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed or hostile.
    #[error("malformed layer tar")]
    Tar(#[from] tar::TarError),
    /// A path in the layer is refused.
    #[error("layer entry {path:?} {reason}")]
    BadPath { path: String, reason: &'static str },
    /// A path or name is too long.
    #[error("layer entry {path:?} is longer than the limit of {limit} bytes")]
    NameTooLong { path: String, limit: usize },
    /// The layer expands beyond the size limit.
    #[error("layer expands beyond the limit of {limit} bytes uncompressed")]
    TooLarge { limit: u64 },
    /// The layer expands beyond the ratio limit (a decompression bomb).
    #[error(
        "layer expands more than {limit}:1 ({uncompressed} bytes from {compressed} compressed)"
    )]
    RatioExceeded {
        limit: u64,
        uncompressed: u64,
        compressed: u64,
    },
    /// A media type that is not a layer this crate can unpack.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    /// Setting an extended attribute failed.
    #[error("set xattr {name} on {path}")]
    Xattr {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The unpacking thread panicked.
    #[error("layer unpack thread panicked")]
    Panicked,
}

impl LayerError {
    pub(crate) fn fs(op: &'static str, path: &Path, source: nix::Error) -> Self {
        LayerError::Fs {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (possibly multi-member).
    Gzip,
    /// zstd.
    Zstd,
    /// Sniff the magic bytes.
    Detect,
}

impl Compression {
    /// The compression a layer media type declares.
    pub fn from_media_type(mt: &str) -> Result<Compression, LayerError> {
        match mt {
            media_types::OCI_LAYER_TAR | media_types::DOCKER_LAYER_TAR => Ok(Compression::None),
            media_types::OCI_LAYER_GZIP
            | media_types::DOCKER_LAYER_GZIP
            | media_types::DOCKER_LAYER_FOREIGN
            | media_types::OCI_LAYER_NONDIST_GZIP => Ok(Compression::Gzip),
            media_types::OCI_LAYER_ZSTD => Ok(Compression::Zstd),
            // Unknown but layer-shaped types (e.g. future variants): let the magic bytes decide.
            mt if mt.contains("layer") || mt.contains("rootfs.diff") => Ok(Compression::Detect),
            other => Err(LayerError::UnsupportedMediaType(other.to_owned())),
        }
    }

    /// Sniff compression from the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Detect => "detected",
        }
    }
}

/// How whiteouts are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Unpacking a standalone overlay lower layer: `.wh.x` becomes a 0/0 char device `x`,
    /// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on the directory.
    Overlay,
    /// Applying on top of the lower layers' content in the same directory: delete.
    Delete,
}

/// Options for [`unpack`].
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// How whiteouts are applied.
    pub whiteouts: WhiteoutMode,
    /// Create char/block device nodes (docker as root: yes; rootless: no, they are skipped).
    pub allow_devices: bool,
    /// Chown to the tar's uid/gid. When false, files belong to the unpacking user and
    /// setuid/setgid bits are dropped.
    pub preserve_owner: bool,
    /// Refuse layers whose uncompressed tar exceeds this many bytes.
    pub max_uncompressed_size: u64,
    /// Refuse layers expanding more than this ratio (checked once past 1 MiB uncompressed).
    pub max_ratio: Option<u64>,
    /// Refuse tar metadata records (PAX headers, GNU long names) larger than this.
    pub max_header_size: u64,
}

impl Default for UnpackOptions {
    /// Docker as root: overlay whiteouts, devices, owners kept; 64 GiB size limit, 1 MiB headers.
    fn default() -> Self {
        UnpackOptions {
            whiteouts: WhiteoutMode::Overlay,
            allow_devices: true,
            preserve_owner: true,
            max_uncompressed_size: 64 << 30,
            max_ratio: None,
            max_header_size: 1 << 20,
        }
    }
}

impl UnpackOptions {
    /// Rootless: no device nodes, no chown, setuid/setgid dropped.
    pub fn rootless() -> Self {
        UnpackOptions {
            allow_devices: false,
            preserve_owner: false,
            ..Self::default()
        }
    }
}

/// What unpacking a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Uncompressed tar size.
    pub uncompressed_size: u64,
    /// sha256 of the bytes read from `reader` (the manifest's layer digest).
    pub compressed_digest: Digest,
    /// Bytes read from `reader`.
    pub compressed_size: u64,
    /// The compression used (never `Detect`).
    pub compression: Compression,
    /// Entries applied.
    pub entries: u64,
    /// Device nodes skipped (options disallow them).
    pub skipped_devices: u64,
    /// Whiteouts applied.
    pub whiteouts: u64,
}

const CHUNK: usize = 256 * 1024;

/// A `Read` over chunks sent from the decompressing thread.
struct ChanReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpack one layer from `reader` into `dest` (which must exist).
pub fn unpack<R: Read>(
    reader: R,
    compression: Compression,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<LayerStats, LayerError> {
    let read_so_far = Rc::new(Cell::new(0u64));
    let mut input = BufReader::with_capacity(
        CHUNK,
        Counted {
            inner: DigestingReader::new(reader),
            n: Rc::clone(&read_so_far),
        },
    );
    // Sniffing needs the first bytes, which a slow stream may deliver one at a time: read them
    // and put them back in front.
    let mut head = Vec::with_capacity(4);
    if compression == Compression::Detect {
        let mut byte = [0u8; 4];
        while head.len() < 4 {
            let n = input.read(&mut byte[..4 - head.len()]).map_err(|source| {
                LayerError::Decompress {
                    compression: "detected",
                    source,
                }
            })?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&byte[..n]);
        }
    }
    let compression = match compression {
        Compression::Detect => Compression::sniff(&head),
        c => c,
    };
    let mut input = io::Cursor::new(head).chain(input);
    // The fs thread owns the directory work; this thread decompresses and hashes.
    let (tx, rx) = sync_channel::<Vec<u8>>(32);
    let (produced, applied) = std::thread::scope(|s| {
        let worker = s.spawn(move || -> Result<apply::ApplyCounts, LayerError> {
            let mut tar = tar::TarReader::new(
                ChanReader {
                    rx,
                    cur: Vec::new(),
                    pos: 0,
                },
                opts.max_header_size,
            );
            let mut applier = apply::Applier::new(dest, opts)?;
            let mut buf = vec![0u8; CHUNK];
            while let Some(entry) = tar.next_entry()? {
                applier.apply(&entry, &mut |f| {
                    use std::io::Write;
                    loop {
                        let n = tar.read_body(&mut buf)?;
                        if n == 0 {
                            return Ok(());
                        }
                        f.write_all(&buf[..n]).map_err(|source| LayerError::Io {
                            op: "write file body",
                            source,
                        })?;
                    }
                })?;
            }
            applier.finish()?;
            // Keep receiving so the producer can hash the stream to its end.
            let mut rest = tar.into_inner();
            io::copy(&mut rest, &mut io::sink()).map_err(|source| LayerError::Io {
                op: "drain",
                source,
            })?;
            Ok(applier.counts)
        });
        let produced = produce(&mut input, compression, opts, tx, &read_so_far);
        let applied = worker.join().unwrap_or(Err(LayerError::Panicked));
        (produced, applied)
    });
    // A stream error explains a consumer error (e.g. "truncated"), so it wins.
    let (diff_id, uncompressed_size) = produced?;
    let counts = applied?;
    let (compressed_digest, compressed_size, _) = input.into_inner().1.into_inner().inner.finish();
    Ok(LayerStats {
        diff_id,
        uncompressed_size,
        compressed_digest,
        compressed_size,
        compression,
        entries: counts.entries,
        skipped_devices: counts.skipped_devices,
        whiteouts: counts.whiteouts,
    })
}

/// Decompress `input`, hash it, enforce limits, and send chunks to the fs thread. Reads the
/// compressed stream to its end so its digest covers every byte.
fn produce<B: BufRead>(
    input: &mut B,
    compression: Compression,
    opts: &UnpackOptions,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    read_so_far: &Cell<u64>,
) -> Result<(Digest, u64), LayerError> {
    let name = compression.name();
    let dec_err = |source| LayerError::Decompress {
        compression: name,
        source,
    };
    let mut hasher = Hasher::new();
    {
        let mut decoder: Box<dyn Read + '_> = match compression {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut *input)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::with_buffer(&mut *input).map_err(dec_err)?)
            }
            Compression::None | Compression::Detect => Box::new(&mut *input),
        };
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match decoder.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(dec_err(e)),
                }
            }
            if filled == 0 {
                break;
            }
            chunk.truncate(filled);
            hasher.update(&chunk);
            let total = hasher.count();
            if total > opts.max_uncompressed_size {
                return Err(LayerError::TooLarge {
                    limit: opts.max_uncompressed_size,
                });
            }
            if let Some(limit) = opts.max_ratio {
                if total > 1 << 20 {
                    // Bytes pulled from the source so far (buffered ones included, which only
                    // makes the ratio look smaller: errs on the side of accepting).
                    let compressed = read_so_far.get().max(1);
                    if total / compressed > limit {
                        return Err(LayerError::RatioExceeded {
                            limit,
                            uncompressed: total,
                            compressed,
                        });
                    }
                }
            }
            if tx.send(chunk).is_err() {
                // The fs thread stopped early, with an error the caller reports.
                return Ok((hasher.finish(), total));
            }
        }
    }
    drop(tx);
    // Trailing bytes after the compressed stream still belong to the blob's digest.
    io::copy(input, &mut io::sink()).map_err(dec_err)?;
    let n = hasher.count();
    Ok((hasher.finish(), n))
}

/// Counts bytes read through it into a shared cell (the decoder borrows the reader, the ratio
/// check needs the count).
struct Counted<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}
