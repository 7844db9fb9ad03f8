//! What the proxy does with a request (pingora's `ProxyHttp`), as the original nginx.conf did:
//! `/api/` to the app upstreams, `/actuator/` only for allowed client networks, everything
//! else the embedded web UI. Errors of its own are the API's error envelope.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use pingora::http::{Method, RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::config::{AccessLog, ProxyConfig};
use crate::envelope::{Code, ErrorBody};
use crate::metrics::exposition::Format;
use crate::proxy::allow::AllowList;
use crate::proxy::hop::{Call, Hop, X_REQUEST_ID};
use crate::proxy::limit::RateLimiter;
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::upstream::{Picked, Pool, peer};
use crate::web::{Answer, Site};

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

    fn label(self) -> &'static str {
        match self {
            Route::Api => "api",
            Route::Actuator | Route::ProxyMetrics => "actuator",
            Route::Ui => "ui",
        }
    }
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct Ctx {
    route: Route,
    /// Set when the proxy answered by itself for a reason worth a label (denied, limited).
    outcome: Option<&'static str>,
    /// Set by `early_request_filter`; a header value, so the app's request and the answer
    /// share it without a copy.
    request_id: Option<HeaderValue>,
    client_ip: Option<IpAddr>,
    started: Option<Instant>,
    tried: Vec<SocketAddr>,
    picked: Option<Picked>,
    upstream_started: Option<Instant>,
    upstream_seconds: Option<f64>,
    body_bytes: u64,
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

/// A request id from the client is kept when it is short and plain; otherwise a new one of
/// 32 hex digits.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
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

/// Writes a complete response of the proxy's own.
async fn respond(
    session: &mut Session,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> Result<()> {
    let head_only = session.req_header().method == Method::HEAD;
    let mut h = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (name, value) in headers {
        h.insert_header(name.clone(), value.clone())?;
    }
    h.insert_header("content-length", body.len().to_string())?;
    session.write_response_header(Box::new(h), false).await?;
    let body = if head_only { Bytes::new() } else { body };
    session.write_response_body(Some(body), true).await
}

/// The request id as a header value.
fn request_id_value(ctx: &Ctx) -> HeaderValue {
    ctx.request_id
        .clone()
        .unwrap_or(HeaderValue::from_static("-"))
}

/// The request id for logs (plain ASCII by construction).
fn request_id_text(ctx: &Ctx) -> &str {
    ctx.request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// The headers the app gets from the proxy: the client's address (nginx's `X-Real-IP`,
/// `X-Forwarded-For` appended to what came in), the scheme and the request id.
fn forwarding(prior: Option<&HeaderValue>, ctx: &Ctx) -> Vec<(HeaderName, HeaderValue)> {
    let client = ctx.client_ip.map_or(HeaderValue::from_static(""), ip_value);
    let forwarded = match prior.and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => {
            let text = format!("{prior}, {}", client.to_str().unwrap_or_default());
            HeaderValue::from_str(&text).unwrap_or_else(|_| client.clone())
        }
        _ => client.clone(),
    };
    vec![
        (HeaderName::from_static("x-real-ip"), client),
        (HeaderName::from_static("x-forwarded-for"), forwarded),
        (
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("http"),
        ),
        (X_REQUEST_ID, request_id_value(ctx)),
    ]
}

/// An error envelope response.
async fn respond_error(session: &mut Session, ctx: &Ctx, code: Code) -> Result<()> {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (X_REQUEST_ID, request_id_value(ctx)),
    ];
    respond(session, code.status(), &headers, ErrorBody::json(code)).await
}

impl Proxy {
    /// Serves the proxy's metrics in the format the scraper's `Accept` prefers.
    async fn serve_metrics(&self, session: &mut Session) -> Result<()> {
        let accept_opt = session.get_header("accept").and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept_opt);
        let text = self
            .metrics
            .render(&self.pool, format)
            .map_err(|_| Error::explain(ErrorType::InternalError, "failed to encode metrics"))?;
        let headers = [(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )];
        respond(session, 200, &headers, Bytes::from(text)).await
    }

    /// Serves the storefront: the file, index.html for SPA routes, or an error envelope.
    async fn serve_ui(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let req = session.req_header();
        let answer = self.site.answer(&req.method, req.uri.path(), &req.headers);
        let (status, mut headers, body) = match answer {
            Answer::File {
                status,
                headers,
                body,
            } => (status, headers, body),
            Answer::Error(code) => return respond_error(session, ctx, code).await,
        };
        headers.push((X_REQUEST_ID, request_id_value(ctx)));
        respond(session, status, &headers, body).await
    }

    /// Hands the request to the app in this process and writes its answer.
    async fn hop(&self, hop: &Hop, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.picked = Some(Picked::InProcess);
        let call = Call {
            headers: forwarding(session.get_header("x-forwarded-for"), ctx),
            request_id: request_id_value(ctx),
            read_timeout: self.cfg.read_timeout,
            max_body_bytes: self.cfg.max_body_bytes,
            upstream_seconds: &mut ctx.upstream_seconds,
        };
        let served = hop.serve(session, call).await;
        if let Some(seconds) = ctx.upstream_seconds {
            self.metrics.upstream_time(ctx.picked, seconds);
        }
        served
    }

    fn access_log(&self, session: &Session, ctx: &Ctx, status: u16) {
        if self.cfg.access_log == AccessLog::Off {
            return;
        }
        let req = session.req_header();
        let client = ctx
            .client_ip
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let seconds = ctx.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let upstream = ctx
            .upstream_seconds
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.3}"));
        let sent = session.body_bytes_sent();
        match self.cfg.access_log {
            AccessLog::Off => {}
            AccessLog::Combined => tracing::info!(
                target: "fastpick::access",
                "{client} - - [{}] \"{} {} {:?}\" {status} {sent} \"{}\" \"{}\" rid={} rt={seconds:.3} urt={upstream}",
                chrono::Local::now().format("%d/%b/%Y:%H:%M:%S %z"),
                req.method,
                req.uri,
                req.version,
                header("referer"),
                header("user-agent"),
                request_id_text(ctx),
            ),
            AccessLog::Json => tracing::info!(
                target: "fastpick::access",
                client = %client,
                method = %req.method,
                uri = %req.uri,
                status,
                bytes = sent,
                referer = %header("referer"),
                user_agent = %header("user-agent"),
                request_id = request_id_text(ctx),
                request_seconds = seconds,
                upstream_seconds = %upstream,
                "access"
            ),
        }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {
        // No response compression of proxied responses (the app's JSON is small; the UI is
        // served precompressed), so not even pingora's disabled default module.
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.started = Some(Instant::now());
        self.metrics.in_flight(1);
        // Slow clients: each body read, and the wait for a next request, are bounded.
        session.set_read_timeout(Some(self.cfg.client_timeout));
        session.set_keepalive(Some(self.cfg.client_timeout.as_secs().max(1)));
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.request_id = Some(request_id(session.get_header(X_REQUEST_ID)));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The head's size was bounded as it arrived (`downstream`, 431 C014).
        ctx.route = Route::of(session.req_header().uri.path());
        match ctx.route {
            Route::Ui => {
                self.serve_ui(session, ctx).await?;
                return Ok(true);
            }
            Route::Actuator | Route::ProxyMetrics => {
                let allowed = ctx.client_ip.is_some_and(|ip| self.allow.allows(ip));
                if !allowed {
                    ctx.outcome = Some("denied");
                    respond_error(session, ctx, Code::C004).await?;
                    return Ok(true);
                }
                if ctx.route == Route::ProxyMetrics {
                    self.serve_metrics(session).await?;
                    return Ok(true);
                }
            }
            Route::Api => {}
        }
        let too_big = session
            .get_header("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.cfg.max_body_bytes);
        if too_big {
            respond_error(session, ctx, Code::C009).await?;
            return Ok(true);
        }
        if let (Some(limiter), Some(ip)) = (&self.limiter, ctx.client_ip) {
            let req = session.req_header();
            if req.method == Method::POST
                && req.uri.path() == "/api/v1/coupon-issues"
                && !limiter.admit(ip)
            {
                ctx.outcome = Some("limited");
                respond_error(session, ctx, Code::C011).await?;
                return Ok(true);
            }
        }
        if let Pool::InProcess(hop) = self.pool.as_ref() {
            self.hop(hop, session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > self.cfg.max_body_bytes {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body over proxy.max_body_bytes",
            ));
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let picked = match self.pool.as_ref() {
            // request_filter has answered every request for the in-process app.
            Pool::InProcess(_) => {
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "no socket upstream for the in-process app",
                ));
            }
            Pool::Remote(remote) => {
                let Some(addr) = remote.pick(&ctx.tried) else {
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(503),
                        "every upstream failed for this request",
                    ));
                };
                ctx.tried.push(addr);
                remote.begin(addr);
                addr
            }
        };
        ctx.picked = Some(Picked::Remote(picked));
        ctx.upstream_started = Some(Instant::now());
        Ok(peer(&self.cfg, picked))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Pool::Remote(remote), Some(Picked::Remote(addr))) = (self.pool.as_ref(), ctx.picked)
        {
            remote.end(addr);
            remote.eject(addr);
            ctx.picked = None;
            // Nothing reached the upstream, so any method may go to the next one.
            e.set_retry(ctx.tried.len() < remote.count());
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        for (name, value) in forwarding(upstream.headers.get("x-forwarded-for"), ctx) {
            upstream.insert_header(name, value)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(started) = ctx.upstream_started {
            let seconds = started.elapsed().as_secs_f64();
            ctx.upstream_seconds = Some(seconds);
            self.metrics.upstream_time(ctx.picked, seconds);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response.insert_header(X_REQUEST_ID, request_id_value(ctx))?;
        Ok(())
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // logging() reports failed requests once, with the request id.
        true
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(status) => Some(Code::for_status(*status)),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if *e.esource() == ErrorSource::Upstream =>
            {
                Some(Code::C013)
            }
            _ if *e.esource() == ErrorSource::Upstream => Some(Code::C012),
            ErrorType::InvalidHTTPHeader => Some(Code::C001),
            // The client went away or stalled: nobody to answer.
            _ if *e.esource() == ErrorSource::Downstream => None,
            _ => Some(Code::C005),
        };
        if let Some(code) = code
            && session.response_written().is_none()
        {
            let _ = respond_error(session, ctx, code).await;
        }
        let status = code.map_or(0, Code::status);
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let (Pool::Remote(remote), Some(Picked::Remote(addr))) = (self.pool.as_ref(), ctx.picked)
        {
            remote.end(addr);
        }
        self.metrics.in_flight(-1);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if let Some(e) = e
            && status >= 500
        {
            tracing::warn!(request_id = request_id_text(ctx), error = %e, "proxy: request failed");
        }
        self.metrics
            .request(ctx.outcome.unwrap_or(ctx.route.label()), status);
        self.access_log(session, ctx, status);
    }
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
    fn envelopes_carry_the_code_and_message() {
        let body: serde_json::Value =
            serde_json::from_slice(&ErrorBody::json(Code::C012)).expect("json");
        assert_eq!(body["status"], 502);
        assert_eq!(body["code"], "C012");
        assert!(!body["message"].as_str().unwrap_or_default().is_empty());
    }
}
