//! A schema 4 store written by the release binary of hallmark before columnar telemetry
//! (`fixtures/v4-small-hall.sqlite.gz`: the plan of `fixtures/plan-small.toml` on the simulated
//! hall of `examples/hall-small.toml`) is upgraded in place to schema 5 when opened for writing, and
//! then reads exactly as it did: its run summary equals what `hallmark runs show latest --json`
//! printed before the upgrade (`fixtures/sm-summary-v4.json`), and its certification against
//! `examples/spec-demo-100kw.toml` equals what `hallmark certify latest --json` printed
//! (`fixtures/sm-cert-v4.json`), followed by the verdicts of the facility criteria the demo spec
//! gained since: INCOMPLETE for both racks, a run without facility readings.

#[path = "../../results/tests/spec_support/mod.rs"]
mod spec_support;

use hallmark_results::spec::{evaluate, parse_spec};
use hallmark_results::{overall, Store, StoreExt, DB_FILE, SCHEMA_VERSION};
use serde_json::{json, Value};
use spec_support::TempDir;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn recorded(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Unpacks the v4 store into a fresh directory.
fn unpack(dir: &TempDir) {
    std::fs::create_dir_all(dir.path()).unwrap();
    let gz = std::fs::File::open(fixture("v4-small-hall.sqlite.gz")).unwrap();
    let mut db = std::fs::File::create(dir.path().join(DB_FILE)).unwrap();
    std::io::copy(&mut flate2::read::GzDecoder::new(gz), &mut db).unwrap();
}

fn version(dir: &TempDir) -> i64 {
    rusqlite::Connection::open(dir.path().join(DB_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// Fields of the run summary added after version 4's fixture was recorded, with their JSON type.
const SUMMARY_ADDED_SINCE_V4: &[(&str, JsonType)] = &[("outliers", Value::is_array)];

/// A JSON type check (`Value::is_array`, …).
type JsonType = fn(&Value) -> bool;

/// Lists the paths where two JSON values differ (empty when equal).
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                differences(&format!("{path}.{k}"), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

fn assert_same(what: &str, now: &Value, then: &Value) {
    let mut diff = Vec::new();
    differences("", now, then, &mut diff);
    assert!(
        diff.is_empty(),
        "{what} differs after the upgrade:\n{}",
        diff.join("\n")
    );
}

#[test]
fn a_version_4_store_upgrades_to_columnar_telemetry_and_reads_the_same() {
    let dir = TempDir::new("v4-fixture");
    unpack(&dir);
    assert_eq!(version(&dir), 4);
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("open it once for writing"),
        "{err}"
    );

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(version(&dir), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 8);
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN \
             ('sample_rows', 'node_power_rows', 'samples', 'node_power', 'telemetry_batches_v5')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the row tables and their views are dropped");

    let run_id = store.resolve_run("latest").unwrap();
    let summary = store.run_summary(run_id.as_str()).unwrap();
    assert_eq!(summary.samples_stored, 2560);
    // Fields the summary gained after the fixture was recorded are not in it: checked to be
    // absent there and of their type here, then left out of the comparison.
    let then = recorded("sm-summary-v4.json");
    let mut now = serde_json::to_value(&summary).unwrap();
    for (field, is_type) in SUMMARY_ADDED_SINCE_V4 {
        assert!(then.get(field).is_none(), "{field} is in the v4 fixture");
        let added = now.as_object_mut().unwrap().remove(*field);
        assert!(added.as_ref().is_some_and(is_type), "{field}: {added:?}");
    }
    assert_same("the run summary", &now, &then);

    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/spec-demo-100kw.toml");
    let text = std::fs::read_to_string(&spec_path).unwrap();
    let spec = parse_spec(&text, "spec-demo-100kw.toml").unwrap();
    let verdicts = evaluate(&store, run_id.as_str(), &spec).unwrap();
    let simulation = store.simulation(run_id.as_str()).unwrap();
    // The fields of `hallmark certify --json` (src/cli/certify.rs, CertificationOutput).
    let cert = json!({
        "run_id": run_id.as_str(),
        "spec": spec.name,
        "overall": overall(&verdicts),
        "simulated": simulation.banner(),
        "simulation": simulation,
        "verdicts": verdicts,
    });
    assert_same("the certification", &cert, &recorded("sm-cert-v4.json"));
}

#[test]
fn a_gap_stored_before_schema_6_reads_back_with_its_instants_unknown() {
    let dir = TempDir::new("v4-gap");
    unpack(&dir);
    let run: String = {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        let (run, node): (String, String) = conn
            .query_row("SELECT run_id, node_id FROM probes LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        conn.execute(
            "INSERT INTO gaps (run_id, node_id, from_ns, to_ns, reason) VALUES (?1, ?2, 1, 2, 'old')",
            [&run, &node],
        )
        .unwrap();
        run
    };
    let store = Store::open(dir.path()).unwrap();
    let gaps = store.gaps(&run).unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].reason.as_str(), gaps[0].instants), ("old", None));
    let summary = serde_json::to_value(store.run_summary(&run).unwrap()).unwrap();
    assert_eq!(
        summary["gaps"][0]["instants"],
        Value::Null,
        "absent, never 0"
    );
}
