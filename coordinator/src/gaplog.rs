//! Telemetry gaps in the coordinator's log, bounded. Every gap is stored with the run; the log is
//! for the operator watching it. A healthy probe declares none, but an overloaded hall can declare
//! thousands a second (10 000 probes whose samplers run late), and a warning line for each costs
//! the core task its time and floods the terminal that should show what matters. So each window
//! shows its first [`GAP_LINES`] gaps in full, then counts the rest and sums them up in one line
//! when the window closes: how many, from how many nodes, and the first reason seen. Sans-IO: the
//! caller passes the instants and logs the lines returned.

use hallmark_protocol::NodeId;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Gap lines shown in full per window.
const GAP_LINES: u32 = 20;
/// The window over which the lines are counted.
const GAP_WINDOW: Duration = Duration::from_secs(10);
/// Distinct nodes a window's summary counts at most (the memory it holds).
const MAX_NODES_COUNTED: usize = 1_000_000;

/// The current window's count.
#[derive(Debug, Default)]
pub(crate) struct GapLog {
    opened: Option<Instant>,
    shown: u32,
    more: u64,
    more_nodes: HashSet<NodeId>,
    more_reason: Option<String>,
}

impl GapLog {
    /// A gap of `node` for `reason` at `now`: the line to log, or `None` when it is counted for
    /// the window's summary.
    pub(crate) fn gap(&mut self, node: &NodeId, reason: &str, now: Instant) -> Option<String> {
        let opened = *self.opened.get_or_insert(now);
        // A window with nothing held back closes quietly here; one with a count is closed by
        // `flush`, which the caller runs often.
        if self.more == 0 && now.saturating_duration_since(opened) >= GAP_WINDOW {
            self.opened = Some(now);
            self.shown = 0;
        }
        if self.shown < GAP_LINES {
            self.shown += 1;
            return Some(format!("node {node}: gap in telemetry: {reason}"));
        }
        self.more += 1;
        if self.more_nodes.len() < MAX_NODES_COUNTED {
            self.more_nodes.insert(node.clone());
        }
        self.more_reason.get_or_insert_with(|| reason.to_string());
        None
    }

    /// At `now`: the summary of the window, once it has closed and held gaps back (a new window
    /// opens), else `None`. `force` closes it now (the run ended).
    pub(crate) fn flush(&mut self, now: Instant, force: bool) -> Option<String> {
        let opened = self.opened?;
        let elapsed = now.saturating_duration_since(opened);
        if !(force || elapsed >= GAP_WINDOW) {
            return None;
        }
        let line = (self.more > 0).then(|| {
            format!(
                "{} more telemetry gaps from {} nodes in the last {:.0} s, not logged one by one \
                 (each is stored with the run); the first: {}",
                self.more,
                self.more_nodes.len(),
                elapsed.as_secs_f64().max(1.0),
                self.more_reason.as_deref().unwrap_or("-")
            )
        });
        *self = GapLog::default();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u32) -> NodeId {
        NodeId::new(format!("n{i}")).unwrap()
    }

    #[test]
    fn a_flood_shows_its_first_lines_and_one_summary_per_window() {
        let t0 = Instant::now();
        let mut log = GapLog::default();
        let mut shown = 0;
        for i in 0..5_000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            shown += usize::from(log.gap(&node(i % 700), "sampler late", at).is_some());
            assert_eq!(log.flush(at, false), None, "no summary inside the window");
        }
        assert_eq!(shown, GAP_LINES as usize);
        let line = log
            .flush(t0 + GAP_WINDOW, false)
            .expect("the window closed");
        assert!(
            line.starts_with("4980 more telemetry gaps from 700 nodes"),
            "{line}"
        );
        assert!(line.ends_with("the first: sampler late"), "{line}");
        // A new window shows lines again.
        let later = t0 + GAP_WINDOW + Duration::from_secs(1);
        assert!(log.gap(&node(1), "x", later).is_some());
        assert_eq!(
            log.flush(later + GAP_WINDOW, false),
            None,
            "nothing held back"
        );
    }

    #[test]
    fn a_few_gaps_are_all_logged_and_the_end_of_a_run_flushes_the_count() {
        let t0 = Instant::now();
        let mut log = GapLog::default();
        for w in 0..3u64 {
            let at = t0 + GAP_WINDOW * (w as u32) + Duration::from_secs(w);
            assert!(log.gap(&node(1), "late", at).is_some(), "window {w}");
            assert_eq!(log.flush(at, false), None);
        }
        for i in 0..(GAP_LINES + 3) {
            log.gap(&node(i), "late", t0 + GAP_WINDOW * 5);
        }
        let line = log.flush(t0 + GAP_WINDOW * 5, true).expect("forced");
        assert!(
            line.starts_with("3 more telemetry gaps from 3 nodes"),
            "{line}"
        );
        assert_eq!(log.flush(t0 + GAP_WINDOW * 9, true), None);
    }
}
