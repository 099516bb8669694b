//! Credentials for a Redfish service and how they are used: HTTP basic authentication on every
//! request, or a Redfish session (a token from `POST /redfish/v1/SessionService/Sessions`, sent as
//! `X-Auth-Token` and deleted when the client closes).
//!
//! Passwords and tokens live in [`Secret`], whose `Debug` prints `<hidden>` and whose memory is
//! zeroed when dropped, so no log line, error or panic message carries them. Credentials come from
//! a file (the password on its first line) or from the environment (`HALLMARK_REDFISH_USER`,
//! `HALLMARK_REDFISH_PASSWORD`); never from the command line, where other users can read them.

use crate::error::FacilityError;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// Environment variable holding the user name when none is given otherwise.
pub const ENV_USER: &str = "HALLMARK_REDFISH_USER";
/// Environment variable holding the password when no password file is given.
pub const ENV_PASSWORD: &str = "HALLMARK_REDFISH_PASSWORD";

/// A secret string (password, session token): zeroed on drop, hidden from `Debug`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(Zeroizing::new(s))
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// A user name and password for a Redfish service.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

impl Credentials {
    /// `user` with the password on the first line of `file` (a trailing newline is not part of it).
    pub fn from_password_file(user: &str, file: &Path) -> Result<Credentials, FacilityError> {
        let source_name = format!("the password file {}", file.display());
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
            FacilityError::Credentials {
                source_name: source_name.clone(),
                detail: format!("{e}; give a readable file holding the password on its first line"),
            }
        })?);
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            return Err(FacilityError::Credentials {
                source_name,
                detail: "its first line is empty; put the password on the first line".into(),
            });
        }
        warn_if_readable_by_others(file);
        Credentials::new(user, first.to_string(), &source_name)
    }

    /// Credentials from `HALLMARK_REDFISH_USER` / `HALLMARK_REDFISH_PASSWORD` through `get`
    /// (`std::env::var` in the binary; a map in tests). `user` overrides the user variable.
    /// `Ok(None)` when no password is set there.
    pub fn from_env(
        user: Option<&str>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, FacilityError> {
        let Some(password) = get(ENV_PASSWORD).map(Zeroizing::new) else {
            return Ok(None);
        };
        let source_name = format!("the environment ({ENV_USER}, {ENV_PASSWORD})");
        let user = match user.map(str::to_string).or_else(|| get(ENV_USER)) {
            Some(u) => u,
            None => {
                return Err(FacilityError::Credentials {
                    source_name,
                    detail: format!(
                        "{ENV_PASSWORD} is set but no user: set {ENV_USER} or pass --user"
                    ),
                })
            }
        };
        if password.is_empty() {
            return Err(FacilityError::Credentials {
                source_name,
                detail: format!("{ENV_PASSWORD} is empty"),
            });
        }
        Credentials::new(&user, password.to_string(), &source_name).map(Some)
    }

    fn new(user: &str, password: String, source_name: &str) -> Result<Credentials, FacilityError> {
        if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
            return Err(FacilityError::Credentials {
                source_name: source_name.to_string(),
                detail: "the user name is empty or holds ':' or a control character".into(),
            });
        }
        Ok(Credentials {
            user: user.to_string(),
            password: Secret::new(password),
        })
    }

    /// The `Authorization` header value of HTTP basic authentication.
    pub(crate) fn basic_header(&self) -> Secret {
        use base64::Engine;
        let raw = Zeroizing::new(format!("{}:{}", self.user, self.password.expose()));
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
        ))
    }
}

/// How the client authenticates.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// No credentials (a service that allows anonymous reads, such as a mockup server).
    #[default]
    None,
    /// HTTP basic authentication on every request.
    Basic(Credentials),
    /// A Redfish session: one login, a token on every request, the session deleted on close.
    Session(Credentials),
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %file.display(), "the password file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn debug_hides_the_password_and_the_basic_header() {
        let c = Credentials::new("admin", "hunter2-secret".into(), "test").unwrap();
        let shown = format!(
            "{c:?} {:?} {:?}",
            Auth::Session(c.clone()),
            c.basic_header()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            !shown.contains("aHVudGVy"),
            "base64 of the password leaked: {shown}"
        );
        assert!(
            shown.contains("admin") && shown.contains("<hidden>"),
            "{shown}"
        );
    }

    #[test]
    fn basic_header_is_rfc7617() {
        let c = Credentials::new("Aladdin", "open sesame".into(), "test").unwrap();
        assert_eq!(
            c.basic_header().expose(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn password_file_first_line_without_newline() {
        let dir = std::env::temp_dir().join(format!("hallmark-fac-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\nignored\n").unwrap();
        let c = Credentials::from_password_file("root", &f).unwrap();
        assert_eq!(c.password.expose(), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        let e = Credentials::from_password_file("root", &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("first line is empty") && e.contains("pw"), "{e}");
        let e = Credentials::from_password_file("root", &dir.join("absent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn environment_needs_a_user_and_a_password() {
        let env: HashMap<&str, &str> = [(ENV_PASSWORD, "pw")].into();
        let get = |k: &str| env.get(k).map(|v| v.to_string());
        assert!(Credentials::from_env(None, get)
            .unwrap_err()
            .to_string()
            .contains(ENV_USER));
        let c = Credentials::from_env(Some("ops"), get).unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.password.expose()), ("ops", "pw"));
        assert!(Credentials::from_env(Some("ops"), |_| None)
            .unwrap()
            .is_none());
    }
}
