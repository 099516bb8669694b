//! Live progress of a run on the terminal (indicatif): stage, phase, time left and kW per rack.
//! Hidden when stderr is not a terminal or with `--json`, so logs and machine output stay clean.

use hallmark_coordinator::server::{RunProgress, RunStage};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A progress line fed from the coordinator's progress watch.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A spinner on stderr; `visible = false` draws nothing.
    pub fn new(visible: bool) -> Self {
        let bar = ProgressBar::new_spinner();
        if !visible {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    /// Shows `p`.
    pub fn show(&self, p: &RunProgress) {
        self.bar.set_message(describe(p));
    }

    /// Removes the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// One line: the stage and the live kW of each rack.
pub fn describe(p: &RunProgress) -> String {
    let stage = match &p.stage {
        RunStage::Waiting {
            registered,
            expected,
        } => format!("waiting for probes: {registered}/{expected} registered"),
        RunStage::Running {
            phase,
            phases,
            name,
            phase_left_s,
            total_left_s,
        } => format!(
            "phase {}/{phases} {name}: {phase_left_s:.0} s left (run {total_left_s:.0} s)",
            phase + 1
        ),
        RunStage::Finished { outcome, .. } => format!("finished: {outcome:?}"),
    };
    let racks: Vec<String> = p
        .rack_kw
        .iter()
        .map(|(rack, kw)| format!("{rack} {kw:.0}"))
        .collect();
    let lost = if p.lost.is_empty() {
        String::new()
    } else {
        format!(" | lost: {}", p.lost.join(", "))
    };
    format!("{stage} | kW: {}{lost}", racks.join("  "))
}
