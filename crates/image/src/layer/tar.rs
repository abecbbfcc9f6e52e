//! A streaming tar reader with bounded metadata: ustar, GNU (long names, base-256 numbers) and
//! PAX (path, linkpath, size, uid, gid, mtime, xattrs).
//!
//! Written here rather than taken from the `tar` crate because a layer is hostile input: every
//! extension record (PAX header, GNU long name) is size-checked *before* it is read, so a header
//! claiming a gigabyte of metadata fails fast instead of allocating it.
use std::io::{self, Read};

/// Errors reading a tar stream.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The underlying stream failed.
    #[error("reading tar stream")]
    Io(#[source] io::Error),
    /// The stream ended inside a header or body.
    #[error("tar stream truncated {0}")]
    Truncated(&'static str),
    /// A header's checksum does not match.
    #[error("tar header checksum mismatch at offset {offset}")]
    Checksum { offset: u64 },
    /// A numeric field cannot be parsed.
    #[error("tar header field {field} is not a number at offset {offset}")]
    BadNumber { field: &'static str, offset: u64 },
    /// An extension record is larger than allowed.
    #[error(
        "tar {kind} record of {size} bytes at offset {offset} exceeds the limit of {limit} bytes"
    )]
    HeaderTooLarge {
        kind: &'static str,
        size: u64,
        limit: u64,
        offset: u64,
    },
    /// A PAX record is malformed.
    #[error("malformed pax record at offset {offset}")]
    BadPax { offset: u64 },
    /// An entry type this reader refuses (e.g. GNU sparse files).
    #[error("unsupported tar entry type {typeflag:?} for {path}")]
    Unsupported { typeflag: char, path: String },
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Hard link to an earlier entry.
    Hardlink,
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
}

/// One entry's metadata. Its body (for files) is read with [`TarReader::body`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// Raw path bytes as in the archive.
    pub path: Vec<u8>,
    /// Link target (symlink or hardlink).
    pub link: Vec<u8>,
    /// Entry kind.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds part (PAX only).
    pub mtime_nsec: u32,
    /// Body size in bytes.
    pub size: u64,
    /// Device major.
    pub devmajor: u32,
    /// Device minor.
    pub devminor: u32,
    /// Extended attributes (PAX `SCHILY.xattr.*`).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

const BLOCK: usize = 512;

/// Sequential reader of tar entries.
pub struct TarReader<R> {
    r: R,
    offset: u64,
    remaining: u64,
    pad: u64,
    max_header: u64,
    ended: bool,
}

fn read_exact_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn field_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn parse_num(b: &[u8], field: &'static str, offset: u64) -> Result<u64, TarError> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        // GNU base-256: big-endian two's complement; negative values are refused.
        if b[0] & 0x40 != 0 {
            return Err(TarError::BadNumber { field, offset });
        }
        let mut v: u64 = u64::from(b[0] & 0x3f);
        for &c in &b[1..] {
            if v >> 56 != 0 {
                return Err(TarError::BadNumber { field, offset });
            }
            v = (v << 8) | u64::from(c);
        }
        return Ok(v);
    }
    let s = field_str(b);
    let s: Vec<u8> = s.iter().copied().filter(|c| *c != b' ').collect();
    if s.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&s).map_err(|_| TarError::BadNumber { field, offset })?;
    u64::from_str_radix(text, 8).map_err(|_| TarError::BadNumber { field, offset })
}

impl<R: Read> TarReader<R> {
    /// Read from `r`; extension records (PAX, GNU long names) larger than `max_header` fail.
    pub fn new(r: R, max_header: u64) -> Self {
        Self {
            r,
            offset: 0,
            remaining: 0,
            pad: 0,
            max_header,
            ended: false,
        }
    }

