//! A desk of its own on the test PostgreSQL for one test: a fresh schema, dropped with
//! everything in it when the test ends, on the server `SERVICEDESK_TEST_POSTGRES` names (CI
//! sets it), else on the local default, where a test without a server says it skipped.

/// Where the tests find PostgreSQL unless `SERVICEDESK_TEST_POSTGRES` says otherwise.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of its own for one test, dropped with everything in it at the end.
pub struct ScratchDesk {
    pub admin_url: String,
    pub schema: String,
}

impl ScratchDesk {
    /// A fresh schema, or `None` (after saying so) when no PostgreSQL answers at the default
    /// URL; a server named in `SERVICEDESK_TEST_POSTGRES` must answer.
    pub fn new(test: &str) -> Option<ScratchDesk> {
        off_the_runtime(|| ScratchDesk::create(test))
    }

    fn create(test: &str) -> Option<ScratchDesk> {
        let named = std::env::var("SERVICEDESK_TEST_POSTGRES").ok();
        let admin_url = named.clone().unwrap_or_else(|| DEFAULT_URL.into());
        let mut client = match connect(&admin_url) {
            Ok(client) => client,
            Err(err) => {
                assert!(
                    named.is_none(),
                    "{test}: SERVICEDESK_TEST_POSTGRES names {admin_url}, which does not answer: {err}"
                );
                eprintln!("skipped {test}: no PostgreSQL at {admin_url} ({err})");
                return None;
            }
        };
        let schema = format!("sd_e2e_{:016x}", rand::random::<u64>());
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create the test schema");
        Some(ScratchDesk { admin_url, schema })
    }

    /// The server's configuration: the desk in this schema.
    pub fn config(&self) -> String {
        format!("[store]\nurl = \"{}\"\n", self.url())
    }

    /// The URL of the desk in this schema.
    pub fn url(&self) -> String {
        let separator = if self.admin_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.admin_url, self.schema
        )
    }
}

impl Drop for ScratchDesk {
    fn drop(&mut self) {
        off_the_runtime(|| {
            if let Ok(mut client) = connect(&self.admin_url) {
                let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
                let _ = client.batch_execute(&drop);
            }
        })
    }
}

/// A connection to the server at `url`, made as the desk makes its own (TLS as the URL asks).
pub fn connect(url: &str) -> Result<postgres::Client, servicedesk::store::StoreError> {
    servicedesk::store::postgres::Database::new(url)?.connect()
}

/// Runs `f` on a thread of its own: the blocking PostgreSQL client must not run on the
/// test's async runtime.
pub fn off_the_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("the blocking call panicked"))
}

impl ScratchDesk {
    /// The process id of the server holding the desk's lease, while it is valid.
    pub fn lease_holder_pid(&self) -> Option<u32> {
        off_the_runtime(|| {
            let mut client = connect(&self.admin_url).ok()?;
            let row = client
                .query_opt(
                    &format!(
                        "SELECT holder FROM {}.desk_lease WHERE expires_at > clock_timestamp()",
                        self.schema
                    ),
                    &[],
                )
                .ok()??;
            // The holder is `host/pid/random`.
            let holder: String = row.get(0);
            holder.split('/').nth(1)?.parse().ok()
        })
    }
}

impl ScratchDesk {
    /// The address of the PostgreSQL server the desk is on.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let config: postgres::Config = self.admin_url.parse().expect("a PostgreSQL URL");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        (host.as_str(), port)
            .to_socket_addrs()
            .expect("resolve the PostgreSQL host")
            .next()
            .expect("an address of the PostgreSQL host")
    }

    /// The server's configuration for the desk in this schema, reaching PostgreSQL at `addr`
    /// (a proxy) instead.
    pub fn config_via(&self, addr: std::net::SocketAddr) -> String {
        let url = self.url();
        // The URL names the server as written: replace its host and port.
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').expect("a URL with a database");
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"));
        format!(
            "[store]\nurl = \"{scheme}://{}{addr}/{path}\"\n",
            user.unwrap_or_default()
        )
    }
}

impl ScratchDesk {
    /// From another session, holds the lease's row `FOR SHARE` so that a renewal of the
    /// leader (an `UPDATE` of the row) waits `stall` from when it reaches the row, as it would
    /// behind a slow commit; then lets the row go for `window` before holding it again, until
    /// `total` has passed. Returns the renewals stalled.
    pub fn stall_lease_renewals(
        &self,
        stall: std::time::Duration,
        window: std::time::Duration,
        total: std::time::Duration,
    ) -> std::thread::JoinHandle<u32> {
        use std::time::{Duration, Instant};
        let (url, schema) = (self.admin_url.clone(), self.schema.clone());
        std::thread::spawn(move || {
            let mut client = connect(&url).expect("connect to stall");
            let lock = format!("SELECT epoch FROM {schema}.desk_lease WHERE id = 1 FOR SHARE");
            // A renewal of this desk waiting on this session's hold.
            let renewal_waits = "SELECT count(*) FROM pg_stat_activity \
                 WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid)) \
                 AND query LIKE 'UPDATE desk_lease SET expires_at%'";
            let started = Instant::now();
            let mut stalled = 0;
            while started.elapsed() < total {
                let mut tx = client.transaction().expect("begin");
                tx.query_one(&lock, &[]).expect("hold the lease's row");
                let waiting_since = loop {
                    let waiting: i64 = tx.query_one(renewal_waits, &[]).expect("look").get(0);
                    if waiting > 0 {
                        stalled += 1;
                        break Instant::now();
                    }
                    if started.elapsed() >= total {
                        break Instant::now() - stall;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                std::thread::sleep(stall.saturating_sub(waiting_since.elapsed()));
                tx.commit().expect("let the row go");
                std::thread::sleep(window);
            }
            stalled
        })
    }
}
