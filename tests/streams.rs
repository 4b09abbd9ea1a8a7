//! Resumable streams: a watch resumed from any sequence, across a restart too, delivers every
//! event exactly once and in order; a subscriber that falls behind the live feed catches up
//! from the store; one that stops reading is closed with an error that says where to resume;
//! and retention answers OUT_OF_RANGE, naming the oldest sequence still kept.

mod common;

use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{DeskEvent, WatchEventsRequest, WatchTicketRequest};
use tonic::Code;
use tonic_types::StatusExt;

fn watch_from(server: &Server, after_sequence: u64) -> Watch<DeskEvent> {
    let mut admin = server.admin();
    Watch::open("WatchEvents", async move {
        admin
            .watch_events(WatchEventsRequest {
                after_sequence,
                kinds: Vec::new(),
            })
            .await
    })
}

/// Sequences a watch from `after` delivers up to and including `through`.
async fn sequences(server: &Server, after: u64, through: u64) -> Vec<u64> {
    if after >= through {
        return Vec::new();
    }
    let mut watch = watch_from(server, after);
    watch
        .until(|e| e.sequence >= through)
        .await
        .iter()
        .map(|e| e.sequence)
        .collect()
}

async fn some_traffic(server: &Server, customers: usize, tag: &str) {
    traffic(server, customers, tag, 0).await
}

/// Inquiries, a third of them refunds (reviews), each padded with `padding` bytes of text.
async fn traffic(server: &Server, customers: usize, tag: &str, padding: usize) {
    let pad = " Thank you.".repeat(padding / 11);
    let mut calls = Vec::new();
    for n in 0..customers {
        let mut desk = server.desk();
        let mut request = if n % 3 == 0 {
            refund_request(&format!("cust_{tag}_{n}"))
        } else {
            inquiry(&format!("cust_{tag}_{n}"), PASSWORD_RESET)
        };
        request.inquiry.push_str(&pad);
        calls.push(tokio::spawn(async move { ask(&mut desk, request).await }));
    }
    for call in calls {
        call.await.unwrap();
    }
}

#[tokio::test]
async fn a_watch_resumed_from_any_sequence_gets_exactly_the_rest_even_across_a_restart() {
    let server = Server::start().await;
    some_traffic(&server, 12, "before").await;
    let first_head = head(&server).await;
    let everything: Vec<u64> = (1..=first_head).collect();
    assert_eq!(sequences(&server, 0, first_head).await, everything);
    for after in [1, 2, first_head / 3, first_head / 2, first_head - 1] {
        let expected: Vec<u64> = (after + 1..=first_head).collect();
        assert_eq!(
            sequences(&server, after, first_head).await,
            expected,
            "resumed after {after}"
        );
    }

    let root = server.terminate().await;
    let server = Server::start_with(root, &[], None).await;
    some_traffic(&server, 6, "after").await;
    let second_head = head(&server).await;
    assert!(second_head > first_head);
    // The log goes on where it stopped: one sequence, no gap, no repeat at the restart.
    let expected: Vec<u64> = (first_head - 2..=second_head).skip(1).collect();
    assert_eq!(
        sequences(&server, first_head - 2, second_head).await,
        expected
    );
}

