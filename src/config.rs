//! Configuration: flags and environment (parsed by clap in `main`), an optional TOML file, and
//! defaults, merged in that order of precedence and validated into [`Config`]. The raw file
//! form rejects unknown keys so a typo is an error, not a silently ignored setting.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::classify::{Classifier, TopicRule};
use crate::domain::desk::Settings;
use crate::domain::mesh::{RoutingStrategy, Tier};
use crate::domain::policy::{Policy, PolicyRule};
use crate::keys::{ChosenKey, CHOSEN_SECRET_MIN};
use crate::store::postgres::Password;
use crate::store::{Durability, StoreSettings};
pub use access::{Access, AccessLog, LogSection};
pub use database::database;
use database::replication;
pub use desk::SeedReviewer;
pub use server::ServerLimits;

/// The TOML file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    /// How log lines are written (`text` or `json`); the command line and environment win.
    pub log_format: Option<LogFormat>,
    /// Where to serve Prometheus metrics (`/metrics`, plain HTTP); off when absent.
    pub metrics_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// A file holding the key a new desk takes as its first admin key (see [`Config`]).
    pub admin_key_file: Option<PathBuf>,
    pub dev: Option<bool>,
    /// Deprecated: `[store] synchronous` replaces it.
    pub synchronous: Option<Durability>,
    /// Seconds in-flight calls get to finish on shutdown.
    pub shutdown_grace_secs: Option<u64>,
    /// A TOML knowledge base replacing the built-in one.
    pub knowledge_base: Option<PathBuf>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub desk: DeskSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub server: ServerLimits,
    pub classifier: Option<ClassifierSection>,
    pub policy: Option<PolicySection>,
    /// Serve TLS instead of plaintext h2c.
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub log: LogSection,
}

/// PEM files for TLS; with `client_ca`, clients must present a certificate it signed (mTLS).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, with the spans (a call's method and trace id) it was written in.
    Json,
}

/// How servers sharing one desk (in PostgreSQL) choose the one that writes, and reach it.
#[derive(Clone, Debug, PartialEq)]
pub struct Replication {
    /// What the other servers dial to forward changes to this one while it leads; `None`:
    /// derived from the address listened on.
    pub advertise_address: Option<String>,
    /// How long the desk's lease lasts unless renewed.
    pub lease_ttl: std::time::Duration,
}

/// How the store commits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `full` (default): an acknowledged change survives power loss; `normal`: it survives a
    /// crash of the process.
    pub synchronous: Option<Durability>,
    /// Check the whole store at start (reads all of it) instead of the quick check.
    pub full_check: Option<bool>,
    /// Keep the desk in this PostgreSQL database (`postgres://user@host:port/db`) instead of
    /// the embedded store.
    pub url: Option<String>,
    /// With `url`: a file holding the database's password (one trailing line break is no part
    /// of it), read once at start.
    pub password_file: Option<PathBuf>,
    /// With `url`: the address the other servers sharing the desk reach this one at, to forward
    /// changes while it leads (`http://host:port`); default: the listen address (loopback when
    /// listening on every interface).
    pub advertise_address: Option<String>,
    /// With `url`: how long the desk's lease lasts unless renewed (renewed five times as
    /// often), which bounds a failover; default 5.
    pub lease_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskSection {
    pub name: Option<String>,
    pub routing_strategy: Option<RoutingStrategy>,
    pub escalation_timeout_secs: Option<u64>,
    pub max_review_reassignments: Option<u32>,
    pub queue_timeout_secs: Option<u64>,
    /// How long a remote agent has to answer an assignment.
    pub assignment_timeout_secs: Option<u64>,
    /// How long the event log keeps events; older ones are compacted away and a watch that
    /// resumes before them gets OUT_OF_RANGE. 0 keeps them for ever.
    pub event_retention_secs: Option<u64>,
    /// Specialty sets handed to seeded agents in rotation, across all tiers in order.
    pub specialty_rotation: Option<Vec<Vec<String>>>,
    pub tiers: Option<Vec<TierSection>>,
    pub reviewers: Option<Vec<ReviewerSection>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSection {
    pub name: String,
    /// Built-in agents seeded in this tier on the first start.
    #[serde(default)]
    pub agents: u32,
    pub capacity: Option<u32>,
    /// Confidence a built-in agent needs to resolve on its own, 0..1.
    pub threshold: Option<f64>,
    /// What the tier's agents are asked to do, sent to remote agents with each assignment.
    pub instructions: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewerSection {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub specialties: Vec<String>,
    pub max_concurrent: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSection {
    pub rules: Vec<TopicRule>,
    pub fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub rules: Vec<PolicyRule>,
}

/// Input limits of API.md, configurable.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub customer_id_bytes: usize,
    pub inquiry_bytes: usize,
    pub context_entries: usize,
    pub context_key_bytes: usize,
    pub context_value_bytes: usize,
    pub idempotency_key_bytes: usize,
    pub topic_bytes: usize,
    pub text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            customer_id_bytes: 128,
            inquiry_bytes: 16 * 1024,
            context_entries: 32,
            context_key_bytes: 64,
            context_value_bytes: 1024,
            idempotency_key_bytes: 128,
            topic_bytes: 64,
            text_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// Every limit at least 1, and none that a request could not satisfy inside the largest
    /// message the server accepts.
    fn validate(&self, max_message_bytes: usize) -> Result<(), ConfigError> {
        let fields = [
            ("customer_id_bytes", self.customer_id_bytes),
            ("inquiry_bytes", self.inquiry_bytes),
            ("context_entries", self.context_entries),
            ("context_key_bytes", self.context_key_bytes),
            ("context_value_bytes", self.context_value_bytes),
            ("idempotency_key_bytes", self.idempotency_key_bytes),
            ("topic_bytes", self.topic_bytes),
            ("text_bytes", self.text_bytes),
        ];
        for (name, value) in fields {
            if value == 0 || value > max_message_bytes {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} = {value} is not within 1..{max_message_bytes} (server.max_message_bytes)"
                )));
            }
        }
        Ok(())
    }
}

