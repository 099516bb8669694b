//! hallmark-facility: clients of the hall's own meters and the balance arithmetic between them.
//!
//! Built so far: a Redfish client (`client`: HTTP/1.1 and HTTPS on rustls, basic auth or a
//! session, every request bounded), thin models of the Redfish resources a hall's facility
//! exposes (`model`: rack PDUs, CDUs, chassis, Sensors), readings with their physical ranges and
//! Sensor metadata (`reading`), the heat arithmetic of coolant loops (`heat`), and the walk of a
//! service (`walk`, a sans-IO state machine; [`discover`] is its async shell) that gives an
//! [`Inventory`] with findings (`assemble`, `finding`). `hallmark facility discover` prints it.
//! `serve` is the other end: a Redfish service of rack PDUs and CDUs on loopback, driven by a
//! [`serve::MeterBoard`] (the simulated hall's facility).
//!
//! The collector (`collect`) reads a `facility.toml` (`config`) and polls each source at its own
//! rate (a sans-IO schedule), turning each poll into flat `FacilityReading`s of the protocol crate
//! stamped on the caller's clock; `run_collector` is its async shell.
//!
//! Rack PDUs over SNMP v2c and v3 (`snmp`): vendor profiles as TOML data, one GET per poll,
//! readings scaled and range-checked, as the protocol's `FacilityReading`s; the collector polls
//! them on an SNMP lane beside the Redfish ones.
//!
//! Storing readings (the store) and judging them (results) happen above: this crate depends only
//! on the protocol crate, for the reading type; never on the store.

pub mod assemble;
pub mod auth;
pub mod client;
pub mod collect;
pub mod config;
pub mod error;
pub mod finding;
pub mod heat;
pub mod inventory;
pub mod model;
pub mod reading;
pub mod serve;
pub mod snmp;
pub mod tls;
pub mod url;
pub mod walk;

pub use auth::{Auth, Credentials, Secret};
pub use client::{ClientOptions, RedfishClient};
pub use collect::{run_collector, Collector, CollectorStats, Lane, PollResult};
pub use config::{ConfigError, FacilityConfig, SourceConfig};
pub use error::FacilityError;
pub use finding::{Finding, FindingKind};
pub use inventory::Inventory;
pub use tls::Trust;
pub use walk::{Walk, WalkOptions};

use std::time::Duration;

/// Walks the service `client` talks to and returns what it found, reading at most
/// `opts.max_resources` resources within `time_limit` (what is not read by then is absent, with a
/// `walk_bounded` finding). Logs in first when the client is set up for a session; the caller
/// closes the client. An error only when the service cannot be read at all (the root, TLS,
/// credentials, a refused connection); everything else is a finding.
pub async fn discover(
    client: &mut RedfishClient,
    opts: WalkOptions,
    time_limit: Duration,
) -> Result<Inventory, FacilityError> {
    let started = tokio::time::Instant::now();
    client.login().await?;
    let mut walk = Walk::new(client.root().clone(), opts);
    while let Some(req) = walk.next_request() {
        let left = time_limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            walk.stop(format!(
                "it ran for {} s, its time bound",
                time_limit.as_secs_f64()
            ));
            break;
        }
        let result = match tokio::time::timeout(left, client.get_json(&req.url)).await {
            Ok(r) => r,
            Err(_) => {
                walk.stop(format!(
                    "it ran for {} s, its time bound",
                    time_limit.as_secs_f64()
                ));
                break;
            }
        };
        walk.on_response(req.id, result);
    }
    walk.finish(time::OffsetDateTime::now_utc())
}
