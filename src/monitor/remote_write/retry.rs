//! When a failed send is tried again, and after how long: the spec's status rules (retry
//! 5xx and 429, never other 4xx) and an exponential backoff with jitter that honours a
//! receiver's `Retry-After`.

use std::time::{Duration, SystemTime};

/// What to do with a batch after the receiver answered with a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// 2xx: the receiver has the samples.
    Delivered,
    /// 5xx or 429: send the same batch again after a backoff.
    Retry,
    /// Any other status (4xx, unfollowed 3xx): the batch can never succeed; drop it.
    Reject,
}

/// Classifies a receiver's HTTP status as the spec requires.
pub(super) fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Reject,
    }
}

/// Exponential backoff: the base delay starts at `min` and doubles per retry up to `max`;
/// each wait is drawn from the upper half of the base delay (`[base/2, base]`) so that
/// several senders do not retry in lockstep.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    max: Duration,
    base: Duration,
}

impl Backoff {
    /// A fresh backoff whose first delay is at most `min`.
    pub(super) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            max,
            base: min.min(max),
        }
    }

    /// The next wait, given `jitter` in `[0, 1]` (a random draw in production), and doubles
    /// the base delay for the retry after it.
    pub(super) fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = self.base;
        self.base = base.saturating_mul(2).min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The wait after a response that carried `Retry-After`: the receiver's delay (capped at
    /// `max`, so shutdown stays bounded) instead of the computed one, which still advances.
    pub(super) fn next_delay_with_hint(&mut self, jitter: f64, hint: Option<Duration>) -> Duration {
        let computed = self.next_delay(jitter);
        match hint {
            Some(hint) => hint.min(self.max),
            None => computed,
        }
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date (a date in the past means
/// no wait). Returns `None` for anything else.
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_5xx_and_429_are_retried() {
        let cases = [
            (200, Outcome::Delivered),
            (204, Outcome::Delivered),
            (429, Outcome::Retry),
            (500, Outcome::Retry),
            (502, Outcome::Retry),
            (503, Outcome::Retry),
            (599, Outcome::Retry),
            (400, Outcome::Reject),
            (401, Outcome::Reject),
            (403, Outcome::Reject),
            (404, Outcome::Reject),
            (408, Outcome::Reject),
            (413, Outcome::Reject),
            (499, Outcome::Reject),
            (308, Outcome::Reject),
        ];
        for (status, expected) in cases {
            assert_eq!(classify(status), expected, "status {status}");
        }
    }

    #[test]
    fn backoff_doubles_from_min_to_max() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let upper: Vec<u64> = (0..11)
            .map(|_| backoff.next_delay(1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            upper,
            [
                100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000
            ]
        );
    }

    #[test]
    fn backoff_jitter_stays_in_the_upper_half_of_the_base_delay() {
        let mut low = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        assert_eq!(low.next_delay(0.0), Duration::from_millis(50));
        assert_eq!(low.next_delay(0.5), Duration::from_millis(150));
        assert_eq!(
            low.next_delay(7.0),
            Duration::from_millis(400),
            "jitter is clamped"
        );
    }

    #[test]
    fn retry_after_overrides_the_computed_delay_up_to_max() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let hinted = backoff.next_delay_with_hint(1.0, Some(Duration::from_secs(2)));
        assert_eq!(hinted, Duration::from_secs(2));
        let capped = backoff.next_delay_with_hint(1.0, Some(Duration::from_secs(3_600)));
        assert_eq!(capped, Duration::from_secs(30));
        // The computed delay kept doubling underneath the hints.
        assert_eq!(
            backoff.next_delay_with_hint(1.0, None),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
