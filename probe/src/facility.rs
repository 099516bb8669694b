//! A facility collector's side of the protocol: readings of the hall's meters, stamped on the
//! probe's clock by the collector, turned into numbered [`FacilityBatch`]es on the coordinator's
//! clock, kept until acknowledged and sent again after a reconnect.
//!
//! * [`FacilityFeed`] — sans-IO, inside [`crate::ProbeSession`]: readings wait until the probe
//!   has a clock estimate (their instants are converted with it), then go out in batches of at
//!   most [`MAX_FACILITY_READINGS`]; batches stay until the coordinator acknowledges them.
//!   Bounded: past [`MAX_PENDING_READINGS`] waiting or [`MAX_UNACKED_READINGS`] unacknowledged,
//!   the oldest are given up and counted (the coordinator sees the hole in the numbers).
//! * [`FacilityInbox`] — where the collector task leaves its readings for the probe's loop,
//!   bounded the same way, so that a collector never waits on the control stream.
//! * [`NoDevices`] — the backend of a collector: it loads and measures nothing.

use hallmark_protocol::facility::{
    bounded_text, MAX_FACILITY_NOTE_BYTES, MAX_FACILITY_READINGS, MAX_FACILITY_TEXT_BYTES,
};
use hallmark_protocol::{
    ClockEstimate, DeviceInfo, FacilityBatch, FacilityReading, FacilitySubject,
};
use hallmark_workloads::backend::{Backend, BackendError, NodeReading};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Readings waiting for a clock estimate (or in the inbox) before the oldest are given up.
pub const MAX_PENDING_READINGS: usize = 262_144;
/// Readings sent and not yet acknowledged before the oldest batch is given up (at 1 000 readings
/// per second, about 8 minutes without a coordinator).
pub const MAX_UNACKED_READINGS: usize = 524_288;

/// The collector's batches: waiting, sent, acknowledged.
#[derive(Debug, Default)]
pub struct FacilityFeed {
    /// Readings stamped on the probe's clock, not yet in a batch.
    pending: VecDeque<FacilityReading>,
    /// Batches made and not yet acknowledged, oldest first.
    unacked: VecDeque<FacilityBatch>,
    unacked_readings: usize,
    next_seq: u64,
    /// Readings given up because a bound was reached.
    dropped: u64,
}

impl FacilityFeed {
    /// Takes readings stamped on the probe's clock.
    pub fn push(&mut self, readings: Vec<FacilityReading>) {
        self.pending.extend(readings);
        let over = self.pending.len().saturating_sub(MAX_PENDING_READINGS);
        if over > 0 {
            self.pending.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// With a clock estimate, turns every waiting reading into batches (instants converted to the
    /// coordinator's clock) and returns the new batches; without one, nothing.
    pub fn cut(&mut self, clock: Option<&ClockEstimate>) -> Vec<FacilityBatch> {
        let Some(clock) = clock else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_FACILITY_READINGS);
            let readings: Vec<FacilityReading> = self
                .pending
                .drain(..n)
                .map(|r| within_bounds(r, clock.offset_ns))
                .collect();
            let batch = FacilityBatch {
                seq: self.next_seq,
                readings,
            };
            self.next_seq += 1;
            self.unacked_readings += batch.readings.len();
            self.unacked.push_back(batch.clone());
            out.push(batch);
        }
        while self.unacked_readings > MAX_UNACKED_READINGS {
            let Some(old) = self.unacked.pop_front() else {
                break;
            };
            self.unacked_readings -= old.readings.len();
            self.dropped += old.readings.len() as u64;
        }
        out
    }

    /// The coordinator stored every batch up to and including `seq`.
    pub fn ack(&mut self, seq: u64) {
        while self.unacked.front().is_some_and(|b| b.seq <= seq) {
            if let Some(b) = self.unacked.pop_front() {
                self.unacked_readings -= b.readings.len();
            }
        }
    }

    /// Batches sent and not acknowledged, oldest first (sent again after a reconnect).
    pub fn unacked(&self) -> impl Iterator<Item = &FacilityBatch> {
        self.unacked.iter()
    }

