//! The proxy's front for remote apps: pingora's `ProxyHttp`, as the original nginx.conf
//! did: `/api/` to the app upstreams, `/actuator/` only for allowed client networks,
//! everything else the embedded web UI (the decisions are `policy`'s). Errors of its own are
//! the API's error envelope.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::HeaderValue;
use pingora::http::{Method, RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::envelope::Code;
use crate::proxy::policy::{
    AccessLine, Own, Proxy, Route, Verdict, X_REQUEST_ID, forwarding, refusal, request_id,
};
use crate::proxy::upstream::{Picked, Pool, peer};

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

/// Writes a complete answer of the proxy's own.
async fn respond(session: &mut Session, own: Own) -> Result<()> {
    let head_only = session.req_header().method == Method::HEAD;
    let mut h = ResponseHeader::build(own.status, Some(own.headers.len() + 2))?;
    for (name, value) in own.headers {
        h.insert_header(name, value)?;
    }
    h.insert_header("content-length", own.body.len().to_string())?;
    session.write_response_header(Box::new(h), false).await?;
    let body = if head_only { Bytes::new() } else { own.body };
    session.write_response_body(Some(body), true).await
}

/// The request id as a header value.
fn request_id_value(ctx: &Ctx) -> HeaderValue {
    ctx.request_id
        .clone()
        .unwrap_or(HeaderValue::from_static("-"))
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
        let req = session.req_header();
        ctx.route = Route::of(req.uri.path());
        let verdict = self.verdict(
            ctx.route,
            &req.method,
            req.uri.path(),
            &req.headers,
            ctx.client_ip,
        );
        let own = match verdict {
            Verdict::App => return Ok(false),
            Verdict::Ui => self.ui(
                &req.method,
                req.uri.path(),
                &req.headers,
                &request_id_value(ctx),
            ),
            Verdict::Metrics => {
                self.metrics_page(req.headers.get("accept"), &request_id_value(ctx))
            }
            Verdict::Refuse(code, outcome) => {
                ctx.outcome = outcome;
                refusal(code, &request_id_value(ctx))
            }
        };
        respond(session, own).await?;
        Ok(true)
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
            // The in-process app is `front`'s; this front never sees its requests.
            Pool::InProcess => {
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
        let id = request_id_value(ctx);
        let prior = upstream.headers.get("x-forwarded-for");
        for (name, value) in forwarding(prior, ctx.client_ip, &id) {
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
            let _ = respond(session, refusal(code, &request_id_value(ctx))).await;
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
            let id = request_id_value(ctx);
            let id = id.to_str().unwrap_or("-");
            tracing::warn!(request_id = id, error = %e, "proxy: request failed");
        }
        self.metrics
            .request(ctx.outcome.unwrap_or(ctx.route.label()), status);
        if self.cfg.access_log == crate::config::AccessLog::Off {
            return;
        }
        let req = session.req_header();
        let id = request_id_value(ctx);
        self.access_log(&AccessLine {
            client: ctx.client_ip,
            method: &req.method,
            uri: &req.uri,
            version: req.version,
            headers: &req.headers,
            status,
            sent: session.body_bytes_sent(),
            request_id: &id,
            seconds: ctx.started.map_or(0.0, |s| s.elapsed().as_secs_f64()),
            upstream_seconds: ctx.upstream_seconds,
        });
    }
}
