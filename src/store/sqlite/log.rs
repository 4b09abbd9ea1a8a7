//! The event log on disk: how a commit writes its events compactly and how reads expand them
//! back, exactly as they were committed.
//!
//! A row is `(seq, time_ms, ticket, first, body)`: `ticket` is the row id of the ticket the
//! event concerns (ticket and escalation events), which indexes per-ticket replays; `first`
//! marks the first event of each commit; `body` is an [`EventRecord`]. Within one commit:
//! - a ticket's (or escalation's) first event stores its state whole;
//! - its later events store only the fields that changed since its previous one
//!   ([`delta`]), never reaching outside the commit;
//! - the event that closes a ticket (decides an escalation) for good stores nothing: the
//!   ticket's row holds that state and, final, never changes again.
//!
//! Compaction may cut a commit in two; the changes left behind whose earlier state it
//! removed are rewritten whole first ([`compact`]), so every retained event expands.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::super::delta;
use super::super::records::{
    self, decode, encode, AgentRecord, EventRecord, ReviewerRecord, State,
};
use super::super::StoreError;
use crate::domain::event::{Event, EventBody};

/// Most changes in a row before a state is stored whole again: bounds what a read applies.
const MAX_CHAIN: u32 = 8;

/// The state an event carries, before it is encoded: a ticket or an escalation record's
/// bytes, and how many changes lead to it from the last whole one.
struct Snapshot {
    seq: u64,
    bytes: Vec<u8>,
    chain: u32,
}

/// Stores `bytes`, the state of record `id` at `seq`, as a change to its previous state in
/// this commit when there is one close enough, else whole; remembers it as that record's
/// previous state for its next event, and returns the state to store.
fn state_of(
    snapshots: &mut HashMap<String, Snapshot>,
    id: &str,
    seq: u64,
    bytes: Vec<u8>,
    whole: fn(Vec<u8>) -> State,
    change: fn(records::Change) -> State,
) -> Result<State, StoreError> {
    let (state, chain) = match snapshots.get(id) {
        Some(prev) if prev.chain < MAX_CHAIN => (
            change(delta::diff(&prev.bytes, &bytes, seq - prev.seq)?),
            prev.chain + 1,
        ),
        _ => (whole(bytes.clone()), 0),
    };
    snapshots.insert(id.to_owned(), Snapshot { seq, bytes, chain });
    Ok(state)
}

/// Writes one commit's events.
pub(super) struct LogWriter<'t> {
    tx: &'t Transaction<'t>,
    first: bool,
    /// The previous state of each ticket and escalation in this commit, by id.
    tickets: HashMap<String, Snapshot>,
    escalations: HashMap<String, Snapshot>,
}

/// What the commit's rows say about the events being written.
pub(super) struct Rows<'a> {
    /// Row id of each ticket, by ticket id.
    pub ticket_ids: &'a HashMap<String, i64>,
    /// Tickets whose row this commit wrote in a final state, with the index of their last event.
    pub closed: &'a HashMap<String, usize>,
    /// Escalations whose row this commit wrote decided, with the index of their last event.
    pub decided: &'a HashMap<String, usize>,
}

impl<'t> LogWriter<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>) -> Self {
        LogWriter {
            tx,
            first: true,
            tickets: HashMap::new(),
            escalations: HashMap::new(),
        }
    }

    /// Appends `event`, the `index`-th of the commit.
    pub(super) fn append(
        &mut self,
        index: usize,
        event: &Event,
        rows: &Rows<'_>,
    ) -> Result<(), StoreError> {
        let (record, ticket) = match &event.body {
            EventBody::Ticket {
                kind,
                detail,
                ticket,
            } => {
                // The event that closes it for good stores nothing (its row holds that state)
                // and no later event of the commit diffs against it: nothing to encode.
                let state = if rows.closed.get(&ticket.id) == Some(&index) {
                    State::TicketClosed(true)
                } else {
                    state_of(
                        &mut self.tickets,
                        &ticket.id,
                        event.seq,
                        encode(&records::TicketRecord::from(ticket)),
                        State::Ticket,
                        State::TicketChange,
                    )?
                };
                let record = EventRecord {
                    kind: records::ticket_event_code(*kind),
                    detail: detail.clone(),
                    state: Some(state),
                    ..EventRecord::default()
                };
                (record, rows.ticket_ids.get(&ticket.id).copied())
            }
            EventBody::Escalation {
                kind,
                escalation,
                previous_reviewer,
            } => {
                let state = if rows.decided.get(&escalation.id) == Some(&index) {
                    State::EscalationDecided(escalation.id.clone())
                } else {
                    state_of(
                        &mut self.escalations,
                        &escalation.id,
                        event.seq,
                        encode(&records::EscalationRecord::from(escalation)),
                        State::Escalation,
                        State::EscalationChange,
                    )?
                };
                let record = EventRecord {
                    kind: records::escalation_event_code(*kind),
                    previous_reviewer: previous_reviewer.clone(),
                    state: Some(state),
                    ..EventRecord::default()
                };
                let ticket = match rows.ticket_ids.get(&escalation.ticket_id) {
                    Some(id) => Some(*id),
                    None => self
                        .tx
                        .prepare_cached("SELECT id FROM tickets WHERE ticket_id = ?1")?
                        .query_row([&escalation.ticket_id], |r| r.get(0))
                        .optional()?,
                };
                (record, ticket)
            }
            EventBody::Agent {
                detail,
                agent,
                deleted,
            } => (
                EventRecord {
                    detail: detail.clone(),
                    deleted: *deleted,
                    state: Some(State::Agent(AgentRecord::from(agent))),
                    ..EventRecord::default()
                },
                None,
            ),
            EventBody::Reviewer {
                detail,
                reviewer,
                deleted,
            } => (
                EventRecord {
                    detail: detail.clone(),
                    deleted: *deleted,
                    state: Some(State::Reviewer(ReviewerRecord::from(reviewer))),
                    ..EventRecord::default()
                },
                None,
            ),
        };
        let first = std::mem::replace(&mut self.first, false).then_some(1);
        self.tx
            .prepare_cached(
                "INSERT INTO events (seq, time_ms, ticket, first, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                event.seq as i64,
                event.time_ms,
                ticket,
                first,
                encode(&record)
            ])
            .map_err(|err| match err.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::WrittenElsewhere(
                    format!(
                        "event {} is in the store's log already: another process wrote to this \
                         store under this server, which stops rather than write beside it; run one \
                         server per data directory, then restart this one",
                        event.seq
                    ),
                ),
                _ => err.into(),
            })?;
        Ok(())
    }
}

