//! Byte-level helpers shared by the segment and checkpoint formats: LEB128 varints
//! (zigzag for signed), length-prefixed strings and label sets, a bounds-checked cursor,
//! and Snappy-packed bodies.

use thiserror::Error;

/// Why a stored byte string could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of input")]
    Truncated,
    /// A varint ran past 10 bytes.
    #[error("varint too long")]
    BadVarint,
    /// A string was not UTF-8.
    #[error("string is not utf-8")]
    BadUtf8,
    /// A value is out of its allowed range (named).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Appends `v` as an unsigned LEB128 varint.
pub(super) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` zigzag-encoded, so small negative numbers stay short.
pub(super) fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Appends a length-prefixed string.
pub(super) fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Appends a label set: its pair count, then each name and value.
pub(super) fn put_labels<'a>(
    buf: &mut Vec<u8>,
    count: usize,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) {
    put_uvarint(buf, count as u64);
    for (name, value) in pairs {
        put_str(buf, name);
        put_str(buf, value);
    }
}

/// Stored as is.
const RAW: u8 = 0;
/// Snappy, raw format (no framing: records have their own checksum).
const SNAPPY: u8 = 1;
/// Largest unpacked body accepted; a bigger claim means a corrupt or foreign record.
const MAX_UNPACKED: usize = 1 << 30;

/// Appends `body` as `[packing, length, bytes…]`, Snappy-compressed when that is smaller.
pub(super) fn put_packed(buf: &mut Vec<u8>, body: &[u8]) {
    let compressed = snap::raw::Encoder::new().compress_vec(body).ok();
    let (packing, stored) = match &compressed {
        Some(c) if c.len() < body.len() => (SNAPPY, c.as_slice()),
        _ => (RAW, body),
    };
    buf.push(packing);
    put_uvarint(buf, body.len() as u64);
    buf.extend_from_slice(stored);
}

/// A body written by [`put_packed`], still packed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Packed<'a> {
    packing: u8,
    len: usize,
    stored: &'a [u8],
}

impl Packed<'_> {
    /// The body's bytes.
    pub(super) fn unpack(&self) -> Result<Vec<u8>, DecodeError> {
        let bytes = match self.packing {
            RAW => self.stored.to_vec(),
            _ => {
                let claimed = snap::raw::decompress_len(self.stored)
                    .map_err(|_| DecodeError::Invalid("packed body"))?;
                if claimed != self.len {
                    return Err(DecodeError::Invalid("packed body"));
                }
                snap::raw::Decoder::new()
                    .decompress_vec(self.stored)
                    .map_err(|_| DecodeError::Invalid("packed body"))?
            }
        };
        if bytes.len() != self.len {
            return Err(DecodeError::Invalid("packed body"));
        }
        Ok(bytes)
    }
}

/// Reads values front to back from a byte slice, failing instead of panicking.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts at the beginning of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads one byte.
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads `n` raw bytes.
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Reads the rest of the input.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Reads the rest of the input as a body written by [`put_packed`].
    pub(super) fn packed(&mut self) -> Result<Packed<'a>, DecodeError> {
        let packing = self.u8()?;
        let len = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::Truncated)?;
        if packing > SNAPPY || len > MAX_UNPACKED {
            return Err(DecodeError::Invalid("packed body"));
        }
        Ok(Packed {
            packing,
            len,
            stored: self.rest(),
        })
    }

    /// Reads an unsigned LEB128 varint.
    pub(super) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut out = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// Reads an unsigned varint that must fit in a `u32`.
    pub(super) fn uvarint32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.uvarint()?).map_err(|_| DecodeError::Invalid(what))
    }

    /// Reads a zigzag varint.
    pub(super) fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads a length-prefixed UTF-8 string.
    pub(super) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::Truncated)?;
        std::str::from_utf8(self.bytes(len)?).map_err(|_| DecodeError::BadUtf8)
    }

    /// Skips a label set written by [`put_labels`] without checking its strings.
    pub(super) fn skip_labels(&mut self) -> Result<(), DecodeError> {
        let n = self.uvarint()?;
        if n > self.remaining() as u64 / 2 {
            return Err(DecodeError::Truncated);
        }
        for _ in 0..2 * n {
            let len = usize::try_from(self.uvarint()?).map_err(|_| DecodeError::Truncated)?;
            self.bytes(len)?;
        }
        Ok(())
    }

    /// Reads a label set written by [`put_labels`], as borrowed pairs.
    pub(super) fn labels(&mut self) -> Result<Vec<(&'a str, &'a str)>, DecodeError> {
        let n = self.uvarint()?;
        // Each pair takes at least two bytes, which bounds a hostile count.
        if n > self.remaining() as u64 / 2 {
            return Err(DecodeError::Truncated);
        }
        (0..n).map(|_| Ok((self.str()?, self.str()?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let unsigned = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, -1, 1, -64, 64, i64::MIN, i64::MAX];
        let mut buf = Vec::new();
        unsigned.iter().for_each(|&v| put_uvarint(&mut buf, v));
        signed.iter().for_each(|&v| put_varint(&mut buf, v));
        let mut cur = Cursor::new(&buf);
        for v in unsigned {
            assert_eq!(cur.uvarint().unwrap(), v);
        }
        for v in signed {
            assert_eq!(cur.varint().unwrap(), v);
        }
        assert_eq!(cur.remaining(), 0);
    }

    #[test]
    fn small_signed_values_take_one_byte() {
        let mut buf = Vec::new();
        put_varint(&mut buf, -3);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        put_labels(&mut buf, 1, [("job", "api")].into_iter());
        for cut in 0..buf.len() {
            assert!(Cursor::new(&buf[..cut]).labels().is_err(), "cut at {cut}");
        }
        assert_eq!(Cursor::new(&buf).labels().unwrap(), vec![("job", "api")]);
        assert_eq!(
            Cursor::new(&[0xff; 11]).uvarint(),
            Err(DecodeError::BadVarint)
        );
    }

    #[test]
    fn packed_bodies_round_trip_compressed_or_not() {
        let repetitive = b"job=api ".repeat(100);
        let random: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for body in [&repetitive[..], &random[..], &[][..]] {
            let mut buf = Vec::new();
            put_packed(&mut buf, body);
            assert!(buf.len() <= body.len() + 3);
            assert_eq!(Cursor::new(&buf).packed().unwrap().unpack().unwrap(), body);
        }
        let mut buf = Vec::new();
        put_packed(&mut buf, &repetitive);
        assert!(buf.len() < repetitive.len() / 4);
        assert!(
            Cursor::new(&buf[..buf.len() - 3])
                .packed()
                .unwrap()
                .unpack()
                .is_err()
        );
        buf[0] = 7;
        assert!(Cursor::new(&buf).packed().is_err());
    }
}
