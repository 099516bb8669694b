//! The simulated hall's facility: a rack PDU and a CDU per rack, read from the racks' shared coolant
//! loops and served over Redfish by `hallmark_facility::serve`, so that the collector reads a
//! simulated hall through the same client as a real one.
//!
//! - **PDU** (`RackPDUs/{rack}`): the rack's electrical power, the sum of its nodes' latest wall
//!   power (GPUs over the PSU efficiency plus the base load: what each probe reports as
//!   `node_power_w`, and the heat each node gives its loop). The meter updates every
//!   [`PDU_SENSING_INTERVAL_S`]; each reading carries noise uniform within ±[`PDU_ACCURACY_PCT`] %
//!   of it (a seeded `SmallRng`: the same seed and the same requests give the same readings), and
//!   its energy counter integrates its readings (trapezoids between updates) from 0 kWh when the
//!   meter first reads. A `pdu_reads_low` fault scales the reading and so the counter.
//! - **CDU** (`CDUs/{rack}`): the loop's figures (`sim::coolant::LoopFigures`, docs/HALL.md):
//!   secondary supply, return, flow and heat removed (with `cdu_low_flow`'s smaller flow and larger
//!   ΔT), primary (facility water) supply, return, flow and the heat passed on; water at 997 kg/m³
//!   and 4.18 kJ/(kg·K). No meter noise: the loop's figures as they are when asked.
//!
//! [`SimFacility::facility_toml`] writes the facility.toml that points a collector at it.

// Until the demo and `run --simulate` start it, only the tests use it.
#![cfg_attr(not(test), allow(dead_code))]

use anyhow::{bail, Result};
use hallmark_facility::serve::{
    cdu_path, pdu_path, CduState, ConnectorState, MeterBoard, PduState,
};
use hallmark_workloads::sim::coolant::shared_figures;
use hallmark_workloads::sim::{HallLoops, HallSpec, SharedLoop};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;
use std::time::SystemTime;

/// The PDU meters' stated accuracy, percent of the reading (a class 1 energy meter, as rack PDUs'
/// inlet meters commonly are).
pub const PDU_ACCURACY_PCT: f64 = 1.0;
/// How often a PDU meter updates, s.
pub const PDU_SENSING_INTERVAL_S: f64 = 1.0;
/// How often a CDU's meters update, s.
pub const CDU_SENSING_INTERVAL_S: f64 = 1.0;

struct Rack {
    name: String,
    coolant: SharedLoop,
    /// What the PDU reads per watt drawn (a `pdu_reads_low` fault's factor, else 1).
    pdu_factor: f64,
}

/// One PDU meter's last update.
#[derive(Clone, Copy)]
struct Meter {
    reading_w: f64,
    at: SystemTime,
    energy_kwh: f64,
}

struct Meters {
    rng: SmallRng,
    pdus: Vec<Option<Meter>>,
}

/// The meters of a simulated hall, read from its racks' shared loops.
pub struct SimFacility {
    hall: String,
    racks: Vec<Rack>,
    meters: Mutex<Meters>,
}

impl SimFacility {
    /// The facility of `hall` whose nodes run on `loops` (from `HallSpec::backends` or
    /// `coolant_loops`); `seed` seeds the meters' noise.
    pub fn new(hall: &HallSpec, loops: &HallLoops, seed: u64) -> Result<SimFacility> {
        let mut racks = Vec::new();
        for r in hall.racks() {
            let Some(coolant) = loops.get(&r.name) else {
                bail!(
                    "no coolant loop for rack {} of hall {}: give the loops the hall's nodes run on",
                    r.name,
                    hall.name
                );
            };
            racks.push(Rack {
                pdu_factor: hall.pdu_factor(&r.name),
                name: r.name,
                coolant: coolant.clone(),
            });
        }
        Ok(SimFacility {
            hall: hall.name.clone(),
            meters: Mutex::new(Meters {
                rng: SmallRng::seed_from_u64(seed),
                pdus: vec![None; racks.len()],
            }),
            racks,
        })
    }

