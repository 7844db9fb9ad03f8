//! The one coupon status rule used by list, detail and issuing (change 3).

use chrono::NaiveDateTime;
use serde::Serialize;
use utoipa::ToSchema;

/// A coupon's state at a moment, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum CouponStatus {
    Disabled,
    Ready,
    Expired,
    Exhausted,
    Issuing,
}

/// The stored `use_status` value of a coupon that can be issued.
pub const USE_STATUS_AVAILABLE: &str = "AVAILABLE";
/// The stored `use_status` value of a coupon switched off by an operator.
pub const USE_STATUS_DISABLED: &str = "DISABLED";

/// Returns the status; the first matching rule wins: DISABLED, READY, EXPIRED, EXHAUSTED, ISSUING.
pub fn coupon_status(
    use_status: &str,
    start_at: NaiveDateTime,
    end_at: NaiveDateTime,
    total_quantity: i32,
    issued_quantity: i32,
    now: NaiveDateTime,
) -> CouponStatus {
    if use_status == USE_STATUS_DISABLED {
        CouponStatus::Disabled
    } else if now < start_at {
        CouponStatus::Ready
    } else if now >= end_at {
        CouponStatus::Expired
    } else if issued_quantity >= total_quantity {
        CouponStatus::Exhausted
    } else {
        CouponStatus::Issuing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .expect("valid test time")
    }

    #[test]
    fn precedence_is_disabled_ready_expired_exhausted_issuing() {
        let s = |use_status, start, end, total, issued, now| {
            coupon_status(use_status, t(start), t(end), total, issued, t(now))
        };
        assert_eq!(s("DISABLED", 10, 12, 1, 0, 11), CouponStatus::Disabled);
        assert_eq!(s("AVAILABLE", 10, 12, 1, 1, 9), CouponStatus::Ready);
        assert_eq!(s("AVAILABLE", 10, 12, 1, 1, 12), CouponStatus::Expired);
        assert_eq!(s("AVAILABLE", 10, 12, 1, 1, 11), CouponStatus::Exhausted);
        assert_eq!(s("AVAILABLE", 10, 12, 2, 1, 10), CouponStatus::Issuing);
        assert_eq!(s("AVAILABLE", 10, 12, 2, 1, 11), CouponStatus::Issuing);
    }
}
