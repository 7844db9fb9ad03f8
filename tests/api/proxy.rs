//! The proxy role (the release of nginx's job): the binary started as `--role proxy` in front
//! of real apps or small upstreams of the test's own (an echo server, a silent one), on
//! loopback. Client addresses other than 127.0.0.1 come from binding 127.0.0.2.

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{promtool_check, scrape, spawn_app};

/// A running proxy process, killed when dropped.
pub struct ProxyProc {
    child: Child,
    pub base: String,
    _config: tempfile_path::TempPath,
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod tempfile_path {
    /// A file removed when dropped.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Starts `fastpick --role proxy` with `[proxy]` settings (listen is added) and waits until it
/// serves the UI.
pub async fn start_proxy(proxy_toml: &str) -> ProxyProc {
    let port = fastpick::local::free_port().expect("port");
    let path = std::env::temp_dir().join(format!("fastpick-proxy-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\naccess_log = \"off\"\nthreads = 1\n{proxy_toml}\n[log]\nlevel = \"warn\"\n"
        ),
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastpick"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FASTPICK_")) {
        cmd.env_remove(key);
    }
    let child = cmd
        .args(["--role", "proxy", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .spawn()
        .expect("proxy starts");
    let proxy = ProxyProc {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _config: tempfile_path::TempPath(path),
    };
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/", proxy.base)).await
            && r.status() == 200
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "proxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy
}

/// An upstream of the test's own: answers every request with 200, naming itself in
/// `x-upstream` and echoing the request head as the body; aborting the task closes the
/// listener and every connection (as a killed app would).
async fn echo_upstream(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            conns.spawn(serve_echo(stream, name));
        }
    });
    (addr, task)
}