    /// A facility.toml for a collector of this facility served at `base_url` (`http://ADDR`):
    /// one `[[redfish]]` source per rack PDU and per CDU, each for its rack.
    pub fn facility_toml(&self, base_url: &str) -> String {
        let mut out = format!(
            "# The facility of simulated hall {:?}: a rack PDU and a CDU per rack, over Redfish.\n\
             [defaults]\ninterval_s = 1.0\n",
            self.hall
        );
        for r in &self.racks {
            for (kind, path) in [("pdu", pdu_path(&r.name)), ("cdu", cdu_path(&r.name))] {
                out.push_str(&format!(
                    "\n[[redfish]]\nname = \"{kind}-{rack}\"\nurl = {base_url:?}\nresource = \"{path}\"\nrack = \"{rack}\"\n",
                    rack = r.name
                ));
            }
        }
        out
    }

    /// Brings PDU meter `i` up to `now` (a new reading once its interval has passed) and returns it.
    fn read_pdu(m: &mut Meters, i: usize, rack: &Rack, now: SystemTime) -> Meter {
        if let Some(last) = m.pdus[i] {
            let since = now.duration_since(last.at).map(|d| d.as_secs_f64());
            // Within its interval (or asked about an earlier instant) the meter holds its reading.
            if !matches!(since, Ok(s) if s >= PDU_SENSING_INTERVAL_S) {
                return last;
            }
        }
        let true_w = shared_figures(&rack.coolant).rack_heat_w;
        let noise = m.rng.random_range(-1.0..=1.0) * PDU_ACCURACY_PCT / 100.0;
        let reading_w = (true_w * rack.pdu_factor * (1.0 + noise)).max(0.0);
        let energy_kwh = match m.pdus[i] {
            Some(last) => {
                let hours = now
                    .duration_since(last.at)
                    .map_or(0.0, |d| d.as_secs_f64() / 3600.0);
                last.energy_kwh + (last.reading_w + reading_w) / 2.0 / 1000.0 * hours
            }
            None => 0.0,
        };
        let meter = Meter {
            reading_w,
            at: now,
            energy_kwh,
        };
        m.pdus[i] = Some(meter);
        meter
    }
}

impl MeterBoard for SimFacility {
    fn pdus(&self, now: SystemTime) -> Vec<PduState> {
        let mut m = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        self.racks
            .iter()
            .enumerate()
            .map(|(i, rack)| {
                let meter = Self::read_pdu(&mut m, i, rack, now);
                PduState {
                    id: rack.name.clone(),
                    rack: rack.name.clone(),
                    power_w: Some(meter.reading_w),
                    energy_kwh: Some(meter.energy_kwh),
                    accuracy_pct: Some(PDU_ACCURACY_PCT),
                    sensing_interval_s: PDU_SENSING_INTERVAL_S,
                    reading_time: meter.at,
                }
            })
            .collect()
    }

