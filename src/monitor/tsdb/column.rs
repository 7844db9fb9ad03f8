//! The stored form of a chunk: its timestamps and its values in separate columns, so that
//! the series of one scrape, which share their timestamps, can share one timestamp column
//! (see `group`), and the values in whichever code is smallest for them.
//!
//! Timestamps after the first (kept by the holder as `mint`) use the delta-of-delta code of
//! `bits`, with the first bucket as wide as suits the chunk's jitter (its width is the
//! column's first byte). Values use one of:
//! - [`XOR`]: the Gorilla XOR code of `bits`, for any values;
//! - [`CONST`]: the 8 bytes of the one value all samples have (bit for bit);
//! - [`DELTA`] and [`DELTA2`]: when every value is an integer `m` divided by `10^e`
//!   (`e` ≤ 12, `|m|` < 2^53) and turns back into exactly the same bits, `e`, a bit width,
//!   the first `m` (and for `DELTA2` the first difference) as zigzag varints, then every
//!   later difference (`DELTA`) or change of difference (`DELTA2`) zigzagged in that many
//!   bits. Counters, byte and page counts, and values printed with a few decimals (CPU
//!   seconds, ratios) take a few bits a sample this way instead of a dozen or more.

use super::bits::{BitReader, BitWriter, MAX_FIRST_BUCKET, XorState, dod_len, read_dod, write_dod};
use super::codec::{Cursor, put_uvarint};

/// Gorilla XOR values.
pub(super) const XOR: u8 = 0;
/// One value for every sample.
pub(super) const CONST: u8 = 1;
/// Decimal integers, bit-packed differences.
pub(super) const DELTA: u8 = 2;
/// Decimal integers, bit-packed changes of difference.
pub(super) const DELTA2: u8 = 3;

/// Powers of ten that `f64` holds exactly, for the decimal codes.
const POW10: [f64; 13] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
/// Integers from here on are not all representable in an `f64`.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Encodes the timestamps after the first: the first bucket's width that makes them
/// smallest, then their changes of delta.
pub(super) fn encode_times(times: impl IntoIterator<Item = i64>) -> Vec<u8> {
    let mut dods = Vec::new();
    let mut times = times.into_iter();
    if let Some(mut prev) = times.next() {
        let mut delta = 0i64;
        for t in times {
            let d = t.wrapping_sub(prev);
            dods.push(d.wrapping_sub(delta));
            (prev, delta) = (t, d);
        }
    }
    let size = |first: u8| dods.iter().map(|&d| dod_len(d, first)).sum::<u32>();
    let first = (1..=MAX_FIRST_BUCKET).min_by_key(|&f| size(f)).unwrap_or(1);
    let mut out = BitWriter::with_capacity(dods.len() / 2 + 2);
    out.bytes.push(first);
    for dod in dods {
        write_dod(&mut out, dod, first);
    }
    out.bytes
}

/// Decodes `count` timestamps starting at `mint`; `None` when the bytes end too soon.
pub(super) fn decode_times(bytes: &[u8], mint: i64, count: usize) -> Option<Vec<i64>> {
    let (&first, bits) = bytes.split_first()?;
    if !(1..=MAX_FIRST_BUCKET).contains(&first) {
        return None;
    }
    let mut r = BitReader::new(bits);
    let mut out = Vec::with_capacity(count);
    let (mut t, mut delta) = (mint, 0i64);
    for i in 0..count {
        if i > 0 {
            delta = delta.wrapping_add(read_dod(&mut r, first)?);
            t = t.wrapping_add(delta);
        }
        out.push(t);
    }
    Some(out)
}

/// Encodes values in the smallest code; returns the code and the bytes.
pub(super) fn encode_values(values: &[f64]) -> (u8, Vec<u8>) {
    let first = values.first().map_or(0, |v| v.to_bits());
    if values.iter().all(|v| v.to_bits() == first) {
        return (CONST, first.to_le_bytes().to_vec());
    }
    let mut best: Option<(u8, Vec<u8>)> = None;
    if let Some((exp, ints)) = decimal(values) {
        for code in [DELTA, DELTA2] {
            let bytes = encode_ints(exp, &ints, code == DELTA2);
            if best.as_ref().is_none_or(|b| bytes.len() < b.1.len()) {
                best = Some((code, bytes));
            }
        }
    }
    match best {
        // XOR takes at least a bit a value.
        Some(b) if b.1.len() * 8 <= values.len() => b,
        Some(b) => {
            let xor = encode_xor(values);
            if xor.len() < b.1.len() { (XOR, xor) } else { b }
        }
        None => (XOR, encode_xor(values)),
    }
}

