//! The interconnect section of the report and its exports `latency.csv` and `collectives.csv`, from
//! the fabric phases of [`hallmark_results::RunSummary::fabric`].
//!
//! Per latency phase: the hall's and each node's round-trip percentiles, the heat map of p99 per
//! directed pair ([`fabric_charts::latency_heatmap`]; meshes of more than
//! [`fabric_charts::MAX_CELLS`] nodes in blocks, each block its worst pair), the worst pairs and the
//! node they share, pairs not measured or that lost every packet. Per collective op: busbw against
//! message size, one line per phase; per collective phase the table in the spirit of nccl-tests.
//! Then the faults the probes reported. Without a fabric phase, a note says so.

use super::fabric_charts::{self as fc, BwSeries, HeatCell};
use super::html::{figure, Section};
use super::style::{esc, num};
use super::{chart, ReportError};
use hallmark_results::fabric::{FabricPhaseSummary, LatencySummary, Percentiles};
use hallmark_results::RunSummary;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

/// Rows of a long list shown before the rest is counted.
const LIST_MAX: usize = 50;

fn pct_cells(p: Option<&Percentiles>) -> String {
    let f = |v: Option<f64>| format!("<td class=\"num\">{}</td>", num(v, 2));
    format!(
        "{}{}{}{}<td class=\"num\">{}</td>",
        f(p.map(|p| p.p50_us)),
        f(p.map(|p| p.p99_us)),
        f(p.map(|p| p.p999_us)),
        f(p.map(|p| p.max_us)),
        p.map_or_else(|| "0".to_string(), |p| p.count.to_string())
    )
}

const PCT_HEAD: &str = "<th class=\"num\">p50 µs</th><th class=\"num\">p99 µs</th>\
<th class=\"num\">p99.9 µs</th><th class=\"num\">max µs</th><th class=\"num\">round trips</th>";

/// The section; `legacy_histograms` counts rows of the version 1 table `phase_histograms` (kept
/// only in stores that had rows in it).
pub fn section(s: &RunSummary, legacy_histograms: u64) -> Result<Section, ReportError> {
    let mut body = String::new();
    if s.fabric.is_empty() {
        body.push_str(
            "<p class=\"note\">No interconnect phase in this run: there is no latency heat map or \
             bus bandwidth chart to show. A plan measures the fabric with a <code>latency</code> \
             phase (round trips between every pair of nodes) and a <code>collective</code> phase \
             (all-reduce and the other collectives over a size sweep).</p>\n",
        );
    }
    for p in &s.fabric {
        if let Some(l) = &p.latency {
            latency(&mut body, p, l)?;
        }
    }
    collectives(&mut body, &s.fabric)?;
    faults(&mut body, &s.fabric);
    if legacy_histograms > 0 {
        let _ = writeln!(
            body,
            "<p class=\"muted\">The store also holds {legacy_histograms} row(s) of this run in \
             <code>phase_histograms</code>, a table of schema version 1 that hallmark never \
             filled; they are not charted.</p>"
        );
    }
    Ok(Section {
        id: "interconnect",
        title: "Interconnect",
        body,
    })
}

/// The heat map's rows and columns: node names, or blocks of nodes for large meshes.
fn heat_cells(p: &FabricPhaseSummary, l: &LatencySummary) -> (Vec<String>, Vec<Vec<HeatCell>>) {
    let nodes: Vec<&str> = p.members.iter().map(|m| m.node.as_str()).collect();
    let n = nodes.len();
    let pos: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut full = vec![vec![HeatCell::Missing; n]; n];
    for (i, row) in full.iter_mut().enumerate() {
        row[i] = HeatCell::Empty;
    }
    let mut set = |src: &str, dst: &str, c: HeatCell| {
        if let (Some(&i), Some(&j)) = (pos.get(src), pos.get(dst)) {
            if i != j {
                full[i][j] = c;
            }
        }
    };
    for pair in &l.pairs {
        if let Some(r) = pair.rtt {
            set(&pair.src, &pair.dst, HeatCell::P99(r.p99_us));
        }
    }
    for pair in &l.all_lost {
        set(&pair.src, &pair.dst, HeatCell::Lost);
    }
    if n <= fc::MAX_CELLS {
        return (nodes.iter().map(|s| s.to_string()).collect(), full);
    }
    let block = n.div_ceil(fc::MAX_CELLS);
    let groups = n.div_ceil(block);
    let range = |g: usize| g * block..((g + 1) * block).min(n);
    let labels = (0..groups)
        .map(|g| {
            let r = range(g);
            format!("{}…{}", nodes[r.start], nodes[r.end - 1])
        })
        .collect();
    let cells = (0..groups)
        .map(|gi| {
            (0..groups)
                .map(|gj| {
                    let mut c = HeatCell::Empty;
                    for i in range(gi) {
                        for j in range(gj) {
                            c = c.worse(full[i][j]);
                        }
                    }
                    c
                })
                .collect()
        })
        .collect();
    (labels, cells)
}

