//! The database URL as libpq reads it: every sslmode, sslrootcert, the parameters refused,
//! and passwords kept out of every description and message.

use std::io::Write;

use super::*;
use crate::store::{Durability, StoreSettings};

const BASE: &str = "postgres://desk@db.internal:5433/servicedesk";

fn parse(query: &str) -> Result<Target, StoreError> {
    Target::parse(&format!("{BASE}?{query}"), Vec::new())
}

fn refused(query: &str) -> String {
    match parse(query) {
        Ok(target) => panic!("{query} was taken: {target:?}"),
        Err(err) => err.to_string(),
    }
}

fn ssl_mode(target: &Target) -> postgres::config::SslMode {
    target.config.get_ssl_mode()
}

#[test]
fn every_sslmode_asks_for_tls_and_checks_the_certificate_as_libpq_does() {
    use postgres::config::SslMode as Asked;
    let cases = [
        ("", SslMode::Prefer, Asked::Prefer, Check::Nothing),
        (
            "sslmode=disable",
            SslMode::Disable,
            Asked::Disable,
            Check::Nothing,
        ),
        (
            "sslmode=allow",
            SslMode::Prefer,
            Asked::Prefer,
            Check::Nothing,
        ),
        (
            "sslmode=prefer",
            SslMode::Prefer,
            Asked::Prefer,
            Check::Nothing,
        ),
        (
            "sslmode=require",
            SslMode::Require,
            Asked::Require,
            Check::Nothing,
        ),
        (
            "sslmode=verify-ca",
            SslMode::VerifyCa,
            Asked::Require,
            Check::Chain,
        ),
        (
            "sslmode=verify-full",
            SslMode::VerifyFull,
            Asked::Require,
            Check::ChainAndName,
        ),
    ];
    for (query, mode, asked, check) in cases {
        let target = parse(query).unwrap();
        assert_eq!(target.tls.mode, mode, "{query}");
        assert_eq!(ssl_mode(&target), asked, "{query}");
        assert_eq!(target.tls.check(), check, "{query}");
        assert_eq!(target.tls.roots, None, "{query}");
    }
    let err = refused("sslmode=verify");
    assert!(
        err.contains("sslmode \"verify\" is not one of disable, allow, prefer, require, verify-ca or verify-full"),
        "{err}"
    );
    assert!(refused("sslmode=").contains("sslmode \"\""));
}

#[test]
fn a_root_certificate_makes_prefer_and_require_check_the_chain() {
    for mode in ["prefer", "require", "verify-ca"] {
        let target = parse(&format!("sslmode={mode}&sslrootcert=/etc/db/ca.pem")).unwrap();
        assert_eq!(
            target.tls.roots,
            Some(Roots::File("/etc/db/ca.pem".into())),
            "{mode}"
        );
        assert_eq!(target.tls.check(), Check::Chain, "{mode}");
    }
    let full = parse("sslrootcert=/etc/db/ca.pem&sslmode=verify-full").unwrap();
    assert_eq!(full.tls.check(), Check::ChainAndName);
    assert_eq!(
        full.tls.describe(),
        "sslmode=verify-full, sslrootcert=/etc/db/ca.pem"
    );
    // Percent-encoded as a URL carries it.
    let spaced = parse("sslmode=verify-ca&sslrootcert=%2Fetc%2Fmy%20db%2Fca.pem").unwrap();
    assert_eq!(
        spaced.tls.roots,
        Some(Roots::File("/etc/my db/ca.pem".into()))
    );
    // Without TLS nothing is checked, whatever the URL names.
    let off = parse("sslmode=disable&sslrootcert=/etc/db/ca.pem").unwrap();
    assert_eq!(ssl_mode(&off), postgres::config::SslMode::Disable);
}

#[test]
fn sslrootcert_system_means_verify_full_and_goes_with_nothing_weaker() {
    let system = parse("sslrootcert=system").unwrap();
    assert_eq!(system.tls.mode, SslMode::VerifyFull);
    assert_eq!(system.tls.roots, Some(Roots::System));
    assert_eq!(
        parse("sslrootcert=system&sslmode=verify-full").unwrap().tls,
        system.tls
    );
    for weaker in ["require", "verify-ca", "prefer", "disable"] {
        let err = refused(&format!("sslrootcert=system&sslmode={weaker}"));
        assert!(
            err.contains("sslrootcert=system goes with sslmode=verify-full only")
                && err.contains(&format!("not sslmode={weaker}")),
            "{err}"
        );
    }
}

