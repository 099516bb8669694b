//! Tests of `--results` parsing, the PG* environment and the password file.

use super::*;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn pg(arg: &str, pairs: &[(&str, &str)]) -> Result<PgTarget, LocationError> {
    match Location::parse_with(arg, &env_of(pairs))? {
        Location::Postgres(t) => Ok(t),
        other => panic!("{arg} read as {other:?}"),
    }
}

/// A scratch directory for password files, removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("hallmark-loc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
    fn file(&self, name: &str, text: &str, mode: u32) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path.display().to_string()
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_directory_stays_a_directory() {
    let loc = Location::parse_with("runs/hall-a", &env_of(&[])).unwrap();
    assert_eq!(loc, Location::Dir(PathBuf::from("runs/hall-a")));
    assert_eq!(loc.to_string(), "runs/hall-a");
}

#[test]
fn another_scheme_is_refused() {
    let err = Location::parse_with("mysql://u@h/db", &env_of(&[])).unwrap_err();
    assert!(
        err.to_string().contains("unsupported scheme mysql"),
        "{err}"
    );
}

#[test]
fn a_full_url_is_read() {
    let t = pg("postgres://alice@db.example:6543/hallmark", &[]).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
        ("db.example", 6543, "alice", "hallmark")
    );
    assert_eq!(t.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(t.password, None);
    assert_eq!(t.to_string(), "postgres://alice@db.example:6543/hallmark");
    let t = pg("postgresql://alice@[::1]/h%20m", &[]).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.dbname.as_str()),
        ("::1", 5432, "h m")
    );
    assert_eq!(t.to_string(), "postgres://alice@[::1]:5432/h m");
}

#[test]
fn the_environment_fills_the_gaps_and_the_url_wins() {
    let env = [
        ("PGHOST", "envhost"),
        ("PGPORT", "7777"),
        ("PGUSER", "envuser"),
        ("PGDATABASE", "envdb"),
        ("PGCONNECT_TIMEOUT", "3"),
        ("PGAPPNAME", "ci"),
        ("USER", "login"),
    ];
    let t = pg("postgres://", &env).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
        ("envhost", 7777, "envuser", "envdb")
    );
    assert_eq!(t.connect_timeout, Duration::from_secs(3));
    assert_eq!(t.application_name.as_deref(), Some("ci"));
    let t = pg("postgres://u@h:1/d?connect_timeout=1", &env).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
        ("h", 1, "u", "d")
    );
    assert_eq!(
        t.connect_timeout,
        Duration::from_secs(2),
        "libpq raises 1 s to 2 s"
    );
}

#[test]
fn defaults_are_localhost_the_login_and_its_database() {
    let t = pg("postgres://", &[("USER", "bob")]).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
        ("localhost", 5432, "bob", "bob")
    );
    let err = pg("postgres://", &[]).unwrap_err();
    assert!(matches!(err, LocationError::NoUser { .. }), "{err}");
    assert!(err.to_string().contains("PGUSER"), "{err}");
}

#[test]
fn a_zero_timeout_is_bounded() {
    let t = pg("postgres://u@h/d", &[("PGCONNECT_TIMEOUT", "0")]).unwrap();
    assert_eq!(t.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    let err = pg("postgres://u@h/d", &[("PGCONNECT_TIMEOUT", "soon")]).unwrap_err();
    assert!(
        err.to_string().starts_with("PGCONNECT_TIMEOUT=soon"),
        "{err}"
    );
}

#[test]
fn a_socket_directory_is_a_host() {
    let t = pg("postgres://u@/d?host=%2Frun%2Fpg&port=5433", &[]).unwrap();
    assert_eq!((t.host.as_str(), t.port), ("/run/pg", 5433));
    assert_eq!(t.to_string(), "postgres://u@:5433/d?host=/run/pg");
}

#[test]
fn a_password_in_the_url_is_refused_and_never_shown() {
    for url in [
        "postgres://alice:s3cret@h/db",
        "postgres://alice@h/db?password=s3cret",
    ] {
        let err = pg(url, &[]).unwrap_err();
        assert!(
            matches!(err, LocationError::PasswordInUrl { .. }),
            "{url}: {err}"
        );
        let text = err.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("PGPASSWORD") && text.contains("pgpass"),
            "{text}"
        );
    }
}

#[test]
fn bad_urls_say_what_is_wrong() {
    let cases = [
        ("postgres://u@h:99999/d", "port 99999"),
        ("postgres://u@h/d?sslcert=x", "unknown parameter sslcert"),
        ("postgres://u@h/d?sslmode=sometimes", "sslmode sometimes"),
        ("postgres://u@h1,h2/d", "several hosts"),
        ("postgres://u@[::1/d", "closing ]"),
        ("postgres://u@h/d%zz", "bad %-escape"),
    ];
    for (url, says) in cases {
        let err = pg(url, &[]).unwrap_err().to_string();
        assert!(err.contains(says), "{url}: {err}");
    }
}

