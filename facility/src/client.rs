//! The Redfish HTTP client: JSON GETs over HTTP/1.1 (hyper) or HTTPS (tokio-rustls), one
//! kept-alive connection per origin, with every request bounded: a connect timeout (TCP and TLS),
//! a read timeout (request sent to last body byte), a body size limit checked as the body streams
//! in, and a redirect limit with loop detection. Credentials go only to the origin the client was
//! made for, never to a host a redirect points at.
//!
//! A TLS peer that closes without a close_notify alert (Python's `ssl` in sushy-static, many
//! BMCs' web servers) is taken as having closed: that ends a body delimited by the connection's
//! close (HTTP/1.0). A body with a Content-Length cut short is still an error, and a cut
//! close-delimited body is no valid JSON, so no truncation passes as a reading.
//!
//! Sessions: [`RedfishClient::login`] creates one (`POST /redfish/v1/SessionService/Sessions`),
//! later requests carry its `X-Auth-Token`, and [`RedfishClient::close`] deletes it. A client
//! dropped with a session still open deletes it from a detached task when a tokio runtime is
//! there to run it (best effort; `close` is the reliable way).

use crate::auth::{Auth, Secret};
use crate::error::FacilityError;
use crate::tls::{client_config, Trust};
use crate::url::{Scheme, Url};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Limits and security settings of a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// From sending a request to the last byte of its answer.
    pub read_timeout: Duration,
    /// Largest answer body accepted (a Redfish resource is a few KiB; collections with expanded
    /// members some hundred KiB).
    pub max_body_bytes: usize,
    /// Redirects followed per request.
    pub max_redirects: usize,
    /// How an HTTPS service is trusted; required for https URLs.
    pub trust: Option<Trust>,
    pub auth: Auth,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            max_body_bytes: 4 << 20,
            max_redirects: 5,
            trust: None,
            auth: Auth::None,
        }
    }
}

/// A JSON resource and the URL it was finally read from (after redirects).
#[derive(Debug)]
pub struct Fetched {
    pub url: Url,
    pub body: serde_json::Value,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

struct Session {
    token: Secret,
    url: Url,
}

/// The path every Redfish service serves its sessions at (DSP0266).
pub const SESSIONS_PATH: &str = "/redfish/v1/SessionService/Sessions";

/// A client of one Redfish service.
pub struct RedfishClient {
    base: Url,
    opts: ClientOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    session: Option<Session>,
    conns: HashMap<(Scheme, String, u16), SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for RedfishClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishClient")
            .field("base", &self.base.to_string())
            .field("auth", &self.opts.auth)
            .field("session", &self.session.as_ref().map(|s| s.url.to_string()))
            .finish()
    }
}

impl RedfishClient {
    /// A client of the service at `base` (its scheme, host and port; the path is ignored).
    pub fn new(base: &str, opts: ClientOptions) -> Result<RedfishClient, FacilityError> {
        let base = Url::parse(base)?.with_path("/redfish/v1/");
        let tls = match (&opts.trust, base.scheme) {
            (Some(trust), _) => Some(client_config(trust)?),
            (None, Scheme::Https) => {
                return Err(FacilityError::NeedsTrust {
                    uri: base.to_string(),
                })
            }
            (None, Scheme::Http) => None,
        };
        Ok(RedfishClient {
            base,
            opts,
            tls,
            session: None,
            conns: HashMap::new(),
        })
    }

    /// The service root's URL (`/redfish/v1/` on the service's origin).
    pub fn root(&self) -> &Url {
        &self.base
    }