#[test]
fn the_tls_parameters_are_taken_out_and_the_rest_reaches_the_client() {
    let target = parse(
        "sslmode=verify-full&options=-csearch_path%3Ddesk&sslrootcert=%2Fca.pem\
         &application_name=front&connect_timeout=3&sslsni=0",
    )
    .unwrap();
    assert_eq!(target.config.get_options(), Some("-csearch_path=desk"));
    assert_eq!(target.config.get_application_name(), Some("front"));
    assert_eq!(
        target.config.get_connect_timeout(),
        Some(&Duration::from_secs(3))
    );
    assert!(!target.tls.sni);
    assert!(parse("").unwrap().tls.sni);
    assert!(parse("sslsni=1").unwrap().tls.sni);
    assert!(refused("sslsni=yes").contains("sslsni \"yes\" is neither 0 nor 1"));
    // What the store sets unless the URL does.
    let plain = Target::parse(BASE, Vec::new()).unwrap();
    assert_eq!(plain.config.get_application_name(), Some("servicedesk"));
    assert_eq!(plain.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    assert_eq!(plain.config.get_tcp_user_timeout(), Some(&DEAD_PEER));
    // The last of a parameter given twice counts, as in libpq.
    assert_eq!(
        parse("sslmode=disable&sslmode=verify-ca").unwrap().tls.mode,
        SslMode::VerifyCa
    );
}

#[test]
fn parameters_nobody_reads_are_refused_not_ignored() {
    for (query, named) in [
        ("sslcrl=/etc/db/crl.pem", "sslcrl"),
        ("gssencmode=require", "gssencmode"),
        ("sslmode=require&passfile=/root/.pgpass", "passfile"),
    ] {
        let err = refused(query);
        assert!(
            err.contains(&format!("unknown option `{named}`")),
            "{query}: {err}"
        );
    }
    let err = refused("sslcert=/etc/db/client.pem");
    assert!(
        err.contains("sslcert and sslkey without the other"),
        "{err}"
    );
    assert!(refused("sslkey=/etc/db/client.key").contains("without the other"));
    let both = parse("sslcert=%2Fc.pem&sslkey=%2Fc.key").unwrap();
    assert_eq!(both.tls.client, Some(("/c.pem".into(), "/c.key".into())));
}

#[test]
fn a_socket_on_this_machine_is_never_encrypted() {
    for url in [
        "postgres://desk@%2Fvar%2Frun%2Fpostgresql/servicedesk?sslmode=verify-full",
        "postgres:///servicedesk?host=/var/run/postgresql&sslmode=require",
    ] {
        let target = Target::parse(url, Vec::new()).unwrap();
        assert_eq!(
            ssl_mode(&target),
            postgres::config::SslMode::Disable,
            "{url}"
        );
        assert!(target.open().unwrap().tls.is_none(), "{url}");
    }
}

#[test]
fn a_password_is_given_once_and_shows_nowhere() {
    let secret = "s3cr3t-Pa55";
    let in_url = format!("postgres://desk:{secret}@db.internal:5433/servicedesk?sslmode=require");
    let apart = || Password::new(secret.as_bytes().to_vec(), "SERVICEDESK_STORE_PASSWORD");
    let target = Target::parse(&in_url, Vec::new()).unwrap();
    assert_eq!(target.config.get_password(), Some(secret.as_bytes()));
    let from_variable = Target::parse(BASE, vec![apart()]).unwrap();
    assert_eq!(from_variable.config.get_password(), Some(secret.as_bytes()));

    let err = Target::parse(&in_url, vec![apart()])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the database password is given twice, in the URL and in SERVICEDESK_STORE_PASSWORD; \
         give it in one place only"
    );
    let in_query = format!("{BASE}?password={secret}");
    assert!(Target::parse(&in_query, vec![apart()]).is_err());
    let file = Password::new(
        b"other".to_vec(),
        "the password file /run/pw ([store] password_file)",
    );
    let err = Target::parse(BASE, vec![file, apart()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "in the password file /run/pw ([store] password_file) and in \
             SERVICEDESK_STORE_PASSWORD"
        ),
        "{err}"
    );
    assert!(!err.contains(secret) && !err.contains("other;"), "{err}");

    for target in [&target, &from_variable] {
        let settings = StoreSettings {
            data_dir: "data".into(),
            durability: Durability::Full,
            url: Some(target.clone()),
        };
        assert_eq!(
            settings.describe(),
            "PostgreSQL database servicedesk on db.internal:5433"
        );
        for shown in [
            format!("{settings:?}"),
            format!("{target:?}"),
            format!("{:?}", apart()),
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    // A URL refused for another reason does not show its password either.
    let err = Target::parse(&format!("{in_url}&sslmode=sometimes"), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(!err.contains(secret), "{err}");
    let err = Target::parse(&format!("{in_url}&frobnicate=1"), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("frobnicate") && !err.contains(secret), "{err}");
}

fn password_file(contents: &[u8]) -> (tempfile::NamedTempFile, Result<Password, StoreError>) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents).unwrap();
    let password =
        Password::from_file(file.path(), "[store] password_file").map(|(password, _)| password);
    (file, password)
}

#[test]
fn a_password_file_loses_one_line_break_and_nothing_else() {
    for (contents, expected) in [
        (&b"hunter2"[..], &b"hunter2"[..]),
        (b"hunter2\n", b"hunter2"),
        (b"hunter2\r\n", b"hunter2"),
        (b"hunter2\n\n", b"hunter2\n"),
        (b" hunter 2 ", b" hunter 2 "),
    ] {
        let (file, password) = password_file(contents);
        let password = password.unwrap();
        assert_eq!(password.secret, expected, "{contents:?}");
        assert_eq!(
            password.source(),
            format!(
                "the password file {} ([store] password_file)",
                file.path().display()
            )
        );
    }
    for (contents, why) in [
        (&b"\n"[..], "is empty"),
        (b"", "is empty"),
        (&[b'x'; 4097][..], "is longer than 4096 bytes"),
    ] {
        let (_file, password) = password_file(contents);
        let err = password.unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
    }
    let (_file, password) = password_file(&[b'x'; 4096]);
    assert_eq!(password.unwrap().secret.len(), 4096);
    // Only a regular file is read: never something endless.
    let endless = Password::from_file(Path::new("/dev/zero"), "SERVICEDESK_STORE_PASSWORD_FILE");
    assert!(endless
        .unwrap_err()
        .to_string()
        .contains("/dev/zero (SERVICEDESK_STORE_PASSWORD_FILE) is not a regular file"));
    let missing = Password::from_file(Path::new("/nonexistent/pw"), "[store] password_file")
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with(
            "cannot read the database password file /nonexistent/pw ([store] password_file): "
        ),
        "{missing}"
    );
}