#[test]
fn tls_modes_that_need_tls_are_refused() {
    assert!(pg("postgres://u@h/d?sslmode=disable", &[]).is_ok());
    let err = pg("postgres://u@h/d", &[("PGSSLMODE", "verify-full")]).unwrap_err();
    assert!(matches!(err, LocationError::TlsUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("postgres://u@h:5432/d"), "{err}");
}

#[test]
fn pgpassword_is_used_and_not_shown() {
    let t = pg("postgres://u@h/d", &[("PGPASSWORD", "hunter2")]).unwrap();
    assert_eq!(t.password.as_ref().map(Password::expose), Some("hunter2"));
    assert!(!t.to_string().contains("hunter2"));
    assert!(!format!("{t:?}").contains("hunter2"));
}

fn target(host: &str, port: u16, db: &str, user: &str) -> PgTarget {
    PgTarget {
        host: host.into(),
        port,
        user: user.into(),
        dbname: db.into(),
        password: None,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        application_name: None,
    }
}

#[test]
fn passfile_lines_match_with_wildcards_and_escapes() {
    let text = "# comment\n\
                other:5432:*:*:nope\n\
                db\\:host:5432:d:u:colon-host\n\
                h:*:d:u:p\\:w\\\\d\n\
                *:*:*:u:fallback\n";
    assert_eq!(
        passfile_lookup(text, &target("h", 6000, "d", "u")).as_deref(),
        Some("p:w\\d")
    );
    assert_eq!(
        passfile_lookup(text, &target("db:host", 5432, "d", "u")).as_deref(),
        Some("colon-host")
    );
    assert_eq!(
        passfile_lookup(text, &target("x", 1, "y", "u")).as_deref(),
        Some("fallback")
    );
    assert_eq!(passfile_lookup(text, &target("x", 1, "y", "v")), None);
    assert_eq!(
        passfile_lookup("/tmp:*:*:u:sock", &target("/tmp", 1, "y", "u")),
        None
    );
    assert_eq!(
        passfile_lookup("localhost:*:*:u:sock", &target("/tmp", 1, "y", "u")).as_deref(),
        Some("sock")
    );
    assert_eq!(
        passfile_lookup("h:5432:d:u", &target("h", 5432, "d", "u")),
        None,
        "too few fields"
    );
}

#[test]
fn the_password_file_is_read_from_pgpassfile_or_home() {
    let dir = Scratch::new("passfile");
    let file = dir.file("pass", "h:5432:d:u:from-file\n", 0o600);
    let t = pg("postgres://u@h/d", &[("PGPASSFILE", &file)]).unwrap();
    assert_eq!(t.password.as_ref().map(Password::expose), Some("from-file"));
    // PGPASSWORD comes before the file.
    let t = pg(
        "postgres://u@h/d",
        &[("PGPASSFILE", &file), ("PGPASSWORD", "env")],
    )
    .unwrap();
    assert_eq!(t.password.as_ref().map(Password::expose), Some("env"));
    dir.file(".pgpass", "*:*:*:u:from-home\n", 0o600);
    let home = dir.0.display().to_string();
    let t = pg("postgres://u@h/d", &[("HOME", &home)]).unwrap();
    assert_eq!(t.password.as_ref().map(Password::expose), Some("from-home"));
    let t = pg("postgres://u@h/d", &[("HOME", "/nonexistent-home")]).unwrap();
    assert_eq!(t.password, None);
}

#[test]
fn a_password_file_others_can_read_is_ignored() {
    let dir = Scratch::new("perm");
    let file = dir.file("pass", "*:*:*:*:leaky\n", 0o644);
    let t = pg("postgres://u@h/d", &[("PGPASSFILE", &file)]).unwrap();
    assert_eq!(t.password, None);
    let file = dir.file("pass2", "*:*:*:*:group\n", 0o640);
    let t = pg("postgres://u@h/d", &[("PGPASSFILE", &file)]).unwrap();
    assert_eq!(t.password, None);
}

#[test]
fn redaction_hides_every_password_form() {
    assert_eq!(redact("postgres://a:b@h/d"), "postgres://a:***@h/d");
    assert_eq!(
        redact("postgres://a@h/d?x=1&password=b"),
        "postgres://a@h/d?x=1&password=***"
    );
    assert_eq!(redact("postgres://a@h/d"), "postgres://a@h/d");
}
