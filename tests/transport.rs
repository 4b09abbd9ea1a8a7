//! Hostile and broken clients at the transport, over raw HTTP/2 and TCP against the real
//! binary: bodies that never finish, readers that never open their window, connections that
//! never speak (at a low open-files limit), streams reset as soon as they are opened.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use servicedesk::proto::v1::ListTicketsRequest;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::codegen::http;

/// A raw HTTP/2 connection to the server; `window` is the stream window it announces.
async fn raw_connection(server: &Server, window: u32) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(server.addr()).await.expect("connect");
    handshake(tcp, window).await.expect("HTTP/2 handshake")
}

/// A raw HTTP/2 connection to the server from the loopback address `source`, unless the
/// server closes it first.
async fn raw_connection_from(
    server: &Server,
    source: [u8; 4],
) -> Option<h2::client::SendRequest<Bytes>> {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind a loopback address");
    let tcp = socket.connect(server.addr()).await.ok()?;
    handshake(tcp, 65_535).await
}

async fn handshake(tcp: TcpStream, window: u32) -> Option<h2::client::SendRequest<Bytes>> {
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .max_concurrent_streams(1000)
        .handshake(tcp)
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(send)
}

/// A gRPC request's headers for `method` with `key`.
fn grpc_request(server: &Server, method: &str, key: &str) -> http::Request<()> {
    grpc_request_presenting(server, method, ("x-api-key", key.to_string()))
}

/// A gRPC request's headers for `method`, presenting a key in the header given.
fn grpc_request_presenting(
    server: &Server,
    method: &str,
    (header, value): (&str, String),
) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{}/{method}", server.addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(header, value)
        .body(())
        .unwrap()
}

/// The `n`th of many ways to present `key` that authenticate the same: either header, the
/// case of `Bearer`, spaces around and inside.
fn spelled(key: &str, n: usize) -> (&'static str, String) {
    let spaces = " ".repeat(1 + n % 64);
    match n % 4 {
        0 => ("x-api-key", key.to_string()),
        1 => ("authorization", format!("Bearer{spaces}{key}")),
        2 => ("authorization", format!("bearer {key}{spaces}")),
        _ => ("authorization", format!("{spaces}BEARER{spaces}{key}")),
    }
}

