//! The one mapping from the desk's errors to gRPC statuses. Every status the handlers, the
//! interceptor, the watch and Attach streams and the edge layer return is built here and
//! carries a `google.rpc.ErrorInfo` (UPPER_SNAKE reason, domain `servicedesk.v1`); invalid
//! input also a `google.rpc.BadRequest` naming every bad field. Only statuses tonic and HTTP/2
//! make themselves (an unknown method, an undecodable request, a refused stream, a deadline)
//! and those of health and reflection carry none.
//!
//! | source | code (reason) |
//! | --- | --- |
//! | `DomainError::Invalid`, a request's `Violations` | `INVALID_ARGUMENT`, every field in `BadRequest` |
//! | `DomainError::NotFound` (also another client's ticket); `NotPending` / `AssignmentNotOpen` that the store does not know | `NOT_FOUND` |
//! | `DomainError::AlreadyExists` | `ALREADY_EXISTS` |
//! | `DomainError::FailedPrecondition`, also a review already decided or an assignment already answered (the runtime asks the store) | `FAILED_PRECONDITION` |
//! | `DomainError::PermissionDenied`; a key without the service's permission | `PERMISSION_DENIED` |
//! | a missing, malformed, unknown or revoked key | `UNAUTHENTICATED` |
//! | an Attach stream taken over or its agent deleted ([`aborted`]) | `ABORTED` |
//! | `DeskError::Overloaded`; past the calls-in-flight limit (overall or one client's) or the open-streams limit | `RESOURCE_EXHAUSTED` (`OVERLOADED`) |
//! | a request over `max_message_bytes` ([`too_large`]) | `RESOURCE_EXHAUSTED` (`MESSAGE_TOO_LARGE`) |
//! | a request whose message did not arrive in time ([`body_too_slow`]) | `DEADLINE_EXCEEDED` (`REQUEST_BODY_TIMEOUT`) |
//! | a watch unread for `stalled_stream_secs` ([`stalled`]) | `RESOURCE_EXHAUSTED` (`STREAM_STALLED`, `resume_after_sequence`) |
//! | a watch from before what retention kept | `OUT_OF_RANGE` |
//! | `DeskError::Unavailable` / `TicketKept`, shutting down | `UNAVAILABLE` (a waiting HandleInquiry names its ticket) |
//! | `DeskError::StoreFailing`: the store refuses writes (a full disk) | `UNAVAILABLE`, until it takes them again |
//! | `DeskError::NotCommitted`: the store stopped taking writes while a change waited for its commit | `UNAVAILABLE` at once |
//! | `StoreError` on a read: the store out of reach or busy | `UNAVAILABLE` (`STORE_UNAVAILABLE`), logged |
//! | `StoreError` on a read: a damaged or unreadable record | `DATA_LOSS` (`STORE_DAMAGED`), logged |

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::error::DomainError;
use crate::runtime::DeskError;
use crate::store::StoreError;

const DOMAIN: &str = "servicedesk.v1";

/// One bad field of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// INVALID_ARGUMENT listing every violation.
pub fn invalid(violations: Vec<FieldViolation>) -> Status {
    let message = match violations.as_slice() {
        [one] => format!("invalid {}: {}", one.field, one.description),
        many => format!(
            "invalid request: {}",
            many.iter()
                .map(|v| format!("{} ({})", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let mut details = ErrorDetails::new();
    for v in &violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    details.set_error_info("INVALID_ARGUMENT", DOMAIN, []);
    Status::with_error_details(Code::InvalidArgument, message, details)
}

fn with_reason(code: Code, reason: &str, message: String) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, []);
    Status::with_error_details(code, message, details)
}

pub fn domain(err: DomainError) -> Status {
    match err {
        DomainError::Invalid(violations) => invalid(
            violations
                .into_iter()
                .map(|v| FieldViolation::new(v.field, v.reason))
                .collect(),
        ),
        DomainError::NotFound(m) => with_reason(Code::NotFound, "NOT_FOUND", m),
        DomainError::AlreadyExists(m) => with_reason(Code::AlreadyExists, "ALREADY_EXISTS", m),
        DomainError::FailedPrecondition(m) => {
            with_reason(Code::FailedPrecondition, "FAILED_PRECONDITION", m)
        }
        DomainError::PermissionDenied(m) => {
            with_reason(Code::PermissionDenied, "PERMISSION_DENIED", m)
        }
        DomainError::NotPending(id) => with_reason(
            Code::NotFound,
            "NOT_FOUND",
            format!("escalation {id} is not pending"),
        ),
        DomainError::AssignmentNotOpen(id) => with_reason(
            Code::NotFound,
            "NOT_FOUND",
            format!("assignment {id} is not open"),
        ),
    }
}

pub fn store(err: StoreError) -> Status {
    tracing::error!(error = %err, "store read failed");
    match err {
        // What the store holds cannot be read back: no retry helps, an operator must look.
        StoreError::Damaged(_) | StoreError::Corrupt(_) => with_reason(
            Code::DataLoss,
            "STORE_DAMAGED",
            "the desk's store holds a record it cannot read; the operator has been told in the \
             log"
            .into(),
        ),
        // The store is out of reach or busy for now (a database restarting, a connection
        // lost): a retry, here or on another server, succeeds once it is back.
        _ => with_reason(
            Code::Unavailable,
            "STORE_UNAVAILABLE",
            "the desk could not read its store just now; retry".into(),
        ),
    }
}

pub fn desk(err: DeskError) -> Status {
    match err {
        DeskError::Domain(e) => domain(e),
        DeskError::Overloaded => overloaded("the desk is overloaded; retry with backoff"),
        DeskError::Unavailable => with_reason(
            Code::Unavailable,
            "UNAVAILABLE",
            "the desk is shutting down; retry against a running server".into(),
        ),
        DeskError::TicketKept { .. } | DeskError::StoreFailing(_) | DeskError::NotCommitted(_) => {
            unavailable(&err.to_string())
        }
        DeskError::Store(e) => store(e),
    }
}

/// RESOURCE_EXHAUSTED: load was shed; retrying later succeeds.
pub fn overloaded(message: &str) -> Status {
    with_reason(Code::ResourceExhausted, "OVERLOADED", message.to_string())
}

/// RESOURCE_EXHAUSTED for a stream whose client stopped reading; says where to resume.
pub fn stalled(resume_after: u64, stall: std::time::Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        "STREAM_STALLED",
        DOMAIN,
        [(
            "resume_after_sequence".to_string(),
            resume_after.to_string(),
        )],
    );
    Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "the stream was not read for {} s and was closed; watch again with after_sequence {resume_after}",
            stall.as_secs()
        ),
        details,
    )
}

