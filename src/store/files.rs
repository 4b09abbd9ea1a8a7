//! The store's files on disk: an exclusive lock on the data directory, so a second process
//! cannot open the same store, and owner-only permissions, so nobody else on the machine reads
//! the desk's customers or its key digests.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;

use super::StoreError;

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "desk.lock";

/// The data directory's locks, held for as long as this is.
#[derive(Debug)]
pub struct DirLock {
    _directory: File,
    _file: File,
}

/// Creates the data directory (owner-only when it is new) and takes its exclusive locks, or
/// says which directory is in use. The locks go with the returned value, also when the process
/// dies.
///
/// Two locks: one on the directory itself, which no file operation inside it can take away
/// (deleting `desk.lock` once let a second server in), and one on `desk.lock`, which servers
/// of earlier versions take, so that neither kind of server starts beside the other.
pub fn lock_dir(dir: &Path) -> Result<DirLock, StoreError> {
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
    let in_use = || {
        StoreError::InUse(format!(
            "the data directory {} is in use by another servicedesk process (it holds {}); \
             stop that process, or give this one its own data directory",
            dir.display(),
            path.display()
        ))
    };
    let directory = File::open(dir)?;
    let file = owner_only_options().read(true).write(true).open(&path)?;
    for lock in [&directory, &file] {
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(in_use()),
            Err(std::fs::TryLockError::Error(err)) => return Err(err.into()),
        }
    }
    Ok(DirLock {
        _directory: directory,
        _file: file,
    })
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
