//! What the proxy decides about a request from its head, whichever front serves the client
//! connection (pingora's for remote apps, `front`'s for the app in this process): where it
//! goes (the original nginx.conf's locations), what it is refused, its request id and
//! forwarding headers, the proxy's own answers (storefront, metrics, error envelopes) and
//! the access log line.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

use crate::config::{AccessLog, ProxyConfig};
use crate::envelope::{Code, ErrorBody};
use crate::metrics::exposition::Format;
use crate::proxy::allow::AllowList;
use crate::proxy::limit::RateLimiter;
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::upstream::Pool;
use crate::web::{Answer, Site};

/// The request id's header, on the request and on the answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Where a request goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Route {
    /// `/api/...`: the app.
    #[default]
    Api,
    /// `/actuator/...` from an allowed client: the app.
    Actuator,
    /// `/actuator/proxy/prometheus`: the proxy's own metrics.
    ProxyMetrics,
    /// Anything else: the web UI.
    Ui,
}

impl Route {
    /// Classifies a path (nginx's `location` blocks).
    pub fn of(path: &str) -> Route {
        if path.starts_with("/api/") || path == "/api" {
            Route::Api
        } else if path == "/actuator/proxy/prometheus" {
            Route::ProxyMetrics
        } else if path == "/actuator" || path.starts_with("/actuator/") {
            Route::Actuator
        } else {
            Route::Ui
        }
    }

    /// The route's label on the request counter.
    pub fn label(self) -> &'static str {
        match self {
            Route::Api => "api",
            Route::Actuator | Route::ProxyMetrics => "actuator",
            Route::Ui => "ui",
        }
    }
}

/// What happens to a request, decided from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The storefront's file.
    Ui,
    /// The proxy's own metrics.
    Metrics,
    /// An error envelope of the proxy's own, and the label it counts under, if not the route's.
    Refuse(Code, Option<&'static str>),
    /// To the app.
    App,
}

/// An answer of the proxy's own, ready for either front to write.
pub struct Own {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// The proxy.
pub struct Proxy {
    pub cfg: ProxyConfig,
    pub pool: Arc<Pool>,
    pub allow: AllowList,
    pub site: Site,
    pub metrics: Arc<ProxyMetrics>,
    pub limiter: Option<RateLimiter>,
}

impl Proxy {
    /// Decides what happens to a request to `route` (the path's) from `client`.
    pub fn verdict(
        &self,
        route: Route,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Verdict {
        match route {
            Route::Ui => return Verdict::Ui,
            Route::Actuator | Route::ProxyMetrics => {
                if !client.is_some_and(|ip| self.allow.allows(ip)) {
                    return Verdict::Refuse(Code::C004, Some("denied"));
                }
                if route == Route::ProxyMetrics {
                    return Verdict::Metrics;
                }
            }
            Route::Api => {}
        }
        let too_big = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.cfg.max_body_bytes);
        if too_big {
            return Verdict::Refuse(Code::C009, None);
        }
        if let (Some(limiter), Some(ip)) = (&self.limiter, client)
            && method == Method::POST
            && path == "/api/v1/coupon-issues"
            && !limiter.admit(ip)
        {
            return Verdict::Refuse(Code::C011, Some("limited"));
        }
        Verdict::App
    }

    /// The storefront's answer: the file, index.html for SPA routes, or an error envelope.
    pub fn ui(&self, method: &Method, path: &str, headers: &HeaderMap, id: &HeaderValue) -> Own {
        match self.site.answer(method, path, headers) {
            Answer::File {
                status,
                mut headers,
                body,
            } => {
                headers.push((X_REQUEST_ID, id.clone()));
                Own {
                    status,
                    headers,
                    body,
                }
            }
            Answer::Error(code) => refusal(code, id),
        }
    }

    /// The proxy's metrics in the format the scraper's `Accept` prefers.
    pub fn metrics_page(&self, accept: Option<&HeaderValue>, id: &HeaderValue) -> Own {
        let format = Format::negotiate(accept.and_then(|v| v.to_str().ok()));
        match self.metrics.render(&self.pool, format) {
            Ok(text) => Own {
                status: 200,
                headers: vec![(
                    CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                )],
                body: Bytes::from(text),
            },
            Err(_) => refusal(Code::C005, id),
        }
    }

    /// Writes the access log line of a finished request, in `proxy.access_log`'s format.
    pub fn access_log(&self, line: &AccessLine<'_>) {
        let text = |value: Option<&HeaderValue>| {
            value
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let client = line
            .client
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let upstream = line
            .upstream_seconds
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.3}"));
        let request_id = line.request_id.to_str().unwrap_or("-");
        let (seconds, status, sent) = (line.seconds, line.status, line.sent);
        match self.cfg.access_log {
            AccessLog::Off => {}
            AccessLog::Combined => tracing::info!(
                target: "fastpick::access",
                "{client} - - [{}] \"{} {} {:?}\" {status} {sent} \"{}\" \"{}\" rid={request_id} rt={seconds:.3} urt={upstream}",
                chrono::Local::now().format("%d/%b/%Y:%H:%M:%S %z"),
                line.method,
                line.uri,
                line.version,
                text(line.headers.get("referer")),
                text(line.headers.get("user-agent")),
            ),
            AccessLog::Json => tracing::info!(
                target: "fastpick::access",
                client = %client,
                method = %line.method,
                uri = %line.uri,
                status,
                bytes = sent,
                referer = %text(line.headers.get("referer")),
                user_agent = %text(line.headers.get("user-agent")),
                request_id,
                request_seconds = seconds,
                upstream_seconds = %upstream,
                "access"
            ),
        }
    }
}

/// One finished request, for the access log.
pub struct AccessLine<'a> {
    pub client: Option<IpAddr>,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub status: u16,
    pub sent: usize,
    pub request_id: &'a HeaderValue,
    pub seconds: f64,
    pub upstream_seconds: Option<f64>,
}

