//! The remote write 1.0 wire format: the spec's protobuf messages (declared by hand with
//! prost's derive, so no protoc and no build script), how a batch of samples becomes one
//! `WriteRequest`, and the snappy block compression of the request body.
//!
//! Field numbers follow the spec and `prometheus/prompb/types.proto`.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;

use crate::monitor::series::{Labels, METRIC_NAME};

/// The body of one remote write request (fields 2 and 3 are reserved by the spec).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series in this request, each with its full label set.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series: its labels sorted by name, and its samples in time order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The label pairs, `__name__` included, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// One label pair.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value (never empty on the wire).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One sample: a float value at a time in milliseconds since the Unix epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value; a staleness marker keeps its exact NaN bits (protobuf doubles are fixed64).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why a request body could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is not snappy block-compressed data.
    #[error("failed to decompress snappy body")]
    Snappy(#[from] snap::Error),
    /// The decompressed bytes are not a `WriteRequest`.
    #[error("failed to decode protobuf write request")]
    Protobuf(#[from] prost::DecodeError),
}

/// A batch turned into one request, with the count of samples that could not go in it.
#[derive(Debug)]
pub(super) struct BuiltRequest {
    pub(super) request: WriteRequest,
    /// Samples whose series has an invalid metric or label name (left out of the request).
    pub(super) invalid: usize,
}

/// Groups samples by series (first appearance order) and sorts each series' samples by
/// time, leaving out series the spec forbids sending.
pub(super) fn build_request(samples: Vec<(Labels, i64, f64)>) -> BuiltRequest {
    // `None` remembers a series already found invalid, so it is checked only once.
    let mut index: HashMap<Labels, Option<usize>> = HashMap::new();
    let mut timeseries: Vec<TimeSeries> = Vec::new();
    let mut invalid = 0;
    for (labels, timestamp, value) in samples {
        let sample = Sample { value, timestamp };
        if let Some(slot) = index.get(&labels) {
            match slot {
                Some(i) => timeseries[*i].samples.push(sample),
                None => invalid += 1,
            }
            continue;
        }
        if !is_valid_series(&labels) {
            invalid += 1;
            index.insert(labels, None);
            continue;
        }
        let wire_labels = labels
            .iter()
            .map(|(name, value)| Label {
                name: name.to_owned(),
                value: value.to_owned(),
            })
            .collect();
        index.insert(labels, Some(timeseries.len()));
        timeseries.push(TimeSeries {
            labels: wire_labels,
            samples: vec![sample],
        });
    }
    for series in &mut timeseries {
        // Stable: samples pushed with equal timestamps keep their order.
        series.samples.sort_by_key(|s| s.timestamp);
    }
    BuiltRequest {
        request: WriteRequest { timeseries },
        invalid,
    }
}

/// Serialises a request and compresses it with snappy's block format (never the framed one).
pub fn encode_body(request: &WriteRequest) -> Result<Bytes, snap::Error> {
    let raw = request.encode_to_vec();
    let compressed = snap::raw::Encoder::new().compress_vec(&raw)?;
    Ok(Bytes::from(compressed))
}

/// Reads a request body back: snappy block decompression, then protobuf decoding.
pub fn decode_body(body: &[u8]) -> Result<WriteRequest, BodyError> {
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(WriteRequest::decode(raw.as_slice())?)
}

/// Tells whether the spec allows sending a series: label names match `[a-zA-Z_][a-zA-Z0-9_]*`,
/// the metric name matches `[a-zA-Z_:][a-zA-Z0-9_:]*`. `Labels` already guarantees sorted,
/// unique names and non-empty values.
fn is_valid_series(labels: &Labels) -> bool {
    !labels.is_empty()
        && labels.iter().all(|(name, value)| {
            is_valid_name(name, false) && (name != METRIC_NAME || is_valid_name(value, true))
        })
}

/// Checks a label name, or a metric name when `colons` is set.
fn is_valid_name(name: &str, colons: bool) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    let extra = |b: u8| b == b'_' || (colons && b == b':');
    (first.is_ascii_alphabetic() || extra(first))
        && bytes.all(|b| b.is_ascii_alphanumeric() || extra(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::series::{STALE_NAN_BITS, stale_nan};

    fn labels(name: &str, job: &str) -> Labels {
        Labels::from_pairs(&[("job", job), ("__name__", name), ("instance", "db:9187")])
    }

    #[test]
    fn sample_encodes_to_the_bytes_of_the_spec_schema() {
        // Field 1 double (tag 0x09, fixed64 little endian), field 2 int64 (tag 0x10, varint).
        let sample = Sample {
            value: 1.5,
            timestamp: 300,
        };
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xac, 0x02]);
        assert_eq!(sample.encode_to_vec(), expected);
    }

    #[test]
    fn label_and_series_use_spec_field_numbers() {
        let label = Label {
            name: "a".into(),
            value: "b".into(),
        };
        assert_eq!(label.encode_to_vec(), [0x0a, 1, b'a', 0x12, 1, b'b']);
        let series = TimeSeries {
            labels: vec![label],
            samples: vec![Sample {
                value: 0.0,
                timestamp: 1,
            }],
        };
        // labels = field 1 (0x0a), samples = field 2 (0x12), each length-delimited.
        assert_eq!(
            series.encode_to_vec(),
            [0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x12, 2, 0x10, 1]
        );
        let request = WriteRequest {
            timeseries: vec![series],
        };
        assert_eq!(request.encode_to_vec()[..2], [0x0a, 12]);
    }

    #[test]
    fn build_request_groups_by_series_sorts_labels_and_orders_samples_by_time() {
        let up = labels("up", "pg");
        let other = labels("up", "redis");
        let built = build_request(vec![
            (up.clone(), 2_000, 1.0),
            (other.clone(), 1_000, 0.0),
            (up.clone(), 1_000, 2.0),
        ]);
        assert_eq!(built.invalid, 0);
        let series = &built.request.timeseries;
        assert_eq!(series.len(), 2, "one TimeSeries per distinct label set");
        let names: Vec<&str> = series[0].labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "instance", "job"]);
        assert_eq!(series[0].labels[2].value, "pg");
        let times: Vec<i64> = series[0].samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(times, [1_000, 2_000]);
        assert_eq!(series[0].samples[0].value, 2.0);
        assert_eq!(series[1].labels[2].value, "redis");
    }

    #[test]
    fn build_request_leaves_out_series_with_invalid_names() {
        let cases = [
            (
                Labels::from_pairs(&[("__name__", "1up")]),
                "metric name starts with a digit",
            ),
            (
                Labels::from_pairs(&[("__name__", "a-b")]),
                "dash in metric name",
            ),
            (
                Labels::from_pairs(&[("__name__", "ok"), ("a:b", "x")]),
                "colon in label name",
            ),
            (
                Labels::from_pairs(&[("__name__", "ok"), ("", "x")]),
                "empty label name",
            ),
            (Labels::default(), "no labels at all"),
        ];
        for (bad, why) in cases {
            let built = build_request(vec![(bad.clone(), 1, 1.0), (bad, 2, 1.0)]);
            assert_eq!(built.invalid, 2, "{why}");
            assert!(built.request.timeseries.is_empty(), "{why}");
        }
        let good = Labels::from_pairs(&[("__name__", "ns:rate_5m"), ("_x9", "é")]);
        assert_eq!(build_request(vec![(good, 1, 1.0)]).invalid, 0);
    }

    #[test]
    fn body_round_trips_through_snappy_block_format_and_protobuf() {
        let built = build_request(vec![
            (labels("pg_up", "pg"), 1_700_000_000_000, 1.0),
            (labels("pg_up", "pg"), 1_700_000_015_000, stale_nan()),
            (
                labels("redis_up", "redis"),
                1_700_000_000_000,
                f64::INFINITY,
            ),
        ]);
        let body = encode_body(&built.request).unwrap();
        // Block format: starts with the varint of the uncompressed length, no stream header.
        let raw_len = built.request.encode_to_vec().len();
        assert_eq!(snap::raw::decompress_len(&body).unwrap(), raw_len);
        assert_ne!(
            body[0], 0xff,
            "framed snappy stream identifier must not be used"
        );

        let decoded = decode_body(&body).unwrap();
        let stale = decoded.timeseries[0].samples[1].value;
        assert_eq!(
            stale.to_bits(),
            STALE_NAN_BITS,
            "stale marker keeps its bits"
        );
        assert_eq!(decoded.timeseries[1].samples[0].value, f64::INFINITY);
        assert_eq!(
            decoded.timeseries[0].labels,
            built.request.timeseries[0].labels
        );
        assert_eq!(decoded.timeseries.len(), 2);
    }

    #[test]
    fn decode_body_rejects_framed_or_garbage_input() {
        assert!(matches!(
            decode_body(b"\xff\x06\x00\x00sNaPpY"),
            Err(BodyError::Snappy(_))
        ));
        let not_protobuf = snap::raw::Encoder::new().compress_vec(&[0x0a, 50]).unwrap();
        assert!(matches!(
            decode_body(&not_protobuf),
            Err(BodyError::Protobuf(_))
        ));
    }
}
