//! Pure coupon rules shared by the API, the seeder and the tests: status, keywords, search terms,
//! the clock and the wire date format. No I/O here.

pub mod keywords;
pub mod status;
pub mod time;

pub use keywords::{extract_keywords, search_words};
pub use status::{CouponStatus, coupon_status};
pub use time::Clock;
