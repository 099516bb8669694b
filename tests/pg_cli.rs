//! `--results postgres://…` end to end: the quick demo stored in PostgreSQL reads back through
//! `runs`, `certify`, `report` and `bundle` as consistently as one stored in a SQLite directory;
//! the same run read through both backends (the SQLite store copied into PostgreSQL) gives the
//! same bytes; the password (PGPASSWORD) shows in none of the binary's output; and every bad
//! store — a password in the URL, an unreachable server, a wrong password, another application's
//! database, a newer schema, an empty database — is a clear error naming the store (its URL
//! without password) and the fix, with a non-zero exit and no panic.
//!
//! Two runs of the demo differ in what timing decides (temperatures, energy, skew), so the runs
//! into each backend are compared by shape (every number, id and digit normalised, statuses and
//! names kept); byte-for-byte equality is checked on one run read through both backends.
//!
//! The server is `hallmark_store::testing::pg`'s (`HALLMARK_TEST_PG`, else one of this process's
//! own) with a fresh database per test; the tests of passwords start a password-protected server of
//! their own. Without PostgreSQL they skip outside CI and fail in CI.

mod common;

use common::prereq;
use common::process::{hallmark, tempdir};
use hallmark_store::db::pg::Timeouts;
use hallmark_store::db::Db;
use hallmark_store::location::PgTarget;
use hallmark_store::testing::copy::sqlite_to_postgres;
use hallmark_store::testing::pg::{self as testpg, ClusterOptions, PgServer, TestDb, Unavailable};
use hallmark_store::Store;
use serde_json::Value as Json;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The password of the password-protected server: it must show in no output.
const MARKER: &str = "hm-secret-7f3c1e";
/// A wrong password, never shown either.
const WRONG: &str = "hm-wrong-52ab90";
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/spec-demo-100kw.toml");
const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plan-demo-quick.toml");
const HALL_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-demo.toml");

/// One simulated hall at a time: the demo's timing depends on the machine's cores.
static HALL: Mutex<()> = Mutex::new(());

/// A fresh database on the tests' shared server; `None` (after saying why) when skipping.
fn shared_db() -> Option<TestDb> {
    let server = match testpg::shared() {
        Ok(s) => s,
        Err(Unavailable::Missing(why)) => {
            prereq::missing(&why);
            return None;
        }
        Err(Unavailable::Broken(why)) => panic!("the test PostgreSQL server: {why}"),
    };
    Some(
        server
            .database()
            .unwrap_or_else(|e| panic!("creating a test database: {e:?}")),
    )
}

/// A server of this test's own whose superuser needs the password [`MARKER`].
fn password_server() -> Option<PgServer> {
    let options = ClusterOptions {
        superuser_password: Some(MARKER.into()),
        ..ClusterOptions::default()
    };
    match PgServer::start(&options) {
        Ok(s) => Some(s),
        Err(Unavailable::Missing(why)) => {
            prereq::missing(&why);
            None
        }
        Err(Unavailable::Broken(why)) => panic!("a password-protected test server: {why}"),
    }
}

/// `hallmark ARGS` with no PostgreSQL setting of the test's environment: `password`, if any, in
/// PGPASSWORD, and no password file.
fn hm(password: Option<&str>, args: &[&str]) -> Output {
    let mut c = hallmark();
    for var in [
        "PGPASSWORD",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGSSLMODE",
        "PGCONNECT_TIMEOUT",
        "PGAPPNAME",
    ] {
        c.env_remove(var);
    }
    c.env(
        "PGPASSFILE",
        std::env::temp_dir().join("hallmark-pg-cli-no-password-file"),
    );
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    c.args(args).output().expect("hallmark runs")
}

/// The password the binary needs for `target` (the test server's, if it has one).
fn password_of(target: &PgTarget) -> Option<&str> {
    target.password.as_ref().map(|p| p.expose())
}

/// Neither stdout nor stderr shows a password.
fn no_password(out: &Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for secret in [MARKER, WRONG] {
            assert!(!text.contains(secret), "{name} shows a password: {text}");
        }
    }
}

