//! The store on a bad day, against the real binary: a second server on the same data
//! directory, a store damaged while the server was stopped, and who may read its files.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;
use std::time::Duration;

use common::*;
use servicedesk::proto::v1::{GetTicketRequest, TicketStatus};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// `servicedesk serve --dev` on a free port with its store in `data_dir`.
fn serve_args(data_dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"]
            .iter()
            .map(Into::into)
            .collect();
    args.push(data_dir.into());
    args
}

/// A second server on `server`'s data directory stops on its own, saying why, and the first
/// one serves on, alone with its store.
async fn a_second_server_is_refused_beside(server: &Server) {
    let second = run_to_exit(&serve_args(&server.data_dir()), EXIT_LIMIT)
        .await
        .expect("a second server on a data directory in use must stop on its own");
    assert!(!second.status.success(), "{second:?}");
    assert!(
        second
            .output
            .contains("in use by another servicedesk process"),
        "the log says why: {}",
        second.output
    );
    let answer = ask(&mut server.desk(), inquiry("cust_lock", PASSWORD_RESET)).await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let server = Server::start().await;
    a_second_server_is_refused_beside(&server).await;
    // Once it stopped, the directory is free again.
    let root = server.terminate().await;
    let server = Server::start_with(root, &[], None).await;
    let answer = ask(&mut server.desk(), inquiry("cust_lock", PASSWORD_RESET)).await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
}

#[tokio::test]
async fn a_store_that_cannot_be_written_stops_the_start_saying_why() {
    let server = Server::start().await;
    ask(&mut server.desk(), inquiry("cust_ro", PASSWORD_RESET)).await;
    let root = server.terminate().await;
    let db = root.path().join("data").join("desk.db");
    // Immutable: not even root may write it (a mode of 0400 does not stop root).
    let immutable = |flag: &str| {
        let set = Command::new("chattr").arg(flag).arg(&db).status();
        assert!(
            set.is_ok_and(|s| s.success()),
            "chattr {flag} {} (needs root on ext4 or similar)",
            db.display()
        );
    };
    immutable("+i");
    let started = run_to_exit(&serve_args(&root.path().join("data")), EXIT_LIMIT).await;
    immutable("-i");
    let started = started.expect("a start on a store it cannot write ends on its own");
    assert!(!started.status.success(), "{started:?}");
    assert!(
        started.output.contains("desk.db cannot be written"),
        "the log says why: {}",
        started.output
    );
    // Writable again, the next start serves.
    let server = Server::start_with(root, &[], None).await;
    ask(&mut server.desk(), inquiry("cust_rw", PASSWORD_RESET)).await;
}

#[tokio::test]
async fn deleting_the_lock_file_does_not_let_a_second_server_in() {
    let server = Server::start().await;
    std::fs::remove_file(server.data_dir().join("desk.lock")).expect("delete desk.lock");
    a_second_server_is_refused_beside(&server).await;
}

#[tokio::test]
async fn a_server_whose_log_another_process_wrote_to_stops_and_says_so() {
    let mut server = Server::start().await;
    let mut desk = server.desk();
    ask(&mut desk, inquiry("cust_before", PASSWORD_RESET)).await;
    let next = head(&server).await + 1;
    // Another process writes the event this server was about to write.
    let db = rusqlite::Connection::open(server.data_dir().join("desk.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO events (seq, time_ms, body) VALUES (?1, 0, x'00')",
        [next as i64],
    )
    .unwrap();
    drop(db);
    let mut call = tonic::Request::new(inquiry("cust_after", PASSWORD_RESET));
    call.set_timeout(Duration::from_secs(10));
    let refused = desk.handle_inquiry(call).await;
    assert!(
        refused.is_err(),
        "a change the store did not take: {refused:?}"
    );
    // The server stops, saying why, instead of refusing every change for ever.
    let exited = server
        .exit_within(Duration::from_secs(30))
        .await
        .expect("the server stops on its own");
    assert!(!exited.success(), "{exited:?}");
    let log = server.log_text();
    assert!(
        log.contains(&format!("event {next} is in the store's log already"))
            && log.contains("run one server per data directory"),
        "{log}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn only_the_owner_can_read_the_store() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start().await;
    ask(&mut server.desk(), inquiry("cust_mode", PASSWORD_RESET)).await;
    let data_dir = server.data_dir();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        seen.push(entry.file_name().to_string_lossy().into_owned());
        assert_eq!(
            mode & 0o077,
            0,
            "{} is mode {mode:o}; only its owner may read it",
            entry.path().display()
        );
    }
    for file in ["desk.db", "desk.db-wal", "desk.lock"] {
        assert!(seen.iter().any(|f| f == file), "{file} among {seen:?}");
    }
    let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "the data directory is mode {mode:o}");
}