async fn serve_echo(mut stream: TcpStream, name: &'static str) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let body_len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + body_len);
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-upstream: {name}\r\ncontent-length: {}\r\n\r\n{head}",
            head.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// An upstream that accepts and reads but never answers.
async fn silent_upstream() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

fn from_ip(ip: &str) -> Client {
    Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn api_and_actuator_reach_the_app_actuator_only_from_allowed_addresses() {
    let app = spawn_app().await;
    let upstream = app.base.trim_start_matches("http://").to_owned();
    let proxy = start_proxy(&format!(
        "upstreams = [\"{upstream}\"]\nactuator_allow = [\"127.0.0.1/32\"]\n"
    ))
    .await;
    let direct = reqwest::get(format!("{}/api/v1/coupons", app.base))
        .await
        .expect("direct");
    let via = reqwest::get(format!("{}/api/v1/coupons", proxy.base))
        .await
        .expect("via proxy");
    assert_eq!(via.status(), 200);
    assert!(via.headers().contains_key("x-request-id"));
    let (direct, via) = (
        direct.json::<Value>().await.expect("json"),
        via.json::<Value>().await.expect("json"),
    );
    assert_eq!(direct, via, "the proxy passes the API through unchanged");
    // Unknown API paths are the app's 404 envelope, not the UI.
    let (status, body) = json(
        reqwest::get(format!("{}/api/v1/nope", proxy.base))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("C007")));
    let allowed = from_ip("127.0.0.1")
        .get(format!("{}/actuator/health", proxy.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(allowed.status(), 200);
    let (status, body) = json(
        from_ip("127.0.0.2")
            .get(format!("{}/actuator/health", proxy.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("C004")));
    let (status, _) = json(
        from_ip("127.0.0.2")
            .get(format!("{}/actuator/proxy/prometheus", proxy.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 403);
    let metrics = reqwest::get(format!("{}/actuator/proxy/prometheus", proxy.base))
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("fastpick_proxy_requests_total{application=\"fastpick-proxy\",route=\"api\",status=\"200\"}"), "{metrics}");
    assert!(
        metrics.contains("route=\"denied\",status=\"403\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "fastpick_proxy_upstream_up{{application=\"fastpick-proxy\",upstream=\"{upstream}\"}} 1"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn proxy_metrics_pass_promtool_and_openmetrics_is_sent_only_when_preferred() {
    let (upstream, _task) = echo_upstream("a").await;
    let proxy = start_proxy(&format!(
        "upstreams = [\"{upstream}\"]\nactuator_allow = [\"127.0.0.1/32\"]\n"
    ))
    .await;
    reqwest::get(format!("{}/api/v1/coupons", proxy.base))
        .await
        .expect("via proxy");
    let client = Client::new();
    let url = format!("{}/actuator/proxy/prometheus", proxy.base);
    for accept in [None, Some("text/plain;version=0.0.4")] {
        let (content_type, text) = scrape(&client, &url, accept).await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        for name in [
            "fastpick_proxy_requests_total{",
            "fastpick_proxy_upstream_seconds_bucket{",
            "fastpick_process_resident_memory_bytes{application=\"fastpick-proxy\"}",
        ] {
            assert!(text.contains(name), "{name} in\n{text}");
        }
        if let Err(report) = promtool_check(&text) {
            panic!("accept {accept:?}: {report}");
        }
    }
    let prometheus_accept =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let (content_type, text) = scrape(&client, &url, Some(prometheus_accept)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test]
async fn forwarding_headers_are_set_and_the_request_id_passes_through() {
    let (upstream, _task) = echo_upstream("a").await;
    let proxy = start_proxy(&format!("upstreams = [\"{upstream}\"]\n")).await;
    let resp = from_ip("127.0.0.2")
        .get(format!("{}/api/echo", proxy.base))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-42")
    );
    let head = resp.text().await.expect("text");
    let host = proxy.base.trim_start_matches("http://");
    assert!(head.contains(&format!("host: {host}")), "{head}");
    assert!(head.contains("x-real-ip: 127.0.0.2"), "{head}");
    assert!(
        head.contains("x-forwarded-for: 203.0.113.9, 127.0.0.2"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: http"), "{head}");
    assert!(head.contains("x-request-id: trace-42"), "{head}");
    // Without one, the proxy makes an id and sends the same to both sides.
    let resp = reqwest::get(format!("{}/api/echo", proxy.base))
        .await
        .expect("sent");
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("generated id");
    assert!(
        resp.text()
            .await
            .expect("text")
            .contains(&format!("x-request-id: {id}"))
    );
}

#[tokio::test]
async fn the_web_ui_is_embedded_with_spa_fallback_caching_and_compression() {
    let (upstream, _task) = echo_upstream("a").await;
    let proxy = start_proxy(&format!("upstreams = [\"{upstream}\"]\n")).await;
    let client = Client::new();
    let index = client
        .get(format!("{}/", proxy.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(index.status(), 200);
    let ctype = index.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let etag = index.headers()["etag"].clone();
    assert!(index.headers().contains_key("last-modified"));
    let html = index.text().await.expect("html");
    // SPA routes get index.html; missing files are 404 in the envelope.
    for route in ["/mypage", "/coupons/19", "/login"] {
        let r = client
            .get(format!("{}{route}", proxy.base))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200, "{route}");
        assert_eq!(r.text().await.expect("text"), html, "{route}");
    }
    let (status, body) = json(
        client
            .get(format!("{}/missing.js", proxy.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("C007")));
    let revalidated = client
        .get(format!("{}/", proxy.base))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(revalidated.status(), 304);
    // Hashed assets: a year of caching; text is compressed when the client accepts it.
    let script = html
        .split("<script type=\"module\" src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html loads a module script");
    let js = client
        .get(format!("{}{script}", proxy.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("sent");
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-encoding"], "gzip");
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("javascript")
    );
    assert!(
        js.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("immutable")
    );
    let gz = js.bytes().await.expect("body");
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
        .expect("gunzip");
    assert!(plain.contains("/api/v1/coupons"), "{plain}");
    let post = client
        .post(format!("{}/", proxy.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(post.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_costs_no_client_errors_and_leaves_the_rotation() {
    let (a, task_a) = echo_upstream("a").await;
    let (b, _task_b) = echo_upstream("b").await;
    let proxy = start_proxy(&format!(
        "upstreams = [\"{a}\", \"{b}\"]\nhealth_check_interval = \"200ms\"\n"
    ))
    .await;
    let client = Client::new();
    let served = |name: &'static str, counts: Arc<[AtomicUsize; 2]>| {
        counts[usize::from(name == "b")].fetch_add(1, Ordering::Relaxed)
    };
    let counts: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut errors = Vec::new();
    for i in 0..400 {
        if i == 100 {
            task_a.abort();
        }
        match client
            .get(format!("{}/api/echo/{i}", proxy.base))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => {
                let name = if r.headers()["x-upstream"] == "a" {
                    "a"
                } else {
                    "b"
                };
                served(name, counts.clone());
            }
            Ok(r) => errors.push(format!("{i}: {}", r.status())),
            Err(e) => errors.push(format!("{i}: {e}")),
        }
    }
    assert!(errors.is_empty(), "client errors: {errors:?}");
    assert!(
        counts[0].load(Ordering::Relaxed) > 0,
        "a served before it died"
    );
    assert!(counts[1].load(Ordering::Relaxed) > 300, "b took over");
    // After the health-check interval the dead upstream is out of the rotation.
    let start = Instant::now();
    loop {
        let metrics = reqwest::get(format!("{}/actuator/proxy/prometheus", proxy.base))
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        if metrics.contains(&format!("upstream=\"{a}\"}} 0")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn dead_or_slow_upstreams_answer_502_or_504_in_the_envelope_quickly() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let proxy = start_proxy(&format!("upstreams = [\"{dead}\"]\n")).await;
    let start = Instant::now();
    let (status, body) = json(
        reqwest::get(format!("{}/api/v1/coupons", proxy.base))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (502, Some("C012")));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    drop(proxy);
    let (silent, _task) = silent_upstream().await;
    let proxy = start_proxy(&format!(
        "upstreams = [\"{silent}\"]\nread_timeout = \"1s\"\n"
    ))
    .await;
    let start = Instant::now();
    let (status, body) = json(
        reqwest::get(format!("{}/api/v1/coupons", proxy.base))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (504, Some("C013")));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn oversized_heads_and_bodies_and_stalled_bodies_are_refused() {
    let (upstream, _task) = echo_upstream("a").await;
    let proxy = start_proxy(&format!(
        "upstreams = [\"{upstream}\"]\nmax_header_bytes = 4096\nmax_body_bytes = 1000\nclient_timeout = \"1s\"\nissue_rate_limit = 2\n"
    ))
    .await;
    let client = Client::new();
    let (status, body) = json(
        client
            .get(format!("{}/api/echo", proxy.base))
            .header("x-big", "a".repeat(5000))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (431, Some("C014")));
    let (status, body) = json(
        client
            .post(format!("{}/api/echo", proxy.base))
            .body(vec![b'x'; 2000])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (413, Some("C009")));
    let ok = client
        .post(format!("{}/api/echo", proxy.base))
        .body(vec![b'x'; 500])
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status(), 200);
    // A client that announces a body and stalls is cut off after client_timeout.
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&addr).await.expect("connect");
    stalled
        .write_all(b"POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        .await
        .expect("write");
    let start = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stalled connection was not closed");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    // The issue endpoint's per-IP limit: 2 per second, then 429 (10 quick requests span at
    // most two one-second windows).
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = client
            .post(format!("{}/api/v1/coupon-issues", proxy.base))
            .body("{}")
            .send()
            .await
            .expect("sent");
        statuses.push(r.status().as_u16());
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((2..=4).contains(&passed), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        10 - passed,
        "{statuses:?}"
    );
}

/// Reads until the proxy closes the connection; how long that took, or None after `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut rest))
        .await
        .ok()
        .map(|_| start.elapsed())
}

/// Sends a GET on a kept-alive connection and reads the whole answer; returns its head.
pub async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\naccept-encoding: identity\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .expect("read");
        assert!(n > 0, "closed before an answer to {path}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .to_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; (head_end + len).saturating_sub(buf.len())];
    stream.read_exact(&mut body).await.expect("body");
    head
}

#[tokio::test]
async fn slow_request_heads_are_cut_off_but_slow_upstreams_are_not() {
    let (silent, _task) = silent_upstream().await;
    let proxy = start_proxy(&format!(
        "upstreams = [\"{silent}\"]\nclient_timeout = \"1s\"\nread_timeout = \"3s\"\n"
    ))
    .await;
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    // Connected but silent: closed after client_timeout (pingora alone waits 60 s).
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    let took = closed_within(&mut idle, Duration::from_secs(8)).await;
    assert!(took.is_some(), "a silent new connection was kept open");
    // A head trickled a byte every 200 ms never completes in time: each read is quick, the
    // whole head is not.
    let mut trickle = TcpStream::connect(&addr).await.expect("connect");
    trickle
        .write_all(b"GET /api/v1/coupons HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .expect("write");
    let dripping = tokio::spawn({
        let (_, mut w) = trickle.into_split();
        async move {
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if w.write_all(b"a").await.is_err() {
                    return true;
                }
            }
            false
        }
    });
    let cut = tokio::time::timeout(Duration::from_secs(8), dripping)
        .await
        .expect("the trickling head was never cut off")
        .expect("writer");
    assert!(cut, "the trickling head was never cut off");
    // Complete heads pass, on a kept-alive connection whose later requests come after a pause;
    // a complete head then waits as long as the upstream needs: the silent upstream gives 504
    // after read_timeout (3 s), well past client_timeout (1 s).
    let mut patient = TcpStream::connect(&addr).await.expect("connect");
    for path in ["/", "/coupons", "/api/v1/coupons"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let start = Instant::now();
        let head = exchange(&mut patient, path).await;
        if path.starts_with("/api/") {
            assert!(head.starts_with("HTTP/1.1 504"), "{head}");
            assert!(
                start.elapsed() >= Duration::from_millis(2900),
                "{:?}",
                start.elapsed()
            );
        } else {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
    }
    let metrics = reqwest::get(format!("{}/actuator/proxy/prometheus", proxy.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let slow: f64 = metrics
        .lines()
        .find(|l| l.starts_with("fastpick_proxy_slow_heads_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("slow heads metric");
    assert!(slow >= 2.0, "{metrics}");
}

/// Daemons started by a test, stopped (SIGINT) when dropped, found by their pid files.
struct Daemons(std::path::PathBuf);

impl Daemons {
    fn pid(&self, file: &str) -> Option<i32> {
        std::fs::read_to_string(self.0.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for file in ["proxy.pid", "proxy.pid.old"] {
            if let Some(pid) = self.pid(file) {
                // SAFETY: kill(2) with a pid read from our own pid file; no memory is involved.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether a process is still alive.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Consecutive upgrades under load in one test (the machine may be busy: none may fail).
const UPGRADES: usize = 20;

#[tokio::test]
async fn upgrades_under_load_hand_the_socket_over_without_a_failed_request() {
    // proxy+app as on VM1, started as systemd's unit does (daemon, runtime directory).
    let (pg_port, db_name) = crate::helpers::fresh_database().await;
    let redis = tokio::task::spawn_blocking(fastpick::local::start_redis)
        .await
        .expect("redis task")
        .expect("redis");
    let port = fastpick::local::free_port().expect("port");
    let run_dir = std::env::temp_dir().join(format!("fastpick-upgrade-{port}"));
    std::fs::create_dir_all(&run_dir).expect("runtime dir");
    let daemons = Daemons(run_dir.clone());
    let config = run_dir.join("fastpick.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\naccess_log = \"off\"\nthreads = 1\n\
             [database]\nhost = \"127.0.0.1\"\nport = {pg_port}\nname = \"{db_name}\"\nusername = \"postgres\"\n\
             [redis]\nhost = \"127.0.0.1\"\nport = {}\n[log]\nlevel = \"warn\"\n",
            redis.port
        ),
    )
    .expect("config");
    let start = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fastpick"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FASTPICK_")) {
            cmd.env_remove(key);
        }
        let status = cmd
            .args(["--role", "proxy+app", "--daemon", "--config"])
            .arg(&config)
            .args(extra)
            .env("FASTPICK_AUTH__SECRET_KEY", crate::helpers::SECRET)
            .env("RUNTIME_DIRECTORY", &run_dir)
            .stdin(Stdio::null())
            .status()
            .expect("fastpick runs");
        // With --daemon the command returns once the background process is forked.
        assert!(status.success(), "{status}");
    };
    start(&[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let old = loop {
        if let Some(pid) = daemons.pid("proxy.pid") {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/api/v1/coupons"))
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(Instant::now() < deadline, "the first process never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Clients on fresh connections throughout the upgrade.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, base) = (stop.clone(), ok.clone(), failed.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let client = Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(format!("{base}/api/v1/coupons")).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut old = old;
    for round in 0..UPGRADES {
        // What `systemctl reload` runs: the new process, then SIGQUIT to the old one.
        start(&["--upgrade"]);
        // SAFETY: kill(2) on the pid from the running process's pid file.
        unsafe { libc::kill(old, libc::SIGQUIT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(old) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the old process did not exit"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let new = daemons.pid("proxy.pid").expect("new pid file");
        assert_ne!(new, old, "round {round}");
        old = new;
    }
    let served_before_exit = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.expect("client task"));
    }
    assert!(alive(old), "the last process is not running");
    eprintln!(
        "upgrades under load: {UPGRADES} upgrades, {} requests served, {} failed",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "{errors:?}");
    assert!(served_before_exit > 50, "{served_before_exit}");
    assert!(
        ok.load(Ordering::Relaxed) > served_before_exit,
        "nothing served after the old process left"
    );
}
