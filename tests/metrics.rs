//! Prometheus metrics against the real binary (`--metrics-listen`): after a known sequence of
//! calls, a scrape of `/metrics` shows the exact counts per method and code under
//! go-grpc-middleware's names, and the desk's gauges say what `GetDeskStatus` says.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{
    AgentAvailability, GetDeskStatusRequest, GetEscalationRequest, GetTicketRequest,
    WatchTicketRequest,
};
use tonic::Code;

/// The samples of a scrape: metric name and labels to value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("a label");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            samples.push((name.to_string(), labels, value.parse().expect("a value")));
        }
        Scrape(samples)
    }

    /// The values of the samples of `name` whose labels include `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = f64> + 'a {
        self.0
            .iter()
            .filter(move |(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    /// The value of the one sample of `name` whose labels include `labels`; 0 when none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self.matching(name, labels).collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} samples",
            found.len()
        );
        found.first().copied().unwrap_or(0.0)
    }

    /// The sum of every sample of `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).sum()
    }

    fn call(&self, name: &str, method: &str) -> f64 {
        self.value(name, &[("grpc_method", method)])
    }

    fn handled(&self, method: &str, code: &str) -> f64 {
        self.value(
            "grpc_server_handled_total",
            &[("grpc_method", method), ("grpc_code", code)],
        )
    }
}

/// Scrapes `/metrics` at `addr` with a plain HTTP/1.1 request.
async fn scrape(addr: &str) -> Scrape {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("content-type: text/plain"),
        "{head}"
    );
    Scrape::parse(body)
}

/// The metrics address the server logged.
async fn metrics_addr(server: &Server) -> String {
    server
        .until_logged("serving metrics at /metrics", Duration::from_secs(10))
        .await;
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("serving metrics at /metrics"))
        .unwrap();
    line.split("address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address in the log line")
        .to_string()
}