/// `servicedesk check --data-dir DATA_DIR` to its end.
async fn check_offline(data_dir: &std::path::Path) -> Exited {
    run_to_exit(
        &[
            "check".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ],
        EXIT_LIMIT,
    )
    .await
    .expect("check ends")
}

#[tokio::test]
async fn a_damaged_store_is_refused_at_start_and_found_by_check() {
    let server = Server::start().await;
    let mut desk = server.desk();
    for n in 0..200 {
        ask(&mut desk, inquiry(&format!("cust_{n}"), PASSWORD_RESET)).await;
    }
    let root = server.terminate().await;
    let data_dir = root.path().join("data");
    let db = data_dir.join("desk.db");

    let healthy = check_offline(&data_dir).await;
    assert!(healthy.status.success(), "{healthy:?}");
    assert!(
        healthy.output.contains("no damage found"),
        "{}",
        healthy.output
    );

    // 4 KiB of garbage over a page in the middle of the file, as a bad sector or a stray
    // write would leave it.
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(
        len > 64 * 1024,
        "the store is large enough to damage its middle: {len}"
    );
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
    drop(file);

    for full in [false, true] {
        let mut args = vec![
            "check".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ];
        if full {
            args.push("--full".as_ref());
        }
        let check = run_to_exit(&args, EXIT_LIMIT).await.expect("check ends");
        assert!(
            !check.status.success(),
            "check must find the damage: {check:?}"
        );
        assert!(check.output.contains("is damaged"), "{}", check.output);
        assert!(
            check.output.contains("backup"),
            "it says what to do: {}",
            check.output
        );
    }

    for full in [false, true] {
        let mut args = serve_args(&data_dir);
        if full {
            args.push("--full-check".into());
        }
        let started = run_to_exit(&args, EXIT_LIMIT)
            .await
            .expect("a server on a damaged store must refuse to start, not serve");
        assert!(!started.status.success(), "{started:?}");
        assert!(started.output.contains("is damaged"), "{}", started.output);
        assert!(
            !started.output.contains("listening on"),
            "{}",
            started.output
        );
    }
}

#[tokio::test]
async fn check_refuses_a_directory_without_a_store_and_creates_nothing() {
    let root = new_root();
    let missing = root.path().join("nothing-here");
    let check = run_to_exit(
        &["check".as_ref(), "--data-dir".as_ref(), missing.as_os_str()],
        EXIT_LIMIT,
    )
    .await
    .expect("check ends");
    assert!(!check.status.success(), "{check:?}");
    assert!(check.output.contains("no store in"), "{}", check.output);
    assert!(!missing.exists(), "check must not create a store");
}

