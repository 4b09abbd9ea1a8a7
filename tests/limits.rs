//! Input limits: every oversized or malformed field of HandleInquiry (and a negative page size)
//! is INVALID_ARGUMENT with a BadRequest naming the field, never a truncated ticket, and the
//! server keeps serving; values right at the limits are accepted.

mod common;

use std::collections::HashMap;

use common::*;
use servicedesk::proto::v1::{
    HandleInquiryRequest, ListEscalationsRequest, ListTicketsRequest, TicketStatus,
};
use tonic::Code;

fn valid() -> HandleInquiryRequest {
    inquiry("cust_limits", PASSWORD_RESET)
}

fn context_of(entries: usize) -> HashMap<String, String> {
    (0..entries)
        .map(|i| (format!("k{i:02}"), "v".to_string()))
        .collect()
}

/// Each case: what it is, the request, the field the BadRequest must name.
fn bad_requests() -> Vec<(&'static str, HandleInquiryRequest, &'static str)> {
    vec![
        (
            "empty customer_id",
            HandleInquiryRequest {
                customer_id: String::new(),
                ..valid()
            },
            "customer_id",
        ),
        (
            "customer_id of 129 bytes",
            HandleInquiryRequest {
                customer_id: "c".repeat(129),
                ..valid()
            },
            "customer_id",
        ),
        (
            "customer_id with a control character",
            HandleInquiryRequest {
                customer_id: "cust\u{7}bell".into(),
                ..valid()
            },
            "customer_id",
        ),
        (
            "empty inquiry",
            HandleInquiryRequest {
                inquiry: String::new(),
                ..valid()
            },
            "inquiry",
        ),
        (
            "whitespace-only inquiry",
            HandleInquiryRequest {
                inquiry: " \t\n  \r\n ".into(),
                ..valid()
            },
            "inquiry",
        ),
        (
            "inquiry of 16 KiB + 1 byte",
            HandleInquiryRequest {
                inquiry: "a".repeat(16 * 1024 + 1),
                ..valid()
            },
            "inquiry",
        ),
        (
            "33 context entries",
            HandleInquiryRequest {
                context: context_of(33),
                ..valid()
            },
            "context",
        ),
        (
            "context key of 65 bytes",
            HandleInquiryRequest {
                context: [("k".repeat(65), "v".to_string())].into_iter().collect(),
                ..valid()
            },
            "context",
        ),
        (
            "context value of 1025 bytes",
            HandleInquiryRequest {
                context: [("note".to_string(), "v".repeat(1025))]
                    .into_iter()
                    .collect(),
                ..valid()
            },
            "context",
        ),
        (
            "priority 11",
            HandleInquiryRequest {
                priority: 11,
                ..valid()
            },
            "priority",
        ),
        (
            "priority -1",
            HandleInquiryRequest {
                priority: -1,
                ..valid()
            },
            "priority",
        ),
        (
            "idempotency_key of 129 bytes",
            HandleInquiryRequest {
                idempotency_key: "i".repeat(129),
                ..valid()
            },
            "idempotency_key",
        ),
        (
            "topic of 65 bytes",
            HandleInquiryRequest {
                topic: "t".repeat(65),
                ..valid()
            },
            "topic",
        ),
    ]
}

