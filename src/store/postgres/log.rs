//! The event log: one row per event, `(seq, time_ms, ticket_id, body)`, where `body` is the
//! event's [`EventRecord`] with its state whole. Unlike the SQLite log, no row depends on
//! another (no changes against an earlier event, no pointer to a ticket's row), so a row
//! reads back alone, compaction deletes a prefix and rewrites nothing, and what a replay
//! delivers is exactly what was committed. The price is space: PostgreSQL compresses large
//! values itself (TOAST), and the log is bounded by retention.

use postgres::types::ToSql;
use postgres::Transaction;

use super::super::records::{
    self, decode, encode, AgentRecord, EventRecord, ReviewerRecord, State,
};
use super::super::StoreError;
use super::Statements;
use crate::domain::event::{Event, EventBody};

/// Events one `INSERT` writes: a commit of thousands of events takes a few statements rather
/// than a round trip each, and a statement stays far below the protocol's 65,535 parameters.
const INSERT_ROWS: usize = 256;

/// Most events one commit compacts away; a backlog goes over the following commits.
const COMPACT_ROWS: i64 = 5_000;

/// The row of `event`: its ticket (or its escalation's ticket) and its record.
fn row_of(event: &Event) -> (Option<&str>, EventRecord) {
    let record = match &event.body {
        EventBody::Ticket {
            kind,
            detail,
            ticket,
        } => EventRecord {
            kind: records::ticket_event_code(*kind),
            detail: detail.clone(),
            state: Some(State::Ticket(encode(&records::TicketRecord::from(ticket)))),
            ..EventRecord::default()
        },
        EventBody::Escalation {
            kind,
            escalation,
            previous_reviewer,
        } => EventRecord {
            kind: records::escalation_event_code(*kind),
            previous_reviewer: previous_reviewer.clone(),
            state: Some(State::Escalation(encode(&records::EscalationRecord::from(
                escalation,
            )))),
            ..EventRecord::default()
        },
        EventBody::Agent {
            detail,
            agent,
            deleted,
        } => EventRecord {
            detail: detail.clone(),
            deleted: *deleted,
            state: Some(State::Agent(AgentRecord::from(agent))),
            ..EventRecord::default()
        },
        EventBody::Reviewer {
            detail,
            reviewer,
            deleted,
        } => EventRecord {
            detail: detail.clone(),
            deleted: *deleted,
            state: Some(State::Reviewer(ReviewerRecord::from(reviewer))),
            ..EventRecord::default()
        },
    };
    (event.ticket_id(), record)
}

/// The sequence as its `BIGINT` column holds it. The desk numbers events from 1 by one, so a
/// sequence past `i64::MAX` would take longer than the desk can run; it is refused rather
/// than wrapped into a negative key all the same.
pub(super) fn seq_column(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| {
        StoreError::Corrupt(format!("event sequence {seq} is past what the log holds"))
    })
}

/// A `BIGINT` sequence read back: never negative in a log this store wrote.
pub(super) fn seq_from(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("event sequence {seq}")))
}

/// Appends the commit's events, [`INSERT_ROWS`] to a statement.
pub(super) fn append(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    events: &[Event],
) -> Result<(), StoreError> {
    for chunk in events.chunks(INSERT_ROWS) {
        let mut rows = Vec::with_capacity(chunk.len());
        for event in chunk {
            let (ticket_id, record) = row_of(event);
            rows.push((
                seq_column(event.seq)?,
                event.time_ms,
                ticket_id,
                encode(&record),
            ));
        }
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * 4);
        let mut sql = String::from("INSERT INTO events (seq, time_ms, ticket_id, body) VALUES ");
        for (i, (seq, time_ms, ticket_id, body)) in rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = i * 4;
            sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
            params.push(seq);
            params.push(time_ms);
            params.push(ticket_id);
            params.push(body);
        }
        let statement = statements.prepare(tx, &sql)?;
        tx.execute(&statement, &params)?;
    }
    Ok(())
}

/// An event read back from its row.
pub(super) fn event_from(seq: i64, time_ms: i64, body: &[u8]) -> Result<Event, StoreError> {
    let seq = seq_from(seq)?;
    let record: EventRecord = decode("event", body)?;
    let body = match record.state {
        Some(State::Ticket(bytes)) => EventBody::Ticket {
            kind: records::ticket_event_from(record.kind)?,
            detail: record.detail,
            ticket: records::ticket_from(&bytes)?,
        },
        Some(State::Escalation(bytes)) => EventBody::Escalation {
            kind: records::escalation_event_from(record.kind)?,
            escalation: records::escalation_from(&bytes)?,
            previous_reviewer: record.previous_reviewer,
        },
        Some(State::Agent(agent)) => EventBody::Agent {
            detail: record.detail,
            agent: agent.try_into()?,
            deleted: record.deleted,
        },
        Some(State::Reviewer(reviewer)) => EventBody::Reviewer {
            detail: record.detail,
            reviewer: reviewer.into(),
            deleted: record.deleted,
        },
        // This log never writes a change or a pointer to a row: such a record is not ours.
        Some(
            State::TicketChange(_)
            | State::TicketClosed(_)
            | State::EscalationChange(_)
            | State::EscalationDecided(_),
        ) => {
            return Err(StoreError::Corrupt(format!(
                "event {seq} is not stored whole"
            )))
        }
        None => return Err(StoreError::Corrupt(format!("event {seq} carries nothing"))),
    };
    Ok(Event { seq, time_ms, body })
}

/// The events of the rows a query selects as `(seq, time_ms, body)`, in its order.
pub(super) fn events_of(rows: &[postgres::Row]) -> Result<Vec<Event>, StoreError> {
    rows.iter()
        .map(|row| event_from(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        .collect()
}

/// Drops the events older than `cutoff_ms`: a contiguous prefix of the log, never its newest
/// event (the head sequence is read from it), at most [`COMPACT_ROWS`] (or twice what this
/// commit writes, so a backlog shrinks under any write rate). Returns whether old events
/// remain for the next commit.
pub(super) fn compact(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    cutoff_ms: i64,
    written: usize,
) -> Result<bool, StoreError> {
    let limit = COMPACT_ROWS.max(2 * written as i64);
    // Two single-aggregate subqueries: each is one step to an end of the primary key.
    let ends = statements.prepare(
        tx,
        "SELECT (SELECT MIN(seq) FROM events), (SELECT MAX(seq) FROM events)",
    )?;
    let row = tx.query_one(&ends, &[])?;
    let (Some(oldest), Some(newest)) = (
        row.try_get::<_, Option<i64>>(0)?,
        row.try_get::<_, Option<i64>>(1)?,
    ) else {
        return Ok(false);
    };
    // The first of the oldest `limit` events that is recent enough to stay, if any.
    let first_kept = statements.prepare(
        tx,
        "SELECT MIN(seq) FROM (SELECT seq, time_ms FROM events ORDER BY seq LIMIT $1) AS oldest
         WHERE time_ms >= $2",
    )?;
    let newer: Option<i64> = tx
        .query_one(&first_kept, &[&limit, &cutoff_ms])?
        .try_get(0)?;
    let cut = newer.unwrap_or(oldest.saturating_add(limit)).min(newest);
    if cut <= oldest {
        return Ok(false);
    }
    let delete = statements.prepare(tx, "DELETE FROM events WHERE seq < $1")?;
    let deleted = tx.execute(&delete, &[&cut])?;
    Ok(deleted >= limit as u64)
}
