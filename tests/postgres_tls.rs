//! The desk on PostgreSQL over TLS, against the real binary and a PostgreSQL server of each
//! test's own (`ssl = on`, a certificate for `localhost` from an authority the test makes,
//! `hostssl` with passwords and plaintext refused): libpq's `sslmode` and `sslrootcert` in the
//! URL, each refusal told plainly at start, a client certificate, and the database's password
//! from a variable or a file, given once, and never in the log.

mod common;

use std::path::Path;
use std::time::Duration;

use common::instance::{Authority, Instance};
use common::*;
use servicedesk::proto::v1::{GetTicketRequest, Ticket, TicketStatus};

const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// `pg_hba.conf` of a desk's role `desk` that must use TLS and its password.
const TLS_AND_PASSWORD: &str = "hostssl all desk 127.0.0.1/32 scram-sha-256\n\
                                host all desk 127.0.0.1/32 reject";

/// A server of the test's own with the role `desk`, whose password is returned, owning the
/// database `desk`.
fn desk_instance(test: &str) -> Option<(Instance, String)> {
    let instance = Instance::start(test, TLS_AND_PASSWORD)?;
    let password = format!("Tls-Pw-{:016x}", rand::random::<u64>());
    instance.execute(&format!("CREATE ROLE desk LOGIN PASSWORD '{password}'"));
    instance.execute("CREATE DATABASE desk OWNER desk");
    Some((instance, password))
}

/// The `[store]` section keeping the desk at `url`.
fn store(url: &str) -> String {
    format!("[store]\nurl = \"{url}\"\n")
}

/// `sslmode=MODE&sslrootcert=FILE`.
fn verified(mode: &str, authority: &Path) -> String {
    format!("sslmode={mode}&sslrootcert={}", authority.display())
}

/// A server with `config` and `env` that serves.
async fn serve(config: &str, env: &[(&str, &str)]) -> Server {
    let launch = Launch {
        config_toml: Some(config.to_string()),
        env: env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        ..Launch::default()
    };
    Server::launch(new_root(), launch).await
}

/// Asserts the start was refused, saying `why`.
fn refused(exited: &Exited, why: &str) {
    assert!(
        !exited.status.success(),
        "the start was not refused: {exited:?}"
    );
    assert!(
        exited.output.contains(why),
        "the refusal does not say {why:?}:\n{}",
        exited.output
    );
}

/// An inquiry answered, and committed: its ticket is in the database's table.
async fn answered_and_committed(server: &Server, instance: &Instance, customer: &str) -> String {
    let answer = ask(&mut server.desk(), inquiry(customer, PASSWORD_RESET)).await;
    let ticket = answer.ticket.expect("a ticket");
    assert_eq!(ticket.status(), TicketStatus::Resolved);
    let stored = instance.query_text(
        "desk",
        &format!(
            "SELECT count(*)::text FROM tickets WHERE ticket_id = '{}'",
            ticket.ticket_id
        ),
    );
    assert_eq!(stored, "1", "the ticket is committed to the database");
    ticket.ticket_id
}

/// The ticket `ticket_id` as `server` reads it.
async fn read_ticket(server: &Server, ticket_id: &str) -> Ticket {
    ok(
        server
            .desk()
            .get_ticket(GetTicketRequest {
                ticket_id: ticket_id.to_string(),
            })
            .await,
        "GetTicket",
    )
}

