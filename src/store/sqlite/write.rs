//! One group commit: the rows of the tickets and escalations the batch touched (their last
//! state in it), then its events, then agents, reviewers, keys, settings and totals, all in
//! one transaction.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};

use super::super::records::{self, encode};
use super::super::{CommitBatch, CommitReport, KeyChange, StoreError};
use super::log::{self, LogWriter, Rows};
use crate::domain::event::EventBody;
use crate::domain::mesh::Agent;
use crate::domain::review::{Escalation, EscalationState, Reviewer};
use crate::domain::ticket::Ticket;

/// Writes the ticket's row; returns its row id, and whether the row now holds this state (a
/// final row never changes again: a later state of a closed ticket is not written over it).
pub(super) fn upsert_ticket(tx: &Transaction<'_>, t: &Ticket) -> Result<(i64, bool), StoreError> {
    let idempotency = (!t.idempotency_key.is_empty()).then_some(t.idempotency_key.as_str());
    let written: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO tickets (ticket_id, customer_id, client_id, status, open, created_ms, idempotency_key, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(ticket_id) DO UPDATE SET status = excluded.status, open = excluded.open,
               body = excluded.body
             WHERE tickets.open = 1
             RETURNING id",
        )?
        .query_row(
            params![
                t.id,
                t.customer_id,
                t.client_id,
                records::status_code(t.status),
                !t.status.is_final(),
                t.created_ms,
                idempotency,
                encode(&records::TicketRecord::from(t)),
            ],
            |r| r.get(0),
        )
        .optional()?;
    match written {
        Some(id) => Ok((id, true)),
        None => {
            tracing::error!(ticket_id = %t.id, "a closed ticket changed again; its row keeps the state it closed with");
            let id = tx
                .prepare_cached("SELECT id FROM tickets WHERE ticket_id = ?1")?
                .query_row([&t.id], |r| r.get(0))?;
            Ok((id, false))
        }
    }
}

/// Writes the escalation's row; returns whether the row now holds this state (a decided
/// review never changes again).
pub(super) fn upsert_escalation(tx: &Transaction<'_>, e: &Escalation) -> Result<bool, StoreError> {
    let pending = records::state_code(EscalationState::Pending);
    let changed = tx
        .prepare_cached(
            "INSERT INTO escalations (escalation_id, state, priority, created_ms, reviewer_id, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(escalation_id) DO UPDATE SET state = excluded.state,
               reviewer_id = excluded.reviewer_id, body = excluded.body
             WHERE escalations.state = ?7",
        )?
        .execute(params![
            e.id,
            records::state_code(e.state),
            e.priority as u8,
            e.created_ms,
            e.reviewer_id,
            encode(&records::EscalationRecord::from(e)),
            pending,
        ])?;
    Ok(changed == 1)
}

pub(super) fn upsert_agent(tx: &Transaction<'_>, agent: &Agent) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR REPLACE INTO agents (agent_id, body) VALUES (?1, ?2)")?
        .execute(params![
            agent.id,
            encode(&records::AgentRecord::from(agent))
        ])?;
    Ok(())
}

pub(super) fn upsert_reviewer(tx: &Transaction<'_>, reviewer: &Reviewer) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR REPLACE INTO reviewers (reviewer_id, body) VALUES (?1, ?2)")?
        .execute(params![
            reviewer.id,
            encode(&records::ReviewerRecord::from(reviewer))
        ])?;
    Ok(())
}

pub(super) fn commit(
    tx: &Transaction<'_>,
    batch: &CommitBatch,
) -> Result<CommitReport, StoreError> {
    let mut report = CommitReport::default();
    // The last state of each ticket and escalation in the batch is its row.
    let (ticket_rows, escalation_rows) = batch.last_states();
    let mut ticket_ids = HashMap::with_capacity(ticket_rows.len());
    let mut closed = HashMap::new();
    for i in ticket_rows {
        let EventBody::Ticket { ticket, .. } = &batch.events[i].body else {
            unreachable!("indexed ticket events")
        };
        let (id, written) = upsert_ticket(tx, ticket)?;
        ticket_ids.insert(ticket.id.clone(), id);
        if written && ticket.status.is_final() {
            closed.insert(ticket.id.clone(), i);
        }
    }
    let mut decided = HashMap::new();
    for i in escalation_rows {
        let EventBody::Escalation { escalation, .. } = &batch.events[i].body else {
            unreachable!("indexed escalation events")
        };
        if upsert_escalation(tx, escalation)? && escalation.state != EscalationState::Pending {
            decided.insert(escalation.id.clone(), i);
        }
    }
    let rows = Rows {
        ticket_ids: &ticket_ids,
        closed: &closed,
        decided: &decided,
    };
    let mut log = LogWriter::new(tx);
    for (i, event) in batch.events.iter().enumerate() {
        log.append(i, event, &rows)?;
    }

    for agent in &batch.agents {
        upsert_agent(tx, agent)?;
    }
    for id in &batch.deleted_agents {
        tx.execute("DELETE FROM agents WHERE agent_id = ?1", [id])?;
    }
    for reviewer in &batch.reviewers {
        upsert_reviewer(tx, reviewer)?;
    }
    for id in &batch.deleted_reviewers {
        tx.execute("DELETE FROM reviewers WHERE reviewer_id = ?1", [id])?;
    }
    for change in &batch.keys {
        key_change(tx, change)?;
    }
    if let Some(cutoff) = batch.compact_before_ms {
        report.compaction_backlog = log::compact(tx, cutoff, batch.events.len())?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('compacted_before_ms', ?1)
             ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), ?1)",
            params![cutoff],
        )?;
    }
    if batch.mark_seeded {
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('seeded', '1')",
            [],
        )?;
    }
    if let Some((settings, who)) = &batch.settings {
        tx.execute(
            "INSERT INTO config_changes (time_ms, changed_by, body) VALUES (?1, ?2, ?3)",
            params![
                crate::clock::now_ms(),
                who,
                serde_json::to_string(settings).expect("settings serialize")
            ],
        )?;
    }
    if let Some(stats) = &batch.stats {
        tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('stats', ?1)")?
            .execute([serde_json::to_string(stats).expect("stats serialize")])?;
    }
    Ok(report)
}

fn key_change(tx: &Transaction<'_>, change: &KeyChange) -> Result<(), StoreError> {
    match change {
        KeyChange::Created(k) => {
            tx.execute(
                "INSERT INTO api_keys (key_id, client_id, client_name, permissions, secret_sha256, created_ms, last_used_ms, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    k.key_id,
                    k.client_id,
                    k.client_name,
                    serde_json::to_string(&k.permissions).expect("permissions serialize"),
                    k.secret_sha256.to_vec(),
                    k.created_ms,
                    k.last_used_ms,
                    k.revoked
                ],
            )?;
        }
        KeyChange::Revoked { key_id } => {
            tx.execute(
                "UPDATE api_keys SET revoked = 1 WHERE key_id = ?1",
                [key_id],
            )?;
        }
        KeyChange::Used { key_id, time_ms } => {
            tx.execute(
                "UPDATE api_keys SET last_used_ms = MAX(COALESCE(last_used_ms, 0), ?2) WHERE key_id = ?1",
                params![key_id, time_ms],
            )?;
        }
    }
    Ok(())
}
