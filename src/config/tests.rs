//! The configuration as it is read: defaults, bounds, and what each mistake is told.

use super::*;

fn resolve(text: &str) -> Result<Config, ConfigError> {
    Config::resolve(
        parse_file(text, Path::new("test.toml"))?,
        Overrides::default(),
    )
}

#[test]
fn defaults_build_the_default_desk() {
    let c = resolve("").unwrap();
    let names: Vec<_> = c.tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["L1", "L2", "Expert"]);
    let agents: Vec<_> = c
        .seed_agents
        .iter()
        .map(|a| (a.name.as_str(), a.capacity))
        .collect();
    assert_eq!(
        agents,
        [
            ("L1_Agent_1", 5),
            ("L1_Agent_2", 5),
            ("L1_Agent_3", 5),
            ("L2_Agent_1", 3),
            ("L2_Agent_2", 3),
            ("Expert_Agent_1", 3)
        ]
    );
    assert!(c.seed_agents[2].specialties.contains("account"));
    assert!(c.seed_agents[3].specialties.contains("how-to"));
    assert!(c.seed_agents[4].specialties.contains("billing"));
    assert_eq!(c.seed_reviewers.len(), 3);
    assert_eq!(c.settings.escalation_timeout_ms, 15 * 60 * 1000);
    assert!(
        c.tiers[0].threshold > c.tiers[1].threshold && c.tiers[1].threshold > c.tiers[2].threshold
    );
    assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
}

#[test]
fn a_four_tier_desk_from_toml() {
    let c = resolve(
        r#"
        [desk]
        name = "Acme"
        routing_strategy = "round_robin"
        [[desk.tiers]]
        name = "Support"
        agents = 4
        [[desk.tiers]]
        name = "Technical"
        agents = 3
        [[desk.tiers]]
        name = "Engineering"
        agents = 2
        [[desk.tiers]]
        name = "Management"
        agents = 1
        "#,
    )
    .unwrap();
    assert_eq!(c.seed_agents.len(), 10);
    assert_eq!(c.settings.routing, RoutingStrategy::RoundRobin);
    assert_eq!(c.desk_name, "Acme");
}

#[test]
fn the_readme_sample_builds_the_four_tier_desk() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").expect("README has a toml block") + 8;
    let len = readme[start..].find("```").expect("the toml block ends");
    let c = resolve(&readme[start..start + len]).unwrap();
    let tiers: Vec<_> = c.tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tiers, ["Support", "Technical", "Engineering", "Management"]);
    let per_tier: Vec<usize> = tiers
        .iter()
        .map(|t| c.seed_agents.iter().filter(|a| a.tier == *t).count())
        .collect();
    assert_eq!(per_tier, [4, 3, 2, 1]);
    assert_eq!(c.seed_reviewers.len(), 2);
    assert_eq!(c.policy.rules().len(), 6);
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.server, ServerLimits::default());
    assert_eq!(c.settings, Settings::default());
    assert_eq!(c.access.log, AccessLog::Errors);
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    assert!(resolve("listne = \"x\"").is_err());
    assert!(resolve("listen = \"nowhere\"").is_err());
    assert!(resolve("[desk]\nescalation_timeout_secs = 0").is_err());
    assert!(resolve("[desk]\ntiers = []").is_err());
    assert!(resolve("[[desk.tiers]]\nname = \"a\"\nthreshold = 1.5").is_err());
    assert!(resolve("[limits]\ninquiry_bytes = 0").is_err());
    assert!(resolve("[limits]\ninquiry_bytes = 99999999").is_err());
    let twice = "[[desk.reviewers]]\nid = \"r\"\nname = \"A\"\n\
                 [[desk.reviewers]]\nid = \"r\"\nname = \"B\"";
    assert!(resolve(twice).is_err());
    assert!(resolve("[[desk.reviewers]]\nid = \"r 1\"\nname = \"A\"").is_err());
    let same_tier = "[[desk.tiers]]\nname = \"A\"\n[[desk.tiers]]\nname = \"a\"";
    assert!(resolve(same_tier).is_err());
}

