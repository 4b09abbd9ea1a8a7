//! Running the binary as an operator does: reflection for grpcurl, the environment instead
//! of flags, a production start without `--dev` (a generated first admin key, or one from a
//! file), a custom knowledge base, shutdown while a caller waits, and a restart with a
//! configuration that no longer fits the stored desk.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use prost::Message;
use servicedesk::proto::v1::{
    GetDeskStatusRequest, GetTicketRequest, ListTicketsRequest, TicketStatus,
};
use tonic::Code;
use tonic_reflection::pb::v1 as reflection;
use tonic_reflection::pb::v1alpha as reflection_alpha;

/// What reflection v1 answers to one request.
async fn reflect_v1(
    server: &Server,
    request: reflection::server_reflection_request::MessageRequest,
) -> reflection::server_reflection_response::MessageResponse {
    let mut client =
        reflection::server_reflection_client::ServerReflectionClient::new(server.channel());
    let outbound = tokio_stream::iter([reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut inbound = ok(
        client.server_reflection_info(outbound).await,
        "ServerReflectionInfo",
    );
    inbound
        .message()
        .await
        .expect("a reflection response")
        .expect("one message")
        .message_response
        .expect("a response body")
}

#[tokio::test]
async fn reflection_lists_every_service_and_serves_the_commented_protos() {
    let server = Server::start().await;
    use reflection::server_reflection_request::MessageRequest;
    use reflection::server_reflection_response::MessageResponse;

    let MessageResponse::ListServicesResponse(list) =
        reflect_v1(&server, MessageRequest::ListServices(String::new())).await
    else {
        panic!("ListServices answered something else");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in [
        "servicedesk.v1.DeskService",
        "servicedesk.v1.EscalationService",
        "servicedesk.v1.AdminService",
        "servicedesk.v1.AgentService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }

    // The descriptors carry the comments, so `grpcurl describe` shows them.
    let MessageResponse::FileDescriptorResponse(files) = reflect_v1(
        &server,
        MessageRequest::FileContainingSymbol("servicedesk.v1.DeskService".into()),
    )
    .await
    else {
        panic!("FileContainingSymbol answered something else");
    };
    let desk_proto = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.name() == "servicedesk/v1/desk.proto")
        .expect("desk.proto is served");
    let comments: Vec<String> = desk_proto
        .source_code_info
        .expect("source info is kept")
        .location
        .into_iter()
        .filter_map(|l| l.leading_comments)
        .collect();
    assert!(
        comments.iter().any(|c| c.contains("Creates a ticket")),
        "HandleInquiry's comment is served"
    );

    // The error details we send decode in grpcurl too.
    let MessageResponse::FileDescriptorResponse(_) = reflect_v1(
        &server,
        MessageRequest::FileContainingSymbol("google.rpc.BadRequest".into()),
    )
    .await
    else {
        panic!("google.rpc.BadRequest is not served");
    };

    // grpcurl up to 1.8.7 speaks only v1alpha.
    let mut alpha =
        reflection_alpha::server_reflection_client::ServerReflectionClient::new(server.channel());
    let outbound = tokio_stream::iter([reflection_alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            reflection_alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    }]);
    let mut inbound = ok(
        alpha.server_reflection_info(outbound).await,
        "v1alpha ServerReflectionInfo",
    );
    let answer = inbound.message().await.unwrap().unwrap();
    let Some(reflection_alpha::server_reflection_response::MessageResponse::ListServicesResponse(
        list,
    )) = answer.message_response
    else {
        panic!("v1alpha ListServices answered something else");
    };
    assert!(list
        .service
        .iter()
        .any(|s| s.name == "servicedesk.v1.DeskService"));
}

#[tokio::test]
async fn every_setting_can_come_from_the_environment() {
    let root = new_root();
    let launch = Launch {
        through_environment: true,
        config_toml: Some("[desk]\nname = \"From the environment\"\n".into()),
        ..Launch::default()
    };
    let server = Server::launch(root, launch).await;
    // SERVICEDESK_DEV: the development keys work; SERVICEDESK_CONFIG: the desk's name.
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert_eq!(status.desk_name, "From the environment");
    // SERVICEDESK_DATA_DIR: the store is where it says.
    assert!(server.data_dir().join("desk.db").exists());
}

#[tokio::test]
async fn without_dev_the_first_start_writes_an_owner_only_admin_key_and_no_dev_key_works() {
    let launch = Launch {
        dev: false,
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch.clone()).await;
    let key_file = server.data_dir().join("admin.key");
    let secret = std::fs::read_to_string(&key_file)
        .expect("the admin key file exists")
        .trim()
        .to_string();
    assert!(secret.starts_with("sd_"), "a generated key: {secret:.3}…");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "readable by its owner only");
    }
    let log = server.log_text();
    assert!(log.contains("admin.key"), "the log says where the key is");
    assert!(!log.contains(&secret), "the log never shows the secret");

    ok(
        server
            .admin_as(&secret)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus with the first admin key",
    );
    for dev_key in [TEST_KEY, ADMIN_KEY] {
        expect_code(
            server
                .admin_as(dev_key)
                .get_desk_status(GetDeskStatusRequest {})
                .await,
            Code::Unauthenticated,
            "a development key without --dev",
        );
    }

    // A restart keeps the key and writes no new one.
    let root = server.terminate().await;
    let server = Server::launch(root, launch).await;
    assert_eq!(
        std::fs::read_to_string(server.data_dir().join("admin.key"))
            .unwrap()
            .trim(),
        secret
    );
    ok(
        server
            .admin_as(&secret)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "the first admin key after a restart",
    );
}

