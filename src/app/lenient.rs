//! The input coercions kept from the original (Jackson's defaults) for integer fields: a numeric
//! string or an integral float is an integer, so a client that sends `"couponId": "19"` (an id
//! read from a URL) keeps working. Two other Jackson defaults are refused with 400 C002: a
//! fractional number for an integer (it was truncated, silently naming another coupon or
//! quantity) and a number or boolean for a text field (`"password": 12345678`). No client of
//! the original sends either, and the OpenAPI document can then state each field's type exactly.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Bounds of the floats that hold a 64-bit integer: [-2^63, 2^63).
const I64_FLOAT_RANGE: std::ops::Range<f64> =
    -9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0;

/// An optional integer: `5`, `5.0` or `5e0` (integral), `"5"`; null or missing is `None`.
pub fn opt_i64<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    let value: Option<Value> = Option::deserialize(de)?;
    let number = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && I64_FLOAT_RANGE.contains(f))
                .map(|f| f as i64)
        }),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    number
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

/// An optional text: a string; null or missing is `None`. Anything else is refused without
/// echoing it.
pub fn opt_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let value: Option<Value> = Option::deserialize(de)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(serde::de::Error::custom("expected a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integers_come_as_numbers_integral_floats_or_numeric_strings() {
        let p = probe(r#"{"n":"5","s":"x"}"#).expect("numeric string");
        assert_eq!((p.n, p.s.as_deref()), (Some(5), Some("x")));
        assert_eq!(probe(r#"{"n":5.0}"#).expect("integral float").n, Some(5));
        assert_eq!(probe(r#"{"n":1e2}"#).expect("exponent").n, Some(100));
        assert_eq!(
            probe(r#"{"n":"-9223372036854775808"}"#).expect("min").n,
            Some(i64::MIN)
        );
        assert_eq!(probe(r#"{"n":null,"s":null}"#).expect("nulls").n, None);
        assert_eq!(probe("{}").expect("missing").s, None);
    }

    #[test]
    fn refuses_other_types_without_echoing_the_value() {
        for bad in [
            r#"{"n":"abc"}"#,
            r#"{"n":[1]}"#,
            r#"{"n":1e300}"#,
            r#"{"n":5.9}"#,
            r#"{"n":9223372036854775808}"#,
            r#"{"n":9.3e18}"#,
            r#"{"s":12345678}"#,
            r#"{"s":true}"#,
            r#"{"s":{"a":1}}"#,
            r#"{"s":["x"]}"#,
        ] {
            let err = probe(bad).expect_err(bad).to_string();
            assert!(err.starts_with("expected"), "{bad}: {err}");
            assert!(!err.contains("abc"), "{err}");
        }
    }
}
