//! What Spring Security gave the original for free: its default response headers on every
//! answer, and CORS for the listed origins only. A cross-origin request from an origin not
//! on `app.cors_allowed_origins` is refused with 403 before any handler runs (Spring's
//! "Invalid CORS request"), in the error envelope; same-origin requests (the frontend served
//! by the proxy from the API's own host) are not CORS requests and pass.

use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::error::ApiError;
use crate::envelope::FieldError;

/// Spring Security's defaults: no MIME sniffing, no caching of API answers, no framing.
const DEFAULT_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CACHE_CONTROL,
        "no-cache, no-store, max-age=0, must-revalidate",
    ),
    (header::PRAGMA, "no-cache"),
    (header::EXPIRES, "0"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// Middleware: adds Spring Security's default headers where the answer has none of its own.
pub async fn default_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in DEFAULT_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// The origins allowed to make cross-origin requests.
#[derive(Debug, Clone)]
pub struct AllowedOrigins(Arc<Vec<HeaderValue>>);

impl AllowedOrigins {
    /// Parses `app.cors_allowed_origins`.
    pub fn parse(origins: &[String]) -> anyhow::Result<Self> {
        let origins = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).with_context(|| {
                    format!("app.cors_allowed_origins: '{o}' is not a valid origin")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(AllowedOrigins(Arc::new(origins)))
    }

    /// CORS as the original: exact origins, credentials, three request headers.
    pub fn layer(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.0.iter().cloned()))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CACHE_CONTROL,
            ])
            .expose_headers([header::AUTHORIZATION])
            .max_age(Duration::from_secs(3600))
    }

    /// Tells whether a request may go on: no Origin, its own origin, or a listed one.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        self.0.contains(origin) || same_origin(origin, headers.get(header::HOST))
    }
}

/// Tells whether an Origin names the host the request was sent to (default ports aside).
fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(|h| h.to_str())) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |a: &str| {
        a.strip_suffix(default_port)
            .unwrap_or(a)
            .to_ascii_lowercase()
    };
    strip(authority) == strip(host)
}

/// Middleware: refuses cross-origin requests from origins not listed (403 C004).
pub async fn refuse_foreign_origins(
    State(allowed): State<AllowedOrigins>,
    req: Request,
    next: Next,
) -> Response {
    if allowed.admits(req.headers()) {
        return next.run(req).await;
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
        .unwrap_or_default();
    ApiError::CorsRefused(vec![FieldError::new(
        "Origin",
        origin,
        "Invalid CORS request",
    )])
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: &'static str, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static(origin));
        h.insert(header::HOST, HeaderValue::from_static(host));
        h
    }

    #[test]
    fn listed_and_same_origins_pass_and_others_do_not() {
        let allowed = AllowedOrigins::parse(&["http://localhost:3000".into()]).unwrap();
        assert!(allowed.admits(&HeaderMap::new()), "no Origin: not CORS");
        assert!(allowed.admits(&headers("http://localhost:3000", "api:8080")));
        assert!(allowed.admits(&headers("http://shop.kr", "shop.kr")));
        assert!(allowed.admits(&headers("http://shop.kr:80", "SHOP.kr")));
        assert!(allowed.admits(&headers("https://shop.kr", "shop.kr:443")));
        assert!(allowed.admits(&headers("http://127.0.0.1:8080", "127.0.0.1:8080")));
        assert!(!allowed.admits(&headers("http://evil.example", "shop.kr")));
        assert!(!allowed.admits(&headers("http://shop.kr:8080", "shop.kr")));
        assert!(!allowed.admits(&headers("null", "shop.kr")));
    }
}