    /// Creates a Redfish session when the client is set up for one; does nothing otherwise.
    pub async fn login(&mut self) -> Result<(), FacilityError> {
        let Auth::Session(creds) = &self.opts.auth else {
            return Ok(());
        };
        if self.session.is_some() {
            return Ok(());
        }
        let url = self.base.with_path(SESSIONS_PATH);
        let body = zeroize::Zeroizing::new(
            serde_json::json!({"UserName": creds.user, "Password": creds.password.expose()})
                .to_string(),
        );
        let answer = self
            .send(Method::POST, &url, Some(body.as_bytes()), None)
            .await?;
        let fail = |detail: String| FacilityError::Session {
            uri: url.to_string(),
            detail,
        };
        match answer.status.as_u16() {
            200 | 201 => {}
            401 | 403 => return Err(FacilityError::Unauthorized { uri: url.to_string(), status: answer.status.as_u16() }),
            s @ (404 | 405 | 501) => {
                return Err(fail(format!("HTTP {s}: the service offers no sessions here; use basic authentication (--auth basic)")))
            }
            s => {
                let message = error_message(&answer.body);
                let sep = if message.is_empty() { "" } else { ": " };
                return Err(fail(format!("HTTP {s}{sep}{message}")));
            }
        }
        let token = answer
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("the answer carries no X-Auth-Token header".into()))?;
        let location = answer
            .headers
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let from_body = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| {
                v.get("@odata.id")
                    .and_then(|i| i.as_str())
                    .map(str::to_string)
            });
        let session_ref = location.or(from_body).ok_or_else(|| {
            fail("the answer names no session resource (no Location header, no @odata.id)".into())
        })?;
        let session_url = url.join(&session_ref)?;
        if !session_url.same_origin(&self.base) {
            return Err(fail(format!(
                "the session it names, {session_url}, is on another host; its token is not sent there"
            )));
        }
        tracing::debug!(session = %session_url, "Redfish session created");
        self.session = Some(Session {
            token: Secret::new(token.to_string()),
            url: session_url,
        });
        Ok(())
    }

    /// Deletes the session, if one is open. A failure is logged, not returned: the session
    /// times out on the service anyway.
    pub async fn close(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let header = ("x-auth-token", session.token.clone());
        match self
            .send(Method::DELETE, &session.url, None, Some(header))
            .await
        {
            Ok(a) if a.status.is_success() || a.status == StatusCode::NOT_FOUND => {
                tracing::debug!(session = %session.url, "Redfish session deleted")
            }
            Ok(a) => {
                tracing::warn!(session = %session.url, status = a.status.as_u16(), "deleting the Redfish session failed; it ends when the service times it out")
            }
            Err(e) => {
                tracing::warn!(session = %session.url, "deleting the Redfish session failed ({e}); it ends when the service times it out")
            }
        }
        self.conns.clear();
    }

    /// GETs `url` as JSON, following at most `max_redirects` redirects.
    pub async fn get_json(&mut self, url: &Url) -> Result<Fetched, FacilityError> {
        let mut current = url.clone();
        let mut chain = vec![current.to_string()];
        for _ in 0..=self.opts.max_redirects {
            let auth = self.auth_header(&current);
            let answer = self.send(Method::GET, &current, None, auth).await?;
            if answer.status.is_redirection() && answer.status != StatusCode::NOT_MODIFIED {
                let location = answer
                    .headers
                    .get(hyper::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FacilityError::Status {
                        uri: current.to_string(),
                        status: answer.status.as_u16(),
                        message: "a redirect without a Location header".into(),
                    })?;
                let next = current.join(location)?;
                let next_text = next.to_string();
                let looped = chain.contains(&next_text);
                chain.push(next_text);
                if looped {
                    return Err(FacilityError::RedirectLoop {
                        uri: url.to_string(),
                        chain: chain.join(" → "),
                    });
                }
                current = next;
                continue;
            }
            let status = answer.status.as_u16();
            if status == 401 || status == 403 {
                return Err(FacilityError::Unauthorized {
                    uri: current.to_string(),
                    status,
                });
            }
            if !answer.status.is_success() {
                return Err(FacilityError::Status {
                    uri: current.to_string(),
                    status,
                    message: error_message(&answer.body),
                });
            }
            let body = serde_json::from_slice(&answer.body).map_err(|e| FacilityError::Json {
                uri: current.to_string(),
                detail: e.to_string(),
            })?;
            return Ok(Fetched { url: current, body });
        }
        Err(FacilityError::TooManyRedirects {
            uri: url.to_string(),
            limit: self.opts.max_redirects,
            chain: chain.join(" → "),
        })
    }

    fn auth_header(&self, url: &Url) -> Option<(&'static str, Secret)> {
        if !self.base.same_origin(url) {
            return None;
        }
        if let Some(s) = &self.session {
            return Some(("x-auth-token", s.token.clone()));
        }
        match &self.opts.auth {
            Auth::Basic(c) => Some(("authorization", c.basic_header())),
            _ => None,
        }
    }

    /// One request, no redirects: on a kept-alive connection when there is one (retried once on
    /// a fresh connection if that one turns out closed), bounded by the read timeout and the
    /// body limit.
    async fn send(
        &mut self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        auth: Option<(&'static str, Secret)>,
    ) -> Result<Answer, FacilityError> {
        let key = (url.scheme, url.host.to_ascii_lowercase(), url.port);
        let started = std::time::Instant::now();
        for attempt in 0..2 {
            let kept = match self.conns.remove(&key) {
                Some(mut s) if attempt == 0 => {
                    let ready = timeout(self.opts.connect_timeout, s.ready()).await;
                    matches!(ready, Ok(Ok(()))).then_some(s)
                }
                _ => None,
            };
            let (mut sender, reused) = match kept {
                Some(s) => (s, true),
                None => (self.connect(url).await?, false),
            };
            let request = build_request(&method, url, body, auth.as_ref())?;
            let limit = self.opts.max_body_bytes;
            let read = async {
                let response = sender.send_request(request).await?;
                let (parts, body) = response.into_parts();
                let declared = parts
                    .headers
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if declared.is_some_and(|n| n > limit as u64) {
                    return Ok(Err(()));
                }
                match Limited::new(body, limit).collect().await {
                    Ok(c) => Ok(Ok(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body: c.to_bytes(),
                    })),
                    Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Ok(Err(())),
                    Err(e) => Err(BodyError {
                        message: e.to_string(),
                        closed: false,
                    }),
                }
            };
            let outcome = timeout(self.opts.read_timeout, read).await.map_err(|_| {
                FacilityError::Timeout {
                    uri: url.to_string(),
                    what: "waiting for the answer",
                    after_ms: self.opts.read_timeout.as_millis() as u64,
                }
            })?;
            match outcome {
                Ok(Ok(answer)) => {
                    tracing::debug!(%method, url = %url, status = answer.status.as_u16(), ms = started.elapsed().as_millis() as u64, "redfish");
                    self.conns.insert(key, sender);
                    return Ok(answer);
                }
                Ok(Err(())) => {
                    return Err(FacilityError::BodyTooLarge {
                        uri: url.to_string(),
                        limit,
                    })
                }
                Err(e) if reused && attempt == 0 && e.is_closed() => continue,
                Err(e) => {
                    return Err(FacilityError::Http {
                        uri: url.to_string(),
                        detail: e.to_string(),
                    })
                }
            }
        }
        Err(FacilityError::Http {
            uri: url.to_string(),
            detail: "the connection closed twice before answering".into(),
        })
    }

    async fn connect(&self, url: &Url) -> Result<SendRequest<Full<Bytes>>, FacilityError> {
        let after_ms = self.opts.connect_timeout.as_millis() as u64;
        let timed_out = |what| FacilityError::Timeout {
            uri: url.to_string(),
            what,
            after_ms,
        };
        let deadline = tokio::time::Instant::now() + self.opts.connect_timeout;
        let tcp =
            tokio::time::timeout_at(deadline, TcpStream::connect((url.host.as_str(), url.port)))
                .await
                .map_err(|_| timed_out("connecting"))?
                .map_err(|e| FacilityError::Connect {
                    uri: url.to_string(),
                    detail: e.to_string(),
                })?;
        let _ = tcp.set_nodelay(true);
        match url.scheme {
            Scheme::Http => handshake(url, TokioIo::new(tcp)).await,
            Scheme::Https => {
                let config = self.tls.clone().ok_or_else(|| FacilityError::NeedsTrust {
                    uri: url.to_string(),
                })?;
                let name =
                    ServerName::try_from(url.host.clone()).map_err(|e| FacilityError::Tls {
                        uri: url.to_string(),
                        detail: format!("host name: {e}"),
                    })?;
                let tls = tokio::time::timeout_at(
                    deadline,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| timed_out("in the TLS handshake"))?
                .map_err(|e| FacilityError::Tls {
                    uri: url.to_string(),
                    detail: e.to_string(),
                })?;
                handshake(url, TokioIo::new(EofAsClose(tls))).await
            }
        }
    }
}

