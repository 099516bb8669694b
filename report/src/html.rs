//! The page around the sections: one self-contained HTML document with inline CSS and inline SVG,
//! no scripts, no fonts or images from anywhere else; readable at 1200 px and printable.

use super::style::{self, esc, num, status_class};
use hallmark_results::verdict::Status;
use hallmark_results::RunSummary;
use hallmark_store::time::format_utc;
use std::fmt::Write;

pub(crate) const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#212121;font:15px/1.45 "DejaVu Sans","Liberation Sans",Arial,sans-serif}
main{max-width:1260px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:26px;margin:4px 0}
h2{font-size:20px;margin:0 0 10px;border-bottom:2px solid #e0e0e0;padding-bottom:4px}
h3{font-size:16px;margin:16px 0 6px}
h4{font-size:14px;margin:12px 0 4px}
details{margin:8px 0}summary{cursor:pointer;color:#1565c0}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:16px 18px;margin:16px 0}
nav{font-size:14px;margin:8px 0}
nav a{margin-right:14px;color:#1565c0;text-decoration:none}
.muted{color:#616161}
.note{background:#f5f5f5;border-left:4px solid #9e9e9e;padding:8px 12px}
.warnbox{background:#fff8e1;border-left:4px solid #e68a00;padding:8px 12px;margin:10px 0}
.simulated{background:repeating-linear-gradient(45deg,#4a148c,#4a148c 12px,#6a1b9a 12px,#6a1b9a 24px);color:#fff;font-size:18px;font-weight:bold;padding:12px 16px;border-radius:6px;margin:10px 0}
.overall{display:flex;align-items:center;gap:20px;padding:14px 18px;border-radius:6px;color:#fff;margin-bottom:8px}
.overall .word{font-size:40px;font-weight:bold;letter-spacing:1px;min-width:200px}
.overall.pass{background:#2e7d32}.overall.warn{background:#e68a00}
.overall.fail{background:#c62828}.overall.incomplete{background:#616161}
.overall .muted{color:#fff;opacity:.85}
.badge{display:inline-block;min-width:54px;text-align:center;font-size:12px;font-weight:bold;color:#fff;border-radius:3px;padding:1px 5px}
.badge.pass{background:#2e7d32}.badge.warn{background:#e68a00}.badge.fail{background:#c62828}.badge.incomplete{background:#616161}
td.fail,b.fail,tr.fail td{color:#b71c1c}td.warn{color:#b86e00}td.incomplete{color:#424242}td.pass{color:#2e7d32}
table{border-collapse:collapse;margin:6px 0;font-size:14px}
th,td{border-bottom:1px solid #eee;padding:4px 10px;text-align:left;vertical-align:top}
thead th{background:#fafafa;border-bottom:2px solid #e0e0e0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;border-top:2px solid #e0e0e0}
table.kv th{width:260px;color:#424242;font-weight:normal}
table.verdicts td:last-child{max-width:520px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:10px 16px;min-width:160px}
.card .v{font-size:22px;font-weight:bold}.card .k{font-size:13px;color:#616161}
.cols{display:flex;flex-wrap:wrap;gap:32px}
figure{margin:0}svg{max-width:100%;height:auto;display:block}
.caption{font-size:13px;color:#616161;margin:6px 0 0}
.ramp{display:inline-block;width:160px;height:12px;vertical-align:middle;border:1px solid #ddd;background:linear-gradient(90deg,#fdd49e,#990000)}
code{font-size:13px;background:#f5f5f5;padding:1px 4px;border-radius:3px;word-break:break-all}
pre{background:#f5f5f5;padding:10px;overflow:auto;font-size:13px}
details{margin:8px 0}summary{cursor:pointer;color:#1565c0}
footer{font-size:13px;color:#616161;margin-top:20px}
@media print{body{background:#fff}section{break-inside:avoid;border:none}}
"#;

/// One section of the page.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub body: String,
}

/// A chart inline, with its caption; or the note that says why there is none.
pub fn figure(svg: Option<String>, caption: &str, missing: &str) -> String {
    match svg {
        Some(svg) => {
            format!("<figure>{svg}<figcaption class=\"caption\">{caption}</figcaption></figure>\n")
        }
        None => format!("<p class=\"note\">{}</p>\n", esc(missing)),
    }
}

fn card(out: &mut String, value: &str, key: &str, class: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"v {class}\">{value}</div><div class=\"k\">{}</div></div>",
        esc(key)
    );
}

/// The whole document. `overall` is `None` when the run was not judged (no verdicts).
pub fn page(
    s: &RunSummary,
    overall: Option<Status>,
    devices: usize,
    sections: &[Section],
    files: &[&str],
) -> String {
    let mut out = String::with_capacity(512 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>hallmark report — {}{} — {}</title><style>{CSS}</style></head>\n<body><main>\n",
        if s.simulation.is_simulated() {
            "SIMULATED — "
        } else {
            ""
        },
        esc(&s.name),
        esc(&s.run_id)
    );
    let hall = s.hall.as_deref().unwrap_or("real hardware");
    let end = s
        .ended_at_ns
        .map(format_utc)
        .unwrap_or_else(|| "not finished".into());
    let _ = writeln!(
        out,
        "<header><h1>hallmark report: {} <span class=\"badge {}\">{}{}</span></h1>\
         <div class=\"muted\">run <b>{}</b> · plan {} · hall {} · {} → {} · run status <b>{}</b></div>",
        esc(&s.name),
        overall.map(status_class).unwrap_or("incomplete"),
        overall.map(|o| o.as_str()).unwrap_or("NOT JUDGED"),
        if s.simulation.is_simulated() { " (SIMULATED)" } else { "" },
        esc(&s.run_id),
        esc(&s.plan_name),
        esc(hall),
        format_utc(s.started_at_ns),
        end,
        s.status
    );
    if let Some(banner) = s.simulation.banner() {
        let _ = writeln!(out, "<div class=\"simulated\">{}</div>", esc(&banner));
    }
    if s.status != hallmark_results::RunStatus::Complete {
        let _ =
            writeln!(
            out,
            "<div class=\"warnbox\">The run is <b>{}</b>{}: what follows is what was stored, and \
             it is not the whole plan.</div>",
            s.status,
            s.status_reason.as_deref().map(|r| format!(" ({})", esc(r))).unwrap_or_default()
        );
    }
    out.push_str("<div class=\"cards\">");
    card(
        &mut out,
        &format!("{} kW", num(s.peak_kw, 1)),
        "hall peak power",
        "",
    );
    let hot = s
        .hottest_device
        .as_ref()
        .map(|d| format!("max GPU temperature ({}/{})", d.node, d.device))
        .unwrap_or_else(|| "max GPU temperature".into());
    card(
        &mut out,
        &format!("{} °C", num(s.max_gpu_temp_c, 1)),
        &hot,
        "",
    );
    let thr_class = if s.throttle_s > 0.0 { "fail" } else { "" };
    card(
        &mut out,
        &format!("{:.1} device-s", s.throttle_s),
        "throttled (slowdown bits)",
        thr_class,
    );
    card(
        &mut out,
        &format!("{} / {} / {}", s.racks.len(), s.probes, devices),
        "racks / nodes / devices",
        "",
    );
    card(
        &mut out,
        &format!("{} / {}", s.samples_stored, s.samples_expected),
        "samples stored / expected",
        if s.samples_stored < s.samples_expected {
            "fail"
        } else {
            ""
        },
    );
    out.push_str("</div></header>\n<nav>");
    for sec in sections {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", sec.id, esc(sec.title));
    }
    out.push_str("</nav>\n");
    for sec in sections {
        let _ = writeln!(
            out,
            "<section id=\"{}\"><h2>{}</h2>\n{}</section>",
            sec.id,
            esc(sec.title),
            sec.body
        );
    }
    let links = files
        .iter()
        .map(|f| format!("<a href=\"{f}\">{f}</a>"))
        .collect::<Vec<_>>()
        .join(" · ");
    let _ = writeln!(
        out,
        "<footer>Exports next to this file: {links}. Colours: rack lines as in the legend; \
         <span style=\"color:{}\">PASS</span>, <span style=\"color:{}\">WARN</span>, \
         <span style=\"color:{}\">FAIL</span>, <span style=\"color:{}\">INCOMPLETE</span>.</footer>",
        style::hex(style::PASS),
        style::hex(style::WARN),
        style::hex(style::FAIL),
        style::hex(style::INCOMPLETE)
    );
    out.push_str("</main></body></html>\n");
    out
}
