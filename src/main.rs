//! The `servicedesk` binary: parses flags and environment, sets up logging, runs the server
//! until SIGTERM or SIGINT, and decides the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use servicedesk::config::{database, AccessLog, Config, LogFormat, Overrides};
use servicedesk::store::postgres::Password;
use servicedesk::telemetry::Telemetry;

#[derive(Parser)]
#[command(
    name = "servicedesk",
    version,
    about = "A multi-tier customer service desk served over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written: `text` (default) or `json` (one object per line, with the
    /// call's method and trace id inside a request).
    #[arg(long, global = true, env = "SERVICEDESK_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the desk over gRPC.
    Serve {
        /// Address to listen on; port 0 picks a free port (the log says which).
        #[arg(long, env = "SERVICEDESK_LISTEN")]
        listen: Option<String>,
        /// With a desk in PostgreSQL: what the other servers dial to reach this one
        /// (http://host:port); wins over `[store] advertise_address`.
        #[arg(long, env = "SERVICEDESK_ADVERTISE_ADDRESS")]
        advertise_address: Option<String>,
        /// Serve Prometheus metrics at `/metrics` on this address (plain HTTP), e.g.
        /// 0.0.0.0:9090; off by default.
        #[arg(long, env = "SERVICEDESK_METRICS_LISTEN")]
        metrics_listen: Option<String>,
        /// Directory of the embedded store (created if missing).
        #[arg(long, env = "SERVICEDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// A file holding the key a new desk takes as its first admin key
        /// (sd_<12 hex digits>_<32 or more letters or digits>), e.g. mounted from a Secret;
        /// without it a new desk writes a generated one to DATA_DIR/admin.key.
        #[arg(long, env = "SERVICEDESK_ADMIN_KEY_FILE")]
        admin_key_file: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, env = "SERVICEDESK_CONFIG")]
        config: Option<PathBuf>,
        /// Development mode: also accept the well-known keys test-key-123 and admin-key-456.
        #[arg(long, env = "SERVICEDESK_DEV")]
        dev: bool,
        /// Check the whole store at start (reads all of it) instead of the quick check.
        #[arg(long, env = "SERVICEDESK_FULL_CHECK")]
        full_check: bool,
        /// Keep the desk in this PostgreSQL database (postgres://user@host:port/database?...);
        /// wins over `[store] url`. The password may also come from SERVICEDESK_STORE_PASSWORD.
        #[arg(long, env = "SERVICEDESK_STORE_URL", hide_env_values = true)]
        store_url: Option<String>,
        /// A file holding the database's password, e.g. mounted from a Secret; wins over
        /// `[store] password_file`.
        #[arg(long, env = "SERVICEDESK_STORE_PASSWORD_FILE")]
        store_password_file: Option<PathBuf>,
        /// One log line per call as it ends (target servicedesk::access): `off` (default),
        /// `errors` (calls that ended with any code but OK) or `all`; wins over `[log] access`.
        #[arg(long, env = "SERVICEDESK_ACCESS_LOG", value_enum)]
        access_log: Option<AccessLog>,
    },
    /// Check a stopped server's store for damage; exit 1 if it is damaged.
    Check {
        /// Directory of the embedded store.
        #[arg(long, env = "SERVICEDESK_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Read every page and index entry, not only the structure.
        #[arg(long)]
        full: bool,
    },
    /// Ask a running server's health service; exit 0 only when it answers SERVING.
    Health {
        /// The server: http://host:port, or https://host:port for TLS.
        #[arg(
            long,
            env = "SERVICEDESK_HEALTH_ADDRESS",
            default_value = "http://127.0.0.1:50051"
        )]
        address: String,
        /// The service to ask about (e.g. servicedesk.v1.DeskService); the whole server when
        /// left out.
        #[arg(long, default_value = "")]
        service: String,
        /// With https: the CA certificate (PEM) that signed the server's.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// With https: the name the server's certificate carries, when not the address's host.
        #[arg(long)]
        domain: Option<String>,
        /// With https to a server that asks for one: this client certificate (PEM) ...
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// ... and its key (PEM).
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// How long to wait for the answer, seconds.
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// Copy a stopped desk from the embedded store into an empty PostgreSQL database, then
    /// check the copy (counts and the log's head); exit 1 if anything differs.
    Migrate {
        /// The embedded store: `sqlite://DATA_DIR` (the server's data directory).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: `postgres://user@host:port/database` (with
        /// `?options=-csearch_path%3Dschema` for a schema of its own, `&sslmode=verify-full`
        /// for TLS); its password may come from SERVICEDESK_STORE_PASSWORD.
        #[arg(long)]
        to: String,
        /// A file holding the database's password.
        #[arg(long, env = "SERVICEDESK_STORE_PASSWORD_FILE")]
        password_file: Option<PathBuf>,
    },
}

