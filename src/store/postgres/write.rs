//! One group commit: the rows of the tickets and escalations the batch touched (their last
//! state in it), then its events, then agents, reviewers, keys, settings and totals, and the
//! batch's compaction, all in the caller's one transaction.

use postgres::{GenericClient, Transaction};

use super::super::records::{self, encode};
use super::super::{CommitBatch, CommitReport, KeyChange, StoreError};
use super::{log, query_opt, Statements};
use crate::domain::event::EventBody;
use crate::domain::review::{Escalation, EscalationState};
use crate::domain::ticket::Ticket;

/// Writes the batch in `tx`; the caller commits.
pub(super) fn commit(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    batch: &CommitBatch,
) -> Result<CommitReport, StoreError> {
    let mut report = CommitReport::default();
    // The last state of each ticket and escalation in the batch is its row.
    let (tickets, escalations) = batch.last_states();
    for i in tickets.into_iter().chain(escalations) {
        match &batch.events[i].body {
            EventBody::Ticket { ticket, .. } => upsert_ticket(tx, statements, ticket)?,
            EventBody::Escalation { escalation, .. } => {
                upsert_escalation(tx, statements, escalation)?
            }
            _ => {}
        }
    }
    log::append(tx, statements, &batch.events)?;
    if !batch.events.is_empty() {
        // Delivered when (and only if) the transaction commits: wakes the followers.
        let statement = statements.prepare(tx, "SELECT pg_notify($1, current_schema())")?;
        tx.execute(&statement, &[&super::lease::CHANNEL])?;
    }

    for agent in &batch.agents {
        let statement = statements.prepare(
            tx,
            "INSERT INTO agents (agent_id, body) VALUES ($1, $2)
             ON CONFLICT (agent_id) DO UPDATE SET body = EXCLUDED.body",
        )?;
        tx.execute(
            &statement,
            &[&agent.id, &encode(&records::AgentRecord::from(agent))],
        )?;
    }
    for id in &batch.deleted_agents {
        let statement = statements.prepare(tx, "DELETE FROM agents WHERE agent_id = $1")?;
        tx.execute(&statement, &[id])?;
    }
    for reviewer in &batch.reviewers {
        let statement = statements.prepare(
            tx,
            "INSERT INTO reviewers (reviewer_id, body) VALUES ($1, $2)
             ON CONFLICT (reviewer_id) DO UPDATE SET body = EXCLUDED.body",
        )?;
        tx.execute(
            &statement,
            &[
                &reviewer.id,
                &encode(&records::ReviewerRecord::from(reviewer)),
            ],
        )?;
    }
    for id in &batch.deleted_reviewers {
        let statement = statements.prepare(tx, "DELETE FROM reviewers WHERE reviewer_id = $1")?;
        tx.execute(&statement, &[id])?;
    }
    for change in &batch.keys {
        key_change(tx, statements, change)?;
    }
    if let Some(cutoff) = batch.compact_before_ms {
        report.compaction_backlog = log::compact(tx, statements, cutoff, batch.events.len())?;
        // Only ever later: an earlier cutoff does not bring back what a later one removed.
        let statement = statements.prepare(
            tx,
            "INSERT INTO meta (key, value) VALUES ('compacted_before_ms', $1)
             ON CONFLICT (key) DO UPDATE SET value = CASE
                 WHEN CAST(meta.value AS BIGINT) >= $2 THEN meta.value ELSE EXCLUDED.value END",
        )?;
        tx.execute(&statement, &[&cutoff.to_string(), &cutoff])?;
    }
    if batch.mark_seeded {
        set_meta(tx, statements, "seeded", "1")?;
    }
    if let Some((settings, who)) = &batch.settings {
        let statement = statements.prepare(
            tx,
            "INSERT INTO config_changes (time_ms, changed_by, body) VALUES ($1, $2, $3)",
        )?;
        // Plain data with string keys: serializing it cannot fail.
        let body = serde_json::to_string(settings).expect("settings serialize");
        tx.execute(&statement, &[&crate::clock::now_ms(), who, &body])?;
    }
    if let Some(stats) = &batch.stats {
        // Plain counters: serializing them cannot fail.
        let body = serde_json::to_string(stats).expect("stats serialize");
        set_meta(tx, statements, "stats", &body)?;
    }
    Ok(report)
}

