//! Configuration: flags and environment (parsed by clap in `main`), an optional TOML file, and
//! defaults, merged in that order of precedence and validated into [`Config`]. The raw file
//! form rejects unknown keys so a typo is an error, not a silently ignored setting.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::classify::{Classifier, TopicRule};
use crate::domain::desk::Settings;
use crate::domain::limits::{self, is_name, CAPACITY, DISPLAY_NAME_BYTES};
use crate::domain::mesh::{RoutingStrategy, Tier};
use crate::domain::policy::{Policy, PolicyRule};
use crate::keys::{ChosenKey, CHOSEN_SECRET_MIN};
use crate::store::postgres::Password;
use crate::store::{Durability, StoreSettings};
pub use access::{Access, AccessLog, LogSection};
pub use database::database;
use database::replication;
use defaults::{
    default_instructions, default_reviewers, default_rotation, default_threshold, default_tiers,
};

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

/// Names and ids the desk seeds must be unique and well-formed, or the first start would fail
/// half-way and every later start would try again.
fn validate_seed(
    tiers: &[Tier],
    agents: &[SeedAgent],
    reviewers: &[ReviewerSection],
) -> Result<(), ConfigError> {
    let well_formed = is_name;
    let mut tier_names = BTreeSet::new();
    for tier in tiers {
        if !well_formed(&tier.name) || !tier_names.insert(tier.name.to_lowercase()) {
            return Err(ConfigError::Invalid(format!(
                "tier name {:?} must be unique, 1..64 bytes of letters, digits, '_', '-', '.'",
                tier.name
            )));
        }
    }
    let mut agent_names = BTreeSet::new();
    for agent in agents {
        if !agent_names.insert(agent.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "two seeded agents would be named {}",
                agent.name
            )));
        }
    }
    let mut ids = BTreeSet::new();
    for reviewer in reviewers {
        if !well_formed(&reviewer.id) || !ids.insert(reviewer.id.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "reviewer id {:?} must be unique, 1..64 bytes of letters, digits, '_', '-', '.'",
                reviewer.id
            )));
        }
        if reviewer.name.trim().is_empty() || reviewer.name.len() > DISPLAY_NAME_BYTES {
            return Err(ConfigError::Invalid(format!(
                "reviewer {} needs a name of 1..{DISPLAY_NAME_BYTES} bytes",
                reviewer.id
            )));
        }
        if reviewer
            .max_concurrent
            .is_some_and(|m| !CAPACITY.contains(&m))
        {
            return Err(ConfigError::Invalid(format!(
                "reviewer {} max_concurrent must be within {}..{}",
                reviewer.id,
                CAPACITY.start(),
                CAPACITY.end()
            )));
        }
    }
    Ok(())
}

/// `http://host[:port]` or `https://host[:port]`, exactly as a browser sends it as Origin.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, port)| {
        if port.parse::<u16>().is_ok() {
            host
        } else {
            ""
        }
    });
    // As browsers send it: lower case, no default port, no trailing dot; anything else would
    // never match.
    let default_port = matches!(
        (scheme, rest.rsplit_once(':').map(|(_, p)| p)),
        ("http", Some("80")) | ("https", Some("443"))
    );
    matches!(scheme, "http" | "https")
        && !default_port
        && !host.is_empty()
        && !host.ends_with('.')
        && host.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
        })
}

/// Transport limits instead of tonic's defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Server streams (watches, agent streams) open at once across all connections; one
    /// more gets RESOURCE_EXHAUSTED.
    pub max_open_streams: usize,
    /// Calls the server works on at once, across all connections (health checks excepted);
    /// more are refused at once with RESOURCE_EXHAUSTED instead of queueing.
    pub max_concurrent_requests: usize,
    pub keepalive_interval_secs: u64,
    pub keepalive_timeout_secs: u64,
    /// Events kept in memory for live subscribers; one further behind catches up from the
    /// store instead of losing events.
    pub live_event_buffer: usize,
    /// Bytes of events, about, kept in memory for live subscribers, with their encodings: the
    /// oldest are let go past it, however few, and whoever still needs them reads the store.
    pub live_event_bytes: usize,
    /// A server stream whose client reads nothing for this long is ended with
    /// RESOURCE_EXHAUSTED naming the sequence to resume from, so it holds no memory for ever.
    pub stalled_stream_secs: u64,
    /// A stream ended that way whose client still takes nothing this much later: its
    /// connection is closed, the only way to free what HTTP/2 holds for a reader that never
    /// opens its window.
    pub stalled_connection_secs: u64,
    /// Calls one client (one key) may have in flight, of `max_concurrent_requests`; by
    /// default a quarter of them, so one caller cannot take the server from the others.
    pub max_requests_per_client: Option<usize>,
    /// Connections open at once; never more than the open-files limit allows.
    pub max_connections: usize,
    /// A connection that sends no request this long after it opened is closed.
    pub first_request_secs: u64,
    /// A connection with no call or stream open for this long is closed.
    pub idle_connection_secs: u64,
    /// A request's message must arrive within this long of the request's start.
    pub request_body_secs: u64,
    /// Origins (`https://host[:port]`) whose pages may call the services with gRPC-Web; none
    /// by default: the console is served from the port itself.
    pub cors_allowed_origins: Vec<String>,
}

