#![allow(dead_code)]

//! Missing test prerequisites (a tool, root, a kernel feature), in one place for every test crate
//! (`bundle/tests` includes this file too). Outside CI a test without its prerequisite says
//! `skipped: WHY` on stderr and returns; in CI (`CI` set to anything but empty, `0` or `false`) it
//! fails instead, so a test that never ran cannot pass as green. `.ci/run` installs what the tests
//! need.

/// Whether the tests run in CI.
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var("CI").ok().as_deref())
}

/// `CI=true`, `CI=1`, `CI=yes`…: CI. Unset, empty, `0`, `false`: not.
pub fn ci_value_means_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// What to do about a missing prerequisite: `Err` (fail, with the message) in CI, `Ok` (skip) outside.
pub fn verdict(ci: bool, why: &str) -> Result<(), String> {
    if ci {
        Err(format!(
            "a test prerequisite is missing in CI: {why}. CI must run every test: install it (.ci/run \
             installs the tests' tools) rather than skip"
        ))
    } else {
        Ok(())
    }
}

/// The prerequisite `why` is missing: panics in CI, otherwise prints `skipped: WHY` so the caller
/// can return.
pub fn missing(why: &str) {
    match verdict(in_ci(), why) {
        Ok(()) => eprintln!("skipped: {why}"),
        Err(msg) => panic!("{msg}"),
    }
}

/// Whether `name ARG` runs and succeeds (a tool is installed).
pub fn tool(name: &str, version_arg: &str) -> bool {
    std::process::Command::new(name)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success())
}
