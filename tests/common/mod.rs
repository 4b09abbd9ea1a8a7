//! Loopback test harness: starts the real `servicedesk` binary on a free port with its own
//! temporary data directory, waits for its `listening on ADDR` log line and hands out gRPC
//! clients that carry an API key. Every test gets its own server, port and directory; a test
//! that restarts keeps the directory ([`Server::terminate`] and [`Server::kill`] give it back).
//!
//! Set `SERVICEDESK_TEST_ECHO=1` to see the server's log live; a failing test prints the tail of
//! it anyway when its [`Server`] is dropped during the panic.

#![allow(dead_code)]

pub mod database;
pub mod instance;
pub mod proxy;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use servicedesk::proto::v1::admin_service_client::AdminServiceClient;
use servicedesk::proto::v1::agent_service_client::AgentServiceClient;
use servicedesk::proto::v1::desk_service_client::DeskServiceClient;
use servicedesk::proto::v1::escalation_service_client::EscalationServiceClient;
use servicedesk::proto::v1::{CreateApiKeyRequest, HandleInquiryRequest, HandleInquiryResponse};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tonic::codegen::InterceptedService;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Code, Request, Status, Streaming};
use tonic_types::StatusExt;

/// Development key of client `test-client`: `customer_service` and `escalation`.
pub const TEST_KEY: &str = "test-key-123";
/// Development key of client `admin-client`: `*`.
pub const ADMIN_KEY: &str = "admin-key-456";

/// The seed's scenarios.
pub const PASSWORD_RESET: &str = "How do I reset my password?";
pub const DOUBLE_CHARGE: &str =
    "I was charged twice for my subscription this month and need a refund";
pub const VIP_COMPLAINT: &str =
    "This is unacceptable, I want to speak to a manager and I expect compensation for the outage";

const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for the next message of a server stream.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_TAIL_LINES: usize = 200;

/// How a client authenticates.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// No key at all.
    None,
    /// `x-api-key: KEY`.
    ApiKey(String),
    /// `authorization: Bearer KEY`.
    Bearer(String),
}

/// Adds the credentials to every request's metadata.
#[derive(Clone)]
pub struct WithCredentials {
    header: Option<(&'static str, AsciiMetadataValue)>,
}

impl WithCredentials {
    fn new(credentials: &Credentials) -> Self {
        let header = match credentials {
            Credentials::None => None,
            Credentials::ApiKey(key) => Some(("x-api-key", key.parse().expect("ascii api key"))),
            Credentials::Bearer(key) => Some((
                "authorization",
                format!("Bearer {key}").parse().expect("ascii bearer token"),
            )),
        };
        WithCredentials { header }
    }
}

impl tonic::service::Interceptor for WithCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some((name, value)) = &self.header {
            request.metadata_mut().insert(*name, value.clone());
        }
        Ok(request)
    }
}

pub type Authenticated = InterceptedService<Channel, WithCredentials>;
pub type DeskClient = DeskServiceClient<Authenticated>;
pub type EscalationClient = EscalationServiceClient<Authenticated>;
pub type AdminClient = AdminServiceClient<Authenticated>;
pub type AgentClient = AgentServiceClient<Authenticated>;
pub type HealthClient = tonic_health::pb::health_client::HealthClient<Channel>;

/// How to start the binary.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Accept the development keys (`--dev`).
    pub dev: bool,
    /// Pass listen address, data directory, config and dev mode as `SERVICEDESK_*`
    /// environment variables instead of flags.
    pub through_environment: bool,
    /// Written to `root/servicedesk.toml` and passed as the config file.
    pub config_toml: Option<String>,
    /// Arguments after the standard ones.
    pub extra_args: Vec<String>,
    /// Further environment variables.
    pub env: Vec<(String, String)>,
    /// The server serves TLS with a certificate for `localhost` signed by this CA (PEM):
    /// clients connect over TLS trusting it.
    pub tls_ca_pem: Option<String>,
    /// A command the binary runs under, e.g. `["prlimit", "--nofile=256:256"]`.
    pub wrapper: Vec<String>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            dev: true,
            through_environment: false,
            config_toml: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            tls_ca_pem: None,
            wrapper: Vec::new(),
        }
    }
}

