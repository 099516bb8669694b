//! `facility.toml`: which facility sources a collector polls, for which part of the hall, how often
//! and how it authenticates (docs/FACILITY.md). [`FacilityConfig::load`] reads and checks the whole
//! file; every error names the file, the line and column and how to fix it, unknown keys and
//! duplicate names included. Secrets (Redfish passwords, SNMP communities and pass phrases) come
//! from a file or an environment variable the file names, never from the file itself, and are
//! read here into [`Secret`]s that never print.
//!
//! `[[redfish]]` sources become [`RedfishSourceConfig`] (the collector polls them);
//! `[[snmp]]` sources become plain [`SnmpSourceConfig`] data for an SNMP client.

mod raw;
mod snmp;

use crate::auth::{Auth, Credentials, Secret};
use crate::tls::Trust;
use crate::url::{Scheme, Url};
use crate::ClientOptions;
use hallmark_protocol::facility::{SourceKind, Subject};
use hallmark_protocol::textpos::{explain_toml, key_start, line_col};
use raw::{Number, RawFile, RawRedfish, RawSettings};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Poll period bounds, seconds.
pub const MIN_INTERVAL_S: f64 = 0.25;
pub const MAX_INTERVAL_S: f64 = 3600.0;
/// Request timeout bounds, seconds.
pub const MAX_TIMEOUT_S: f64 = 60.0;
/// Defaults of the keys of `[defaults]`.
pub const DEFAULT_INTERVAL_S: f64 = 1.0;
pub const DEFAULT_TIMEOUT_S: f64 = 2.0;
pub const DEFAULT_MAX_READING_AGE_S: f64 = 300.0;

/// Why a facility file was refused. Displays as `file:line:column: message` (or `file: message`
/// when the file cannot be read at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {detail}")]
    Read { file: String, detail: String },
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A checked facility file.
#[derive(Debug, Clone)]
pub struct FacilityConfig {
    /// In the file's order.
    pub sources: Vec<SourceConfig>,
}

/// One source.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Redfish(RedfishSourceConfig),
    Snmp(SnmpSourceConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Redfish(r) => &r.name,
            SourceConfig::Snmp(s) => &s.name,
        }
    }

    pub fn subject(&self) -> &Subject {
        match self {
            SourceConfig::Redfish(r) => &r.subject,
            SourceConfig::Snmp(s) => &s.subject,
        }
    }

    pub fn interval(&self) -> Duration {
        match self {
            SourceConfig::Redfish(r) => r.interval,
            SourceConfig::Snmp(s) => s.interval,
        }
    }
}

/// A Redfish rack PDU, CDU or chassis.
#[derive(Debug, Clone)]
pub struct RedfishSourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub subject: Subject,
    /// The service's origin, `http(s)://host:port`.
    pub origin: String,
    /// The resource's path (`/redfish/v1/PowerEquipment/RackPDUs/r01`).
    pub resource: String,
    pub interval: Duration,
    /// One request's bound (connect, then answer).
    pub timeout: Duration,
    /// A Sensor `ReadingTime` further than this from now makes its reading stale; `None`: no check.
    pub max_reading_age_s: Option<f64>,
    pub trust: Option<Trust>,
    pub auth: Auth,
}

impl RedfishSourceConfig {
    /// The client options of this source (sources on one origin have the same trust and auth).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            connect_timeout: self.timeout,
            read_timeout: self.timeout,
            trust: self.trust.clone(),
            auth: self.auth.clone(),
            ..ClientOptions::default()
        }
    }

    /// The resource's full URL.
    pub fn url(&self) -> String {
        format!("{}{}", self.origin, self.resource)
    }
}

/// Which SNMP profile (OIDs and scales) a PDU is read with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnmpProfile {
    /// A profile shipped with hallmark, by name (`raritan-pdu2`).
    Builtin(String),
    /// A profile data file (relative paths resolved against the facility file's directory).
    File(PathBuf),
}

/// SNMPv3 security: a user with optional authentication and privacy.
#[derive(Debug, Clone)]
pub struct SnmpV3 {
    pub user: String,
    /// The protocol as written (`SHA`, `SHA-256`, `MD5`, …) and its pass phrase.
    pub auth: Option<(String, Secret)>,
    /// The protocol as written (`AES`, `AES-256`, `DES`, …) and its pass phrase; needs `auth`.
    pub privacy: Option<(String, Secret)>,
}

/// SNMP version and credentials.
#[derive(Debug, Clone)]
pub enum SnmpSecurity {
    V2c { community: Secret },
    V3(SnmpV3),
}

