//! What a probe may send the coordinator, and how much of it may wait to be stored.
//!
//! The frame limit for probe → coordinator messages is sized to the largest legitimate message,
//! computed from the protocol's own limits rather than a round 16 MiB:
//!
//! * a telemetry batch covers [`BATCH_INTERVAL_S`] of sampling (the probe's runner cuts one every
//!   second), so it holds at most `devices × ticks` samples and `ticks` node-power readings, with
//!   `ticks = ceil(sample_hz × interval) + 1` (one tick of slack at a phase boundary). At the
//!   plan's highest rate ([`MAX_SAMPLE_HZ`], 100 Hz) and [`MAX_DEVICES_PER_NODE`] devices that is
//!   64 × 101 samples of at most [`SAMPLE_WIRE_MAX`] bytes each (postcard varints at their widest)
//!   plus 101 readings of [`POWER_WIRE_MAX`] bytes and `2 × ticks + 1` gaps of [`GAP_WIRE_MAX`]
//!   bytes (a cause of at most 160 bytes): [`MAX_TELEMETRY_FRAME`], about 415 KB;
//! * a Hello carries at most [`MAX_DEVICES_PER_NODE`] devices (strings of a few dozen bytes each):
//!   tens of KB;
//! * a phase report carries one result per device, at most 5 ops × 31 sizes of collective
//!   results, and one latency pair per peer whose histogram blob is at most [`MAX_HIST_BLOB`]
//!   bytes (an HDR histogram of 3 significant digits over the probe's 1 ns – 60 s range has
//!   27 648 counters; a histogram grows with the spread of the round trips, not their count).
//!
//! [`MAX_PROBE_FRAME`] (4 MiB) holds the largest batch ten times over and a phase report's
//! devices, collectives and faults. A run with fabric phases raises the limit by one latency pair
//! at its widest ([`PAIR_WIRE_MAX`]: two node ids, two counters, a [`MAX_HIST_BLOB`] histogram) per
//! peer of its largest phase ([`probe_frame_limit`]); the limit never shrinks while the coordinator
//! runs, so no frame being received is cut by a run's end. A frame over it is refused as that
//! probe's protocol error. Every batch is also checked against its own bound from the probe's
//! registered devices and the run's rate ([`max_batch_samples`]).
//!
//! Back-pressure: telemetry a probe has sent that the store has not yet acknowledged counts
//! against [`TELEMETRY_BUDGET`] (samples, node-power readings and gaps; an empty batch counts one). Past it, the coordinator stops
//! reading that probe's connection until the store has caught up to half of it, so one probe can
//! neither grow the recorder's queue without bound nor slow anyone else's heartbeats.

use hallmark_protocol::plan::MAX_SAMPLE_HZ;

/// Devices one node may register (its Hello's inventory).
pub const MAX_DEVICES_PER_NODE: usize = 64;
/// Seconds of sampling in one telemetry batch (the probe's runner cuts one per second).
pub const BATCH_INTERVAL_S: f64 = 1.0;
/// Widest postcard encoding of one `Sample`: t_ns 10, device 3, power 5, energy 9, GPU and
/// memory temperatures 5 + 5, SM clock 6, utilisation 5, throttle reasons 10.
pub const SAMPLE_WIRE_MAX: usize = 58;
/// Widest postcard encoding of one node-power reading `(i64, f32)`.
pub const POWER_WIRE_MAX: usize = 14;
/// Widest postcard encoding of one missed-instants gap: from and to 10 each, instants 10, the
/// cause's length 2 and the cause.
pub const GAP_WIRE_MAX: usize = 10 + 10 + 10 + 2 + hallmark_protocol::MAX_GAP_REASON_BYTES;
/// Largest latency histogram blob accepted in a phase report, bytes.
pub const MAX_HIST_BLOB: usize = 64 << 10;
/// Frame limit for probe → coordinator messages, bytes.
pub const MAX_PROBE_FRAME: usize = 4 << 20;
/// Widest postcard encoding of one latency pair: two node ids (length 1 + 64 bytes each), sent
/// and lost (10 each), the histogram's length (3) and the histogram.
pub const PAIR_WIRE_MAX: usize =
    2 * (1 + hallmark_protocol::ids::MAX_NODE_ID_LEN) + 2 * 10 + 3 + MAX_HIST_BLOB;

/// The probe frame limit while the largest fabric phase has `members` members: room for a
/// report with a latency pair to each peer, on top of [`MAX_PROBE_FRAME`].
pub fn probe_frame_limit(members: usize) -> usize {
    MAX_PROBE_FRAME.saturating_add(members.saturating_sub(1).saturating_mul(PAIR_WIRE_MAX))
}

/// Unstored telemetry (samples, node-power readings, gaps) one probe may have queued.
pub const TELEMETRY_BUDGET: u64 = 64 * 1024;

/// Sampling ticks one batch may cover at `sample_hz`.
pub fn max_batch_ticks(sample_hz: f64) -> usize {
    let ticks = (sample_hz.clamp(0.0, MAX_SAMPLE_HZ) * BATCH_INTERVAL_S).ceil() as usize;
    ticks.saturating_add(1)
}