/// A desk deployed from manifests takes its first admin key from a file mounted from a Secret,
/// so the operator holds it before the first start and no pod's volume has to be read.
#[tokio::test]
async fn a_new_desk_takes_its_first_admin_key_from_the_admin_key_file_and_only_then() {
    let secrets = new_root();
    let write_key = |name: &str, key: &str| {
        let path = secrets.path().join(name);
        std::fs::write(&path, format!("{key}\n")).unwrap();
        path.display().to_string()
    };
    let chosen = format!("sd_00c0ffee00aa_{}", "k3y".repeat(12));
    let chosen_file = write_key("admin-key", &chosen);
    let launch = Launch {
        dev: false,
        extra_args: vec!["--admin-key-file".into(), chosen_file.clone()],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch).await;
    assert!(
        !server.data_dir().join("admin.key").exists(),
        "no generated key is written when one is given"
    );
    ok(
        server
            .admin_as(&chosen)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus with the chosen first admin key",
    );
    assert!(
        !server.log_text().contains(&chosen[16..]),
        "the log never shows the secret"
    );

    // A restart (the file named in the environment now) finds the key among the desk's.
    let root = server.terminate().await;
    let through_environment = Launch {
        dev: false,
        env: vec![("SERVICEDESK_ADMIN_KEY_FILE".into(), chosen_file)],
        ..Launch::default()
    };
    let server = Server::launch(root, through_environment).await;
    assert!(!server.log_text().contains("holds no key of this desk"));
    ok(
        server
            .admin_as(&chosen)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "the chosen key after a restart",
    );

    // A desk that has keys takes none from the file: another key there is refused, and said.
    let root = server.terminate().await;
    let other = format!("sd_00c0ffee00bb_{}", "x".repeat(40));
    let other_file = write_key("other-key", &other);
    let launch = Launch {
        dev: false,
        extra_args: vec!["--admin-key-file".into(), other_file],
        ..Launch::default()
    };
    let server = Server::launch(root, launch).await;
    server
        .until_logged("holds no key of this desk", Duration::from_secs(5))
        .await;
    expect_code(
        server
            .admin_as(&other)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        Code::Unauthenticated,
        "a key the desk never took",
    );
    ok(
        server
            .admin_as(&chosen)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "the desk's first admin key still",
    );
}

