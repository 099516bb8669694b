//! The bundle's container: a POSIX ustar archive in one canonical form.
//!
//! Every header is a pure function of the member's name and size (mode 0644, uid/gid 0, empty owner
//! names, mtime 0, type regular file); content is padded with zero bytes to 512, and the archive ends
//! with exactly two zero blocks and nothing after them. Reading is strict: a header that differs in any
//! byte from the canonical one, non-zero padding, a missing end marker or trailing data is an error. So
//! the whole file is determined by the member names and contents, which the signed manifest pins:
//! any changed byte anywhere is caught. `tar -xf` reads these archives as usual.

use super::BundleFile;

const BLOCK: usize = 512;
/// The ustar name field; longer names would need the prefix field, which hallmark does not write.
pub const MAX_NAME_LEN: usize = 100;
/// The largest size 11 octal digits can hold (8 GiB - 1).
pub const MAX_SIZE: u64 = 0o77_777_777_777;

/// Why an archive could not be read (the caller adds the path).
#[derive(Debug)]
pub(crate) enum Fault {
    Truncated(String),
    Malformed(String),
}

/// The canonical header of a regular file `name` of `size` bytes.
/// The caller has checked `name.len() <= MAX_NAME_LEN` and `size <= MAX_SIZE`.
fn header(name: &[u8], size: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as eight spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn padding(size: usize) -> usize {
    (BLOCK - size % BLOCK) % BLOCK
}

/// The archive of `entries`, in order. Names and sizes must already be validated.
pub(crate) fn encode(entries: &[BundleFile]) -> Vec<u8> {
    let total: usize = entries
        .iter()
        .map(|e| BLOCK + e.bytes.len() + padding(e.bytes.len()))
        .sum::<usize>()
        + 2 * BLOCK;
    let mut out = Vec::with_capacity(total);
    for e in entries {
        out.extend_from_slice(&header(e.name.as_bytes(), e.bytes.len() as u64));
        out.extend_from_slice(&e.bytes);
        out.resize(out.len() + padding(e.bytes.len()), 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn parse_size(field: &[u8]) -> Option<u64> {
    let (digits, nul) = field.split_at(11);
    if nul != [0] || !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |acc, d| acc * 8 + u64::from(d - b'0')),
    )
}

/// The members of a canonical archive, in order.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<BundleFile>, Fault> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    loop {
        let Some(block) = bytes.get(at..at + BLOCK) else {
            return Err(Fault::Truncated(format!(
                "the archive ends at byte {} without its end-of-archive marker",
                bytes.len()
            )));
        };
        if block.iter().all(|&b| b == 0) {
            let end = at + 2 * BLOCK;
            if bytes.len() < end {
                return Err(Fault::Truncated(format!(
                    "the end-of-archive marker at byte {at} is cut short"
                )));
            }
            if let Some(i) = bytes[at + BLOCK..end].iter().position(|&b| b != 0) {
                return Err(Fault::Malformed(format!(
                    "non-zero byte in the end-of-archive marker at byte {}",
                    at + BLOCK + i
                )));
            }
            if bytes.len() > end {
                return Err(Fault::Malformed(format!(
                    "{} bytes of trailing data after the end-of-archive marker",
                    bytes.len() - end
                )));
            }
            return Ok(entries);
        }
        let n = entries.len() + 1;
        let name_len = block[..MAX_NAME_LEN]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_NAME_LEN);
        let name = std::str::from_utf8(&block[..name_len])
            .map_err(|_| {
                Fault::Malformed(format!(
                    "member {n} (header at byte {at}) has a name that is not UTF-8"
                ))
            })?
            .to_string();
        let size = parse_size(&block[124..136]).ok_or_else(|| {
            Fault::Malformed(format!(
                "member {n} ({name:?}, header at byte {at}) has an unreadable size field"
            ))
        })?;
        if size > MAX_SIZE {
            return Err(Fault::Malformed(format!(
                "member {n} ({name:?}) is too large"
            )));
        }
        let canonical = header(name.as_bytes(), size);
        if let Some(i) = canonical.iter().zip(block).position(|(a, b)| a != b) {
            return Err(Fault::Malformed(format!(
                "the header of member {n} ({name:?}) differs from the form hallmark writes at byte {}",
                at + i
            )));
        }
        let start = at + BLOCK;
        let size = usize::try_from(size).map_err(|_| {
            Fault::Malformed(format!(
                "member {n} ({name:?}) is too large for this machine"
            ))
        })?;
        let Some(content) = start
            .checked_add(size)
            .and_then(|end| bytes.get(start..end))
        else {
            return Err(Fault::Truncated(format!(
                "member {n} ({name:?}) should hold {size} bytes from byte {start}, the file has {}",
                bytes.len()
            )));
        };
        let pad_end = start + size + padding(size);
        let Some(pad) = bytes.get(start + size..pad_end) else {
            return Err(Fault::Truncated(format!(
                "the padding of member {n} ({name:?}) is cut short"
            )));
        };
        if let Some(i) = pad.iter().position(|&b| b != 0) {
            return Err(Fault::Malformed(format!(
                "non-zero padding after member {n} ({name:?}) at byte {}",
                start + size + i
            )));
        }
        entries.push(BundleFile {
            name,
            bytes: content.to_vec(),
        });
        at = pad_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let entries = vec![
            BundleFile {
                name: "a.txt".into(),
                bytes: b"hello".to_vec(),
            },
            BundleFile {
                name: "dir/empty".into(),
                bytes: Vec::new(),
            },
            BundleFile {
                name: "b".into(),
                bytes: vec![7; 512],
            },
        ];
        let bytes = encode(&entries);
        assert_eq!(bytes.len(), 512 * 2 + 512 + 512 * 2 + 1024);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back.len(), 3);
        for (a, b) in entries.iter().zip(&back) {
            assert_eq!((&a.name, &a.bytes), (&b.name, &b.bytes));
        }
    }

    #[test]
    fn empty_and_trailing() {
        assert!(decode(&[0; 1024]).expect("empty archive").is_empty());
        assert!(matches!(decode(&[0; 1536]), Err(Fault::Malformed(_))));
        assert!(matches!(decode(&[0; 1000]), Err(Fault::Truncated(_))));
        assert!(matches!(decode(&[]), Err(Fault::Truncated(_))));
    }
}
