//! Absolute http(s) URLs of a Redfish service and the resolution of the references a service
//! hands out (`@odata.id` paths, `Location` headers, `DataSourceUri`s) against them.

use crate::error::FacilityError;
use std::fmt;

/// http or https.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

/// An absolute http(s) URL: scheme, host, port and the path with its query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Url {
    pub scheme: Scheme,
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// Starts with '/'.
    pub path: String,
}

impl Url {
    /// Parses an absolute URL. A bare `HOST[:PORT]` is refused rather than guessed.
    pub fn parse(text: &str) -> Result<Url, FacilityError> {
        let bad = |detail: &str| FacilityError::InvalidUrl {
            url: text.to_string(),
            detail: detail.into(),
        };
        let uri: hyper::Uri = text
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => Scheme::Http,
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(_) => return Err(bad("only http and https are supported")),
            None => return Err(bad("no scheme")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not accepted; use --user with --password-file",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        Ok(Url {
            scheme,
            host,
            port,
            path,
        })
    }

    /// The same service (scheme, host, port) with another absolute path.
    pub fn with_path(&self, path: &str) -> Url {
        Url {
            path: path.to_string(),
            ..self.clone()
        }
    }

    /// Resolves `reference` against this URL: an absolute URL, an absolute path, or a path
    /// relative to this one's directory. Fragments are dropped.
    pub fn join(&self, reference: &str) -> Result<Url, FacilityError> {
        let reference = reference.split('#').next().unwrap_or("");
        let lower = reference.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Url::parse(reference);
        }
        if reference.starts_with("//") {
            let scheme = match self.scheme {
                Scheme::Http => "http:",
                Scheme::Https => "https:",
            };
            return Url::parse(&format!("{scheme}{reference}"));
        }
        let path = if reference.starts_with('/') {
            reference.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{reference}")
        };
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(FacilityError::InvalidUrl {
                url: reference.to_string(),
                detail: "a reference with spaces or control characters".into(),
            });
        }
        Ok(self.with_path(&path))
    }

    /// Whether `other` is on the same origin (scheme, host, port): credentials go only there.
    pub fn same_origin(&self, other: &Url) -> bool {
        self.scheme == other.scheme
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
    }

    /// The `Host` header value.
    pub(crate) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.scheme, self.port) {
            (Scheme::Http, 80) | (Scheme::Https, 443) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{scheme}://{host}:{}{}", self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_join() {
        let u = Url::parse("https://bmc.example:8443/redfish/v1/").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Https, "bmc.example", 8443, "/redfish/v1/")
        );
        assert_eq!(
            u.join("/redfish/v1/Chassis").unwrap().to_string(),
            "https://bmc.example:8443/redfish/v1/Chassis"
        );
        assert_eq!(u.join("Chassis/1").unwrap().path, "/redfish/v1/Chassis/1");
        assert_eq!(
            u.join("http://other:80/x#frag").unwrap().to_string(),
            "http://other:80/x"
        );
        let v6 = Url::parse("http://[::1]:9000").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.path.as_str(), v6.host_header()),
            ("::1", "/", "[::1]:9000".to_string())
        );
        assert!(!u.same_origin(&v6));
    }

    #[test]
    fn refuses_what_is_not_a_service_address() {
        for bad in [
            "bmc.example",
            "ftp://bmc/",
            "http://user:pw@bmc/",
            "http:///x",
        ] {
            let e = Url::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