#[test]
fn the_store_section_sets_durability_and_the_old_key_still_works_with_a_warning() {
    let c = resolve("[store]\nsynchronous = \"normal\"").unwrap();
    assert_eq!(c.store.durability, Durability::Normal);
    assert!(c.warnings.is_empty());
    let old = resolve("synchronous = \"normal\"").unwrap();
    assert_eq!(old.store.durability, Durability::Normal);
    assert_eq!(old.warnings.len(), 1);
    assert!(old.warnings[0].contains("[store]"));
    assert_eq!(resolve("").unwrap().store.durability, Durability::Full);
    assert!(resolve("[store]\nsynchronous = \"sometimes\"").is_err());
}

#[test]
fn the_store_url_names_a_postgresql_database_or_nothing() {
    assert!(resolve("").unwrap().store.url.is_none());
    let c = resolve("[store]\nurl = \" postgres://desk@db:5432/desk \"").unwrap();
    assert_eq!(c.store.describe(), "PostgreSQL database desk on db:5432");
    let err = resolve("[store]\nurl = \"mysql://db/desk\"").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config: [store] url: must be a PostgreSQL URL"),
        "{err}"
    );
    let err = resolve("[store]\nurl = \"postgres://db/desk?sslmode=verify\"").unwrap_err();
    assert!(
        err.to_string().starts_with(
            "config: [store] url: the database URL's sslmode \"verify\" is not one of"
        ),
        "{err}"
    );
}

/// The configuration of a desk on PostgreSQL: `[store]` with `store` in it, and these
/// environment settings.
fn resolve_store(store: &str, overrides: Overrides) -> Result<Config, ConfigError> {
    let file = parse_file(&format!("[store]\n{store}"), Path::new("test.toml")).unwrap();
    Config::resolve(file, overrides)
}

