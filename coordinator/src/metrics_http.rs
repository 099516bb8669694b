//! Serves [`Metrics`] over HTTP/1.1 (`GET /metrics`) for Prometheus, from its own tasks: a scraper
//! that is slow, hangs or floods never slows the coordinator. Each connection is a task of its own
//! with its request head read within [`HEAD_TIMEOUT`] and its whole life bounded by
//! [`CONNECTION_TIMEOUT`]; at most [`MAX_CONNECTIONS`] are served at once (more are closed at once);
//! the metrics' lock is held only while the text is rendered, never during I/O.

use crate::metrics::{Format, Metrics};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Longest wait for a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// The metrics a coordinator keeps, shared between its core and the HTTP tasks.
pub type SharedMetrics = Arc<Mutex<Metrics>>;

/// The serving task; dropping this stops it (with the coordinator's core, which holds it).
#[derive(Debug)]
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Updates `metrics`, whatever a panicking holder left (the figures stay usable).
pub fn update(metrics: &SharedMetrics, f: impl FnOnce(&mut Metrics)) {
    match metrics.lock() {
        Ok(mut m) => f(&mut m),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

/// Why the metrics endpoint cannot start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}; give --metrics a free local address and port, e.g. 0.0.0.0:9464")]
pub struct MetricsBindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the endpoint's address (an error here is the operator's to fix before anything runs).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsBindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsBindError { addr, source })
}

/// Serves `metrics` on `listener` until the task is aborted; `now_ns` reads the coordinator's
/// clock for each scrape.
pub fn spawn(
    listener: TcpListener,
    metrics: SharedMetrics,
    now_ns: Arc<dyn Fn() -> i64 + Send + Sync>,
) -> Serving {
    Serving(tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on accepting.
                    warn!("metrics endpoint: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!("metrics endpoint: {peer} turned away, {MAX_CONNECTIONS} connections open");
                continue;
            };
            let (metrics, now_ns) = (metrics.clone(), now_ns.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let reply = respond(&req, &metrics, now_ns());
                    async move { Ok::<_, std::convert::Infallible>(reply) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .keep_alive(true);
                let conn = http.serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                    Ok(Err(e)) => debug!("metrics endpoint: {peer}: {e}"),
                    Err(_) => debug!(
                        "metrics endpoint: {peer}: connection closed after {CONNECTION_TIMEOUT:?}"
                    ),
                    Ok(Ok(())) => {}
                }
                drop(slot);
            });
        }
    }))
}

/// The reply to one request.
fn respond(req: &Request<Incoming>, metrics: &SharedMetrics, now_ns: i64) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "hallmark serves its metrics at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n".into());
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let text = match metrics.lock() {
        Ok(m) => m.render(now_ns, format),
        Err(poisoned) => poisoned.into_inner().render(now_ns, format),
    };
    let mut r = reply(StatusCode::OK, text);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    r
}
