//! The original's 1,000,000-coupon recipe (its `CouponDataSeeder`; the README's
//! compatibility notes summarise it): brands, modifiers, items, dates and quantities, with
//! keywords by the same extraction as admin create.

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::domain::extract_keywords;

const BRANDS: [&str; 7] = [
    "HOKA",
    "NIKE",
    "A.P.C.",
    "KITSUNE",
    "SOTO",
    "NEW BALANCE",
    "PATAGONIA",
];
const MODIFIERS: [&str; 5] = ["[단독]", "[OFF]", "[NEW]", "[LAST]", "[29CM]"];
const ITEMS: [&str; 5] = ["스니커즈", "티셔츠", "백팩", "재킷", "팬츠"];

/// One coupon of the recipe, ready to insert.
#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub created_at: NaiveDateTime,
    pub brand: &'static str,
    pub title: String,
    pub start_at: NaiveDateTime,
    pub end_at: NaiveDateTime,
    pub total_quantity: i32,
    pub keywords: Vec<String>,
}

/// Makes the `offset`-th coupon of the recipe: created `offset` seconds before `now`,
/// started a day before that, ending 30 days after it, 1,000 in stock.
pub fn recipe_coupon(offset: u32, now: NaiveDateTime, rng: &mut impl Rng) -> NewCoupon {
    // The arrays are non-empty constants, so choose() always returns Some.
    let brand = *BRANDS.choose(rng).unwrap_or(&BRANDS[0]);
    let modifier = *MODIFIERS.choose(rng).unwrap_or(&MODIFIERS[0]);
    let item = *ITEMS.choose(rng).unwrap_or(&ITEMS[0]);
    let title = format!("{modifier} {brand} {item}");
    let created_at = now - Duration::seconds(i64::from(offset));
    NewCoupon {
        created_at,
        brand,
        keywords: extract_keywords(brand, &title),
        title,
        start_at: created_at - Duration::days(1),
        end_at: created_at + Duration::days(30),
        total_quantity: 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_follows_the_original_shape() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .expect("valid");
        let mut rng = rand::rng();
        for offset in 0..200 {
            let c = recipe_coupon(offset, now, &mut rng);
            assert_eq!(c.created_at, now - Duration::seconds(i64::from(offset)));
            assert_eq!(c.end_at - c.start_at, Duration::days(31));
            assert!(c.title.contains(c.brand));
            let expected = match c.brand {
                "A.P.C." => 2,
                "NEW BALANCE" if c.title.starts_with("[NEW]") => 3,
                "NEW BALANCE" => 4,
                _ => 3,
            };
            assert_eq!(
                c.keywords.len(),
                expected,
                "{} -> {:?}",
                c.title,
                c.keywords
            );
        }
    }
}