/// One stored row of the log.
struct Row {
    seq: u64,
    time_ms: i64,
    ticket: Option<i64>,
    record: EventRecord,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, Option<i64>, Vec<u8>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode_row(
    (seq, time_ms, ticket, body): (i64, i64, Option<i64>, Vec<u8>),
) -> Result<Row, StoreError> {
    Ok(Row {
        seq: seq as u64,
        time_ms,
        ticket,
        record: decode("event", &body)?,
    })
}

/// Expands rows into events, remembering the states it expanded so that a later change in
/// the same read applies to them without another query.
struct Expander<'c> {
    conn: &'c Connection,
    states: HashMap<u64, Vec<u8>>,
    /// Changes being applied on top of each other right now.
    depth: u32,
}

impl<'c> Expander<'c> {
    fn new(conn: &'c Connection) -> Self {
        Expander {
            conn,
            states: HashMap::new(),
            depth: 0,
        }
    }

    /// The ticket or escalation record bytes the event at `seq` carries.
    fn state_at(&mut self, seq: u64) -> Result<Vec<u8>, StoreError> {
        if let Some(bytes) = self.states.get(&seq) {
            return Ok(bytes.clone());
        }
        let stored = self
            .conn
            .prepare_cached("SELECT seq, time_ms, ticket, body FROM events WHERE seq = ?1")?
            .query_row([seq as i64], row)
            .optional()?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("event {seq}, which a later event changes, is gone"))
            })?;
        let row = decode_row(stored)?;
        self.state(&row)
    }

    /// The record bytes of the row's ticket or escalation state.
    fn state(&mut self, row: &Row) -> Result<Vec<u8>, StoreError> {
        let bytes = match &row.record.state {
            Some(State::Ticket(bytes) | State::Escalation(bytes)) => bytes.clone(),
            Some(State::TicketChange(change) | State::EscalationChange(change)) => {
                let base = row.seq.checked_sub(change.back).ok_or_else(|| {
                    StoreError::Corrupt(format!("event {} changes one before the log", row.seq))
                })?;
                self.depth += 1;
                if self.depth > MAX_CHAIN {
                    return Err(StoreError::Corrupt(format!(
                        "event {} is more than {MAX_CHAIN} changes from a whole state",
                        row.seq
                    )));
                }
                let old = self.state_at(base);
                self.depth -= 1;
                delta::apply(&old?, change)?
            }
            Some(State::TicketClosed(_)) => {
                let id = row.ticket.ok_or_else(|| {
                    StoreError::Corrupt(format!("event {} closes no ticket", row.seq))
                })?;
                self.conn
                    .prepare_cached("SELECT body FROM tickets WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))?
            }
            Some(State::EscalationDecided(id)) => self
                .conn
                .prepare_cached("SELECT body FROM escalations WHERE escalation_id = ?1")?
                .query_row([id], |r| r.get(0))?,
            Some(State::Agent(_) | State::Reviewer(_)) | None => {
                return Err(StoreError::Corrupt(format!(
                    "event {} carries no ticket or escalation",
                    row.seq
                )))
            }
        };
        self.states.insert(row.seq, bytes.clone());
        Ok(bytes)
    }

    fn event(&mut self, row: Row) -> Result<Event, StoreError> {
        let body = match &row.record.state {
            Some(State::Ticket(_) | State::TicketChange(_) | State::TicketClosed(_)) => {
                EventBody::Ticket {
                    kind: records::ticket_event_from(row.record.kind)?,
                    detail: row.record.detail.clone(),
                    ticket: records::ticket_from(&self.state(&row)?)?,
                }
            }
            Some(
                State::Escalation(_) | State::EscalationChange(_) | State::EscalationDecided(_),
            ) => EventBody::Escalation {
                kind: records::escalation_event_from(row.record.kind)?,
                escalation: records::escalation_from(&self.state(&row)?)?,
                previous_reviewer: row.record.previous_reviewer.clone(),
            },
            Some(State::Agent(agent)) => EventBody::Agent {
                detail: row.record.detail.clone(),
                agent: agent.clone().try_into()?,
                deleted: row.record.deleted,
            },
            Some(State::Reviewer(reviewer)) => EventBody::Reviewer {
                detail: row.record.detail.clone(),
                reviewer: reviewer.clone().into(),
                deleted: row.record.deleted,
            },
            None => {
                return Err(StoreError::Corrupt(format!(
                    "event {} carries nothing",
                    row.seq
                )))
            }
        };
        Ok(Event {
            seq: row.seq,
            time_ms: row.time_ms,
            body,
        })
    }
}

