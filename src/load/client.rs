//! A lean HTTP/1.1 client for the load tool: one keep-alive connection per virtual user,
//! reconnecting after errors, as k6 does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::load::clock::{Clocked, Marks, Phases};

/// Where requests go: a resolved address plus the Host header and path prefix.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub prefix: String,
}

impl Target {
    /// Parses `http://host:port[/prefix]` and resolves the host once.
    pub async fn parse(base_url: &str) -> anyhow::Result<Target> {
        let uri: hyper::Uri = base_url
            .parse()
            .with_context(|| format!("invalid --base-url '{base_url}'"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--base-url must start with http:// (got '{base_url}')");
        }
        let host = uri.host().context("--base-url has no host")?.to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("failed to resolve {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        Ok(Target {
            addr,
            host: if port == 80 {
                host
            } else {
                format!("{host}:{port}")
            },
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// What one request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer: status and body.
    Http(u16, Bytes),
    /// No answer within the timeout.
    Timeout,
    /// Connecting, sending or reading failed.
    Error(String),
}

/// One request's answer and k6's timings of it.
#[derive(Debug, Clone)]
pub struct Timed {
    pub outcome: Outcome,
    /// k6's http_req_duration: sending, waiting and receiving, without connecting; with no
    /// answer, the time until the request gave up.
    pub duration: Duration,
    /// k6's http_req_connecting: the TCP connect this request opened (zero when its
    /// connection was open already).
    pub connecting: Duration,
    /// k6's blocked, sending, waiting and receiving times and the bytes each way (zero
    /// when nothing was written).
    pub phases: Phases,
}

/// One virtual user's connection.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The open connection's socket marks.
    marks: Option<Arc<Marks>>,
}

impl Conn {
    /// Makes a user; it connects on first use (or now, with [`Conn::connect`]).
    pub fn new(target: Target) -> Self {
        Conn {
            target,
            sender: None,
            marks: None,
        }
    }

    /// Opens the connection now.
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        self.marks = None;
        let stream = TcpStream::connect(self.target.addr).await?;
        stream.set_nodelay(true)?;
        let marks = Marks::new();
        let io = TokioIo::new(Clocked::new(stream, marks.clone()));
        self.marks = Some(marks);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it.
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole answer; a failed connection is reopened next time.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Outcome {
        self.send_timed(method, path, token, body, timeout)
            .await
            .outcome
    }

    /// Sends one request as [`Conn::send`] does and times it as k6 does: connecting apart
    /// from the request. The timeout covers both, as k6's does.
    pub async fn send_timed(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Timed {
        let start = Instant::now();
        let mut connecting = Duration::ZERO;
        let mut sent = start;
        let mut bytes = (0, 0);
        let attempt = async {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await?;
                connecting = start.elapsed();
                sent = Instant::now();
            }
            if let Some(marks) = &self.marks {
                bytes = marks.start();
            }
            self.exchange(method, path, token, body).await
        };
        let result = tokio::time::timeout(timeout, attempt).await;
        let end = Instant::now();
        let phases = self
            .marks
            .as_ref()
            .and_then(|m| m.phases(start, end, bytes))
            .unwrap_or_default();
        // As k6: sending + waiting + receiving; with nothing written, from the connection.
        let duration = if phases.bytes_sent > 0 {
            phases.sending + phases.waiting + phases.receiving
        } else {
            end.saturating_duration_since(sent)
        };
        let outcome = match result {
            Ok(Ok((status, body))) => Outcome::Http(status, body),
            Ok(Err(e)) => {
                self.sender = None;
                Outcome::Error(e.to_string())
            }
            Err(_) => {
                self.sender = None;
                Outcome::Timeout
            }
        };
        Timed {
            outcome,
            duration,
            connecting,
            phases,
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let sender = self.sender.as_mut().context("not connected")?;
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.target.prefix))
            .header(hyper::header::HOST, &self.target.host)
            .header(hyper::header::USER_AGENT, "fastpick-load");
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let has_body = body.is_some();
        if has_body {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}
