//! The gRPC port as a browser meets it, against the real binary over plain HTTP/1.1: the web
//! console's pages by GET, gRPC-Web calls (translated to the same services and key checks), and
//! CORS for the origins the operator names.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP/1.1 answer: status, headers (names lowercased) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole answer.
async fn http1(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        server.addr(),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// The bytes of a chunked HTTP/1.1 body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// The headers of a gRPC-Web call with `key`.
fn web(key: &str) -> [(&str, &str); 3] {
    [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("x-api-key", key),
    ]
}

/// A gRPC-Web message frame of an empty message.
const EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

/// The trailers of a gRPC-Web answer: the frame flagged 0x80 at the end of the body.
fn web_trailers(body: &[u8]) -> String {
    let mut rest = body;
    while rest.len() >= 5 {
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest[0] & 0x80 != 0 {
            return String::from_utf8_lossy(&rest[5..5 + length]).to_string();
        }
        rest = &rest[5 + length..];
    }
    String::new()
}

#[tokio::test]
async fn the_console_is_served_by_get_with_a_strict_content_security_policy() {
    let server = Server::start().await;
    let page = http1(&server, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains("app.js") && html.contains("style.css"),
        "{html}"
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let script = http1(&server, "GET", "/app.js", &[], b"").await;
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.body.len() > 1000);
    let head = http1(&server, "HEAD", "/style.css", &[], b"").await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        http1(&server, "GET", "/nothing", &[], b"").await.status,
        404
    );
    assert_eq!(http1(&server, "POST", "/", &[], b"x").await.status, 405);
    // An OPTIONS that is no browser's preflight (no Origin) is a method the pages do not take.
    let options = http1(&server, "OPTIONS", "/", &[], b"").await;
    assert_eq!(options.status, 405);
    assert_eq!(options.header("access-control-allow-origin"), None);
    // gRPC on HTTP/2 is served as ever on the same port.
    ask(&mut server.desk(), inquiry("cust_web", PASSWORD_RESET)).await;
}

#[tokio::test]
async fn grpc_web_reaches_the_same_services_and_key_checks_and_names_the_caller() {
    let server = Server::start().await;
    let path = "/servicedesk.v1.EscalationService/GetEscalationStats";
    let stats = http1(&server, "POST", path, &web("test-key-123"), EMPTY_MESSAGE).await;
    assert_eq!(stats.status, 200);
    assert_eq!(
        stats.header("content-type"),
        Some("application/grpc-web+proto")
    );
    assert!(
        web_trailers(&stats.body).contains("grpc-status:0"),
        "{:?}",
        stats.body
    );
    // The key's client id, which a console shows the queue of.
    assert_eq!(stats.header("servicedesk-client-id"), Some("test-client"));
    // A wrong key is refused as over gRPC.
    let refused = http1(&server, "POST", path, &web("not-a-key"), EMPTY_MESSAGE).await;
    assert_eq!(refused.header("grpc-status"), Some("16"), "UNAUTHENTICATED");
    // A reviewer key without admin cannot read the desk's status.
    let key = server.create_key("supervisor_1", &["escalation"]).await;
    let denied = http1(
        &server,
        "POST",
        "/servicedesk.v1.AdminService/GetDeskStatus",
        &web(&key),
        EMPTY_MESSAGE,
    )
    .await;
    assert_eq!(denied.header("grpc-status"), Some("7"), "PERMISSION_DENIED");
    let mine = http1(&server, "POST", path, &web(&key), EMPTY_MESSAGE).await;
    assert_eq!(mine.header("servicedesk-client-id"), Some("supervisor_1"));
}

#[tokio::test]
async fn only_the_origins_the_operator_names_may_call_from_their_pages() {
    let server = Server::start_with_config(
        "[server]\ncors_allowed_origins = [\"https://console.example.com\"]\n",
    )
    .await;
    let path = "/servicedesk.v1.EscalationService/GetEscalationStats";
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-api-key,x-grpc-web",
            ),
        ]
    };
    let allowed = http1(
        &server,
        "OPTIONS",
        path,
        &preflight("https://console.example.com"),
        b"",
    )
    .await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://console.example.com")
    );
    let headers = allowed.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("x-api-key"), "{headers}");
    assert!(allowed.header("access-control-allow-credentials").is_none());
    let other = http1(
        &server,
        "OPTIONS",
        path,
        &preflight("https://evil.example"),
        b"",
    )
    .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // The call itself, from the allowed origin, can read the status and the caller's id.
    let call = http1(
        &server,
        "POST",
        path,
        &[
            ("origin", "https://console.example.com"),
            ("content-type", "application/grpc-web+proto"),
            ("x-api-key", "test-key-123"),
        ],
        EMPTY_MESSAGE,
    )
    .await;
    assert_eq!(
        call.header("access-control-allow-origin"),
        Some("https://console.example.com")
    );
    let exposed = call.header("access-control-expose-headers").unwrap();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("servicedesk-client-id"),
        "{exposed}"
    );
}
