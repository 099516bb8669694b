//! The fabric part of `hallmark runs show`: per fabric phase, the hall's round-trip percentiles and
//! the worst pairs (naming the node they share, missing pairs and pairs that lost every packet),
//! and the collectives in the spirit of nccl-tests' table (size, count, op, algorithm, time, algbw,
//! busbw, #wrong), with the ranks that did not report and the faults.

use super::{FabricPhaseSummary, LatencySummary, PairRef};
use std::fmt::{self, Write};

/// How many pairs or nodes a line lists before it counts the rest.
const LIST: usize = 8;

fn pairs(list: &[PairRef]) -> String {
    let mut s: Vec<String> = list.iter().take(LIST).map(|p| p.to_string()).collect();
    if list.len() > LIST {
        s.push(format!("and {} more", list.len() - LIST));
    }
    s.join(", ")
}

fn names(list: &[String]) -> String {
    let mut s: Vec<String> = list.iter().take(LIST).cloned().collect();
    if list.len() > LIST {
        s.push(format!("and {} more", list.len() - LIST));
    }
    s.join(", ")
}

/// A size in bytes as nccl-tests would print it, with the binary unit after it when it helps.
pub fn size_label(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

/// The fabric phases as `hallmark runs show` prints them (empty when there are none).
pub fn render_fabric(phases: &[FabricPhaseSummary]) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_fabric(&mut o, phases);
    o
}

fn write_fabric(o: &mut String, phases: &[FabricPhaseSummary]) -> fmt::Result {
    for p in phases {
        writeln!(o)?;
        let who = if p.members_stored {
            format!("{} members", p.members.len())
        } else {
            format!("{} nodes seen; members not stored", p.members.len())
        };
        writeln!(
            o,
            "Fabric phase {} \"{}\" ({}, {who}, {} reported)",
            p.phase_id,
            p.name,
            p.workload,
            p.reported.len()
        )?;
        if let Some(l) = &p.latency {
            latency(o, l)?;
        }
        if !p.collectives.is_empty() {
            collectives(o, p)?;
        } else if p.workload == "collective" {
            writeln!(o, "  no collective results stored")?;
        }
        for f in &p.faults {
            match &f.peer {
                Some(peer) => writeln!(o, "  ! fault on {} (peer {peer}): {}", f.node, f.message)?,
                None => writeln!(o, "  ! fault on {}: {}", f.node, f.message)?,
            }
        }
    }
    Ok(())
}

fn latency(o: &mut String, l: &LatencySummary) -> fmt::Result {
    let loss = if l.sent > 0 {
        format!(" ({:.3} %)", l.lost as f64 * 100.0 / l.sent as f64)
    } else {
        String::new()
    };
    writeln!(
        o,
        "  latency mesh: {} of {} pairs reported, {} packets sent, {} lost{loss}",
        l.pairs_reported, l.pairs_expected, l.sent, l.lost
    )?;
    match &l.hall {
        Some(h) => {
            writeln!(
                o,
                "  {:<14} {:>10} {:>10} {:>10} {:>10} {:>12}",
                "round trip µs", "p50", "p99", "p99.9", "max", "round trips"
            )?;
            writeln!(
                o,
                "  {:<14} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>12}",
                "hall", h.p50_us, h.p99_us, h.p999_us, h.max_us, h.count
            )?;
        }
        None => writeln!(o, "  no round trip came back")?,
    }
    if !l.worst.is_empty() {
        let worst: Vec<String> = l
            .worst
            .iter()
            .filter_map(|p| {
                p.rtt
                    .map(|r| format!("{}→{} {:.2} µs", p.src, p.dst, r.p99_us))
            })
            .collect();
        writeln!(o, "  worst pairs by p99: {}", worst.join(", "))?;
    }
    if let Some(s) = &l.slow_node {
        writeln!(
            o,
            "  ! pairs involving {} are the slowest: {} of the {} worst pairs",
            s.node, s.in_worst, s.worst
        )?;
    }
    if !l.missing.is_empty() {
        writeln!(
            o,
            "  ! {} pair(s) not measured: {}",
            l.missing.len(),
            pairs(&l.missing)
        )?;
    }
    if !l.all_lost.is_empty() {
        writeln!(
            o,
            "  ! every packet lost on {} pair(s): {}",
            l.all_lost.len(),
            pairs(&l.all_lost)
        )?;
    }
    Ok(())
}

fn collectives(o: &mut String, p: &FabricPhaseSummary) -> fmt::Result {
    writeln!(
        o,
        "  {:>12} {:>12} {:<15} {:<16} {:>12} {:>11} {:>11} {:>8}",
        "size", "count", "op", "algorithm", "time µs", "algbw GB/s", "busbw GB/s", "#wrong"
    )?;
    for c in &p.collectives {
        let mark = if c.wrong_elements > 0 { '!' } else { ' ' };
        writeln!(
            o,
            "{mark} {:>12} {:>12} {:<15} {:<16} {:>12.2} {:>11.3} {:>11.3} {:>8}",
            c.size_bytes,
            c.count,
            c.op,
            c.algorithm,
            c.time_us,
            c.algbw_gb_s,
            c.busbw_gb_s,
            c.wrong_elements
        )?;
    }
    let ranks = p.collectives.first().map_or(0, |c| c.ranks);
    writeln!(
        o,
        "  time: the slowest rank's mean; busbw = algbw × bus factor of {ranks} ranks (nccl-tests)"
    )?;
    for c in p.collectives.iter().filter(|c| !c.missing.is_empty()) {
        writeln!(
            o,
            "  ! {} {}: {} of {} ranks did not report: {}",
            c.op,
            size_label(c.size_bytes),
            c.missing.len(),
            c.ranks,
            names(&c.missing)
        )?;
    }
    let wrong: u64 = p.collectives.iter().map(|c| c.wrong_elements).sum();
    if wrong > 0 {
        writeln!(
            o,
            "  ! {wrong} wrong elements in collective results (marked !)"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_label(8), "8 B");
        assert_eq!(size_label(1000), "1000 B");
        assert_eq!(size_label(64 << 10), "64 KiB");
        assert_eq!(size_label(64 << 20), "64 MiB");
        assert_eq!(size_label(2 << 30), "2 GiB");
    }
}