#[test]
fn an_admin_key_file_that_holds_no_key_stops_the_start_with_the_form_expected() {
    let root = new_root();
    let start = |key_file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_servicedesk"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(root.path().join("data"))
            .arg("--admin-key-file")
            .arg(key_file)
            .env("NO_COLOR", "1")
            .output()
            .expect("run servicedesk")
    };
    let short = root.path().join("short-key");
    std::fs::write(&short, "sd_00c0ffee00aa_tooshort\n").unwrap();
    let missing = root.path().join("missing-key");
    // Only a regular file is read: not something endless.
    let endless = std::path::PathBuf::from("/dev/zero");
    for (file, says) in [
        (&short, "does not hold one key of the form"),
        (&missing, "cannot read the admin key file"),
        (&endless, "is not a regular file"),
        (&root.path().to_path_buf(), "is not a regular file"),
    ] {
        let output = start(file);
        assert_eq!(
            output.status.code(),
            Some(2),
            "a configuration error: {file:?}"
        );
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(says), "{said}");
        assert!(
            !said.contains("tooshort"),
            "the error never shows the file's text: {said}"
        );
    }
    assert!(
        !root.path().join("data").exists(),
        "nothing was created before the configuration was found wrong"
    );
}

#[tokio::test]
async fn a_pipe_as_the_admin_key_file_stops_the_start_at_once() {
    let root = new_root();
    let pipe = root.path().join("admin-key");
    let made = std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Opening a pipe for reading waits for a writer: a start that opened it would wait for
    // ever, saying nothing.
    let args = [
        "serve".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        root.path().join("data").display().to_string(),
        "--admin-key-file".into(),
        pipe.display().to_string(),
    ];
    let exited = run_to_exit(&args, Duration::from_secs(10))
        .await
        .expect("the start ends on its own");
    assert_eq!(exited.status.code(), Some(2), "{}", exited.output);
    assert!(
        exited.output.contains("is not a regular file"),
        "{}",
        exited.output
    );
}

#[tokio::test]
async fn an_admin_key_file_others_can_read_is_taken_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let secrets = new_root();
    let file = secrets.path().join("admin-key");
    let key = format!("sd_00c0ffee00cc_{}", "r3ad".repeat(10));
    std::fs::write(&file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let launch = |file: &std::path::Path| Launch {
        dev: false,
        extra_args: vec!["--admin-key-file".into(), file.display().to_string()],
        ..Launch::default()
    };
    let server = Server::launch(new_root(), launch(&file)).await;
    ok(
        server
            .admin_as(&key)
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus with the key from a file anyone can read",
    );
    let warned = "can be read by anyone (mode 644); make it readable by this server's user only";
    assert!(server.log_text().contains(warned), "{}", server.log_text());
    // Readable by its owner and its group, the process's own (a Secret mounted with fsGroup),
    // it is taken without a word.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o440)).unwrap();
    let server = Server::launch(server.terminate().await, launch(&file)).await;
    assert!(
        !server.log_text().contains("can be read by"),
        "{}",
        server.log_text()
    );
}

#[tokio::test]
async fn a_knowledge_base_file_replaces_the_built_in_one() {
    let root = new_root();
    let kb = root.path().join("kb.toml");
    std::fs::write(
        &kb,
        r#"
[[article]]
id = "reset"
topic = "account"
title = "Reset your password"
keywords = ["reset password", "forgot password"]
answer = "Ask the front desk of the Acme office for a new password."
"#,
    )
    .unwrap();
    let config = format!("knowledge_base = {:?}\n", kb.display().to_string());
    let server = Server::start_with(root, &[], Some(&config)).await;
    let answer = ask(&mut server.desk(), inquiry("cust_kb", PASSWORD_RESET)).await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);
    assert_eq!(
        answer.response,
        "Ask the front desk of the Acme office for a new password."
    );
}

