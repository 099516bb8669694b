//! `[[snmp]]` sources of `facility.toml`: checked into plain [`SnmpSourceConfig`] data (address,
//! profile, version and credentials) for the SNMP client.

use super::raw::{RawSettings, RawSnmp};
use super::{
    seconds, subject, valid_name, ConfigError, Cx, SnmpProfile, SnmpSecurity, SnmpSourceConfig,
    SnmpV3,
};
use super::{DEFAULT_INTERVAL_S, DEFAULT_TIMEOUT_S, MAX_INTERVAL_S, MAX_TIMEOUT_S, MIN_INTERVAL_S};
use crate::auth::Secret;
use std::ops::Range;
use toml::Spanned;

const AUTH_PROTOCOLS: [&str; 6] = ["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"];
const PRIV_PROTOCOLS: [&str; 4] = ["DES", "AES", "AES-192", "AES-256"];

pub(super) fn snmp(
    cx: &Cx,
    s: &RawSnmp,
    defaults: &RawSettings,
) -> Result<SnmpSourceConfig, ConfigError> {
    let subject = subject(cx, &s.name, &s.hall, &s.row, &s.rack, &s.node)?;
    let interval_v = s.interval_s.as_ref().or(defaults.interval_s.as_ref());
    let timeout_v = s.timeout_s.as_ref().or(defaults.timeout_s.as_ref());
    let interval = seconds(
        cx,
        interval_v,
        DEFAULT_INTERVAL_S,
        "interval_s",
        (MIN_INTERVAL_S, MAX_INTERVAL_S),
    )?;
    let timeout = seconds(
        cx,
        timeout_v,
        DEFAULT_TIMEOUT_S,
        "timeout_s",
        (0.001, MAX_TIMEOUT_S),
    )?;
    let address = s.address.get_ref().trim();
    let port_ok = match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        Some(_) => true, // a bare IPv6 address
        None => !address.is_empty(),
    };
    if !port_ok || address.contains(char::is_whitespace) {
        return Err(cx.at_key(
            s.address.span(),
            format!(
                "address {:?} is no HOST[:PORT]; e.g. \"10.0.0.6:161\"",
                s.address.get_ref()
            ),
        ));
    }
    let profile = match (&s.profile, &s.profile_file) {
        (Some(p), None) if valid_name(p.get_ref()) => SnmpProfile::Builtin(p.get_ref().clone()),
        (Some(p), None) => return Err(cx.at_key(p.span(), format!("profile {:?} is no profile name; give a built-in profile's name or `profile_file = \"FILE\"`", p.get_ref()))),
        (None, Some(f)) => SnmpProfile::File(cx.path(f.get_ref())),
        (Some(_), Some(f)) => return Err(cx.at_key(f.span(), "give either `profile` or `profile_file`, not both")),
        (None, None) => return Err(cx.at_key(s.name.span(), format!("SNMP source {:?} has no profile; add `profile = \"raritan-pdu2\"` (built in) or `profile_file = \"FILE\"`", s.name.get_ref()))),
    };
    let security = security(cx, s)?;
    Ok(SnmpSourceConfig {
        name: s.name.get_ref().clone(),
        subject,
        address: address.to_string(),
        profile,
        security,
        interval,
        timeout,
    })
}

