//! PostgreSQL's errors as the store's: a message that says what went wrong, and damage the
//! server reports kept apart from everything a retry may mend.

use postgres::error::SqlState;

use super::super::StoreError;

/// A `postgres` error that says what went wrong: the crate's own message names only its kind
/// ("db error", "error connecting to server"), the cause it wraps says what (the server's
/// message, the refused connection), and a log line should carry both.
#[derive(Debug)]
struct Failure(postgres::Error);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        if let Some(cause) = std::error::Error::source(&self.0) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        // Class XX is PostgreSQL finding its own files damaged (a page that fails its
        // checksum, an index that contradicts its table): nothing a retry mends.
        let damaged = err.code().is_some_and(|code| {
            [SqlState::DATA_CORRUPTED, SqlState::INDEX_CORRUPTED].contains(code)
        });
        let err = Failure(err);
        if damaged {
            StoreError::Damaged(format!(
                "the PostgreSQL server reports damage in the store ({err}); stop the desk and \
                 have the database repaired or restored from a backup before it writes again"
            ))
        } else {
            StoreError::Backend(Box::new(err))
        }
    }
}
