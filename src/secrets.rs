//! Files that hold a secret (the first admin key, the database's password): read only when
//! they are regular files, never past a bound, and with a warning when others may read them.
//!
//! A FIFO would hold the start until somebody writes to it, a device could be endless: only a
//! regular file is read (a symlink to one too, as Kubernetes mounts a Secret). It is opened
//! without blocking and checked once open, so it cannot be swapped between the check and the
//! read. A file its group may read is expected when the group is one of this process's (a
//! Secret mounted with `fsGroup`); readable by another group, or by anyone, it is worth a
//! warning, as ssh warns of a private key's mode.

use std::io::Read;
use std::path::Path;

/// A secret file's bytes, and what to warn of.
pub struct SecretFile {
    pub bytes: Vec<u8>,
    /// Set when others than this process's user and groups may read the file.
    pub exposed: Option<String>,
}

/// The file at `path`, if it is a regular file of at most `limit` bytes; otherwise a sentence
/// saying what is wrong, which names the file as `named` does ("the admin key file /run/key").
pub fn read(path: &Path, named: &str, limit: u64) -> Result<SecretFile, String> {
    let unreadable = |e: std::io::Error| format!("cannot read {named}: {e}");
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(format!(
            "{named} is not a regular file (a pipe, a device or a directory); put the secret in \
             a file"
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{named} is longer than {limit} bytes; it must hold the secret alone"
        ));
    }
    Ok(SecretFile {
        bytes,
        exposed: exposed(&metadata, named),
    })
}

#[cfg(unix)]
fn exposed(metadata: &std::fs::Metadata, named: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = metadata.mode();
    let who = if mode & 0o004 != 0 {
        "anyone"
    } else if mode & 0o040 != 0 && !crate::process::in_group(metadata.gid()) {
        "its group, which this process is not in,"
    } else {
        return None;
    };
    Some(format!(
        "{named} can be read by {who} (mode {:o}); make it readable by this server's user only: \
         chmod 600",
        mode & 0o777
    ))
}

#[cfg(not(unix))]
fn exposed(_: &std::fs::Metadata, _: &str) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_of_at_most_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, b"s3cret\n").unwrap();
        assert_eq!(read(&file, "the test file", 7).unwrap().bytes, b"s3cret\n");
        let long = read(&file, "the test file", 6).err().unwrap();
        assert!(long.contains("is longer than 6 bytes"), "{long}");
        for other in [dir.path(), Path::new("/dev/zero")] {
            let refused = read(other, "the test file", 4096).err().unwrap();
            assert!(refused.contains("is not a regular file"), "{refused}");
        }
        let missing = read(&dir.path().join("none"), "the test file", 10)
            .err()
            .unwrap();
        assert!(
            missing.starts_with("cannot read the test file"),
            "{missing}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_anyone_can_read_is_read_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, b"s3cret").unwrap();
        for (mode, warned) in [(0o600, false), (0o640, false), (0o644, true)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let read = read(&file, "the test file", 100).unwrap();
            assert_eq!(
                read.exposed.is_some(),
                warned,
                "{mode:o}: {:?}",
                read.exposed
            );
        }
    }
}
