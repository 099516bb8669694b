//! A small Redfish service for the tests, on loopback: routes of canned answers (JSON, statuses,
//! redirects, huge or hanging bodies), a log of what was asked (method, path, the auth headers),
//! plain HTTP or TLS with a certificate made here. And a raw TCP server for answers hyper would
//! not write (a chunked body without end). Each server stops when its handle is dropped.
#![allow(dead_code)]

pub mod fixture;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A canned answer.
#[derive(Clone, Debug)]
pub enum Reply {
    Json(serde_json::Value),
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// `n` bytes of JSON-looking text with a Content-Length.
    Huge(usize),
    /// Never answers (within the tests' time).
    Hang,
}

pub fn redirect(to: &str) -> Reply {
    Reply::Status {
        status: 302,
        headers: vec![("location".into(), to.into())],
        body: String::new(),
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub token: Option<String>,
    pub body: String,
}

pub type Routes = HashMap<String, Reply>;

/// A running test service.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub routes: Arc<Mutex<Routes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Requests seen so far with this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }
}

/// Routes keyed `"GET /redfish/v1/"`: `(method path, reply)`; a GET route given as a bare path.
pub fn routes<const N: usize>(items: [(&str, Reply); N]) -> Routes {
    items
        .into_iter()
        .map(|(k, v)| {
            (
                if k.contains(' ') {
                    k.to_string()
                } else {
                    format!("GET {k}")
                },
                v,
            )
        })
        .collect()
}

pub async fn serve(routes: Routes) -> Server {
    start(routes, None).await
}

/// TLS with `chain` and `key` (PEM).
pub async fn serve_tls(routes: Routes, cert_pem: &str, key_pem: &str) -> Server {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    start(
        routes,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
    )
    .await
}

async fn start(routes: Routes, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let routes = Arc::new(Mutex::new(routes));
    let (s, r) = (seen.clone(), routes.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (s, r, tls) = (s.clone(), r.clone(), tls.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req| answer(req, s.clone(), r.clone()));
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    Server {
        addr,
        seen,
        routes,
        task,
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    routes: Arc<Mutex<Routes>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (authorization, token) = (header("authorization"), header("x-auth-token"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).to_string();
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        authorization,
        token,
        body,
    });
    let reply = routes
        .lock()
        .unwrap()
        .get(&format!("{method} {path}"))
        .cloned();
    let mut resp = Response::builder();
    let resp = match reply {
        Some(Reply::Json(v)) => resp.header("content-type", "application/json").body(Full::new(Bytes::from(v.to_string()))),
        Some(Reply::Status { status, headers, body }) => {
            resp = resp.status(status);
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            resp.body(Full::new(Bytes::from(body)))
        }
        Some(Reply::Huge(n)) => {
            let mut body = vec![b' '; n];
            body[0] = b'[';
            body[n - 1] = b']';
            resp.body(Full::new(Bytes::from(body)))
        }
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            resp.body(Full::new(Bytes::new()))
        }
        None => resp.status(404).body(Full::new(Bytes::from(
            serde_json::json!({"error": {"code": "Base.1.0.ResourceMissingAtURI", "message": format!("no resource at {path}")}}).to_string(),
        ))),
    };
    Ok(resp.unwrap())
}

/// A raw TCP server that reads one request head per connection and writes `reply` as it is,
/// then keeps the connection open for `hold`.
pub async fn raw_server(
    reply: Vec<u8>,
    hold: Duration,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = Arc::new(reply);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(&reply).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    (addr, task)
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it: (ca_pem, cert_pem, key_pem).
pub fn certificates(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Writes `text` to a new file in a fresh temporary directory; returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hallmark-fac-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A raw TLS server: per connection, the handshake, one request head read, `reply` written as it
/// is, then the connection dropped without a TLS close_notify (as Python's `ssl` and many BMCs do).
pub async fn raw_tls_server(
    cert_pem: &str,
    key_pem: &str,
    reply: Vec<u8>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = Arc::new(reply);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, reply) = (acceptor.clone(), reply.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(&reply).await;
                let _ = tls.flush().await;
                // Dropped here: the TCP connection closes with no close_notify.
            });
        }
    });
    (addr, task)
}
