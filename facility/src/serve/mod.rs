//! A Redfish service of rack PDUs and CDUs over HTTP/1.1 on loopback, for a simulated hall: what a
//! real hall's PDUs and CDUs serve, read through the same client and walk as a real hall.
//!
//! A [`MeterBoard`] says what every meter reads at a given time (flat states: [`PduState`],
//! [`CduState`]); [`serve`] binds a loopback address and answers GETs from those states
//! (`resources`: the JSON, pure; `http`: the hyper shell with bounded connections). Served:
//!
//! - `/redfish/v1` (service root), `/redfish/v1/PowerEquipment`, `.../RackPDUs`, `.../RackPDUs/{id}`
//!   and its `Metrics` (`PowerWatts`, `EnergykWh`, each with the `DataSourceUri` of its Sensor);
//! - `/redfish/v1/ThermalEquipment`, `.../CDUs`, `.../CDUs/{id}` (with its `Coolant`: water, density
//!   and specific heat) and its `PrimaryCoolantConnectors/1` (facility water) and
//!   `SecondaryCoolantConnectors/1` (the rack's loop): supply and return temperature, ΔT, flow,
//!   `HeatRemovedkW`;
//! - `/redfish/v1/Chassis/PDU-{id}` and `CDU-{id}` with their `Sensors` (`ReadingTime`,
//!   `SensingInterval`, `Accuracy` where the board states one).
//!
//! Anything else is 404 with a Redfish error body; a method other than GET or HEAD is 405. No
//! credentials: the service is anonymous and listens on loopback only.

mod http;
pub mod resources;

pub use http::{FacilityServer, Served, CONNECTION_LIFETIME, HEAD_TIMEOUT, MAX_CONNECTIONS};
pub use resources::{cdu_path, pdu_path};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// A rack PDU's meter as it reads now. `None` is a reading the meter does not have (served as
/// `null`, never 0).
#[derive(Clone, Debug, PartialEq)]
pub struct PduState {
    /// Resource id (`RackPDUs/{id}`): letters, digits, `-`, `_` and `.`.
    pub id: String,
    /// The rack it feeds.
    pub rack: String,
    /// Input power, W.
    pub power_w: Option<f64>,
    /// Input energy counter, kWh.
    pub energy_kwh: Option<f64>,
    /// The meter's stated accuracy, percent of the reading.
    pub accuracy_pct: Option<f64>,
    /// How often the meter updates, s.
    pub sensing_interval_s: f64,
    /// When the meter took these readings.
    pub reading_time: SystemTime,
}

/// One side of a CDU: °C, °C, L/min, kW.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectorState {
    pub supply_temp_c: Option<f64>,
    pub return_temp_c: Option<f64>,
    pub flow_lpm: Option<f64>,
    pub heat_removed_kw: Option<f64>,
}

/// A CDU's meters as they read now.
#[derive(Clone, Debug, PartialEq)]
pub struct CduState {
    /// Resource id (`CDUs/{id}`), as for a PDU.
    pub id: String,
    /// The rack it cools.
    pub rack: String,
    /// The coolant (water): kg/m³, kJ/(kg·K).
    pub density_kg_per_m3: f64,
    pub specific_heat_kj_per_kg_k: f64,
    /// Facility water side.
    pub primary: ConnectorState,
    /// The rack's loop.
    pub secondary: ConnectorState,
    /// The meters' stated accuracy, percent of the reading.
    pub accuracy_pct: Option<f64>,
    /// How often the meters update, s.
    pub sensing_interval_s: f64,
    /// When the meters took these readings.
    pub reading_time: SystemTime,
}

/// What the served meters read at `now`. Called for each request, from the server's tasks.
pub trait MeterBoard: Send + Sync {
    fn pdus(&self, now: SystemTime) -> Vec<PduState>;
    fn cdus(&self, now: SystemTime) -> Vec<CduState>;
}

/// Why a facility cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the simulated facility serves anonymous readings and listens on loopback only, not on {addr}; give it 127.0.0.1:0 or [::1]:0")]
    NotLoopback { addr: SocketAddr },
    #[error("cannot serve the facility on {addr}: {source}; give it a free loopback port (127.0.0.1:0 picks one)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} id {id:?}: {why}")]
    BadId {
        what: &'static str,
        id: String,
        why: &'static str,
    },
}

/// Serves `board` on the loopback address `addr` (port 0 picks a free one) until the returned
/// handle is dropped or shut down. The ids the board gives at start are checked (each a valid
/// path segment, unique per kind) and listed in the handle.
pub async fn serve(
    addr: SocketAddr,
    board: Arc<dyn MeterBoard>,
) -> Result<FacilityServer, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback { addr });
    }
    let now = SystemTime::now();
    let pdus: Vec<Served> = board
        .pdus(now)
        .into_iter()
        .map(|p| Served {
            path: pdu_path(&p.id),
            id: p.id,
            rack: p.rack,
        })
        .collect();
    let cdus: Vec<Served> = board
        .cdus(now)
        .into_iter()
        .map(|c| Served {
            path: cdu_path(&c.id),
            id: c.id,
            rack: c.rack,
        })
        .collect();
    check_ids("PDU", &pdus)?;
    check_ids("CDU", &cdus)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    http::start(listener, board, pdus, cdus)
}

fn check_ids(what: &'static str, served: &[Served]) -> Result<(), ServeError> {
    let mut seen = std::collections::HashSet::new();
    for s in served {
        let bad = |why| ServeError::BadId {
            what,
            id: s.id.clone(),
            why,
        };
        if s.id.is_empty() || s.id.len() > 64 {
            return Err(bad("an id is 1 to 64 characters"));
        }
        if !s
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || s.id.starts_with('.')
        {
            return Err(bad(
                "an id is a path segment of letters, digits, '-', '_' and '.', not starting with '.'",
            ));
        }
        if !seen.insert(s.id.as_str()) {
            return Err(bad("two of them have this id"));
        }
    }
    Ok(())
}