/// Samples one batch of a node with `devices` devices may hold at `sample_hz`.
pub fn max_batch_samples(devices: usize, sample_hz: f64) -> usize {
    devices
        .min(MAX_DEVICES_PER_NODE)
        .saturating_mul(max_batch_ticks(sample_hz))
}

/// Missed-instant gaps one batch may carry at `sample_hz`: per sampling step one for instants
/// the sampler came too late for and one for a failed read, and one for the instants missed at a
/// phase's end.
pub fn max_batch_gaps(sample_hz: f64) -> usize {
    max_batch_ticks(sample_hz)
        .saturating_mul(2)
        .saturating_add(1)
}

/// Ticks of a batch at the highest rate (100 Hz × 1 s + 1).
const MAX_TICKS: usize = 101;
/// The largest telemetry frame: message tag 1, seq 10, three vector lengths of 5, the readings
/// and the gaps.
pub const MAX_TELEMETRY_FRAME: usize = 1
    + 10
    + 5
    + MAX_TICKS * POWER_WIRE_MAX
    + 5
    + MAX_DEVICES_PER_NODE * MAX_TICKS * SAMPLE_WIRE_MAX
    + 5
    + (2 * MAX_TICKS + 1) * GAP_WIRE_MAX;

const _: () = assert!(MAX_TELEMETRY_FRAME * 10 <= MAX_PROBE_FRAME);

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::codec::encode_frame;
    use hallmark_protocol::{ProbeMessage, Sample, TelemetryBatch};

    #[test]
    fn the_widest_batch_at_the_highest_rate_fits_its_computed_bound() {
        assert_eq!(max_batch_ticks(MAX_SAMPLE_HZ), MAX_TICKS);
        let ticks = max_batch_ticks(MAX_SAMPLE_HZ);
        let sample = Sample {
            t_ns: i64::MIN,
            device: u16::MAX,
            power_w: Some(f32::MAX),
            energy_j: Some(f64::MAX),
            gpu_temp_c: Some(f32::MAX),
            mem_temp_c: Some(f32::MAX),
            sm_clock_mhz: Some(u32::MAX),
            util_pct: Some(f32::MAX),
            throttle_reasons: u64::MAX,
        };
        let batch = TelemetryBatch {
            seq: u64::MAX,
            node_power_w: vec![(i64::MIN, f32::MAX); ticks],
            samples: vec![sample; max_batch_samples(MAX_DEVICES_PER_NODE, MAX_SAMPLE_HZ)],
            gaps: vec![
                hallmark_protocol::TelemetryGap {
                    from_ns: i64::MIN,
                    to_ns: i64::MIN,
                    instants: u64::MAX,
                    reason: "é".repeat(hallmark_protocol::MAX_GAP_REASON_BYTES / 2),
                };
                max_batch_gaps(MAX_SAMPLE_HZ)
            ],
        };
        let frame = encode_frame(&ProbeMessage::Telemetry(batch)).unwrap();
        let payload = frame.len() - 4;
        assert!(
            payload <= MAX_TELEMETRY_FRAME,
            "{payload} > {MAX_TELEMETRY_FRAME}"
        );
        // The bound is tight: within the vector-length slack of the real size.
        assert!(
            MAX_TELEMETRY_FRAME - payload < 16,
            "{payload} vs {MAX_TELEMETRY_FRAME}"
        );
        assert!(payload * 10 <= MAX_PROBE_FRAME);
    }

    #[test]
    fn a_latency_report_to_every_peer_fits_the_limit_of_its_phase() {
        use hallmark_protocol::{FabricReport, LatencyPair, NodeId, PhaseReport};
        let id = |i: usize| NodeId::new(format!("{i:0>64}")).unwrap();
        let members = 40;
        let report = PhaseReport {
            phase_id: u32::MAX,
            ended_at_ns: i64::MIN,
            stopped_early: None,
            devices: Vec::new(),
            fabric: Some(FabricReport {
                latency: (1..members)
                    .map(|i| LatencyPair {
                        src: id(0),
                        dst: id(i),
                        sent: u64::MAX,
                        lost: u64::MAX,
                        rtt_ns_hist: vec![0xff; MAX_HIST_BLOB],
                    })
                    .collect(),
                ..FabricReport::default()
            }),
        };
        let frame = encode_frame(&ProbeMessage::PhaseReport(report)).unwrap();
        let pairs = frame.len() - 4;
        assert!(pairs <= (members - 1) * PAIR_WIRE_MAX + 64, "{pairs}");
        assert!(
            pairs > (members - 1) * (PAIR_WIRE_MAX - 8),
            "the bound is tight: {pairs}"
        );
        assert!(frame.len() - 4 <= probe_frame_limit(members));
        assert_eq!(probe_frame_limit(0), MAX_PROBE_FRAME);
        assert_eq!(probe_frame_limit(1), MAX_PROBE_FRAME);
    }

    #[test]
    fn batch_bounds_follow_devices_and_rate() {
        assert_eq!(max_batch_samples(8, 10.0), 8 * 11);
        assert_eq!(max_batch_samples(1, 0.5), 2);
        assert_eq!(max_batch_samples(10_000, 100.0), 64 * 101);
    }
}