/// The grpc-status of a response: in its headers (trailers-only) or its trailers.
async fn grpc_status(response: h2::client::ResponseFuture) -> Option<i32> {
    let response = response.await.ok()?;
    let in_headers = response.headers().get("grpc-status").cloned();
    let code = match in_headers {
        Some(code) => code,
        None => {
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.ok()?;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            body.trailers().await.ok()??.get("grpc-status")?.clone()
        }
    };
    code.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn a_client_trickling_its_requests_cannot_take_the_server_from_the_others() {
    let config = "[server]\nmax_concurrent_requests = 64\nmax_requests_per_client = 16\n\
                  request_body_secs = 2\n";
    let server = Server::start_with_config(config).await;
    // One client, two keys, each spelled many ways: still one client to the limit.
    let slow_keys = [
        server.create_key("slowpoke", &["customer_service"]).await,
        server.create_key("slowpoke", &["customer_service"]).await,
    ];
    let mut send = raw_connection(&server, 65_535).await;
    // As many calls as the whole server allows, each announcing a 1 MB message and sending
    // 20 bytes of it, never the rest.
    let mut held = Vec::new();
    let mut responses = Vec::new();
    for n in 0..64 {
        send = send.ready().await.expect("a stream");
        let (response, mut body) = send
            .send_request(
                grpc_request_presenting(
                    &server,
                    "servicedesk.v1.DeskService/HandleInquiry",
                    spelled(&slow_keys[n % 2], n / 2),
                ),
                false,
            )
            .expect("send the headers");
        let mut start = vec![0u8];
        start.extend_from_slice(&(1024u32 * 1024).to_be_bytes());
        start.extend_from_slice(&[0x0a; 20]);
        body.send_data(Bytes::from(start), false)
            .expect("send the start of the message");
        held.push(body);
        responses.push(tokio::spawn(grpc_status(response)));
    }
    // Another client is served meanwhile.
    ok(
        server
            .desk()
            .list_tickets(ListTicketsRequest::default())
            .await,
        "another client's call while one client trickles",
    );
    ask(&mut server.desk(), inquiry("cust_fair", PASSWORD_RESET)).await;
    // The trickling client got its share: the rest of its calls were refused at once, and
    // those it held end at the body deadline.
    let started = Instant::now();
    let mut codes = Vec::new();
    for response in responses {
        let code = tokio::time::timeout(Duration::from_secs(30), response)
            .await
            .expect("every trickled call ends")
            .unwrap();
        codes.push(code);
    }
    let shed = codes.iter().filter(|c| **c == Some(8)).count();
    let timed_out = codes.iter().filter(|c| **c == Some(4)).count();
    assert_eq!(shed, 64 - 16, "refused past its share: {codes:?}");
    assert_eq!(timed_out, 16, "ended at the body deadline: {codes:?}");
    eprintln!(
        "64 trickled calls: {shed} refused at once, {timed_out} ended by the body deadline \
         within {:?}",
        started.elapsed()
    );
    drop(held);
}

#[tokio::test]
async fn watches_whose_reader_never_opens_its_window_are_closed_and_their_memory_freed() {
    let config = "[server]\nstalled_stream_secs = 1\nstalled_connection_secs = 2\n\
                  max_open_streams = 300\n";
    // One jemalloc arena: what the process frees is reused by the next round, whichever thread
    // allocates it, so RSS tells freed memory from kept memory.
    let launch = Launch {
        config_toml: Some(config.into()),
        env: vec![("_RJEM_MALLOC_CONF".into(), "narenas:1".into())],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch).await;
    let mut desk = server.desk();
    for n in 0..60 {
        ask(&mut desk, inquiry(&format!("cust_log_{n}"), PASSWORD_RESET)).await;
    }
    let idle_rss = server.rss_kib();
    let mut after_round = Vec::new();
    for round in 0..4 {
        // A reader that announces a window of 0 and never opens it: not one byte of DATA
        // can reach it.
        let mut send = raw_connection(&server, 0).await;
        let mut pending = Vec::new();
        for _ in 0..250 {
            send = send.ready().await.expect("a stream");
            let (response, mut body) = send
                .send_request(
                    grpc_request(
                        &server,
                        "servicedesk.v1.AdminService/WatchEvents",
                        ADMIN_KEY,
                    ),
                    false,
                )
                .expect("send the headers");
            body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
                .expect("send the request");
            pending.push(response);
        }
        let peak = server.rss_kib();
        // The server gives up on the stalled streams and closes the connection: the client
        // learns of it (its streams fail), and the memory is the server's again.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            send = match send.ready().await {
                Ok(send) => send,
                Err(_) => break,
            };
            assert!(
                Instant::now() < deadline,
                "the server still holds the stalled connection after 60 s (round {round})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(pending);
        // Every stream's place is free again: as many watches as allowed open and read.
        let mut watches = Vec::new();
        for _ in 0..250 {
            let mut admin = server.admin();
            let mut watch = Watch::open("WatchEvents", async move {
                admin
                    .watch_events(servicedesk::proto::v1::WatchEventsRequest::default())
                    .await
            });
            watch.expect_next().await;
            watches.push(watch);
        }
        drop(watches);
        let after = server.rss_kib();
        eprintln!(
            "round {round}: RSS {idle_rss} KiB idle, {peak} KiB as the 250 stalled watches opened, \
             {after} KiB after the server closed them"
        );
        after_round.push(after);
    }
    // A thousand streams ended for stalling are a few lines in the log, not a thousand.
    let log = server.log_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("watches whose clients stopped reading were ended"))
        .count();
    assert!(
        (1..=20).contains(&lines),
        "{lines} lines for 1,000 stalled watches"
    );
    // Freed, not kept: each attack reuses what the ones before held, so the growth levels
    // off. Kept buffers would add hundreds of KiB per stalled stream, every round.
    let last_growth = after_round[3].saturating_sub(after_round[2]);
    assert!(
        last_growth < 20 * 1024,
        "memory grows with each attack: {after_round:?} KiB"
    );
}