/// A running `servicedesk serve --dev` child process.
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    channel: Option<Channel>,
    root: Option<TempDir>,
    log: Arc<Mutex<Vec<String>>>,
    tls_ca_pem: Option<String>,
}

impl Server {
    /// The default desk in a fresh temporary directory.
    pub async fn start() -> Server {
        Server::start_with(new_root(), &[], None).await
    }

    /// A fresh temporary directory with this TOML passed as `--config`.
    pub async fn start_with_config(config_toml: &str) -> Server {
        Server::start_with(new_root(), &[], Some(config_toml)).await
    }

    /// Starts the binary on `root` (its store lives in `root/data`), with `extra_args` after the
    /// standard ones and, when given, `config_toml` written to `root/servicedesk.toml` and passed
    /// with `--config`. Panics, with the server's log, unless it logs `listening on ADDR` within
    /// 30 s.
    pub async fn start_with(
        root: TempDir,
        extra_args: &[&str],
        config_toml: Option<&str>,
    ) -> Server {
        let launch = Launch {
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            config_toml: config_toml.map(str::to_string),
            ..Launch::default()
        };
        Server::launch(root, launch).await
    }

    /// Starts the binary on `root` as `launch` says.
    pub async fn launch(root: TempDir, launch: Launch) -> Server {
        let data_dir = root.path().join("data");
        let binary = env!("CARGO_BIN_EXE_servicedesk");
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("serve");
        // Nothing from the test's own environment may change what the server does.
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            if name_text.starts_with("SERVICEDESK_") || name_text.starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let mut settings: Vec<(&str, &str, String)> = vec![
            ("--listen", "SERVICEDESK_LISTEN", "127.0.0.1:0".to_string()),
            (
                "--data-dir",
                "SERVICEDESK_DATA_DIR",
                data_dir.display().to_string(),
            ),
        ];
        if let Some(toml) = &launch.config_toml {
            let path = root.path().join("servicedesk.toml");
            std::fs::write(&path, toml).expect("write the config file");
            settings.push(("--config", "SERVICEDESK_CONFIG", path.display().to_string()));
        }
        if launch.dev {
            settings.push(("--dev", "SERVICEDESK_DEV", "true".to_string()));
        }
        for (flag, variable, value) in settings {
            match (launch.through_environment, flag) {
                (true, _) => {
                    command.env(variable, value);
                }
                (false, "--dev") => {
                    command.arg(flag);
                }
                (false, _) => {
                    command.arg(flag).arg(value);
                }
            }
        }
        command.args(&launch.extra_args);
        for (name, value) in &launch.env {
            command.env(name, value);
        }
        command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the servicedesk binary");

        let log = Arc::new(Mutex::new(Vec::new()));
        let (found_tx, found_rx) = oneshot::channel();
        let found = Arc::new(Mutex::new(Some(found_tx)));
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout = child.stdout.take().expect("piped stdout");
        spawn_log_reader(stderr, log.clone(), found.clone());
        spawn_log_reader(stdout, log.clone(), found);

        let mut server = Server {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            channel: None,
            root: Some(root),
            log,
            tls_ca_pem: launch.tls_ca_pem.clone(),
        };
        let addr = match tokio::time::timeout(START_TIMEOUT, found_rx).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => {
                let status = server.reap_after_kill();
                panic!(
                    "servicedesk ended its output without logging `listening on` (exit: {status:?})\n{}",
                    server.log_tail()
                );
            }
            Err(_) => {
                server.reap_after_kill();
                panic!(
                    "servicedesk did not log `listening on ADDR` within {START_TIMEOUT:?}\n{}",
                    server.log_tail()
                );
            }
        };
        server.addr = addr;
        server.channel = Some(server.connect_channel().await);
        server
    }

    async fn connect_channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let scheme = if self.tls_ca_pem.is_some() {
                "https"
            } else {
                "http"
            };
            let mut endpoint = Channel::from_shared(format!("{scheme}://{}", self.addr))
                .expect("valid endpoint")
                .connect_timeout(Duration::from_secs(5));
            if let Some(ca) = &self.tls_ca_pem {
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost");
                endpoint = endpoint.tls_config(tls).expect("client TLS config");
            }
            match endpoint.connect().await {
                Ok(channel) => return channel,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!(
                    "cannot connect to servicedesk at {}: {err}\n{}",
                    self.addr,
                    self.log_tail()
                ),
            }
        }
    }

    /// The server's process id (a wrapper like prlimit execs it, keeping the id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running child").id()
    }

    /// The server's resident memory, in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temporary directory holding `data/` (and the config file, if any).
    pub fn root(&self) -> &Path {
        self.root.as_ref().expect("server root").path()
    }

    /// The store directory passed as `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    /// The shared HTTP/2 channel to the server.
    pub fn channel(&self) -> Channel {
        self.channel.clone().expect("connected channel")
    }

    /// A second, independent connection.
    pub async fn new_channel(&self) -> Channel {
        self.connect_channel().await
    }

    /// DeskService with `test-key-123`.
    pub fn desk(&self) -> DeskClient {
        self.desk_with(Credentials::ApiKey(TEST_KEY.into()))
    }

    /// EscalationService with `test-key-123`.
    pub fn escalations(&self) -> EscalationClient {
        self.escalations_with(Credentials::ApiKey(TEST_KEY.into()))
    }

    /// AdminService with `admin-key-456`.
    pub fn admin(&self) -> AdminClient {
        self.admin_with(Credentials::ApiKey(ADMIN_KEY.into()))
    }

    /// DeskService with `x-api-key: key`.
    pub fn desk_as(&self, key: &str) -> DeskClient {
        self.desk_with(Credentials::ApiKey(key.into()))
    }

    /// EscalationService with `x-api-key: key`.
    pub fn escalations_as(&self, key: &str) -> EscalationClient {
        self.escalations_with(Credentials::ApiKey(key.into()))
    }

    /// AdminService with `x-api-key: key`.
    pub fn admin_as(&self, key: &str) -> AdminClient {
        self.admin_with(Credentials::ApiKey(key.into()))
    }

    pub fn desk_with(&self, credentials: Credentials) -> DeskClient {
        DeskServiceClient::with_interceptor(self.channel(), WithCredentials::new(&credentials))
    }

    pub fn escalations_with(&self, credentials: Credentials) -> EscalationClient {
        EscalationServiceClient::with_interceptor(
            self.channel(),
            WithCredentials::new(&credentials),
        )
    }

    pub fn admin_with(&self, credentials: Credentials) -> AdminClient {
        AdminServiceClient::with_interceptor(self.channel(), WithCredentials::new(&credentials))
    }

    /// AgentService with `x-api-key: key` on the shared connection.
    pub fn agents_as(&self, key: &str) -> AgentClient {
        self.agents_with(Credentials::ApiKey(key.into()))
    }

    pub fn agents_with(&self, credentials: Credentials) -> AgentClient {
        AgentServiceClient::with_interceptor(self.channel(), WithCredentials::new(&credentials))
    }

    /// AgentService with `x-api-key: key` on a connection of its own, as an agent process
    /// has: dropping every clone of it closes the connection.
    pub async fn agents_on_own_connection(&self, key: &str) -> AgentClient {
        AgentServiceClient::with_interceptor(
            self.new_channel().await,
            WithCredentials::new(&Credentials::ApiKey(key.into())),
        )
    }

    /// `grpc.health.v1.Health`, without any key.
    pub fn health(&self) -> HealthClient {
        tonic_health::pb::health_client::HealthClient::new(self.channel())
    }

    /// Creates an API key with the admin dev key and returns its secret.
    pub async fn create_key(&self, client_id: &str, permissions: &[&str]) -> String {
        let created = self
            .admin()
            .create_api_key(CreateApiKeyRequest {
                client_id: client_id.into(),
                client_name: format!("{client_id} (test)"),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            })
            .await
            .unwrap_or_else(|s| panic!("CreateApiKey for {client_id}: {s:?}"))
            .into_inner();
        assert!(
            !created.api_key.is_empty(),
            "CreateApiKey returned no secret"
        );
        created.api_key
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits up to `limit` for the server to log `text` (its log reaches the test through a
    /// pipe, a moment after the fact).
    pub async fn until_logged(&self, text: &str, limit: Duration) {
        poll_until(limit, &format!("the server logs {text:?}"), || async move {
            self.log_text().contains(text).then_some(())
        })
        .await;
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let start = log.len().saturating_sub(LOG_TAIL_LINES);
        let mut text = format!(
            "---- servicedesk log (last {} lines) ----\n",
            log.len() - start
        );
        for line in &log[start..] {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("---- end of servicedesk log ----");
        text
    }

    /// Sends SIGTERM, waits (at most 30 s) for the process to exit, asserts it exited with
    /// status 0 and gives the directory back for a restart.
    pub async fn terminate(mut self) -> TempDir {
        self.send_sigterm();
        let status = self.wait_for_exit(EXIT_TIMEOUT).await;
        match status {
            Some(status) => assert!(
                status.success(),
                "servicedesk exited with {status} after SIGTERM, expected status 0\n{}",
                self.log_tail()
            ),
            None => {
                self.reap_after_kill();
                panic!(
                    "servicedesk did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
                    self.log_tail()
                );
            }
        }
        self.child = None;
        self.root.take().expect("server root")
    }

    /// Sends SIGTERM and returns at once; [`Server::terminate`] then waits for the exit.
    pub fn send_sigterm(&self) {
        self.send_signal("TERM");
    }

    /// Sends the signal (`TERM`, `STOP`, `CONT`, ...) and returns at once.
    pub fn send_signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running child").id();
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{name} {pid} failed: {sent}");
    }

    /// Sends SIGKILL (a crash), waits for the process and gives the directory back.
    pub async fn kill(mut self) -> TempDir {
        self.reap_after_kill();
        self.root.take().expect("server root")
    }

    /// Waits (at most `limit`) for the process to exit on its own; `None` while it runs.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.wait_for_exit(limit).await
    }

    async fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn reap_after_kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.reap_after_kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// The example binary `cargo test` builds next to the test binaries.
pub fn example_binary(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples",
        path.display()
    );
    path
}

