//! Length-prefixed binary framing over serde.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload, a message serialised with
//! postcard (compact varints, no schema on the wire). The length is checked against a hard limit
//! *before* any buffering, so a peer cannot make the receiver allocate more than the limit; every
//! decoding failure is a typed [`DecodeError`], never a panic.
//!
//! [`FrameDecoder`] is a sans-IO incremental decoder: feed it whatever bytes arrived with
//! [`FrameDecoder::push`], then take complete messages with [`FrameDecoder::next_message`].

use serde::{de::DeserializeOwned, Serialize};

/// Default hard limit on a frame's payload: 16 MiB.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why bytes could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("empty frame: a frame must carry a message")]
    EmptyFrame,
    #[error("malformed {len}-byte frame: {reason}")]
    Malformed { len: usize, reason: String },
    #[error("{extra} unexpected bytes after the message in a {len}-byte frame")]
    TrailingBytes { len: usize, extra: usize },
    #[error("stream ended inside a frame: {have} bytes buffered, {need} needed")]
    Truncated { have: usize, need: usize },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("message could not be serialised: {0}")]
    Serialize(String),
}

/// Encodes `msg` as one frame (length prefix + payload), appending to `out`.
pub fn encode_frame_into<M: Serialize>(
    msg: &M,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut buf = std::mem::take(out);
    buf = match postcard::to_extend(msg, buf) {
        Ok(b) => b,
        Err(e) => {
            return Err(EncodeError::Serialize(e.to_string()));
        }
    };
    *out = buf;
    let len = out.len() - start - HEADER_LEN;
    if len > max || len > u32::MAX as usize {
        out.truncate(start);
        return Err(EncodeError::FrameTooLarge { len, max });
    }
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Encodes `msg` as one frame with the default limit.
pub fn encode_frame<M: Serialize>(msg: &M) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    encode_frame_into(msg, MAX_FRAME_LEN, &mut out)?;
    Ok(out)
}

/// Decodes one message from a frame payload (without its length prefix).
pub fn decode_payload<M: DeserializeOwned>(payload: &[u8]) -> Result<M, DecodeError> {
    let len = payload.len();
    if len == 0 {
        return Err(DecodeError::EmptyFrame);
    }
    match postcard::take_from_bytes::<M>(payload) {
        Ok((msg, [])) => Ok(msg),
        Ok((_, rest)) => Err(DecodeError::TrailingBytes {
            len,
            extra: rest.len(),
        }),
        Err(e) => Err(DecodeError::Malformed {
            len,
            reason: e.to_string(),
        }),
    }
}

/// Decodes exactly one whole frame (length prefix + payload) with the default limit.
pub fn decode_frame<M: DeserializeOwned>(frame: &[u8]) -> Result<M, DecodeError> {
    let mut d = FrameDecoder::new(MAX_FRAME_LEN);
    d.push(frame)?;
    match d.next_message()? {
        Some(m) if d.buffered() == 0 => Ok(m),
        Some(_) => Err(DecodeError::TrailingBytes {
            len: frame.len(),
            extra: d.buffered(),
        }),
        None => Err(d.finish().err().unwrap_or(DecodeError::Truncated {
            have: frame.len(),
            need: HEADER_LEN,
        })),
    }
}

/// Reads the protocol version from the payload of a Hello that may come from another protocol
/// version: the variant tag (0 = Hello) and the first field are stable across versions.
pub fn peek_hello_version(payload: &[u8]) -> Option<u16> {
    match postcard::take_from_bytes::<(u32, u16)>(payload) {
        Ok(((0, version), _)) => Some(version),
        _ => None,
    }
}

