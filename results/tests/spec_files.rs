//! Spec files: the examples and the built-in demo spec parse, units convert to canonical values, and
//! every refusal names `file:line:column` and says what is allowed (units of the wrong dimension,
//! unknown kinds and keys, keys a kind does not take, missing keys, duplicate ids, warning thresholds
//! on the wrong side).

use hallmark_results::spec::{parse_spec, CriterionKind, TempLimit, ThrottleReason};
use hallmark_results::{demo_spec, Scope, DEMO_SPEC};

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The error for a spec of one criterion with `id = "c"` and the given lines (from line 4 on).
fn err(lines: &str) -> String {
    let text = format!("name = \"t\"\n[[criterion]]\nid = \"c\"\n{lines}\n");
    parse_spec(&text, "t.toml")
        .map(|s| panic!("spec should be refused: {s:?}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_demo_spec_equals_its_example_file_and_the_h200_example_parses() {
    assert_eq!(example("spec-demo-100kw.toml"), DEMO_SPEC);
    let demo = demo_spec();
    assert_eq!(demo.name, "demo-100kw");
    let ids: Vec<&str> = demo.criteria.iter().map(|c| c.id.as_str()).collect();
    assert!(
        ids.contains(&"gpu-temperature") && ids.contains(&"throttle-sw-thermal"),
        "{ids:?}"
    );
    let sustained = &demo.criteria[0];
    assert_eq!(sustained.scope, Scope::Rack);
    assert_eq!(sustained.phases, vec!["steady"]);
    assert_eq!(
        sustained.kind,
        CriterionKind::SustainedPower {
            min_kw: 95.0,
            window_s: 20.0,
            warn_min_kw: None
        }
    );

    let h200 = parse_spec(&example("spec-h200-100kw.toml"), "spec-h200-100kw.toml").unwrap();
    let kinds: Vec<&str> = h200.criteria.iter().map(|c| c.kind.name()).collect();
    for k in hallmark_results::spec::KINDS {
        assert!(kinds.contains(k), "the H200 example lacks {k}: {kinds:?}");
    }
    let lat = h200
        .criteria
        .iter()
        .find(|c| c.kind.name() == "latency_p99")
        .unwrap();
    assert!(
        matches!(lat.kind, CriterionKind::LatencyP99 { max_s, .. } if (max_s - 25e-6).abs() < 1e-18)
    );
    let bw = h200
        .criteria
        .iter()
        .find(|c| c.kind.name() == "collective_busbw")
        .unwrap();
    assert!(
        matches!(bw.kind, CriterionKind::CollectiveBusbw { min_gb_s, size_bytes, .. }
        if min_gb_s == 40.0 && size_bytes == 64 << 20)
    );
}

#[test]
fn quantities_convert_to_canonical_units() {
    let text = "name = \"t\"\n\
        [[criterion]]\nid = \"a\"\nkind = \"gpu_temperature\"\nmax = \"83 degC\"\nwarn_max = \"80 C\"\n\
        [[criterion]]\nid = \"b\"\nkind = \"throttle\"\nscope = \"rack\"\nreason = \"hw_power_brake\"\nmax = \"500 ms\"\n\
        [[criterion]]\nid = \"c\"\nkind = \"coverage\"\nscope = \"node\"\nmin = \"99.5 %\"\n\
        [[criterion]]\nid = \"d\"\nkind = \"peak_power\"\nscope = \"row\"\nmax = \"1.2 MW\"\n";
    let s = parse_spec(text, "t.toml").unwrap();
    assert_eq!(
        s.criteria[0].kind,
        CriterionKind::GpuTemperature {
            limit: TempLimit::Absolute { max_c: 83.0 },
            warn: Some(TempLimit::Absolute { max_c: 80.0 })
        }
    );
    assert_eq!(s.criteria[0].scope, Scope::Device);
    assert_eq!(
        s.criteria[1].kind,
        CriterionKind::Throttle {
            reason: ThrottleReason::HwPowerBrake,
            max_s: 0.5,
            warn_max_s: None
        }
    );
    assert!(
        matches!(s.criteria[2].kind, CriterionKind::Coverage { min_fraction, .. } if (min_fraction - 0.995).abs() < 1e-12)
    );
    assert!(
        matches!(s.criteria[3].kind, CriterionKind::PeakPower { max_kw, .. } if max_kw == 1200.0)
    );
    assert_eq!(s.criteria[3].title, "Peak row power", "a default title");
}

#[test]
fn a_unit_of_the_wrong_dimension_is_refused_clearly() {
    let e = err("kind = \"sustained_power\"\nmin = \"95 °C\"\nwindow = \"20 s\"");
    assert_eq!(
        e,
        "t.toml:5:7: `min` of criterion `c` is 95 °C, a temperature; this criterion needs a power such as \"95 kW\" (units: W, kW, MW)"
    );
    let e = err("kind = \"sustained_power\"\nmin = \"95 kW\"\nwindow = \"20 kW\"");
    assert!(e.starts_with("t.toml:6:10: `window` of criterion `c` is 20 kW, a power; this criterion needs a time such as \"20 s\""), "{e}");
    let e = err("kind = \"collective_busbw\"\nmin = \"40 GB\"\nsize = \"64 MiB\"");
    assert!(
        e.contains("is 40 GB, a size; this criterion needs a bandwidth such as \"40 GB/s\""),
        "{e}"
    );
    let e = err("kind = \"peak_power\"\nmax = 130");
    assert!(e.starts_with("t.toml:5:7: `max` of criterion `c` is 130 without a unit; this criterion needs a power such as \"130 kW\""), "{e}");
    let e = err("kind = \"peak_power\"\nmax = \"130 kw\"");
    assert!(e.contains("unknown unit `kw` (did you mean `kW`?)"), "{e}");
    let e = err("kind = \"gpu_temperature\"\nmax = \"358 K\"");
    assert!(e.contains("absolute temperature is written in °C"), "{e}");
    let e = err("kind = \"coverage\"\nmin = \"lots\"");
    assert!(e.contains("expected a number and a unit"), "{e}");
}

#[test]
fn unknown_kinds_and_keys_name_what_is_allowed() {
    let e = err("kind = \"sustained_powr\"");
    assert!(e.starts_with("t.toml:4:8: unknown criterion kind `sustained_powr` (criterion `c`); the kinds are sustained_power, peak_power,"), "{e}");
    let e = err("kind = \"peak_power\"\nmax = \"1 kW\"\nwindw = \"2 s\"");
    assert!(
        e.starts_with("t.toml:6:1: unknown key `windw`, allowed keys are `id`, `title`, `kind`"),
        "{e}"
    );
    let e = err("kind = \"peak_power\"\nmax = \"1 kW\"\nwindow = \"2 s\"");
    assert_eq!(
        e,
        "t.toml:6:1: criterion `c` of kind `peak_power` does not take `window`; it takes id, kind, title and max (required) and scope, phase, warn_max (optional)"
    );
    let e = err("kind = \"throttle\"\nmax = \"1 s\"");
    assert!(
        e.starts_with("t.toml:2:1: criterion `c` of kind `throttle` needs the key `reason`"),
        "{e}"
    );
    let e = err("kind = \"throttle\"\nreason = \"too_hot\"\nmax = \"1 s\"");
    assert!(
        e.contains(
            "the reasons are sw_power_cap, hw_slowdown, sw_thermal, hw_thermal, hw_power_brake"
        ),
        "{e}"
    );
    let e = err("kind = \"gpu_temperature\"\nmargin = \"1 °C\"\nscope = \"rack\"");
    assert!(e.starts_with("t.toml:6:9: scope `rack` is not allowed for criterion `c` of kind `gpu_temperature`; allowed: device"), "{e}");
    let e = parse_spec("name = \"t\"\ncriteria = 1\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.toml:2:1: unknown key `criteria`, allowed keys are `name`, `description`, `criterion`"), "{e}");
    let e = parse_spec("name = \"t\"\n[criterion]\nid = \"c\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("double brackets"), "{e}");
    let e = parse_spec("name = \"t\"\n[[criterion]]\nid = \"c\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing key `kind`") && e.contains("sustained_power"),
        "{e}"
    );
    let e = parse_spec("name = \"t\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("the spec has no criteria"), "{e}");
}

#[test]
fn values_and_ids_are_checked() {
    let e = parse_spec(
        "name = \"t\"\n[[criterion]]\nid = \"a\"\nkind = \"inventory\"\n[[criterion]]\nid = \"a\"\nkind = \"inventory\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "t.toml:6:6: criterion id `a` is already used by the criterion at line 3; ids must be unique within a spec");
    let e = err("kind = \"peak_power\"\nmax = \"130 kW\"\nwarn_max = \"140 kW\"");
    assert!(
        e.starts_with("t.toml:6:12: `warn_max` of criterion `c` (140 kW) is above `max` (130 kW)"),
        "{e}"
    );
    let e = err("kind = \"gpu_temperature\"\nmargin = \"3 °C\"\nwarn_margin = \"1 °C\"");
    assert!(
        e.contains("`warn_margin` of criterion `c` (1 °C) is below `margin` (3 °C)"),
        "{e}"
    );
    let e = err("kind = \"gpu_temperature\"\nmargin = \"3 °C\"\nmax = \"80 °C\"");
    assert!(e.contains("gives both `margin` and `max`"), "{e}");
    let e = err("kind = \"gpu_temperature\"");
    assert!(e.contains("needs `margin`"), "{e}");
    let e = err("kind = \"sustained_power\"\nmin = \"-5 kW\"\nwindow = \"20 s\"");
    assert!(e.contains("out of range"), "{e}");
    let e = err("kind = \"tflops\"\nmin_fraction_of_median = 1.5");
    assert!(e.contains("out of range"), "{e}");
    let e = err("kind = \"wrong_elements\"\nmax = \"0 elements\"");
    assert!(e.contains("give a whole number"), "{e}");
    let e = err("kind = \"coverage\"\nmin = \"99 %\"\nphase = []");
    assert!(e.contains("must name at least one phase"), "{e}");
    let e = parse_spec(
        "name = \"t\"\n[[criterion]]\nid = \"a b\"\nkind = \"inventory\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ids use letters, digits"), "{e}");
}