fn pair_list(pairs: &[hallmark_results::fabric::PairRef]) -> String {
    let mut v: Vec<String> = pairs
        .iter()
        .take(LIST_MAX)
        .map(|p| esc(&p.to_string()))
        .collect();
    if pairs.len() > LIST_MAX {
        v.push(format!("and {} more", pairs.len() - LIST_MAX));
    }
    v.join(", ")
}

fn latency(
    out: &mut String,
    p: &FabricPhaseSummary,
    l: &LatencySummary,
) -> Result<(), ReportError> {
    let _ = writeln!(
        out,
        "<h3>Latency mesh: phase {} ({} members)</h3>\n<p>{} of {} directed pairs measured; {} test \
         packets sent, {} lost{}.</p>",
        esc(&p.name),
        p.members.len(),
        l.pairs_reported,
        l.pairs_expected,
        l.sent,
        l.lost,
        if p.members_stored {
            ""
        } else {
            " (the phase's members were not stored: the nodes seen in its data are used)"
        }
    );
    let _ = writeln!(
        out,
        "<table><thead><tr><th></th>{PCT_HEAD}<th class=\"num\">pairs</th>\
         <th class=\"num\">lost / sent</th></tr></thead><tbody>\n<tr class=\"total\"><td>hall (all \
         pairs)</td>{}<td class=\"num\">{}</td><td class=\"num\">{} / {}</td></tr>\n</tbody></table>",
        pct_cells(l.hall.as_ref()),
        l.pairs.len(),
        l.lost,
        l.sent
    );
    let (labels, cells) = heat_cells(p, l);
    let blocks = labels.len() < p.members.len();
    let svg = chart("latency heat map", fc::latency_heatmap(&labels, &cells))?;
    let caption = format!(
        "p99 round trip of each directed pair, source (the node that initiated the ping-pong) by \
         row, destination by column, members in rank order{}. Dark: every packet lost; grey: not \
         measured.",
        if blocks {
            "; each cell is a block of nodes and shows its worst pair"
        } else {
            ""
        }
    );
    out.push_str(&figure(
        svg,
        &caption,
        "No round trip of this phase came back: no heat map to draw.",
    ));
    if let Some(slow) = &l.slow_node {
        let _ = writeln!(
            out,
            "<p class=\"warnbox\">Pairs involving <b>{}</b> are the slowest: {} of the {} worst \
             pairs.</p>",
            esc(&slow.node),
            slow.in_worst,
            slow.worst
        );
    }
    if !l.worst.is_empty() {
        let _ = writeln!(
            out,
            "<h3>Worst pairs by p99</h3><table><thead><tr><th>pair</th>{PCT_HEAD}\
             <th class=\"num\">sent</th><th class=\"num\">lost</th></tr></thead><tbody>"
        );
        for w in &l.worst {
            let _ = writeln!(
                out,
                "<tr><td>{}</td>{}<td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&w.pair().to_string()),
                pct_cells(w.rtt.as_ref()),
                w.sent,
                w.lost
            );
        }
        out.push_str("</tbody></table>\n");
    }
    if !l.all_lost.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"warnbox\"><b class=\"fail\">Every packet lost</b> on {} pair(s): {}.</p>",
            l.all_lost.len(),
            pair_list(&l.all_lost)
        );
    }
    if !l.missing.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"warnbox\">{} expected pair(s) not measured: {}.</p>",
            l.missing.len(),
            pair_list(&l.missing)
        );
    }
    let _ = writeln!(
        out,
        "<details><summary>Round trips per node (the pairs it initiated and those it answered, \
         merged)</summary><table><thead><tr><th>node</th>{PCT_HEAD}<th class=\"num\">pairs</th>\
         <th class=\"num\">lost / sent</th></tr></thead><tbody>"
    );
    for n in &l.nodes {
        let _ = writeln!(
            out,
            "<tr><td>{}</td>{}<td class=\"num\">{}</td><td class=\"num\">{} / {}</td></tr>",
            esc(&n.node),
            pct_cells(n.rtt.as_ref()),
            n.pairs,
            n.lost,
            n.sent
        );
    }
    out.push_str("</tbody></table></details>\n");
    Ok(())
}

