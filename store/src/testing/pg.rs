//! A throw-away PostgreSQL server for tests, and a fresh database per test.
//!
//! [`shared`] is the server of a test process: the one `HALLMARK_TEST_PG` names (a URL of a
//! superuser's connection; `.ci/run` starts one server for the whole run and sets it), otherwise one
//! this process starts ([`PgServer::start`]): `initdb` in a temporary directory (as the `postgres`
//! user when running as root, since `initdb` refuses root), `pg_ctl start` on 127.0.0.1 and a free
//! port with its socket in that directory. A server this process started is stopped and its directory
//! removed on drop, and, for the shared one that is never dropped, by a watchdog that waits (at most
//! two hours) for the test process to end. [`PgServer::database`] creates a database with a unique
//! name, dropped when its [`TestDb`] is.
//!
//! Without `initdb`/`pg_ctl` (on the PATH or in `/usr/lib/postgresql/*/bin`) the result is
//! [`Unavailable::Missing`], which a test turns into a skip outside CI and a failure in CI
//! (`tests/common/prereq.rs`). A server that exists but misbehaves is [`Unavailable::Broken`]: a failure
//! everywhere. Every wait is bounded.

use crate::db::pg::{self, Timeouts};
use crate::db::Db;
use crate::location::{Location, Password, PgTarget};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The variable naming a running server for the tests.
pub const TEST_PG_VAR: &str = "HALLMARK_TEST_PG";
/// How long `pg_ctl` may take to start or stop a server.
const PG_CTL_WAIT_S: u32 = 60;

/// Why there is no server.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// A prerequisite is missing (no PostgreSQL binaries): skip outside CI, fail in CI.
    Missing(String),
    /// A server should be there but does not work: always a failure.
    Broken(String),
}

/// A PostgreSQL server reachable as a superuser.
pub struct PgServer {
    admin: PgTarget,
    own: Option<Cluster>,
}

/// A cluster this process made: its directory, and how to run `pg_ctl` on it.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

/// Options of a server of one's own.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// When set, TCP connections need a password (`scram-sha-256`) and the superuser `postgres` has this one.
    pub superuser_password: Option<String>,
    /// Keep PostgreSQL's defaults `fsync=on` and `full_page_writes=on` (for measuring ingest as a
    /// real server commits it); tests run with both off, since a throw-away server needs no
    /// durability.
    pub durable: bool,
}

static SHARED: OnceLock<Result<PgServer, Unavailable>> = OnceLock::new();

/// The test process's server (see the module's documentation).
pub fn shared() -> Result<&'static PgServer, Unavailable> {
    SHARED
        .get_or_init(
            || match std::env::var(TEST_PG_VAR).ok().filter(|v| !v.is_empty()) {
                Some(url) => PgServer::from_url(&url),
                None => PgServer::start(&ClusterOptions::default()).inspect(|s| s.watch()),
            },
        )
        .as_ref()
        .map_err(Clone::clone)
}

/// A database of its own for one test; dropped with it.
pub struct TestDb {
    /// Where it is, as the store would be told.
    pub target: PgTarget,
    admin: PgTarget,
}

impl TestDb {
    /// A plain connection to it (no meta check, no migrations).
    pub fn connect(&self) -> Db {
        pg::connect(&self.target, &Timeouts::default())
            .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.target.dbname
        );
        match pg::connect(&self.admin, &Timeouts::default()) {
            Ok(mut db) => {
                if let Err(e) = db.execute_batch(&sql) {
                    eprintln!("dropping test database {}: {e}", self.target);
                }
            }
            Err(e) => eprintln!("dropping test database {}: {e}", self.target),
        }
    }
}

impl PgServer {
    /// The server a superuser's URL names (its password from PGPASSWORD or the password file).
    pub fn from_url(url: &str) -> Result<PgServer, Unavailable> {
        match Location::parse(url) {
            Ok(Location::Postgres(admin)) => Ok(PgServer { admin, own: None }),
            Ok(Location::Dir(_)) => Err(Unavailable::Broken(format!(
                "{TEST_PG_VAR}={url} is not a postgres:// URL"
            ))),
            Err(e) => Err(Unavailable::Broken(format!("{TEST_PG_VAR}: {e}"))),
        }
    }

    /// Starts a server of this process's own.
    pub fn start(options: &ClusterOptions) -> Result<PgServer, Unavailable> {
        let bin = find_bin().ok_or_else(|| {
            Unavailable::Missing(
                "PostgreSQL's initdb and pg_ctl are neither on the PATH nor in /usr/lib/postgresql/*/bin \
                 (Debian: apt-get install postgresql), and HALLMARK_TEST_PG is not set"
                    .into(),
            )
        })?;
        let as_postgres = is_root();
        if as_postgres && !run_ok(Command::new("id").arg("postgres")) {
            return Err(Unavailable::Missing(
                "running as root, and there is no postgres user to run initdb as".into(),
            ));
        }
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hallmark-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let cluster = Cluster {
            dir,
            bin,
            as_postgres,
        };
        let port = cluster
            .init_and_start(options)
            .map_err(Unavailable::Broken)?;
        let admin = PgTarget {
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            dbname: "postgres".into(),
            password: options.superuser_password.clone().map(Password::new),
            connect_timeout: Duration::from_secs(10),
            application_name: Some("hallmark-tests".into()),
        };
        Ok(PgServer {
            admin,
            own: Some(cluster),
        })
    }

