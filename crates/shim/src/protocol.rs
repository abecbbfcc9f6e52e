//! The shim's wire protocol (version [`VERSION`]), byte level and transport-free so that a
//! blocking client ([`crate::client`]) and berthd's async code share it.
//!
//! Every message in either direction is one frame: an 8-byte header `[kind, 0, 0, 0, len_be32]`
//! followed by `len` payload bytes — the header of docker's multiplexed raw stream.
//!
//! * `attach.sock`, shim → client: without a TTY, docker multiplex frames (`kind` 1 = stdout,
//!   2 = stderr), so berthd can pass them through unchanged; with a TTY, raw bytes, no framing.
//! * `attach.sock`, client → shim: [`IN_STDIN`] (data for the container's stdin),
//!   [`IN_STDIN_CLOSE`] (empty: close the container's stdin), [`IN_RESIZE`] (4 bytes:
//!   rows_be16, cols_be16 → TIOCSWINSZ on the pty master).
//! * `control.sock`: the client sends one request frame ([`CTL_START`], [`CTL_VERSION`]), the
//!   shim answers one reply frame ([`REPLY_OK`] or [`REPLY_ERR`], payload = text).

/// Protocol version, answered to [`CTL_VERSION`] and printed by `berth-shim --version`.
pub const VERSION: u32 = 1;

/// Size of a frame header.
pub const HEADER_LEN: usize = 8;

/// Largest payload accepted from a client; a bigger frame is a protocol error.
pub const MAX_FRAME: usize = 1 << 20;

/// shim → client: stdout data (docker's stream 1).
pub const OUT_STDOUT: u8 = 1;
/// shim → client: stderr data (docker's stream 2).
pub const OUT_STDERR: u8 = 2;

/// client → shim: bytes for the container's stdin (docker's stream 0).
pub const IN_STDIN: u8 = 0;
/// client → shim: close the container's stdin (EOF for the process); empty payload.
pub const IN_STDIN_CLOSE: u8 = 1;
/// client → shim: set the terminal size, payload rows_be16 cols_be16.
pub const IN_RESIZE: u8 = 2;

/// control request: start the created container (`--no-start` shims).
pub const CTL_START: u8 = 1;
/// control request: the protocol version (reply payload: decimal text).
pub const CTL_VERSION: u8 = 2;

/// control reply: success, payload optional text.
pub const REPLY_OK: u8 = 0;
/// control reply: failure, payload the error text.
pub const REPLY_ERR: u8 = 1;

/// Errors of frame decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The three reserved header bytes were not zero.
    #[error("bad frame header {0:02x?}: reserved bytes must be zero")]
    BadHeader([u8; 4]),
    /// The payload length exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes is larger than the {MAX_FRAME} byte limit")]
    TooLarge(usize),
    /// A resize frame whose payload is not 4 bytes.
    #[error("resize frame has {0} payload bytes, want 4")]
    BadResize(usize),
}

/// The header of a frame of `kind` carrying `len` bytes.
pub fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    let l = u32::try_from(len)
        .expect("frame payloads are far below 4 GiB")
        .to_be_bytes();
    [kind, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Appends a whole frame to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&header(kind, payload.len()));
    out.extend_from_slice(payload);
}

/// A resize frame.
pub fn resize_frame(rows: u16, cols: u16) -> [u8; HEADER_LEN + 4] {
    let mut f = [0u8; HEADER_LEN + 4];
    f[..HEADER_LEN].copy_from_slice(&header(IN_RESIZE, 4));
    f[8..10].copy_from_slice(&rows.to_be_bytes());
    f[10..12].copy_from_slice(&cols.to_be_bytes());
    f
}

/// The rows and columns of a resize payload.
pub fn parse_resize(payload: &[u8]) -> Result<(u16, u16), ProtocolError> {
    match payload {
        [r0, r1, c0, c1] => Ok((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*c0, *c1]),
        )),
        _ => Err(ProtocolError::BadResize(payload.len())),
    }
}

/// One complete frame at the start of `buf`: `(kind, payload range, bytes consumed)`, or `None`
/// when `buf` holds only part of a frame.
pub fn parse(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>, usize)>, ProtocolError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if h[1..4] != [0, 0, 0] {
        return Err(ProtocolError::BadHeader([h[0], h[1], h[2], h[3]]));
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    Ok(Some((h[0], HEADER_LEN..HEADER_LEN + len, HEADER_LEN + len)))
}

/// An owned frame, for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// stream or message kind
    pub kind: u8,
    /// payload bytes
    pub payload: Vec<u8>,
}

/// Incremental decoder for a byte stream of frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let Some((kind, range, used)) = parse(&self.buf)? else {
            return Ok(None);
        };
        let payload = self.buf[range].to_vec();
        self.buf.drain(..used);
        Ok(Some(Frame { kind, payload }))
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_docker_multiplex_header() {
        assert_eq!(header(OUT_STDERR, 0x0102), [2, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn decoder_reassembles_split_frames() {
        let mut wire = Vec::new();
        encode(&mut wire, IN_STDIN, b"hello");
        wire.extend_from_slice(&resize_frame(24, 80));
        encode(&mut wire, IN_STDIN_CLOSE, b"");
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().expect("valid") {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].payload, b"hello");
        assert_eq!(parse_resize(&got[1].payload), Ok((24, 80)));
        assert_eq!(got[2].kind, IN_STDIN_CLOSE);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn bad_frames_are_refused() {
        assert_eq!(
            parse(&[0, 1, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::BadHeader([0, 1, 0, 0]))
        );
        let big = header(IN_STDIN, MAX_FRAME + 1);
        assert_eq!(parse(&big), Err(ProtocolError::TooLarge(MAX_FRAME + 1)));
        assert_eq!(parse_resize(&[1, 2, 3]), Err(ProtocolError::BadResize(3)));
    }
}
