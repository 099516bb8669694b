//! What `--results` names: a directory (a SQLite store, one file per directory) or a PostgreSQL
//! database, `postgres://[USER@][HOST][:PORT][/DB][?PARAM=VALUE&…]` (or `postgresql://…`).
//!
//! What the URL leaves out is completed as libpq does, from `PGHOST`, `PGPORT`, `PGUSER`,
//! `PGDATABASE`, `PGCONNECT_TIMEOUT`, `PGSSLMODE` and `PGAPPNAME`, then defaults: host `localhost`
//! (libpq's default is its Unix socket; name a socket directory with `host=/DIR` or `PGHOST=/DIR`),
//! port 5432, the login name (`USER`) as user, the user as database. The password comes from
//! `PGPASSWORD`, else from the password file (`PGPASSFILE`, else `~/.pgpass`; `host:port:db:user:password`
//! lines, `*` matching anything, `\:` and `\\` escapes, ignored with a warning when group or others
//! may read it). A password in the URL is refused: a command line is visible to every user in `ps`.
//!
//! [`PgTarget`]'s `Display` is the URL without any password; every error and log uses it.
//! TLS is not built in: `sslmode` `disable`, `allow` and `prefer` connect without it, `require` and
//! stricter are refused with what to do. `connect_timeout` bounds connecting (default 10 s; `0`, which
//! libpq reads as "forever", means the default here: every wait of hallmark is bounded).
//!
//! The environment is read through a closure, so tests pass a map and never touch the process's.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long connecting may take unless `connect_timeout` / `PGCONNECT_TIMEOUT` says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the results are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// A results directory holding a SQLite store.
    Dir(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgTarget),
}

/// A PostgreSQL database to connect to, fully resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PgTarget {
    /// A host name or address, or a Unix socket directory (starting with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    /// From `PGPASSWORD` or the password file; never shown.
    pub password: Option<Password>,
    pub connect_timeout: Duration,
    pub application_name: Option<String>,
}

/// A password: its `Debug` shows no characters of it.
#[derive(Clone, PartialEq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What is wrong with a `--results` value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LocationError {
    #[error(
        "{url}: a password in the URL is visible to every user of this machine (ps, shell history) \
         and is refused; put it in PGPASSWORD or in a password file (PGPASSFILE, or ~/.pgpass with \
         mode 0600: a line HOST:PORT:DB:USER:PASSWORD) and drop it from the URL"
    )]
    PasswordInUrl { url: String },
    #[error("{url}: {why}; expected postgres://USER@HOST[:PORT]/DB or a directory")]
    BadUrl { url: String, why: String },
    #[error("{var}={value}: {why}")]
    BadEnv {
        var: &'static str,
        value: String,
        why: String,
    },
    #[error("{url}: no user name: put one in the URL (postgres://USER@HOST/DB) or set PGUSER")]
    NoUser { url: String },
    #[error(
        "{target}: sslmode={mode} asks for TLS, which this hallmark does not support; reach the server \
         over a trusted network or an SSH tunnel and use sslmode=disable (or prefer)"
    )]
    TlsUnsupported { target: String, mode: String },
}

impl Location {
    /// Reads a `--results` value with the process's environment.
    pub fn parse(arg: &str) -> Result<Location, LocationError> {
        Location::parse_with(arg, &|k| std::env::var(k).ok())
    }

    /// Reads a `--results` value, the environment read through `env`.
    pub fn parse_with(
        arg: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Location, LocationError> {
        let lower = arg.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return PgTarget::parse_url(arg, env).map(Location::Postgres);
        }
        if let Some((scheme, _)) = arg.split_once("://") {
            if !scheme.contains('/') {
                return Err(LocationError::BadUrl {
                    url: redact(arg),
                    why: format!("unsupported scheme {scheme}"),
                });
            }
        }
        Ok(Location::Dir(PathBuf::from(arg)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Postgres(t) => t.fmt(f),
        }
    }
}

impl fmt::Display for PgTarget {
    /// `postgres://USER@HOST:PORT/DB`, a socket directory as `?host=`; never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.starts_with('/') {
            write!(
                f,
                "postgres://{}@:{}/{}?host={}",
                self.user, self.port, self.dbname, self.host
            )
        } else if self.host.contains(':') {
            write!(
                f,
                "postgres://{}@[{}]:{}/{}",
                self.user, self.host, self.port, self.dbname
            )
        } else {
            write!(
                f,
                "postgres://{}@{}:{}/{}",
                self.user, self.host, self.port, self.dbname
            )
        }
    }
}