/// Values given on the command line or in the environment (they win over the file).
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    /// Wins over `[store] advertise_address` (one value per server, where the file is shared).
    pub advertise_address: Option<String>,
    pub metrics_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub admin_key_file: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub dev: bool,
    pub full_check: bool,
    /// `SERVICEDESK_STORE_URL`: wins over `[store] url`.
    pub store_url: Option<String>,
    /// `SERVICEDESK_STORE_PASSWORD_FILE`: wins over `[store] password_file`.
    pub store_password_file: Option<PathBuf>,
    /// `SERVICEDESK_STORE_PASSWORD`: the database's password itself.
    pub store_password: Option<Password>,
    /// Wins over `[log] access`.
    pub access_log: Option<AccessLog>,
}

#[derive(Clone, Debug)]
pub struct SeedAgent {
    pub name: String,
    pub tier: String,
    pub specialties: BTreeSet<String>,
    pub capacity: u32,
}

/// The validated configuration the server runs with.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// How servers sharing a desk in PostgreSQL choose and reach the one that writes.
    pub replication: Replication,
    /// Where Prometheus metrics are served (`/metrics`); `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The log format the file asks for, if any.
    pub log_format: Option<LogFormat>,
    /// Which calls get an access line.
    pub access: Access,
    pub dev: bool,
    /// The key a new desk takes as its first admin key, read from `admin_key_file` (only its id
    /// and digest); `None`: a new desk generates one (and writes it to `admin.key`), or, in
    /// development mode, has none. A desk that already has keys takes nothing from it.
    pub first_admin_key: Option<ChosenKey>,
    pub store: StoreSettings,
    /// Run the thorough consistency check of the store at start, not the quick one.
    pub full_check: bool,
    pub shutdown_grace: std::time::Duration,
    pub desk_name: String,
    pub tiers: Vec<Tier>,
    pub seed_agents: Vec<SeedAgent>,
    pub seed_reviewers: Vec<SeedReviewer>,
    pub settings: Settings,
    pub classifier: Classifier,
    pub policy: Policy,
    pub knowledge_base: Option<PathBuf>,
    pub limits: Limits,
    pub server: ServerLimits,
    pub tls: Option<TlsSection>,
    /// How long events are kept; `None`: for ever.
    pub event_retention: Option<std::time::Duration>,
    /// What the configuration still accepts but should be changed (deprecated keys), for the
    /// log once logging is up.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// Parses a TOML config text.
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}