#[tokio::test]
async fn shutdown_answers_a_waiting_caller_with_its_ticket_and_keeps_the_ticket() {
    let config = "shutdown_grace_secs = 4\n";
    let server = Server::start_with_config(config).await;
    // Nobody free to take it: the caller waits while the ticket is queued.
    set_every_agent(&server, servicedesk::proto::v1::AgentAvailability::Paused).await;
    let mut desk = server.desk();
    let waiting = tokio::spawn(async move {
        desk.handle_inquiry(inquiry("cust_wait", PASSWORD_RESET))
            .await
    });
    let server_ref = &server;
    let ticket_id = poll_until(
        Duration::from_secs(10),
        "the ticket is queued",
        || async move {
            let page = ok(
                server_ref
                    .desk()
                    .list_tickets(ListTicketsRequest::default())
                    .await,
                "ListTickets",
            );
            page.tickets
                .into_iter()
                .find(|t| t.status() == TicketStatus::Queued)
                .map(|t| t.ticket_id)
        },
    )
    .await;

    let signalled = Instant::now();
    server.send_sigterm();
    let status = waiting
        .await
        .unwrap()
        .expect_err("a queued ticket has no answer to give");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains(&ticket_id),
        "the caller learns which ticket to pick up: {}",
        status.message()
    );
    // From the server (the status names the ticket), so within the grace period, and only
    // after half of it: an answer a moment away would still have gone out.
    assert!(
        took >= Duration::from_millis(1500),
        "answered after waiting half the grace period, not at once: {took:?}"
    );
    let root = server.terminate().await;

    let server = Server::start_with(root, &[], Some(config)).await;
    let ticket = ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: ticket_id.clone(),
            })
            .await,
        "GetTicket after the restart",
    );
    assert_eq!(ticket.status(), TicketStatus::Queued);
}

