//! The raw shape of `facility.toml` as serde reads it: every value [`Spanned`] so that a check
//! after parsing still points at its line and column, every table closed to unknown keys.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub defaults: Option<RawSettings>,
    #[serde(default)]
    pub redfish: Vec<RawRedfish>,
    #[serde(default)]
    pub snmp: Vec<RawSnmp>,
}

/// `[defaults]`, and what a `[[redfish]]` source may override.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    pub interval_s: Option<Spanned<Number>>,
    pub timeout_s: Option<Spanned<Number>>,
    pub max_reading_age_s: Option<Spanned<Number>>,
    pub ca: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
    pub username: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub session: Option<Spanned<bool>>,
}

impl RawSettings {
    /// These settings, each missing one taken from `defaults`. The password and the trust are
    /// taken as a whole: a source giving `password_env` does not inherit the default
    /// `password_file`, nor one giving `insecure` the default `ca` (or the other way round).
    pub fn over(self, defaults: &RawSettings) -> RawSettings {
        let own_password = self.password_env.is_some() || self.password_file.is_some();
        let own_trust = self.ca.is_some() || self.insecure.is_some();
        let d = defaults.clone();
        RawSettings {
            interval_s: self.interval_s.or(d.interval_s),
            timeout_s: self.timeout_s.or(d.timeout_s),
            max_reading_age_s: self.max_reading_age_s.or(d.max_reading_age_s),
            ca: if own_trust { self.ca } else { d.ca },
            insecure: if own_trust { self.insecure } else { d.insecure },
            username: self.username.or(d.username),
            password_env: if own_password {
                self.password_env
            } else {
                d.password_env
            },
            password_file: if own_password {
                self.password_file
            } else {
                d.password_file
            },
            session: self.session.or(d.session),
        }
    }
}

/// A `[[redfish]]` source. Its settings repeat [`RawSettings`]' fields rather than flatten it:
/// serde's `flatten` cannot be combined with `deny_unknown_fields`, and unknown keys must be refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedfish {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    pub resource: Spanned<String>,
    pub hall: Option<Spanned<bool>>,
    pub row: Option<Spanned<String>>,
    pub rack: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub interval_s: Option<Spanned<Number>>,
    pub timeout_s: Option<Spanned<Number>>,
    pub max_reading_age_s: Option<Spanned<Number>>,
    pub ca: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
    pub username: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub session: Option<Spanned<bool>>,
}

impl RawRedfish {
    pub fn settings(&self) -> RawSettings {
        RawSettings {
            interval_s: self.interval_s.clone(),
            timeout_s: self.timeout_s.clone(),
            max_reading_age_s: self.max_reading_age_s.clone(),
            ca: self.ca.clone(),
            insecure: self.insecure.clone(),
            username: self.username.clone(),
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
            session: self.session.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSnmp {
    pub name: Spanned<String>,
    pub address: Spanned<String>,
    pub profile: Option<Spanned<String>>,
    pub profile_file: Option<Spanned<String>>,
    pub version: Spanned<String>,
    pub community_env: Option<Spanned<String>>,
    pub community_file: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub auth_protocol: Option<Spanned<String>>,
    pub auth_password_env: Option<Spanned<String>>,
    pub auth_password_file: Option<Spanned<String>>,
    pub priv_protocol: Option<Spanned<String>>,
    pub priv_password_env: Option<Spanned<String>>,
    pub priv_password_file: Option<Spanned<String>>,
    pub hall: Option<Spanned<bool>>,
    pub row: Option<Spanned<String>>,
    pub rack: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub interval_s: Option<Spanned<Number>>,
    pub timeout_s: Option<Spanned<Number>>,
}

/// A number of seconds as written: a float or a whole number (`interval_s = 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}