/// Incremental, sans-IO frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    max: usize,
    /// Set once an oversized frame was announced: the stream cannot be resynchronised, so every
    /// later call returns this error.
    refused: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max` payload bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            max,
            refused: None,
        }
    }

    /// Changes the frame limit (a limit that depends on what the peer may legitimately send now);
    /// it applies to the frame being received too.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends received bytes. Fails as soon as the frame being received announces a length over
    /// the limit; the chunk that carried that header is not kept, so an oversized frame is never
    /// buffered.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        if let Some(e) = &self.refused {
            return Err(e.clone());
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.check_header()?;
        let before = self.buf.len();
        self.buf.extend_from_slice(bytes);
        if let Err(e) = self.check_header() {
            // Keep nothing of a chunk that completes an oversized frame's header.
            self.buf.truncate(before);
            self.refused = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    fn pending_len(&self) -> Option<usize> {
        let rest = &self.buf[self.pos..];
        let header: [u8; HEADER_LEN] = rest.get(..HEADER_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(header) as usize)
    }

    fn check_header(&self) -> Result<(), DecodeError> {
        match self.pending_len() {
            Some(len) if len > self.max => Err(DecodeError::FrameTooLarge { len, max: self.max }),
            _ => Ok(()),
        }
    }

    /// The payload of the next complete frame, if one is buffered.
    pub fn next_payload(&mut self) -> Result<Option<&[u8]>, DecodeError> {
        if let Some(e) = &self.refused {
            return Err(e.clone());
        }
        let Some(len) = self.pending_len() else {
            return Ok(None);
        };
        if len > self.max {
            return Err(DecodeError::FrameTooLarge { len, max: self.max });
        }
        if self.buffered() < HEADER_LEN + len {
            return Ok(None);
        }
        let start = self.pos + HEADER_LEN;
        self.pos = start + len;
        Ok(Some(&self.buf[start..start + len]))
    }

    /// The next complete message, if one is buffered.
    pub fn next_message<M: DeserializeOwned>(&mut self) -> Result<Option<M>, DecodeError> {
        match self.next_payload()? {
            Some(payload) => decode_payload(payload).map(Some),
            None => Ok(None),
        }
    }

    /// Call at the end of the stream: fails when it ended inside a frame.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let have = self.buffered();
        if have == 0 {
            return Ok(());
        }
        let need = self.pending_len().map_or(HEADER_LEN, |l| HEADER_LEN + l);
        Err(DecodeError::Truncated { have, need })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{CoordinatorMessage, ProbeMessage};

    #[test]
    fn decodes_frames_split_anywhere() {
        let msgs = [
            CoordinatorMessage::Ack { seq: 7 },
            CoordinatorMessage::Heartbeat { now_ns: -5 },
            CoordinatorMessage::Abort {
                reason: "rack power above breaker rating".into(),
            },
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            encode_frame_into(m, MAX_FRAME_LEN, &mut wire).unwrap();
        }
        for split in 0..wire.len() {
            let mut d = FrameDecoder::new(MAX_FRAME_LEN);
            let mut got = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                d.push(chunk).unwrap();
                while let Some(m) = d.next_message::<CoordinatorMessage>().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, msgs);
            d.finish().unwrap();
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_buffering() {
        let mut d = FrameDecoder::new(1024);
        let err = d.push(&2048u32.to_be_bytes()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::FrameTooLarge {
                len: 2048,
                max: 1024
            }
        );
    }

    #[test]
    fn encoder_enforces_the_limit() {
        let big = CoordinatorMessage::Abort {
            reason: "x".repeat(100),
        };
        let mut out = vec![1, 2, 3];
        let err = encode_frame_into(&big, 50, &mut out).unwrap_err();
        assert!(matches!(err, EncodeError::FrameTooLarge { max: 50, .. }));
        assert_eq!(
            out,
            vec![1, 2, 3],
            "a refused frame leaves the buffer as it was"
        );
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let frame = encode_frame(&CoordinatorMessage::Ack { seq: 300 }).unwrap();
        let err = decode_frame::<CoordinatorMessage>(&frame[..frame.len() - 1]).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err:?}");

        let mut padded = frame[HEADER_LEN..].to_vec();
        padded.push(0);
        let err = decode_payload::<CoordinatorMessage>(&padded).unwrap_err();
        assert!(
            matches!(err, DecodeError::TrailingBytes { extra: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_and_unknown_variants_are_errors() {
        assert_eq!(
            decode_payload::<ProbeMessage>(&[]).unwrap_err(),
            DecodeError::EmptyFrame
        );
        let err = decode_payload::<ProbeMessage>(&[99]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed { len: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn hello_version_can_be_read_from_a_future_hello() {
        // Variant 0, version 7, then fields this build does not know.
        let payload = [0u8, 7, 0xff, 0xff, 0xff];
        assert_eq!(peek_hello_version(&payload), Some(7));
        assert!(decode_payload::<ProbeMessage>(&payload).is_err());
        assert_eq!(peek_hello_version(&[1, 7]), None);
    }
}
