//! Request extractors that fail into the error envelope: JSON bodies with validation and
//! form-decoded query strings. (The authenticated user is `auth`'s.)

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::app::error::{ApiError, FieldError};

/// A request body type that checks its own rules after parsing.
pub trait Validate {
    /// Returns every broken rule; empty means valid.
    fn validate(&self) -> Vec<FieldError>;
}

/// A JSON body: 415 unless `application/json`, 400 C001 when malformed or invalid,
/// 400 C002 when a field has the wrong type.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(req, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::Invalid(vec![FieldError::new("body", "", rejection.body_text())])
                    }
                })?;
        let value: T = parse_json(&bytes)?;
        let errors = value.validate();
        if errors.is_empty() {
            Ok(ApiJson(value))
        } else {
            Err(ApiError::Invalid(errors))
        }
    }
}

/// Tells whether the content type is JSON (`application/json`, any parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses JSON, naming the field of a type error. Every body is an object: serde would also
/// read a struct from an array of its fields in order (`[19]` as `{"couponId": 19}`), which
/// Jackson refuses, so an array is a type error here too.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::TypeMismatch(vec![FieldError::new(
            "body",
            "",
            "expected a JSON object".to_owned(),
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::TypeMismatch(vec![FieldError::new(
                if field == "." { "body" } else { &field },
                "",
                type_reason(&inner.to_string()),
            )]),
            _ => malformed(&inner),
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::Invalid(vec![FieldError::new(
        "body",
        "",
        format!("malformed JSON: {err}"),
    )])
}

/// Says what was expected, never the value sent (it may be a password), nor serde_json's
/// " at line 1 column 12" position.
fn type_reason(text: &str) -> String {
    let expected = text.find("expected").map_or("wrong type", |i| &text[i..]);
    match expected.rfind(" at line ") {
        Some(i) => expected[..i].to_owned(),
        None => expected.to_owned(),
    }
}

/// The query string, decoded with form rules (`+` is a space, bad escapes kept as they are).
pub struct QueryParams(HashMap<String, Vec<String>>);

impl QueryParams {
    /// Decodes a raw query string.
    pub fn parse(raw: &str) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            map.entry(key.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        QueryParams(map)
    }

    /// Returns a parameter; repeated values are joined with `,` as Spring does.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|values| values.join(","))
    }

    /// Tells whether any non-empty value was given.
    pub fn has_value(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|values| values.iter().any(|v| !v.trim().is_empty()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(QueryParams::parse(parts.uri.query().unwrap_or("")))
    }
}

/// Parses an enum query parameter: trimmed, case-sensitive, empty means the default.
pub fn enum_param<T: Default>(
    params: &QueryParams,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<T, FieldError> {
    let Some(raw) = params.get(name) else {
        return Ok(T::default());
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(T::default());
    }
    parse(trimmed)
        .ok_or_else(|| FieldError::new(name, raw.clone(), format!("must be one of {allowed}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn query_uses_form_rules_and_joins_repeats() {
        let q = QueryParams::parse("search=NEW+BALANCE&x=%ZZ&search=b&e=");
        assert_eq!(q.get("search").as_deref(), Some("NEW BALANCE,b"));
        assert_eq!(q.get("x").as_deref(), Some("%ZZ"));
        assert!(!q.has_value("e"));
        assert!(q.get("missing").is_none());
    }

    #[test]
    fn json_content_type_check_allows_parameters() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        assert!(is_json(&h));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        n: Option<i64>,
    }

    #[test]
    fn json_errors_are_classified() {
        let err = parse_json::<Probe>(b"{\"n\":\"secret-value\"}").unwrap_err();
        assert_eq!(err.code().as_str(), "C002");
        match err {
            ApiError::TypeMismatch(e) => {
                assert_eq!(e[0].field, "n");
                assert!(!e[0].reason.contains("secret-value"), "{}", e[0].reason);
                assert!(e[0].reason.starts_with("expected"), "{}", e[0].reason);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse_json::<Probe>(b"{\"n\":").unwrap_err().code().as_str(),
            "C001"
        );
        assert_eq!(
            parse_json::<Probe>(b"").unwrap_err().code().as_str(),
            "C001"
        );
        assert_eq!(
            parse_json::<Probe>(b"{} x").unwrap_err().code().as_str(),
            "C001"
        );
        assert!(parse_json::<Probe>(b"{\"n\":1,\"extra\":true}").is_ok());
    }
}