#[tokio::test]
async fn silent_connections_are_closed_and_health_answers_at_the_open_files_limit() {
    let launch = Launch {
        config_toml: Some("[server]\nfirst_request_secs = 1\n".into()),
        wrapper: vec!["prlimit".into(), "--nofile=256:256".into()],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch).await;
    // More silent connections than the server has descriptors for.
    let mut silent = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect(server.addr()).await {
            Ok(stream) => silent.push(stream),
            Err(_) => break,
        }
    }
    assert!(silent.len() >= 300, "opened {} connections", silent.len());
    // Health answers, on a new connection, within moments.
    let server_ref = &server;
    poll_until(Duration::from_secs(30), "health answers", || async move {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server_ref.addr()))
                .unwrap()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(2))
                .connect()
                .await
                .ok()?;
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .ok()
    })
    .await;
    // Every silent connection was closed by the server (after its HTTP/2 settings, if it
    // was accepted).
    for (n, stream) in silent.iter_mut().enumerate() {
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buffer = [0u8; 1024];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "silent connection {n} is still open");
    }
    let log = server.log_text();
    assert!(
        log.contains("open-files limit allows fewer connections"),
        "{log}"
    );
}

#[tokio::test]
async fn streams_that_need_no_key_and_idle_connections_never_keep_health_probes_out() {
    // 172 connections (300 files, less the 128 the server keeps in reserve).
    let launch = Launch {
        wrapper: vec!["prlimit".into(), "--nofile=300:300".into()],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch).await;
    // From 20 addresses, a health watch on each of 300 connections (each would keep its
    // connection busy for ever).
    let mut held = Vec::new();
    let mut answers = Vec::new();
    for n in 0..300u32 {
        let Some(send) = raw_connection_from(&server, [127, 0, 1, 10 + (n % 20) as u8]).await
        else {
            continue;
        };
        let Ok(ready) = send.ready().await else {
            continue;
        };
        let mut send = ready;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/grpc.health.v1.Health/Watch",
                server.addr()
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let Ok((response, mut body)) = send.send_request(request, false) else {
            continue;
        };
        let _ = body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true);
        answers.push(tokio::spawn(async move {
            let response = tokio::time::timeout(Duration::from_secs(10), response).await;
            match response {
                Ok(Ok(head)) => match head.headers().get("grpc-status") {
                    Some(code) => code.to_str().unwrap().to_string(),
                    None => "watching".to_string(),
                },
                Ok(Err(e)) => format!("reset: {e}"),
                Err(_) => "no answer".to_string(),
            }
        }));
        held.push((send, body));
    }
    // Health probes on new connections are answered, each within moments.
    for probe in 0..20 {
        let started = Instant::now();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("probe {probe} cannot connect: {e}"));
        let answer = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap_or_else(|e| panic!("probe {probe}: {e}"));
        assert_eq!(answer.into_inner().status, 1, "probe {probe}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for answer in answers {
        *outcomes.entry(answer.await.unwrap()).or_default() += 1;
    }
    eprintln!("300 health watches from 20 addresses: {outcomes:?}");
    // A quarter of the 172 places at most, and at most 16 from one address.
    let watching = outcomes.get("watching").copied().unwrap_or(0);
    assert!(watching <= 43, "{outcomes:?}");
    assert!(watching >= 20, "{outcomes:?}");
    assert!(outcomes.get("8").copied().unwrap_or(0) > 0, "{outcomes:?}");
    drop(held);
}

#[tokio::test]
async fn a_client_resetting_its_streams_at_once_loses_its_connection_not_the_server() {
    let server = Server::start().await;
    let tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let (mut send, connection) = h2::client::Builder::new()
        .max_concurrent_streams(1000)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    // The rapid-reset attack: each call's headers and its cancellation in one breath, so the
    // server starts work that the client never lets it finish.
    let mut sent = 0;
    for _ in 0..10_000 {
        let Ok(ready) = send.ready().await else { break };
        send = ready;
        let Ok((_, mut body)) = send.send_request(
            grpc_request(&server, "servicedesk.v1.DeskService/ListTickets", TEST_KEY),
            false,
        ) else {
            break;
        };
        body.send_reset(h2::Reason::CANCEL);
        sent += 1;
        tokio::task::yield_now().await;
    }
    let ended = tokio::time::timeout(STREAM_TIMEOUT, connection)
        .await
        .expect("the server ends the connection")
        .unwrap();
    // The client may see the GOAWAY or, still writing, the closed socket: either way its
    // connection is gone, and the server says why.
    let error = ended.expect_err("the server closed the connection");
    assert!(sent < 10_000, "the server let {sent} resets through");
    server
        .until_logged(
            "reset pending-accept streams reached limit",
            Duration::from_secs(30),
        )
        .await;
    eprintln!("the connection was closed ({error}) after {sent} reset streams");
    // Everyone else is still served.
    ask(
        &mut server.desk(),
        inquiry("cust_after_reset", PASSWORD_RESET),
    )
    .await;
}

