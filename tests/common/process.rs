//! Running the `hallmark` binary in tests: commands, temporary directories, certificates on disk,
//! children killed when dropped, and their stderr read line by line.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub fn hallmark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hallmark"));
    c.env_remove("RUST_LOG");
    c
}

pub fn run(args: &[&str]) -> Output {
    hallmark().args(args).output().expect("hallmark runs")
}

pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hallmark-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Kills the child when dropped, so a failing test leaves no process behind.
pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn init_certs(dir: &Path, nodes: &[&str]) {
    let out = run(&["certs", "init", "--out", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in nodes {
        let out = run(&[
            "certs",
            "issue",
            "--ca",
            dir.to_str().unwrap(),
            "--node",
            node,
            "--out",
            dir.join("nodes").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Lines a child writes to stderr, collected by a thread as they come.
pub fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line containing `needle` that comes within `limit`; otherwise the lines that came.
pub fn line_with(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
) -> Result<String, Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    Err(seen)
}

/// Waits for a line containing `needle`, at most `limit`; returns when it came.
pub fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
) -> Option<Instant> {
    line_with(rx, needle, limit).ok().map(|_| Instant::now())
}

/// Waits for `child` to exit, at most `limit`; fails the test with `what` if it does not.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("child status") {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The files of a cluster made by [`init_certs`] in `dir` and the coordinator's address: the
/// command lines of its processes.
pub struct Cluster {
    pub dir: PathBuf,
    pub addr: SocketAddr,
}

impl Cluster {
    /// `dir/file` as a string argument.
    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// The coordinator's TLS arguments: `--listen ADDR --ca --cert --key`.
    fn coordinator_tls(&self) -> Vec<String> {
        vec![
            "--listen".into(),
            self.addr.to_string(),
            "--ca".into(),
            self.path("ca.pem"),
            "--cert".into(),
            self.path("coordinator.pem"),
            "--key".into(),
            self.path("coordinator-key.pem"),
        ]
    }

    /// `hallmark coordinator` with the cluster's certificates.
    pub fn coordinator(&self) -> Command {
        let mut c = hallmark();
        c.arg("coordinator").args(self.coordinator_tls());
        c
    }

    /// `hallmark run PLAN --listen …` storing into `dir/results`.
    pub fn run_listen(&self, plan: &str) -> Command {
        let mut c = hallmark();
        c.args(["run", &self.path(plan)])
            .args(self.coordinator_tls())
            .args(["--results", &self.path("results")]);
        c
    }

    /// `hallmark probe` as `node` with the certificate issued to `cert` (usually the same).
    pub fn probe(&self, node: &str, cert: &str) -> Command {
        let mut c = hallmark();
        c.args([
            "probe",
            "--coordinator",
            &self.addr.to_string(),
            "--ca",
            &self.path("ca.pem"),
            "--cert",
            &self.path(&format!("nodes/{cert}.pem")),
            "--key",
            &self.path(&format!("nodes/{cert}-key.pem")),
            "--node",
            node,
        ]);
        c
    }
}

/// A coordinator process (`run --listen`) and one simulated probe process of node
/// `row1-rack01-n01`, running a 60 s steady phase; the probe's stderr lines in `lines`.
pub struct LongRun {
    pub dir: PathBuf,
    pub node: &'static str,
    pub cluster: Cluster,
    pub coordinator: Killed,
    pub probe: Killed,
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// Starts a [`LongRun`] in a fresh directory tagged `tag`.
pub fn start_long_run(tag: &str) -> LongRun {
    let dir = tempdir(tag);
    let node = "row1-rack01-n01";
    init_certs(&dir, &[node]);
    std::fs::write(
        dir.join("plan.toml"),
        "name = \"long\"\n[expect]\nnodes = 1\n[[phase]]\nname = \"steady\"\nworkload = \"burn\"\n\
         duration_s = 60\npattern = { kind = \"steady\", level = 1.0 }\n",
    )
    .unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let cluster = Cluster {
        dir: dir.clone(),
        addr: super::free_udp_port(),
    };
    let coordinator = Killed(
        cluster
            .run_listen("plan.toml")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut probe = Killed(
        cluster
            .probe(node, node)
            .args(["-v", "--sim-hall", hall])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = stderr_lines(&mut probe.0);
    LongRun {
        dir,
        node,
        cluster,
        coordinator,
        probe,
        lines,
    }
}

/// A plan for the two nodes of rack row1-rack01 in examples/hall-small.toml, two phases of
/// 1.5 s (about 3 s).
pub const TWO_NODE_PLAN: &str = r#"
name = "two-nodes"
sample_hz = 10
[expect]
timeout_s = 20
[expect.racks]
"row1-rack01" = ["row1-rack01-n01", "row1-rack01-n02"]
[[phase]]
name = "ramp"
workload = "burn"
duration_s = 1.5
pattern = { kind = "ramp", from = 0.0, to = 1.0 }
[[phase]]
name = "steady"
workload = "burn"
duration_s = 1.5
pattern = { kind = "steady", level = 1.0 }
"#;
