//! Content digests (`sha256:<64 lowercase hex>`), and readers/writers that hash what streams through.
//!
//! Only sha256 is accepted: it is what every registry and the OCI image spec use for content
//! addresses. A [`Digest`] is validated on construction, so a value of this type is always safe to
//! use as a file name under the content store.
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Errors parsing a digest string.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The string has no `algorithm:` prefix.
    #[error("digest {input:?} has no algorithm prefix (expected sha256:<64 hex>)")]
    NoAlgorithm { input: String },
    /// Another algorithm than sha256.
    #[error("digest {input:?} uses unsupported algorithm {algorithm:?} (only sha256)")]
    UnsupportedAlgorithm { input: String, algorithm: String },
    /// The hex part is not 64 lowercase hex characters.
    #[error(
        "digest {input:?} has an invalid sha256 hex part (expected 64 lowercase hex characters)"
    )]
    BadHex { input: String },
}

/// A sha256 content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(bytes).into())
    }

    /// Build from a raw sha256 output.
    pub fn from_sha256(raw: [u8; 32]) -> Digest {
        Digest {
            hex: hex::encode(raw),
        }
    }

    /// Parse from the 64-character hex part alone (e.g. a docker image id without prefix).
    pub fn from_hex(hex_part: &str) -> Result<Digest, DigestError> {
        if is_sha256_hex(hex_part) {
            Ok(Digest {
                hex: hex_part.to_owned(),
            })
        } else {
            Err(DigestError::BadHex {
                input: hex_part.to_owned(),
            })
        }
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm, always `"sha256"`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The first 12 hex characters, as docker shows image ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

/// True when `s` is exactly 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, hex_part)) = s.split_once(':') else {
            return Err(DigestError::NoAlgorithm {
                input: s.to_owned(),
            });
        };
        if alg != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm {
                input: s.to_owned(),
                algorithm: alg.to_owned(),
            });
        }
        if !is_sha256_hex(hex_part) {
            return Err(DigestError::BadHex {
                input: s.to_owned(),
            });
        }
        Ok(Digest {
            hex: hex_part.to_owned(),
        })
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        d.to_string().parse()
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> Self {
        d.to_string()
            .parse()
            .expect("a validated sha256 digest is a valid OCI digest")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A running sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    count: u64,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.count += bytes.len() as u64;
    }
    /// Bytes fed so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.inner.finalize().into())
    }
}

/// A reader that hashes every byte read through it.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> DigestingReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.hasher.count()
    }
    /// Digest of the bytes read so far, and the inner reader.
    pub fn finish(self) -> (Digest, u64, R) {
        let n = self.hasher.count();
        (self.hasher.finish(), n, self.inner)
    }
    /// The inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes every byte written through it.
pub struct DigestingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> DigestingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.hasher.count()
    }
    /// Digest and size of the bytes written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let n = self.hasher.count();
        (self.hasher.finish(), n, self.inner)
    }
}

impl<W: Write> Write for DigestingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_matches_known_value() {
        let d = Digest::sha256_of(b"");
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(d.algorithm(), "sha256");
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_input() {
        let s = format!("sha256:{EMPTY}");
        let d: Digest = s.parse().expect("valid");
        assert_eq!(d.to_string(), s);
        for bad in [
            "sha256:".to_string(),
            EMPTY.to_string(),
            format!("sha512:{EMPTY}"),
            format!("sha256:{}", EMPTY.to_uppercase()),
            format!("sha256:{EMPTY}0"),
            "sha256:../../../etc/passwd".to_string(),
        ] {
            let err = bad.parse::<Digest>().expect_err(&bad);
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{err} names {bad}"
            );
        }
    }

    #[test]
    fn serde_as_string() {
        let d = Digest::sha256_of(b"x");
        let j = serde_json::to_string(&d).expect("ser");
        assert_eq!(j, format!("\"{d}\""));
        let back: Digest = serde_json::from_str(&j).expect("de");
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
    }

    #[test]
    fn streaming_helpers_agree_with_one_shot() {
        let data = vec![7u8; 100_000];
        let mut r = DigestingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).expect("copy");
        let (d, n, _) = r.finish();
        assert_eq!(d, Digest::sha256_of(&data));
        assert_eq!(n, 100_000);
        let mut w = DigestingWriter::new(Vec::new());
        w.write_all(&data).expect("write");
        let (d2, n2, out) = w.finish();
        assert_eq!((d2, n2), (Digest::sha256_of(&data), 100_000));
        assert_eq!(out, data);
    }
}