#[tokio::test]
async fn each_bad_inquiry_field_is_invalid_argument_naming_the_field() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let mut failures = Vec::new();
    for (what, request, field) in bad_requests() {
        match desk.handle_inquiry(request).await {
            Ok(response) => failures.push(format!(
                "{what}: expected INVALID_ARGUMENT naming `{field}`, got OK (ticket {:?})",
                response.into_inner().ticket.map(|t| t.ticket_id)
            )),
            Err(status) if status.code() != Code::InvalidArgument => failures.push(format!(
                "{what}: expected INVALID_ARGUMENT, got {:?}: {}",
                status.code(),
                status.message()
            )),
            Err(status) => {
                let fields = bad_request_fields(&status);
                if !fields.iter().any(|f| names_field(f, field)) {
                    failures.push(format!(
                        "{what}: expected a BadRequest violation for `{field}`, got fields {fields:?} (message {:?})",
                        status.message()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        bad_requests().len(),
        failures.join("\n")
    );

    // Nothing was created, and the server still answers.
    let listed = ok(
        desk.list_tickets(ListTicketsRequest::default()).await,
        "ListTickets after the bad requests",
    );
    assert!(
        listed.tickets.is_empty(),
        "invalid requests created tickets: {:?}",
        listed
            .tickets
            .iter()
            .map(|t| (&t.customer_id, t.inquiry.len()))
            .collect::<Vec<_>>()
    );
    let response = ask(&mut desk, valid()).await;
    assert_eq!(response.ticket.unwrap().status(), TicketStatus::Resolved);
}

#[tokio::test]
async fn every_bad_field_of_one_request_is_named() {
    let server = Server::start().await;
    let status = expect_code(
        server
            .desk()
            .handle_inquiry(HandleInquiryRequest {
                customer_id: String::new(),
                inquiry: "   ".into(),
                priority: 42,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "three bad fields",
    );
    let fields = bad_request_fields(&status);
    for field in ["customer_id", "inquiry", "priority"] {
        assert!(
            fields.iter().any(|f| names_field(f, field)),
            "BadRequest should name `{field}`; got {fields:?}"
        );
    }
}

#[tokio::test]
async fn values_at_the_limits_are_accepted() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let cases = vec![
        (
            "customer_id of 128 bytes",
            HandleInquiryRequest {
                customer_id: "c".repeat(128),
                ..valid()
            },
        ),
        (
            "32 context entries",
            HandleInquiryRequest {
                context: context_of(32),
                ..valid()
            },
        ),
        (
            "context key of 64 bytes and value of 1024 bytes",
            HandleInquiryRequest {
                context: [("k".repeat(64), "v".repeat(1024))].into_iter().collect(),
                ..valid()
            },
        ),
        (
            "priority 1",
            HandleInquiryRequest {
                priority: 1,
                ..valid()
            },
        ),
        (
            "priority 10",
            HandleInquiryRequest {
                priority: 10,
                ..valid()
            },
        ),
        (
            "idempotency_key of 128 bytes",
            HandleInquiryRequest {
                idempotency_key: "i".repeat(128),
                ..valid()
            },
        ),
        (
            "topic of 64 bytes",
            HandleInquiryRequest {
                topic: "t".repeat(64),
                ..valid()
            },
        ),
        (
            "inquiry of exactly 16 KiB with surrounding whitespace",
            HandleInquiryRequest {
                inquiry: format!(
                    "  {}  ",
                    "password ".repeat(16 * 1024 / 9) + &"x".repeat(16 * 1024 % 9)
                ),
                ..valid()
            },
        ),
    ];
    for (what, request) in cases {
        let sent = request.clone();
        let response = ok(desk.handle_inquiry(request).await, what);
        let ticket = response.ticket.expect("a ticket");
        assert_eq!(
            ticket.customer_id, sent.customer_id,
            "{what}: customer_id kept whole"
        );
        assert_eq!(
            ticket.inquiry,
            sent.inquiry.trim(),
            "{what}: inquiry kept whole (trimmed)"
        );
        assert_eq!(ticket.context, sent.context, "{what}: context kept whole");
    }
}

#[tokio::test]
async fn negative_page_size_is_invalid_argument() {
    let server = Server::start().await;
    expect_bad_field(
        server
            .desk()
            .list_tickets(ListTicketsRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        "page_size",
        "ListTickets page_size -1",
    );
    expect_bad_field(
        server
            .escalations()
            .list_escalations(ListEscalationsRequest {
                page_size: -1,
                ..Default::default()
            })
            .await,
        "page_size",
        "ListEscalations page_size -1",
    );
    // Still serving.
    ok(
        server
            .desk()
            .list_tickets(ListTicketsRequest::default())
            .await,
        "ListTickets after the bad one",
    );
}

#[tokio::test]
async fn a_garbage_page_token_is_invalid_argument() {
    let server = Server::start().await;
    expect_bad_field(
        server
            .desk()
            .list_tickets(ListTicketsRequest {
                page_token: "definitely-not-a-token".into(),
                ..Default::default()
            })
            .await,
        "page_token",
        "ListTickets with a garbage page_token",
    );
}
