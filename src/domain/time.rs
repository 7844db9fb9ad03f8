//! "Now" as naive wall-clock time in the configured zone, and the wire format
//! `yyyy-MM-dd'T'HH:mm:ss` (no fraction, no zone) used in every JSON date.

use chrono::{NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The wire format of every date-time, input and output.
pub const WIRE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Gives the current local time in one zone, as the stored timestamps are naive local times.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    tz: chrono_tz::Tz,
}

impl Clock {
    /// Makes a clock for the zone (Asia/Seoul in the original deployment).
    pub fn new(tz: chrono_tz::Tz) -> Self {
        Self { tz }
    }

    /// Returns the zone's wall-clock time, to the microsecond as PostgreSQL stores it.
    pub fn now(&self) -> NaiveDateTime {
        let now = Utc::now().with_timezone(&self.tz).naive_local();
        let micros = now.nanosecond() / 1_000 * 1_000;
        now.with_nanosecond(micros).unwrap_or(now)
    }

    /// Returns the zone's wall-clock time at a Unix timestamp (seconds).
    pub fn local_at(&self, unix_secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(unix_secs, 0)
            .unwrap_or_default()
            .with_timezone(&self.tz)
            .naive_local()
    }
}

/// Parses a wire date-time strictly: `2026-01-01T10:00:00`, nothing more or less.
pub fn parse_wire(text: &str) -> Option<NaiveDateTime> {
    const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    let fits = text.len() == 19
        && text.bytes().zip(SHAPE).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            other => c == *other,
        });
    // chrono reads second 60 as a leap second; the wire format has none.
    NaiveDateTime::parse_from_str(text, WIRE_FORMAT)
        .ok()
        .filter(|t| fits && t.nanosecond() < 1_000_000_000)
}

/// Serde `serialize_with`: writes a date-time truncated to seconds.
pub fn serialize<S: Serializer>(value: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&value.format(WIRE_FORMAT))
}

/// Serde `deserialize_with` for an optional wire date-time; a bad text is a type error.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<NaiveDateTime>, D::Error> {
    let text: Option<String> = Option::deserialize(de)?;
    match text {
        None => Ok(None),
        Some(t) => parse_wire(&t).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid date-time '{t}', expected yyyy-MM-ddTHH:mm:ss"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_strict() {
        let t = parse_wire("2026-01-02T03:04:05").expect("valid");
        assert_eq!(t.format(WIRE_FORMAT).to_string(), "2026-01-02T03:04:05");
        for bad in [
            "2026-01-02 03:04:05",
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.123",
            "2026-01-02T03:04",
            "2026-02-30T00:00:00",
            "+2026-12-31T23:59:5",
            "2026-01-01T23:59:60",
            "2026-01-01T24:00:00",
            "",
        ] {
            assert!(parse_wire(bad).is_none(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn clock_follows_its_zone() {
        let seoul = Clock::new(chrono_tz::Asia::Seoul).now();
        let utc = Clock::new(chrono_tz::UTC).now();
        let diff = (seoul - utc).num_minutes();
        assert!(
            (539..=541).contains(&diff),
            "Seoul is UTC+9, got {diff} minutes"
        );
    }
}
