//! `--role proxy+app`'s front: the client connections of pingora's listening service are
//! served by hyper, and a request for the app goes straight to the app's router, as the app
//! alone serves its own connections. pingora keeps the listener, the zero-downtime upgrade
//! and the drain (`downstream`); the proxy's decisions are `policy`'s, as for remote apps.
//!
//! What a socket upstream behind pingora gave the proxy is kept: the forwarding headers and
//! request id, the app's deadline (504 C013 when it has not answered its head in
//! `proxy.read_timeout`, or stalls as long between body chunks), the body limit (413 C009,
//! announced or not), bounded client reads (`proxy.client_timeout` for a head, an idle
//! keep-alive, and each body chunk the app waits for), streaming both ways, the upstream
//! timing, the request counters and the access log. Retries have no meaning here: the app in
//! this process cannot fail to connect.
//!
//! Why not pingora's HTTP session with the router behind it: per request, pingora's session
//! and the conversion between the two request types cost about 23,000 instructions over
//! what the app alone spends (callgrind, `cargo bench --bench vm1_instructions`), more than
//! nginx's HTTP layer leaves room for.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderValue, REFERER, USER_AGENT};
use http::{Method, Request, Response, Uri, Version};
use http_body_util::Limited;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Notify;
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::config::AccessLog;
use crate::envelope::Code;
use crate::proxy::policy::{
    AccessLine, Own, Proxy, Route, Verdict, X_REQUEST_ID, forwarding, refusal, request_id,
};
use crate::proxy::upstream::Picked;

/// The proxy in front of the app's router.
pub struct Front {
    proxy: Proxy,
    router: OnceLock<axum::Router>,
    /// Set once the listener has closed: idle connections end, busy ones after their answer.
    closing: AtomicBool,
    closed: Notify,
}

impl Front {
    /// The front of `proxy`; requests for the app wait for [`Front::set`].
    pub fn new(proxy: Proxy) -> Self {
        Front {
            proxy,
            router: OnceLock::new(),
            closing: AtomicBool::new(false),
            closed: Notify::new(),
        }
    }

    /// Hands the app's router over; later calls are ignored.
    pub fn set(&self, router: axum::Router) {
        let _ = self.router.set(router);
    }

    /// Resolves once the listener has closed.
    async fn closing(&self) {
        let notified = self.closed.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a close in between still wakes it.
        notified.as_mut().enable();
        if !self.closing.load(Ordering::Acquire) {
            notified.await;
        }
    }

    /// Answers one request.
    async fn answer(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: Option<IpAddr>,
    ) -> Response<Tracked> {
        let started = Instant::now();
        let proxy = &self.proxy;
        proxy.metrics.in_flight(1);
        let id = request_id(req.headers().get(X_REQUEST_ID));
        let route = Route::of(req.uri().path());
        let verdict = proxy.verdict(route, req.method(), req.uri().path(), req.headers(), client);
        let logged = (proxy.cfg.access_log != AccessLog::Off).then(|| Logged::of(&req));
        let mut finish = Finish {
            front: self.clone(),
            label: route.label(),
            status: 0,
            started,
            upstream_seconds: None,
            sent: 0,
            client,
            id: id.clone(),
            logged,
        };
        let (response, deadline) = match verdict {
            Verdict::App => {
                let (response, upstream) = self.to_app(req, client, &id).await;
                finish.upstream_seconds = upstream;
                (response, upstream.map(|_| proxy.cfg.read_timeout))
            }
            Verdict::Ui => {
                let own = proxy.ui(req.method(), req.uri().path(), req.headers(), &id);
                (own_response(own), None)
            }
            Verdict::Metrics => (
                own_response(proxy.metrics_page(req.headers().get("accept"), &id)),
                None,
            ),
            Verdict::Refuse(code, outcome) => {
                finish.label = outcome.unwrap_or(finish.label);
                (own_response(refusal(code, &id)), None)
            }
        };
        finish.status = response.status().as_u16();
        response.map(|body| Tracked {
            body,
            stall: deadline.map(Stall::new),
            finish,
        })
    }

