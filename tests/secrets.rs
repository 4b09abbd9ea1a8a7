//! Secrets: a created API key is stored only as a hash (its secret appears in no file of the
//! data directory), and never appears in the log, even at debug level.

mod common;

use std::path::Path;

use common::*;
use servicedesk::proto::v1::{GetDeskStatusRequest, ListTicketsRequest};

/// Every byte of every file under `dir`.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn created_keys_live_only_as_hashes_and_never_in_the_log() {
    let launch = Launch {
        env: vec![("SERVICEDESK_LOG".into(), "debug".into())],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch.clone()).await;
    let secret = server.create_key("ops_bot", &["*"]).await;
    let (_, secret_part) = secret.rsplit_once('_').unwrap();
    assert!(secret_part.len() >= 32, "a long random secret");
    // Use it, fail with it, so every code path that sees it runs.
    ok(
        server
            .admin_as(&secret)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "a call with the new key",
    );
    let wrong = format!("{secret}x");
    let _ = server
        .desk_as(&wrong)
        .list_tickets(ListTicketsRequest::default())
        .await;
    let bearer = server.desk_with(Credentials::Bearer(secret.clone()));
    let mut bearer = bearer;
    ok(
        bearer.list_tickets(ListTicketsRequest::default()).await,
        "a call with the key as a bearer token",
    );

    // Flushed to disk: a clean stop checkpoints nothing away, the WAL and DB both checked.
    let data_dir = server.data_dir();
    let log = server.log_text();
    let root = server.terminate().await;
    assert!(log.contains("DEBUG"), "the log ran at debug level");
    for needle in [secret.as_str(), secret_part] {
        assert!(!log.contains(needle), "the log shows a secret");
        for (file, bytes) in files_under(&data_dir) {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{file} holds the secret in clear"
            );
        }
    }
    // The key still works after a restart: the hash is enough.
    let server = Server::launch(root, launch).await;
    ok(
        server
            .admin_as(&secret)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "the key after a restart",
    );
}