    /// Bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying reader (e.g. to drain what follows the end-of-archive marker).
    pub fn into_inner(self) -> R {
        self.r
    }

    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = read_exact_or_eof(&mut self.r, &mut buf[..want]).map_err(TarError::Io)?;
            if got == 0 {
                return Err(TarError::Truncated("in an entry body"));
            }
            n -= got as u64;
            self.offset += got as u64;
        }
        Ok(())
    }

    /// Skip `n` padding bytes; false when the stream ends right away.
    fn skip_padding(&mut self, n: u64) -> Result<bool, TarError> {
        if n == 0 {
            return Ok(true);
        }
        let mut buf = [0u8; BLOCK];
        let got = read_exact_or_eof(&mut self.r, &mut buf[..n as usize]).map_err(TarError::Io)?;
        self.offset += got as u64;
        match got {
            0 => Ok(false),
            g if g as u64 == n => Ok(true),
            _ => Err(TarError::Truncated("in padding")),
        }
    }

    fn read_block(&mut self, buf: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let got = read_exact_or_eof(&mut self.r, buf).map_err(TarError::Io)?;
        self.offset += got as u64;
        match got {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(TarError::Truncated("in a header")),
        }
    }

    fn read_ext(&mut self, size: u64, kind: &'static str) -> Result<Vec<u8>, TarError> {
        if size > self.max_header {
            return Err(TarError::HeaderTooLarge {
                kind,
                size,
                limit: self.max_header,
                offset: self.offset,
            });
        }
        let mut v = vec![0u8; size as usize];
        let got = read_exact_or_eof(&mut self.r, &mut v).map_err(TarError::Io)?;
        self.offset += got as u64;
        if got as u64 != size {
            return Err(TarError::Truncated("in an extension record"));
        }
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.skip(pad)?;
        Ok(v)
    }

    /// The next entry, or `None` at the end of the archive. Any unread body of the previous
    /// entry is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.ended {
            return Ok(None);
        }
        let (body, pad) = (self.remaining, self.pad);
        self.remaining = 0;
        self.pad = 0;
        self.skip(body)?;
        // Some writers (umoci) end the stream right after the last body, without its padding
        // or the end marker: a complete body followed by EOF is a complete archive.
        if !self.skip_padding(pad)? {
            self.ended = true;
            return Ok(None);
        }

        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                // EOF without the end marker: accept (many tools stop early).
                self.ended = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.ended = true;
                return Ok(None);
            }
            let stored = parse_num(&block[148..156], "chksum", at)?;
            let unsigned: u64 = block
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            let signed: i64 = block
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i64::from(b as i8)
                    }
                })
                .sum();
            if stored != unsigned && stored as i64 != signed {
                return Err(TarError::Checksum { offset: at });
            }
            let typeflag = block[156];
            let mut size = parse_num(&block[124..136], "size", at)?;
            match typeflag {
                b'x' => {
                    let data = self.read_ext(size, "pax header")?;
                    pax = parse_pax(&data, at)?;
                    continue;
                }
                b'g' => {
                    // Global headers carry defaults nobody relies on in layers; bounded and skipped.
                    self.read_ext(size, "pax global header")?;
                    continue;
                }
                b'L' => {
                    let mut v = self.read_ext(size, "gnu long name")?;
                    v.truncate(field_str(&v).len());
                    long_name = Some(v);
                    continue;
                }
                b'K' => {
                    let mut v = self.read_ext(size, "gnu long link")?;
                    v.truncate(field_str(&v).len());
                    long_link = Some(v);
                    continue;
                }
                b'V' => {
                    self.skip(size.div_ceil(BLOCK as u64) * BLOCK as u64)?;
                    continue;
                }
                _ => {}
            }
            let ustar_posix = &block[257..263] == b"ustar\0";
            let mut path = match long_name.take() {
                Some(p) => p,
                None => {
                    let name = field_str(&block[0..100]);
                    let prefix = if ustar_posix {
                        field_str(&block[345..500])
                    } else {
                        &[][..]
                    };
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        [prefix, b"/", name].concat()
                    }
                }
            };
            let mut link = long_link
                .take()
                .unwrap_or_else(|| field_str(&block[157..257]).to_vec());
            let mut uid = parse_num(&block[108..116], "uid", at)?;
            let mut gid = parse_num(&block[116..124], "gid", at)?;
            let mut mtime = parse_num(&block[136..148], "mtime", at)? as i64;
            let mut mtime_nsec = 0u32;
            let mut xattrs = Vec::new();
            for (k, v) in pax.drain(..) {
                let text = || String::from_utf8_lossy(&v).into_owned();
                match k.as_str() {
                    "path" => path = v,
                    "linkpath" => link = v,
                    "size" => {
                        size = text()
                            .parse()
                            .map_err(|_| TarError::BadPax { offset: at })?;
                    }
                    "uid" => {
                        uid = text()
                            .parse()
                            .map_err(|_| TarError::BadPax { offset: at })?
                    }
                    "gid" => {
                        gid = text()
                            .parse()
                            .map_err(|_| TarError::BadPax { offset: at })?
                    }
                    "mtime" => {
                        let t = text();
                        let (s, frac) = t.split_once('.').unwrap_or((&t, ""));
                        mtime = s.parse().map_err(|_| TarError::BadPax { offset: at })?;
                        let frac: String = frac.chars().take(9).collect();
                        if !frac.is_empty() {
                            let n: u32 =
                                frac.parse().map_err(|_| TarError::BadPax { offset: at })?;
                            mtime_nsec = n * 10u32.pow(9 - frac.len() as u32);
                        }
                    }
                    k if k.starts_with("SCHILY.xattr.") => {
                        xattrs.push((k["SCHILY.xattr.".len()..].to_owned(), v));
                    }
                    k if k.starts_with("GNU.sparse.") => {
                        return Err(TarError::Unsupported {
                            typeflag: 'S',
                            path: String::from_utf8_lossy(&path).into_owned(),
                        })
                    }
                    _ => {}
                }
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' => {
                    if path.last() == Some(&b'/') {
                        Kind::Dir
                    } else {
                        Kind::File
                    }
                }
                b'1' => Kind::Hardlink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                other => {
                    return Err(TarError::Unsupported {
                        typeflag: other as char,
                        path: String::from_utf8_lossy(&path).into_owned(),
                    })
                }
            };
            let body = match kind {
                Kind::File => size,
                // Other kinds have no body, whatever the size field says (a hardlink's size is
                // the target's in some writers); skip what is declared to stay in sync.
                _ => {
                    self.skip(size.div_ceil(BLOCK as u64) * BLOCK as u64)?;
                    0
                }
            };
            self.remaining = body;
            self.pad = (BLOCK as u64 - body % BLOCK as u64) % BLOCK as u64;
            let too_big = |v: u64, field| {
                u32::try_from(v).map_err(|_| TarError::BadNumber { field, offset: at })
            };
            return Ok(Some(Entry {
                path,
                link,
                kind,
                mode: (parse_num(&block[100..108], "mode", at)? & 0o7777) as u32,
                uid: too_big(uid, "uid")?,
                gid: too_big(gid, "gid")?,
                mtime,
                mtime_nsec,
                size: body,
                devmajor: too_big(parse_num(&block[329..337], "devmajor", at)?, "devmajor")?,
                devminor: too_big(parse_num(&block[337..345], "devminor", at)?, "devminor")?,
                xattrs,
            }));
        }
    }

    /// Read up to `buf.len()` bytes of the current entry's body (0 at its end).
    pub fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        };
        if n == 0 {
            return Err(TarError::Truncated("in a file body"));
        }
        self.remaining -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }

    /// Read the whole current body (`size` bytes) into `out`.
    pub fn read_body_into(&mut self, out: &mut Vec<u8>) -> Result<(), TarError> {
        let n = self.remaining as usize;
        let start = out.len();
        out.resize(start + n, 0);
        let mut got = 0;
        while got < n {
            let k = self.read_body(&mut out[start + got..])?;
            got += k;
        }
        Ok(())
    }
}