/// The database the URL with `query` names, opened: its files read.
fn open(query: &str) -> Result<Database, StoreError> {
    parse(query).unwrap().open()
}

fn open_refused(query: &str) -> String {
    match open(query) {
        Ok(_) => panic!("{query} was opened"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_files_a_url_names_are_read_when_it_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = open_refused(&format!(
        "sslmode=verify-full&sslrootcert={}",
        missing.display()
    ));
    assert!(
        err.starts_with(&format!("cannot read sslrootcert {}: ", missing.display())),
        "{err}"
    );
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let err = open_refused(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        not_pem.display()
    ));
    assert!(err.contains("holds no PEM certificate"), "{err}");

    let ca = rcgen::generate_simple_self_signed(vec!["db.internal".to_string()]).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let opened = open(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_path.display()
    ))
    .unwrap();
    assert!(opened.tls.is_some());
    // A client certificate needs a key that is one.
    let err = open_refused(&format!(
        "sslmode=require&sslcert={}&sslkey={}",
        ca_path.display(),
        ca_path.display()
    ));
    assert!(err.contains("holds no PEM private key"), "{err}");
    // Without TLS, no file is read.
    let off = open(&format!(
        "sslmode=disable&sslrootcert={}",
        missing.display()
    ))
    .unwrap();
    assert!(off.tls.is_none());
}
