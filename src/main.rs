//! The `servicedesk` binary: parses flags and environment, sets up logging, runs the server
//! until SIGTERM or SIGINT, and decides the exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use servicedesk::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "servicedesk",
    version,
    about = "A multi-tier customer service desk served over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the desk over gRPC.
    Serve {
        /// Address to listen on; port 0 picks a free port (the log says which).
        #[arg(long, env = "SERVICEDESK_LISTEN")]
        listen: Option<String>,
        /// Directory of the embedded store (created if missing).
        #[arg(long, env = "SERVICEDESK_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, env = "SERVICEDESK_CONFIG")]
        config: Option<PathBuf>,
        /// Development mode: also accept the well-known keys test-key-123 and admin-key-456.
        #[arg(long, env = "SERVICEDESK_DEV")]
        dev: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SERVICEDESK_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; files and log shippers get plain text.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let Command::Serve {
        listen,
        data_dir,
        config,
        dev,
    } = cli.command;
    let config = match Config::load(Overrides {
        listen,
        data_dir,
        config,
        dev,
    }) {
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
    match runtime.block_on(servicedesk::server::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
