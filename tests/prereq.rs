//! The missing-prerequisite rule of every test crate (`tests/common/prereq.rs`): skip with a reason
//! outside CI, fail in CI.

#[path = "common/prereq.rs"]
mod prereq;

use prereq::{ci_value_means_ci, verdict};

#[test]
fn in_ci_a_missing_prerequisite_fails_and_outside_it_skips() {
    for v in ["true", "1", "yes", "TRUE"] {
        assert!(ci_value_means_ci(Some(v)), "{v}");
    }
    for v in [None, Some(""), Some("0"), Some("false"), Some("False")] {
        assert!(!ci_value_means_ci(v), "{v:?}");
    }
    let err = verdict(true, "no openssl").unwrap_err();
    assert!(
        err.contains("no openssl") && err.contains(".ci/run"),
        "{err}"
    );
    assert_eq!(verdict(false, "no openssl"), Ok(()));
}

#[test]
fn missing_panics_in_ci() {
    // The helper itself, as the tests call it, with the environment this process has: in CI it
    // panics, outside it returns.
    let ci = prereq::in_ci();
    let r = std::panic::catch_unwind(|| prereq::missing("a prerequisite made up for this test"));
    assert_eq!(r.is_err(), ci);
}