/// The events a query (`SELECT seq, time_ms, ticket, body ...`) selects, expanded. One read
/// transaction covers the query and every earlier event a change is read against, so a
/// compaction committed in between (which may rewrite a change whole and drop its base)
/// cannot leave a change without its base.
pub(super) fn read(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Event>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let rows: Vec<_> = tx
        .prepare_cached(sql)?
        .query_map(params, row)?
        .collect::<Result<_, _>>()?;
    let mut expander = Expander::new(&tx);
    let events = rows
        .into_iter()
        .map(|stored| expander.event(decode_row(stored)?))
        .collect::<Result<Vec<_>, _>>()?;
    drop(expander);
    tx.finish()?;
    Ok(events)
}

/// Most events one commit compacts away; a backlog goes over the following commits.
const COMPACT_ROWS: i64 = 5_000;

/// Drops the events older than `cutoff_ms`: a contiguous prefix of the log, never its newest
/// event (the head sequence is read from it), at most [`COMPACT_ROWS`] (or twice what this
/// commit writes, so a backlog shrinks under any write rate). Returns whether old events
/// remain for the next commit.
pub(super) fn compact(
    tx: &Transaction<'_>,
    cutoff_ms: i64,
    written: usize,
) -> Result<bool, StoreError> {
    let limit = COMPACT_ROWS.max(2 * written as i64);
    let (oldest, newest): (Option<i64>, Option<i64>) =
        // Two single-aggregate subqueries: each is one step to an end of the table, where
        // `MIN(seq), MAX(seq)` together would read every row.
        tx.query_row(
            "SELECT (SELECT MIN(seq) FROM events), (SELECT MAX(seq) FROM events)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    let (Some(oldest), Some(newest)) = (oldest, newest) else {
        return Ok(false);
    };
    let newer: Option<i64> = tx.query_row(
        "SELECT MIN(seq) FROM (SELECT seq, time_ms FROM events ORDER BY seq LIMIT ?1)
         WHERE time_ms >= ?2",
        params![limit, cutoff_ms],
        |r| r.get(0),
    )?;
    let cut = newer.unwrap_or(oldest + limit).min(newest);
    if cut <= oldest {
        return Ok(false);
    }
    keep_whole_from(tx, cut)?;
    let deleted = tx.execute("DELETE FROM events WHERE seq < ?1", [cut])?;
    Ok(deleted as i64 >= limit)
}

/// Rewrites whole every event at or after `cut` in the commit that straddles it whose state
/// is a change to an event before `cut`, and marks `cut` as where a commit's events start.
fn keep_whole_from(tx: &Transaction<'_>, cut: i64) -> Result<(), StoreError> {
    let next_commit: Option<i64> = tx.query_row(
        "SELECT MIN(seq) FROM events WHERE seq > ?1 AND first = 1",
        [cut],
        |r| r.get(0),
    )?;
    let rows: Vec<_> = tx
        .prepare_cached(
            "SELECT seq, time_ms, ticket, body FROM events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
        )?
        .query_map(params![cut, next_commit.unwrap_or(i64::MAX)], row)?
        .collect::<Result<_, _>>()?;
    let mut expander = Expander::new(tx);
    for stored in rows {
        let row = decode_row(stored)?;
        let back = match &row.record.state {
            Some(State::TicketChange(c)) | Some(State::EscalationChange(c)) => c.back,
            _ => continue,
        };
        let base = row.seq.checked_sub(back).ok_or_else(|| {
            StoreError::Corrupt(format!("event {} changes an event before the log", row.seq))
        })?;
        if base >= cut as u64 {
            continue;
        }
        let whole = match &row.record.state {
            Some(State::TicketChange(_)) => State::Ticket(expander.state(&row)?),
            _ => State::Escalation(expander.state(&row)?),
        };
        let record = EventRecord {
            state: Some(whole),
            ..row.record
        };
        tx.execute(
            "UPDATE events SET body = ?2 WHERE seq = ?1",
            params![row.seq as i64, encode(&record)],
        )?;
    }
    tx.execute("UPDATE events SET first = 1 WHERE seq = ?1", [cut])?;
    Ok(())
}
