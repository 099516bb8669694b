//! What a probe re-sends after a reconnect: its latest phase reports (it cannot know which
//! arrived), within a run; and none of the last run's once a new run has started. The test is the
//! shell: a simulated clock fed to the session machine, one simulated GPU.

mod common;

use common::{node, MS};
use hallmark_probe::ProbeSession;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{CoordinatorMessage, ProbeMessage};
use hallmark_workloads::sim::SimBackend;

fn session() -> ProbeSession {
    let backend = SimBackend::standalone(node("n1"), 1).unwrap();
    let hello = common::hello("n1", &backend);
    ProbeSession::new(hello, Box::new(backend))
}

fn welcome(session_id: u64) -> CoordinatorMessage {
    common::welcome(session_id, 60_000)
}

fn phase(phase_id: u32, start_at_ns: i64) -> CoordinatorMessage {
    CoordinatorMessage::PhaseStart(common::burn(
        phase_id,
        start_at_ns,
        200,
        Pattern::Steady { level: 0.5 },
    ))
}

/// Phase ids of the reports in `out`.
fn reports(out: &[ProbeMessage]) -> Vec<u32> {
    out.iter()
        .filter_map(|m| match m {
            ProbeMessage::PhaseReport(r) => Some(r.phase_id),
            _ => None,
        })
        .collect()
}

/// Runs the session's timers up to `until`, heartbeats keeping its dead-man quiet; returns what
/// it sent.
fn run_until(s: &mut ProbeSession, now: &mut i64, until: i64) -> Vec<ProbeMessage> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let next = s.poll_timeout().unwrap_or(until).clamp(*now, until);
        *now = next;
        s.handle(CoordinatorMessage::Heartbeat { now_ns: next }, next);
        out.extend(s.handle_timeout(next));
        if *now >= until {
            return out;
        }
    }
    panic!("timers never reached {until}");
}

/// Drops the connection and registers again; returns what the probe sends after the Welcome.
fn reconnect(s: &mut ProbeSession, now: i64, session_id: u64) -> Vec<ProbeMessage> {
    s.disconnected();
    s.connected();
    s.handle(welcome(session_id), now).0
}

#[test]
fn reports_are_re_sent_within_a_run_and_forgotten_when_the_next_run_starts() {
    let mut s = session();
    let mut now = 0;
    s.connected();
    s.handle(welcome(1), now);
    s.handle(CoordinatorMessage::ClockEstimate(common::clock(0)), now);

    // Run 1: phase 0 from 100 ms to 300 ms, phase 1 (sent before phase 0 ends) until 500 ms.
    s.handle(phase(0, 100 * MS), now);
    let out = run_until(&mut s, &mut now, 250 * MS);
    assert!(reports(&out).is_empty());
    s.handle(phase(1, 300 * MS), now);
    let out = run_until(&mut s, &mut now, 400 * MS);
    assert_eq!(reports(&out), vec![0]);
    // A reconnect within the run re-sends phase 0's report; so does a second one after the
    // coordinator re-sent phase 1's order (which started before phase 1's report ended).
    assert_eq!(reports(&reconnect(&mut s, now, 2)), vec![0]);
    s.handle(phase(1, 300 * MS), now);
    let out = run_until(&mut s, &mut now, 600 * MS);
    assert_eq!(reports(&out), vec![1]);
    assert_eq!(reports(&reconnect(&mut s, now, 3)), vec![0, 1]);

    // Run 2 numbers its phases from 0 again, after run 1 has ended: run 1's reports are no use to
    // its coordinator, and phase 0 of run 2 runs (it is not taken for run 1's phase 0).
    s.handle(phase(0, 1_000 * MS), now);
    assert!(reports(&reconnect(&mut s, now, 4)).is_empty());
    let out = run_until(&mut s, &mut now, 1_300 * MS);
    assert_eq!(reports(&out), vec![0]);
    assert_eq!(reports(&reconnect(&mut s, now, 5)), vec![0]);
}
