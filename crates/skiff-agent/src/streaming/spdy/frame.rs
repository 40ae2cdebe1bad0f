//! SPDY/3 frames on the wire: encoding and decoding, with the zlib header-block compression
//! (the SPDY/3 dictionary, one compression context per direction for the whole connection).
//!
//! Only framing lives here; what streams mean and who reads them is [`super::session`]'s.
//! Flow control (`WINDOW_UPDATE`) is decoded but not enforced: the Kubernetes clients'
//! `spdystream` implementation never enforces it either.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY/3 header compression dictionary (SPDY/3 specification, section 2.6.10.1).
const DICTIONARY: &[u8] = include_bytes!("dictionary.bin");
/// The protocol version carried by control frames.
pub const VERSION: u16 = 3;
/// `FLAG_FIN`: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// Largest frame payload (24-bit length).
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// Largest header block accepted after decompression.
const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Header name/value pairs of a stream (names lowercase; several values of one name are joined
/// with NUL on the wire).
pub type Headers = Vec<(String, String)>;

/// One SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream.
        stream_id: u32,
        /// Stream it is associated with (server push; 0 otherwise).
        associated_id: u32,
        /// Priority 0 (highest) to 7.
        priority: u8,
        /// `FLAG_FIN`, `FLAG_UNIDIRECTIONAL`.
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN`.
        flags: u8,
        /// Its headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (1 PROTOCOL_ERROR, 5 CANCEL, …).
        status: u32,
    },
    /// Connection settings (ignored).
    Settings {
        /// Flags.
        flags: u8,
        /// Raw entries: (flags, id, value).
        entries: Vec<(u8, u32, u32)>,
    },
    /// A ping, answered with the same id.
    Ping {
        /// Its id.
        id: u32,
    },
    /// The sender is going away.
    GoAway {
        /// Last stream it processed.
        last_good_stream_id: u32,
        /// Why.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN`.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Flow-control window increase (not enforced).
    WindowUpdate {
        /// The stream.
        stream_id: u32,
        /// Increase.
        delta: u32,
    },
    /// Payload of a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN`.
        flags: u8,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know (ignored, as the
    /// specification asks).
    Unknown {
        /// Its type.
        kind: u16,
    },
}

/// Framing failures; the connection cannot go on after one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    /// A frame that does not follow the specification.
    #[error("invalid SPDY frame: {0}")]
    Invalid(String),
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// zlib failed.
    #[error("SPDY header compression: {0}")]
    Compression(String),
}

fn invalid(what: impl Into<String>) -> SpdyError {
    SpdyError::Invalid(what.into())
}

