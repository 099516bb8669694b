//! `index.html` of a publication: one self-contained page (inline CSS and SVG, no scripts, nothing
//! fetched) with the runs side by side: what differs between them, each system and its measurement
//! method with its quality level (one column per run), the verdict counts, then every chart with its
//! sources and its numbers, the quality levels' definitions and the files.

use super::dataset::ChartData;
use super::flags::Flag;
use super::model::{finite, PublishRun};
use super::quality::{definitions, Quality};
use super::svg::SIM;
use super::tables::{glance, systems, verdicts};
use crate::style::{self, esc, hex};
use std::fmt::Write;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#212121;font:15px/1.45 "DejaVu Sans","Liberation Sans",Arial,sans-serif}
main{max-width:1260px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:26px;margin:4px 0}
h2{font-size:20px;margin:0 0 10px;border-bottom:2px solid #e0e0e0;padding-bottom:4px}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:16px 18px;margin:16px 0}
nav{font-size:14px;margin:8px 0}
nav a{margin-right:14px;color:#1565c0;text-decoration:none}
a{color:#1565c0}
.muted{color:#616161}
.note{background:#f5f5f5;border-left:4px solid #9e9e9e;padding:8px 12px}
.warnbox{background:#fff8e1;border-left:4px solid #e68a00;padding:8px 12px;margin:10px 0}
.warnbox li{margin:4px 0}
.simulated{background:repeating-linear-gradient(45deg,#4a148c,#4a148c 12px,#6a1b9a 12px,#6a1b9a 24px);color:#fff;font-size:16px;font-weight:bold;padding:10px 16px;border-radius:6px;margin:8px 0}
.sim{color:#4a148c;font-weight:bold}
table{border-collapse:collapse;margin:6px 0;font-size:14px}
th,td{border-bottom:1px solid #eee;padding:4px 10px;text-align:left;vertical-align:top}
thead th{background:#fafafa;border-bottom:2px solid #e0e0e0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.side th[scope=row]{width:230px;color:#424242;font-weight:normal}
table.side td{min-width:200px}
table.glance th[scope=row]{width:400px}
.swatch{display:inline-block;width:11px;height:11px;margin-right:6px;border-radius:2px;vertical-align:baseline}
.level{font-size:18px;font-weight:bold}
figure{margin:0}svg{max-width:100%;height:auto;display:block}
.caption{font-size:13px;color:#616161;margin:6px 0 8px}
.caption ul{margin:4px 0;padding-left:18px}
code{font-size:12px;background:#f5f5f5;padding:1px 4px;border-radius:3px;word-break:break-all}
footer{font-size:13px;color:#616161;margin-top:20px}
@media print{body{background:#fff}section{break-inside:avoid;border:none}}
"#;

/// What a run's figures are traced to, in plain text (the charts' source line).
pub(crate) fn trace_text(r: &PublishRun) -> String {
    match (&r.bundle, &r.data) {
        (Some(b), _) => format!("bundle {} sha256 {}", b.file, b.sha256),
        (None, Some(d)) => format!("bundle not written; {} sha256 {}", d.what, d.sha256),
        (None, None) => "bundle not written; no data hash".into(),
    }
}

/// A rate as Rust prints it (`10`, `0.5`), or `–`.
pub(crate) fn hz(v: Option<f64>) -> String {
    match finite(v) {
        Some(x) => {
            let d = (2 - x.abs().log10().floor() as i32).clamp(0, 9) as usize;
            let t = format!("{x:.d$}");
            let t = if t.contains('.') {
                t.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                t
            };
            format!("{t} Hz")
        }
        None => "–".into(),
    }
}

/// A value with four significant digits (at least the integer part), or `–`.
pub(crate) fn fmt(v: Option<f64>) -> String {
    match finite(v) {
        Some(0.0) => "0".into(),
        Some(x) => {
            let d = (3 - x.abs().log10().floor() as i32).clamp(0, 9) as usize;
            style::num(Some(x), d)
        }
        None => style::num(None, 0),
    }
}

pub(crate) fn swatch(i: usize) -> String {
    format!(
        "<span class=\"swatch\" style=\"background:{}\"></span>",
        hex(style::series_color(i))
    )
}

/// A chart's section body: the SVG, its caption with the sources, and its numbers.
fn chart_body(c: &ChartData, svg: &str, runs: &[PublishRun]) -> String {
    let mut out = format!("<figure>{svg}<figcaption class=\"caption\">");
    let _ = write!(out, "One value is {}.", esc(&c.what));
    if c.log {
        out.push_str(" The value axis is logarithmic.");
    }
    if let Some(m) = c.marks_are {
        let _ = write!(out, " Red ticks: {m}.");
    }
    if let Some((v, l)) = &c.reference {
        let _ = write!(out, " Dashed red line: {} at {}.", esc(l), fmt(Some(*v)));
    }
    let _ = write!(
        out,
        " Standalone: <a href=\"charts/{0}.svg\">charts/{0}.svg</a>.",
        c.id
    );
    out.push_str("</figcaption></figure>\n<table><thead><tr>");
    let grouped = c.groups.iter().any(|g| g.label.is_some());
    if grouped {
        out.push_str("<th>size</th>");
    }
    out.push_str("<th>run</th>");
    for h in [
        "n",
        "without value",
        "min",
        "Q1",
        "median",
        "Q3",
        "max",
        "mean",
    ] {
        let _ = write!(out, "<th class=\"num\">{h}</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for g in &c.groups {
        for row in &g.rows {
            let Some(r) = runs.get(row.run) else { continue };
            out.push_str("<tr>");
            if grouped {
                let _ = write!(out, "<td>{}</td>", esc(g.label.as_deref().unwrap_or("")));
            }
            let _ = write!(out, "<td>{}{}</td>", swatch(row.run), esc(&r.name));
            let s = row.stats.as_ref();
            let cells = [
                row.values.len().to_string(),
                row.absent.to_string(),
                fmt(s.map(|s| s.min)),
                fmt(s.map(|s| s.q1)),
                fmt(s.map(|s| s.median)),
                fmt(s.map(|s| s.q3)),
                fmt(s.map(|s| s.max)),
                fmt(s.map(|s| s.mean)),
            ];
            for cell in cells {
                let _ = write!(out, "<td class=\"num\">{cell}</td>");
            }
            out.push_str("</tr>\n");
        }
    }
    let _ = writeln!(
        out,
        "</tbody></table><p class=\"caption\">In {}; – : no value.</p>",
        esc(c.unit)
    );
    out
}

/// What differs between the runs, or that nothing does.
fn comparability(out: &mut String, flags: &[Flag], any_sim: bool) {
    out.push_str("<section id=\"comparability\"><h2>Comparability</h2>\n");
    if flags.is_empty() {
        out.push_str("<p class=\"note\">Like for like: the same plan, the same spec (or none), the same GPU-side sensor, sample rate, facility meters and quality level");
        out.push_str(if any_sim {
            ", all simulated.</p>\n"
        } else {
            ", all on real hardware.</p>\n"
        });
    } else {
        out.push_str("<div class=\"warnbox\"><b>Not like for like.</b> These runs differ as follows; they are drawn side by side and never pooled.<ul>");
        for f in flags {
            let _ = write!(out, "<li>{}</li>", esc(&f.message));
        }
        out.push_str("</ul></div>\n");
    }
    out.push_str("</section>\n");
}

/// The quality levels' definitions and the list of data files.
fn levels_and_files(out: &mut String, files: &[String]) {
    out.push_str("<section id=\"levels\"><h2>Quality levels</h2>\n<p>hallmark's own scale, in the spirit of the Green500 / EEHPC WG power measurement levels; it says what hallmark measured, not what a Green500 submission requires. CDU and BMC meters are listed but do not enter the level.</p><table>");
    for (l, d) in definitions() {
        let _ = write!(out, "<tr><th>{l}</th><td>{}</td></tr>", esc(d));
    }
    out.push_str("</table></section>\n<section id=\"files\"><h2>Data</h2>\n<p>Every number of this page, each row with its run id:</p><ul>");
    for f in files.iter().filter(|f| f.starts_with("data/")) {
        let _ = write!(out, "<li><a href=\"{0}\">{0}</a></li>", esc(f));
    }
    let _ = writeln!(
        out,
        "</ul><p class=\"muted\">Each chart is also a standalone SVG under <code>charts/</code>; absent values are empty CSV fields and JSON null, never 0.</p></section>"
    );
}

/// The whole page; `svgs[i]` is `charts[i]` drawn.
pub(crate) fn page(
    runs: &[PublishRun],
    quality: &[Quality],
    flags: &[Flag],
    charts: &[ChartData],
    svgs: &[String],
    files: &[String],
) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let any_sim = runs.iter().any(|r| r.simulated.is_some());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}hallmark publication — {}</title><style>{CSS}</style></head>\n<body><main>\n",
        if any_sim { "SIMULATED — " } else { "" },
        esc(&runs
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(" · "))
    );
    let _ =
        writeln!(
        out,
        "<header><h1>{} side by side</h1><div class=\"muted\">{} · written by hallmark {}</div>",
        if runs.len() == 1 { "One run".to_string() } else { format!("{} runs", runs.len()) },
        runs.iter()
            .enumerate()
            .map(|(i, r)| format!("{}<b>{}</b> in {}", swatch(i), esc(&r.name), esc(&r.hall)))
            .collect::<Vec<_>>()
            .join(" · "),
        env!("CARGO_PKG_VERSION")
    );
    for r in runs {
        if let Some(b) = &r.simulated {
            let _ = writeln!(
                out,
                "<div class=\"simulated\">{}: {}</div>",
                esc(&r.name),
                esc(b)
            );
        }
    }
    out.push_str("</header>\n<nav><a href=\"#comparability\">Comparability</a><a href=\"#systems\">Systems and methods</a><a href=\"#verdicts\">Verdicts</a><a href=\"#glance\">At a glance</a>");
    for c in charts {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", c.id, esc(&c.title));
    }
    out.push_str("<a href=\"#levels\">Quality levels</a><a href=\"#files\">Data</a></nav>\n");

    comparability(&mut out, flags, any_sim);
    let _ = writeln!(
        out,
        "<section id=\"systems\"><h2>Systems and measurement methods</h2>\n{}</section>",
        systems(runs, quality)
    );
    let _ = writeln!(
        out,
        "<section id=\"verdicts\"><h2>Verdicts</h2>\n{}</section>",
        verdicts(runs)
    );
    if !charts.is_empty() {
        let _ = writeln!(
            out,
            "<section id=\"glance\"><h2>At a glance</h2>\n{}</section>",
            glance(runs, charts)
        );
    }
    if charts.is_empty() {
        out.push_str("<section><p class=\"note\">No run has a figure to chart: no per-GPU, rack, bandwidth or latency value.</p></section>\n");
    }
    for (c, svg) in charts.iter().zip(svgs) {
        let _ = writeln!(
            out,
            "<section id=\"{}\" aria-label=\"{}\">\n{}</section>",
            c.id,
            esc(&c.title),
            chart_body(c, svg, runs)
        );
    }
    levels_and_files(&mut out, files);
    out.push_str("<footer>Run colours as in the swatches");
    if any_sim {
        let _ = write!(
            out,
            "; <span style=\"color:{}\">SIMULATED</span>: figures from hallmark's simulated hall, \
             which certify no hardware",
            hex(SIM)
        );
    }
    out.push_str(".</footer>\n</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_significant_digits() {
        assert_eq!(fmt(Some(0.000_412_34)), "0.0004123");
        assert_eq!(fmt(Some(1234.6)), "1235");
        assert_eq!(fmt(Some(12.345_6)), "12.35");
        assert_eq!(fmt(Some(0.0)), "0");
        assert_eq!(fmt(None), "–");
        assert_eq!(fmt(Some(f64::NAN)), "–");
        assert_eq!(hz(Some(1.000_059)), "1 Hz");
        assert_eq!(hz(Some(0.5)), "0.5 Hz");
        assert_eq!(hz(Some(262.22)), "262 Hz");
        assert_eq!(hz(None), "–");
    }
}
