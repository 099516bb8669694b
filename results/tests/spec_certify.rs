//! Certifications: `overall` of a mixed spec, the terminal rendering, storing, replacing and reading
//! certifications back (also read-only); the schema migration from version 1 to the current one is
//! in `store/tests/migrations.rs`. The demo spec on a real demo run is checked end to end by the root package's
//! `tests/demo.rs`.

mod spec_support;

use hallmark_results::spec::{evaluate, parse_spec, render_verdicts};
use hallmark_results::{overall, throttle, Status, Store, StoreExt};
use spec_support::*;

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