    /// Hands the request to the app's router; its answer, and the seconds the app took for
    /// its head (`None` when the app was not reached or did not answer in time).
    async fn to_app(
        &self,
        req: Request<Incoming>,
        client: Option<IpAddr>,
        id: &HeaderValue,
    ) -> (Response<Body>, Option<f64>) {
        let Some(router) = self.router.get() else {
            return (own_response(refusal(Code::C012, id)), None);
        };
        let cfg = &self.proxy.cfg;
        let (mut parts, incoming) = req.into_parts();
        for (name, value) in forwarding(parts.headers.get("x-forwarded-for"), client, id) {
            parts.headers.insert(name, value);
        }
        let body = match HttpBody::is_end_stream(&incoming) {
            true => Body::empty(),
            false => Body::new(Limited::new(
                ClientBody {
                    incoming,
                    stall: Stall::new(cfg.client_timeout),
                },
                usize::try_from(cfg.max_body_bytes).unwrap_or(usize::MAX),
            )),
        };
        let started = Instant::now();
        let called = router.clone().oneshot(Request::from_parts(parts, body));
        match tokio::time::timeout(cfg.read_timeout, called).await {
            Ok(Ok(mut response)) => {
                let seconds = started.elapsed().as_secs_f64();
                self.proxy
                    .metrics
                    .upstream_time(Some(Picked::InProcess), seconds);
                response.headers_mut().insert(X_REQUEST_ID, id.clone());
                (response, Some(seconds))
            }
            Ok(Err(never)) => match never {},
            Err(_) => {
                tracing::warn!(
                    request_id = id.to_str().unwrap_or("-"),
                    "proxy: the app did not answer in time"
                );
                (own_response(refusal(Code::C013, id)), None)
            }
        }
    }
}

/// An answer of the proxy's own as a response.
fn own_response(own: Own) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() =
        http::StatusCode::from_u16(own.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in own.headers {
        headers.insert(name, value);
    }
    // Also for HEAD, whose body hyper leaves out.
    headers.insert(CONTENT_LENGTH, HeaderValue::from(own.body.len()));
    *response.body_mut() = Body::from(own.body);
    response
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let front = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let answer = front.clone().answer(req, client);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let mut http = http1::Builder::new();
        // hyper's head timer runs only while it waits for a head, so it also ends an idle
        // kept-alive connection, as pingora's keep-alive timeout did. The head guard's own
        // deadline (from accept, or a head's first byte) comes first on a slow head, and
        // counts it.
        http.timer(TokioTimer::new())
            .header_read_timeout(self.proxy.cfg.client_timeout);
        if *shutdown.borrow() || self.closing.load(Ordering::Acquire) {
            http.keep_alive(false);
        }
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            biased;
            _ = conn.as_mut() => return None,
            () = self.closing() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
        None
    }

    /// The listener has closed and the heads on their way are in (`Downstream::cleanup`):
    /// idle connections end now, the others after their current answer.
    async fn cleanup(&self) {
        self.closing.store(true, Ordering::Release);
        self.closed.notify_waiters();
    }
}