fn parse_pax(data: &[u8], offset: u64) -> Result<Vec<(String, Vec<u8>)>, TarError> {
    let bad = || TarError::BadPax { offset };
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() {
            return Err(bad());
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = rec.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let key = String::from_utf8(rec[..eq].to_vec()).map_err(|_| bad())?;
        out.push((key, rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o4755);
        h.set_uid(1000);
        h.set_gid(2000);
        h.set_mtime(1234);
        h.set_entry_type(tar::EntryType::Regular);
        let long = format!("{}/file", "d".repeat(150));
        b.append_data(&mut h, &long, &b"hello"[..]).expect("append");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "ln", "target/x").expect("link");
        b.append_pax_extensions([("SCHILY.xattr.user.k", &b"v"[..]), ("mtime", &b"99.5"[..])])
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "dir/", &b""[..]).expect("dir");
        b.into_inner().expect("finish")
    }

    #[test]
    fn reads_gnu_long_names_links_and_pax() {
        let data = build();
        let mut r = TarReader::new(&data[..], 1 << 20);
        let e = r.next_entry().expect("e1").expect("some");
        assert_eq!(e.kind, Kind::File);
        assert_eq!(e.path, format!("{}/file", "d".repeat(150)).into_bytes());
        assert_eq!(
            (e.mode, e.uid, e.gid, e.mtime, e.size),
            (0o4755, 1000, 2000, 1234, 5)
        );
        let mut body = Vec::new();
        r.read_body_into(&mut body).expect("body");
        assert_eq!(body, b"hello");
        let e = r.next_entry().expect("e2").expect("some");
        assert_eq!(
            (e.kind, e.path.as_slice(), e.link.as_slice()),
            (Kind::Symlink, &b"ln"[..], &b"target/x"[..])
        );
        let e = r.next_entry().expect("e3").expect("some");
        assert_eq!(e.kind, Kind::Dir);
        assert_eq!((e.mtime, e.mtime_nsec), (99, 500_000_000));
        assert_eq!(e.xattrs, vec![("user.k".to_owned(), b"v".to_vec())]);
        assert!(r.next_entry().expect("end").is_none());
    }

    #[test]
    fn huge_pax_header_is_refused_before_reading() {
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/x").expect("path");
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(1 << 30);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[b'x'; 4096]);
        let mut r = TarReader::new(&data[..], 1 << 20);
        let err = r.next_entry().expect_err("too large");
        let msg = err.to_string();
        assert!(
            msg.contains("1073741824") && msg.contains("1048576"),
            "{msg}"
        );
    }

    #[test]
    fn bad_checksum_and_truncation() {
        let mut data = build();
        data[0] ^= 1;
        assert!(matches!(
            TarReader::new(&data[..], 1 << 20).next_entry(),
            Err(TarError::Checksum { .. })
        ));
        // A stream cut right after the last body (no padding, no end marker) is complete.
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(&mut h, "f", &b"abc"[..]).expect("append");
        let full = t.into_inner().expect("tar");
        let mut r = TarReader::new(&full[..515], 1 << 20);
        assert!(r.next_entry().expect("entry").is_some());
        let mut v = Vec::new();
        r.read_body_into(&mut v).expect("body");
        assert!(r.next_entry().expect("clean end").is_none());
        // Cut inside the body: truncated.
        let mut r = TarReader::new(&full[..514], 1 << 20);
        assert!(r.next_entry().expect("entry").is_some());
        assert!(r.read_body_into(&mut Vec::new()).is_err());
        let data = build();
        let mut r = TarReader::new(&data[..700], 1 << 20);
        assert!(
            r.next_entry().is_err() || {
                let mut v = Vec::new();
                r.read_body_into(&mut v).is_err()
            }
        );
    }
}
