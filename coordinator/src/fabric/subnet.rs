//! Which data-plane IP a probe may announce. A probe's Hello may name the IP its data plane is
//! reached on (`--data-announce`, or the IP of `--data-listen`); the coordinator accepts it only
//! when it is the IP the probe's control connection comes from, or inside a fabric subnet the
//! operator configured (`--fabric-subnet CIDR`, repeatable). Otherwise a probe could point the
//! other members' test traffic at any host (a reflection or flooding tool) or pose as another
//! node's data plane.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An operator-configured network the data planes live on, e.g. `10.20.0.0/16` or `fd00:1::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FabricSubnet {
    net: IpAddr,
    prefix: u8,
}

/// Why a `--fabric-subnet` value is not a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--fabric-subnet {text}: {why}; give a network as ADDRESS/PREFIX, e.g. 10.20.0.0/16 or fd00:1::/64")]
pub struct SubnetError {
    text: String,
    why: String,
}

impl FromStr for FabricSubnet {
    type Err = SubnetError;

    fn from_str(text: &str) -> Result<FabricSubnet, SubnetError> {
        let err = |why: String| SubnetError {
            text: text.to_string(),
            why,
        };
        let (ip, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| err("no /PREFIX".into()))?;
        let net: IpAddr = ip
            .parse()
            .map_err(|_| err(format!("{ip:?} is not an IPv4 or IPv6 address")))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
            err(format!(
                "the prefix {prefix:?} is not a number from 0 to {max}"
            ))
        })?;
        let s = FabricSubnet { net, prefix };
        if s.masked(net) != Some(net) {
            return Err(err(format!(
                "{net} has bits set beyond the /{prefix} prefix (did you mean {}/{prefix}?)",
                s.masked(net).unwrap_or(net)
            )));
        }
        Ok(s)
    }
}

impl fmt::Display for FabricSubnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl FabricSubnet {
    /// `ip` with the bits past the prefix cleared; `None` for the other address family.
    fn masked(&self, ip: IpAddr) -> Option<IpAddr> {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(_), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)))
            }
            (IpAddr::V6(_), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                Some(IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)))
            }
            _ => None,
        }
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.masked(ip) == Some(self.net)
    }
}

/// Whether a probe whose control connection comes from `control` (`None`: not an IP connection)
/// may announce `announced` as its data plane's IP; the error is the refusal's message.
pub fn check_announced(
    announced: IpAddr,
    control: Option<IpAddr>,
    subnets: &[FabricSubnet],
) -> Result<(), String> {
    let announced = announced.to_canonical();
    if control.map(|c| c.to_canonical()) == Some(announced) {
        return Ok(());
    }
    if subnets.iter().any(|s| s.contains(announced)) {
        return Ok(());
    }
    let from = control.map_or_else(|| "a non-IP connection".to_string(), |c| c.to_string());
    let configured = if subnets.is_empty() {
        "no fabric subnet is configured".to_string()
    } else {
        let list: Vec<String> = subnets.iter().map(ToString::to_string).collect();
        format!("the configured fabric subnets are {}", list.join(", "))
    };
    Err(format!(
        "the probe announces its data plane at {announced} but its control connection comes from \
         {from}, and {configured}; start the coordinator with --fabric-subnet CIDR covering the \
         data-plane network, or let the probe announce the address it connects from"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_and_contain() {
        let s: FabricSubnet = "10.20.0.0/16".parse().unwrap();
        assert!(s.contains(ip("10.20.3.4")) && !s.contains(ip("10.21.0.1")));
        assert!(s.contains(ip("::ffff:10.20.0.9")), "IPv4-mapped");
        assert!(!s.contains(ip("fd00::1")));
        let v6: FabricSubnet = "fd00:1::/64".parse().unwrap();
        assert!(v6.contains(ip("fd00:1::7")) && !v6.contains(ip("fd00:2::7")));
        let all: FabricSubnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("192.0.2.1")));
        let one: FabricSubnet = "192.0.2.1/32".parse().unwrap();
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        assert_eq!(v6.to_string(), "fd00:1::/64");
    }

    #[test]
    fn bad_cidrs_say_what_and_how() {
        for (text, why) in [
            ("10.0.0.0", "no /PREFIX"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/33", "from 0 to 32"),
            ("fd00::/129", "from 0 to 128"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ] {
            let e = text.parse::<FabricSubnet>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
            assert!(e.contains("ADDRESS/PREFIX"), "{e}");
        }
    }

    #[test]
    fn an_announced_ip_must_be_the_control_ip_or_in_a_subnet() {
        let subnets = ["10.20.0.0/16".parse().unwrap()];
        assert!(check_announced(ip("192.0.2.7"), Some(ip("192.0.2.7")), &[]).is_ok());
        assert!(check_announced(ip("192.0.2.7"), Some(ip("::ffff:192.0.2.7")), &[]).is_ok());
        let e = check_announced(ip("192.0.2.8"), Some(ip("192.0.2.7")), &[]).unwrap_err();
        assert!(
            e.contains("192.0.2.8") && e.contains("192.0.2.7") && e.contains("--fabric-subnet"),
            "{e}"
        );
        assert!(check_announced(ip("10.20.1.1"), Some(ip("192.0.2.7")), &subnets).is_ok());
        let e = check_announced(ip("10.21.1.1"), None, &subnets).unwrap_err();
        assert!(e.contains("10.20.0.0/16") && e.contains("non-IP"), "{e}");
    }
}
