//! QUIC transport settings shared by the coordinator and the probes: timeouts, windows, stream
//! counts, and how often a peer acknowledges.
//!
//! Acknowledgements are a large part of a fleet's packets. Without the acknowledgement-frequency
//! extension (draft-ietf-quic-ack-frequency, which quinn implements on both sides) a receiver
//! acknowledges every second packet at once: a busy coordinator, taking a probe's telemetry batch
//! of two or three packets in separate turns, sent one acknowledgement at once and one more 25 ms
//! later. Each side asks its peer to wait for
//! [`ACK_ELICITING_THRESHOLD`] packets, or its 25 ms acknowledgement delay, whichever comes first,
//! so a batch draws one acknowledgement. Packets that arrive out of order still draw one at once
//! (quinn's reordering threshold), so loss is detected about as quickly as before.

use std::time::Duration;

use crate::tls::TlsError;

/// Ack-eliciting packets a peer may receive before it must acknowledge at once (it acknowledges
/// within its 25 ms delay in any case), by default: more than a telemetry batch spans (2 to 3
/// packets at 8 devices × 10 Hz).
pub const ACK_ELICITING_THRESHOLD: u32 = 8;

/// QUIC transport settings shared by both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// A connection with no traffic for this long is dead.
    pub idle_timeout: Duration,
    /// Ping interval that keeps a quiet connection alive; must be below `idle_timeout`.
    pub keep_alive: Duration,
    /// Bytes a peer may send on one stream before it is read.
    pub stream_receive_window: u32,
    /// Bytes a peer may send on all streams of a connection before they are read.
    pub receive_window: u32,
    /// Bidirectional streams the peer may have open at once.
    pub max_bidi_streams: u32,
    /// Unidirectional streams the peer may have open at once.
    pub max_uni_streams: u32,
    /// Ack-eliciting packets the peer is asked to take before it acknowledges at once
    /// ([`ACK_ELICITING_THRESHOLD`]); `None` leaves its own policy (every second packet).
    pub ack_eliciting_threshold: Option<u32>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(2),
            stream_receive_window: 8 << 20,
            receive_window: 32 << 20,
            max_bidi_streams: 100,
            max_uni_streams: 100,
            ack_eliciting_threshold: Some(ACK_ELICITING_THRESHOLD),
        }
    }
}

impl TransportOptions {
    /// The coordinator's side: a probe gets one bidirectional stream (its control stream) and no
    /// unidirectional ones, and receive windows of a few MiB: enough for one largest frame in
    /// flight (`stream`, at least the frame limit) without letting one peer buffer more.
    pub fn coordinator(stream_receive_window: u32) -> Self {
        TransportOptions {
            stream_receive_window,
            receive_window: stream_receive_window.saturating_add(stream_receive_window / 2),
            max_bidi_streams: 1,
            max_uni_streams: 0,
            ..TransportOptions::default()
        }
    }

    /// Checks the options: non-zero values, keep-alive below the idle timeout.
    pub fn validate(&self) -> Result<(), TlsError> {
        let bad = |s: String| Err(TlsError::Options(s));
        if self.idle_timeout.is_zero() {
            return bad("the idle timeout is zero; use a few seconds, e.g. 10 s".into());
        }
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return bad(format!(
                "the keep-alive interval ({:?}) must be non-zero and below the idle timeout ({:?}), \
                 or quiet connections die; use about a fifth of the idle timeout",
                self.keep_alive, self.idle_timeout
            ));
        }
        if self.stream_receive_window == 0 || self.receive_window == 0 {
            return bad(
                "receive windows must be non-zero; the defaults are 8 MiB and 32 MiB".into(),
            );
        }
        Ok(())
    }

    /// The quinn transport configuration for these options. The send window matches the receive
    /// window so bulk transfers are not capped by quinn's smaller default.
    pub fn transport_config(&self) -> Result<quinn::TransportConfig, TlsError> {
        self.validate()?;
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            TlsError::Options(format!(
                "the idle timeout {:?} is too long",
                self.idle_timeout
            ))
        })?;
        let mut config = quinn::TransportConfig::default();
        config
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.keep_alive))
            .stream_receive_window(self.stream_receive_window.into())
            .receive_window(self.receive_window.into())
            .send_window(u64::from(self.receive_window))
            .max_concurrent_bidi_streams(self.max_bidi_streams.into())
            .max_concurrent_uni_streams(self.max_uni_streams.into());
        if let Some(threshold) = self.ack_eliciting_threshold {
            let mut acks = quinn::AckFrequencyConfig::default();
            acks.ack_eliciting_threshold(quinn::VarInt::from_u32(threshold));
            config.ack_frequency_config(Some(acks));
        }
        Ok(config)
    }
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