fn collectives(out: &mut String, phases: &[FabricPhaseSummary]) -> Result<(), ReportError> {
    let with: Vec<&FabricPhaseSummary> = phases
        .iter()
        .filter(|p| !p.collectives.is_empty())
        .collect();
    let mut ops: Vec<&str> = Vec::new();
    for p in &with {
        for c in &p.collectives {
            if !ops.contains(&c.op.as_str()) {
                ops.push(&c.op);
            }
        }
    }
    for op in ops {
        let series: Vec<BwSeries> = with
            .iter()
            .filter(|p| p.collectives.iter().any(|c| c.op == op))
            .map(|p| BwSeries {
                name: p.name.clone(),
                points: p
                    .collectives
                    .iter()
                    .filter(|c| c.op == op)
                    .map(|c| (c.size_bytes, c.busbw_gb_s))
                    .collect(),
            })
            .collect();
        let svg = chart("bus bandwidth", fc::busbw_chart(op, &series))?;
        let _ = writeln!(out, "<h3>{}: bus bandwidth by message size</h3>", esc(op));
        out.push_str(&figure(
            svg,
            "busbw (GB/s, nccl-tests' definition: algbw = size ÷ time of the slowest rank, × the \
             op's bus factor) against the message size on a log₂ axis; one line per phase.",
            "No size of this op has a positive time: nothing to chart.",
        ));
    }
    for p in &with {
        let _ = writeln!(
            out,
            "<h3>Collectives: phase {} ({} ranks)</h3><table><thead><tr><th class=\"num\">size</th>\
             <th class=\"num\">count</th><th>op</th><th>algorithm</th><th class=\"num\">time µs</th>\
             <th class=\"num\">algbw GB/s</th><th class=\"num\">busbw GB/s</th>\
             <th class=\"num\">#wrong</th><th class=\"num\">iterations</th><th>slowest rank</th>\
             <th>ranks reported</th></tr></thead><tbody>",
            esc(&p.name),
            p.collectives.first().map_or(0, |c| c.ranks)
        );
        for c in &p.collectives {
            let class = if c.wrong_elements > 0 {
                " class=\"fail\""
            } else {
                ""
            };
            let missing = if c.missing.is_empty() {
                format!("{} / {}", c.ranks_reported, c.ranks)
            } else {
                format!(
                    "{} / {} (missing {})",
                    c.ranks_reported,
                    c.ranks,
                    esc(&c.missing.join(", "))
                )
            };
            let _ = writeln!(
                out,
                "<tr{class}><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
                 <td class=\"num\">{:.2}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{missing}</td></tr>",
                c.size_bytes,
                c.count,
                esc(&c.op),
                esc(&c.algorithm),
                c.time_us,
                c.algbw_gb_s,
                c.busbw_gb_s,
                c.wrong_elements,
                c.iterations,
                esc(&c.slowest)
            );
        }
        out.push_str(
            "</tbody></table>\n<p class=\"muted\">size: nccl-tests' message size in bytes; count: \
             f32 elements; time: the slowest rank's mean time of one operation.</p>\n",
        );
    }
    Ok(())
}

fn faults(out: &mut String, phases: &[FabricPhaseSummary]) {
    let all: Vec<(&str, &hallmark_results::fabric::Fault)> = phases
        .iter()
        .flat_map(|p| p.faults.iter().map(move |f| (p.name.as_str(), f)))
        .collect();
    if all.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<h3>Faults ({})</h3><table><thead><tr><th>phase</th><th>node</th><th>peer</th>\
         <th>message</th></tr></thead><tbody>",
        all.len()
    );
    for (phase, f) in all.iter().take(LIST_MAX * 2) {
        let _ = writeln!(
            out,
            "<tr class=\"fail\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(phase),
            esc(&f.node),
            esc(f.peer.as_deref().unwrap_or("–")),
            esc(&f.message)
        );
    }
    out.push_str("</tbody></table>\n");
}

