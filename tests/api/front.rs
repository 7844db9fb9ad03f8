//! `--role proxy+app`'s front (`src/proxy/front.rs`): the binary in front of its own app, on
//! the test app's database and Redis. What a socket upstream gave the proxy must still hold:
//! request ids both ways, bodies streamed in and out, the body limit, the app's deadline
//! (504), the upstream timing metric, keep-alive to the client, slow clients cut off, and an
//! access log line per request.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{CouponSpec, spawn_app_with, start_vm1, start_vm1_logged};
use crate::proxy::{closed_within, exchange};

async fn envelope(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A body in chunked transfer coding, `size` bytes a chunk.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// POSTs a chunked JSON body on a connection of its own; the whole answer.
async fn raw(addr: &str, path: &str, body: &[u8]) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("write head");
    conn.write_all(body).await.expect("write body");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one answer off a kept-alive connection: its head, then as many body bytes as its
/// content-length says (none for a HEAD).
async fn read_answer(conn: &mut tokio::net::TcpStream, head_only: bool) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&buf));
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("content-length");
    let mut body = vec![0u8; if head_only { 0 } else { length }];
    tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("read body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_app_in_process_gets_bodies_and_ids_and_answers_in_full() {
    let app = spawn_app_with(|_| {}).await;
    let coupon = app.coupon(CouponSpec::default()).await;
    let vm1 = start_vm1(&app, "max_body_bytes = 2000\n", "").await;
    let client = reqwest::Client::new();

    // The client's request id comes back; without one the proxy makes one.
    let resp = client
        .get(format!("{}/api/v1/coupons/{coupon}", vm1.base))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let (status, body) = envelope(resp).await;
    assert_eq!((status, body["data"]["id"].as_i64()), (200, Some(coupon)));
    let resp = client
        .get(format!("{}/api/v1/coupons", vm1.base))
        .send()
        .await
        .expect("sent");
    let id = resp.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 32, "{id}");
    // A whole page, its length announced, byte for byte what the app alone sends.
    let length: usize = resp.headers()["content-length"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    let page = resp.bytes().await.expect("body");
    assert_eq!(page.len(), length);
    let direct = reqwest::get(format!("{}/api/v1/coupons", app.base))
        .await
        .expect("sent")
        .bytes()
        .await
        .expect("body");
    assert_eq!(page, direct);

    // Bodies reach the app, with a length and in chunks.
    let signup = json!({"email": "hop@test.kr", "password": "password123!", "name": "hop"});
    let (status, body) = envelope(
        client
            .post(format!("{}/api/v1/auth/signup", vm1.base))
            .json(&signup)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let login = serde_json::to_vec(&json!({"email": "hop@test.kr", "password": "password123!"}))
        .expect("json");
    let addr = vm1.base.trim_start_matches("http://").to_owned();
    let answer = raw(&addr, "/api/v1/auth/login", &chunked(&login, 7)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("accessToken"), "{answer}");

    // Over proxy.max_body_bytes: 413, announced or not.
    let (status, body) = envelope(
        client
            .post(format!("{}/api/v1/auth/login", vm1.base))
            .header("content-type", "application/json")
            .body(vec![b' '; 3000])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (413, Some("C009")));
    let answer = raw(&addr, "/api/v1/auth/login", &chunked(&[b' '; 3000], 100)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"C009\""), "{answer}");

    // Keep-alive: three requests one after another on one connection, a HEAD among them.
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let path = format!("/api/v1/coupons/{coupon}");
    for method in ["GET", "HEAD", "GET"] {
        conn.write_all(format!("{method} {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let (head, body) = read_answer(&mut conn, method == "HEAD").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{method}: {head}");
        assert_eq!(
            body.contains("\"S000\""),
            method == "GET",
            "{method}: {body}"
        );
    }

    // The app's time is the proxy's upstream time, labelled in-process.
    let metrics = client
        .get(format!("{}/actuator/proxy/prometheus", vm1.base))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let count = metrics
        .lines()
        .find(|l| {
            l.starts_with("fastpick_proxy_upstream_seconds_count")
                && l.contains("upstream=\"in-process\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(count.is_some_and(|c| c >= 8.0), "{count:?}\n{metrics}");
}

#[tokio::test]
async fn an_app_stuck_on_its_database_answers_504_in_the_envelope_and_recovers() {
    let app = spawn_app_with(|_| {}).await;
    let coupon = app.coupon(CouponSpec::default()).await;
    let vm1 = start_vm1(&app, "read_timeout = \"1s\"\n", "").await;
    let url = format!("{}/api/v1/coupons/{coupon}", vm1.base);
    // A migration-like lock holds every read of the coupon table.
    let mut tx = app.db.begin().await.expect("begin");
    sqlx::query("lock table tb_coupon in access exclusive mode")
        .execute(&mut *tx)
        .await
        .expect("lock");
    let started = Instant::now();
    let (status, body) = envelope(reqwest::get(&url).await.expect("sent")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (504, Some("C013")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    tx.rollback().await.expect("unlock");
    let (status, _) = envelope(reqwest::get(&url).await.expect("sent")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_the_proxys_own_answers_are_served() {
    let app = spawn_app_with(|_| {}).await;
    let vm1 = start_vm1(&app, "client_timeout = \"1s\"\n", "").await;
    let addr = vm1.base.trim_start_matches("http://").to_owned();

    // The proxy's own answers: the storefront, its metrics, a denied or malformed request.
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    for path in ["/", "/coupons", "/actuator/proxy/prometheus"] {
        let head = exchange(&mut conn, path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    }
    // Idle after an answer: closed after client_timeout, as pingora's keep-alive timeout did.
    let took = closed_within(&mut conn, Duration::from_secs(8)).await;
    assert!(
        took.is_some(),
        "an idle kept-alive connection was kept open"
    );
    let mut malformed = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    malformed
        .write_all(b"GET /api/v1/coupons HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), malformed.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"C001\""), "{answer}");

    // A head trickled a byte every 200 ms is cut off.
    let mut trickle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
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

    // A body that stops half-way does not hold the app: the request ends within the timeout.
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stalled
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\":")
        .await
        .expect("write");
    let took = closed_within(&mut stalled, Duration::from_secs(8)).await;
    assert!(took.is_some(), "a stalled body was waited for");

    let metrics = reqwest::get(format!("{}/actuator/proxy/prometheus", vm1.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let counted = |name: &str, label: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert!(
        counted("fastpick_proxy_slow_heads_total", "") >= 1.0,
        "{metrics}"
    );
    let ui = counted(
        "fastpick_proxy_requests_total",
        "route=\"ui\",status=\"200\"",
    );
    assert!(ui >= 2.0, "{metrics}");
}

#[tokio::test]
async fn the_access_log_has_a_line_per_request_with_its_status_bytes_and_id() {
    let app = spawn_app_with(|_| {}).await;
    let coupon = app.coupon(CouponSpec::default()).await;
    let vm1 = start_vm1_logged(&app, "actuator_allow = []\n", "json").await;
    let client = reqwest::Client::new();
    // Each answer: its request id, path, status, body length and whether the app gave it.
    let mut answers = Vec::new();
    for (id, path, from_app) in [
        ("log-api", format!("/api/v1/coupons/{coupon}"), true),
        ("log-ui", "/coupons".to_owned(), false),
        ("log-denied", "/actuator/health".to_owned(), false),
    ] {
        let resp = client
            .get(format!("{}{path}", vm1.base))
            .header("x-request-id", id)
            .header("user-agent", "access-log-test")
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        let length = resp.bytes().await.expect("body").len();
        answers.push((id, path, status, length, from_app));
    }
    assert_eq!(
        answers.iter().map(|a| a.2).collect::<Vec<_>>(),
        [200, 200, 403]
    );

    // A line is written once its answer's body has gone out: look until all three are there.
    let lines = |text: &str| -> Vec<Value> {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "fastpick::access")
            .collect()
    };
    let started = Instant::now();
    let logged = loop {
        let text = std::fs::read_to_string(&vm1.log).unwrap_or_default();
        let logged = lines(&text);
        if logged.len() >= answers.len() || started.elapsed() > Duration::from_secs(10) {
            break logged;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (id, path, status, length, from_app) in answers {
        let line = logged
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id} in {logged:?}"));
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["uri"], path.as_str(), "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["bytes"], length, "{id}: the body's bytes: {line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_eq!(line["user_agent"], "access-log-test", "{line}");
        let upstream = line["upstream_seconds"].as_str().expect("a string");
        assert_eq!(
            upstream.parse::<f64>().is_ok(),
            from_app,
            "{id}: the app's time only when the app answered: {line}"
        );
    }
}