#[tokio::test]
async fn a_subscriber_behind_the_live_feed_catches_up_from_the_store() {
    // A live buffer of 8 events: the watchers below fall behind it at once.
    let server = Server::start_with_config("[server]\nlive_event_buffer = 8\n").await;
    let start = head(&server).await;
    let mut watches: Vec<_> = (0..3).map(|_| watch_from(&server, start)).collect();
    // Opened and replayed (nothing yet); now a burst far larger than the live buffer.
    some_traffic(&server, 60, "burst").await;
    let end = head(&server).await;
    assert!(end - start > 100, "the burst wrote {} events", end - start);
    let expected: Vec<u64> = (start + 1..=end).collect();
    for (i, watch) in watches.iter_mut().enumerate() {
        let got: Vec<u64> = watch
            .until(|e| e.sequence >= end)
            .await
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(got, expected, "watch {i}: every event, once, in order");
    }
    // Three watches fell behind (each at least once) within seconds: the first lag is
    // reported at once, the others counted towards the next line, not logged one by one.
    let log = server.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("watches fell behind the live events and catch up from the store"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for every lag: {log}");
    assert!(lines[0].contains("watches=1"), "{}", lines[0]);
}

#[tokio::test]
async fn large_events_past_the_live_byte_budget_are_read_back_from_the_store() {
    // 64 KiB of live events: each event below carries a 15 KiB inquiry, so the feed keeps
    // one or two of them and the watchers read the rest back from the store.
    let server = Server::start_with_config("[server]\nlive_event_bytes = 65536\n").await;
    let start = head(&server).await;
    let mut watches: Vec<_> = (0..3).map(|_| watch_from(&server, start)).collect();
    traffic(&server, 30, "large", 15 * 1024).await;
    let end = head(&server).await;
    let expected: Vec<u64> = (start + 1..=end).collect();
    for (i, watch) in watches.iter_mut().enumerate() {
        let got = watch.until(|e| e.sequence >= end).await;
        let got: Vec<u64> = got.iter().map(|e| e.sequence).collect();
        assert_eq!(got, expected, "watch {i}: every event, once, in order");
    }
    // They did go to the store: the feed had let the events go.
    server
        .until_logged(
            "watches fell behind the live events and catch up from the store",
            Duration::from_secs(10),
        )
        .await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_with_where_to_resume() {
    let server = Server::start_with_config("[server]\nstalled_stream_secs = 1\n").await;
    let start = head(&server).await;
    // A raw stream nobody reads: the server's buffers for it fill up.
    let mut admin = server.admin();
    let mut stream = admin
        .watch_events(WatchEventsRequest {
            after_sequence: start,
            kinds: Vec::new(),
        })
        .await
        .expect("WatchEvents")
        .into_inner();
    // Large events (each carries its ticket, with a 15 KiB inquiry): tens of MiB, far more
    // than the connection's flow-control window and the stream's buffer hold.
    traffic(&server, 200, "stall", 15 * 1024).await;
    let end = head(&server).await;
    // Until the server gave up on the stream (its log says so), not for a guessed time.
    server
        .until_logged(
            "watches whose clients stopped reading were ended",
            Duration::from_secs(60),
        )
        .await;

    // Reading now: what was buffered, then the error.
    let mut seen = Vec::new();
    let status = loop {
        match tokio::time::timeout(STREAM_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(event))) => seen.push(event.sequence),
            Ok(Ok(None)) => panic!("the stream ended cleanly after {} events", seen.len()),
            Ok(Err(status)) => break status,
            Err(_) => panic!("neither events nor an error after {} events", seen.len()),
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "STREAM_STALLED");
    let resume: u64 = info.metadata["resume_after_sequence"].parse().unwrap();
    assert!(
        status
            .message()
            .contains(&format!("after_sequence {resume}")),
        "{}",
        status.message()
    );
    assert!(seen.len() < (end - start) as usize, "it was cut short");
    let expected_so_far: Vec<u64> = (start + 1..=start + seen.len() as u64).collect();
    assert_eq!(seen, expected_so_far);
    assert_eq!(resume, *seen.last().unwrap());

    // Resuming where it says gives the rest, exactly.
    let rest = sequences(&server, resume, end).await;
    let expected: Vec<u64> = (resume + 1..=end).collect();
    assert_eq!(rest, expected);
}

#[tokio::test]
async fn retention_compacts_old_events_and_says_what_is_left() {
    let server = Server::start_with_config("[desk]\nevent_retention_secs = 1\n").await;
    let old = ask(&mut server.desk(), inquiry("cust_old", PASSWORD_RESET))
        .await
        .ticket
        .unwrap();
    let first_head = head(&server).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ask(&mut server.desk(), inquiry("cust_new", PASSWORD_RESET)).await;
    let server_ref = &server;
    // Compaction runs every 250 ms with a 1 s window: wait until it took the old ticket.
    // Resuming after sequence 1 asks for events that are gone.
    let oldest = poll_until(
        Duration::from_secs(10),
        "old events compacted",
        || async move {
            let mut watch = watch_from(server_ref, 1);
            let status = match watch.next_result_within(STREAM_TIMEOUT).await {
                Some(Err(status)) => status,
                _ => return None,
            };
            assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
            let oldest: u64 = status
                .message()
                .split("oldest sequence still available is ")
                .nth(1)
                .and_then(|rest| rest.split(';').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "the message names the oldest sequence: {}",
                        status.message()
                    )
                });
            (oldest > first_head).then_some(oldest)
        },
    )
    .await;

    // From the oldest kept on, the log is there; 0 means "all that is kept".
    let end = head(&server).await;
    let expected: Vec<u64> = (oldest..=end).collect();
    assert_eq!(sequences(&server, oldest - 1, end).await, expected);
    let from_zero = sequences(&server, 0, end).await;
    assert!(
        from_zero.first().is_some_and(|first| *first >= oldest) && from_zero.last() == Some(&end),
        "0 replays the retained log: {:?}..{:?}",
        from_zero.first(),
        from_zero.last()
    );

    // The old ticket's own history is gone too; the ticket itself is not.
    let mut desk = server.desk();
    let id = old.ticket_id.clone();
    let mut watch = Watch::open("WatchTicket of a compacted ticket", async move {
        desk.watch_ticket(WatchTicketRequest {
            ticket_id: id,
            after_sequence: 0,
        })
        .await
    });
    match watch.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => assert_eq!(status.code(), Code::OutOfRange),
        other => panic!("expected OUT_OF_RANGE, got {other:?}"),
    }
    ok(
        server
            .desk()
            .get_ticket(servicedesk::proto::v1::GetTicketRequest {
                ticket_id: old.ticket_id,
            })
            .await,
        "GetTicket of a compacted ticket",
    );
}

#[tokio::test]
async fn a_watch_resumed_past_the_end_of_the_log_is_told_so_at_once() {
    let server = Server::start().await;
    ask(&mut server.desk(), inquiry("cust_head", PASSWORD_RESET)).await;
    let head = head(&server).await;
    // As a console resuming against a store that was replaced would ask.
    let mut past = watch_from(&server, head + 1000);
    match past.next_result_within(STREAM_TIMEOUT).await {
        Some(Err(status)) => {
            assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
            assert!(
                status.message().contains(&head.to_string()),
                "it names the head of the log: {status:?}"
            );
        }
        other => panic!("expected OUT_OF_RANGE at once, got {other:?}"),
    }
    // At the head exactly it is a live watch: the next event arrives.
    let mut live = watch_from(&server, head);
    ask(&mut server.desk(), inquiry("cust_head", PASSWORD_RESET)).await;
    let next = live.expect_next().await;
    assert_eq!(next.sequence, head + 1);
}
