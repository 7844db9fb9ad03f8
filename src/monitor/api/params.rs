//! Request parameters as Prometheus reads them: the URL's query string and, for a POST, a
//! form body, merged; repeated keys (`match[]`) kept in order. Times are Unix seconds with
//! decimals or RFC 3339; durations are seconds with decimals or Prometheus durations (`15s`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};

use super::ApiError;
use crate::monitor::prometheus_yml::parse_duration;

/// The largest form body read (Grafana's longest queries are a few KiB).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// Every parameter of a request, from its query string and form body.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Reads parameters from a query string (and a form body).
    pub fn from_parts(query: Option<&str>, form: Option<&[u8]>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        if let Some(body) = form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(pairs)
    }

    /// The first value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (`match[]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_data(format!("invalid parameter \"{name}\": missing")))
    }

    /// A time parameter in ms; `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => parse_time(text).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse \"{text}\" to a valid timestamp"
                ))
            }),
        }
    }

    /// A duration parameter in ms.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => parse_duration_ms(text).map(Some).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{name}\": cannot parse \"{text}\" to a valid duration"
                ))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(str::to_owned);
        let is_form = req.method() == Method::POST
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Ok(Params::from_parts(query.as_deref(), None));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_data(format!("error parsing form: {e}")))?;
        if body.len() > MAX_FORM_BYTES {
            return Err(ApiError::bad_data("error parsing form: body too large"));
        }
        Ok(Params::from_parts(query.as_deref(), Some(&body)))
    }
}

/// Unix seconds (with decimals) or RFC 3339, in ms.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() {
            return None;
        }
        let ms = (secs * 1000.0).round();
        // Beyond ±2^53 ms a time is meaningless; Prometheus clamps its special min/max.
        return (ms.abs() < 9.0e15).then_some(ms as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Seconds (with decimals) or a Prometheus duration, in ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.0e12 {
            return None;
        }
        return Some((secs * 1000.0).round() as i64);
    }
    parse_duration(text).and_then(|d| i64::try_from(d.as_millis()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_are_merged_and_repeats_kept() {
        let p = Params::from_parts(
            Some("match[]=up&time=10"),
            Some(b"match[]=x%7Bj%3D%22a%22%7D"),
        );
        assert_eq!(p.all("match[]"), ["up", "x{j=\"a\"}"]);
        assert_eq!(p.time("time", 0).expect("time"), 10_000);
        assert_eq!(p.time("start", 7).expect("default"), 7);
        assert!(p.required("query").is_err());
    }

    #[test]
    fn times_and_durations_take_both_forms() {
        assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Some(1_435_781_451_781)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("NaN"), None);
        assert_eq!(parse_duration_ms("15"), Some(15_000));
        assert_eq!(parse_duration_ms("0.5"), Some(500));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("soon"), None);
    }
}
