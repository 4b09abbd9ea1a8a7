//! Where the store's connections go and how: the database URL read as libpq reads it, TLS
//! parameters included ([`Target`]), the password when it is given apart from the URL
//! ([`Password`]), and the one function every connection goes through
//! ([`Database::connect`]): the writer's, the readers', the lease's, the listener's, a copy
//! into the database, and the tests'.
//!
//! The URL keeps libpq's parameters as users write them for `psql`. Those the `postgres`
//! crate does not know (`sslmode` beyond `require`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslsni`) are taken out here before it parses the rest, which refuses anything else it
//! does not know rather than ignore a setting that was meant to matter.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;
use super::tls;

/// How long the connection to a server that stopped answering lives on (unacknowledged data,
/// unanswered keepalives), unless the URL says otherwise.
const DEAD_PEER: Duration = Duration::from_secs(10);

/// How long a connection attempt waits for the server when the URL sets no timeout: a server
/// that does not answer fails the start (or the commit that reconnects) rather than hangs it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of a password file read, at most: a password is short, and a path to something
/// endless (`/dev/zero`) must not hold the start.
const PASSWORD_FILE_BYTES: u64 = 4096;

/// The parameters read here rather than by the `postgres` crate.
const TLS_PARAMETERS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslsni"];

/// libpq's `sslmode`, as the store carries it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (the default); `allow` is taken as this too, since it
    /// connects wherever `allow` would, encrypted more often.
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, with a certificate a trusted authority signed, for any host name.
    VerifyCa,
    /// TLS, with a certificate a trusted authority signed for the host the URL names.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Settings(format!(
                    "the database URL's sslmode {other:?} is not one of disable, allow, prefer, \
                     require, verify-ca or verify-full"
                )))
            }
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The certificate authorities a verified connection trusts (`sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Roots {
    /// Those the system trusts: `sslrootcert=system`, and verify-ca or verify-full without
    /// `sslrootcert`.
    System,
    /// Those in a PEM file.
    File(PathBuf),
}

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Nothing: the connection is encrypted, not authenticated (`prefer`, `require`).
    Nothing,
    /// That a trusted authority signed it, whatever name it carries (`verify-ca`).
    Chain,
    /// That, and that it names the host connected to (`verify-full`).
    ChainAndName,
}

/// What the URL asks of TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TlsSettings {
    pub(super) mode: SslMode,
    /// `sslrootcert`; without it, the verifying modes trust the system's authorities.
    pub(super) roots: Option<Roots>,
    /// `sslcert` and `sslkey`: the certificate (PEM) this client presents, and its key.
    pub(super) client: Option<(PathBuf, PathBuf)>,
    /// `sslsni`: whether the host name is sent in the handshake (libpq's default: yes).
    pub(super) sni: bool,
}

impl TlsSettings {
    /// As libpq does: a root certificate named with `prefer` or `require` is checked as
    /// `verify-ca` would (a server certificate it did not sign is refused).
    pub(super) fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => Check::ChainAndName,
            (SslMode::VerifyCa, _) | (_, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        }
    }

    /// The settings as they read in the URL, for messages.
    pub(super) fn describe(&self) -> String {
        let mut text = format!("sslmode={}", self.mode.name());
        match &self.roots {
            Some(Roots::File(path)) => text.push_str(&format!(", sslrootcert={}", path.display())),
            Some(Roots::System) => text.push_str(", sslrootcert=system"),
            None => {}
        }
        text
    }
}

/// The database's password when it is not in the URL, and where it came from. It shows in no
/// message and no log line: `Debug` names only its source.
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    secret: Vec<u8>,
    source: String,
}

impl Password {
    /// `secret`, given by `source` (e.g. "SERVICEDESK_STORE_PASSWORD").
    pub fn new(secret: Vec<u8>, source: impl Into<String>) -> Password {
        Password {
            secret,
            source: source.into(),
        }
    }

    /// The password held by the file at `path`, less one trailing line break; `source` says
    /// which setting named the file. The file is read once, at most
    /// [`PASSWORD_FILE_BYTES`] of it, only if it is a regular file ([`crate::secrets`]); with
    /// it, a warning when others may read the file.
    pub fn from_file(path: &Path, source: &str) -> Result<(Password, Option<String>), StoreError> {
        let named = format!("the database password file {} ({source})", path.display());
        let file = crate::secrets::read(path, &named, PASSWORD_FILE_BYTES)
            .map_err(StoreError::Settings)?;
        let mut secret = file.bytes;
        // Written by `echo` or an editor, a file ends with a line break that is no part of
        // the password.
        if secret.ends_with(b"\n") {
            secret.pop();
            if secret.ends_with(b"\r") {
                secret.pop();
            }
        }
        if secret.is_empty() {
            return Err(StoreError::Settings(format!("{named} is empty")));
        }
        let password = Password::new(
            secret,
            format!("the password file {} ({source})", path.display()),
        );
        Ok((password, file.exposed))
    }

    /// Where the password came from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// At most `limit` bytes of the file at `path`.
pub(super) fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A database URL, read and checked, with the password when it is given apart: everything
/// but the files it names, which [`Target::open`] reads. `Debug` shows no password.
#[derive(Clone, Debug)]
pub struct Target {
    config: Config,
    tls: TlsSettings,
}

impl Target {
    /// Reads `url` (`postgres://user@host:port/database?...`) as libpq would, with the
    /// password from `passwords` (those given apart from the URL). More than one password, the
    /// URL's included, is refused naming where each came from, since all but one would be
    /// ignored.
    pub fn parse(url: &str, passwords: Vec<Password>) -> Result<Target, StoreError> {
        let (rest, tls_parameters) = split_tls_parameters(url)?;
        let mut config: Config = rest.parse().map_err(|err: postgres::Error| {
            let cause = std::error::Error::source(&err)
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            StoreError::Settings(format!("the database URL cannot be used: {err}{cause}"))
        })?;
        let tls = tls_settings(&tls_parameters)?;
        let mut sources: Vec<&str> = passwords.iter().map(|p| p.source.as_str()).collect();
        if config.get_password().is_some() {
            sources.insert(0, "the URL");
        }
        if let [first, second, ..] = sources[..] {
            return Err(StoreError::Settings(format!(
                "the database password is given twice, in {first} and in {second}; give it in \
                 one place only"
            )));
        }
        if let Some(password) = passwords.into_iter().next() {
            config.password(password.secret);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("servicedesk");
        }
        // A server out of reach is noticed in seconds, not after the system's two hours: a
        // leader cut off from the database must fail its commits, and let its lease go, soon.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEAD_PEER);
        }
        if config.get_keepalives_idle() > DEAD_PEER {
            config.keepalives_idle(DEAD_PEER / 2);
        }
        // The TLS the server is asked for; how its certificate is checked is [`tls`]'s.
        config.ssl_mode(match tls.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        // As libpq: a socket on this machine is never encrypted, whatever sslmode says.
        let sockets_only = !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| !matches!(h, Host::Tcp(_)));
        if sockets_only {
            config.ssl_mode(postgres::config::SslMode::Disable);
        }
        Ok(Target { config, tls })
    }

    /// The database, as `PostgreSQL database NAME on HOST:PORT`: never the user or password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .chain(std::iter::repeat(&5432)),
            )
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            })
            .collect();
        format!(
            "PostgreSQL database {} on {}",
            self.config.get_dbname().unwrap_or("(the user's)"),
            if hosts.is_empty() {
                "localhost".to_string()
            } else {
                hosts.join(",")
            }
        )
    }

    /// Reads the certificates and key the URL names and sets up TLS: the database, ready to
    /// connect to.
    pub fn open(&self) -> Result<Database, StoreError> {
        let tls = match self.config.get_ssl_mode() {
            postgres::config::SslMode::Disable => None,
            _ => Some(tls::connector(&self.tls)?),
        };
        Ok(Database {
            config: self.config.clone(),
            tls,
            settings: self.tls.clone(),
        })
    }
}