/// Decodes `count` values written in `code`, appending them to `out`.
pub(super) fn decode_values(
    code: u8,
    bytes: &[u8],
    count: usize,
    out: &mut Vec<f64>,
) -> Option<()> {
    match code {
        XOR => {
            let mut r = BitReader::new(bytes);
            let mut state = XorState::new();
            for _ in 0..count {
                out.push(f64::from_bits(state.read(&mut r)?));
            }
        }
        CONST => {
            let v = f64::from_bits(u64::from_le_bytes(bytes.try_into().ok()?));
            out.extend(std::iter::repeat_n(v, count));
        }
        DELTA | DELTA2 => decode_ints(bytes, count, code == DELTA2, out)?,
        _ => return None,
    }
    Some(())
}

fn encode_xor(values: &[f64]) -> Vec<u8> {
    let mut out = BitWriter::with_capacity(values.len() * 2);
    let mut state = XorState::new();
    for v in values {
        state.write(&mut out, v.to_bits());
    }
    out.bytes
}

/// The values as integers `m` with `m / 10^e` giving back each value's bits, smallest `e`.
///
/// A value that is exact at one `e` is exact at every larger one (`10m / 10^(e+1)` is the
/// same number) until `m` outgrows the limit, so one pass finds the smallest `e` that
/// serves all values.
fn decimal(values: &[f64]) -> Option<(u8, Vec<i64>)> {
    let mut exp = 0;
    for &v in values {
        while scaled(v, POW10[exp]).is_none() {
            exp += 1;
            if exp == POW10.len() {
                return None;
            }
        }
    }
    let ints = values.iter().map(|&v| scaled(v, POW10[exp]));
    let ints: Option<Vec<i64>> = ints.collect();
    Some((exp as u8, ints?))
}

