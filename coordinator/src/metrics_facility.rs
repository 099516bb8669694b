//! The facility part of the live metrics: each rack's power as its PDUs measure it, beside the
//! GPU-side figures [`crate::metrics::Metrics`] keeps, from the readings facility collectors send.
//!
//! A rack's PDU power is the sum of the latest whole-unit `power_w` reading of every PDU source
//! assigned to it; a PDU whose latest reading is absent or older than [`STALE_NS`] makes the rack's
//! figure absent (left out, and counted in `hallmark_rack_pdus_stale`), never a smaller sum.

use crate::metrics::{Format, STALE_NS};
use crate::metrics_text::{counter, family, num, rack_labels};
use hallmark_protocol::{FacilityBatch, FacilityQuantity, FacilitySubject, SourceKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The latest PDU readings, by rack and source.
#[derive(Debug, Default)]
pub(crate) struct FacilityMetrics {
    /// (rack, source) → latest (coordinator ns, W, or `None`: the reading was absent).
    pdus: BTreeMap<(String, String), (i64, Option<f64>)>,
    pub(crate) readings: u64,
    pub(crate) absent: u64,
}

/// One rack's PDU figure at an instant.
#[derive(Debug, PartialEq)]
pub(crate) struct RackPdu<'a> {
    pub rack: &'a str,
    /// The sum over the rack's PDUs; `None` when one of them has no fresh reading.
    pub watts: Option<f64>,
    /// PDUs of the rack without a fresh reading.
    pub stale: u64,
}

impl FacilityMetrics {
    /// Follows a batch of readings a collector sent.
    pub(crate) fn on_batch(&mut self, batch: &FacilityBatch) {
        for r in &batch.readings {
            self.readings += 1;
            self.absent += u64::from(r.value.is_none());
            let FacilitySubject::Rack(rack) = &r.subject else {
                continue;
            };
            if r.kind != SourceKind::Pdu
                || r.quantity != FacilityQuantity::PowerW
                || !r.point.is_empty()
            {
                continue;
            }
            let value = r.value.filter(|v| v.is_finite());
            let key = (rack.clone(), r.source.clone());
            let e = self.pdus.entry(key).or_insert((r.t_ns, value));
            if r.t_ns >= e.0 {
                *e = (r.t_ns, value);
            }
        }
    }

    /// Renders the facility families at `now_ns`: `connected` collectors, racks placed in their
    /// hall and row by `place`.
    pub(crate) fn render(
        &self,
        o: &mut String,
        now_ns: i64,
        format: Format,
        connected: usize,
        place: &BTreeMap<&str, (&str, &str)>,
    ) {
        family(
            o,
            "hallmark_facility_collectors_connected",
            "gauge",
            "facility collectors (probes reading PDUs, CDUs, BMCs) connected now",
        );
        let _ = writeln!(o, "hallmark_facility_collectors_connected {connected}");
        let racks = self.racks(now_ns);
        let labels = |rack: &str| {
            let (hall, row) = place.get(rack).copied().unwrap_or(("", ""));
            rack_labels(hall, row, rack)
        };
        family(
            o,
            "hallmark_rack_pdu_power_watts",
            "gauge",
            "sum of the rack's PDUs' latest input power, W (left out while a PDU has no reading \
             of the last 10 s: see hallmark_rack_pdus_stale)",
        );
        for r in &racks {
            if let Some(w) = r.watts {
                let _ = writeln!(
                    o,
                    "hallmark_rack_pdu_power_watts{{{}}} {}",
                    labels(r.rack),
                    num(w)
                );
            }
        }
        family(
            o,
            "hallmark_rack_pdus_stale",
            "gauge",
            "PDUs of the rack without a power reading in the last 10 s",
        );
        for r in &racks {
            let _ = writeln!(
                o,
                "hallmark_rack_pdus_stale{{{}}} {}",
                labels(r.rack),
                r.stale
            );
        }
        counter(
            o,
            format,
            "hallmark_facility_readings_received",
            "facility readings received from collectors during runs",
            self.readings,
        );
        counter(
            o,
            format,
            "hallmark_facility_readings_absent",
            "facility readings received without a value (unreachable, malformed, out of range)",
            self.absent,
        );
    }

    /// Each rack with a PDU source, at `now_ns`.
    pub(crate) fn racks(&self, now_ns: i64) -> Vec<RackPdu<'_>> {
        let mut out: Vec<RackPdu<'_>> = Vec::new();
        for ((rack, _), (t, w)) in &self.pdus {
            let fresh = now_ns.saturating_sub(*t) <= STALE_NS;
            let w = w.filter(|_| fresh);
            match out.last_mut().filter(|r| r.rack == rack) {
                Some(r) => {
                    r.watts = r.watts.zip(w).map(|(a, b)| a + b);
                    r.stale += u64::from(w.is_none());
                }
                None => out.push(RackPdu {
                    rack,
                    watts: w,
                    stale: u64::from(w.is_none()),
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::FacilityReading;

    fn pdu(source: &str, rack: &str, t_ns: i64, value: Option<f64>) -> FacilityReading {
        FacilityReading {
            source: source.into(),
            kind: SourceKind::Pdu,
            subject: FacilitySubject::Rack(rack.into()),
            point: String::new(),
            quantity: FacilityQuantity::PowerW,
            uri: String::new(),
            t_ns,
            value,
            device_time_ns: None,
            latency_us: None,
            note: None,
        }
    }

    #[test]
    fn a_rack_sums_its_pdus_and_one_missing_pdu_leaves_it_absent() {
        let mut m = FacilityMetrics::default();
        let s = 1_000_000_000;
        let mut outlet = pdu("a1", "r1", s, Some(5.0));
        outlet.point = "outlet/1".into();
        m.on_batch(&FacilityBatch {
            seq: 0,
            readings: vec![
                pdu("a1", "r1", s, Some(40_000.0)),
                pdu("a2", "r1", s, Some(38_000.0)),
                pdu("b1", "r2", s, None),
                outlet,
            ],
        });
        let racks = m.racks(2 * s);
        assert_eq!(
            racks,
            vec![
                RackPdu {
                    rack: "r1",
                    watts: Some(78_000.0),
                    stale: 0
                },
                RackPdu {
                    rack: "r2",
                    watts: None,
                    stale: 1
                },
            ]
        );
        assert_eq!((m.readings, m.absent), (4, 1));
        // Later, a2 is stale: r1 has no figure, not a smaller one.
        m.on_batch(&FacilityBatch {
            seq: 1,
            readings: vec![pdu("a1", "r1", 12 * s, Some(41_000.0))],
        });
        let racks = m.racks(13 * s);
        assert_eq!(racks[0].watts, None);
        assert_eq!(racks[0].stale, 1);
        // An older reading arriving late does not replace a newer one.
        m.on_batch(&FacilityBatch {
            seq: 2,
            readings: vec![pdu("a1", "r1", 5 * s, Some(1.0))],
        });
        assert_eq!(
            m.pdus[&("r1".to_string(), "a1".to_string())].1,
            Some(41_000.0)
        );
    }
}
