//! The hallmark wire protocol: message types, the frame codec, plan/pattern types and clock-sync math.
//!
//! This crate is sans-IO: no sockets, no async runtime, no clocks of its own. Times are plain nanosecond
//! integers passed in by the caller, so every state machine built on it can be driven by a simulated clock.
//!
//! * [`message`] — the versioned messages exchanged between a probe and the coordinator.
//! * [`fabric`] — fabric (interconnect) phases: members, pair keys, latency and collective results.
//! * [`facility`] — readings of the hall's meters (PDUs, CDUs, BMCs) that a facility collector sends.
//! * [`codec`] — length-prefixed framing over serde (postcard) with a hard frame-size limit and typed errors.
//! * [`clock`] — NTP-style four-timestamp exchanges and the minimum-RTT filter.
//! * [`pattern`] — load patterns (level over time) that phases run under.
//! * [`textpos`] — line and column of an offset in a file, for error messages.
//! * [`throttle`] — NVML's clock-event (throttle) reason bits that a [`Sample`] carries.
//! * [`plan`] — plans (phases, expected inventory, limits) and the TOML plan-file parser.
//! * [`ids`] — validated identifiers (node ids) that also end up in file names and certificates.

pub mod clock;
pub mod codec;
pub mod fabric;
pub mod facility;
pub mod ids;
pub mod message;
pub mod pattern;
pub mod plan;
pub mod textpos;
pub mod throttle;

pub use codec::{decode_frame, encode_frame, DecodeError, FrameDecoder, MAX_FRAME_LEN};
pub use fabric::{
    CollectiveAlgorithm, CollectiveOp, CollectiveParams, CollectiveResult, CollectiveTransport,
    DataPlaneAddr, FabricFault, FabricMember, FabricParams, FabricPhase, FabricReport, LatencyPair,
    LatencyParams, NcclSetup, PairKey, PeerKey,
};
pub use facility::{
    FacilityBatch, FacilityQuantity, FacilityReading, SourceKind, Subject as FacilitySubject,
};
pub use ids::{NodeId, NodeIdError};
pub use message::*;

/// The protocol version this build speaks. Bumped on any incompatible change of a message.
///
/// Compatibility rule that every future version keeps: [`ProbeMessage::Hello`] stays variant 0 and
/// `protocol_version` stays its first field, so that a coordinator can always read the version of a
/// Hello it cannot otherwise decode and refuse it with a clear reason.
///
/// Version 5 added [`Hello::software`] (driver and library versions); postcard has no optional
/// fields, so a version-4 Hello does not decode as a version-5 one and is refused by its version.
pub const PROTOCOL_VERSION: u16 = 5;

/// The ALPN protocol identifier negotiated in the TLS handshake.
pub const ALPN: &[u8] = b"hallmark/1";
