//! API keys: generation, hashing, the in-memory key ring that authenticates every call, and
//! the permission names. Secrets are never stored or logged: only their SHA-256, compared in
//! constant time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::domain::desk::Actor;
use crate::store::KeyRecord;

pub const CUSTOMER_SERVICE: &str = "customer_service";
pub const ESCALATION: &str = "escalation";
pub const ADMIN: &str = "admin";
pub const AGENT: &str = "agent";
pub const ALL: &str = "*";
pub const PERMISSIONS: [&str; 5] = [CUSTOMER_SERVICE, ESCALATION, ADMIN, AGENT, ALL];

/// How often `last_used_time` is refreshed per key.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// The authenticated caller, inserted into each request for handlers.
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    pub permissions: Vec<String>,
    /// `None` for the development keys.
    pub key_id: Option<String>,
}

impl Client {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission || p == ALL)
    }

    pub fn is_admin(&self) -> bool {
        self.has(ADMIN)
    }

    /// The caller as the desk's rules see it.
    pub fn actor(&self) -> Actor {
        Actor {
            client_id: self.client_id.clone(),
            admin: self.is_admin(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed,
    Unknown,
}

struct Entry {
    record: KeyRecord,
    last_used_ms: AtomicI64,
    /// Cancelled when the key is revoked: streams opened with it end.
    revoked: CancellationToken,
}

/// Every key the desk accepts, by key id.
pub struct KeyRing {
    keys: HashMap<String, Entry>,
    dev_keys: Vec<([u8; 32], Client)>,
    /// Keys whose `last_used_ms` moved since the runtime last persisted them.
    used: Mutex<Vec<(String, i64)>>,
}

/// Random bytes of a key id; the id is their hex, twice as many characters.
const KEY_ID_BYTES: usize = 6;
/// Random bytes of a key's secret.
const SECRET_BYTES: usize = 24;

/// Whether `key_id` has the shape of the ids [`generate_key`] mints.
pub fn is_key_id(key_id: &str) -> bool {
    key_id.len() == 2 * KEY_ID_BYTES && key_id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A fresh key: the full secret to show once, and its record to keep.
pub fn generate_key(
    client_id: &str,
    client_name: &str,
    permissions: Vec<String>,
    now_ms: i64,
) -> (String, KeyRecord) {
    let mut id = [0u8; KEY_ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut id);
    rand::thread_rng().fill_bytes(&mut secret);
    let key_id = hex::encode(id);
    let secret = hex::encode(secret);
    let full = format!("sd_{key_id}_{secret}");
    let record = KeyRecord {
        key_id,
        client_id: client_id.to_string(),
        client_name: client_name.to_string(),
        permissions,
        secret_sha256: sha256(secret.as_bytes()),
        created_ms: now_ms,
        last_used_ms: None,
        revoked: false,
    };
    (full, record)
}

/// The client id and name of a desk's first admin key.
pub const FIRST_ADMIN: (&str, &str) = ("admin", "First admin");

/// Fewest characters of a secret an operator chooses ([`ChosenKey`]).
pub const CHOSEN_SECRET_MIN: usize = 32;

/// A key whose secret an operator chose, e.g. kept in a Kubernetes Secret, to be the desk's
/// first admin key: its id and the digest of its secret, never the secret itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ChosenKey {
    pub key_id: String,
    pub secret_sha256: [u8; 32],
}

impl ChosenKey {
    /// The key in `text` (surrounding white space ignored), if it has the shape of the keys
    /// [`generate_key`] mints: `sd_`, a key id of 12 hex digits, `_`, and a secret of at least
    /// [`CHOSEN_SECRET_MIN`] ASCII letters and digits.
    pub fn parse(text: &str) -> Option<ChosenKey> {
        let (key_id, secret) = parse_key(text.trim())?;
        (secret.len() >= CHOSEN_SECRET_MIN && secret.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| ChosenKey {
                key_id: key_id.to_string(),
                secret_sha256: sha256(secret.as_bytes()),
            })
    }

    /// Its record as an admin key with every permission, created at `now_ms`.
    pub fn admin_record(&self, now_ms: i64) -> KeyRecord {
        KeyRecord {
            key_id: self.key_id.clone(),
            client_id: FIRST_ADMIN.0.to_string(),
            client_name: FIRST_ADMIN.1.to_string(),
            permissions: vec![ALL.to_string()],
            secret_sha256: self.secret_sha256,
            created_ms: now_ms,
            last_used_ms: None,
            revoked: false,
        }
    }

    /// Whether `records` hold this key, unrevoked.
    pub fn is_among(&self, records: &[KeyRecord]) -> bool {
        records
            .iter()
            .any(|r| r.key_id == self.key_id && r.secret_sha256 == self.secret_sha256 && !r.revoked)
    }
}

/// Names the key only: the digest says nothing a log needs.
impl std::fmt::Debug for ChosenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChosenKey({})", self.key_id)
    }
}