/// What the access log needs of a request that goes on to the app.
struct Logged {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Logged {
    fn of(req: &Request<Incoming>) -> Logged {
        let mut headers = HeaderMap::new();
        for name in [REFERER, USER_AGENT] {
            if let Some(value) = req.headers().get(&name) {
                headers.insert(name, value.clone());
            }
        }
        Logged {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers,
        }
    }
}

/// A request's counters and log line, written when its answer has been sent (or dropped).
struct Finish {
    front: Arc<Front>,
    label: &'static str,
    status: u16,
    started: Instant,
    upstream_seconds: Option<f64>,
    sent: usize,
    client: Option<IpAddr>,
    id: HeaderValue,
    logged: Option<Logged>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let proxy = &self.front.proxy;
        proxy.metrics.in_flight(-1);
        proxy.metrics.request(self.label, self.status);
        if let Some(logged) = &self.logged {
            proxy.access_log(&AccessLine {
                client: self.client,
                method: &logged.method,
                uri: &logged.uri,
                version: logged.version,
                headers: &logged.headers,
                status: self.status,
                sent: self.sent,
                request_id: &self.id,
                seconds: self.started.elapsed().as_secs_f64(),
                upstream_seconds: self.upstream_seconds,
            });
        }
    }
}

/// A bound on one side's pauses between body chunks: the clock runs only while the body's
/// reader waits for a chunk, from the moment it starts waiting.
struct Stall {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl Stall {
    fn new(limit: Duration) -> Self {
        Stall {
            limit,
            timer: None,
            waiting: false,
        }
    }

    /// The body had no chunk ready: ready once the pause has lasted `limit`. A body whose
    /// chunks are always ready never makes a timer.
    fn poll_over(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = tokio::time::Instant::now() + self.limit;
        let timer = match (self.timer.as_mut(), self.waiting) {
            (Some(timer), true) => timer,
            (Some(timer), false) => {
                timer.as_mut().reset(deadline);
                timer
            }
            (None, _) => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        timer.as_mut().poll(cx)
    }

    /// A chunk (or the end) came: the next pause starts from zero.
    fn progressed(&mut self) {
        self.waiting = false;
    }
}

/// The answer's body on its way to the client: counts what is sent, bounds the app's pauses
/// between chunks, and finishes the request when it is dropped.
struct Tracked {
    body: Body,
    /// The app's pauses (`None`: the proxy's own answer, always ready).
    stall: Option<Stall>,
    finish: Finish,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => {
                let Some(stall) = this.stall.as_mut() else {
                    return Poll::Pending;
                };
                ready!(stall.poll_over(cx));
                let stalled = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the app stalled in its body",
                );
                Poll::Ready(Some(Err(axum::Error::new(stalled))))
            }
            Poll::Ready(frame) => {
                if let Some(stall) = this.stall.as_mut() {
                    stall.progressed();
                }
                if let Some(Ok(frame)) = &frame {
                    this.finish.sent += frame.data_ref().map_or(0, Bytes::len);
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client's request body on its way to the app: each chunk must come within
/// `proxy.client_timeout` of the app asking for it.
struct ClientBody {
    incoming: Incoming,
    stall: Stall,
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.stall.poll_over(cx));
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client's body stalled",
                ))))
            }
            Poll::Ready(frame) => {
                this.stall.progressed();
                Poll::Ready(frame.map(|f| f.map_err(std::io::Error::other)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::time::Instant;

    use super::*;

    /// A pause counts from when the reader starts waiting, goes on across polls, and starts
    /// again from zero after a chunk, however long nobody waited in between. Paused time.
    #[tokio::test(start_paused = true)]
    async fn a_pause_counts_while_the_reader_waits_and_only_then() {
        let mut stall = Stall::new(Duration::from_secs(5));
        let first = tokio::time::timeout(Duration::from_secs(4), poll_fn(|cx| stall.poll_over(cx)));
        assert!(first.await.is_err(), "over before its limit");
        let waited = Instant::now();
        poll_fn(|cx| stall.poll_over(cx)).await;
        assert_eq!(waited.elapsed(), Duration::from_secs(1), "the wait went on");

        stall.progressed();
        // Nobody waits for 10 s (the client was slow to take the last chunk).
        tokio::time::sleep(Duration::from_secs(10)).await;
        let waited = Instant::now();
        poll_fn(|cx| stall.poll_over(cx)).await;
        assert_eq!(waited.elapsed(), Duration::from_secs(5), "a new pause");
    }
}
