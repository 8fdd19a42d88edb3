//! The connection level, spoken with raw sockets: bodies that trickle in
//! (`TENANTRY_BODY_TIMEOUT`) and requests the HTTP/1 codec refuses before any of tenantry runs.
use crate::helpers::{spawn_with, TestApp, ADMIN};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the peer closes the connection or `within` passes; the bytes, and whether it
/// closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

fn head_of(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_that_trickles_past_the_body_timeout_gets_408_and_the_connection_is_closed() {
    let app = spawn_with(&[("TENANTRY_BODY_TIMEOUT", "1s")]).await;
    let mut s = connect(&app).await;
    s.write_all(head_of("/api/keys", 1000).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    // One byte every 200 ms: the 1,000 bytes would take 200 s.
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    writer.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""error":"request_timeout""#), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id:"),
        "{text}"
    );
    assert!(closed, "the connection stays open: {text}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_body_sent_slowly_but_within_the_timeout_is_served() {
    let app = spawn_with(&[("TENANTRY_BODY_TIMEOUT", "3s")]).await;
    let body = br#"{"name": "slow", "role": "member"}"#;
    let mut s = connect(&app).await;
    s.write_all(head_of("/api/tenant/default/keys", body.len()).as_bytes())
        .await
        .unwrap();
    for chunk in body.chunks(8) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(chunk).await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
}

#[tokio::test]
async fn a_body_nobody_reads_does_not_hold_the_connection() {
    let app = spawn_with(&[("TENANTRY_BODY_TIMEOUT", "30s")]).await;
    let mut s = connect(&app).await;
    // A wrong token is refused before the body is read; the body's rest is not waited for.
    let head = head_of("/api/keys", 1000).replace(ADMIN, "tk_wrong");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"{").await.unwrap();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(closed, "{text}");
}

/// What the framework does not let tenantry answer (docs/OPERATIONS.md, "Requests refused
/// before tenantry sees them"): actix-http's HTTP/1 codec answers a head it cannot parse or
/// that overflows its buffer itself, with an empty body and no `X-Request-Id`, and closes the
/// connection. This pins that behaviour, so a framework upgrade that changes it is noticed.
#[tokio::test]
async fn requests_the_codec_refuses_get_its_bare_answer_and_a_closed_connection() {
    let app = spawn_with(&[]).await;
    let long_uri = format!(
        "GET /api/features?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(78_000)
    );
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1 << 20)
    );
    let nul_header = "GET /health HTTP/1.1\r\nHost: t\r\nX-Bad: a\0b\r\n\r\n".to_string();
    for (name, request, status) in [
        ("78 KB URI", long_uri, "400"),
        ("1 MiB header", huge_header, "431"),
        ("NUL in a header", nul_header, "400"),
    ] {
        let mut s = connect(&app).await;
        // The server may stop reading (and close) before all of a huge request is written.
        let _ = s.write_all(request.as_bytes()).await;
        let (text, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {text}"
        );
        assert!(closed, "{name}: connection left open");
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("content-length: 0"), "{name}: {text}");
        assert!(!lower.contains("x-request-id"), "{name}: {text}");
    }
    // Just inside the codec's limits, tenantry answers, in the contract's form.
    let r = app
        .get(&format!("/api/nope?{}", "a".repeat(16_000)), ADMIN)
        .await;
    r.assert_error(404, "not_found");
    assert!(r.header("x-request-id").is_some());
}