impl Drop for RedfishClient {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(session = %session.url, "Redfish session left open (no runtime to delete it); it ends when the service times it out");
            return;
        };
        let mut detached = RedfishClient {
            base: self.base.clone(),
            opts: ClientOptions {
                auth: Auth::None,
                ..self.opts.clone()
            },
            tls: self.tls.clone(),
            session: Some(session),
            conns: HashMap::new(),
        };
        handle.spawn(async move { detached.close().await });
    }
}

/// An I/O stream whose read end reports a peer that closed without TLS close_notify
/// (`UnexpectedEof` from rustls) as a plain end of stream.
struct EofAsClose<T>(T);

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for EofAsClose<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for EofAsClose<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A failure while exchanging a request; `closed` when the connection was gone (a kept-alive
/// connection the server had closed: worth one retry on a fresh connection).
struct BodyError {
    message: String,
    closed: bool,
}

impl BodyError {
    fn is_closed(&self) -> bool {
        self.closed
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<hyper::Error> for BodyError {
    fn from(e: hyper::Error) -> Self {
        let closed = e.is_canceled() || e.is_closed() || e.is_incomplete_message();
        BodyError {
            message: e.to_string(),
            closed,
        }
    }
}

async fn handshake<T>(url: &Url, io: TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, FacilityError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FacilityError::Http {
            uri: url.to_string(),
            detail: e.to_string(),
        })?;
    let shown = url.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(url = %shown, "connection ended: {e}");
        }
    });
    Ok(sender)
}