impl ServerLimits {
    /// Calls one client may have in flight.
    pub fn per_client(&self) -> usize {
        self.max_requests_per_client
            .unwrap_or((self.max_concurrent_requests / 4).max(1))
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_message_bytes: 1024 * 1024,
            max_concurrent_streams: 256,
            max_concurrent_requests: 4096,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 10,
            live_event_buffer: 8192,
            live_event_bytes: 64 << 20,
            max_open_streams: 10_000,
            stalled_stream_secs: 30,
            stalled_connection_secs: 60,
            max_requests_per_client: None,
            max_connections: 10_000,
            first_request_secs: 5,
            idle_connection_secs: 300,
            request_body_secs: 10,
            cors_allowed_origins: Vec::new(),
        }
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
    pub seed_reviewers: Vec<ReviewerSection>,
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
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| invalid(format!("listen address {listen_text:?} is not HOST:PORT")))?;
        let metrics_listen = match overrides.metrics_listen.or(file.metrics_listen) {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(format!("metrics listen address {text:?} is not HOST:PORT"))
            })?),
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

        let desk = file.desk;
        let tier_sections = desk.tiers.unwrap_or_else(default_tiers);
        if tier_sections.is_empty() {
            return Err(invalid("desk.tiers must list at least one tier".into()));
        }
        let count = tier_sections.len();
        let mut tiers = Vec::new();
        for (i, t) in tier_sections.iter().enumerate() {
            let threshold = t.threshold.unwrap_or_else(|| default_threshold(i, count));
            if !(0.0..=1.0).contains(&threshold) {
                return Err(invalid(format!(
                    "tier {} threshold {threshold} is not within 0..1",
                    t.name
                )));
            }
            let capacity = t.capacity.unwrap_or(if i == 0 { 5 } else { 3 });
            if !CAPACITY.contains(&capacity) {
                return Err(invalid(format!(
                    "tier {} capacity {capacity} is not within {}..{}",
                    t.name,
                    CAPACITY.start(),
                    CAPACITY.end()
                )));
            }
            if t.agents > limits::MAX_SEEDED_AGENTS_PER_TIER {
                return Err(invalid(format!(
                    "tier {} asks for {} agents; at most {}",
                    t.name,
                    t.agents,
                    limits::MAX_SEEDED_AGENTS_PER_TIER
                )));
            }
            tiers.push(Tier {
                name: t.name.clone(),
                threshold,
                default_capacity: capacity,
                instructions: t
                    .instructions
                    .clone()
                    .unwrap_or_else(|| default_instructions(i, count)),
            });
        }
        let rotation = desk.specialty_rotation.unwrap_or_else(default_rotation);
        let mut seed_agents = Vec::new();
        for (tier, section) in tiers.iter().zip(&tier_sections) {
            for n in 1..=section.agents {
                let specialties = if rotation.is_empty() {
                    BTreeSet::new()
                } else {
                    rotation[seed_agents.len() % rotation.len()]
                        .iter()
                        .map(|s| s.trim().to_lowercase())
                        .collect()
                };
                seed_agents.push(SeedAgent {
                    name: format!("{}_Agent_{n}", tier.name),
                    tier: tier.name.clone(),
                    specialties,
                    capacity: tier.default_capacity,
                });
            }
        }
        let seed_reviewers = desk.reviewers.unwrap_or_else(default_reviewers);
        validate_seed(&tiers, &seed_agents, &seed_reviewers)?;
        let defaults = Settings::default();
        let ms = |secs: Option<u64>, default_ms: i64| {
            secs.map_or(default_ms, |s| {
                s.saturating_mul(1000).min(i64::MAX as u64) as i64
            })
        };
        let settings = Settings {
            routing: desk.routing_strategy.unwrap_or(defaults.routing),
            escalation_timeout_ms: ms(desk.escalation_timeout_secs, defaults.escalation_timeout_ms),
            max_review_reassignments: desk
                .max_review_reassignments
                .unwrap_or(defaults.max_review_reassignments),
            queue_timeout_ms: ms(desk.queue_timeout_secs, defaults.queue_timeout_ms),
            assignment_timeout_ms: ms(desk.assignment_timeout_secs, defaults.assignment_timeout_ms),
        };
        if let Some((name, reason)) = settings.violations().into_iter().next() {
            let key = match name {
                "max_review_reassignments" => name.to_string(),
                _ => format!("{name}_secs"),
            };
            return Err(invalid(format!("desk.{key} {reason}")));
        }
        let event_retention = match desk.event_retention_secs.unwrap_or(30 * 24 * 3600) {
            0 => None,
            secs if secs <= 10 * 365 * 24 * 3600 => Some(std::time::Duration::from_secs(secs)),
            secs => {
                return Err(invalid(format!(
                    "desk.event_retention_secs {secs} is more than ten years; use 0 to keep \
                     events for ever"
                )))
            }
        };
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
        if server.max_message_bytes < 64 * 1024
            || server.max_concurrent_streams == 0
            || server.max_concurrent_requests == 0
            || server.max_open_streams == 0
            || server.max_concurrent_requests > 1_000_000
            || server.max_open_streams > 1_000_000
            || !(1..=1_000_000).contains(&server.live_event_buffer)
            || !(1..=1 << 40).contains(&server.live_event_bytes)
            || !(1..=24 * 3600).contains(&server.stalled_stream_secs)
            || !(1..=24 * 3600).contains(&server.stalled_connection_secs)
            || server
                .max_requests_per_client
                .is_some_and(|n| !(1..=server.max_concurrent_requests).contains(&n))
            || !(1..=1_000_000).contains(&server.max_connections)
            || !(1..=3600).contains(&server.first_request_secs)
            || !(1..=7 * 24 * 3600).contains(&server.idle_connection_secs)
            || !(1..=3600).contains(&server.request_body_secs)
        {
            return Err(invalid(
                "server limits must be positive (max_concurrent_requests, max_open_streams, \
                 max_connections and live_event_buffer at most 1000000, live_event_bytes at \
                 most 1 TiB, \
                 max_requests_per_client at most max_concurrent_requests, stalled_stream_secs \
                 and stalled_connection_secs at most a day, first_request_secs and request_body_secs at most an hour, \
                 idle_connection_secs at most a week) and max_message_bytes at least 64 KiB"
                    .into(),
            ));
        }
        if let Some(bad) = server.cors_allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(invalid(format!(
                "[server] cors_allowed_origins: {bad:?} is not an origin as browsers send it; \
                 give each as scheme://host[:port] in lower case, without a path, a default \
                 port or *, e.g. \"https://console.example.com\""
            )));
        }
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
        let url = match overrides.store_url {
            Some(url) => Some((url, "--store-url (SERVICEDESK_STORE_URL)")),
            None => file.store.url.map(|url| (url, "[store] url")),
        };
        let password_file = match overrides.store_password_file {
            Some(path) => Some((
                path,
                "--store-password-file (SERVICEDESK_STORE_PASSWORD_FILE)",
            )),
            None => file
                .store
                .password_file
                .map(|path| (path, "[store] password_file")),
        };
        let url = match url {
            Some((url, source)) => Some(database(
                &url,
                source,
                password_file,
                overrides.store_password,
                &mut warnings,
            )?),
            None => {
                // A password for no database is a setting that went astray, not one to ignore.
                let stray = password_file
                    .map(|(_, source)| source)
                    .or(overrides.store_password.as_ref().map(Password::source));
                if let Some(source) = stray {
                    return Err(invalid(format!(
                        "{source} gives a database password, but no database URL is set \
                         ([store] url or SERVICEDESK_STORE_URL)"
                    )));
                }
                None
            }
        };
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
            desk_name: desk.name.unwrap_or_else(|| "servicedesk".into()),
            tiers,
            seed_agents,
            seed_reviewers,
            settings,
            classifier,
            policy,
            knowledge_base: file.knowledge_base,
            limits: file.limits,
            server,
            tls: file.tls,
            event_retention,
            warnings,
        })
    }
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
#[cfg(test)]
mod tests;