/// An error envelope of the proxy's own.
pub fn refusal(code: Code, id: &HeaderValue) -> Own {
    Own {
        status: code.status(),
        headers: vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (X_REQUEST_ID, id.clone()),
        ],
        body: ErrorBody::json(code),
    }
}

/// A request id from the client is kept when it is short and plain; otherwise a new one of
/// 32 hex digits.
pub fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    let plain = |id: &[u8]| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match given {
        Some(id) if plain(id.as_bytes()) => id.clone(),
        _ => {
            // By hand: `write!` with `{:032x}` took about 1,100 instructions (callgrind).
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            let id = rand::random::<u128>();
            let mut hex = [0u8; 32];
            for (i, digit) in hex.iter_mut().enumerate() {
                *digit = DIGITS[((id >> (124 - 4 * i)) & 0xf) as usize];
            }
            HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("-"))
        }
    }
}

/// An address as a header value, without an intermediate string.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let mut text = [0u8; 48]; // an IPv6 address shows in at most 39 characters
    let mut rest = &mut text[..];
    let _ = write!(rest, "{ip}");
    let unused = rest.len();
    HeaderValue::from_bytes(&text[..text.len() - unused]).unwrap_or(HeaderValue::from_static(""))
}

/// The headers the app gets from the proxy: the client's address (nginx's `X-Real-IP`,
/// `X-Forwarded-For` appended to what came in), the scheme and the request id.
pub fn forwarding(
    prior: Option<&HeaderValue>,
    client: Option<IpAddr>,
    id: &HeaderValue,
) -> [(HeaderName, HeaderValue); 4] {
    let client = client.map_or(HeaderValue::from_static(""), ip_value);
    let forwarded = match prior.and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => {
            let text = format!("{prior}, {}", client.to_str().unwrap_or_default());
            HeaderValue::from_str(&text).unwrap_or_else(|_| client.clone())
        }
        _ => client.clone(),
    };
    [
        (HeaderName::from_static("x-real-ip"), client),
        (HeaderName::from_static("x-forwarded-for"), forwarded),
        (
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        ),
        (X_REQUEST_ID, id.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_nginx_locations() {
        assert_eq!(Route::of("/api/v1/coupons"), Route::Api);
        assert_eq!(Route::of("/actuator/health"), Route::Actuator);
        assert_eq!(Route::of("/actuator"), Route::Actuator);
        assert_eq!(Route::of("/actuator/proxy/prometheus"), Route::ProxyMetrics);
        assert_eq!(Route::of("/"), Route::Ui);
        assert_eq!(Route::of("/apis"), Route::Ui);
        assert_eq!(Route::of("/mypage"), Route::Ui);
    }

    #[test]
    fn request_ids_are_kept_when_plain_and_made_otherwise() {
        let given = |id: &str| request_id(Some(&HeaderValue::from_str(id).expect("value")));
        assert_eq!(given("abc-123"), "abc-123");
        let made = request_id(None);
        assert_eq!(made.len(), 32);
        assert!(
            made.as_bytes().iter().all(u8::is_ascii_hexdigit),
            "{made:?}"
        );
        assert_ne!(request_id(None), made);
        assert_ne!(given("bad id with spaces"), "bad id with spaces");
        assert_eq!(given(&"a".repeat(65)).len(), 32);
    }

    #[test]
    fn addresses_become_header_values() {
        assert_eq!(ip_value("10.1.2.3".parse().expect("ip")), "10.1.2.3");
        let longest = "1111:2222:3333:4444:5555:6666:7777:8888";
        assert_eq!(ip_value(longest.parse().expect("ip")), longest);
        let mapped = "::ffff:192.168.100.200";
        assert_eq!(ip_value(mapped.parse().expect("ip")), mapped);
    }

    #[test]
    fn forwarding_appends_the_client_to_what_came_in() {
        let id = HeaderValue::from_static("rid");
        let client = Some("10.0.0.9".parse().expect("ip"));
        let prior = HeaderValue::from_static("1.2.3.4");
        let headers = forwarding(Some(&prior), client, &id);
        assert_eq!(headers[0].1, "10.0.0.9");
        assert_eq!(headers[1].1, "1.2.3.4, 10.0.0.9");
        assert_eq!(headers[3].1, "rid");
        assert_eq!(forwarding(None, client, &id)[1].1, "10.0.0.9");
    }

    #[test]
    fn envelopes_carry_the_code_and_message() {
        let own = refusal(Code::C012, &HeaderValue::from_static("rid"));
        assert_eq!(own.status, 502);
        let body: serde_json::Value = serde_json::from_slice(&own.body).expect("json");
        assert_eq!(body["status"], 502);
        assert_eq!(body["code"], "C012");
        assert!(!body["message"].as_str().unwrap_or_default().is_empty());
    }
}
