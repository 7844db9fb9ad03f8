//! The compressed chunk: up to a few hundred samples of one series, encoded Gorilla-style
//! (Pelkonen et al., VLDB 2015; also Prometheus's XOR chunk) into a bit stream.
//!
//! Layout, after the first timestamp which the chunk's holder keeps as `mint`:
//! - every value is XORed with the previous one (the first with `0.0`): `0` when equal,
//!   `10` + the meaningful bits when they fit the previous leading/trailing-zero window,
//!   `11` + 5 bits of leading zeros + 6 bits of length (64 as 0) + the meaningful bits
//!   (the encoder also opens a new window when the old one is wider than that costs);
//! - every later timestamp is stored as the change of its delta (the second one's delta
//!   against 0): `0` for no change, then `10`/`110`/`1110` + a 7/14/20-bit two's
//!   complement number, else `1111` + 64 bits.
//!
//! So a series scraped at a steady interval with a constant value costs two bits a sample.
//! Values round-trip bit for bit, NaN payloads (the staleness marker) included. Timestamp
//! arithmetic wraps, so any `i64` sequence round-trips.

use thiserror::Error;

use super::bits::{BitReader, BitWriter, HEAD_FIRST_BUCKET, XorState, read_dod, write_dod};

/// A chunk's bytes could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("chunk ends before its {0} samples")]
pub struct ChunkError(pub u16);

/// A chunk that takes no more samples, as kept until flushed and as stored.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SealedChunk {
    pub(super) bytes: Box<[u8]>,
    pub(super) mint: i64,
    pub(super) maxt: i64,
    pub(super) count: u16,
}

impl SealedChunk {
    /// Decodes the samples.
    pub(super) fn samples(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bytes, self.mint, self.count)
    }
}

/// The open chunk of a series: appends samples and knows its size.
#[derive(Debug, Clone)]
pub(super) struct ChunkEncoder {
    out: BitWriter,
    mint: i64,
    t: i64,
    delta: i64,
    xor: XorState,
    count: u16,
}

impl ChunkEncoder {
    /// Starts a chunk with its first sample.
    pub(super) fn new(t: i64, v: f64) -> ChunkEncoder {
        let mut enc = ChunkEncoder {
            out: BitWriter::with_capacity(16),
            mint: t,
            t,
            delta: 0,
            xor: XorState::new(),
            count: 1,
        };
        enc.xor.write(&mut enc.out, v.to_bits());
        enc
    }

    /// Rebuilds the encoder of a chunk from its samples (as saved in a checkpoint); `None`
    /// for no samples, for timestamps that do not increase, or for too many samples.
    pub(super) fn restore(samples: &[(i64, f64)]) -> Option<ChunkEncoder> {
        let (&(t0, v0), rest) = samples.split_first()?;
        if rest.len() >= usize::from(u16::MAX) {
            return None;
        }
        let mut enc = ChunkEncoder::new(t0, v0);
        for &(t, v) in rest {
            if t <= enc.maxt() {
                return None;
            }
            enc.append(t, v);
        }
        Some(enc)
    }

    /// Appends a sample; the caller keeps timestamps increasing and the count below `u16::MAX`.
    pub(super) fn append(&mut self, t: i64, v: f64) {
        let delta = t.wrapping_sub(self.t);
        write_dod(
            &mut self.out,
            delta.wrapping_sub(self.delta),
            HEAD_FIRST_BUCKET,
        );
        self.xor.write(&mut self.out, v.to_bits());
        self.t = t;
        self.delta = delta;
        self.count += 1;
    }

    /// Number of samples.
    pub(super) fn count(&self) -> u16 {
        self.count
    }

    /// First timestamp.
    pub(super) fn mint(&self) -> i64 {
        self.mint
    }

    /// Last timestamp.
    pub(super) fn maxt(&self) -> i64 {
        self.t
    }

    /// Last value.
    pub(super) fn last_value(&self) -> f64 {
        f64::from_bits(self.xor.prev)
    }