/// The URL's parts before the environment and defaults fill the gaps.
#[derive(Default)]
struct UrlParts {
    user: Option<String>,
    host: Option<String>,
    port: Option<String>,
    dbname: Option<String>,
    sslmode: Option<String>,
    connect_timeout: Option<String>,
    application_name: Option<String>,
}

impl PgTarget {
    fn parse_url(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PgTarget, LocationError> {
        let shown = redact(url);
        let parts = split_url(url).map_err(|why| {
            if why == PASSWORD_SENTINEL {
                LocationError::PasswordInUrl { url: shown.clone() }
            } else {
                LocationError::BadUrl {
                    url: shown.clone(),
                    why,
                }
            }
        })?;
        let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let host = nonempty(parts.host)
            .or_else(|| nonempty(env("PGHOST")))
            .unwrap_or_else(|| "localhost".to_owned());
        if host.contains(',') {
            return Err(LocationError::BadUrl {
                url: shown,
                why: "several hosts are not supported; name one".into(),
            });
        }
        let port = match nonempty(parts.port) {
            Some(p) => p.parse::<u16>().map_err(|_| LocationError::BadUrl {
                url: shown.clone(),
                why: format!("port {p} is not a number from 1 to 65535"),
            })?,
            None => match nonempty(env("PGPORT")) {
                Some(p) => p.parse::<u16>().map_err(|_| LocationError::BadEnv {
                    var: "PGPORT",
                    value: p.clone(),
                    why: "not a port number from 1 to 65535".into(),
                })?,
                None => 5432,
            },
        };
        let user = nonempty(parts.user)
            .or_else(|| nonempty(env("PGUSER")))
            .or_else(|| nonempty(env("USER")))
            .ok_or_else(|| LocationError::NoUser { url: shown.clone() })?;
        let dbname = nonempty(parts.dbname)
            .or_else(|| nonempty(env("PGDATABASE")))
            .unwrap_or_else(|| user.clone());
        let connect_timeout = match nonempty(parts.connect_timeout) {
            Some(v) => timeout_secs(&v).map_err(|why| LocationError::BadUrl {
                url: shown.clone(),
                why,
            })?,
            None => match nonempty(env("PGCONNECT_TIMEOUT")) {
                Some(v) => timeout_secs(&v).map_err(|why| LocationError::BadEnv {
                    var: "PGCONNECT_TIMEOUT",
                    value: v.clone(),
                    why,
                })?,
                None => DEFAULT_CONNECT_TIMEOUT,
            },
        };
        let mut target = PgTarget {
            host,
            port,
            user,
            dbname,
            password: None,
            connect_timeout,
            application_name: nonempty(parts.application_name)
                .or_else(|| nonempty(env("PGAPPNAME"))),
        };
        let sslmode = nonempty(parts.sslmode)
            .or_else(|| nonempty(env("PGSSLMODE")))
            .unwrap_or_else(|| "prefer".into());
        match sslmode.as_str() {
            "disable" | "allow" | "prefer" => {}
            "require" | "verify-ca" | "verify-full" => {
                return Err(LocationError::TlsUnsupported {
                    target: target.to_string(),
                    mode: sslmode,
                })
            }
            other => {
                return Err(LocationError::BadUrl {
                    url: shown,
                    why: format!("sslmode {other} is none of disable, allow, prefer, require, verify-ca, verify-full"),
                })
            }
        }
        target.password = match nonempty(env("PGPASSWORD")) {
            Some(p) => Some(Password(p)),
            None => passfile_path(env).and_then(|path| read_passfile(&path, &target)),
        };
        Ok(target)
    }
}

/// Seconds, as libpq reads them: 0 (libpq: forever) is the default here, 1 is raised to 2.
fn timeout_secs(v: &str) -> Result<Duration, String> {
    match v.trim().parse::<u64>() {
        Ok(0) => Ok(DEFAULT_CONNECT_TIMEOUT),
        Ok(s) => Ok(Duration::from_secs(s.max(2))),
        Err(_) => Err(format!(
            "connect_timeout {v} is not a whole number of seconds"
        )),
    }
}

/// Splits `postgres://[userinfo@][host][:port][/db][?query]` into its decoded parts.
fn split_url(url: &str) -> Result<UrlParts, String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (rest, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let mut parts = UrlParts::default();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            if userinfo.contains(':') {
                return Err(PASSWORD_SENTINEL.into());
            }
            parts.user = Some(decode(userinfo)?);
            hostport
        }
        None => authority,
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address without its closing ]")?;
        parts.host = Some(addr.to_owned());
        if let Some(port) = after.strip_prefix(':') {
            parts.port = Some(port.to_owned());
        } else if !after.is_empty() {
            return Err(format!("unexpected {after} after the IPv6 address"));
        }
    } else {
        let (host, port) = hostport
            .split_once(':')
            .map_or((hostport, None), |(h, p)| (h, Some(p)));
        parts.host = Some(decode(host)?);
        parts.port = port.map(str::to_owned);
    }
    parts.dbname = path.map(decode).transpose()?;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("parameter {pair} has no value"))?;
        let value = Some(decode(value)?);
        match key {
            "password" => return Err(PASSWORD_SENTINEL.into()),
            "host" => parts.host = value,
            "port" => parts.port = value,
            "user" => parts.user = value,
            "dbname" => parts.dbname = value,
            "sslmode" => parts.sslmode = value,
            "connect_timeout" => parts.connect_timeout = value,
            "application_name" => parts.application_name = value,
            other => {
                return Err(format!(
                    "unknown parameter {other} (known: host, port, user, dbname, sslmode, \
                     connect_timeout, application_name)"
                ))
            }
        }
    }
    Ok(parts)
}