fn opt(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Header of `latency.csv`.
pub const LATENCY_HEADER: &str =
    "run_id,phase_id,phase,src,dst,sent,lost,round_trips,p50_us,p99_us,p999_us,max_us";

/// `latency.csv`: one row per directed pair of every fabric phase; percentiles empty for a pair
/// without a round trip.
pub fn latency_csv(s: &RunSummary, out: &mut impl Write) -> std::io::Result<()> {
    use super::export::csv_field;
    writeln!(out, "{LATENCY_HEADER}")?;
    for p in &s.fabric {
        let Some(l) = &p.latency else { continue };
        for pair in &l.pairs {
            let r = pair.rtt;
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&s.run_id),
                p.phase_id,
                csv_field(&p.name),
                csv_field(&pair.src),
                csv_field(&pair.dst),
                pair.sent,
                pair.lost,
                r.map_or(0, |r| r.count),
                opt(r.map(|r| r.p50_us)),
                opt(r.map(|r| r.p99_us)),
                opt(r.map(|r| r.p999_us)),
                opt(r.map(|r| r.max_us))
            )?;
        }
    }
    Ok(())
}

/// Header of `collectives.csv`.
pub const COLLECTIVES_HEADER: &str = "run_id,phase_id,phase,op,algorithm,size_bytes,count,ranks,\
ranks_reported,iterations,time_us,algbw_gb_s,busbw_gb_s,wrong_elements,slowest,missing";

/// `collectives.csv`: one row per op and size of every fabric phase; `missing` lists the ranks'
/// nodes that did not report, separated by spaces.
pub fn collectives_csv(s: &RunSummary, out: &mut impl Write) -> std::io::Result<()> {
    use super::export::csv_field;
    writeln!(out, "{COLLECTIVES_HEADER}")?;
    for p in &s.fabric {
        for c in &p.collectives {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&s.run_id),
                p.phase_id,
                csv_field(&p.name),
                csv_field(&c.op),
                csv_field(&c.algorithm),
                c.size_bytes,
                c.count,
                c.ranks,
                c.ranks_reported,
                c.iterations,
                opt(Some(c.time_us)),
                opt(Some(c.algbw_gb_s)),
                opt(Some(c.busbw_gb_s)),
                c.wrong_elements,
                csv_field(&c.slowest),
                csv_field(&c.missing.join(" "))
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_results::fabric::{Member, PairLatency, PairRef};

    fn phase(n: usize) -> FabricPhaseSummary {
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                rank: i as u32,
                node: format!("n{i:03}"),
                addr: String::new(),
            })
            .collect();
        let mut pairs = Vec::new();
        for a in &members {
            for b in &members {
                if a.node != b.node {
                    pairs.push(PairLatency {
                        src: a.node.clone(),
                        dst: b.node.clone(),
                        sent: 10,
                        lost: 0,
                        rtt: Some(Percentiles {
                            count: 10,
                            p50_us: 5.0,
                            p99_us: 10.0 + a.rank as f64,
                            p999_us: 11.0,
                            max_us: 12.0,
                        }),
                    });
                }
            }
        }
        FabricPhaseSummary {
            phase_id: 1,
            name: "mesh".into(),
            workload: "latency".into(),
            scheduled_start_ns: 0,
            duration_ms: 1000,
            members_stored: true,
            reported: Vec::new(),
            latency: Some(LatencySummary {
                pairs_expected: (n * (n - 1)) as u64,
                pairs_reported: pairs.len() as u64,
                missing: Vec::new(),
                all_lost: vec![PairRef {
                    src: "n001".into(),
                    dst: "n000".into(),
                }],
                sent: 0,
                lost: 0,
                hall: None,
                nodes: Vec::new(),
                worst: Vec::new(),
                slow_node: None,
                pairs,
            }),
            members,
            collectives: Vec::new(),
            faults: Vec::new(),
        }
    }

    #[test]
    fn small_meshes_by_node_large_ones_by_block() {
        let p = phase(3);
        let (labels, cells) = heat_cells(&p, p.latency.as_ref().unwrap());
        assert_eq!(labels, ["n000", "n001", "n002"]);
        assert_eq!(cells[0][0], HeatCell::Empty);
        assert_eq!(cells[0][1], HeatCell::P99(10.0));
        assert_eq!(cells[1][0], HeatCell::Lost);
        assert_eq!(cells[2][1], HeatCell::P99(12.0));
        let p = phase(100);
        let (labels, cells) = heat_cells(&p, p.latency.as_ref().unwrap());
        // 100 nodes in blocks of 3: 34 rows, the last block of one node.
        assert_eq!(labels.len(), 34);
        assert_eq!(labels[0], "n000…n002");
        assert_eq!(labels[33], "n099…n099");
        assert_eq!(
            cells[0][0],
            HeatCell::Lost,
            "n001→n000 is in the first block"
        );
        assert_eq!(
            cells[1][0],
            HeatCell::P99(15.0),
            "the worst source of block 1 is n005"
        );
        assert_eq!(cells[33][33], HeatCell::Empty);
    }
}
