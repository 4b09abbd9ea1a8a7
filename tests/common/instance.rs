//! A PostgreSQL server of one test's own, serving TLS with a certificate the test makes: made by
//! `initdb` in a temporary directory, on a free port, with the `pg_hba.conf` the test writes,
//! and stopped (`pg_ctl stop -m immediate`) and removed when dropped, even when the test fails.
//!
//! `initdb` refuses to run as root: as root, the server's programs run as the `postgres` user,
//! which owns the directory. Where the server's programs are missing, a test says it skipped,
//! unless `SERVICEDESK_TEST_POSTGRES` is set (as in CI): then the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

use super::database::off_the_runtime;

/// A certificate authority of the test's making.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, in a file (PEM).
    pub pem_file: PathBuf,
}

impl Authority {
    /// A new authority, its certificate written to `dir/NAME.pem`.
    pub fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test authority"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem_file = dir.join(format!("{name}.pem"));
        std::fs::write(&pem_file, issuer.pem()).unwrap();
        Authority { issuer, pem_file }
    }

    /// A certificate this authority signed, for `names` (host names or addresses) with
    /// `common_name` as its subject, and its key: both PEM.
    pub fn issue(&self, names: &[&str], common_name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// A running PostgreSQL server of the test's own.
pub struct Instance {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The authority that signed the server's certificate (for `localhost` only) and the
    /// client certificates it takes.
    pub authority: Authority,
}

/// The newest PostgreSQL's server programs on this machine.
fn server_programs() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Instance {
    /// A new server with `ssl = on`, a certificate for `localhost` alone, and `hba` as its
    /// `pg_hba.conf` (a `local all postgres trust` line is added for the test's own
    /// connections); `None`, after saying so, where PostgreSQL's server programs are missing
    /// and no `SERVICEDESK_TEST_POSTGRES` asks for PostgreSQL tests to run.
    pub fn start(test: &str, hba: &str) -> Option<Instance> {
        let Some(bin) = server_programs() else {
            assert!(
                std::env::var_os("SERVICEDESK_TEST_POSTGRES").is_none(),
                "{test}: SERVICEDESK_TEST_POSTGRES is set, so PostgreSQL tests must run, and \
                 they need PostgreSQL's server programs (initdb, pg_ctl) in \
                 /usr/lib/postgresql/VERSION/bin; install them (Debian: postgresql)"
            );
            eprintln!("skipped {test}: no PostgreSQL server programs in /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("sd-pg-")
            .tempdir()
            .expect("a directory for the server");
        let authority = Authority::new(dir.path(), "authority");
        let (cert, key) = authority.issue(&["localhost"], "localhost");
        std::fs::write(dir.path().join("server.crt"), cert).unwrap();
        std::fs::write(dir.path().join("server.key"), key).unwrap();
        let mut instance = Instance {
            dir,
            bin,
            port: 0,
            authority,
        };
        if running_as_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(instance.dir.path())
                .status()
                .expect("run chown");
            assert!(owned.success(), "chown the server's directory to postgres");
        }
        // The server refuses a key anyone else may read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            instance.dir.path().join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        instance.run(
            "initdb",
            &[
                "-D",
                &instance.data().display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
            ],
        );
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             ssl_ca_file = '{ca}'\nfsync = off\nshared_buffers = 16MB\n",
            dir = instance.dir.path().display(),
            ca = instance.authority.pem_file.display(),
        );
        let conf = instance.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        instance.write_hba(hba);
        // A port found free may be taken before the server binds it: then another.
        for _ in 0..5 {
            instance.port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if instance.pg_ctl_start() {
                return Some(instance);
            }
        }
        panic!(
            "{test}: the test's PostgreSQL did not start:\n{}",
            std::fs::read_to_string(instance.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A directory of the test's own beside the server's, for the files it writes.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one of the server's programs (as `postgres` when this test runs as root).
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl_start(&self) -> bool {
        self.command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(self.data())
            .arg("-w")
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .output()
            .map(|output| output.status.success())
            .unwrap_or(false)
    }

    /// Replaces `pg_hba.conf` with `hba`, after a line that lets the test in on the socket.
    fn write_hba(&self, hba: &str) {
        let path = self.data().join("pg_hba.conf");
        std::fs::write(&path, format!("local all postgres trust\n{hba}\n")).unwrap();
        if running_as_root() {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&path)
                .status()
                .unwrap();
        }
    }

    /// Runs `sql` as the superuser in the database `postgres`.
    pub fn execute(&self, sql: &str) {
        off_the_runtime(|| {
            self.client("postgres")
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
    }

    /// The first column of the one row `sql` answers, as text, asked as the superuser in the
    /// database `database`.
    pub fn query_text(&self, database: &str, sql: &str) -> String {
        off_the_runtime(|| {
            self.client(database)
                .query_one(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get(0)
        })
    }

    /// A connection of the superuser's to `database`, over the socket (never TLS): only off
    /// the test's async runtime.
    fn client(&self, database: &str) -> postgres::Client {
        let url = format!(
            "postgres://postgres@{}:{}/{database}",
            percent(&self.dir.path().display().to_string()),
            self.port
        );
        super::database::connect(&url).expect("connect to the test's PostgreSQL")
    }

    /// `ssl` as `on` says, reloaded: returns once a new connection sees it.
    pub fn set_ssl(&self, on: bool) {
        let value = if on { "on" } else { "off" };
        // ALTER SYSTEM runs alone, outside any transaction.
        self.execute(&format!("ALTER SYSTEM SET ssl = {value}"));
        self.execute("SELECT pg_reload_conf()");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if self.query_text("postgres", "SHOW ssl") == value {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not take ssl = {value}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A URL of the database `desk` as `user` at `host`, with `query`.
    pub fn url(&self, user: &str, host: &str, query: &str) -> String {
        format!("postgres://{user}@{host}:{}/desk?{query}", self.port)
    }
}

/// `text` percent-encoded as a URL's host (a socket's directory).
fn percent(text: &str) -> String {
    text.replace('%', "%25").replace('/', "%2F")
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w"])
            .output();
    }
}