pub(super) fn set_meta(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    let statement = statements.prepare(
        tx,
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )?;
    tx.execute(&statement, &[&key, &value])?;
    Ok(())
}

/// Writes the ticket's row. A final row never changes again, as in the SQLite store: the
/// desk never changes a closed ticket, and if it did, the row keeps the state it closed with
/// so that both backends answer alike.
pub(super) fn upsert_ticket(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    t: &Ticket,
) -> Result<(), StoreError> {
    let idempotency = (!t.idempotency_key.is_empty()).then_some(t.idempotency_key.as_str());
    let statement = statements.prepare(
        tx,
        "INSERT INTO tickets (ticket_id, customer_id, client_id, status, open, created_ms, idempotency_key, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (ticket_id) DO UPDATE SET status = EXCLUDED.status, open = EXCLUDED.open,
           body = EXCLUDED.body
         WHERE tickets.open",
    )?;
    let written = tx.execute(
        &statement,
        &[
            &t.id,
            &t.customer_id,
            &t.client_id,
            &code_column(records::status_code(t.status)),
            &!t.status.is_final(),
            &t.created_ms,
            &idempotency,
            &encode(&records::TicketRecord::from(t)),
        ],
    )?;
    if written == 0 {
        tracing::error!(ticket_id = %t.id, "a closed ticket changed again; its row keeps the state it closed with");
    }
    Ok(())
}

/// Writes the escalation's row; a decided one never changes again.
pub(super) fn upsert_escalation(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    e: &Escalation,
) -> Result<(), StoreError> {
    let statement = statements.prepare(
        tx,
        "INSERT INTO escalations (escalation_id, state, priority, created_ms, reviewer_id, body)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (escalation_id) DO UPDATE SET state = EXCLUDED.state,
           reviewer_id = EXCLUDED.reviewer_id, body = EXCLUDED.body
         WHERE escalations.state = $7",
    )?;
    tx.execute(
        &statement,
        &[
            &e.id,
            &code_column(records::state_code(e.state)),
            &i32::from(super::priority_rank(e)),
            &e.created_ms,
            &e.reviewer_id,
            &encode(&records::EscalationRecord::from(e)),
            &code_column(records::state_code(EscalationState::Pending)),
        ],
    )?;
    Ok(())
}

/// A record code as its `INTEGER` column holds it: codes are small positions in a table of
/// variants (`records::codes!`), far below `i32::MAX`.
pub(super) fn code_column(code: u32) -> i32 {
    code as i32
}

fn key_change(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    change: &KeyChange,
) -> Result<(), StoreError> {
    match change {
        KeyChange::Created(k) => {
            let statement = statements.prepare(
                tx,
                "INSERT INTO api_keys (key_id, client_id, client_name, permissions, secret_sha256, created_ms, last_used_ms, revoked)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )?;
            // A list of strings: serializing it cannot fail.
            let permissions = serde_json::to_string(&k.permissions).expect("permissions serialize");
            tx.execute(
                &statement,
                &[
                    &k.key_id,
                    &k.client_id,
                    &k.client_name,
                    &permissions,
                    &k.secret_sha256.as_slice(),
                    &k.created_ms,
                    &k.last_used_ms,
                    &k.revoked,
                ],
            )?;
        }
        KeyChange::Revoked { key_id } => {
            let statement =
                statements.prepare(tx, "UPDATE api_keys SET revoked = TRUE WHERE key_id = $1")?;
            tx.execute(&statement, &[key_id])?;
        }
        KeyChange::Used { key_id, time_ms } => {
            // Only ever later, as in the SQLite store: an older use never moves it back.
            let statement = statements.prepare(
                tx,
                "UPDATE api_keys SET last_used_ms = $2
                 WHERE key_id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)",
            )?;
            tx.execute(&statement, &[key_id, time_ms])?;
        }
    }
    Ok(())
}

/// Whether `batch` was committed already: its first event is in the log (a batch is written
/// whole or not at all, and sequences are never reused). A batch without events is written
/// again: its rows are upserts, apart from a settings change's audit row, which may then be
/// there twice.
pub(super) fn committed_already(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    batch: &CommitBatch,
) -> Result<bool, StoreError> {
    let Some(first) = batch.events.first() else {
        return Ok(false);
    };
    let row = query_opt(
        client,
        statements,
        "SELECT 1 FROM events WHERE seq = $1",
        &[&log::seq_column(first.seq)?],
    )?;
    Ok(row.is_some())
}
