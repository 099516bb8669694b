//! The machine's UDP counters around a `hallmark bench fleet` run (Linux: `/proc/net/snmp`):
//! datagrams sent, and datagrams the kernel dropped because a socket's receive buffer was full.
//! Machine-wide, so they count whatever else sends UDP too; on loopback each datagram is sent once
//! and received once, so datagrams sent is every packet between the coordinator and its probes.

/// The counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpCounters {
    /// `OutDatagrams`.
    pub sent: u64,
    /// `RcvbufErrors`.
    pub receive_buffer_errors: u64,
}

impl UdpCounters {
    /// The counters now; `None` where the file is absent (not Linux) or unreadable.
    pub fn read() -> Option<UdpCounters> {
        parse(&std::fs::read_to_string("/proc/net/snmp").ok()?)
    }

    /// What changed from `self` to `later` (counters that went backwards read as 0).
    pub fn since(self, later: UdpCounters) -> UdpCounters {
        UdpCounters {
            sent: later.sent.saturating_sub(self.sent),
            receive_buffer_errors: later
                .receive_buffer_errors
                .saturating_sub(self.receive_buffer_errors),
        }
    }
}

/// The `Udp:` header line names the columns of the `Udp:` line after it.
fn parse(snmp: &str) -> Option<UdpCounters> {
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(UdpCounters {
        sent: field("OutDatagrams")?,
        receive_buffer_errors: field("RcvbufErrors")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "\
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 82651638 11094 1215241 83880374 1215240 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 1 2 3 4 5 0 0 0 0
";

    #[test]
    fn the_udp_line_is_read_by_its_header() {
        let c = parse(SNMP).unwrap();
        assert_eq!(c.sent, 83_880_374);
        assert_eq!(c.receive_buffer_errors, 1_215_240);
        let later = UdpCounters {
            sent: c.sent + 10,
            receive_buffer_errors: c.receive_buffer_errors,
        };
        assert_eq!(c.since(later).sent, 10);
        assert_eq!(
            later.since(c).sent,
            0,
            "a counter that went back reads as 0"
        );
    }

    #[test]
    fn a_file_without_the_udp_lines_says_nothing() {
        assert_eq!(parse("Ip: Forwarding\nIp: 1\n"), None);
        assert_eq!(parse("Udp: InDatagrams OutDatagrams\nUdp: 1\n"), None);
    }
}
