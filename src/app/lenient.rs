//! Jackson's default input coercions (API.md 1.2), so bodies the original accepted still work:
//! a numeric string or a float for an integer field, a number or boolean for a text field.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional integer: `5`, `5.9` (truncated), `"5"`; null or missing is `None`.
pub fn opt_i64<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    let value: Option<Value> = Option::deserialize(de)?;
    let number = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f.trunc() as i64)
        }),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    number
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

/// An optional text: a string, or a number or boolean taken as its text; null or missing is `None`.
pub fn opt_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let value: Option<Value> = Option::deserialize(de)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
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
    fn coerces_like_jackson() {
        let p = probe(r#"{"n":"5","s":12345678}"#).expect("coerces");
        assert_eq!((p.n, p.s.as_deref()), (Some(5), Some("12345678")));
        assert_eq!(probe(r#"{"n":5.9}"#).expect("float").n, Some(5));
        assert_eq!(probe(r#"{"n":null,"s":null}"#).expect("nulls").n, None);
        assert_eq!(probe("{}").expect("missing").s, None);
        assert_eq!(
            probe(r#"{"s":true}"#).expect("bool").s.as_deref(),
            Some("true")
        );
    }

    #[test]
    fn refuses_other_types_without_echoing_the_value() {
        for bad in [
            r#"{"n":"abc"}"#,
            r#"{"n":[1]}"#,
            r#"{"n":1e300}"#,
            r#"{"s":{"a":1}}"#,
            r#"{"s":["x"]}"#,
        ] {
            let err = probe(bad).expect_err(bad).to_string();
            assert!(err.starts_with("expected"), "{bad}: {err}");
            assert!(!err.contains("abc"), "{err}");
        }
    }
}