/// A refusal: exit `code`, no panic, no password, stderr naming each of `wants`.
fn refused(out: &Output, code: i32, wants: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    no_password(out);
    for want in wants {
        assert!(err.contains(want), "{want:?} is not in: {err}");
    }
    err
}

/// A success with no password shown; its stdout as one JSON value.
fn json(out: &Output) -> Json {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_password(out);
    serde_json::from_slice(&out.stdout).expect("one JSON value on stdout")
}

/// The tables of the database `db` is connected to.
fn tables(db: &Db) -> Vec<String> {
    db.query_map(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() \
         ORDER BY table_name",
        &[],
        |r| r.text(0),
    )
    .unwrap()
}

#[test]
fn a_password_in_the_url_is_refused_before_anything_runs() {
    let dir = tempdir("pg-url");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let in_user = format!("postgres://hm:{MARKER}@127.0.0.1:1/hm");
    let in_query = format!("postgres://hm@127.0.0.1:1/hm?password={MARKER}");
    for url in [&in_user, &in_query] {
        let commands: [&[&str]; 9] = [
            &["runs", "list"],
            &["runs", "show", "latest"],
            &["demo", "--quick"],
            &["run", PLAN, "--simulate", HALL_FILE],
            &["certify", "latest", "--spec", SPEC],
            &["report", "latest", "--out", out],
            &["bundle", "latest", "--key", out, "--out", out],
            &["bench", "latency"],
            &["bench", "collective"],
        ];
        for args in commands {
            let args = [args, &["--results", url.as_str()][..]].concat();
            refused(&hm(None, &args), 2, &["--results", "PGPASSWORD", "***"]);
        }
    }
    let bad = [
        ("postgres://hm@127.0.0.1:70000/hm", "port 70000"),
        (
            "postgres://hm@127.0.0.1/hm?sslmode=verify-full",
            "SSH tunnel",
        ),
        ("mysql://hm@127.0.0.1/hm", "unsupported scheme mysql"),
    ];
    for (url, why) in bad {
        refused(&hm(None, &["runs", "list", "--results", url]), 2, &[why]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_server_is_named_with_the_fix_before_any_probe_starts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir("pg-unreachable");
    let url = format!("postgres://hm@127.0.0.1:{port}/hm");
    let named = format!("{url}: cannot reach the PostgreSQL server");
    let fix = "PGHOST and PGPORT";
    let out = dir.join("report");
    let pw = Some(MARKER);
    refused(
        &hm(pw, &["runs", "list", "--results", &url]),
        1,
        &[&named, fix],
    );
    let certify = ["certify", "latest", "--spec", SPEC, "--results", &url];
    refused(&hm(pw, &certify), 3, &[&named, fix]);
    let report = [
        "report",
        "latest",
        "--out",
        out.to_str().unwrap(),
        "--results",
        &url,
    ];
    refused(&hm(pw, &report), 1, &[&named, fix]);
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let demo = hm(pw, &["-v", "demo", "--quick", "--results", &url]);
    let err = refused(&demo, 1, &[&named, fix]);
    // Refused before the simulated hall started (which logs its coordinator's address).
    assert!(!err.contains("coordinator on"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_or_missing_password_is_refused_saying_where_it_comes_from() {
    let Some(server) = password_server() else {
        return;
    };
    let db = server
        .database()
        .expect("a database on the password server");
    let url = db.target.to_string();
    let list = ["runs", "list", "--results", &url];
    let wrong = format!("{url}: the server refused user postgres's credentials");
    refused(
        &hm(Some(WRONG), &list),
        1,
        &[&wrong, "PGPASSWORD", ".pgpass"],
    );
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
    let demo = hm(Some(WRONG), &["demo", "--quick", "--results", &url]);
    refused(&demo, 1, &[&wrong]);
    let none = format!("{url}: the server asks for a password and none was found");
    refused(&hm(None, &list), 1, &[&none, "PGPASSWORD"]);
    // The right password gets in (and finds no store in the new database).
    refused(
        &hm(Some(MARKER), &list),
        1,
        &["holds no hallmark store yet"],
    );
}

#[test]
fn another_applications_database_is_refused_and_left_untouched() {
    let Some(db) = shared_db() else {
        return;
    };
    let mut admin = db.connect();
    admin
        .execute_batch(
            "CREATE TABLE invoices (id BIGINT PRIMARY KEY, amount DOUBLE PRECISION); \
             INSERT INTO invoices VALUES (1, 9.5)",
        )
        .unwrap();
    let url = db.target.to_string();
    let pw = password_of(&db.target);
    let named = format!("{url}: this database holds tables of another application (invoices)");
    let fix = "name a new, empty database";
    refused(
        &hm(pw, &["runs", "list", "--results", &url]),
        1,
        &[&named, fix],
    );
    let certify = ["certify", "latest", "--spec", SPEC, "--results", &url];
    refused(&hm(pw, &certify), 3, &[&named, fix]);
    {
        let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
        let demo = hm(pw, &["demo", "--quick", "--results", &url]);
        refused(&demo, 1, &[&named, fix]);
    }
    assert_eq!(tables(&admin), ["invoices"]);
    let rows = admin
        .query_map("SELECT id, amount FROM invoices", &[], |r| {
            Ok((r.i64(0)?, r.f64(1)?))
        })
        .unwrap();
    assert_eq!(rows, [(1, 9.5)]);
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_for_reading_and_writing() {
    let Some(db) = shared_db() else {
        return;
    };
    drop(Store::open_postgres(&db.target, &Timeouts::default()).expect("a hallmark store"));
    let url = db.target.to_string();
    let pw = password_of(&db.target);
    // A store without runs says where it looked.
    let listed = hm(pw, &["runs", "list", "--results", &url]);
    assert!(listed.status.success(), "{listed:?}");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        format!("no runs in PostgreSQL database {url}\n")
    );
    let admin = db.connect();
    let bump = "UPDATE hallmark_meta SET value = '999' WHERE key = 'schema_version'";
    assert_eq!(admin.execute(bump, &[]).unwrap(), 1);
    let named = format!("{url}: the schema is at version 999, newer than this hallmark supports");
    let fix = "use the hallmark that wrote it, or a newer one";
    refused(
        &hm(pw, &["runs", "list", "--results", &url]),
        1,
        &[&named, fix],
    );
    let certify = ["certify", "latest", "--spec", SPEC, "--results", &url];
    refused(&hm(pw, &certify), 3, &[&named, fix]);
    {
        let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
        let demo = hm(pw, &["demo", "--quick", "--results", &url]);
        refused(&demo, 1, &[&named, fix]);
    }
    let version = admin
        .query_opt(
            "SELECT value FROM hallmark_meta WHERE key = 'schema_version'",
            &[],
            |r| r.text(0),
        )
        .unwrap();
    assert_eq!(version.as_deref(), Some("999"));
}

#[test]
fn reading_or_certifying_an_empty_database_finds_no_store_and_creates_none() {
    let Some(db) = shared_db() else {
        return;
    };
    let dir = tempdir("pg-empty");
    let url = db.target.to_string();
    let pw = password_of(&db.target);
    let named = format!("{url}: the database holds no hallmark store yet");
    let fix = "run a plan or `hallmark demo` with --results naming it first";
    let out = dir.join("report");
    let reads: [&[&str]; 3] = [
        &["runs", "list"],
        &["runs", "show", "latest"],
        &["report", "latest", "--out", out.to_str().unwrap()],
    ];
    for args in reads {
        let args = [args, &["--results", url.as_str()][..]].concat();
        refused(&hm(pw, &args), 1, &[&named, fix]);
    }
    // Certifying writes verdicts, yet a database without a store is refused, not given one.
    let certify = [
        "certify",
        "latest",
        "--spec",
        SPEC,
        "--results",
        url.as_str(),
    ];
    refused(&hm(pw, &certify), 3, &[&named, fix]);
    assert!(tables(&db.connect()).is_empty());
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_on_postgres_reads_back_as_on_sqlite_and_never_shows_the_password() {
    let Some(server) = password_server() else {
        return;
    };
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir("pg-demo");
    let sqlite = dir.join("results");
    let s = sqlite.to_str().unwrap();
    let pg_db = server.database().expect("a database for the demo");
    let pg = pg_db.target.to_string();
    let on_sqlite = json(&hm(None, &["demo", "--quick", "--json", "--results", s]));
    // Debug logs too: the password is in none of them.
    let on_pg = json(&hm(
        Some(MARKER),
        &["-v", "demo", "--quick", "--json", "--results", &pg],
    ));
    // One run read through both backends: the SQLite store copied into a PostgreSQL database.
    let copy_db = server.database().expect("a database for the copy");
    let copied = sqlite_to_postgres(&sqlite, &copy_db.target).expect("copying the store");
    assert!(copied > 0);
    let run = on_sqlite["run_id"].as_str().unwrap();
    same_reads(&dir, run, s, &copy_db.target.to_string());

    // Each backend's own demo run reads back as the demo printed it.
    reads_back(&dir.join("pg"), &on_pg, &pg);
    reads_back(&dir.join("sqlite"), &on_sqlite, s);

    // The two runs agree in everything their timing does not decide.
    let (a, b) = (
        shape(&timing_masked(&on_sqlite)),
        shape(&timing_masked(&on_pg)),
    );
    if on_sqlite["gaps"] == Json::Array(vec![]) && on_pg["gaps"] == Json::Array(vec![]) {
        let diff = difference(&a, &b, "");
        assert!(
            diff.is_none(),
            "SQLite and PostgreSQL runs differ in shape at {diff:?}"
        );
    } else {
        // A loaded machine sampled late (recorded gaps): coverage and status may differ.
        eprintln!("note: a run recorded gaps; comparing what gaps cannot change");
        for key in [
            "racks",
            "phases",
            "spec",
            "simulation",
            "samples_expected",
            "probes",
        ] {
            assert_eq!(a[key], b[key], "{key}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `runs list`, `runs show`, `runs starts`, `report` and `certify` of run `run` give the same bytes from the
/// stores `a` and `b`, which hold the same data.
fn same_reads(dir: &Path, run: &str, a: &str, b: &str) {
    let pw = Some(MARKER);
    let both = |args: &[&str]| -> [Output; 2] {
        [a, b].map(|store| hm(pw, &[args, &["--results", store][..]].concat()))
    };
    for args in [
        &["runs", "list", "--json"][..],
        &["runs", "show", run, "--json"][..],
        &["runs", "starts", run, "--json"][..],
    ] {
        let [x, y] = both(args);
        assert!(
            x.status.success() && y.status.success(),
            "{args:?}: {x:?} {y:?}"
        );
        let diff = difference(&json(&x), &json(&y), "");
        assert!(diff.is_none(), "{args:?} differs at {diff:?}");
    }
    // The report before certifying: its verdicts are the demo's certification, copied too.
    let reports = [dir.join("report-a"), dir.join("report-b")];
    for (store, out) in [a, b].iter().zip(&reports) {
        let args = [
            "report",
            run,
            "--out",
            out.to_str().unwrap(),
            "--results",
            store,
        ];
        let written = hm(pw, &args);
        assert!(written.status.success(), "{written:?}");
        no_password(&written);
    }
    let files = |d: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let names = files(&reports[0]);
    assert_eq!(names, files(&reports[1]));
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        let read = |d: &Path| std::fs::read(d.join(&name)).unwrap();
        assert!(read(&reports[0]) == read(&reports[1]), "{name:?} differs");
    }
    let [x, y] = both(&["certify", run, "--spec", SPEC, "--json"]);
    assert_eq!(x.status.code(), y.status.code());
    assert!(x.status.code().is_some_and(|c| c < 3), "{x:?}");
    assert_eq!(x.stdout, y.stdout, "certify's verdicts differ");
    no_password(&y);
}

/// `runs list`, `runs show`, `certify`, `report` and `bundle` on the store `store` give back what
/// the demo printed (`demo`, its `--json` output), exactly.
fn reads_back(dir: &Path, demo: &Json, store: &str) {
    let pw = Some(MARKER);
    let run = demo["run_id"].as_str().unwrap();
    let with = |args: &[&str]| hm(pw, &[args, &["--results", store][..]].concat());
    let mut summary = demo.clone();
    for key in ["spec", "verdict", "verdicts", "simulated"] {
        summary.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(json(&with(&["runs", "show", run, "--json"])), summary);
    let listed = json(&with(&["runs", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["run_id"], run);
    assert_eq!(listed[0]["samples"], demo["samples_stored"]);
    assert_eq!(listed[0]["status"], demo["status"]);

    let report = dir.join("report");
    let out = with(&["report", run, "--out", report.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    no_password(&out);
    let doc: Json =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    assert_eq!(doc["summary"], summary);
    assert_eq!(doc["verdicts"], demo["verdicts"]);
    assert_eq!(doc["overall"], demo["verdict"]);
    let samples = std::fs::read_to_string(report.join("samples.csv")).unwrap();
    assert_eq!(
        samples.lines().count() as u64,
        demo["samples_stored"].as_u64().unwrap() + 1,
        "one row per stored sample and a header"
    );

    // The same spec as the demo's built-in one: the same verdicts, and its exit code.
    let certified = with(&["certify", run, "--spec", SPEC, "--json"]);
    let code = certified.status.code();
    let c: Json = serde_json::from_slice(&certified.stdout).expect("certify --json");
    no_password(&certified);
    assert_eq!(c["verdicts"], demo["verdicts"]);
    assert_eq!(c["overall"], demo["verdict"]);
    let expected_code = match demo["verdict"].as_str().unwrap() {
        "PASS" | "WARN" => 0,
        "FAIL" => 1,
        _ => 2,
    };
    assert_eq!(code, Some(expected_code));

    let keys = dir.join("keys");
    assert!(hm(None, &["keygen", "--out", keys.to_str().unwrap()])
        .status
        .success());
    let bundle = dir.join("run.bundle");
    let key = keys.join("signing.key");
    let out = with(&[
        "bundle",
        run,
        "--key",
        key.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    no_password(&out);
    let public = keys.join("signing.pub");
    let verified = hm(
        None,
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--pubkey",
            public.to_str().unwrap(),
        ],
    );
    assert!(verified.status.success(), "{verified:?}");
}

/// What two runs of the same demo share whatever their timing: the run id gone, every number
/// `"#"` (a `null` stays `null`: absent is not measured), every run of digits in a string `#`, and
/// a verdict's evidence `detail` (prose about what was measured: which phase was the lowest, the
/// sign of a deviation) only there.
fn shape(v: &Json) -> Json {
    match v {
        Json::Number(_) => Json::String("#".into()),
        Json::String(s) => {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                let digit = c.is_ascii_digit();
                if !(digit && out.ends_with('#')) {
                    out.push(if digit { '#' } else { c });
                }
            }
            Json::String(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(shape).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "run_id")
                .map(|(k, v)| match k.as_str() {
                    "detail" if v.is_string() => (k.clone(), Json::String("…".into())),
                    _ => (k.clone(), shape(v)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The verdicts whose status the run's timing decides — how closely the probes started a phase
/// (`start-skew`), how many samples arrived (`coverage`) — with that status replaced by `timing`:
/// a loaded machine moves them between two runs of the same hall on either backend.
fn timing_masked(v: &Json) -> Json {
    let mut v = v.clone();
    if let Some(verdicts) = v.get_mut("verdicts").and_then(Json::as_array_mut) {
        for x in verdicts {
            let timing = matches!(
                x.get("criterion").and_then(Json::as_str),
                Some("start-skew" | "coverage")
            );
            if timing {
                x["status"] = Json::String("timing".into());
            }
        }
    }
    v
}

/// Where `a` and `b` first differ: a path and both values there.
fn difference(a: &Json, b: &Json, at: &str) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => difference(u, v, &format!("{at}/{k}")),
                (u, v) => Some(format!("{at}/{k}: {u:?} / {v:?}")),
            })
        }
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| difference(u, v, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| format!("{at}: {a} / {b}")),
    }
}
