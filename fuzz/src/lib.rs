//! Checks shared by the fuzz targets. Any panic here is a finding: either the codec panicked on
//! hostile input, or it disagreed with the reference reading of the framing below.

pub mod file_error;

use hallmark_protocol::codec::{decode_payload, encode_frame, peek_hello_version, HEADER_LEN};
use hallmark_protocol::{decode_frame, DecodeError, FrameDecoder, ProbeMessage};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

/// Frame limit of the decoder under test: small, so that oversized frames are common.
pub const MAX: usize = 4096;

/// One frame's outcome: the canonical encoding of its message, or why it was not decoded.
type Event = Result<Vec<u8>, DecodeError>;

/// The first byte picks where the rest is split in two; the rest is pushed through a
/// [`FrameDecoder`] in those two chunks and every message is taken. The raw input is also decoded
/// as one payload and as one frame.
pub fn check_decoding<M>(data: &[u8])
where
    M: Serialize + DeserializeOwned + Debug,
{
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let at = split as usize * stream.len() / 255;
    let (first, second) = stream.split_at(at);

    // The length announced by the frame at `pos`, once its header is in `stream[..end]`.
    let announced = |pos: usize, end: usize| {
        (end - pos >= HEADER_LEN)
            .then(|| u32::from_be_bytes(stream[pos..pos + HEADER_LEN].try_into().unwrap()) as usize)
    };
    let mut d = FrameDecoder::new(MAX);
    let mut got: Vec<Event> = Vec::new();
    let mut refused_in = None;
    let mut pushed = 0;
    // Start of the first frame not yet taken.
    let mut taken = 0;
    for (i, part) in [first, second].into_iter().enumerate() {
        pushed += part.len();
        // `push` itself refuses the bytes of a frame announced over the limit.
        let oversized = announced(taken, pushed).is_some_and(|len| len > MAX);
        let refusal = match d.push(part) {
            Err(e) => {
                assert!(oversized, "push refused for no reason: {e:?}");
                Some(e)
            }
            Ok(()) => {
                assert!(
                    !oversized,
                    "push took bytes of a frame announced over the limit"
                );
                loop {
                    let r = d.next_message::<M>();
                    if !matches!(r, Ok(None) | Err(DecodeError::FrameTooLarge { .. })) {
                        taken += HEADER_LEN + announced(taken, pushed).unwrap();
                    }
                    match r {
                        Ok(Some(m)) => got.push(Ok(canonical(&m))),
                        Ok(None) => break None,
                        Err(e @ DecodeError::FrameTooLarge { .. }) => break Some(e),
                        // The bad frame is consumed; the next one can still be read.
                        Err(e) => got.push(Err(e)),
                    }
                }
            }
        };
        if let Some(e) = refusal {
            assert!(
                matches!(e, DecodeError::FrameTooLarge { .. }),
                "only an oversized frame stops a stream: {e:?}"
            );
            // Refused for good, and nothing more is buffered.
            let before = d.buffered();
            assert_eq!(d.push(b"more"), Err(e.clone()));
            assert_eq!(d.buffered(), before);
            got.push(Err(e));
            refused_in = Some(i);
            break;
        }
    }
    assert!(d.buffered() <= stream.len());

    let (want, want_finish, header_end) = model::<M>(stream);
    assert_eq!(got, want, "decoder and model disagree");
    match (refused_in, header_end) {
        (None, None) => assert_eq!(d.finish(), want_finish),
        // Refused while pushing the chunk that completed the header, before any later byte.
        (Some(i), Some(end)) => assert_eq!(i, usize::from(end > at), "refused too late"),
        (g, w) => panic!("refused in chunk {g:?}, model refuses at {w:?}"),
    }

    for bytes in [data, stream] {
        match decode_payload::<M>(bytes) {
            Ok(m) => {
                canonical(&m);
            }
            Err(DecodeError::EmptyFrame) => assert!(bytes.is_empty()),
            Err(DecodeError::Malformed { len, .. }) => assert_eq!(len, bytes.len()),
            Err(DecodeError::TrailingBytes { len, extra }) => {
                assert_eq!(len, bytes.len());
                assert!(extra > 0 && extra < len);
            }
            Err(e) => panic!("decode_payload: {e:?}"),
        }
        if let Ok(m) = decode_frame::<M>(bytes) {
            canonical(&m);
        }
    }
}

/// The version a Hello carries can be read from its payload, and nothing else carries one.
pub fn check_hello_version(data: &[u8]) {
    let version = peek_hello_version(data);
    match decode_payload::<ProbeMessage>(data) {
        Ok(ProbeMessage::Hello(h)) => assert_eq!(version, Some(h.protocol_version)),
        Ok(other) => assert_eq!(version, None, "{other:?} read as a Hello"),
        Err(_) => {}
    }
}

/// Encodes a decoded message and checks that the encoding decodes to the same bits.
fn canonical<M: Serialize + DeserializeOwned + Debug>(m: &M) -> Vec<u8> {
    let frame = encode_frame(m).expect("a decoded message encodes");
    let again: M = decode_frame(&frame).expect("an encoded message decodes");
    assert_eq!(
        encode_frame(&again).unwrap(),
        frame,
        "{m:?} changed in a round trip"
    );
    frame
}

/// Reference reading of a whole stream: each complete frame's outcome, what `finish` says at the
/// end, and where the header of a refused frame ends (reading stops there).
fn model<M: Serialize + DeserializeOwned + Debug>(
    wire: &[u8],
) -> (Vec<Event>, Result<(), DecodeError>, Option<usize>) {
    let mut events = Vec::new();
    let mut pos = 0;
    let header =
        |pos: usize| u32::from_be_bytes(wire[pos..pos + HEADER_LEN].try_into().unwrap()) as usize;
    while wire.len() - pos >= HEADER_LEN {
        let len = header(pos);
        if len > MAX {
            events.push(Err(DecodeError::FrameTooLarge { len, max: MAX }));
            return (events, Ok(()), Some(pos + HEADER_LEN));
        }
        let end = pos + HEADER_LEN + len;
        if end > wire.len() {
            break;
        }
        events.push(decode_payload::<M>(&wire[pos + HEADER_LEN..end]).map(|m| canonical(&m)));
        pos = end;
    }
    let have = wire.len() - pos;
    let finish = match have {
        0 => Ok(()),
        1..HEADER_LEN => Err(DecodeError::Truncated {
            have,
            need: HEADER_LEN,
        }),
        _ => Err(DecodeError::Truncated {
            have,
            need: HEADER_LEN + header(pos),
        }),
    };
    (events, finish, None)
}

/// The file parsers' contract on any text: no panic, and an error keeps
/// [`file_error::check_position`] (panics here when it does not). Bytes that are not UTF-8 are
/// read lossily (the CLI refuses them before parsing, but the parser must not care).
pub fn check_file_error(text: &str, file: &str, line: usize, column: usize, shown: &str) {
    if let Err(why) = file_error::check_position(text, file, line, column, shown) {
        panic!("{why}");
    }
}

/// The fuzz input as the text a parser reads.
pub fn text_of(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
