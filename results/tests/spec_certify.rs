//! Certifications: `overall` of a mixed spec, the terminal rendering, storing, replacing and reading
//! certifications back (also read-only), and the schema migration from version 1 to the current
//! one. The demo spec on a real demo run is checked end to end by the root package's
//! `tests/demo.rs`.

mod spec_support;

use hallmark_results::spec::{evaluate, parse_spec, render_verdicts, Spec};
use hallmark_results::{overall, throttle, Status, Store, StoreExt};
use spec_support::*;

fn one(lines: &str) -> Spec {
    let text = format!("name = \"t\"\n[[criterion]]\nid = \"c\"\n{lines}\n");
    parse_spec(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// r2n1/1 is throttled by sw_thermal for 15 samples (1.5 s).
fn throttled() -> Run {
    Run {
        reasons: Box::new(|n, d, k| {
            if (n, d) == (2, 1) && (70..85).contains(&k) {
                throttle::SW_THERMAL
            } else {
                0
            }
        }),
        ..Run::default()
    }
}

#[test]
fn a_mixed_spec_gives_the_worst_overall_and_renders_compactly() {
    let text = "name = \"mixed\"\n\
         [[criterion]]\nid = \"peak\"\nkind = \"peak_power\"\nmax = \"11 kW\"\n\
         [[criterion]]\nid = \"sw\"\nkind = \"throttle\"\nreason = \"sw_thermal\"\nmax = \"1 s\"\n\
         [[criterion]]\nid = \"lat\"\nkind = \"latency_p99\"\nmax = \"25 us\"\n\
         [[criterion]]\nid = \"temp\"\nkind = \"gpu_temperature\"\nmargin = \"0 °C\"\nwarn_margin = \"30 °C\"\n";
    let spec = parse_spec(text, "mixed.toml").unwrap();
    let dir = TempDir::new("mixed");
    let (mut store, id) = stored(&dir, &throttled());
    let v = evaluate(&store, id.as_str(), &spec).unwrap();
    assert_eq!(v.len(), 2 + 8 + 1 + 8);
    assert_eq!(overall(&v), Status::Fail);
    assert_eq!(overall(&v[..2]), Status::Pass);
    assert_eq!(overall(&v[10..]), Status::Incomplete);
    assert_eq!(overall(&v[11..]), Status::Warn);

    let text_out = render_verdicts(&v);
    println!("{text_out}");
    let first = text_out.lines().next().unwrap();
    assert!(first.starts_with("Certification: FAIL"), "{first}");
    assert!(
        text_out.contains("FAIL  r2n1/1: 1.5 s (limit <= 1.0 s)"),
        "{text_out}"
    );
    assert!(
        !text_out.contains("PASS  r1n1"),
        "PASS subjects are counted, not listed"
    );
    assert_eq!(text_out.matches("WARN  r").count(), 8);
    assert!(
        text_out.contains("WARN  r1n1/0: 60.0 °C (limit <= 85.0 °C); warning threshold 55.0 °C"),
        "{text_out}"
    );

    // Stored, replaced, read back.
    store
        .store_certification(id.as_str(), &spec.name, text, &v)
        .unwrap();
    store
        .store_certification(id.as_str(), &spec.name, text, &v[..2])
        .unwrap();
    store
        .store_certification(id.as_str(), "other", "x", &[])
        .unwrap();
    let certs = store.certifications(id.as_str()).unwrap();
    assert_eq!(certs.len(), 2);
    let c = certs.iter().find(|c| c.spec_name == "mixed").unwrap();
    assert_eq!((c.status, c.verdicts.len()), (Status::Pass, 2));
    assert_eq!(c.verdicts, v[..2].to_vec());
    assert_eq!(c.spec_sha256.len(), 64);
    assert_eq!(
        certs
            .iter()
            .find(|c| c.spec_name == "other")
            .unwrap()
            .status,
        Status::Incomplete
    );
    store
        .store_certification(id.as_str(), &spec.name, text, &v)
        .unwrap();
    drop(store);
    let ro = Store::open_read_only(dir.path()).unwrap();
    let c = ro.certifications(id.as_str()).unwrap();
    assert_eq!(
        c.iter().find(|c| c.spec_name == "mixed").unwrap().verdicts,
        v
    );
    assert!(ro.certifications("nope").is_err());
    assert!(evaluate(&ro, "nope", &spec).is_err());
}

#[test]
fn a_version_1_database_migrates_to_the_current_version_keeping_its_runs() {
    let dir = TempDir::new("migrate");
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join(hallmark_results::DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(hallmark_results::MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = 1;",
            hallmark_results::APPLICATION_ID
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO runs (run_id, name, plan_name, plan_toml, plan_sha256, started_at_ns, status, \
             hallmark_version, sample_hz) VALUES ('20261129T021500Z-aaaaaa', 'old', 'p', '', '', 1, \
             'complete', '0.1.0', 10.0)",
            [],
        )
        .unwrap();
    }
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("open it once for writing"),
        "{err}"
    );
    let mut store = Store::open(dir.path()).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    assert_eq!(hallmark_results::SCHEMA_VERSION, 4);
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1);
    let id = runs[0].run_id.as_str().to_string();
    assert!(store.certifications(&id).unwrap().is_empty());
    let spec = one("kind = \"inventory\"\nnodes = 1");
    let v = evaluate(&store, &id, &spec).unwrap();
    assert_eq!(
        v[0].status,
        Status::Fail,
        "a run without probes lacks its node"
    );
    store.store_certification(&id, "t", "", &v).unwrap();
    assert_eq!(store.certifications(&id).unwrap()[0].verdicts, v);
    // The new run of a migrated store is evaluated like any other.
    let new = Run::default().store(&mut store);
    assert_eq!(
        evaluate(&store, new.as_str(), &spec).unwrap()[0].status,
        Status::Pass
    );
}
