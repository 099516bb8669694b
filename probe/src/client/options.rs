//! What a probe is told and what it tells: [`ProbeOptions`] (how to run it), [`ProbeStatus`]
//! (what it is doing now) and [`ProbeError`] (why it stopped for good, with the CLI's exit code).

use super::Backoff;
use crate::facility::FacilityInbox;
use hallmark_protocol::{ClockEstimate, Hello, Refusal};
use hallmark_transport::clock::WallClock;
use hallmark_transport::tls::{self, ConnectFailure, TransportOptions};
use std::time::Duration;

/// Why a probe stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the coordinator refused this probe: {}", .0.message)]
    Refused(Refusal),
    /// The coordinator closed the connection as a refusal, and its Refused message did not arrive.
    #[error("the coordinator refused this probe: {0}")]
    RefusedOnClose(String),
    #[error("{0}")]
    Connect(ConnectFailure),
    #[error("TLS configuration: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot resolve the coordinator address {addr:?}: {detail}; give HOST:PORT, e.g. coordinator.example:4433 or 10.0.0.1:4433")]
    Resolve { addr: String, detail: String },
    #[error("cannot open a local UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("the probe task failed: {0}")]
    Task(String),
}

impl ProbeError {
    /// The exit code the CLI uses: 2 for refusals and authentication, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProbeError::Refused(_) | ProbeError::RefusedOnClose(_) | ProbeError::Connect(_) => 2,
            _ => 1,
        }
    }
}

/// How to run a probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Coordinator address, HOST:PORT.
    pub coordinator: String,
    /// Name to verify the coordinator's certificate against; defaults to the host in `coordinator`.
    pub server_name: Option<String>,
    pub transport: TransportOptions,
    pub hello: Hello,
    pub backoff: Backoff,
    /// Longest wait for one connection attempt's handshake.
    pub connect_timeout: Duration,
    /// Clock the probe stamps with (tests shift it to simulate a skewed node).
    pub clock: WallClock,
    /// Largest UDP payload this probe's endpoint accepts, bytes (QUIC's `max_udp_payload_size`;
    /// at least 1200). The endpoint's receive buffer is this × 64 (the largest GRO batch, where
    /// the socket offers GRO) × 32 (datagrams per receive call) on Linux: 128 MiB of address
    /// space at quinn's default of 65527, of which only the pages datagrams land in become
    /// resident. `None` keeps that default; thousands of probes in one process (`hallmark bench
    /// fleet`) set a smaller one. The endpoint is made once and kept for every attempt while it
    /// works.
    pub max_udp_payload: Option<u16>,
    /// A facility collector's readings, left by its collector task ([`super::ProbeHandle::spawn_facility`]).
    pub facility: Option<FacilityInbox>,
    /// Before its first connection attempt the probe waits a random part of this (uniform in
    /// [0, `start_jitter`]), so that a fleet started at the same second spreads its arrival.
    /// `Duration::ZERO` (the default): it connects at once.
    pub start_jitter: Duration,
    /// Seeds the jitter of the start and of the backoff (`None`, the default: the node id and the
    /// clock, so that probes differ); tests fix it to make a schedule reproducible.
    pub jitter_seed: Option<u64>,
}

impl ProbeOptions {
    pub fn new(coordinator: impl Into<String>, hello: Hello) -> Self {
        ProbeOptions {
            coordinator: coordinator.into(),
            server_name: None,
            transport: TransportOptions::default(),
            hello,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            clock: WallClock::new(),
            max_udp_payload: None,
            facility: None,
            start_jitter: Duration::ZERO,
            jitter_seed: None,
        }
    }
}

/// What the probe is doing now.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeStatus {
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    Registered {
        session_id: u64,
        clock: Option<ClockEstimate>,
    },
    Stopped,
}