/// An orchestrator may stop a pod the moment it starts. SIGTERM at the server's first log line,
/// long before it listens, must drain it (exit 0), never kill it by the signal's default action.
#[test]
fn a_sigterm_while_starting_drains_instead_of_killing() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let root = new_root();
    let mut child = Command::new(env!("CARGO_BIN_EXE_servicedesk"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(root.path().join("data"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run servicedesk");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let first = lines.next().expect("a first log line").expect("readable");
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let log: Vec<String> = std::iter::once(first)
        .chain(lines.map_while(Result::ok))
        .collect();
    let status = child.wait().expect("wait for servicedesk");
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM while starting: {status}\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|line| line.contains("shutdown requested")),
        "it drained: {}",
        log.join("\n")
    );
}

#[tokio::test]
async fn a_restart_refuses_a_config_without_a_tier_its_agents_are_in() {
    let server = Server::start().await;
    let root = server.terminate().await;
    let config = root.path().join("two-tiers.toml");
    std::fs::write(
        &config,
        "[[desk.tiers]]\nname = \"L1\"\n[[desk.tiers]]\nname = \"L2\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_servicedesk"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(root.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run servicedesk");
    assert!(!output.status.success(), "it must not start");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("Expert_Agent_1") && log.contains("Expert"),
        "the error names the agent and its tier: {log}"
    );
    // Nothing was lost: with the tier back, the desk starts as it was.
    let server = Server::start_with(root, &[], None).await;
    let status = ok(
        server
            .admin()
            .get_desk_status(GetDeskStatusRequest {})
            .await,
        "GetDeskStatus",
    );
    assert_eq!(status.tiers.len(), 3);
}

/// A server on TLS with a certificate for `localhost` (its file beside it), with `extra`
/// configuration; its clients trust that certificate.
async fn tls_server(extra: &str) -> (Server, std::path::PathBuf) {
    let root = new_root();
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = root.path().join("server.pem");
    let key = root.path().join("server.key");
    std::fs::write(&cert, issued.cert.pem()).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
    let config = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n{extra}",
        cert.display().to_string(),
        key.display().to_string()
    );
    let launch = Launch {
        config_toml: Some(config),
        tls_ca_pem: Some(issued.cert.pem()),
        ..Launch::default()
    };
    (Server::launch(root, launch).await, cert)
}

#[tokio::test]
async fn tls_from_the_config_file_serves_only_tls() {
    let (server, cert) = tls_server("").await;
    assert!(server.log_text().contains("(tls)"), "the log says TLS");
    let answer = ask(&mut server.desk(), inquiry("cust_tls", PASSWORD_RESET)).await;
    assert_eq!(answer.ticket.unwrap().status(), TicketStatus::Resolved);

    // The health command trusts the CA it is given, or the system's (SSL_CERT_FILE stands in
    // for a CA installed on the machine), and refuses a certificate nothing it trusts signed.
    let address = format!("https://localhost:{}", server.addr().port());
    let health = |extra: &[&str]| {
        let mut args = vec!["health", "--address", &address, "--timeout-secs", "5"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let ca = cert.display().to_string();
    let given = run_to_exit(&health(&["--ca", &ca]), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(given.status.success(), "{given:?}");
    let system = run_to_exit_with_env(
        &health(&[]),
        &[("SSL_CERT_FILE", &ca)],
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(system.status.success(), "{system:?}");
    let untrusted = run_to_exit_with_env(
        &health(&[]),
        &[("SSL_CERT_FILE", "/dev/null")],
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(!untrusted.status.success(), "{untrusted:?}");

    // A plaintext client gets nowhere: to the HTTP/2 preface a TLS server answers with a TLS
    // alert or by hanging up, never with an HTTP/2 frame.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plaintext = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    plaintext
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut first = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(15), plaintext.read(&mut first))
        .await
        .expect("the server answers or hangs up");
    match read {
        Ok(0) | Err(_) => {}
        Ok(_) => assert_eq!(first[0], 0x15, "a TLS alert record, not HTTP/2"),
    }
}

#[tokio::test]
async fn over_tls_a_connection_with_a_watch_open_is_not_closed_as_silent_or_idle() {
    // Connections that send nothing for a second, or hold nothing for two, are closed.
    let (server, _) =
        tls_server("[server]\nfirst_request_secs = 1\nidle_connection_secs = 2\n").await;
    let mut admin = server.admin();
    let mut watch: Watch<servicedesk::proto::v1::DeskEvent> =
        Watch::open("WatchEvents", async move {
            admin
                .watch_events(servicedesk::proto::v1::WatchEventsRequest::default())
                .await
        });
    watch.expect_next().await;
    // Longer than both deadlines: the watch is a call in progress on its connection.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ask(
        &mut server.desk(),
        inquiry("cust_tls_watch", PASSWORD_RESET),
    )
    .await;
    // What the replay had sent is read first; then, live, the new ticket.
    let seen = watch
        .until(|e| {
            matches!(&e.event, Some(servicedesk::proto::v1::desk_event::Event::Ticket(t))
                if t.ticket.as_ref().is_some_and(|t| t.customer_id == "cust_tls_watch"))
        })
        .await;
    assert!(!seen.is_empty());
}

#[tokio::test]
async fn health_turns_not_serving_as_soon_as_draining_starts() {
    let server = Server::start_with_config("shutdown_grace_secs = 4\n").await;
    let mut health = server.health();
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "servicedesk.v1.DeskService".into(),
        })
        .await
        .expect("Health/Watch")
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(
        first.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    server.send_sigterm();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("a health update within the grace period")
        .expect("the watch stays open while draining")
        .expect("an update");
    assert_eq!(
        next.status(),
        tonic_health::pb::health_check_response::ServingStatus::NotServing
    );
    server.terminate().await;
}

#[tokio::test]
async fn an_open_health_watch_does_not_hold_the_shutdown_for_the_grace_period() {
    // A grace period far longer than a drain with nothing in flight takes.
    let grace = Duration::from_secs(60);
    let server =
        Server::start_with_config(&format!("shutdown_grace_secs = {}\n", grace.as_secs())).await;
    let mut health = server.health();
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Health/Watch")
        .into_inner();
    watch.message().await.unwrap().expect("the current status");
    let started = std::time::Instant::now();
    server.terminate().await;
    let took = started.elapsed();
    eprintln!("shutdown with an open health watch took {took:?}");
    assert!(
        took < grace / 2,
        "nothing was in flight, yet the shutdown took {took:?} of a {grace:?} grace period"
    );
}