#[tokio::test]
async fn a_scrape_counts_every_call_by_method_and_code_and_shows_the_desk() {
    let server = Server::start_with(new_root(), &["--metrics-listen", "127.0.0.1:0"], None).await;
    let addr = metrics_addr(&server).await;
    let mut desk = server.desk();
    // Three answered inquiries, one refused, and a review pending.
    let mut tickets = Vec::new();
    for n in 0..3 {
        let answer = ask(&mut desk, inquiry(&format!("cust_m_{n}"), PASSWORD_RESET)).await;
        tickets.push(answer.ticket.unwrap());
    }
    expect_code(
        desk.handle_inquiry(inquiry("cust_m_bad", "")).await,
        Code::InvalidArgument,
        "an empty inquiry",
    );
    let review = create_refund_escalation(&mut desk, "cust_m_review").await;
    // Two reads found, one not found, one with a wrong key.
    for ticket in &tickets[..2] {
        ok(
            desk.get_ticket(GetTicketRequest {
                ticket_id: ticket.ticket_id.clone(),
            })
            .await,
            "GetTicket",
        );
    }
    expect_code(
        desk.get_ticket(GetTicketRequest {
            ticket_id: "tkt_0000000000000000".into(),
        })
        .await,
        Code::NotFound,
        "a ticket that does not exist",
    );
    expect_code(
        server
            .desk_as("not-a-key")
            .get_ticket(GetTicketRequest {
                ticket_id: tickets[0].ticket_id.clone(),
            })
            .await,
        Code::Unauthenticated,
        "a wrong key",
    );
    // A watch of a settled ticket: its events, then the end.
    let mut watch = desk
        .watch_ticket(WatchTicketRequest {
            ticket_id: tickets[0].ticket_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = 0.0;
    while watch.message().await.unwrap().is_some() {
        events += 1.0;
    }
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );

    let m = scrape(&addr).await;
    assert_eq!(m.call("grpc_server_started_total", "HandleInquiry"), 5.0);
    assert_eq!(m.handled("HandleInquiry", "OK"), 4.0);
    assert_eq!(m.handled("HandleInquiry", "InvalidArgument"), 1.0);
    assert_eq!(
        m.call("grpc_server_msg_received_total", "HandleInquiry"),
        5.0
    );
    assert_eq!(m.call("grpc_server_msg_sent_total", "HandleInquiry"), 4.0);
    assert_eq!(
        m.call("grpc_server_handling_seconds_count", "HandleInquiry"),
        5.0
    );
    assert_eq!(m.call("grpc_server_started_total", "GetTicket"), 4.0);
    assert_eq!(m.handled("GetTicket", "OK"), 2.0);
    assert_eq!(m.handled("GetTicket", "NotFound"), 1.0);
    assert_eq!(m.handled("GetTicket", "Unauthenticated"), 1.0);
    assert_eq!(
        m.value(
            "grpc_server_handled_total",
            &[
                ("grpc_method", "WatchTicket"),
                ("grpc_type", "server_stream"),
                ("grpc_code", "OK")
            ]
        ),
        1.0
    );
    assert!(events >= 2.0);
    assert_eq!(m.call("grpc_server_msg_sent_total", "WatchTicket"), events);
    // The desk's gauges say what its status says.
    assert_eq!(m.value("servicedesk_leading", &[]), 1.0);
    assert_eq!(
        m.value("servicedesk_open_tickets", &[]),
        status.open_tickets as f64
    );
    assert_eq!(
        m.value("servicedesk_queued_tickets", &[]),
        status.queued_tickets as f64
    );
    let reviews = status.escalation_stats.as_ref().unwrap();
    let pending = m.sum("servicedesk_pending_reviews", &[]);
    assert_eq!(pending, reviews.active as f64);
    assert_eq!(pending, 1.0);
    // The pending review counts under its own priority, as assigned or not.
    let escalation = ok(
        server
            .escalations()
            .get_escalation(GetEscalationRequest {
                escalation_id: review.escalation_id.clone(),
            })
            .await,
        "GetEscalation",
    );
    let priority = format!("{:?}", escalation.priority()).to_lowercase();
    let assigned = if escalation.assigned_reviewer_id.is_empty() {
        "false"
    } else {
        "true"
    };
    assert_eq!(
        m.value(
            "servicedesk_pending_reviews",
            &[("priority", &priority), ("assigned", assigned)]
        ),
        1.0,
        "{priority}, assigned {assigned}"
    );
    // Open tickets by status add up to the open tickets: here the one awaiting review.
    assert_eq!(
        m.sum("servicedesk_tickets", &[]),
        status.open_tickets as f64
    );
    assert_eq!(
        m.value("servicedesk_tickets", &[("status", "awaiting_review")]),
        1.0
    );
    assert_eq!(m.value("servicedesk_tickets", &[("status", "queued")]), 0.0);
    assert_eq!(m.value("servicedesk_queue_oldest_seconds", &[]), 0.0);
    // Nothing compacted: the log starts at its first event.
    assert_eq!(m.value("servicedesk_event_log_oldest", &[]), 1.0);
    // Every event the watch handed over was measured for how far behind it was.
    assert_eq!(m.value("servicedesk_watch_lag_events_count", &[]), events);
    // The first ticket's events were followed by the other tickets' before the watch began.
    assert!(m.value("servicedesk_watch_lag_events_sum", &[]) >= events);
    for tier in &status.tiers {
        let load: u32 = tier.agents.iter().map(|a| a.load).sum();
        assert_eq!(
            m.value("servicedesk_agent_load", &[("tier", &tier.name)]),
            f64::from(load),
            "tier {}",
            tier.name
        );
    }
    assert_eq!(
        m.value("servicedesk_events_total", &[("event", "ticket_created")]),
        4.0
    );
    assert_eq!(
        m.value("servicedesk_event_log_head", &[]),
        status.sequence as f64
    );
    assert!(m.value("servicedesk_commit_seconds_count", &[]) >= 1.0);
    #[cfg(target_os = "linux")]
    assert!(m.value("process_resident_memory_bytes", &[]) > 0.0);
    // No label names a ticket, a customer or a key.
    for (_, labels, _) in &m.0 {
        for value in labels.values() {
            assert!(
                !value.starts_with("tkt_") && !value.starts_with("cust_") && !value.contains("key"),
                "an unbounded label value: {value}"
            );
        }
    }
}

#[tokio::test]
async fn the_queue_gauges_say_how_long_the_oldest_ticket_has_waited() {
    let server = Server::start_with(new_root(), &["--metrics-listen", "127.0.0.1:0"], None).await;
    let addr = metrics_addr(&server).await;
    set_every_agent(&server, AgentAvailability::Paused).await;
    // With every agent paused, the inquiry waits in the queue (and its call with it).
    let mut desk = server.desk();
    let waiting = tokio::spawn(async move {
        desk.handle_inquiry(inquiry("cust_m_queued", PASSWORD_RESET))
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scrape(&addr).await.value("servicedesk_queued_tickets", &[]) < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued_at = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let m = scrape(&addr).await;
    assert_eq!(m.value("servicedesk_tickets", &[("status", "queued")]), 1.0);
    let waited = m.value("servicedesk_queue_oldest_seconds", &[]);
    assert!(
        waited >= 1.2 && waited <= queued_at.elapsed().as_secs_f64() + 0.5,
        "the oldest queued ticket waited {waited} s"
    );
    // Taken from the queue, it waits no more.
    set_every_agent(&server, AgentAvailability::Available).await;
    ok(waiting.await.unwrap(), "HandleInquiry");
    let m = scrape(&addr).await;
    assert_eq!(m.value("servicedesk_queue_oldest_seconds", &[]), 0.0);
    assert_eq!(m.value("servicedesk_tickets", &[("status", "queued")]), 0.0);
}

/// Every method of every service the server has, as `grpc_service` and `grpc_method` label it.
fn every_method() -> Vec<(String, String)> {
    use prost::Message;
    let mut methods = Vec::new();
    for set in [
        servicedesk::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(set).expect("a descriptor set");
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push((
                        format!("{}.{}", file.package(), service.name()),
                        method.name().to_string(),
                    ));
                }
            }
        }
    }
    methods
}