/// The version and its credentials: a v2c community, or a v3 user with auth and privacy.
fn security(cx: &Cx, s: &RawSnmp) -> Result<SnmpSecurity, ConfigError> {
    let v3_keys = [
        s.user.as_ref().map(|v| v.span()),
        s.auth_protocol.as_ref().map(|v| v.span()),
        s.auth_password_env.as_ref().map(|v| v.span()),
        s.auth_password_file.as_ref().map(|v| v.span()),
        s.priv_protocol.as_ref().map(|v| v.span()),
        s.priv_password_env.as_ref().map(|v| v.span()),
        s.priv_password_file.as_ref().map(|v| v.span()),
    ];
    let security = match s.version.get_ref().as_str() {
        "2c" => {
            if let Some(span) = v3_keys.into_iter().flatten().next() {
                return Err(cx.at_key(span, "SNMP v2c takes `community_env` or `community_file` only; the user and auth/priv keys are for version = \"3\""));
            }
            let community = cx.secret(
                &s.community_env,
                &s.community_file,
                "the SNMP community",
                ("community_env", "community_file"),
            )?;
            let Some(community) = community else {
                return Err(cx.at_key(s.version.span(), "SNMP v2c needs a community: add `community_env = \"VARIABLE\"` or `community_file = \"FILE\"`"));
            };
            SnmpSecurity::V2c { community }
        }
        "3" => {
            if let Some(c) = s.community_env.as_ref().or(s.community_file.as_ref()) {
                return Err(cx.at_key(c.span(), "SNMPv3 has no community; give `user` with `auth_protocol` and `auth_password_env`/`auth_password_file` (and priv_* for privacy)"));
            }
            let Some(user) = &s.user else {
                return Err(cx.at_key(s.version.span(), "SNMPv3 needs `user = \"…\"`"));
            };
            let auth = protocol(
                cx,
                &s.auth_protocol,
                &AUTH_PROTOCOLS,
                cx.secret(
                    &s.auth_password_env,
                    &s.auth_password_file,
                    "the SNMPv3 authentication pass phrase",
                    ("auth_password_env", "auth_password_file"),
                )?,
                s.auth_password_env
                    .as_ref()
                    .or(s.auth_password_file.as_ref())
                    .map(|v| v.span()),
                "auth",
            )?;
            let privacy = protocol(
                cx,
                &s.priv_protocol,
                &PRIV_PROTOCOLS,
                cx.secret(
                    &s.priv_password_env,
                    &s.priv_password_file,
                    "the SNMPv3 privacy pass phrase",
                    ("priv_password_env", "priv_password_file"),
                )?,
                s.priv_password_env
                    .as_ref()
                    .or(s.priv_password_file.as_ref())
                    .map(|v| v.span()),
                "priv",
            )?;
            if let (Some(_), None) = (&privacy, &auth) {
                let at = s
                    .priv_protocol
                    .as_ref()
                    .map(|v| v.span())
                    .unwrap_or(s.version.span());
                return Err(cx.at_key(at, "SNMPv3 privacy needs authentication too: add `auth_protocol` and its pass phrase"));
            }
            SnmpSecurity::V3(SnmpV3 {
                user: user.get_ref().clone(),
                auth,
                privacy,
            })
        }
        other => {
            return Err(cx.at_key(
                s.version.span(),
                format!(
                    "version {other:?} is no SNMP version hallmark speaks; write \"2c\" or \"3\""
                ),
            ))
        }
    };
    Ok(security)
}

/// An SNMPv3 protocol with its pass phrase (both or neither).
fn protocol(
    cx: &Cx,
    name: &Option<Spanned<String>>,
    allowed: &[&str],
    secret: Option<Secret>,
    secret_at: Option<Range<usize>>,
    what: &str,
) -> Result<Option<(String, Secret)>, ConfigError> {
    match (name, secret) {
        (None, None) => Ok(None),
        (Some(n), Some(secret)) => {
            let upper = n.get_ref().to_ascii_uppercase();
            if !allowed.contains(&upper.as_str()) {
                return Err(cx.at_key(n.span(), format!("{what}_protocol {:?} is not one of {}", n.get_ref(), allowed.join(", "))));
            }
            Ok(Some((upper, secret)))
        }
        (Some(n), None) => Err(cx.at_key(n.span(), format!("`{what}_protocol` needs its pass phrase: add `{what}_password_env` or `{what}_password_file`"))),
        (None, Some(_)) => Err(cx.at_key(secret_at.unwrap_or(0..0), format!("an SNMPv3 {what} pass phrase without `{what}_protocol`; add it"))),
    }
}