impl Config {
    /// Reads the file named by the overrides (if any) and validates the merge.
    pub fn load(overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                parse_file(&text, path)?
            }
            None => FileConfig::default(),
        };
        Config::resolve(file, overrides)
    }

    /// Merges overrides, file and defaults, and validates the result.
    pub fn resolve(file: FileConfig, overrides: Overrides) -> Result<Config, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(m);
        let listen_text = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:50051".to_string());
        let listen = address(&listen_text, "listen address")?;
        let metrics_listen = match overrides.metrics_listen.or(file.metrics_listen) {
            None => None,
            Some(text) => Some(address(&text, "metrics listen address")?),
        };
        let data_dir = overrides
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let dev = overrides.dev || file.dev.unwrap_or(false);
        let mut warnings = Vec::new();
        let first_admin_key = match overrides.admin_key_file.or(file.admin_key_file) {
            Some(path) => Some(chosen_key(&path, &mut warnings)?),
            None => None,
        };

        let desk = desk::resolve(file.desk)?;
        let classifier = match file.classifier {
            Some(c) => Classifier::new(c.rules, c.fallback.unwrap_or_else(|| "general".into()))
                .map_err(|e| invalid(format!("classifier: {e}")))?,
            None => Classifier::default_rules(),
        };
        let policy = match file.policy {
            Some(p) => Policy::new(p.rules).map_err(|e| invalid(format!("policy: {e}")))?,
            None => Policy::default_rules(),
        };
        let server = file.server;
        server.validate()?;
        file.limits.validate(server.max_message_bytes)?;
        if file.synchronous.is_some() {
            warnings.push(
                "the top-level `synchronous` key is deprecated: move it into the [store] section"
                    .to_string(),
            );
        }
        let durability = file
            .store
            .synchronous
            .or(file.synchronous)
            .unwrap_or_default();
        let replication = replication(&file.store, overrides.advertise_address.as_deref())?;
        let given = database::GivenDatabase {
            url: overrides.store_url,
            password_file: overrides.store_password_file,
            password: overrides.store_password,
        };
        let url = database::target(&file.store, given, &mut warnings)?;
        let access = access::resolve(&file.log, overrides.access_log)?;
        Ok(Config {
            replication,
            metrics_listen,
            log_format: file.log_format,
            access,
            listen,
            dev,
            first_admin_key,
            store: StoreSettings {
                data_dir,
                durability,
                url,
            },
            full_check: overrides.full_check || file.store.full_check.unwrap_or(false),
            shutdown_grace: std::time::Duration::from_secs(file.shutdown_grace_secs.unwrap_or(10)),
            desk_name: desk.name,
            tiers: desk.tiers,
            seed_agents: desk.seed_agents,
            seed_reviewers: desk.seed_reviewers,
            settings: desk.settings,
            classifier,
            policy,
            knowledge_base: file.knowledge_base,
            limits: file.limits,
            server,
            tls: file.tls,
            event_retention: desk.event_retention,
            warnings,
        })
    }
}

/// `text` as `HOST:PORT`; `what` names the setting when it is not.
fn address(text: &str, what: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::Invalid(format!("{what} {text:?} is not HOST:PORT")))
}

/// Bytes of an admin key file read, at most: a key is short.
const ADMIN_KEY_FILE_BYTES: u64 = 4096;

/// The key in an admin key file, checked (see [`crate::secrets`]).
fn chosen_key(path: &Path, warnings: &mut Vec<String>) -> Result<ChosenKey, ConfigError> {
    let named = format!("the admin key file {}", path.display());
    let file =
        crate::secrets::read(path, &named, ADMIN_KEY_FILE_BYTES).map_err(ConfigError::Invalid)?;
    warnings.extend(file.exposed);
    let text = String::from_utf8_lossy(&file.bytes);
    ChosenKey::parse(&text).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "the admin key file {} does not hold one key of the form sd_<key id: 12 hex \
             digits>_<secret: at least {CHOSEN_SECRET_MIN} letters or digits>; make one with: \
             echo \"sd_$(openssl rand -hex 6)_$(openssl rand -hex 24)\"",
            path.display()
        ))
    })
}

mod access;
mod database;
mod defaults;
mod desk;
mod server;
#[cfg(test)]
mod tests;
