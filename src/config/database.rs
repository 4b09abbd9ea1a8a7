//! The `[store]` section's database: its URL checked, its password taken from at most one of
//! the places it may be given, and how the servers sharing it find and replace each other.

use std::path::PathBuf;

use super::{ConfigError, Replication, StoreSection};
use crate::store::postgres::{Password, Target};

/// The PostgreSQL database at `url` (given by the setting `source`), checked, with the
/// password from the URL, the file `password_file` names or `password`: at most one of them.
/// The file is read here, once; what to warn of it (others may read it) goes to `warnings`.
pub fn database(
    url: &str,
    source: &str,
    password_file: Option<(PathBuf, &str)>,
    password: Option<Password>,
    warnings: &mut Vec<String>,
) -> Result<Target, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid(format!("{source}: {message}"));
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "must be a PostgreSQL URL (postgres://user@host:port/database); leave it out for \
             the embedded store in the data directory"
                .into(),
        ));
    }
    let mut passwords = Vec::new();
    if let Some((path, setting)) = password_file {
        let (read, exposed) =
            Password::from_file(&path, setting).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        passwords.push(read);
        warnings.extend(exposed);
    }
    passwords.extend(password);
    Target::parse(url, passwords).map_err(|e| invalid(e.to_string()))
}

/// `[store] advertise_address` and `lease_ttl_secs`, checked.
pub(super) fn replication(
    store: &StoreSection,
    advertise: Option<&str>,
) -> Result<Replication, ConfigError> {
    let ttl = store.lease_ttl_secs.unwrap_or(5);
    if !(1..=300).contains(&ttl) {
        return Err(ConfigError::Invalid(
            "[store] lease_ttl_secs must be within 1..=300".into(),
        ));
    }
    let advertise = match advertise
        .or(store.advertise_address.as_deref())
        .map(str::trim)
    {
        None => None,
        Some(address) => {
            let full = if address.contains("://") {
                address.to_string()
            } else {
                format!("http://{address}")
            };
            // `http://host:port`, nothing after: the servers dial it as it is.
            let host_port = full.strip_prefix("http://").unwrap_or_default();
            let well_formed = host_port.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
            });
            if !well_formed {
                return Err(ConfigError::Invalid(format!(
                    "[store] advertise_address {address:?} must be http://host:port (servers \
                     forward to each other in plaintext h2c; put TLS in the mesh between them)"
                )));
            }
            Some(full)
        }
    };
    Ok(Replication {
        advertise_address: advertise,
        lease_ttl: std::time::Duration::from_secs(ttl),
    })
}

/// What the command line and the environment say of the database (they win over the file).
pub(super) struct GivenDatabase {
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password: Option<Password>,
}

/// The database the settings name, if any: the URL from the command line or environment (which
/// wins) or `[store] url`, with its password from at most one place. A password given with no
/// URL is a setting that went astray, refused rather than ignored.
pub(super) fn target(
    store: &StoreSection,
    given: GivenDatabase,
    warnings: &mut Vec<String>,
) -> Result<Option<Target>, ConfigError> {
    let GivenDatabase {
        url,
        password_file,
        password,
    } = given;
    let url = match url {
        Some(url) => Some((url, "--store-url (SERVICEDESK_STORE_URL)")),
        None => store.url.clone().map(|url| (url, "[store] url")),
    };
    let password_file = match password_file {
        Some(path) => Some((
            path,
            "--store-password-file (SERVICEDESK_STORE_PASSWORD_FILE)",
        )),
        None => store
            .password_file
            .clone()
            .map(|path| (path, "[store] password_file")),
    };
    match url {
        Some((url, source)) => database(&url, source, password_file, password, warnings).map(Some),
        None => {
            let stray = password_file
                .map(|(_, source)| source)
                .or(password.as_ref().map(Password::source));
            match stray {
                Some(source) => Err(ConfigError::Invalid(format!(
                    "{source} gives a database password, but no database URL is set ([store] \
                     url or SERVICEDESK_STORE_URL)"
                ))),
                None => Ok(None),
            }
        }
    }
}
