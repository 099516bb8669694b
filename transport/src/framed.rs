//! Protocol frames over quinn streams.
//!
//! [`FramedSend`] serialises messages into frames and writes them; [`FramedRecv`] reads whatever
//! bytes arrive into a [`FrameDecoder`] and hands out whole payloads or messages. The frame-size
//! limit is enforced before an oversized frame is buffered.

use hallmark_protocol::codec::{decode_payload, encode_frame_into, EncodeError, MAX_FRAME_LEN};
use hallmark_protocol::{DecodeError, FrameDecoder};
use serde::{de::DeserializeOwned, Serialize};

/// Why a framed stream failed.
#[derive(Debug, thiserror::Error)]
pub enum FramedError {
    #[error("peer sent an invalid frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("could not encode a message: {0}")]
    Encode(#[from] EncodeError),
    #[error("reading from the stream failed: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("writing to the stream failed: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Writing half: one frame per message.
#[derive(Debug)]
pub struct FramedSend {
    stream: quinn::SendStream,
    buf: Vec<u8>,
    max: usize,
}

impl FramedSend {
    /// Wraps a stream with the default frame limit.
    pub fn new(stream: quinn::SendStream) -> Self {
        FramedSend {
            stream,
            buf: Vec::with_capacity(4096),
            max: MAX_FRAME_LEN,
        }
    }

    /// Encodes and writes one message.
    pub async fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), FramedError> {
        self.buf.clear();
        encode_frame_into(msg, self.max, &mut self.buf)?;
        self.stream.write_all(&self.buf).await?;
        Ok(())
    }

    /// Writes raw bytes (tests use this to send garbage).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), FramedError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Ends the stream gracefully and waits (bounded by the caller) until the peer has it all.
    pub async fn finish(&mut self) {
        if self.stream.finish().is_ok() {
            let _ = self.stream.stopped().await;
        }
    }
}

/// Reading half: whole payloads or messages out of a byte stream.
#[derive(Debug)]
pub struct FramedRecv {
    stream: quinn::RecvStream,
    decoder: FrameDecoder,
    chunk: Vec<u8>,
    payload: Vec<u8>,
}

impl FramedRecv {
    /// Wraps a stream with the default frame limit.
    pub fn new(stream: quinn::RecvStream) -> Self {
        Self::with_max_frame(stream, MAX_FRAME_LEN)
    }

    /// Wraps a stream with a custom frame limit.
    pub fn with_max_frame(stream: quinn::RecvStream, max: usize) -> Self {
        FramedRecv {
            stream,
            decoder: FrameDecoder::new(max),
            chunk: vec![0; 64 * 1024],
            payload: Vec::new(),
        }
    }

    /// Changes the frame limit; it applies to the frame being received too.
    pub fn set_max_frame(&mut self, max: usize) {
        self.decoder.set_max(max);
    }

    /// The next whole frame's payload; `None` when the peer ended the stream cleanly between frames.
    pub async fn recv_payload(&mut self) -> Result<Option<&[u8]>, FramedError> {
        loop {
            // Two-step to satisfy the borrow checker: find out whether a payload is ready, then copy.
            if let Some(p) = self.decoder.next_payload()? {
                self.payload.clear();
                self.payload.extend_from_slice(p);
                return Ok(Some(&self.payload));
            }
            match self.stream.read(&mut self.chunk).await? {
                Some(n) => self.decoder.push(&self.chunk[..n])?,
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }

    /// The next message; `None` at a clean end of stream.
    pub async fn recv<M: DeserializeOwned>(&mut self) -> Result<Option<M>, FramedError> {
        match self.recv_payload().await? {
            Some(p) => Ok(Some(decode_payload(p)?)),
            None => Ok(None),
        }
    }
}