/// jemalloc rather than the C library's allocator: the tokio workers and the writer allocate for
/// every request and every statement, and glibc's arenas spent a sixth of the server's time in
/// `malloc`, `free` and consolidation under load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    if !matches!(cli.command, Command::Serve { .. }) {
        Telemetry::logs_only(log_format.unwrap_or_default());
    }
    let overrides = match cli.command {
        Command::Serve {
            listen,
            advertise_address,
            metrics_listen,
            data_dir,
            admin_key_file,
            config,
            dev,
            full_check,
            store_url,
            store_password_file,
            access_log,
        } => Overrides {
            listen,
            advertise_address,
            metrics_listen,
            data_dir,
            admin_key_file,
            config,
            dev,
            full_check,
            store_url,
            store_password_file,
            store_password: store_password(),
            access_log,
        },
        Command::Check { data_dir, full } => return check(data_dir, full),
        Command::Migrate {
            from,
            to,
            password_file,
        } => return migrate(&from, &to, password_file),
        Command::Health {
            address,
            service,
            ca,
            domain,
            cert,
            key,
            timeout_secs,
        } => {
            return health(servicedesk::server::probe::Probe {
                address,
                service,
                ca,
                domain,
                identity: cert.zip(key),
                timeout: std::time::Duration::from_secs(timeout_secs),
            })
        }
    };
    let config = match Config::load(overrides) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("servicedesk: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => {
            eprintln!("servicedesk: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter's connections live on the server's runtime. Telemetry never stops the
    // start: an OTLP setting it cannot honour is a warning, and the desk serves untraced.
    let entered = runtime.enter();
    let telemetry = Telemetry::init(
        log_format.or(config.log_format).unwrap_or_default(),
        config.access,
    );
    drop(entered);
    #[cfg(unix)]
    {
        use servicedesk::process;
        process::survive_file_size_limit();
        process::log_bus_errors();
        match process::raise_open_files_limit() {
            Ok(limit) => tracing::debug!(open_files = limit, "open files limit"),
            Err(err) => tracing::warn!(error = %err, "cannot read the open files limit"),
        }
    }
    let served = runtime.block_on(async {
        // Installed before anything starts: a SIGTERM that arrives while the desk opens its
        // store, or right after it logs `listening on`, drains it instead of killing it.
        let shutdown = shutdown_signal();
        servicedesk::server::run(config, shutdown).await
    });
    {
        let _entered = runtime.enter();
        telemetry.shutdown();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `servicedesk check`: the store's consistency, offline.
fn check(data_dir: PathBuf, full: bool) -> ExitCode {
    let kind = if full { "full" } else { "quick" };
    match servicedesk::server::check_store(&data_dir, full) {
        Ok(took) => {
            println!(
                "{}: no damage found ({kind} check, {} ms)",
                data_dir.display(),
                took.as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("servicedesk: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled: a signal in between is kept, not lost to its default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `SERVICEDESK_STORE_PASSWORD`, the database's password; unset when empty, as libpq takes
/// an empty `PGPASSWORD`. Never a flag: a command line is visible to every user of the machine.
fn store_password() -> Option<Password> {
    const VARIABLE: &str = "SERVICEDESK_STORE_PASSWORD";
    let value = std::env::var_os(VARIABLE)?;
    (!value.is_empty()).then(|| Password::new(value.as_encoded_bytes().to_vec(), VARIABLE))
}

/// `servicedesk migrate`: copies the desk and says what was copied.
fn migrate(from: &str, to: &str, password_file: Option<PathBuf>) -> ExitCode {
    let Some(dir) = from.strip_prefix("sqlite://") else {
        eprintln!("servicedesk: --from must be sqlite://DATA_DIR (the embedded store's directory)");
        return ExitCode::from(2);
    };
    let password_file =
        password_file.map(|path| (path, "--password-file (SERVICEDESK_STORE_PASSWORD_FILE)"));
    let mut warnings = Vec::new();
    let to = match database(to, "--to", password_file, store_password(), &mut warnings) {
        Ok(to) => to,
        Err(err) => {
            eprintln!("servicedesk: {err}");
            return ExitCode::from(2);
        }
    };
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    match servicedesk::store::copy_desk(std::path::Path::new(dir), &to) {
        Ok(c) => {
            println!(
                "copied and checked: {} tickets, {} escalations, {} events (head sequence {}), \
                 {} agents, {} reviewers, {} API keys",
                c.tickets, c.escalations, c.events, c.head, c.agents, c.reviewers, c.keys
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("servicedesk: the desk was not copied: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `servicedesk health`: prints the status; exit 0 on SERVING, 1 on anything else.
fn health(probe: servicedesk::server::probe::Probe) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("servicedesk: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(servicedesk::server::probe::probe(&probe)) {
        Ok(status) if status == "SERVING" => {
            println!("{status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("{status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("servicedesk: {err:#}");
            ExitCode::FAILURE
        }
    }
}