/// An SNMP rack PDU, as written; the SNMP client reads it.
#[derive(Debug, Clone)]
pub struct SnmpSourceConfig {
    pub name: String,
    pub subject: Subject,
    /// `host:port` (port 161 when not given).
    pub address: String,
    pub profile: SnmpProfile,
    pub security: SnmpSecurity,
    pub interval: Duration,
    pub timeout: Duration,
}

/// The text being read: what turns a byte span into a [`ConfigError`].
pub(crate) struct Cx<'a> {
    text: &'a str,
    file: &'a str,
    dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Cx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::At {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at the key of the value at `span`.
    fn at_key(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let start = key_start(self.text, span.start);
        self.err(start..span.end, message)
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// The first line of the file named by `file`, or the variable named by `env` (exactly one).
    fn secret(
        &self,
        env: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        what: &str,
        keys: (&str, &str),
    ) -> Result<Option<Secret>, ConfigError> {
        match (env, file) {
            (Some(_), Some(f)) => Err(self.at_key(
                f.span(),
                format!(
                    "give {what} either by `{}` or by `{}`, not both",
                    keys.0, keys.1
                ),
            )),
            (Some(v), None) => {
                let name = v.get_ref();
                match (self.env)(name).filter(|s| !s.is_empty()) {
                    Some(s) => Ok(Some(Secret::new(s))),
                    None => Err(self.at_key(
                        v.span(),
                        format!("the environment variable {name} (for {what}) is not set or empty; set it before starting, or use `{}`", keys.1),
                    )),
                }
            }
            (None, Some(f)) => {
                let path = self.path(f.get_ref());
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                    self.at_key(
                        f.span(),
                        format!("cannot read {} ({what}): {e}; give a readable file holding it on its first line", path.display()),
                    )
                })?);
                let first = text.lines().next().unwrap_or("");
                if first.is_empty() {
                    return Err(self.at_key(
                        f.span(),
                        format!(
                            "the first line of {} ({what}) is empty; put it on the first line",
                            path.display()
                        ),
                    ));
                }
                warn_if_readable_by_others(&path);
                Ok(Some(Secret::new(first.to_string())))
            }
            (None, None) => Ok(None),
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %file.display(), "a secret file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &Path) {}

impl FacilityConfig {
    /// Reads and checks `path`; secrets named by `*_env` keys are read through `env`
    /// (`std::env::var` in the binary, a map in tests).
    pub fn load(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FacilityConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            detail: format!("cannot read the facility file: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        FacilityConfig::parse(&text, &path.display().to_string(), dir, env)
    }

    /// Checks `text`, named `file` in messages; relative paths in it are relative to `dir`.
    pub fn parse(
        text: &str,
        file: &str,
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FacilityConfig, ConfigError> {
        let cx = Cx {
            text,
            file,
            dir,
            env,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let m = explain_toml(text, span.clone(), e.message().trim_end(), "facility file");
            let mut message = m.message.replace("expected one of", "allowed keys are");
            if message.starts_with("unknown key") && m.line.starts_with("[[") {
                message.push_str(" (docs/FACILITY.md lists the keys of each table)");
            }
            cx.err(span, message)
        })?;
        let defaults = raw.defaults.unwrap_or_default();
        let mut sources = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut origins: HashMap<String, (ClientKey, usize)> = HashMap::new();
        for r in &raw.redfish {
            check_name(&cx, &r.name, &mut names)?;
            sources.push(SourceConfig::Redfish(redfish(
                &cx,
                r,
                &defaults,
                &mut origins,
            )?));
        }
        for s in &raw.snmp {
            check_name(&cx, &s.name, &mut names)?;
            sources.push(SourceConfig::Snmp(snmp::snmp(&cx, s, &defaults)?));
        }
        if sources.is_empty() {
            return Err(cx.err(
                0..0,
                "the facility file names no source; add a [[redfish]] or [[snmp]] table (docs/FACILITY.md)",
            ));
        }
        Ok(FacilityConfig { sources })
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_name(
    cx: &Cx,
    name: &Spanned<String>,
    names: &mut HashMap<String, usize>,
) -> Result<(), ConfigError> {
    let n = name.get_ref();
    if !valid_name(n) {
        return Err(cx.at_key(
            name.span(),
            format!("source name {n:?} must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'"),
        ));
    }
    let line = line_col(cx.text, name.span().start).0;
    if let Some(first) = names.insert(n.clone(), line) {
        return Err(cx.at_key(
            name.span(),
            format!(
                "source name {n:?} is already used on line {first}; give each source its own name"
            ),
        ));
    }
    Ok(())
}

/// Exactly one of `hall = true`, `row`, `rack`, `node`.
fn subject(
    cx: &Cx,
    name: &Spanned<String>,
    hall: &Option<Spanned<bool>>,
    row: &Option<Spanned<String>>,
    rack: &Option<Spanned<String>>,
    node: &Option<Spanned<String>>,
) -> Result<Subject, ConfigError> {
    let mut found: Vec<(Subject, Range<usize>)> = Vec::new();
    if let Some(h) = hall {
        if !*h.get_ref() {
            return Err(cx.at_key(
                h.span(),
                "`hall = false` names no subject; write `hall = true`, or give row, rack or node instead",
            ));
        }
        found.push((Subject::Hall, h.span()));
    }
    for (v, make) in [
        (row, Subject::Row as fn(String) -> Subject),
        (rack, Subject::Rack),
        (node, Subject::Node),
    ] {
        if let Some(v) = v {
            let s = make(v.get_ref().clone());
            if !valid_name(v.get_ref()) {
                return Err(cx.at_key(
                    v.span(),
                    format!(
                        "{} name {:?} must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
                        s.scope(),
                        v.get_ref()
                    ),
                ));
            }
            found.push((s, v.span()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0).0),
        0 => Err(cx.at_key(
            name.span(),
            format!("source {:?} names no subject; add exactly one of `hall = true`, `row = \"…\"`, `rack = \"…\"`, `node = \"…\"`", name.get_ref()),
        )),
        _ => Err(cx.at_key(
            found[1].1.clone(),
            format!("source {:?} names more than one subject ({} and {}); keep exactly one of hall, row, rack, node", name.get_ref(), found[0].0.scope(), found[1].0.scope()),
        )),
    }
}

fn seconds(
    cx: &Cx,
    v: Option<&Spanned<Number>>,
    default: f64,
    key: &str,
    (lo, hi): (f64, f64),
) -> Result<Duration, ConfigError> {
    let Some(v) = v else {
        return Ok(Duration::from_secs_f64(default));
    };
    let s = v.get_ref().0;
    if !(s.is_finite() && s >= lo && s <= hi) {
        return Err(cx.at_key(
            v.span(),
            format!("{key} = {s} is out of range; give seconds from {lo} to {hi}"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// What makes two sources on one origin need the same client: trust and credentials as written.
#[derive(Debug, Clone, PartialEq)]
struct ClientKey {
    ca: Option<PathBuf>,
    insecure: bool,
    username: Option<String>,
    password: Option<String>,
    session: bool,
}

fn redfish(
    cx: &Cx,
    r: &RawRedfish,
    defaults: &RawSettings,
    origins: &mut HashMap<String, (ClientKey, usize)>,
) -> Result<RedfishSourceConfig, ConfigError> {
    let s = r.settings().over(defaults);
    let subject = subject(cx, &r.name, &r.hall, &r.row, &r.rack, &r.node)?;
    let url = Url::parse(r.url.get_ref()).map_err(|e| cx.at_key(r.url.span(), e.to_string()))?;
    if url.path != "/" {
        return Err(cx.at_key(
            r.url.span(),
            format!("url {:?} must be the service's origin only (scheme, host, port); put the path into `resource`", r.url.get_ref()),
        ));
    }
    let origin = url.with_path("").to_string();
    let origin = origin.trim_end_matches('/').to_string();
    let (resource, kind) = resource(cx, &r.resource)?;
    let interval = seconds(
        cx,
        s.interval_s.as_ref(),
        DEFAULT_INTERVAL_S,
        "interval_s",
        (MIN_INTERVAL_S, MAX_INTERVAL_S),
    )?;
    let timeout = seconds(
        cx,
        s.timeout_s.as_ref(),
        DEFAULT_TIMEOUT_S,
        "timeout_s",
        (0.001, MAX_TIMEOUT_S),
    )?;
    let max_age = match &s.max_reading_age_s {
        None => Some(DEFAULT_MAX_READING_AGE_S),
        Some(v) if v.get_ref().0 == 0.0 => None,
        Some(v) => {
            Some(seconds(cx, Some(v), 0.0, "max_reading_age_s", (1.0, 86_400.0))?.as_secs_f64())
        }
    };
    let (trust, insecure) = trust(cx, &s)?;
    if url.scheme == Scheme::Https && trust.is_none() {
        return Err(cx.at_key(
            r.url.span(),
            format!("{} is HTTPS and no way to trust its certificate is given; add `ca = \"FILE\"` (the PEM of the CA that signed it) or `insecure = true`, here or in [defaults]", r.url.get_ref()),
        ));
    }
    let session = s.session.as_ref().is_some_and(|v| *v.get_ref());
    let auth = auth(cx, &s, &r.name)?;
    let key = ClientKey {
        ca: s.ca.as_ref().map(|c| cx.path(c.get_ref())),
        insecure,
        username: s.username.as_ref().map(|u| u.get_ref().clone()),
        password: s
            .password_env
            .as_ref()
            .or(s.password_file.as_ref())
            .map(|p| p.get_ref().clone()),
        session,
    };
    let line = line_col(cx.text, r.name.span().start).0;
    match origins.get(&origin) {
        Some((k, first)) if *k != key => {
            return Err(cx.at_key(
                r.url.span(),
                format!("{origin} is also polled by the source on line {first} with other TLS or credential settings; sources of one service share one client, so give them the same ca, insecure, username, password and session"),
            ))
        }
        Some(_) => {}
        None => {
            origins.insert(origin.clone(), (key, line));
        }
    }
    Ok(RedfishSourceConfig {
        name: r.name.get_ref().clone(),
        kind,
        subject,
        origin,
        resource,
        interval,
        timeout,
        max_reading_age_s: max_age,
        trust,
        auth,
    })
}

/// How the source's HTTPS certificate is trusted (the CA file checked now), and whether insecure.
fn trust(cx: &Cx, s: &RawSettings) -> Result<(Option<Trust>, bool), ConfigError> {
    let insecure = s.insecure.as_ref().is_some_and(|v| *v.get_ref());
    let trust = match (&s.ca, insecure) {
        (Some(ca), true) => {
            return Err(cx.at_key(
                ca.span(),
                "`ca` and `insecure = true` together: give the CA file to check the service's certificate, or insecure to accept any, not both",
            ))
        }
        (Some(ca), false) => {
            let trust = Trust::CaFile(cx.path(ca.get_ref()));
            crate::tls::client_config(&trust).map_err(|e| cx.at_key(ca.span(), e.to_string()))?;
            Some(trust)
        }
        (None, true) => Some(Trust::Insecure),
        (None, false) => None,
    };
    Ok((trust, insecure))
}

/// The source's credentials: none, basic, or a session.
fn auth(cx: &Cx, s: &RawSettings, name: &Spanned<String>) -> Result<Auth, ConfigError> {
    let password = cx.secret(
        &s.password_env,
        &s.password_file,
        "the Redfish password",
        ("password_env", "password_file"),
    )?;
    let session = s.session.as_ref().is_some_and(|v| *v.get_ref());
    let auth = match (&s.username, password) {
        (None, None) if session => {
            let at = s.session.as_ref().map(|v| v.span()).unwrap_or(name.span());
            return Err(cx.at_key(at, "`session = true` needs credentials: add `username` and `password_env` or `password_file`"));
        }
        (None, None) => Auth::None,
        (Some(u), None) => {
            return Err(cx.at_key(u.span(), "`username` needs a password: add `password_env = \"VARIABLE\"` or `password_file = \"FILE\"`"))
        }
        (None, Some(_)) => {
            let at = s.password_env.as_ref().or(s.password_file.as_ref()).map(|v| v.span()).unwrap_or(name.span());
            return Err(cx.at_key(at, "a password without `username`; add `username = \"…\"`"));
        }
        (Some(u), Some(password)) => {
            let user = u.get_ref();
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                return Err(cx.at_key(u.span(), "the user name is empty or holds ':' or a control character"));
            }
            let c = Credentials { user: user.clone(), password };
            if session { Auth::Session(c) } else { Auth::Basic(c) }
        }
    };
    Ok(auth)
}

/// The resource path and the kind it names: `…/RackPDUs/{id}`, `…/CDUs/{id}`, `…/Chassis/{id}`.
fn resource(cx: &Cx, r: &Spanned<String>) -> Result<(String, SourceKind), ConfigError> {
    let path = r.get_ref().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let kind = match (path.starts_with("/redfish/v1/"), segments.len()) {
        (true, n) if n >= 5 && !segments[n - 1].is_empty() => match segments[n - 2] {
            "RackPDUs" => Some(SourceKind::Pdu),
            "CDUs" => Some(SourceKind::Cdu),
            "Chassis" => Some(SourceKind::Chassis),
            _ => None,
        },
        _ => None,
    };
    let bad = path.contains(['?', '#', ' ']) || path.split('/').any(|s| s == "..");
    match kind {
        Some(k) if !bad => Ok((path.to_string(), k)),
        _ => Err(cx.at_key(
            r.span(),
            format!("resource {:?} is no rack PDU, CDU or chassis; give the resource's path: /redfish/v1/PowerEquipment/RackPDUs/ID, /redfish/v1/ThermalEquipment/CDUs/ID or /redfish/v1/Chassis/ID", r.get_ref()),
        )),
    }
}
