//! The `[store]` section's database: its URL checked, and its password taken from at most one
//! of the places it may be given.

use std::path::PathBuf;

use super::ConfigError;
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