/// What [`split_url`] returns for a password, turned into [`LocationError::PasswordInUrl`].
const PASSWORD_SENTINEL: &str = "\0password";

/// `%XX` decoding of a URL part.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("a cut %-escape in {s}"))?;
            out.push(
                u8::from_str_radix(hex, 16).map_err(|_| format!("a bad %-escape %{hex} in {s}"))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s} decodes to bytes that are not UTF-8"))
}

/// The URL with anything that may be a password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, query) = rest
        .split_once('?')
        .map_or((rest, None), |(r, q)| (r, Some(q)));
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|p| {
                if p.starts_with("password=") {
                    "password=***"
                } else {
                    p
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

fn passfile_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match env("PGPASSFILE").filter(|s| !s.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => env("HOME")
            .filter(|s| !s.is_empty())
            .map(|h| Path::new(&h).join(".pgpass")),
    }
}

/// The password file's entry for `target`, as libpq reads it: a missing file is no password; a file
/// group or others may read is ignored with a warning.
fn read_passfile(path: &Path, target: &PgTarget) -> Option<Password> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!(
            "password file {} is not a plain file; ignored",
            path.display()
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; ignored (chmod 0600 it)",
            path.display()
        );
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("password file {} unreadable: {e}; ignored", path.display());
            return None;
        }
    };
    passfile_lookup(&text, target).map(Password)
}

/// The password of the first line of a password file matching `target`.
pub fn passfile_lookup(text: &str, target: &PgTarget) -> Option<String> {
    // libpq matches a Unix-socket connection against `localhost`.
    let host = if target.host.starts_with('/') {
        "localhost"
    } else {
        target.host.as_str()
    };
    let port = target.port.to_string();
    let wanted = [
        host,
        port.as_str(),
        target.dbname.as_str(),
        target.user.as_str(),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = passfile_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = wanted
                .iter()
                .zip(&fields)
                .all(|(want, field)| field == "*" || field == want);
            // A password containing `:` keeps the rest of the line.
            matches.then(|| fields[4..].join(":"))
        })
}

/// A password file line split at unescaped `:`, with `\:` and `\\` unescaped.
fn passfile_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