#[tokio::test]
async fn before_any_call_every_method_and_code_is_exported_at_zero() {
    let server = Server::start_with(new_root(), &["--metrics-listen", "127.0.0.1:0"], None).await;
    let m = scrape(&metrics_addr(&server).await).await;
    let codes = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    let methods = every_method();
    assert!(methods.len() > 30, "{methods:?}");
    for (service, method) in &methods {
        for code in codes {
            let found: Vec<f64> = m
                .matching(
                    "grpc_server_handled_total",
                    &[
                        ("grpc_service", service),
                        ("grpc_method", method),
                        ("grpc_code", code),
                    ],
                )
                .collect();
            assert_eq!(found, [0.0], "{service}/{method} {code}");
        }
        assert_eq!(
            m.value(
                "grpc_server_started_total",
                &[("grpc_service", service), ("grpc_method", method)]
            ),
            0.0
        );
    }
    // No other label values: a client cannot grow them, and nothing is counted twice.
    let series = m.matching("grpc_server_handled_total", &[]).count();
    let reflection = 2;
    assert_eq!(series, (methods.len() + reflection + 1) * codes.len());
    assert_eq!(m.value("servicedesk_store_serving", &[]), 1.0);
}

#[tokio::test]
async fn the_process_cpu_time_is_exported_in_fractions_of_a_second() {
    let server = Server::start_with(new_root(), &["--metrics-listen", "127.0.0.1:0"], None).await;
    let addr = metrics_addr(&server).await;
    let mut desk = server.desk();
    for n in 0..20 {
        ask(&mut desk, inquiry(&format!("cust_cpu_{n}"), PASSWORD_RESET)).await;
    }
    let first = scrape(&addr).await.value("process_cpu_seconds_total", &[]);
    for n in 20..40 {
        ask(&mut desk, inquiry(&format!("cust_cpu_{n}"), PASSWORD_RESET)).await;
    }
    let second = scrape(&addr).await.value("process_cpu_seconds_total", &[]);
    // Whole seconds would read 0 for a server that has used well under a second.
    assert!(first > 0.0 && first.fract() != 0.0, "{first}");
    assert!(second > first, "{first} then {second}");
}
