//! Protocol-level rejections (a malformed or oversized request head) come in the error
//! envelope with a code, from the app, the proxy and the two in one process alike, as every other error does.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, start_vm1};
use crate::proxy::start_proxy;

/// Sends raw bytes on a new connection and reads the answer until the server closes it (or
/// the whole body is in); returns the status and the parsed body.
async fn raw(base: &str, request: &[u8]) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            if complete(&answer) {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no complete answer in time: {answer:?}");
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, body)
}

/// Tells whether a buffer holds a whole response with a Content-Length body.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer).to_ascii_lowercase();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}

/// Each malformed request and the status and code it must get.
fn cases() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let get = |extra: &[u8]| {
        let mut r = b"GET /api/v1/coupons HTTP/1.1\r\nhost: x\r\n".to_vec();
        r.extend_from_slice(extra);
        r.extend_from_slice(b"\r\n");
        r
    };
    let mut long_url = b"GET /api/v1/coupons?search=".to_vec();
    long_url.extend(std::iter::repeat_n(b'a', 100_000));
    long_url.extend_from_slice(b" HTTP/1.1\r\nhost: x\r\n\r\n");
    let many: Vec<u8> = (0..200)
        .flat_map(|i| format!("x-h{i}: 1\r\n").into_bytes())
        .collect();
    vec![
        ("a 100 KB URL", long_url, 431, "C014"),
        ("a 9 KB header", get(&[b"x-big: ".as_slice(), &[b'a'; 9000], b"\r\n"].concat()), 431, "C014"),
        ("a 64 KB header", get(&[b"x-big: ".as_slice(), &[b'a'; 65_000], b"\r\n"].concat()), 431, "C014"),
        ("200 headers", get(&many), 431, "C014"),
        (
            "a duplicate Content-Length",
            b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec(),
            400,
            "C001",
        ),
        ("a NUL in a header", get(b"x-a: a\x00b\r\n"), 400, "C001"),
        ("an obs-fold", get(b"x-a: a\r\n b\r\n"), 400, "C001"),
        ("a raw 0xFF in the query", b"GET /api/v1/coupons?search=\xff HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(), 400, "C001"),
        ("not HTTP", b"HELLO\r\n\r\n".to_vec(), 400, "C001"),
    ]
}

async fn assert_every_rejection_is_an_envelope(who: &str, base: &str) {
    for (what, request, status, code) in cases() {
        let (got, body) = raw(base, &request).await;
        assert_eq!(got, status, "{who}, {what}: {body}");
        assert_eq!(body["code"], code, "{who}, {what}: {body}");
        assert_eq!(body["status"], status, "{who}, {what}: {body}");
    }
    let mut fits =
        b"GET /api/v1/coupons HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: ".to_vec();
    fits.extend(std::iter::repeat_n(b'a', 7000));
    fits.extend_from_slice(b"\r\n\r\n");
    let (got, body) = raw(base, &fits).await;
    assert_eq!(
        got, 200,
        "{who}: a 7 KB head is within the 8 KB limit: {body}"
    );
}

#[tokio::test]
async fn the_app_answers_every_protocol_rejection_in_the_envelope() {
    let app = spawn_app().await;
    assert_every_rejection_is_an_envelope("app", &app.base).await;
}

#[tokio::test]
async fn the_proxy_answers_every_protocol_rejection_in_the_envelope() {
    let app = spawn_app().await;
    let upstream = app.base.trim_start_matches("http://");
    let proxy = start_proxy(&format!(
        "upstreams = [\"{upstream}\"]\nmax_header_bytes = 8192\nactuator_allow = []\n"
    ))
    .await;
    assert_every_rejection_is_an_envelope("proxy", &proxy.base).await;
}

#[tokio::test]
async fn proxy_and_app_in_one_process_answer_every_protocol_rejection_in_the_envelope() {
    let app = spawn_app().await;
    let vm1 = start_vm1(&app, "max_header_bytes = 8192\nactuator_allow = []\n", "").await;
    assert_every_rejection_is_an_envelope("proxy+app", &vm1.base).await;
}