/// DEADLINE_EXCEEDED for a request whose body did not arrive within the server's deadline.
pub fn body_too_slow(limit: std::time::Duration) -> Status {
    with_reason(
        Code::DeadlineExceeded,
        "REQUEST_BODY_TIMEOUT",
        format!(
            "the request's message did not arrive within {} s of its start; send it at once",
            limit.as_secs()
        ),
    )
}

/// ABORTED: the server ended the call on purpose (a stream taken over); retrying may work.
pub fn aborted(message: String) -> Status {
    with_reason(Code::Aborted, "ABORTED", message)
}

/// INVALID_ARGUMENT for a request body that is not the method's message at all (the client's
/// fault: tonic says INTERNAL, which would count it among the server's errors).
pub fn undecodable(decoder_message: &str) -> Status {
    with_reason(
        Code::InvalidArgument,
        "UNDECODABLE_MESSAGE",
        format!(
            "the request is not a message of the type this method takes ({decoder_message}); \
             encode it from the method's request type"
        ),
    )
}

/// RESOURCE_EXHAUSTED for a request larger than the server accepts.
pub fn too_large(decoder_message: &str) -> Status {
    with_reason(
        Code::ResourceExhausted,
        "MESSAGE_TOO_LARGE",
        format!("the request is larger than the server accepts ({decoder_message}); send less"),
    )
}

pub fn unauthenticated(message: &str) -> Status {
    with_reason(
        Code::Unauthenticated,
        "UNAUTHENTICATED",
        message.to_string(),
    )
}

pub fn permission_denied(message: String) -> Status {
    with_reason(Code::PermissionDenied, "PERMISSION_DENIED", message)
}

pub fn not_found(message: String) -> Status {
    with_reason(Code::NotFound, "NOT_FOUND", message)
}

pub fn failed_precondition(message: String) -> Status {
    with_reason(Code::FailedPrecondition, "FAILED_PRECONDITION", message)
}

pub fn out_of_range(message: String) -> Status {
    with_reason(Code::OutOfRange, "OUT_OF_RANGE", message)
}

pub fn unavailable(message: &str) -> Status {
    with_reason(Code::Unavailable, "UNAVAILABLE", message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_the_field() {
        let status = domain(DomainError::invalid("priority", "must be within 1..10"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status
            .get_details_bad_request()
            .expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "priority");
    }

    #[test]
    fn each_kind_has_its_code() {
        let cases = [
            (DomainError::NotFound("x".into()), Code::NotFound),
            (DomainError::AlreadyExists("x".into()), Code::AlreadyExists),
            (
                DomainError::FailedPrecondition("x".into()),
                Code::FailedPrecondition,
            ),
            (
                DomainError::PermissionDenied("x".into()),
                Code::PermissionDenied,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(domain(err).code(), code);
        }
        assert_eq!(desk(DeskError::Overloaded).code(), Code::ResourceExhausted);
        assert_eq!(desk(DeskError::Unavailable).code(), Code::Unavailable);
    }
}