#[tokio::test]
async fn the_health_command_succeeds_on_a_serving_server_and_fails_while_it_drains() {
    let mut server = Server::start().await;
    let addr = server.addr();
    for service in ["", "servicedesk.v1.DeskService"] {
        let serving = health_command(addr, service).await;
        assert!(serving.status.success(), "{service:?}: {serving:?}");
        assert!(serving.output.contains("SERVING"), "{}", serving.output);
    }
    let unknown = health_command(addr, "servicedesk.v1.NoSuchService").await;
    assert!(!unknown.status.success(), "{unknown:?}");
    assert!(
        unknown.output.contains("NotFound") || unknown.output.contains("not found"),
        "{}",
        unknown.output
    );

    // A call whose body never ends keeps the server draining after SIGTERM.
    let mut send = raw_connection(&server, 65_535).await;
    let request = grpc_request(
        &server,
        "servicedesk.v1.DeskService/HandleInquiry",
        TEST_KEY,
    );
    let (_response, _body) = send.send_request(request, false).expect("send the headers");
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.send_sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let draining = health_command(addr, "").await;
    assert!(!draining.status.success(), "while draining: {draining:?}");
    assert!(
        server.exit_within(Duration::ZERO).await.is_none(),
        "the server was still draining when the health command answered"
    );
}

#[tokio::test]
async fn unread_watches_replaying_large_events_hold_little_memory() {
    // The attacker's budget: 2,000 watches from the start of a log of large events, on 10
    // connections whose reader never opens its window.
    const CONNECTIONS: usize = 10;
    const PER_CONNECTION: usize = 200;
    let config = "[server]\nmax_open_streams = 10000\nmax_concurrent_streams = 256\n";
    let server = Server::start_with_config(config).await;
    let mut desk = server.desk();
    let large = format!("I need a refund. {}", "x".repeat(16 * 1024 - 32));
    for n in 0..200 {
        let request = inquiry(&format!("cust_large_{n}"), &large);
        ask(&mut desk, request).await;
    }
    let idle = server.rss_kib();
    let (mut held, mut connections) = (Vec::new(), Vec::new());
    for _ in 0..CONNECTIONS {
        let mut send = raw_connection(&server, 0).await;
        for _ in 0..PER_CONNECTION {
            send = send.ready().await.expect("a stream");
            let (response, mut body) = send
                .send_request(
                    grpc_request(
                        &server,
                        "servicedesk.v1.EscalationService/WatchEscalations",
                        TEST_KEY,
                    ),
                    false,
                )
                .expect("send the headers");
            body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)
                .expect("send the request");
            held.push((response, body));
        }
        connections.push(send);
    }
    // Every stream has had its chance to read the store.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = server.rss_kib();
    eprintln!(
        "{} unread watches of a log of 16 KiB events: RSS {idle} KiB idle, {peak} KiB held",
        CONNECTIONS * PER_CONNECTION
    );
    // The promise: a stream its reader does not take from holds at most one event's worth
    // of the log beyond what HTTP/2 buffers for it, about 40 KiB in all here.
    assert!(
        peak.saturating_sub(idle) < 200 * 1024,
        "RSS {idle} KiB idle, {peak} KiB with the unread watches"
    );
    drop((held, connections));
}

#[tokio::test]
async fn a_body_that_is_no_message_is_the_callers_fault_not_the_servers() {
    let server = Server::start_with(new_root(), &["--metrics-listen", "127.0.0.1:0"], None).await;
    let mut send = raw_connection(&server, 65_535).await;
    send = send.ready().await.expect("a stream");
    let (response, mut body) = send
        .send_request(
            grpc_request(
                &server,
                "servicedesk.v1.DeskService/HandleInquiry",
                TEST_KEY,
            ),
            false,
        )
        .expect("send the headers");
    // A length-prefixed message of bytes no protobuf decoder takes (field 0, wire type 7).
    let mut garbage = vec![0u8, 0, 0, 0, 8];
    garbage.extend_from_slice(&[0x07; 8]);
    body.send_data(Bytes::from(garbage), true)
        .expect("send the message");
    let response = response.await.expect("an answer");
    let code = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    let message = response
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(code.as_deref(), Some("3"), "INVALID_ARGUMENT: {message}");
    assert!(
        message.contains("is%20not%20a%20message") || message.contains("is not a message"),
        "{message}"
    );
}