/// Encoder and decoder of one connection (each direction keeps its own zlib context).
pub struct Codec {
    compress: Compress,
    decompress: Decompress,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("spdy::Codec")
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    /// A codec for a new connection.
    pub fn new() -> Self {
        let mut compress = Compress::new(Compression::default(), true);
        // A fresh zlib stream always accepts a dictionary.
        let _ = compress.set_dictionary(DICTIONARY);
        Self { compress, decompress: Decompress::new(true) }
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        let mut payload = BytesMut::new();
        let (kind, flags) = match frame {
            Frame::Data { stream_id, flags, data } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(invalid("data frame too large"));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.put_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream_id, associated_id, priority, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(associated_id & 0x7fff_ffff);
                payload.put_u8((priority & 0x7) << 5);
                payload.put_u8(0);
                payload.put_slice(&self.compress_headers(headers)?);
                (1, *flags)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_slice(&self.compress_headers(headers)?);
                (2, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(*status);
                (3, 0)
            }
            Frame::Settings { flags, entries } => {
                payload.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    payload.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                    payload.put_u32(*value);
                }
                (4, *flags)
            }
            Frame::Ping { id } => {
                payload.put_u32(*id);
                (6, 0)
            }
            Frame::GoAway { last_good_stream_id, status } => {
                payload.put_u32(last_good_stream_id & 0x7fff_ffff);
                payload.put_u32(*status);
                (7, 0)
            }
            Frame::Headers { stream_id, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_slice(&self.compress_headers(headers)?);
                (8, *flags)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(delta & 0x7fff_ffff);
                (9, 0)
            }
            Frame::Unknown { kind } => (*kind, 0),
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(invalid("control frame too large"));
        }
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
        out.put_slice(&payload);
        Ok(())
    }

    /// Takes one whole frame off the front of `buf`; `None` until a whole frame is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if buf.len() < 8 + length {
            buf.reserve(8 + length - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(8 + length).freeze();
        let first = frame.get_u32();
        let flags = frame.get_u8();
        frame.advance(3);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: first & 0x7fff_ffff, flags, data: frame }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let need = |n: usize, frame: &Bytes| {
            if frame.len() < n { Err(invalid(format!("control frame {kind} too short"))) } else { Ok(()) }
        };
        let decoded = match kind {
            1 => {
                need(10, &frame)?;
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                let associated_id = frame.get_u32() & 0x7fff_ffff;
                let priority = frame.get_u8() >> 5;
                frame.advance(1);
                let headers = self.decompress_headers(&frame)?;
                Frame::SynStream { stream_id, associated_id, priority, flags, headers }
            }
            2 | 8 => {
                need(4, &frame)?;
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                let headers = self.decompress_headers(&frame)?;
                if kind == 2 {
                    Frame::SynReply { stream_id, flags, headers }
                } else {
                    Frame::Headers { stream_id, flags, headers }
                }
            }
            3 => {
                need(8, &frame)?;
                Frame::RstStream { stream_id: frame.get_u32() & 0x7fff_ffff, status: frame.get_u32() }
            }
            4 => {
                need(4, &frame)?;
                let count = frame.get_u32() as usize;
                need(count.saturating_mul(8), &frame)?;
                let entries = (0..count)
                    .map(|_| {
                        let head = frame.get_u32();
                        ((head >> 24) as u8, head & 0x00ff_ffff, frame.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            6 => {
                need(4, &frame)?;
                Frame::Ping { id: frame.get_u32() }
            }
            7 => {
                need(4, &frame)?;
                let last_good_stream_id = frame.get_u32() & 0x7fff_ffff;
                let status = if frame.len() >= 4 { frame.get_u32() } else { 0 };
                Frame::GoAway { last_good_stream_id, status }
            }
            9 => {
                need(8, &frame)?;
                Frame::WindowUpdate { stream_id: frame.get_u32() & 0x7fff_ffff, delta: frame.get_u32() & 0x7fff_ffff }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(decoded))
    }

    fn compress_headers(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut block = BytesMut::new();
        // Several values of one name travel as one NUL-joined value.
        let mut merged: Vec<(String, String)> = Vec::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            match merged.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    v.push('\0');
                    v.push_str(value);
                }
                None => merged.push((name, value.clone())),
            }
        }
        block.put_u32(merged.len() as u32);
        for (name, value) in &merged {
            block.put_u32(name.len() as u32);
            block.put_slice(name.as_bytes());
            block.put_u32(value.len() as u32);
            block.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        let start_in = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            out.reserve(block.len() + 64);
            let status = self
                .compress
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let done = (self.compress.total_in() - start_in) as usize == block.len();
            // A sync flush is complete once zlib left spare room in the output.
            if done && out.len() < out.capacity() && matches!(status, Status::Ok | Status::BufError) {
                return Ok(out);
            }
        }
    }

    fn decompress_headers(&mut self, input: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start_in = self.decompress.total_in();
        loop {
            let consumed = (self.decompress.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(invalid("header block too large"));
                }
                out.reserve(out.len().max(256));
            }
            let before_out = self.decompress.total_out();
            match self.decompress.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => return Err(invalid("the header compression stream ended")),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress.set_dictionary(DICTIONARY).map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let now = (self.decompress.total_in() - start_in) as usize;
            if now == input.len() && out.len() < out.capacity() {
                break;
            }
            if now == consumed && self.decompress.total_out() == before_out && out.len() < out.capacity() {
                return Err(invalid("truncated header block"));
            }
        }
        parse_header_block(&out)
    }
}