/// A database the store connects to: the URL's settings, the password, and TLS set up.
#[derive(Clone)]
pub struct Database {
    config: Config,
    /// `None`: never TLS (`sslmode=disable`, or only sockets on this machine).
    tls: Option<MakeRustlsConnect>,
    settings: TlsSettings,
}

impl Database {
    /// The database `url` names, with no password but the URL's: for tools and tests.
    pub fn new(url: &str) -> Result<Database, StoreError> {
        Target::parse(url, Vec::new())?.open()
    }

    /// A new connection. A TLS failure says which setting refused what.
    pub fn connect(&self) -> Result<Client, StoreError> {
        let connected = match &self.tls {
            None => self.config.connect(NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        };
        connected.map_err(|err| match tls::refusal(&err, &self.settings) {
            Some(why) => StoreError::Settings(why),
            None => err.into(),
        })
    }
}

/// `url` without the TLS parameters, and those parameters (keys and values decoded).
fn split_tls_parameters(url: &str) -> Result<(String, Vec<(String, String)>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key)?;
        if TLS_PARAMETERS.contains(&key.as_str()) {
            // The value is decoded only here: another parameter's may be a password, which
            // no message may show.
            let value = decode(value).map_err(|_| {
                StoreError::Settings(format!(
                    "the database URL's {key} is not UTF-8 once percent-decoded"
                ))
            })?;
            taken.push((key, value));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, taken))
}

fn decode(text: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| {
            StoreError::Settings(
                "the database URL has a parameter name that is not UTF-8 once percent-decoded"
                    .into(),
            )
        })
}

/// The TLS parameters, checked against each other as libpq checks them.
fn tls_settings(parameters: &[(String, String)]) -> Result<TlsSettings, StoreError> {
    // As libpq, the last of a parameter given twice counts.
    let value = |key: &str| {
        parameters
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let roots = match value("sslrootcert") {
        None | Some("") => None,
        Some("system") => Some(Roots::System),
        Some(path) => Some(Roots::File(PathBuf::from(path))),
    };
    let mode = match value("sslmode") {
        Some(mode) => SslMode::parse(mode)?,
        // libpq 16: trusting the system's authorities means checking the host name too.
        None if roots == Some(Roots::System) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if roots == Some(Roots::System) && mode != SslMode::VerifyFull {
        return Err(StoreError::Settings(format!(
            "the database URL's sslrootcert=system goes with sslmode=verify-full only (as \
             libpq's), not sslmode={}: any server with a certificate from a public authority \
             would pass otherwise",
            mode.name()
        )));
    }
    let client = match (value("sslcert"), value("sslkey")) {
        (None, None) => None,
        (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => {
            Some((PathBuf::from(cert), PathBuf::from(key)))
        }
        _ => {
            return Err(StoreError::Settings(
                "the database URL names one of sslcert and sslkey without the other; a client \
                 certificate needs both"
                    .into(),
            ))
        }
    };
    let sni = match value("sslsni") {
        None | Some("1") => true,
        Some("0") => false,
        Some(other) => {
            return Err(StoreError::Settings(format!(
                "the database URL's sslsni {other:?} is neither 0 nor 1"
            )))
        }
    };
    Ok(TlsSettings {
        mode,
        roots,
        client,
        sni,
    })
}

#[cfg(test)]
mod tests;