    /// Readings waiting for a clock estimate.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Readings given up so far because a bound was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// `r` on the coordinator's clock (the probe's clock minus `offset_ns`), with its texts within
/// what the coordinator takes: cut to the protocol's lengths on a character boundary, a NUL
/// (which no store holds) replaced, so that one odd answer of a device never spoils a batch.
fn within_bounds(mut r: FacilityReading, offset_ns: i64) -> FacilityReading {
    r.t_ns = r.t_ns.saturating_sub(offset_ns);
    let fit = |s: &mut String, max: usize| {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{fffd}");
        }
        if s.len() > max {
            *s = bounded_text(std::mem::take(s), max);
        }
    };
    fit(&mut r.source, MAX_FACILITY_TEXT_BYTES);
    fit(&mut r.point, MAX_FACILITY_TEXT_BYTES);
    fit(&mut r.uri, MAX_FACILITY_TEXT_BYTES);
    match &mut r.subject {
        FacilitySubject::Hall => {}
        FacilitySubject::Row(n) | FacilitySubject::Rack(n) | FacilitySubject::Node(n) => {
            fit(n, MAX_FACILITY_TEXT_BYTES)
        }
    }
    if let Some(note) = r.note.as_mut() {
        fit(note, MAX_FACILITY_NOTE_BYTES);
    }
    r
}

/// Where the collector task leaves readings for the probe's loop: bounded, never blocking.
#[derive(Debug, Clone, Default)]
pub struct FacilityInbox {
    inner: Arc<InboxInner>,
}

#[derive(Debug, Default)]
struct InboxInner {
    readings: Mutex<(Vec<FacilityReading>, u64)>,
    notify: tokio::sync::Notify,
}

impl FacilityInbox {
    /// Leaves `readings` for the probe; past [`MAX_PENDING_READINGS`] waiting, the oldest are
    /// given up and counted.
    pub fn put(&self, readings: Vec<FacilityReading>) {
        {
            let mut guard = self.lock();
            let (held, dropped) = &mut *guard;
            held.extend(readings);
            let over = held.len().saturating_sub(MAX_PENDING_READINGS);
            if over > 0 {
                held.drain(..over);
                *dropped += over as u64;
            }
        }
        self.inner.notify.notify_one();
    }

    /// Everything left so far, and how many readings were given up since the last call.
    pub fn take(&self) -> (Vec<FacilityReading>, u64) {
        let mut guard = self.lock();
        let (held, dropped) = &mut *guard;
        (std::mem::take(held), std::mem::take(dropped))
    }

    /// Resolves once readings have been left since the last call (cancel-safe).
    pub async fn ready(&self) {
        self.inner.notify.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<FacilityReading>, u64)> {
        // A panic while holding this lock leaves plain data behind; go on with it.
        self.inner
            .readings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// The backend of a facility collector: no devices, nothing to load.
#[derive(Debug, Default)]
pub struct NoDevices;

impl Backend for NoDevices {
    fn name(&self) -> &'static str {
        "facility"
    }

    fn inventory(&self) -> &[DeviceInfo] {
        &[]
    }

    fn set_level(&mut self, device: u16, _level: f64) -> Result<(), BackendError> {
        Err(BackendError::Config(format!(
            "a facility collector has no device {device} to load"
        )))
    }

    fn sample(&mut self, _now_ns: i64) -> Result<NodeReading, BackendError> {
        Ok(NodeReading {
            devices: Vec::new(),
            node_power_w: None,
        })
    }

    fn stop_all(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::{FacilityQuantity, SourceKind};

    fn reading(t_ns: i64, value: f64) -> FacilityReading {
        FacilityReading {
            source: "pdu-r01".into(),
            kind: SourceKind::Pdu,
            subject: FacilitySubject::Rack("r01".into()),
            point: String::new(),
            quantity: FacilityQuantity::PowerW,
            uri: "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics#/PowerWatts/Reading".into(),
            t_ns,
            value: Some(value),
            device_time_ns: None,
            latency_us: Some(800),
            note: None,
        }
    }

    fn clock(offset_ns: i64) -> ClockEstimate {
        ClockEstimate {
            offset_ns,
            uncertainty_ns: 1_000,
            rtt_ns: 2_000,
            measured_at_ns: 0,
        }
    }

    #[test]
    fn readings_wait_for_a_clock_then_go_out_on_the_coordinators_clock() {
        let mut feed = FacilityFeed::default();
        feed.push(vec![reading(5_000, 1.0), reading(6_000, 2.0)]);
        assert!(feed.cut(None).is_empty());
        assert_eq!(feed.pending(), 2);
        // The probe's clock is 1 000 ns ahead of the coordinator's.
        let batches = feed.cut(Some(&clock(1_000)));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].seq, 0);
        let t: Vec<i64> = batches[0].readings.iter().map(|r| r.t_ns).collect();
        assert_eq!(t, vec![4_000, 5_000]);
        assert_eq!(feed.pending(), 0);
        feed.push(vec![reading(7_000, 3.0)]);
        assert_eq!(feed.cut(Some(&clock(1_000)))[0].seq, 1);
    }