fn parse_header_block(mut block: &[u8]) -> Result<Headers, SpdyError> {
    let take = |n: usize, block: &mut &[u8]| -> Result<Vec<u8>, SpdyError> {
        if block.len() < n {
            return Err(invalid("truncated header block"));
        }
        let (head, rest) = block.split_at(n);
        *block = rest;
        Ok(head.to_vec())
    };
    let len = |block: &mut &[u8]| -> Result<usize, SpdyError> {
        if block.len() < 4 {
            return Err(invalid("truncated header block"));
        }
        let n = u32::from_be_bytes([block[0], block[1], block[2], block[3]]) as usize;
        *block = &block[4..];
        Ok(n)
    };
    let count = len(&mut block)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = len(&mut block)?;
        let name = String::from_utf8_lossy(&take(n, &mut block)?).to_ascii_lowercase();
        let n = len(&mut block)?;
        let value = take(n, &mut block)?;
        for v in value.split(|b| *b == 0) {
            headers.push((name.clone(), String::from_utf8_lossy(v).into_owned()));
        }
    }
    Ok(headers)
}

/// The first value of header `name` (lowercase).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        let (mut tx, mut rx) = (Codec::new(), Codec::new());
        let mut wire = BytesMut::new();
        for f in frames {
            tx.encode(f, &mut wire).expect("encode");
        }
        let mut out = Vec::new();
        // Feed the bytes one at a time: partial frames wait for the rest.
        let mut buf = BytesMut::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(f) = rx.decode(&mut buf).expect("decode") {
                out.push(f);
            }
        }
        assert!(buf.is_empty());
        out
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn frames_round_trip_with_a_shared_compression_context() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: h(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] },
            Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n") },
            Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::new() },
            Frame::Ping { id: 7 },
            Frame::RstStream { stream_id: 5, status: 5 },
            Frame::WindowUpdate { stream_id: 3, delta: 65536 },
            Frame::Settings { flags: 0, entries: vec![(0, 7, 65536)] },
            Frame::Headers { stream_id: 1, flags: FLAG_FIN, headers: h(&[("a", "b")]) },
            Frame::GoAway { last_good_stream_id: 3, status: 0 },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn repeated_names_travel_nul_joined_and_names_are_lowercased() {
        let (mut tx, mut rx) = (Codec::new(), Codec::new());
        let mut wire = BytesMut::new();
        let headers = h(&[("X-Stream-Protocol-Version", "v4.channel.k8s.io"), ("x-stream-protocol-version", "v3")]);
        tx.encode(&Frame::SynReply { stream_id: 1, flags: 0, headers }, &mut wire).expect("encode");
        let Some(Frame::SynReply { headers, .. }) = rx.decode(&mut wire).expect("decode") else { panic!() };
        assert_eq!(
            headers,
            h(&[("x-stream-protocol-version", "v4.channel.k8s.io"), ("x-stream-protocol-version", "v3")])
        );
    }

    #[test]
    fn decodes_bytes_a_go_spdystream_client_sent() {
        // SYN_STREAM 1 {streamtype: error} as Go's spdy framer (zlib level 9 with the SPDY
        // dictionary) writes it, checked by hand against the specification's layout.
        let mut compress = Compress::new(Compression::best(), true);
        compress.set_dictionary(DICTIONARY).expect("dictionary");
        let block = [&[0u8, 0, 0, 1, 0, 0, 0, 10][..], b"streamtype", &[0, 0, 0, 5], b"error"].concat();
        let mut z = Vec::with_capacity(256);
        compress.compress_vec(&block, &mut z, FlushCompress::Sync).expect("compress");
        let mut wire = BytesMut::new();
        wire.put_u32(0x8003_0001);
        wire.put_u32(10 + z.len() as u32);
        wire.put_u32(1);
        wire.put_u32(0);
        wire.put_u16(0);
        wire.put_slice(&z);
        let frame = Codec::new().decode(&mut wire).expect("decode").expect("frame");
        assert_eq!(
            frame,
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: h(&[("streamtype", "error")])
            }
        );
    }

    #[test]
    fn rejects_other_versions_and_short_frames() {
        let mut wire = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(Codec::new().decode(&mut wire), Err(SpdyError::Version(2)));
        let mut wire = BytesMut::from(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(Codec::new().decode(&mut wire), Err(SpdyError::Invalid(_))));
        let mut partial = BytesMut::from(&[0x80, 0x03, 0x00][..]);
        assert_eq!(Codec::new().decode(&mut partial), Ok(None));
    }
}
