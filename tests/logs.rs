//! The binary's logs as an operator keeps them: redirected to a file or a pipe they carry no ANSI
//! colour codes; on a terminal they are coloured unless `NO_COLOR` is set.

mod common;

use common::process::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A probe pointed at a closed port: it logs "connecting" at once, then retries until killed.
fn probe_args(dir: &std::path::Path) -> Vec<String> {
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    vec![
        "probe".into(),
        "--coordinator".into(),
        "127.0.0.1:1".into(),
        "--ca".into(),
        p("ca.pem"),
        "--cert".into(),
        p("nodes/n1.pem"),
        "--key".into(),
        p("nodes/n1-key.pem"),
        "--backend".into(),
        "sim".into(),
        "--node".into(),
        "n1".into(),
        "--rack".into(),
        "r1".into(),
    ]
}

/// Reads stderr lines until one contains `needle`, at most `common::WAIT`.
fn first_line_with(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    line_with(rx, needle, common::WAIT).unwrap_or_else(|seen| {
        panic!(
            "no log line with {needle:?} within {:?}: {seen:?}",
            common::WAIT
        )
    })
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempdir("logs-pipe");
    init_certs(&dir, &["n1"]);
    let mut child = hallmark()
        .args(probe_args(&dir))
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let _child = Killed(child);
    let line = first_line_with(&rx, "connecting");
    assert!(
        !line.contains('\u{1b}'),
        "escape code in a piped log: {line:?}"
    );
    assert!(line.contains("INFO"), "{line:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the probe under `script`, which gives it a terminal, for a moment; returns what it wrote.
fn on_a_terminal(dir: &std::path::Path, no_color: Option<&str>) -> String {
    let bin = env!("CARGO_BIN_EXE_hallmark");
    let args: Vec<String> = probe_args(dir)
        .into_iter()
        .map(|a| format!("'{a}'"))
        .collect();
    let inner = format!("timeout -s KILL 2 '{bin}' {}", args.join(" "));
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let started = Instant::now();
    let out = cmd.output().expect("`script` runs");
    assert!(started.elapsed() < Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("connecting"),
        "no log from the probe: {text:?}"
    );
    text
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    if !common::prereq::tool("script", "--version") {
        common::prereq::missing(
            "no `script` (util-linux; Debian package bsdutils) to give the probe a terminal",
        );
        return;
    }
    let dir = tempdir("logs-tty");
    init_certs(&dir, &["n1"]);
    let coloured = on_a_terminal(&dir, None);
    assert!(
        coloured.contains("\u{1b}["),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = on_a_terminal(&dir, Some("1"));
    assert!(!plain.contains('\u{1b}'), "NO_COLOR=1 ignored: {plain:?}");
    // An empty NO_COLOR does not count (no-color.org).
    let empty = on_a_terminal(&dir, Some(""));
    assert!(empty.contains("\u{1b}["), "{empty:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