pub fn new_root() -> TempDir {
    tempfile::Builder::new()
        .prefix("servicedesk-test-")
        .tempdir()
        .expect("create a temporary directory")
}

fn spawn_log_reader(
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    found: Arc<Mutex<Option<oneshot::Sender<SocketAddr>>>>,
) {
    let echo = std::env::var_os("SERVICEDESK_TEST_ECHO").is_some();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = strip_ansi(String::from_utf8_lossy(&buffer).trim_end());
            if echo {
                eprintln!("[servicedesk] {line}");
            }
            if let Some(addr) = parse_listening(&line) {
                if let Some(tx) = found.lock().unwrap().take() {
                    let _ = tx.send(addr);
                }
            }
            log.lock().unwrap().push(line);
        }
        // Dropping our handle on `found` lets the waiter see an early exit.
        drop(found);
    });
}

/// `... listening on 127.0.0.1:43817 ...` -> the address.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    token.parse().ok()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Sets every agent of the desk to `availability` (PAUSED: nobody takes new tickets, so
/// inquiries wait QUEUED; AVAILABLE: back to work) and returns their ids.
pub async fn set_every_agent(
    server: &Server,
    availability: servicedesk::proto::v1::AgentAvailability,
) -> Vec<String> {
    let mut admin = server.admin();
    let agents = admin
        .list_agents(servicedesk::proto::v1::ListAgentsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("ListAgents")
        .into_inner()
        .agents;
    assert!(!agents.is_empty(), "the desk has agents");
    let mut ids = Vec::new();
    for agent in agents {
        admin
            .update_agent(servicedesk::proto::v1::UpdateAgentRequest {
                agent_id: agent.agent_id.clone(),
                availability: Some(availability as i32),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("UpdateAgent({availability:?}): {s:?}"));
        ids.push(agent.agent_id);
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// Requests

/// An inquiry with default priority and no context.
pub fn inquiry(customer_id: &str, text: &str) -> HandleInquiryRequest {
    HandleInquiryRequest {
        customer_id: customer_id.into(),
        inquiry: text.into(),
        ..Default::default()
    }
}

/// An inquiry with a priority and context.
pub fn inquiry_with(
    customer_id: &str,
    text: &str,
    priority: i32,
    context: &[(&str, &str)],
) -> HandleInquiryRequest {
    HandleInquiryRequest {
        customer_id: customer_id.into(),
        inquiry: text.into(),
        priority,
        context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

/// The seed's double-charge refund, priority 8: ends in a HIGH review for supervisor_1.
pub fn refund_request(customer_id: &str) -> HandleInquiryRequest {
    inquiry_with(customer_id, DOUBLE_CHARGE, 8, &[])
}

/// The seed's VIP complaint, priority 10: ends in an URGENT review.
pub fn vip_complaint(customer_id: &str) -> HandleInquiryRequest {
    inquiry_with(customer_id, VIP_COMPLAINT, 10, &[("vip", "true")])
}

/// Sends an inquiry and expects an answer.
pub async fn ask(desk: &mut DeskClient, request: HandleInquiryRequest) -> HandleInquiryResponse {
    let what = format!(
        "HandleInquiry({:?} for {})",
        request.inquiry, request.customer_id
    );
    let mut request = Request::new(request);
    request.set_timeout(Duration::from_secs(60));
    match desk.handle_inquiry(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => panic!("{what} failed: {status:?}"),
    }
}

/// Asks for a refund and returns the response, asserting a review is pending.
pub async fn create_refund_escalation(
    desk: &mut DeskClient,
    customer_id: &str,
) -> HandleInquiryResponse {
    let response = ask(desk, refund_request(customer_id)).await;
    assert!(
        !response.escalation_id.is_empty(),
        "a refund request must go to human review, got {response:?}"
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Results

/// The desk's head, as a list answered on `server` reads it.
pub async fn head(server: &Server) -> u64 {
    ok(
        server
            .desk_as(ADMIN_KEY)
            .list_tickets(servicedesk::proto::v1::ListTicketsRequest::default())
            .await,
        "ListTickets",
    )
    .sequence
}

/// Every agent of the desk (one page, up to 500).
pub async fn all_agents(server: &Server) -> Vec<servicedesk::proto::v1::Agent> {
    ok(
        server
            .admin()
            .list_agents(servicedesk::proto::v1::ListAgentsRequest {
                page_size: 500,
                ..Default::default()
            })
            .await,
        "ListAgents",
    )
    .agents
}

/// Whether the call failed in the client's transport because the server closed the connection
/// under it: gracefully (HTTP/2 GOAWAY, which tonic reports as INTERNAL) or by closing the socket
/// as it changed role (CANCELLED, "connection closed"). The client heard no answer, so nothing
/// was acknowledged to it.
pub fn went_away(status: &Status) -> bool {
    let said = format!("{status:?}");
    (status.code() == Code::Internal && said.contains("GoAway"))
        || (status.code() == Code::Cancelled && said.contains("connection closed"))
}

/// A read's answer, asked again for up to 30 s while it fails as a call does when the server
/// changes role under it, as a client would: refused as UNAVAILABLE, or failed in the client's
/// transport ([`went_away`], or CANCELLED, which only the transport makes of a read nobody
/// cancelled). Any other failure fails the test, as [`ok`] does.
pub async fn read<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Err(status)
                if (matches!(status.code(), Code::Unavailable | Code::Cancelled)
                    || went_away(&status))
                    && Instant::now() < deadline =>
            {
                eprintln!("{what}: {status:?}; asked again, as a client would");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return ok(result, what),
        }
    }
}

/// Unwraps an OK response with a message naming the call.
pub fn ok<T>(result: Result<tonic::Response<T>, Status>, what: &str) -> T {
    match result {
        Ok(response) => response.into_inner(),
        Err(status) => panic!(
            "{what}: expected OK, got {:?}: {}",
            status.code(),
            status.message()
        ),
    }
}

/// Asserts the call failed with `code` and returns the status.
pub fn expect_code<T: Debug>(result: Result<T, Status>, code: Code, what: &str) -> Status {
    match result {
        Ok(value) => panic!("{what}: expected {code:?}, got OK: {value:?}"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "{what}: expected {code:?}, got {:?}: {}",
                status.code(),
                status.message()
            );
            status
        }
    }
}

/// The `field`s of the status's `google.rpc.BadRequest` detail.
pub fn bad_request_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Whether a BadRequest `field` path names `field` (exactly, or an element/sub-field of it such
/// as `context[key]` or `context.key`).
pub fn names_field(path: &str, field: &str) -> bool {
    path == field
        || path
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Asserts INVALID_ARGUMENT with a BadRequest violation naming `field`.
pub fn expect_bad_field<T: Debug>(result: Result<T, Status>, field: &str, what: &str) {
    let status = expect_code(result, Code::InvalidArgument, what);
    let fields = bad_request_fields(&status);
    assert!(
        fields.iter().any(|f| names_field(f, field)),
        "{what}: expected a BadRequest field violation for `{field}`, got fields {fields:?} (message: {})",
        status.message()
    );
}

// ---------------------------------------------------------------------------------------------
// Streams

/// A server stream read in a background task, so opening it never blocks the test (some servers
/// send the response headers only with the first message) and a hung stream becomes a timeout.
pub struct Watch<T> {
    rx: mpsc::UnboundedReceiver<Result<T, Status>>,
    task: tokio::task::JoinHandle<()>,
    what: String,
}

impl<T: Send + Debug + 'static> Watch<T> {
    /// Opens the stream with `open` (e.g. `async move { client.watch_events(req).await }`).
    pub fn open<F>(what: &str, open: F) -> Watch<T>
    where
        F: Future<Output = Result<tonic::Response<Streaming<T>>, Status>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = match open.await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    let _ = tx.send(Err(status));
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        if tx.send(Ok(message)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status));
                        return;
                    }
                }
            }
        });
        Watch {
            rx,
            task,
            what: what.to_string(),
        }
    }

    /// The next message, `Some(Err)` for a stream error, `None` once the stream ended. Panics
    /// when nothing comes within `limit`.
    pub async fn next_result_within(&mut self, limit: Duration) -> Option<Result<T, Status>> {
        match tokio::time::timeout(limit, self.rx.recv()).await {
            Ok(item) => item,
            Err(_) => panic!("{}: nothing received within {limit:?}", self.what),
        }
    }

    /// The next message; `None` once the stream ended cleanly. Panics on a stream error or
    /// after [`STREAM_TIMEOUT`].
    pub async fn next(&mut self) -> Option<T> {
        match self.next_result_within(STREAM_TIMEOUT).await {
            None => None,
            Some(Ok(message)) => Some(message),
            Some(Err(status)) => panic!(
                "{}: stream failed with {:?}: {}",
                self.what,
                status.code(),
                status.message()
            ),
        }
    }

    /// The next message, which must exist.
    pub async fn expect_next(&mut self) -> T {
        match self.next().await {
            Some(message) => message,
            None => panic!("{}: stream ended early", self.what),
        }
    }

    /// Reads until `done` says so, returning every message read (the last one included).
    pub async fn until(&mut self, mut done: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut seen = Vec::new();
        loop {
            let message = match self.next().await {
                Some(message) => message,
                None => panic!(
                    "{}: stream ended before the expected message; got {} messages: {seen:#?}",
                    self.what,
                    seen.len()
                ),
            };
            let stop = done(&message);
            seen.push(message);
            if stop {
                return seen;
            }
        }
    }

    /// Reads every remaining message until the stream ends cleanly.
    pub async fn until_end(&mut self) -> Vec<T> {
        let mut seen = Vec::new();
        while let Some(message) = self.next().await {
            seen.push(message);
        }
        seen
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Polling

/// Calls `probe` every 100 ms until it returns `Some`, panicking with `what` after `limit`.
pub async fn poll_until<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod harness_tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let line =
            "2025-01-01T00:00:00.000Z  INFO servicedesk::server: listening on 127.0.0.1:43817";
        assert_eq!(
            parse_listening(line),
            Some("127.0.0.1:43817".parse().unwrap())
        );
        let colored = "\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m listening on 127.0.0.1:5 \u{1b}[3maddr\u{1b}[0m";
        assert_eq!(
            parse_listening(&strip_ansi(colored)),
            Some("127.0.0.1:5".parse().unwrap())
        );
        assert_eq!(parse_listening("nothing here"), None);
    }

    #[test]
    fn field_paths() {
        assert!(names_field("context", "context"));
        assert!(names_field("context[k]", "context"));
        assert!(names_field("context.k", "context"));
        assert!(!names_field("contexts", "context"));
    }
}