    /// The superuser's connection to the `postgres` database (or what `HALLMARK_TEST_PG` names).
    pub fn admin(&self) -> &PgTarget {
        &self.admin
    }

    /// A fresh database with a unique name, owned by the superuser.
    pub fn database(&self) -> Result<TestDb, Unavailable> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "hallmark_t_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut db = pg::connect(&self.admin, &Timeouts::default())
            .map_err(|e| Unavailable::Broken(format!("the test server: {e}")))?;
        db.execute_batch(&format!("CREATE DATABASE {name}"))
            .map_err(|e| Unavailable::Broken(e.to_string()))?;
        let mut target = self.admin.clone();
        target.dbname = name;
        Ok(TestDb {
            target,
            admin: self.admin.clone(),
        })
    }

    /// Stops the server when the test process has ended (for the shared one, never dropped).
    fn watch(&self) {
        let Some(c) = &self.own else { return };
        let script = format!(
            "i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 7200 ]; do sleep 1; i=$((i+1)); done; {stop}; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = c.pg_ctl_line("stop -m immediate"),
            dir = c.dir.display(),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!(
                "no watchdog for the test server in {}: {e}",
                c.dir.display()
            );
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(c) = &self.own {
            c.stop();
        }
    }
}

impl Cluster {
    fn pg(&self) -> PathBuf {
        self.dir.join("pg")
    }

    /// `initdb`, then `pg_ctl start` on a free loopback port; returns the port.
    fn init_and_start(&self, options: &ClusterOptions) -> Result<u16, String> {
        let pg = self.pg();
        std::fs::create_dir_all(&pg).map_err(|e| format!("creating {}: {e}", pg.display()))?;
        chmod(&self.dir, 0o755)?;
        let mut initdb = vec![
            "-D".to_owned(),
            pg.join("data").display().to_string(),
            "-U".into(),
            "postgres".into(),
            "-E".into(),
            "UTF8".into(),
            "--locale=C".into(),
            "--no-sync".into(),
        ];
        match &options.superuser_password {
            Some(password) => {
                let file = pg.join("pwfile");
                std::fs::write(&file, password)
                    .map_err(|e| format!("writing {}: {e}", file.display()))?;
                initdb.extend([
                    "--auth-local=trust".into(),
                    "--auth-host=scram-sha-256".into(),
                ]);
                initdb.push(format!("--pwfile={}", file.display()));
            }
            None => initdb.extend(["-A".into(), "trust".into()]),
        }
        if self.as_postgres {
            let owned = run_ok(Command::new("chown").args(["-R", "postgres:"]).arg(&pg));
            if !owned {
                return Err(format!("chown postgres {} failed", pg.display()));
            }
        }
        self.run("initdb", &initdb)?;
        let port = free_port()?;
        let speed = if options.durable {
            ""
        } else {
            " -c fsync=off -c full_page_writes=off"
        };
        let server_opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1{speed}",
            pg.display()
        );
        let log = pg.join("log").display().to_string();
        let data = pg.join("data").display().to_string();
        let wait = PG_CTL_WAIT_S.to_string();
        let start = [
            "-D",
            &data,
            "-o",
            &server_opts,
            "-l",
            &log,
            "-w",
            "-t",
            &wait,
            "start",
        ];
        if let Err(e) = self.run("pg_ctl", &start.map(str::to_owned)) {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            return Err(format!("{e}\nserver log:\n{tail}"));
        }
        Ok(port)
    }

    /// Runs a server program, as `postgres` when we are root.
    fn run(&self, program: &str, args: &[String]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", path.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {} failed ({}): {}{}",
                path.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `pg_ctl ACTION` on this cluster as one shell line (for the watchdog).
    fn pg_ctl_line(&self, action: &str) -> String {
        let pg_ctl = format!(
            "'{}' -D '{}' -w -t {PG_CTL_WAIT_S} {action} >/dev/null 2>&1",
            self.bin.join("pg_ctl").display(),
            self.pg().join("data").display()
        );
        if self.as_postgres {
            format!("runuser -u postgres -- {pg_ctl}")
        } else {
            pg_ctl
        }
    }

    fn stop(&self) {
        let data = self.pg().join("data").display().to_string();
        let wait = PG_CTL_WAIT_S.to_string();
        let args = ["-D", &data, "-m", "immediate", "-w", "-t", &wait, "stop"].map(str::to_owned);
        if let Err(e) = self.run("pg_ctl", &args) {
            eprintln!("stopping the test server: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `initdb`'s directory: next to `initdb` on the PATH, else the newest `/usr/lib/postgresql/N/bin`.
fn find_bin() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has_both(d));
    if let Some(d) = on_path {
        // A Debian PATH entry is a symlink into the versioned directory; the real one works alike.
        return Some(
            std::fs::canonicalize(d.join("initdb"))
                .ok()?
                .parent()?
                .to_path_buf(),
        );
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free loopback port: {e}"))
}