/// Splits `sd_<key id>_<secret>`.
fn parse_key(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("sd_")?;
    let (key_id, secret) = rest.split_once('_')?;
    (is_key_id(key_id) && !secret.is_empty()).then_some((key_id, secret))
}

impl KeyRing {
    pub fn new(records: Vec<KeyRecord>, dev: bool) -> Self {
        let mut ring = KeyRing {
            keys: HashMap::new(),
            dev_keys: Vec::new(),
            used: Mutex::new(Vec::new()),
        };
        for record in records {
            ring.insert(record);
        }
        if dev {
            ring.dev_keys = vec![
                (
                    sha256(b"test-key-123"),
                    Client {
                        client_id: "test-client".into(),
                        client_name: "Test Client".into(),
                        permissions: vec![CUSTOMER_SERVICE.into(), ESCALATION.into()],
                        key_id: None,
                    },
                ),
                (
                    sha256(b"admin-key-456"),
                    Client {
                        client_id: "admin-client".into(),
                        client_name: "Admin Client".into(),
                        permissions: vec![ALL.into()],
                        key_id: None,
                    },
                ),
            ];
        }
        ring
    }

    pub fn dev_enabled(&self) -> bool {
        !self.dev_keys.is_empty()
    }

    pub fn insert(&mut self, record: KeyRecord) {
        let last_used = record.last_used_ms.unwrap_or(0);
        let revoked = CancellationToken::new();
        if record.revoked {
            revoked.cancel();
        }
        self.keys.insert(
            record.key_id.clone(),
            Entry {
                record,
                last_used_ms: AtomicI64::new(last_used),
                revoked,
            },
        );
    }

    /// Brings the ring up to the keys as stored by another server: adds the new ones and
    /// revokes (ending their streams) the ones revoked since.
    pub fn follow(&mut self, records: Vec<KeyRecord>) {
        for record in records {
            match self.keys.get(&record.key_id) {
                None => self.insert(record),
                Some(held) if record.revoked && !held.record.revoked => {
                    self.revoke(&record.key_id);
                }
                Some(_) => {}
            }
        }
    }

    /// Marks a key revoked, which ends the streams opened with it; returns its record as it
    /// is now.
    pub fn revoke(&mut self, key_id: &str) -> Option<KeyRecord> {
        let entry = self.keys.get_mut(key_id)?;
        entry.record.revoked = true;
        entry.revoked.cancel();
        Some(self.record(key_id).expect("exists"))
    }

    /// Cancelled when the key is revoked; never, for a key the ring does not hold (the
    /// development keys cannot be revoked).
    pub fn revocation(&self, key_id: Option<&str>) -> CancellationToken {
        key_id
            .and_then(|id| self.keys.get(id))
            .map(|e| e.revoked.clone())
            .unwrap_or_default()
    }

    pub fn record(&self, key_id: &str) -> Option<KeyRecord> {
        self.keys.get(key_id).map(|e| {
            let mut r = e.record.clone();
            let used = e.last_used_ms.load(Ordering::Relaxed);
            r.last_used_ms = (used > 0).then_some(used);
            r
        })
    }

    /// Records oldest first.
    pub fn records(&self) -> Vec<KeyRecord> {
        let mut all: Vec<KeyRecord> = self.keys.keys().filter_map(|k| self.record(k)).collect();
        all.sort_by(|a, b| (a.created_ms, &a.key_id).cmp(&(b.created_ms, &b.key_id)));
        all
    }

    /// Distinct clients holding a usable key.
    pub fn client_count(&self) -> usize {
        let mut clients: Vec<&str> = self
            .keys
            .values()
            .filter(|e| !e.record.revoked)
            .map(|e| e.record.client_id.as_str())
            .chain(self.dev_keys.iter().map(|(_, c)| c.client_id.as_str()))
            .collect();
        clients.sort_unstable();
        clients.dedup();
        clients.len()
    }