/// What a run of the binary that is expected to end printed, and how it ended.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    /// stdout and stderr together.
    pub output: String,
}

/// Runs the binary with `args` and waits (at most `limit`) for it to exit on its own; `None`
/// when it was still running at the limit (it is killed then).
pub async fn run_to_exit<S: AsRef<std::ffi::OsStr>>(args: &[S], limit: Duration) -> Option<Exited> {
    run_to_exit_with_env(args, &[], limit).await
}

/// As [`run_to_exit`], with these environment variables set too.
pub async fn run_to_exit_with_env<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, &str)],
    limit: Duration,
) -> Option<Exited> {
    let dir = tempfile::tempdir().expect("a directory for the output");
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).expect("create the output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_servicedesk"))
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone the output file"))
        .stderr(out)
        .spawn()
        .expect("spawn the servicedesk binary");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    status.map(|status| Exited { status, output })
}

/// `servicedesk serve --dev` on a free port and a fresh directory, with `config` and `env`,
/// expected to stop on its own within `limit` (a start that is refused), and what it said.
pub async fn serve_to_exit(config: &str, env: &[(&str, &str)], limit: Duration) -> Exited {
    let root = tempfile::tempdir().unwrap();
    let config_path = root.path().join("servicedesk.toml");
    std::fs::write(&config_path, config).unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--dev".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        root.path().join("data").into(),
        "--config".into(),
        config_path.into(),
    ];
    run_to_exit_with_env(&args, env, limit)
        .await
        .expect("the server must stop on its own")
}

/// `servicedesk health` against `addr`, asking about `service`, to its exit.
pub async fn health_command(addr: std::net::SocketAddr, service: &str) -> Exited {
    let args = [
        "health".to_string(),
        "--address".into(),
        format!("http://{addr}"),
        "--service".into(),
        service.into(),
        "--timeout-secs".into(),
        "3".into(),
    ];
    run_to_exit(&args, Duration::from_secs(20))
        .await
        .expect("the health command ends on its own")
}
