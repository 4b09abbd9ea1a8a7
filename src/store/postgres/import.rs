//! Copying a whole desk from another store into an empty PostgreSQL one
//! (`servicedesk migrate`), in one transaction: the copy is there whole or not at all.

use super::super::{CommitBatch, KeyChange, Store, StoreError};
use super::{log, query_opt, write, PostgresStore};

/// Events read from the source at a time.
const PAGE: usize = 1000;

/// What a copy wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub tickets: u64,
    pub escalations: u64,
    pub events: u64,
    pub agents: u64,
    pub reviewers: u64,
    pub keys: u64,
    /// The head of the log copied.
    pub head: u64,
}

impl PostgresStore {
    /// Copies every ticket, escalation, event, agent, reviewer, key, the settings and the
    /// running totals of `source` into this store, which must be empty and led by no server.
    pub fn import_from(&self, source: &dyn Store) -> Result<Copied, StoreError> {
        let mut writer = self.writer.lock().expect("writer poisoned");
        let session = match writer.as_mut() {
            Some(session) if !session.client.is_closed() => session,
            _ => writer.insert(self.new_session()?),
        };
        let statements = &mut session.statements;
        let mut tx = session.client.transaction()?;
        let busy = query_opt(
            &mut tx,
            statements,
            "SELECT
               EXISTS (SELECT 1 FROM meta WHERE key = 'seeded')
               OR EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM tickets),
               EXISTS (SELECT 1 FROM desk_lease WHERE expires_at > clock_timestamp())",
            &[],
        )?
        .map(|row| -> Result<(bool, bool), StoreError> { Ok((row.try_get(0)?, row.try_get(1)?)) })
        .transpose()?
        .unwrap_or((false, false));
        if busy.1 {
            return Err(StoreError::InUse(
                "a server runs on the target desk (it holds the desk's lease): stop every \
                 server of that desk before copying into it"
                    .into(),
            ));
        }
        if busy.0 {
            return Err(StoreError::InUse(
                "the target desk is not empty: copy into a new database or schema".into(),
            ));
        }
        let mut copied = Copied::default();
        super::super::each_ticket_page(source, |page| {
            for ticket in page {
                write::upsert_ticket(&mut tx, statements, ticket)?;
            }
            copied.tickets += page.len() as u64;
            Ok(())
        })?;
        super::super::each_escalation_page(source, |page| {
            for escalation in page {
                write::upsert_escalation(&mut tx, statements, escalation)?;
            }
            copied.escalations += page.len() as u64;
            Ok(())
        })?;
        let mut seq = 0;
        loop {
            let events = source.events_after(seq, PAGE)?;
            let Some(last) = events.last() else { break };
            seq = last.seq;
            log::append(&mut tx, statements, &events)?;
            copied.events += events.len() as u64;
        }
        copied.head = source.head_seq()?;
        if let Some(before) = source.retained()?.compacted_before_ms {
            write::set_meta(
                &mut tx,
                statements,
                "compacted_before_ms",
                &before.to_string(),
            )?;
        }
        let loaded = source.load()?;
        copied.agents = loaded.agents.len() as u64;
        copied.reviewers = loaded.reviewers.len() as u64;
        copied.keys = loaded.keys.len() as u64;
        let rest = CommitBatch {
            agents: loaded.agents,
            reviewers: loaded.reviewers,
            keys: loaded.keys.into_iter().map(KeyChange::Created).collect(),
            settings: loaded
                .settings
                .map(|s| (s, "servicedesk migrate".to_string())),
            mark_seeded: loaded.seeded,
            stats: Some(loaded.stats),
            ..CommitBatch::default()
        };
        write::commit(&mut tx, statements, &rest)?;
        tx.commit()?;
        Ok(copied)
    }
}