    /// Checks a presented key. Constant-time on the secret; the key id only selects the entry.
    pub fn authenticate(&self, presented: &str, now_ms: i64) -> Result<Client, AuthError> {
        let presented = presented.trim();
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        if let Some((key_id, secret)) = parse_key(presented) {
            let entry = self.keys.get(key_id).ok_or(AuthError::Unknown)?;
            let hash = sha256(secret.as_bytes());
            if !bool::from(hash.ct_eq(&entry.record.secret_sha256)) || entry.record.revoked {
                return Err(AuthError::Unknown);
            }
            let last = entry.last_used_ms.load(Ordering::Relaxed);
            if now_ms - last >= LAST_USED_RESOLUTION_MS
                && entry
                    .last_used_ms
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.used
                    .lock()
                    .expect("used list poisoned")
                    .push((key_id.to_string(), now_ms));
            }
            return Ok(Client {
                client_id: entry.record.client_id.clone(),
                client_name: entry.record.client_name.clone(),
                permissions: entry.record.permissions.clone(),
                key_id: Some(entry.record.key_id.clone()),
            });
        }
        let hash = sha256(presented.as_bytes());
        let mut found = None;
        for (dev_hash, client) in &self.dev_keys {
            if bool::from(hash.ct_eq(dev_hash)) {
                found = Some(client.clone());
            }
        }
        found.ok_or(AuthError::Unknown)
    }

    /// Whether `presented` is a generated key whose id the ring does not hold: one created
    /// since the ring was last brought up to date, on a server that follows another.
    pub fn lacks(&self, presented: &str) -> bool {
        parse_key(presented.trim()).is_some_and(|(key_id, _)| !self.keys.contains_key(key_id))
    }

    /// Key uses to persist since the last call.
    pub fn take_used(&self) -> Vec<(String, i64)> {
        std::mem::take(&mut *self.used.lock().expect("used list poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chosen_key_authenticates_as_the_first_admin_and_only_its_shape_is_taken() {
        let presented = format!("sd_0123456789ab_{}", "Zz9".repeat(11));
        let chosen = ChosenKey::parse(&format!("  {presented}\n")).expect("a well-formed key");
        assert_eq!(chosen.key_id, "0123456789ab");
        let record = chosen.admin_record(5);
        assert!(chosen.is_among(std::slice::from_ref(&record)));
        let ring = KeyRing::new(vec![record.clone()], false);
        let client = ring
            .authenticate(&presented, 10)
            .expect("the chosen key works");
        assert!(client.is_admin());
        assert_eq!(client.client_id, FIRST_ADMIN.0);
        let revoked = KeyRecord {
            revoked: true,
            ..record
        };
        assert!(!chosen.is_among(&[revoked]));
        let (_, generated) = generate_key("c", "C", vec![ALL.into()], 1);
        assert!(!chosen.is_among(&[generated]));
        // One key less than its shape: too short, not alphanumeric, two keys, a bad id, empty.
        let short = format!("sd_0123456789ab_{}", "a".repeat(CHOSEN_SECRET_MIN - 1));
        let spaced = format!("sd_0123456789ab_{} {}", "a".repeat(20), "b".repeat(20));
        let two = format!("{presented}\n{presented}");
        let bad_id = format!("sd_0123456789_{}", "a".repeat(40));
        let punctuated = format!("sd_0123456789ab_{}!", "a".repeat(40));
        for bad in [short, spaced, two, bad_id, punctuated, String::new()] {
            assert_eq!(ChosenKey::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn generated_keys_authenticate_and_revoked_ones_do_not() {
        let (secret, record) = generate_key("c", "C", vec![ESCALATION.into()], 1);
        assert!(secret.starts_with(&format!("sd_{}_", record.key_id)));
        let mut ring = KeyRing::new(vec![record.clone()], false);
        let client = ring.authenticate(&secret, 100_000).unwrap();
        assert_eq!(client.client_id, "c");
        assert!(client.has(ESCALATION) && !client.has(ADMIN));
        assert_eq!(ring.take_used().len(), 1);
        let wrong = format!("{}x", secret);
        assert_eq!(ring.authenticate(&wrong, 1), Err(AuthError::Unknown));
        ring.revoke(&record.key_id);
        assert_eq!(ring.authenticate(&secret, 1), Err(AuthError::Unknown));
    }

    #[test]
    fn development_keys_only_with_dev() {
        let ring = KeyRing::new(vec![], true);
        assert!(ring.authenticate("admin-key-456", 0).unwrap().is_admin());
        assert!(!ring.authenticate("test-key-123", 0).unwrap().is_admin());
        let ring = KeyRing::new(vec![], false);
        assert_eq!(
            ring.authenticate("admin-key-456", 0),
            Err(AuthError::Unknown)
        );
        assert_eq!(ring.authenticate("  ", 0), Err(AuthError::Missing));
    }

    #[test]
    fn the_record_never_holds_the_secret() {
        let (secret, record) = generate_key("c", "C", vec![ALL.into()], 1);
        let tail = secret.rsplit('_').next().unwrap();
        assert!(!format!("{record:?}").contains(tail));
    }
}
