//! Bit-level pieces of the chunk encodings: a bit writer and reader (most significant bit
//! first), the timestamp delta-of-delta code and the XOR-of-values code (Gorilla, Pelkonen
//! et al., VLDB 2015). `chunk` interleaves them in one stream; `column` keeps them apart.

/// Appends bits, most significant first, to a byte vector.
#[derive(Debug, Clone, Default)]
pub(super) struct BitWriter {
    pub(super) bytes: Vec<u8>,
    /// Unused low bits of the last byte.
    free: u8,
}

impl BitWriter {
    /// An empty writer whose buffer has room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> BitWriter {
        BitWriter {
            bytes: Vec::with_capacity(capacity),
            free: 0,
        }
    }

    #[inline]
    pub(super) fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `n` bits of `value` (`n` ≤ 64).
    #[inline]
    pub(super) fn write_bits(&mut self, value: u64, mut n: u8) {
        // Most writes fit in the last byte.
        if n <= self.free
            && let Some(last) = self.bytes.last_mut()
        {
            self.free -= n;
            *last |= ((value & ((1u64 << n) - 1)) << self.free) as u8;
            return;
        }
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let part = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= part << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
    }
}

/// Reads bits, most significant first, from a byte slice.
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// Reads `bytes` from the first bit.
    pub(super) fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, pos: 0 }
    }

    #[inline]
    pub(super) fn read_bit(&mut self) -> Option<bool> {
        self.read_bits(1).map(|b| b == 1)
    }

    /// Reads `n` bits (`n` ≤ 64) into the low bits of the result.
    #[inline]
    pub(super) fn read_bits(&mut self, mut n: u8) -> Option<u64> {
        let mut out = 0u64;
        while n > 0 {
            let byte = *self.bytes.get(self.pos / 8)?;
            let avail = 8 - (self.pos % 8) as u8;
            let take = n.min(avail);
            let part = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            out = (out << take) | u64::from(part);
            self.pos += usize::from(take);
            n -= take;
        }
        Some(out)
    }
}

/// The first bucket's payload bits in head chunks: scrape jitter up to ±64 ms in 9 bits
/// (Prometheus starts at 14). Stored chunks pick theirs (see `column`).
pub(super) const HEAD_FIRST_BUCKET: u8 = 7;
/// Payload bits of the buckets after the first: `110`, `1110`, then `1111` + 64 bits.
const LATER_BUCKETS: [u8; 2] = [14, 20];
/// The largest first bucket a stored chunk may name.
pub(super) const MAX_FIRST_BUCKET: u8 = 13;

/// The payload bits of bucket `ones` (the count of leading one bits of its prefix).
#[inline]
fn bucket_bits(ones: usize, first: u8) -> u8 {
    match ones {
        1 => first,
        2 | 3 => LATER_BUCKETS[ones - 2],
        _ => 64,
    }
}

/// Bits that [`write_dod`] takes for `dod`.
#[inline]
pub(super) fn dod_len(dod: i64, first: u8) -> u32 {
    if dod == 0 {
        return 1;
    }
    for ones in 1..=3 {
        let bits = bucket_bits(ones, first);
        let limit = 1i64 << (bits - 1);
        if (-limit..limit).contains(&dod) {
            return ones as u32 + 1 + u32::from(bits);
        }
    }
    68
}

/// Writes a change of timestamp delta: `0` for none, else `10` + `first` bits, `110` + 14,
/// `1110` + 20 or `1111` + 64 bits of two's complement. `first` is 1 to
/// [`MAX_FIRST_BUCKET`].
#[inline]
pub(super) fn write_dod(w: &mut BitWriter, dod: i64, first: u8) {
    if dod == 0 {
        w.write_bit(false);
        return;
    }
    for (ones, prefix) in [(1, 0b10), (2, 0b110), (3, 0b1110)] {
        let bits = bucket_bits(ones, first);
        let limit = 1i64 << (bits - 1);
        if (-limit..limit).contains(&dod) {
            w.write_bits(prefix, ones as u8 + 1);
            w.write_bits(dod as u64, bits);
            return;
        }
    }
    w.write_bits(0b1111, 4);
    w.write_bits(dod as u64, 64);
}

/// Reads what [`write_dod`] wrote with the same `first`.
#[inline]
pub(super) fn read_dod(r: &mut BitReader<'_>, first: u8) -> Option<i64> {
    let mut ones = 0;
    while ones < 4 && r.read_bit()? {
        ones += 1;
    }
    if ones == 0 {
        return Some(0);
    }
    let bits = bucket_bits(ones, first);
    let raw = r.read_bits(bits)?;
    let shift = 64 - u32::from(bits);
    Some(((raw << shift) as i64) >> shift)
}

/// The XOR-of-values state shared by encoder and decoder.
#[derive(Debug, Clone, Copy)]
pub(super) struct XorState {
    pub(super) prev: u64,
    /// Leading and trailing zeros of the current window; `leading == u8::MAX` means none.
    leading: u8,
    trailing: u8,
}

impl XorState {
    pub(super) const fn new() -> XorState {
        XorState {
            prev: 0,
            leading: u8::MAX,
            trailing: 0,
        }
    }

    pub(super) fn write(&mut self, w: &mut BitWriter, bits: u64) {
        let x = bits ^ self.prev;
        self.prev = bits;
        if x == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        let significant = 64 - leading - trailing;
        // Reuse the window when it fits, unless it is so wide that a new one is cheaper.
        let fits = self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing;
        if fits && 64 - self.leading - self.trailing <= 11 + significant {
            w.write_bit(false);
            w.write_bits(x >> self.trailing, 64 - self.leading - self.trailing);
            return;
        }
        w.write_bit(true);
        w.write_bits(u64::from(leading), 5);
        w.write_bits(u64::from(significant & 63), 6);
        w.write_bits(x >> trailing, significant);
        self.leading = leading;
        self.trailing = trailing;
    }

    pub(super) fn read(&mut self, r: &mut BitReader<'_>) -> Option<u64> {
        if !r.read_bit()? {
            return Some(self.prev);
        }
        if r.read_bit()? {
            let leading = r.read_bits(5)? as u8;
            let significant = match r.read_bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            // A corrupt window could claim more than 64 bits.
            self.trailing = 64u8.checked_sub(leading + significant)?;
            self.leading = leading;
        } else if self.leading == u8::MAX {
            return None;
        }
        let x = r.read_bits(64 - self.leading - self.trailing)? << self.trailing;
        self.prev ^= x;
        Some(self.prev)
    }
}