#[tokio::test]
async fn a_desk_over_verified_tls_serves_and_its_password_shows_nowhere() {
    let Some((instance, password)) = desk_instance("a_desk_over_verified_tls_serves") else {
        return;
    };
    let ca = &instance.authority.pem_file;
    let url = instance.url("desk", "localhost", &verified("verify-full", ca));
    let server = serve(&store(&url), &[("SERVICEDESK_STORE_PASSWORD", &password)]).await;
    let ticket_id = answered_and_committed(&server, &instance, "cust_tls").await;
    // Every connection of the desk is encrypted (plaintext would be refused anyway).
    let connections = instance.query_text(
        "postgres",
        "SELECT count(*) FILTER (WHERE ssl)::text || '/' || count(*)::text
         FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = 'desk'",
    );
    let (encrypted, all) = connections.split_once('/').unwrap();
    assert!(
        all != "0" && encrypted == all,
        "TLS connections/all: {connections}"
    );
    let first_log = server.log_text();
    drop(server.terminate().await);

    // The same desk, its password from a file this time.
    let password_file = instance.dir().join("desk.password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let config = format!(
        "{}password_file = \"{}\"\n",
        store(&url),
        password_file.display()
    );
    let server = serve(&config, &[]).await;
    assert_eq!(read_ticket(&server, &ticket_id).await.ticket_id, ticket_id);
    answered_and_committed(&server, &instance, "cust_tls_file").await;
    let second_log = server.log_text();
    drop(server.terminate().await);
    for log in [&first_log, &second_log] {
        assert!(
            log.contains("PostgreSQL database desk on localhost"),
            "the log names the database: {log}"
        );
        assert!(
            !log.contains(&password),
            "the password is in the log:\n{log}"
        );
    }

    // A wrong password is refused by the server, and shown nowhere either.
    let wrong = format!("Wrong-{password}");
    let exited = serve_to_exit(
        &store(&url),
        &[("SERVICEDESK_STORE_PASSWORD", &wrong)],
        EXIT_LIMIT,
    )
    .await;
    refused(&exited, "password authentication failed for user \"desk\"");
    assert!(!exited.output.contains(&wrong), "{}", exited.output);
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name_and_verify_ca_takes_it() {
    let Some((instance, password)) = desk_instance("verify_full_refuses_another_name") else {
        return;
    };
    let env = [("SERVICEDESK_STORE_PASSWORD", password.as_str())];
    let ca = instance.authority.pem_file.clone();
    // The certificate names localhost; 127.0.0.1 is the same server by another name.
    let by_address = instance.url("desk", "127.0.0.1", &verified("verify-full", &ca));
    let exited = serve_to_exit(&store(&by_address), &env, EXIT_LIMIT).await;
    refused(
        &exited,
        &format!(
            "the database's certificate is not valid for 127.0.0.1 (sslmode=verify-full, \
             sslrootcert={}); it names localhost",
            ca.display()
        ),
    );
    assert!(!exited.output.contains(&password));

    let by_address = instance.url("desk", "127.0.0.1", &verified("verify-ca", &ca));
    let server = serve(&store(&by_address), &env).await;
    answered_and_committed(&server, &instance, "cust_verify_ca").await;
    drop(server.terminate().await);

    // An authority that did not sign the server's certificate, named with sslrootcert: refused
    // by verify-ca, and by require too, which checks the chain once a root is named (libpq).
    let other = Authority::new(instance.dir(), "other").pem_file;
    for mode in ["verify-ca", "require"] {
        let url = instance.url("desk", "localhost", &verified(mode, &other));
        let exited = serve_to_exit(&store(&url), &env, EXIT_LIMIT).await;
        refused(
            &exited,
            &format!(
                "the database's certificate is not signed by the authority in sslrootcert {} \
                 (sslmode={mode}, sslrootcert={})",
                other.display(),
                other.display()
            ),
        );
    }

    // Without sslrootcert, verify-full trusts the system's authorities (here as
    // SSL_CERT_FILE names them).
    let system = instance.url("desk", "localhost", "sslmode=verify-full");
    let with_roots = |file: &Path| {
        vec![
            ("SERVICEDESK_STORE_PASSWORD", password.clone()),
            ("SSL_CERT_FILE", file.display().to_string()),
        ]
    };
    let pairs = with_roots(&ca);
    let env_ca: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = serve(&store(&system), &env_ca).await;
    answered_and_committed(&server, &instance, "cust_system_roots").await;
    drop(server.terminate().await);
    let pairs = with_roots(&other);
    let env_other: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let exited = serve_to_exit(&store(&system), &env_other, EXIT_LIMIT).await;
    refused(
        &exited,
        "the database's certificate is not signed by an authority the system trusts \
         (sslmode=verify-full)",
    );
}

#[tokio::test]
async fn require_and_prefer_take_the_servers_certificate_and_plaintext_is_refused() {
    let Some((instance, password)) = desk_instance("require_takes_any_certificate") else {
        return;
    };
    let env = [("SERVICEDESK_STORE_PASSWORD", password.as_str())];
    let url = instance.url("desk", "127.0.0.1", "sslmode=require");
    let server = serve(&store(&url), &env).await;
    answered_and_committed(&server, &instance, "cust_require").await;
    drop(server.terminate().await);
    // Without sslmode, as libpq: TLS since the server offers it (plaintext would be refused).
    let url = instance.url("desk", "127.0.0.1", "application_name=desk");
    let server = serve(&store(&url), &env).await;
    answered_and_committed(&server, &instance, "cust_prefer").await;
    drop(server.terminate().await);

    // Plaintext, where the server takes this role over TLS only: the server's own refusal.
    let url = instance.url("desk", "127.0.0.1", "sslmode=disable");
    let exited = serve_to_exit(&store(&url), &env, EXIT_LIMIT).await;
    refused(
        &exited,
        "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"desk\", database \
         \"desk\", no encryption",
    );

    // A server that offers no TLS, where require asks for it.
    instance.set_ssl(false);
    let url = instance.url("desk", "localhost", "sslmode=require");
    let exited = serve_to_exit(&store(&url), &env, EXIT_LIMIT).await;
    refused(
        &exited,
        "the database server does not offer TLS, which sslmode=require requires",
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_url_names_one() {
    let hba = "hostssl all certified 127.0.0.1/32 cert";
    let Some(instance) = Instance::start("a_client_certificate_is_presented", hba) else {
        return;
    };
    instance.execute("CREATE ROLE certified LOGIN");
    instance.execute("CREATE DATABASE desk OWNER certified");
    let (cert, key) = instance.authority.issue(&[], "certified");
    let (cert_file, key_file) = (
        instance.dir().join("client.crt"),
        instance.dir().join("client.key"),
    );
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let ca = &instance.authority.pem_file;
    let query = format!(
        "{}&sslcert={}&sslkey={}",
        verified("verify-full", ca),
        cert_file.display(),
        key_file.display()
    );
    let url = instance.url("certified", "localhost", &query);
    let server = serve(&store(&url), &[]).await;
    answered_and_committed(&server, &instance, "cust_client_cert").await;
    drop(server.terminate().await);

    let without = instance.url("certified", "localhost", &verified("verify-full", ca));
    let exited = serve_to_exit(&store(&without), &[], EXIT_LIMIT).await;
    refused(&exited, "connection requires a valid client certificate");
}

#[tokio::test]
async fn two_passwords_at_once_are_refused_naming_both() {
    // Refused before any connection: no server is needed.
    let in_url = "Url-Pw-8c1f";
    let in_variable = "Variable-Pw-52ad";
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "File-Pw-93be\n").unwrap();
    let secrets = [in_url, in_variable, "File-Pw-93be"];
    let with_password = format!("postgres://desk:{in_url}@localhost:9/desk?sslmode=require");
    let plain = "postgres://desk@localhost:9/desk?sslmode=require";
    let cases = [
        (
            store(&with_password),
            vec![("SERVICEDESK_STORE_PASSWORD", in_variable)],
            "config: [store] url: the database password is given twice, in the URL and in \
             SERVICEDESK_STORE_PASSWORD; give it in one place only"
                .to_string(),
        ),
        (
            format!(
                "{}password_file = \"{}\"\n",
                store(plain),
                password_file.display()
            ),
            vec![("SERVICEDESK_STORE_PASSWORD", in_variable)],
            format!(
                "the database password is given twice, in the password file {} ([store] \
                 password_file) and in SERVICEDESK_STORE_PASSWORD",
                password_file.display()
            ),
        ),
        (
            store(plain),
            vec![
                ("SERVICEDESK_STORE_URL", with_password.as_str()),
                (
                    "SERVICEDESK_STORE_PASSWORD_FILE",
                    password_file.to_str().unwrap(),
                ),
            ],
            format!(
                "config: --store-url (SERVICEDESK_STORE_URL): the database password is given \
                 twice, in the URL and in the password file {} (--store-password-file \
                 (SERVICEDESK_STORE_PASSWORD_FILE))",
                password_file.display()
            ),
        ),
    ];
    for (config, env, why) in cases {
        let exited = serve_to_exit(&config, &env, EXIT_LIMIT).await;
        assert_eq!(exited.status.code(), Some(2), "{exited:?}");
        refused(&exited, &why);
        for secret in secrets {
            assert!(!exited.output.contains(secret), "{}", exited.output);
        }
    }
}

#[tokio::test]
async fn a_desk_is_copied_into_postgresql_over_tls() {
    let Some((instance, password)) = desk_instance("a_desk_is_copied_over_tls") else {
        return;
    };
    let server = Server::start().await;
    let answer = ask(&mut server.desk(), inquiry("cust_copied", PASSWORD_RESET)).await;
    let ticket = answer.ticket.unwrap();
    let root = server.terminate().await;
    let from = format!("sqlite://{}", root.path().join("data").display());
    let password_file = instance.dir().join("desk.password");
    std::fs::write(&password_file, &password).unwrap();
    let env = [(
        "SERVICEDESK_STORE_PASSWORD_FILE",
        password_file.to_str().unwrap(),
    )];
    let ca = &instance.authority.pem_file;
    let migrate = |to: String| {
        let from = from.clone();
        async move {
            let args = [
                "migrate".to_string(),
                "--from".into(),
                from,
                "--to".into(),
                to,
            ];
            run_to_exit_with_env(&args, &env, EXIT_LIMIT)
                .await
                .expect("migrate must end on its own")
        }
    };

    let wrong_name = instance.url("desk", "127.0.0.1", &verified("verify-full", ca));
    let exited = migrate(wrong_name).await;
    refused(
        &exited,
        "the desk was not copied: the database's certificate is not valid for 127.0.0.1",
    );

    let url = instance.url("desk", "localhost", &verified("verify-full", ca));
    let copied = migrate(url.clone()).await;
    assert!(copied.status.success(), "{copied:?}");
    assert!(
        copied.output.contains("copied and checked: 1 tickets"),
        "{}",
        copied.output
    );
    assert!(!copied.output.contains(&password));

    let server = serve(&store(&url), &[("SERVICEDESK_STORE_PASSWORD", &password)]).await;
    assert_eq!(read_ticket(&server, &ticket.ticket_id).await, ticket);
    drop(server.terminate().await);
}