/// `v · scale` as an integer, if dividing that by `scale` gives back `v` bit for bit.
fn scaled(v: f64, scale: f64) -> Option<i64> {
    let m = (v * scale).round();
    // Also refuses NaN and the infinities.
    if m.is_nan() || m.abs() >= EXACT_LIMIT {
        return None;
    }
    let m = m as i64;
    // The integer, not the float, so that -0.0 is refused.
    (((m as f64) / scale).to_bits() == v.to_bits()).then_some(m)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// The differences (`second` false) or changes of difference packed after a short header.
fn encode_ints(exp: u8, ints: &[i64], second: bool) -> Vec<u8> {
    let mut rest = Vec::with_capacity(ints.len());
    let mut prev_delta = 0i64;
    for (i, pair) in ints.windows(2).enumerate() {
        let delta = pair[1].wrapping_sub(pair[0]);
        match (second, i) {
            (true, 0) => {}
            (true, _) => rest.push(zigzag(delta.wrapping_sub(prev_delta))),
            (false, _) => rest.push(zigzag(delta)),
        }
        prev_delta = delta;
    }
    let width = rest
        .iter()
        .map(|u| 64 - u.leading_zeros())
        .max()
        .unwrap_or(0) as u8;
    let mut head = vec![exp, width];
    put_uvarint(&mut head, zigzag(ints[0]));
    if second && ints.len() > 1 {
        put_uvarint(&mut head, zigzag(ints[1].wrapping_sub(ints[0])));
    }
    let mut bits = BitWriter::with_capacity(rest.len() * usize::from(width) / 8 + 1);
    for u in rest {
        bits.write_bits(u, width);
    }
    head.extend_from_slice(&bits.bytes);
    head
}

fn decode_ints(bytes: &[u8], count: usize, second: bool, out: &mut Vec<f64>) -> Option<()> {
    let mut cur = Cursor::new(bytes);
    let exp = usize::from(cur.u8().ok()?);
    let width = cur.u8().ok()?;
    let scale = *POW10.get(exp)?;
    if count == 0 || width > 64 {
        return (count == 0).then_some(());
    }
    let mut m = unzigzag(cur.uvarint().ok()?);
    out.push(m as f64 / scale);
    let mut delta = 0i64;
    let mut packed_from = 1;
    if second && count > 1 {
        delta = unzigzag(cur.uvarint().ok()?);
        m = m.wrapping_add(delta);
        out.push(m as f64 / scale);
        packed_from = 2;
    }
    let mut r = BitReader::new(cur.rest());
    for _ in packed_from..count {
        let u = unzigzag(r.read_bits(width)?);
        delta = if second { delta.wrapping_add(u) } else { u };
        m = m.wrapping_add(delta);
        out.push(m as f64 / scale);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::series::stale_nan;
    use proptest::prelude::*;

    fn round_trip(values: &[f64]) -> (u8, usize) {
        let (code, bytes) = encode_values(values);
        let mut out = Vec::new();
        decode_values(code, &bytes, values.len(), &mut out).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out), bits(values), "code {code}");
        (code, bytes.len())
    }

    #[test]
    fn each_kind_of_series_gets_its_smallest_code() {
        let constant = vec![42.5; 120];
        assert_eq!(round_trip(&constant), (CONST, 8));
        let counter: Vec<f64> = (0..120).map(|i| 1e6 + (i * 37 % 101) as f64).collect();
        let (code, len) = round_trip(&counter);
        assert_eq!(code, DELTA);
        assert!(len < 120, "{len} bytes for 7-bit deltas");
        let steady: Vec<f64> = (0..120).map(|i| 5e9 + i as f64 * 4096.0).collect();
        assert_eq!(round_trip(&steady).0, DELTA2);
        assert!(round_trip(&steady).1 < 12);
        // CPU seconds from clock ticks: hundredths.
        let cpu: Vec<f64> = (0..120).map(|i| (8_000 + i * 3) as f64 / 100.0).collect();
        assert!(matches!(round_trip(&cpu), (DELTA2, n) if n < 12));
        let noise: Vec<f64> = (0..120).map(|i| (i as f64 * 0.7).sin() / 3.0).collect();
        assert_eq!(round_trip(&noise).0, XOR);
        // Integers, but far apart: XOR keeps only the few exponent bits that change.
        let jumps: Vec<f64> = (0..120u64).map(|i| ((i % 2) << 52) as f64).collect();
        assert_eq!(round_trip(&jumps).0, XOR);
    }

    #[test]
    fn values_that_are_not_exact_decimals_keep_their_bits() {
        let cases = [
            vec![0.0, -0.0, 1.0],
            vec![1.0, stale_nan(), 2.0],
            vec![f64::INFINITY, 1.0],
            vec![0.1 + 0.2, 0.3],
            vec![9_007_199_254_740_993.0, 1.0],
            vec![-5.0, 3.25, -1e-12],
            vec![f64::MIN_POSITIVE, 0.0],
        ];
        for values in cases {
            round_trip(&values);
        }
    }

    #[test]
    fn times_take_the_bucket_that_fits_their_jitter() {
        let mut jitter = 7u64;
        let times: Vec<i64> = (0..120)
            .map(|i| {
                jitter = jitter
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                1_700_000_000_000 + i * 1000 + (jitter >> 61) as i64
            })
            .collect();
        let bytes = encode_times(times.iter().copied());
        assert_eq!(decode_times(&bytes, times[0], 120), Some(times));
        // Jitter of 0..8 ms changes the delta by at most ±14: `10` + 4 or 5 bits mostly.
        assert!((4..=5).contains(&bytes[0]), "first bucket {}", bytes[0]);
        assert!(bytes.len() <= 120 * 7 / 8 + 2, "{} bytes", bytes.len());
        let regular: Vec<i64> = (0..120).map(|i| i * 10_000).collect();
        // The first delta (24 bits), then a bit a sample.
        assert_eq!(encode_times(regular).len(), 1 + (24 + 118usize).div_ceil(8));
        assert_eq!(decode_times(&[0, 0], 0, 2), None);
    }

    #[test]
    fn times_round_trip_and_short_bytes_are_refused() {
        let times: Vec<i64> = (0..120)
            .map(|i| 1_700_000_000_000 + i * 1000 + i % 3)
            .collect();
        let bytes = encode_times(times.iter().copied());
        assert_eq!(decode_times(&bytes, times[0], 120), Some(times.clone()));
        assert_eq!(decode_times(&bytes[..bytes.len() / 2], times[0], 120), None);
        let (code, values) = encode_values(&[1.5, 2.5, 3.25]);
        assert_eq!(decode_values(code, &values[..1], 3, &mut Vec::new()), None);
        assert_eq!(decode_values(9, &values, 3, &mut Vec::new()), None);
    }

    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(stale_nan()),
            Just(-0.0),
            (-1_000_000i64..1_000_000).prop_map(|m| m as f64 / 100.0),
            (0u64..1 << 53).prop_map(|m| m as f64),
            (0u32..100).prop_map(f64::from),
        ]
    }

    proptest! {
        #[test]
        fn any_values_round_trip(values in proptest::collection::vec(any_value(), 1..200)) {
            round_trip(&values);
        }

        #[test]
        fn any_counter_round_trips(
            start in 0u64..1 << 50,
            steps in proptest::collection::vec(0u64..1 << 20, 1..200),
            exp in 0i32..7,
        ) {
            let scale = 10f64.powi(exp);
            let mut m = start;
            let values: Vec<f64> = steps.iter().map(|s| { m += s; m as f64 / scale }).collect();
            round_trip(&values);
        }
    }
}