#[test]
fn the_environment_names_the_database_and_its_password_given_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-the-file\n").unwrap();
    let variable = || {
        Some(Password::new(
            b"from-the-variable".to_vec(),
            "SERVICEDESK_STORE_PASSWORD",
        ))
    };
    let url = "url = \"postgres://desk@db/desk\"\n";
    let with_file = format!("{url}password_file = \"{}\"\n", file.display());

    // The URL from the environment wins over the file's.
    let c = resolve_store(
        url,
        Overrides {
            store_url: Some("postgres://desk@other:6543/elsewhere".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(
        c.store.describe(),
        "PostgreSQL database elsewhere on other:6543"
    );
    // Each source of a password alone is taken.
    resolve_store(&with_file, Overrides::default()).unwrap();
    resolve_store(
        url,
        Overrides {
            store_password: variable(),
            ..Overrides::default()
        },
    )
    .unwrap();
    resolve_store(
        url,
        Overrides {
            store_password_file: Some(file.clone()),
            ..Overrides::default()
        },
    )
    .unwrap();

    // Two at once are refused, naming both, showing neither.
    let twice = |store: &str, overrides: Overrides| {
        let err = resolve_store(store, overrides).unwrap_err().to_string();
        assert!(
            !err.contains("from-the") && !err.contains("s3cret"),
            "a password shows: {err}"
        );
        err
    };
    let err = twice(
        &with_file,
        Overrides {
            store_password: variable(),
            ..Overrides::default()
        },
    );
    assert_eq!(
        err,
        format!(
            "config: [store] url: the database password is given twice, in the password file \
             {} ([store] password_file) and in SERVICEDESK_STORE_PASSWORD; give it in one \
             place only",
            file.display()
        )
    );
    let err = twice(
        "url = \"postgres://desk:s3cret@db/desk\"\n",
        Overrides {
            store_password_file: Some(file.clone()),
            ..Overrides::default()
        },
    );
    assert!(
        err.contains(&format!(
            "in the URL and in the password file {} (--store-password-file \
             (SERVICEDESK_STORE_PASSWORD_FILE))",
            file.display()
        )),
        "{err}"
    );
    let err = twice(
        url,
        Overrides {
            store_url: Some("postgres://desk:s3cret@db/desk".into()),
            store_password: variable(),
            ..Overrides::default()
        },
    );
    assert!(
        err.starts_with(
            "config: --store-url (SERVICEDESK_STORE_URL): the database password is given \
             twice, in the URL and in SERVICEDESK_STORE_PASSWORD"
        ),
        "{err}"
    );
    // A password for no database went astray.
    let err = resolve_store(
        "",
        Overrides {
            store_password: variable(),
            ..Overrides::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "config: SERVICEDESK_STORE_PASSWORD gives a database password, but no database URL is \
         set ([store] url or SERVICEDESK_STORE_URL)"
    );
    let stray = format!("password_file = \"{}\"\n", file.display());
    let err = resolve_store(&stray, Overrides::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config: [store] password_file gives a database password"),
        "{err}"
    );
    // The environment's file replaces the configuration's, as every setting does.
    let missing = dir.path().join("missing");
    let err = resolve_store(
        &format!("{url}password_file = \"{}\"\n", missing.display()),
        Overrides {
            store_password_file: Some(file.clone()),
            ..Overrides::default()
        },
    );
    assert!(err.is_ok(), "{err:?}");
    let err = resolve_store(
        &format!("{url}password_file = \"{}\"\n", missing.display()),
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!(
            "config: cannot read the database password file {} ([store] password_file): ",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn settings_out_of_bounds_name_their_key() {
    let err = resolve("[desk]\nmax_review_reassignments = 11")
        .unwrap_err()
        .to_string();
    assert!(err.contains("desk.max_review_reassignments"), "{err}");
    let err = resolve("[desk]\nqueue_timeout_secs = 99999999999")
        .unwrap_err()
        .to_string();
    assert!(err.contains("desk.queue_timeout_secs"), "{err}");
}

#[test]
fn overrides_win_over_the_file() {
    let file = parse_file("listen = \"127.0.0.1:1\"", Path::new("t")).unwrap();
    let c = Config::resolve(
        file,
        Overrides {
            listen: Some("127.0.0.1:2".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(c.listen.port(), 2);
}

#[test]
fn the_advertised_address_is_checked_and_the_environment_wins_over_the_file() {
    let file = |text: &str| parse_file(text, Path::new("t")).unwrap();
    let shared =
        "[store]\nurl = \"postgres://desk@db/desk\"\nadvertise_address = \"10.0.0.1:50051\"\n";
    let c = Config::resolve(file(shared), Overrides::default()).unwrap();
    assert_eq!(
        c.replication.advertise_address.as_deref(),
        Some("http://10.0.0.1:50051")
    );
    let c = Config::resolve(
        file(shared),
        Overrides {
            advertise_address: Some("http://10.0.0.2:50051".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(
        c.replication.advertise_address.as_deref(),
        Some("http://10.0.0.2:50051")
    );
    for bad in [
        "10.0.0.1",
        "https://10.0.0.1:50051",
        "http://:50051",
        "http://h:port",
    ] {
        let refused = Config::resolve(
            file("[store]\nurl = \"postgres://desk@db/desk\"\n"),
            Overrides {
                advertise_address: Some(bad.into()),
                ..Overrides::default()
            },
        );
        assert!(refused.is_err(), "{bad} was taken");
    }
    assert_eq!(c.replication.lease_ttl, std::time::Duration::from_secs(5));
    assert!(Config::resolve(file("[store]\nlease_ttl_secs = 0\n"), Overrides::default()).is_err());
}

#[test]
fn cors_origins_are_origins_and_nothing_else() {
    assert!(resolve("").unwrap().server.cors_allowed_origins.is_empty());
    let c = resolve(
        "[server]\ncors_allowed_origins = [\"https://console.example.com\", \"http://localhost:5173\"]",
    )
    .unwrap();
    assert_eq!(c.server.cors_allowed_origins.len(), 2);
    for bad in [
        "*",
        "console.example.com",
        "https://console.example.com/",
        "https://console.example.com/app",
        "ftp://console.example.com",
        "https://host:port",
        "https://",
        "https://Console.example.com",
        "https://console.example.com:443",
        "http://console.example.com:80",
        "https://console.example.com.",
    ] {
        let err = resolve(&format!("[server]\ncors_allowed_origins = [{bad:?}]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cors_allowed_origins") && err.contains(bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn access_lines_are_off_unless_asked_and_the_environment_wins_over_the_file() {
    let off = resolve("").unwrap().access;
    assert_eq!((off.log, off.sample), (AccessLog::Off, 1.0));
    let errors = resolve("[log]\naccess = \"errors\"\naccess_sample = 0.25").unwrap();
    assert_eq!(errors.access.log, AccessLog::Errors);
    assert_eq!(errors.access.sample, 0.25);
    let file = parse_file("[log]\naccess = \"errors\"", Path::new("t")).unwrap();
    let overridden = Config::resolve(
        file,
        Overrides {
            access_log: Some(AccessLog::All),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(overridden.access.log, AccessLog::All);
    for bad in ["-0.5", "1.5", "nan"] {
        let err = resolve(&format!("[log]\naccess = \"all\"\naccess_sample = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("access_sample"), "{bad}: {err}");
    }
    for bad in ["[log]\naccess = \"some\"", "[log]\naccess_log = \"all\""] {
        assert!(parse_file(bad, Path::new("t")).is_err(), "{bad}");
    }
}

#[test]
fn each_server_limit_out_of_bounds_is_named_with_its_bound() {
    let cases = [
        (
            "max_message_bytes = 1000",
            "max_message_bytes = 1000 is not within 65536..=",
        ),
        (
            "max_concurrent_streams = 0",
            "max_concurrent_streams = 0 is not within 1..=",
        ),
        (
            "max_concurrent_requests = 0",
            "max_concurrent_requests = 0 is not within 1..=1000000",
        ),
        (
            "max_open_streams = 2000000",
            "max_open_streams = 2000000 is not within 1..=1000000",
        ),
        (
            "live_event_buffer = 0",
            "live_event_buffer = 0 is not within 1..=1000000 events",
        ),
        (
            "live_event_bytes = 0",
            "live_event_bytes = 0 is not within 1..=",
        ),
        (
            "stalled_stream_secs = 0",
            "stalled_stream_secs = 0 is not within 1..=86400 seconds",
        ),
        (
            "stalled_connection_secs = 90000",
            "stalled_connection_secs = 90000 is not within 1..=86400",
        ),
        (
            "max_requests_per_client = 5000",
            "max_requests_per_client = 5000 is not within 1..=4096",
        ),
        (
            "max_connections = 0",
            "max_connections = 0 is not within 1..=1000000",
        ),
        (
            "first_request_secs = 0",
            "first_request_secs = 0 is not within 1..=3600",
        ),
        (
            "idle_connection_secs = 0",
            "idle_connection_secs = 0 is not within 1..=604800",
        ),
        (
            "request_body_secs = 4000",
            "request_body_secs = 4000 is not within 1..=3600",
        ),
        (
            "keepalive_interval_secs = 0",
            "keepalive_interval_secs = 0 is not within 1..=86400",
        ),
        (
            "keepalive_timeout_secs = 0",
            "keepalive_timeout_secs = 0 is not within 1..=3600",
        ),
    ];
    for (line, says) in cases {
        let err = resolve(&format!("[server]\n{line}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("[server] {says}")), "{line}: {err}");
        // Only the field at fault is named.
        assert_eq!(err.matches("[server]").count(), 1, "{line}: {err}");
    }
    // Two at fault: both named, each with its own bound.
    let err = resolve("[server]\nmax_connections = 0\nrequest_body_secs = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_connections = 0") && err.contains("request_body_secs = 0"),
        "{err}"
    );
    assert!(resolve("").is_ok(), "the defaults are within every bound");
}

#[test]
fn seeded_reviewers_are_kept_as_the_desk_keeps_them() {
    let c = resolve(
        "[[desk.reviewers]]\nid = \"r1\"\nname = \"R\"\nspecialties = [\" Billing \", \"REFUNDS\"]\n",
    )
    .unwrap();
    let r = &c.seed_reviewers[0];
    assert_eq!(
        r.specialties,
        ["billing", "refunds"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(r.max_concurrent, 3);
    let defaults = resolve("").unwrap();
    assert_eq!(defaults.seed_reviewers[2].id, "manager_1");
    assert_eq!(defaults.seed_reviewers[2].max_concurrent, 5);
}