/// Sets the server's file-size limit (`prlimit --fsize`): past it, its writes fail as on a
/// full disk.
fn limit_file_size(server: &Server, soft: &str) {
    let status = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(server.pid().to_string())
        .arg(format!("--fsize={soft}:unlimited"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --fsize={soft} failed: {status}");
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

async fn health_of(server: &Server, service: &str) -> ServingStatus {
    server
        .health()
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("Health/Check")
        .into_inner()
        .status()
}

/// Waits up to `limit` for `service`'s health to be `status`.
async fn until_health(
    server: &Server,
    service: &str,
    status: ServingStatus,
    limit: Duration,
    what: &str,
) {
    poll_until(limit, what, || async move {
        (health_of(server, service).await == status).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_full_disk_stops_changes_not_the_desk_and_it_resumes_by_itself() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let answer = ask(&mut desk, inquiry(&format!("cust_pre_{n}"), PASSWORD_RESET)).await;
        acknowledged.push(answer.ticket.unwrap().ticket_id);
    }
    // The disk fills up: no file of the server may grow more than a little past its size now.
    let data_dir = server.data_dir();
    let largest = ["desk.db", "desk.db-wal"]
        .iter()
        .map(|f| file_len(&data_dir.join(f)))
        .max()
        .unwrap();
    limit_file_size(&server, &(largest + 64 * 1024).to_string());

    // Changes go on until the store refuses one: that call is answered UNAVAILABLE at once,
    // not acknowledged (its batch waits to be committed, and its ticket is kept), rather than
    // left to wait out its deadline; every later change is refused at once.
    let mut refused = None;
    for n in 0..5_000 {
        let mut request = tonic::Request::new(inquiry(&format!("cust_fill_{n}"), PASSWORD_RESET));
        request.set_timeout(Duration::from_secs(8));
        let sent = std::time::Instant::now();
        match desk.handle_inquiry(request).await {
            Ok(answer) => acknowledged.push(answer.into_inner().ticket.unwrap().ticket_id),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(
                    sent.elapsed() < Duration::from_secs(2),
                    "the call the store refused waited {:?}",
                    sent.elapsed()
                );
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("with the disk full, changes are refused");
    // Refused before its ticket was admitted, or while it settled: either way the caller
    // learns that nothing was acknowledged and what becomes of the change.
    let message = refused.message();
    assert!(
        message.contains("could not write this change to its store")
            && message.contains("retry with the same idempotency key")
            || message.contains("cannot write to its store")
                && message.contains("the ticket is answered once it can"),
        "the message says why and what becomes of the change: {refused:?}"
    );
    let later = expect_code(
        desk.handle_inquiry(inquiry("cust_fill_later", PASSWORD_RESET))
            .await,
        tonic::Code::Unavailable,
        "a change while the store refuses writes",
    );
    assert!(
        later.message().contains("cannot write to its store"),
        "{later:?}"
    );
    assert_eq!(
        health_of(&server, "servicedesk.v1.DeskService").await,
        ServingStatus::NotServing
    );
    assert_eq!(
        health_of(&server, "servicedesk.store").await,
        ServingStatus::NotServing
    );
    // Unready, but alive: the whole server's entry, which liveness probes ask, stays SERVING,
    // so no orchestrator restarts a server that recovers by itself. The same, as the health
    // command a container's probe runs says it.
    assert_eq!(health_of(&server, "").await, ServingStatus::Serving);
    let alive = health_command(server.addr(), "").await;
    assert!(alive.status.success(), "liveness: {alive:?}");
    let ready = health_command(server.addr(), "servicedesk.v1.DeskService").await;
    assert!(!ready.status.success(), "readiness: {ready:?}");
    assert!(ready.output.contains("NOT_SERVING"), "{ready:?}");
    // Reads go on.
    let first = ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: acknowledged[0].clone(),
            })
            .await,
        "GetTicket while the disk is full",
    );
    assert_eq!(first.status(), TicketStatus::Resolved);

    // Space comes back: the desk takes changes again without a restart.
    limit_file_size(&server, "unlimited");
    let space_back = std::time::Instant::now();
    until_health(
        &server,
        "servicedesk.v1.DeskService",
        ServingStatus::Serving,
        Duration::from_secs(30),
        "health SERVING again",
    )
    .await;
    for (service, what) in [
        ("", "liveness"),
        ("servicedesk.v1.DeskService", "readiness"),
    ] {
        let passed = health_command(server.addr(), service).await;
        assert!(
            passed.status.success(),
            "{what} once space returned: {passed:?}"
        );
    }
    eprintln!(
        "{} changes acknowledged before the disk filled; serving again {:?} after space returned",
        acknowledged.len(),
        space_back.elapsed()
    );
    let after = ask(&mut desk, inquiry("cust_after", PASSWORD_RESET)).await;
    acknowledged.push(after.ticket.unwrap().ticket_id);
    assert!(server.log_text().contains("the store takes writes again"));

    // Nothing acknowledged is missing, after a crash too.
    let root = server.kill().await;
    let server = Server::start_with(root, &[], None).await;
    for id in &acknowledged {
        let ticket = ok(
            server
                .desk()
                .get_ticket(GetTicketRequest {
                    ticket_id: id.clone(),
                })
                .await,
            "an acknowledged ticket after the crash",
        );
        assert_eq!(ticket.status(), TicketStatus::Resolved, "{id}");
    }
}

/// Makes a file immutable (`chattr +i`) until dropped: no process can write it, not even one
/// that has it open.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: std::path::PathBuf) -> Immutable {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .status()
            .expect("run chattr");
        assert!(status.success(), "chattr +i {} failed", path.display());
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_database_file_that_cannot_be_written_is_reported_and_the_desk_serves_on() {
    let server = Server::start().await;
    let mut desk = server.desk();
    ask(&mut desk, inquiry("cust_before", PASSWORD_RESET)).await;
    let immutable = Immutable::set(server.data_dir().join("desk.db"));
    // Commits still go to the write-ahead log; moving it into the database fails.
    for n in 0..20 {
        ask(&mut desk, inquiry(&format!("cust_{n}"), PASSWORD_RESET)).await;
    }
    until_health(
        &server,
        "servicedesk.store",
        ServingStatus::NotServing,
        Duration::from_secs(30),
        "the store reported unhealthy",
    )
    .await;
    assert_eq!(
        health_of(&server, "servicedesk.v1.DeskService").await,
        ServingStatus::Serving
    );
    ask(&mut desk, inquiry("cust_during", PASSWORD_RESET)).await;
    assert!(
        server
            .log_text()
            .contains("the store cannot keep itself in shape"),
        "{}",
        server.log_text()
    );
    // Writable again: the store is healthy again, by itself.
    drop(immutable);
    ask(&mut desk, inquiry("cust_after", PASSWORD_RESET)).await;
    until_health(
        &server,
        "servicedesk.store",
        ServingStatus::Serving,
        Duration::from_secs(30),
        "the store healthy again",
    )
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_store_index_that_cannot_be_written_never_kills_the_server_silently() {
    use std::os::unix::process::ExitStatusExt;
    let mut server = Server::start().await;
    ask(&mut server.desk(), inquiry("cust_before", PASSWORD_RESET)).await;
    // The WAL index is a memory map: SQLite's next write to it faults.
    let _immutable = Immutable::set(server.data_dir().join("desk.db-shm"));
    let mut desk = server.desk();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        desk.handle_inquiry(inquiry("cust_fault", PASSWORD_RESET)),
    )
    .await;
    let status = server
        .exit_within(Duration::from_secs(30))
        .await
        .expect("the fault ends the process");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    assert!(
        server.log_text().contains("fatal bus error"),
        "a line says why it died: {}",
        server.log_text()
    );
}

#[tokio::test]
async fn a_page_no_table_owns_is_found_after_start_and_reported() {
    let server = Server::start().await;
    let mut desk = server.desk();
    let mut asked = Vec::new();
    for n in 0..50 {
        asked.push(ask(&mut desk, inquiry(&format!("cust_{n}"), PASSWORD_RESET)).await);
    }
    let root = server.terminate().await;
    let data_dir = root.path().join("data");
    let db = data_dir.join("desk.db");

    // One page more than every table and the free list account for: damage that no single
    // table shows, so the start's table-by-table check passes it.
    let mut header = [0u8; 100];
    std::io::Read::read_exact(&mut std::fs::File::open(&db).unwrap(), &mut header).unwrap();
    let page_size = u64::from(u16::from_be_bytes([header[16], header[17]]));
    let pages = file_len(&db) / page_size;
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(&vec![0u8; page_size as usize]).unwrap();
    file.seek(SeekFrom::Start(28)).unwrap();
    file.write_all(&(pages as u32 + 1).to_be_bytes()).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let server = Server::launch(root, Launch::default()).await;
    // The whole-store check after start finds it: the store's health says so, the log says
    // what, and the desk goes on serving what it has.
    until_health(
        &server,
        "servicedesk.store",
        ServingStatus::NotServing,
        Duration::from_secs(60),
        "the store's health turns NOT_SERVING",
    )
    .await;
    let log = server.log_text();
    assert!(log.contains("found damage"), "{log}");
    assert!(log.contains("never used"), "{log}");
    let ticket = ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: asked[0].ticket.as_ref().unwrap().ticket_id.clone(),
            })
            .await,
        "a read after the damage was found",
    );
    assert_eq!(ticket.status(), TicketStatus::Resolved);

    // Offline, `servicedesk check` finds it too.
    let root = server.terminate().await;
    let data_dir = root.path().join("data");
    let check = check_offline(&data_dir).await;
    assert!(!check.status.success(), "{check:?}");
    assert!(check.output.contains("never used"), "{}", check.output);
}
