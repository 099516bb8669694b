//! Mutual-TLS QUIC transport shared by the coordinator and the probes.
//!
//! * [`pki`] — the private CA: generate it, issue the coordinator's server certificate and one client
//!   certificate per node (the node id is carried in the certificate), read node ids back.
//! * [`ca_dir`] — the CA's files: `certs init` (the CA key kept apart from what the coordinator
//!   host needs), `certs issue` (recorded in an index of issued certificates), `certs revoke`.
//! * [`ca_lock`] — the CA directory's lock: one `certs issue` or `certs revoke` at a time.
//! * [`crl`] — revocation lists: signed by the CA, checked against it when loaded.
//! * [`revocation`] — the coordinator's client-certificate check against a revocation list that is
//!   re-read when its file changes.
//! * [`tls`] — rustls and quinn configurations (ring provider only, client certificates required,
//!   ALPN `hallmark/1`, keep-alive below the idle timeout) and the authenticated peer's node id.
//! * [`options`] — QUIC transport settings shared by both sides, the acknowledgement frequency
//!   asked of the peer among them.
//! * [`framed`] — protocol frames over quinn streams.
//! * `files` (private) — reading (with errors that name the file), creating and atomically
//!   writing the certificate, key and revocation-list files of the modules above.
//! * [`clock`] — the process clock (epoch nanoseconds that never go backwards) that shells feed to the
//!   state machines.
//!
//! This crate is the only place that knows about certificates and QUIC; the protocol crate stays
//! sans-IO and the coordinator's and probe's state machines never see a socket.

pub mod ca_bulk;
pub mod ca_dir;
pub mod ca_lock;
pub mod clock;
pub mod crl;
mod files;
pub mod framed;
pub mod options;
pub mod pki;
pub mod revocation;
pub mod tls;
