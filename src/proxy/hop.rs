//! The in-process hop of `--role proxy+app`: a request for the app is handed to the app's
//! router as a value, with no socket and no second HTTP parse, and its answer is written to
//! the client as the router produces it. What a socket upstream gives the proxy is kept:
//! the forwarding headers and request id, the upstream timeouts (504 C013 when the app has not
//! answered its head in `proxy.read_timeout`, or stalls between body chunks), the body limit,
//! streaming both ways, and the upstream timing. Retries have no meaning here: a hop that
//! cannot fail to connect has nothing to retry.
//!
//! The app's router runs on the task of the client's connection. `crate::server` builds the
//! app on the proxy's runtime, so its database and Redis sockets are served by the same
//! threads and no request crosses a runtime.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderName, TRANSFER_ENCODING};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tower::ServiceExt;

/// The app's router, set once the app has been built.
#[derive(Default)]
pub struct Hop {
    router: OnceLock<axum::Router>,
}

/// What the hop needs from the proxy's settings and the request's context.
pub struct Call<'a> {
    /// The forwarding headers and request id to add (see `handler::forwarding`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request id, also put on the answer.
    pub request_id: HeaderValue,
    /// The app's deadline for its head, and for each body chunk after it.
    pub read_timeout: Duration,
    /// The largest request body the app may receive.
    pub max_body_bytes: u64,
    /// Set to the seconds the app took for its head.
    pub upstream_seconds: &'a mut Option<f64>,
}

/// The request id's header, on the request and on the answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A body chunk on its way to the app, or the client's failure.
type Chunk = std::result::Result<Bytes, std::io::Error>;

impl Hop {
    /// Hands the app's router over; later calls are ignored.
    pub fn set(&self, router: axum::Router) {
        let _ = self.router.set(router);
    }

    /// Sends the session's request to the app and writes the app's answer to the client.
    /// An error before the answer's head is written leaves the answer to `fail_to_proxy`.
    pub async fn serve(&self, session: &mut Session, call: Call<'_>) -> Result<()> {
        let Some(router) = self.router.get() else {
            return Err(Error::explain(
                ErrorType::ConnectRefused,
                "the in-process app is not ready",
            )
            .into_up());
        };
        let has_body = !session.is_body_empty();
        let (tx, body) = match has_body {
            true => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Chunk>();
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|chunk| (chunk, rx))
                });
                (Some(tx), Body::from_stream(stream))
            }
            false => (None, Body::empty()),
        };
        let request = to_request(session, call.headers, body);
        let started = std::time::Instant::now();
        let answer = router.clone().oneshot(request);
        let deadline = tokio::time::sleep(call.read_timeout);
        tokio::pin!(answer, deadline);
        let mut pump = tx.map(|tx| (tx, 0u64));
        let response = loop {
            tokio::select! {
                biased;
                response = &mut answer => break response.unwrap_or_else(|never| match never {}),
                () = &mut deadline => return Err(timed_out("the app did not answer in time")),
                chunk = session.read_request_body(), if pump.is_some() => {
                    let Some((tx, sent)) = pump.as_mut() else { continue };
                    match chunk {
                        Ok(Some(bytes)) => {
                            *sent += bytes.len() as u64;
                            if *sent > call.max_body_bytes {
                                return Err(Error::explain(
                                    ErrorType::HTTPStatus(413),
                                    "request body over proxy.max_body_bytes",
                                ));
                            }
                            // The app may have stopped reading; its answer still counts.
                            let _ = tx.send(Ok(bytes));
                        }
                        Ok(None) => pump = None,
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other("the client's body failed")));
                            return Err(e);
                        }
                    }
                }
            }
        };
        *call.upstream_seconds = Some(started.elapsed().as_secs_f64());
        write_response(session, response, call.request_id, call.read_timeout).await
    }
}

/// The request as the app's router takes it: the client's head plus the proxy's headers.
fn to_request(
    session: &Session,
    extra: Vec<(HeaderName, HeaderValue)>,
    body: Body,
) -> Request<Body> {
    let head = session.req_header();
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.uri.clone();
    *request.version_mut() = head.version;
    let headers = request.headers_mut();
    headers.reserve(head.headers.len() + extra.len());
    for (name, value) in head.headers.iter() {
        headers.append(name.clone(), value.clone());
    }
    for (name, value) in extra {
        headers.insert(name, value);
    }
    request
}

/// Writes the app's answer: its head, then its body frame by frame.
async fn write_response(
    session: &mut Session,
    response: Response<Body>,
    request_id: HeaderValue,
    read_timeout: Duration,
) -> Result<()> {
    let (parts, mut body) = response.into_parts();
    let mut head = ResponseHeader::from(parts);
    head.insert_header(X_REQUEST_ID, request_id)?;
    let framed =
        head.headers.contains_key(CONTENT_LENGTH) || head.headers.contains_key(TRANSFER_ENCODING);
    if !framed {
        // What hyper does on a socket: the length when the body knows it, else chunks.
        match HttpBody::size_hint(&body).exact() {
            Some(len) => head.insert_header(CONTENT_LENGTH, len.to_string())?,
            None => head.insert_header(TRANSFER_ENCODING, "chunked")?,
        }
    }
    let ended = HttpBody::is_end_stream(&body);
    session.write_response_header(Box::new(head), ended).await?;
    if ended {
        return session.write_response_body(None, true).await;
    }
    loop {
        let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => return session.write_response_body(None, true).await,
            Ok(Some(Err(e))) => {
                return Err(
                    Error::because(ErrorType::ReadError, "the app's body failed", e).into_up(),
                );
            }
            Err(_) => return Err(timed_out("the app stalled in its body")),
        };
        // Trailers have no place in an HTTP/1.1 answer without TE: trailers; they are dropped.
        if let Ok(data) = frame.into_data() {
            let end = HttpBody::is_end_stream(&body);
            session.write_response_body(Some(data), end).await?;
            if end {
                return Ok(());
            }
        }
    }
}

/// The app's timeout, as a socket upstream's read timeout (504 C013).
fn timed_out(what: &'static str) -> Box<Error> {
    Error::explain(ErrorType::ReadTimedout, what).into_up()
}
