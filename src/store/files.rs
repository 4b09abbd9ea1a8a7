//! The store's files on disk: an exclusive lock on the data directory, so a second process
//! cannot open the same store, and owner-only permissions, so nobody else on the machine reads
//! the desk's customers or its key digests.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;

use super::StoreError;

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "desk.lock";

/// Creates the data directory (owner-only when it is new) and takes its exclusive lock, or says
/// which directory is in use. The lock goes with the returned file, also when the process dies.
pub fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
    }
    let path = dir.join(LOCK_FILE);
    let file = owner_only_options().read(true).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(format!(
            "the data directory {} is in use by another servicedesk process (it holds {}); \
             stop that process, or give this one its own data directory",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(err.into()),
    }
}

/// Creates `path` owner-only if it does not exist; makes it owner-only if it does.
pub fn owner_only(path: &Path) -> Result<(), StoreError> {
    match owner_only_options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => tighten(path),
        Err(err) => Err(err.into()),
    }
}

/// Takes every permission away from group and others, if the file exists.
pub fn tighten(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                let mode = meta.permissions().mode() & 0o700;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn owner_only_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