    #[test]
    fn batches_stay_until_acknowledged_and_are_cut_at_the_protocol_limit() {
        let mut feed = FacilityFeed::default();
        feed.push(
            (0..MAX_FACILITY_READINGS as i64 + 10)
                .map(|t| reading(t, 1.0))
                .collect(),
        );
        let batches = feed.cut(Some(&clock(0)));
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].readings.len(), MAX_FACILITY_READINGS);
        assert_eq!(batches[1].readings.len(), 10);
        assert_eq!(feed.unacked().count(), 2);
        feed.ack(0);
        let left: Vec<u64> = feed.unacked().map(|b| b.seq).collect();
        assert_eq!(left, vec![1]);
        feed.ack(7);
        assert_eq!(feed.unacked().count(), 0);
        assert_eq!(feed.dropped(), 0);
    }

    #[test]
    fn past_the_bounds_the_oldest_are_given_up_and_counted() {
        let mut feed = FacilityFeed::default();
        feed.push(
            (0..MAX_PENDING_READINGS as i64 + 5)
                .map(|t| reading(t, 1.0))
                .collect(),
        );
        assert_eq!(feed.pending(), MAX_PENDING_READINGS);
        assert_eq!(feed.dropped(), 5);
        // Two full loads of unacknowledged batches: the older load is given up.
        feed.cut(Some(&clock(0)));
        feed.push(
            (0..MAX_PENDING_READINGS as i64)
                .map(|t| reading(t, 1.0))
                .collect(),
        );
        feed.cut(Some(&clock(0)));
        feed.push(
            (0..MAX_PENDING_READINGS as i64)
                .map(|t| reading(t, 1.0))
                .collect(),
        );
        feed.cut(Some(&clock(0)));
        let unacked: usize = feed.unacked().map(|b| b.readings.len()).sum();
        assert!(unacked <= MAX_UNACKED_READINGS, "{unacked}");
        assert_eq!(
            feed.dropped(),
            5 + (3 * MAX_PENDING_READINGS - unacked) as u64
        );
    }

    #[test]
    fn the_inbox_is_bounded_and_counts_what_it_gave_up() {
        let inbox = FacilityInbox::default();
        inbox.put(vec![reading(1, 1.0)]);
        inbox.put(
            (0..MAX_PENDING_READINGS as i64)
                .map(|t| reading(t, 1.0))
                .collect(),
        );
        let (held, dropped) = inbox.take();
        assert_eq!(held.len(), MAX_PENDING_READINGS);
        assert_eq!(dropped, 1);
        assert_eq!(inbox.take(), (Vec::new(), 0));
    }

    #[test]
    fn texts_are_cut_to_the_protocols_bounds_and_nul_is_replaced() {
        let mut feed = FacilityFeed::default();
        let mut r = reading(0, 1.0);
        r.uri = "é".repeat(MAX_FACILITY_TEXT_BYTES);
        r.note = Some(format!("bad\0{}", "x".repeat(400)));
        r.subject = FacilitySubject::Rack("r\0".into());
        feed.push(vec![r]);
        let b = feed.cut(Some(&clock(0)));
        let r = &b[0].readings[0];
        assert_eq!(r.uri.len(), MAX_FACILITY_TEXT_BYTES);
        let note = r.note.as_deref().unwrap();
        assert!(note.len() <= MAX_FACILITY_NOTE_BYTES && note.starts_with("bad\u{fffd}x"));
        assert_eq!(r.subject, FacilitySubject::Rack("r\u{fffd}".into()));
    }

    #[test]
    fn a_collector_has_no_devices_to_load() {
        let mut b = NoDevices;
        assert!(b.inventory().is_empty());
        assert!(b.set_level(0, 0.5).is_err());
        assert!(b.sample(0).unwrap().devices.is_empty());
    }
}