fn build_request(
    method: &Method,
    url: &Url,
    body: Option<&[u8]>,
    auth: Option<&(&'static str, Secret)>,
) -> Result<Request<Full<Bytes>>, FacilityError> {
    let bad = |detail: String| FacilityError::Http {
        uri: url.to_string(),
        detail,
    };
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(url.path.as_str())
        .header(hyper::header::HOST, url.host_header())
        .header(hyper::header::ACCEPT, "application/json")
        .header("OData-Version", "4.0")
        .header(
            hyper::header::USER_AGENT,
            concat!("hallmark/", env!("CARGO_PKG_VERSION")),
        );
    if let Some((name, secret)) = auth {
        let mut value = HeaderValue::from_str(secret.expose())
            .map_err(|_| bad("a credential that cannot be sent in a header".into()))?;
        value.set_sensitive(true);
        builder = builder.header(*name, value);
    }
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .map_err(|e| bad(e.to_string()))
}

/// The message of a Redfish error body (`error.message`, else the first extended message),
/// cut to 300 characters; empty when there is none.
fn error_message(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let e = &v["error"];
    let text = e["@Message.ExtendedInfo"][0]["Message"]
        .as_str()
        .or_else(|| e["message"].as_str())
        .unwrap_or("");
    text.chars().take(300).collect()
}