    fn cdus(&self, now: SystemTime) -> Vec<CduState> {
        self.racks
            .iter()
            .map(|rack| {
                let f = shared_figures(&rack.coolant);
                CduState {
                    id: rack.name.clone(),
                    rack: rack.name.clone(),
                    density_kg_per_m3: f.density_kg_per_m3,
                    specific_heat_kj_per_kg_k: f.specific_heat_kj_per_kg_k,
                    primary: ConnectorState {
                        supply_temp_c: Some(f.primary_supply_c),
                        return_temp_c: Some(f.primary_return_c),
                        flow_lpm: Some(f.primary_flow_lpm),
                        heat_removed_kw: Some(f.primary_heat_kw),
                    },
                    secondary: ConnectorState {
                        supply_temp_c: Some(f.supply_c),
                        return_temp_c: Some(f.return_c),
                        flow_lpm: Some(f.flow_lpm),
                        heat_removed_kw: Some(f.heat_removed_kw),
                    },
                    accuracy_pct: None,
                    sensing_interval_s: CDU_SENSING_INTERVAL_S,
                    reading_time: now,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_facility::{ClientOptions, RedfishClient, WalkOptions};
    use hallmark_workloads::backend::Backend;
    use hallmark_workloads::sim::{parse_hall, SimBackend};
    use std::sync::Arc;
    use std::time::Duration;

    const HALL: &str = "name = \"t\"\nseed = 3\nrows = 1\nracks_per_row = 3\nnodes_per_rack = 2\n\
        gpus_per_node = 4\n[faults]\npdu_reads_low = { rack = \"row1-rack02\", factor = 0.8 }\n\
        cdu_low_flow = { rack = \"row1-rack03\", fraction = 0.4 }\n";

    fn at(s: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1.8e9 + s)
    }

    /// The hall's nodes after 20 s at full load (sampled at 10 Hz), with their last node power.
    fn loaded(seed: u64) -> (HallLoops, Vec<(String, f64)>, SimFacility) {
        let hall = parse_hall(HALL, "t.toml").unwrap();
        let (loops, nodes) = hall.backends().unwrap();
        let (nodes, mut backends): (Vec<_>, Vec<SimBackend>) = nodes.into_iter().unzip();
        let mut power = vec![0.0; backends.len()];
        for step in 0..=200 {
            for (b, p) in backends.iter_mut().zip(power.iter_mut()) {
                for d in 0..4 {
                    b.set_level(d, 1.0).unwrap();
                }
                *p = b.sample(step * 100_000_000).unwrap().node_power_w.unwrap();
            }
        }
        let racks = nodes
            .iter()
            .map(|n| n.labels.rack.clone())
            .zip(power)
            .collect();
        let facility = SimFacility::new(&hall, &loops, seed).unwrap();
        (loops, racks, facility)
    }

    /// The rack's power as its probes report it: the sum of its nodes' `node_power_w`.
    fn probes_w(nodes: &[(String, f64)], rack: &str) -> f64 {
        nodes
            .iter()
            .filter(|(r, _)| r == rack)
            .map(|(_, p)| p)
            .sum()
    }

    #[test]
    fn a_pdu_that_reads_low_reads_its_factor_times_the_racks_power() {
        let (_loops, nodes, f) = loaded(7);
        let mut ratios = vec![];
        for k in 0..=20 {
            for p in f.pdus(at(f64::from(k))) {
                let factor = if p.rack == "row1-rack02" { 0.8 } else { 1.0 };
                let ratio = p.power_w.unwrap() / probes_w(&nodes, &p.rack) / factor;
                assert!((ratio - 1.0).abs() <= PDU_ACCURACY_PCT / 100.0, "{p:?}");
                assert_eq!(p.reading_time, at(f64::from(k)));
                ratios.push(ratio);
            }
        }
        assert!(ratios.iter().any(|r| (r - 1.0).abs() > 1e-4), "no noise");
        // Between updates the meter holds its reading.
        let held = f.pdus(at(20.5));
        assert_eq!(held[0].reading_time, at(20.0));
        // The counters integrate 20 s of the readings.
        for p in f.pdus(at(20.0)) {
            let factor = if p.rack == "row1-rack02" { 0.8 } else { 1.0 };
            let expected = factor * probes_w(&nodes, &p.rack) * 20.0 / 3.6e6;
            let e = p.energy_kwh.unwrap();
            assert!((e / expected - 1.0).abs() < 0.01, "{e} kWh vs {expected}");
        }
        // The same seed and requests give the same readings; another seed other noise.
        let (_, _, again) = loaded(7);
        let (_, _, other) = loaded(8);
        assert_eq!(again.pdus(at(0.0)), loaded(7).2.pdus(at(0.0)));
        assert_ne!(
            other.pdus(at(0.0))[0].power_w,
            again.pdus(at(0.0))[0].power_w
        );
    }

    #[test]
    fn a_cdu_with_low_flow_shows_the_larger_delta_t() {
        let (_loops, nodes, f) = loaded(1);
        let cdus = f.cdus(at(0.0));
        let per_kw = |c: &CduState| {
            let s = &c.secondary;
            (s.return_temp_c.unwrap() - s.supply_temp_c.unwrap()) / s.heat_removed_kw.unwrap()
        };
        let (healthy, low) = (&cdus[0], &cdus[2]);
        assert_eq!(low.rack, "row1-rack03");
        let ratio = per_kw(low) / per_kw(healthy);
        assert!((ratio - 2.5).abs() < 1e-9, "{ratio}");
        let flow = |c: &CduState| c.secondary.flow_lpm.unwrap();
        assert!((flow(low) / flow(healthy) - 0.4).abs() < 1e-12);
        // The heat carried is the liquid's share of the rack's power, on both sides.
        for c in &cdus {
            let captured = 0.9 * probes_w(&nodes, &c.rack) / 1000.0;
            let s = &c.secondary;
            let computed = 997.0 * 4.18 * s.flow_lpm.unwrap() / 60_000.0
                * (s.return_temp_c.unwrap() - s.supply_temp_c.unwrap());
            assert!((computed - captured).abs() < 1e-9, "{c:?}");
            assert!((s.heat_removed_kw.unwrap() - captured).abs() < 1e-9);
            assert!((c.primary.heat_removed_kw.unwrap() - captured).abs() < 1e-9);
        }
        let dt =
            |c: &CduState| c.secondary.return_temp_c.unwrap() - c.secondary.supply_temp_c.unwrap();
        assert!(
            dt(low) > 2.0 * dt(healthy),
            "{} vs {}",
            dt(low),
            dt(healthy)
        );
    }

    #[test]
    fn facility_toml_names_a_pdu_and_a_cdu_per_rack() {
        let hall = parse_hall(
            "name = \"one\"\nseed = 1\nrows = 1\nracks_per_row = 1\nnodes_per_rack = 1\ngpus_per_node = 1\n",
            "one.toml",
        )
        .unwrap();
        let f = SimFacility::new(&hall, &hall.coolant_loops(), 1).unwrap();
        assert_eq!(
            f.facility_toml("http://127.0.0.1:4242"),
            "# The facility of simulated hall \"one\": a rack PDU and a CDU per rack, over Redfish.\n\
             [defaults]\ninterval_s = 1.0\n\n\
             [[redfish]]\nname = \"pdu-row1-rack01\"\nurl = \"http://127.0.0.1:4242\"\n\
             resource = \"/redfish/v1/PowerEquipment/RackPDUs/row1-rack01\"\nrack = \"row1-rack01\"\n\n\
             [[redfish]]\nname = \"cdu-row1-rack01\"\nurl = \"http://127.0.0.1:4242\"\n\
             resource = \"/redfish/v1/ThermalEquipment/CDUs/row1-rack01\"\nrack = \"row1-rack01\"\n"
        );
        let e = SimFacility::new(&HallSpec::demo(), &hall.coolant_loops(), 1)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("no coolant loop for rack row1-rack02"),
            "{e}"
        );
    }

    /// Served over Redfish, the simulated facility walks clean: the faults do not make it
    /// inconsistent in itself; they show against the GPU side (the PDU) and in the CDU's ΔT.
    #[tokio::test]
    async fn discover_walks_the_served_simulated_facility_cleanly() {
        let (_loops, nodes, f) = loaded(2);
        let server = hallmark_facility::serve::serve("127.0.0.1:0".parse().unwrap(), Arc::new(f))
            .await
            .unwrap();
        let mut client = RedfishClient::new(&server.base_url(), ClientOptions::default()).unwrap();
        let inv = hallmark_facility::discover(
            &mut client,
            WalkOptions::default(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        client.close().await;
        assert!(inv.findings.is_empty(), "{:#?}", inv.findings);
        assert_eq!((inv.pdus.len(), inv.cdus.len()), (3, 3));
        let low = inv.pdus[1].power_w.unwrap() / probes_w(&nodes, "row1-rack02");
        assert!((low - 0.8).abs() < 0.8 * 0.0101, "{low}");
        let sec = |i: usize| {
            let c = inv.cdus[i]
                .connectors
                .iter()
                .find(|c| c.side == "secondary")
                .unwrap();
            c.return_temp_c.unwrap() - c.supply_temp_c.unwrap()
        };
        assert!(sec(2) > 2.0 * sec(0), "{} vs {}", sec(2), sec(0));
        server.shutdown().await;
    }
}
