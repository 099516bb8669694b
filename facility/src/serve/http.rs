//! The HTTP/1.1 shell of the served facility (hyper's server): each connection a task of the
//! accepting task's own set, so that stopping the server stops them all; at most
//! [`MAX_CONNECTIONS`] at once (more are closed at once), each request head read within
//! [`HEAD_TIMEOUT`], each connection closed gracefully (after the request in hand) once it has
//! lived [`CONNECTION_LIFETIME`] — a kept-alive client opens a new one.

use super::resources::{error_body, resource};
use super::{MeterBoard, ServeError};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::debug;

/// Longest wait for a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after the request in hand once it is this old.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// A served PDU or CDU: its id, rack and resource path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub id: String,
    pub rack: String,
    /// `/redfish/v1/PowerEquipment/RackPDUs/{id}` or `/redfish/v1/ThermalEquipment/CDUs/{id}`.
    pub path: String,
}

/// A running facility service; dropping it stops it (and every connection it serves).
#[derive(Debug)]
pub struct FacilityServer {
    addr: SocketAddr,
    pdus: Vec<Served>,
    cdus: Vec<Served>,
    task: tokio::task::JoinHandle<()>,
}

impl FacilityServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base of every path (what `facility discover` and facility.toml take).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The rack PDUs served, in the board's order.
    pub fn pdus(&self) -> &[Served] {
        &self.pdus
    }

    /// The CDUs served, in the board's order.
    pub fn cdus(&self) -> &[Served] {
        &self.cdus
    }

    /// Stops serving and waits until every connection is closed.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for FacilityServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn start(
    listener: TcpListener,
    board: Arc<dyn MeterBoard>,
    pdus: Vec<Served>,
    cdus: Vec<Served>,
) -> Result<FacilityServer, ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source,
    })?;
    let task = tokio::spawn(accept(listener, board));
    Ok(FacilityServer {
        addr,
        pdus,
        cdus,
        task,
    })
}

async fn accept(listener: TcpListener, board: Arc<dyn MeterBoard>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped with this task: every connection task is aborted with it.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on accepting.
                debug!("facility service: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("facility service: {peer} turned away, {MAX_CONNECTIONS} connections open");
            continue;
        };
        let board = board.clone();
        connections.spawn(async move {
            connection(stream, peer, board).await;
            drop(slot);
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, board: Arc<dyn MeterBoard>) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let reply = respond(&req, board.as_ref(), SystemTime::now());
        async move { Ok::<_, std::convert::Infallible>(reply) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!("facility service: {peer}: {e}");
            }
        }
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HEAD_TIMEOUT, conn).await;
        }
    }
}

/// The answer to one request at `now`.
pub(super) fn respond(
    req: &Request<Incoming>,
    board: &dyn MeterBoard,
    now: SystemTime,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let body = error_body(
            "OperationNotAllowed",
            &format!("The {} operation is not allowed on {path}; this simulated facility is read-only and anonymous.", req.method()),
            &[],
            "Read it with GET.",
        );
        let mut r = json_reply(StatusCode::METHOD_NOT_ALLOWED, &body);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // hyper sends no body in answer to HEAD, with the Content-Length of the GET's.
    let (pdus, cdus) = (board.pdus(now), board.cdus(now));
    match resource(path, &pdus, &cdus) {
        Some(v) => json_reply(StatusCode::OK, &v),
        None => json_reply(
            StatusCode::NOT_FOUND,
            &error_body(
                "ResourceMissingAtURI",
                &format!("The resource at the URI '{path}' was not found."),
                &[path],
                "Place a valid resource at the URI or correct the URI and resubmit the request.",
            ),
        ),
    }
}

fn json_reply(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
