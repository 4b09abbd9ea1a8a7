//! The desk's lease ([`SharedStore`]): which of the servers sharing the database writes.
//!
//! One row, `desk_lease`, holds the holder, its advertised address, the epoch and the expiry,
//! all by the database's clock (`clock_timestamp()`), so no two servers' clocks are compared.
//! Taking it is one statement that succeeds only on an expired row and raises the epoch.
//! Every commit of a leader reads the row `FOR SHARE` first and gives up unless the epoch is
//! still its own (see [`fence`]): a takeover's `UPDATE` waits for a commit under way, and a
//! commit after a takeover sees the new epoch, so no commit of a deposed leader ever lands
//! after its successor loaded the desk.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Transaction;

use super::super::{KeyRecord, Lease, SharedStore, StoreError};
use super::{query, query_opt, PostgresStore, Session, Statements};

/// The channel a commit notifies and followers listen on.
pub(super) const CHANNEL: &str = "servicedesk_commits";

/// How long a lease statement waits for the row's lock (a commit holding it `FOR SHARE`)
/// before it gives up and is tried again on the next round.
const LOCK_WAIT: &str = "2s";

/// Checks, in a commit's transaction, that the lease is still `epoch`'s, and holds it so until
/// the commit ends. `epoch` 0: the store leads nothing (tests, offline tools) and commits
/// unfenced.
pub(super) fn fence(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    epoch: u64,
) -> Result<(), StoreError> {
    if epoch == 0 {
        return Ok(());
    }
    let row = query_opt(
        tx,
        statements,
        "SELECT epoch, holder FROM desk_lease WHERE id = 1 FOR SHARE",
        &[],
    )?;
    let (now, holder): (i64, String) = match row {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, String::new()),
    };
    if u64::try_from(now).ok() == Some(epoch) {
        return Ok(());
    }
    Err(StoreError::Deposed(format!(
        "this server no longer leads the desk: it held the lease's epoch {epoch}, and {holder} \
         holds epoch {now} now; it writes nothing more"
    )))
}

fn millis(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

impl PostgresStore {
    /// Runs `f` on the lease's own connection (opened on first use, and again after it
    /// broke), so renewals never queue behind a commit's batch.
    fn on_lease<T>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut lease = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        let session = match lease.as_mut() {
            Some(session) if !session.client.is_closed() => session,
            _ => {
                let mut session = self.new_session()?;
                session
                    .client
                    .batch_execute(&format!("SET lock_timeout = '{LOCK_WAIT}'"))?;
                lease.insert(session)
            }
        };
        f(session)
    }
}

impl SharedStore for PostgresStore {
    fn try_lead(
        &self,
        holder: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let taken = self.on_lease(|s| {
            query_opt(
                &mut s.client,
                &mut s.statements,
                "INSERT INTO desk_lease (id, holder, address, epoch, expires_at)
                 VALUES (1, $1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
                 ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder,
                     address = EXCLUDED.address, epoch = desk_lease.epoch + 1,
                     expires_at = EXCLUDED.expires_at
                 WHERE desk_lease.expires_at < clock_timestamp()
                 RETURNING epoch",
                &[&holder, &address, &millis(ttl)],
            )
        })?;
        let Some(row) = taken else {
            return Ok(None);
        };
        let epoch: i64 = row.try_get(0)?;
        let epoch = u64::try_from(epoch)
            .map_err(|_| StoreError::Corrupt(format!("lease epoch {epoch}")))?;
        self.fence.store(epoch, Ordering::SeqCst);
        Ok(Some(epoch))
    }

    fn renew(&self, epoch: u64, ttl: Duration) -> Result<bool, StoreError> {
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        let renewed = self.on_lease(|s| {
            query(
                &mut s.client,
                &mut s.statements,
                "UPDATE desk_lease SET expires_at = clock_timestamp() + $2 * interval '1 millisecond'
                 WHERE id = 1 AND epoch = $1 RETURNING epoch",
                &[&epoch, &millis(ttl)],
            )
        })?;
        Ok(!renewed.is_empty())
    }

    fn release(&self, epoch: u64) -> Result<(), StoreError> {
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        self.on_lease(|s| {
            query(
                &mut s.client,
                &mut s.statements,
                "UPDATE desk_lease SET expires_at = clock_timestamp() - interval '1 millisecond'
                 WHERE id = 1 AND epoch = $1 RETURNING epoch",
                &[&epoch],
            )
        })?;
        Ok(())
    }

    fn lease(&self) -> Result<Option<Lease>, StoreError> {
        let row = self.read(|s| {
            query_opt(
                &mut s.client,
                &mut s.statements,
                "SELECT holder, address, epoch,
                        (EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::BIGINT
                 FROM desk_lease WHERE id = 1",
                &[],
            )
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let epoch: i64 = row.try_get(2)?;
        Ok(Some(Lease {
            holder: row.try_get(0)?,
            address: row.try_get(1)?,
            epoch: u64::try_from(epoch).unwrap_or(0),
            expires_in_ms: row.try_get(3)?,
        }))
    }

    fn wait_for_commits(&self, timeout: Duration) -> Result<(), StoreError> {
        let mut listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        let client = match listener.as_mut() {
            Some(client) if !client.is_closed() => client,
            _ => {
                let mut session = self.new_session()?;
                session.client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                // Whatever was committed before the LISTEN took effect is for the caller's
                // next read to find: say so now.
                *listener = Some(session.client);
                return Ok(());
            }
        };
        let mut notifications = client.notifications();
        if notifications.is_empty() {
            notifications.timeout_iter(timeout).next()?;
        }
        // One read answers every commit notified so far.
        while notifications.iter().next()?.is_some() {}
        Ok(())
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|s| super::read_keys(&mut s.client, &mut s.statements))
    }
}
