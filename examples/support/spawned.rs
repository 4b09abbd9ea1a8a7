//! A server a benchmark starts and stops: the release binary beside the examples (or another),
//! on a free loopback port with a fresh data directory. Shared by `load` and `fanout`.

// Each benchmark uses what it needs of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Lines of a server's log shown at most (its warnings and errors).
const SHOWN_LOG_LINES: usize = 20;

/// A started server, killed if still running when dropped.
pub struct Spawned {
    name: &'static str,
    child: Child,
    /// `http://ADDR`, from its log.
    pub addr: String,
    data_dir: tempfile::TempDir,
}

/// The binary `name` of this build, at `dir` relative to this example's directory (`..` for
/// the server, `.` for another example).
pub fn beside(dir: &str, name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("where this example runs from")?;
    exe.parent()
        .map(|examples| examples.join(dir).join(name))
        .filter(|path| path.is_file())
        .with_context(|| {
            format!(
                "no {name} binary beside this example: run `cargo build --release --bins --examples` first"
            )
        })
}

impl Spawned {
    /// Starts the desk: `serve --dev` and `extra`, with `binary` or the one beside this example.
    pub fn desk(binary: Option<&Path>, extra: &[String]) -> anyhow::Result<Spawned> {
        Spawned::desk_with_env(binary, extra, &[])
    }

    /// [`Spawned::desk`] with these environment variables set.
    pub fn desk_with_env(
        binary: Option<&Path>,
        extra: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Spawned> {
        let binary = match binary {
            Some(binary) => binary.to_path_buf(),
            None => beside("..", "servicedesk")?,
        };
        let mut args: Vec<String> = vec!["serve".into(), "--dev".into()];
        args.extend_from_slice(extra);
        Spawned::start("desk", &binary, &args, env)
    }

    /// Starts the `floor` example with `args`.
    pub fn floor(args: &[String]) -> anyhow::Result<Spawned> {
        Spawned::start("floor", &beside(".", "floor")?, args, &[])
    }

    /// Starts `binary` with `args`, `--listen 127.0.0.1:0` and a fresh `--data-dir` (and `env`),
    /// and waits for its log to say `listening on ADDR`. Its warnings and errors are shown as
    /// they come, the first few.
    pub fn start(
        name: &'static str,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Spawned> {
        let data_dir = tempfile::tempdir().context("a temporary data directory")?;
        let mut child = Command::new(binary)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let (listening, addr) = std::sync::mpsc::channel();
        let shown = Arc::new(AtomicUsize::new(0));
        let outputs: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
        ];
        for output in outputs.into_iter().flatten() {
            let listening = listening.clone();
            let shown = shown.clone();
            std::thread::spawn(move || read_log(name, output, &listening, &shown));
        }
        let addr = addr
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| {
                format!(
                    "{} did not log `listening on` within 60 s",
                    binary.display()
                )
            })?;
        println!(
            "started the {name} ({}) on {addr}, data in {}",
            binary.display(),
            data_dir.path().display()
        );
        Ok(Spawned {
            name,
            child,
            addr: format!("http://{addr}"),
            data_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it cleanly (SIGINT: the desk drains) and waits, killing it after 30 s.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        // SAFETY: signalling our own child, which has not been waited for, by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the {} exited with {status}", self.name);
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!("the {} did not stop within 30 s of SIGINT", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bytes of the files in its data directory.
    pub fn bytes_on_disk(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for entry in std::fs::read_dir(self.data_dir.path())? {
            total += entry?.metadata()?.len();
        }
        Ok(total)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Nothing to do for a child already waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one of a server's outputs to its end: sends the address of its `listening on` line,
/// and shows its warnings and errors, the first [`SHOWN_LOG_LINES`] of both outputs.
fn read_log(
    name: &str,
    output: Box<dyn Read + Send>,
    listening: &std::sync::mpsc::Sender<String>,
    shown: &AtomicUsize,
) {
    for line in BufReader::new(output).lines().map_while(Result::ok) {
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let _ = listening.send(addr.to_string());
        } else if line.contains("WARN") || line.contains("ERROR") {
            match shown.fetch_add(1, Ordering::Relaxed) {
                n if n < SHOWN_LOG_LINES => eprintln!("  [{name}] {line}"),
                SHOWN_LOG_LINES => eprintln!("  [{name}] (further warnings not shown)"),
                _ => {}
            }
        }
    }
}