    /// The encoded bytes so far.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.out.bytes
    }

    /// Freezes the chunk, giving back spare capacity.
    pub(super) fn seal(self) -> SealedChunk {
        SealedChunk {
            bytes: self.out.bytes.into_boxed_slice(),
            mint: self.mint,
            maxt: self.t,
            count: self.count,
        }
    }

    /// Decodes the samples.
    #[cfg(test)]
    pub(super) fn samples(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.out.bytes, self.mint, self.count)
    }
}

/// Decodes a chunk's samples in order; yields an error (then stops) on corrupt bytes.
pub(super) struct ChunkIter<'a> {
    reader: BitReader<'a>,
    count: u16,
    index: u16,
    t: i64,
    delta: i64,
    xor: XorState,
}

impl<'a> ChunkIter<'a> {
    /// Decodes `count` samples from `bytes`, the first at time `mint`.
    pub(super) fn new(bytes: &'a [u8], mint: i64, count: u16) -> ChunkIter<'a> {
        ChunkIter {
            reader: BitReader::new(bytes),
            count,
            index: 0,
            t: mint,
            delta: 0,
            xor: XorState::new(),
        }
    }

    fn decode_next(&mut self) -> Option<(i64, f64)> {
        if self.index > 0 {
            self.delta = self
                .delta
                .wrapping_add(read_dod(&mut self.reader, HEAD_FIRST_BUCKET)?);
            self.t = self.t.wrapping_add(self.delta);
        }
        let bits = self.xor.read(&mut self.reader)?;
        Some((self.t, f64::from_bits(bits)))
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        match self.decode_next() {
            Some(sample) => {
                self.index += 1;
                Some(Ok(sample))
            }
            None => {
                self.index = self.count;
                Some(Err(ChunkError(self.count)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::series::{is_stale, stale_nan};
    use proptest::prelude::*;

    fn encode(samples: &[(i64, f64)]) -> ChunkEncoder {
        let mut enc = ChunkEncoder::new(samples[0].0, samples[0].1);
        for &(t, v) in &samples[1..] {
            enc.append(t, v);
        }
        enc
    }

    fn decode(enc: &ChunkEncoder) -> Vec<(i64, u64)> {
        enc.samples()
            .map(|s| s.map(|(t, v)| (t, v.to_bits())).unwrap())
            .collect()
    }

    /// Encodes a series in chunks of 120 samples and returns bytes per sample.
    fn bytes_per_sample(samples: &[(i64, f64)]) -> f64 {
        let bytes: usize = samples.chunks(120).map(|c| encode(c).bytes().len()).sum();
        bytes as f64 / samples.len() as f64
    }

    #[test]
    fn constant_series_at_regular_intervals_costs_two_bits_a_sample() {
        let samples: Vec<(i64, f64)> = (0..1000)
            .map(|i| (1_700_000_000_000 + i * 1000, 1.0))
            .collect();
        let bps = bytes_per_sample(&samples);
        println!("constant, 1 s interval: {bps:.3} bytes/sample");
        assert!(bps < 0.3, "{bps} bytes/sample");
    }

    /// A name, samples, and the bytes per sample they must stay under.
    type Case = (&'static str, Vec<(i64, f64)>, f64);

    /// A small xorshift generator, so figures are repeatable.
    fn rng(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |modulo| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % modulo
        }
    }

    #[test]
    fn counters_and_gauges_compress_to_the_expected_figures() {
        let mut rand = rng(0x2545_f491_4f6c_dd1d);
        let t0 = 1_700_000_000_000i64;
        let mut counter = 1e6;
        let mut cases: Vec<Case> = Vec::new();
        let counter_series = (0..1200).map(|i| {
            counter += rand(4) as f64;
            (t0 + i * 10_000, counter)
        });
        cases.push(("counter +0..3 every 10 s", counter_series.collect(), 1.4));
        let jittery_counter = (0..1200).map(|i| {
            counter += rand(20) as f64;
            (t0 + i * 10_000 + rand(41) as i64 - 20, counter)
        });
        cases.push((
            "counter +0..19, 10 s ±20 ms",
            jittery_counter.collect(),
            3.0,
        ));
        let int_gauge = (0..1200).map(|i| (t0 + i * 10_000, 50e6 + (rand(4096) * 4096) as f64));
        cases.push(("gauge, 4 KiB pages, 10 s", int_gauge.collect(), 2.3));
        let float_gauge = (0..1200).map(|i| {
            let t = t0 + i * 10_000 + rand(41) as i64 - 20;
            (t, 0.25 + rand(1000) as f64 / 1e4)
        });
        cases.push((
            "gauge, random 4 decimals, ±20 ms",
            float_gauge.collect(),
            8.2,
        ));
        for (name, samples, bound) in cases {
            let bps = bytes_per_sample(&samples);
            println!("{name}: {bps:.3} bytes/sample");
            assert!(bps < bound, "{name}: {bps} bytes/sample");
        }
    }

    #[test]
    fn staleness_marker_and_other_nans_round_trip_bit_exactly() {
        let quiet_nan = f64::from_bits(0x7ff8_0000_0000_0001);
        let samples = [
            (0, 1.0),
            (1, stale_nan()),
            (2, f64::NAN),
            (3, quiet_nan),
            (4, stale_nan()),
        ];
        let enc = encode(&samples);
        let got = decode(&enc);
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want);
        assert!(is_stale(f64::from_bits(got[1].1)));
        assert!(!is_stale(f64::from_bits(got[2].1)));
    }

    #[test]
    fn restore_rebuilds_an_encoder_that_continues_identically() {
        let samples: Vec<(i64, f64)> = (0..50)
            .map(|i| (i * 15_000 + i % 3, (i * i) as f64))
            .collect();
        let whole = encode(&samples);
        let mut restored = ChunkEncoder::restore(&samples[..25]).unwrap();
        for &(t, v) in &samples[25..] {
            restored.append(t, v);
        }
        assert_eq!(restored.bytes(), whole.bytes());
        assert_eq!(
            (restored.mint(), restored.maxt(), restored.count()),
            (0, 49 * 15_000 + 1, 50)
        );
    }

    #[test]
    fn truncated_bytes_are_reported_not_misread() {
        let samples: Vec<(i64, f64)> = (0..20).map(|i| (i * 1000, i as f64 * 0.1)).collect();
        let enc = encode(&samples);
        let cut = &enc.bytes()[..enc.bytes().len() / 2];
        let results: Vec<_> = ChunkIter::new(cut, 0, 20).collect();
        assert!(matches!(results.last(), Some(Err(ChunkError(20)))));
    }

    #[test]
    fn restore_refuses_what_an_encoder_could_not_hold() {
        assert!(ChunkEncoder::restore(&[]).is_none());
        assert!(ChunkEncoder::restore(&[(5, 1.0), (5, 2.0)]).is_none());
        assert!(ChunkEncoder::restore(&[(5, 1.0), (4, 2.0)]).is_none());
        assert!(ChunkEncoder::restore(&[(4, 1.0), (5, 2.0)]).is_some());
    }

    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(stale_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            (0u32..100).prop_map(f64::from),
        ]
    }

    fn any_delta() -> impl Strategy<Value = i64> {
        prop_oneof![
            1i64..100,
            14_990i64..15_010,
            1i64..1 << 22,
            1i64..i64::MAX / 512,
        ]
    }

    proptest! {
        #[test]
        fn any_increasing_samples_round_trip(
            start in any::<i64>(),
            steps in proptest::collection::vec((any_delta(), any_value()), 1..300),
        ) {
            let mut t = start;
            let samples: Vec<(i64, f64)> = steps
                .iter()
                .map(|&(delta, v)| {
                    t = t.wrapping_add(delta);
                    (t, v)
                })
                .collect();
            let enc = encode(&samples);
            let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(decode(&enc), want);
            let sealed = enc.seal();
            prop_assert_eq!(sealed.samples().count(), samples.len());
        }
    }
}
