//! The one error type of the domain. Each kind says what the caller did wrong or what state
//! forbids the action; `api` maps each kind to a gRPC code in one place.

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// Bad input: names each bad field and why.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Violation>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The current state forbids the action (e.g. deciding a review that is no longer pending).
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The escalation is not among the pending ones the desk holds: it was decided or expired,
    /// or never existed. Only the store can tell which, so `api` asks it.
    #[error("escalation {0} is not pending")]
    NotPending(String),
    /// The assignment is not open: answered, handed on, or never made. `api` tells those
    /// apart with the store (FAILED_PRECONDITION for a known ticket, else NOT_FOUND).
    #[error("assignment {0} is not open")]
    AssignmentNotOpen(String),
}

/// One bad field of a command, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Violation {
    pub field: String,
    pub reason: String,
}

impl DomainError {
    /// One bad field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DomainError::Invalid(vec![Violation {
            field: field.into(),
            reason: reason.into(),
        }])
    }
}
