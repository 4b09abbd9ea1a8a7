//! The model the property tests check each command's answer against: what the rules of
//! DESIGN.md and API.md say a command must answer, worked out from the desk's state before the
//! command runs.

use crate::domain::desk::{Actor, Desk};
use crate::domain::error::DomainError;

/// What a command must answer, as the rules say, worked out before it runs.
#[derive(Debug, PartialEq)]
pub(super) enum Expected {
    Ok,
    NotPending,
    PermissionDenied,
    NotFound,
    FailedPrecondition,
    AlreadyExists,
    Invalid,
    AssignmentNotOpen,
}

pub(super) fn outcome<T>(result: &Result<T, DomainError>) -> Expected {
    match result {
        Ok(_) => Expected::Ok,
        Err(DomainError::NotPending(_)) => Expected::NotPending,
        Err(DomainError::PermissionDenied(_)) => Expected::PermissionDenied,
        Err(DomainError::NotFound(_)) => Expected::NotFound,
        Err(DomainError::FailedPrecondition(_)) => Expected::FailedPrecondition,
        Err(DomainError::AlreadyExists(_)) => Expected::AlreadyExists,
        Err(DomainError::Invalid(_)) => Expected::Invalid,
        Err(DomainError::AssignmentNotOpen(_)) => Expected::AssignmentNotOpen,
    }
}

/// Whether an assignment is still open on the desk: a reply to it is accepted.
pub(super) fn assignment_open(desk: &Desk, assignment_id: &str) -> bool {
    desk.tickets().any(|t| {
        t.assignment
            .as_ref()
            .is_some_and(|a| a.assignment_id == assignment_id)
    })
}

/// Who may decide a review, by the rules of API.md: its reviewer, or anyone on an unassigned
/// one who is a reviewer (claiming it), or an admin; nobody once it is decided.
pub(super) fn expected_decision(desk: &Desk, esc: &str, who: &Actor) -> Expected {
    let Some(review) = desk.reviews().pending(esc) else {
        return Expected::NotPending;
    };
    match review.reviewer_id.as_deref() {
        Some(owner) if owner == who.client_id => Expected::Ok,
        Some(_) if who.admin => Expected::Ok,
        Some(_) => Expected::PermissionDenied,
        None if who.admin || desk.reviews().reviewer(&who.client_id).is_some() => Expected::Ok,
        None => Expected::PermissionDenied,
    }
}

/// Claiming a review for oneself: it must be free or one's own (admins may take any), the
/// claimer a reviewer with room (unless it is theirs already).
pub(super) fn expected_claim(desk: &Desk, esc: &str, who: &Actor) -> Expected {
    let Some(review) = desk.reviews().pending(esc) else {
        return Expected::NotPending;
    };
    let owner = review.reviewer_id.as_deref();
    if !who.admin && owner.is_some_and(|o| o != who.client_id) {
        return Expected::PermissionDenied;
    }
    let Some(claimer) = desk.reviews().reviewer(&who.client_id) else {
        return Expected::NotFound;
    };
    if owner == Some(who.client_id.as_str()) {
        return Expected::Ok;
    }
    if claimer.has_room() {
        Expected::Ok
    } else {
        Expected::FailedPrecondition
    }
}
