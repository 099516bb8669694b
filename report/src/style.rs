//! The report's look, shared by charts and tables: status and series colours, the colour scales of
//! the floor map and the throttle timeline, number formatting, HTML escaping, and the embedded font
//! that plotters measures chart text with.

use hallmark_results::verdict::Status;
use plotters::style::{FontStyle, RGBColor};
use std::sync::OnceLock;

/// Font family of every chart text; registered with plotters from the embedded DejaVu Sans, and
/// rendered by the browser with its own sans-serif (the page's CSS asks for DejaVu Sans first).
pub const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters once per process. Returns whether it is usable.
pub fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    })
}

pub const PASS: RGBColor = RGBColor(0x2e, 0x7d, 0x32);
pub const WARN: RGBColor = RGBColor(0xe6, 0x8a, 0x00);
pub const FAIL: RGBColor = RGBColor(0xc6, 0x28, 0x28);
pub const INCOMPLETE: RGBColor = RGBColor(0x75, 0x75, 0x75);
pub const TEXT: RGBColor = RGBColor(0x21, 0x21, 0x21);
pub const MUTED: RGBColor = RGBColor(0x61, 0x61, 0x61);
pub const GRID: RGBColor = RGBColor(0xe0, 0xe0, 0xe0);
/// Alternating phase shading.
pub const PHASE_FILL: [RGBColor; 2] = [RGBColor(0xee, 0xf2, 0xf7), RGBColor(0xf7, 0xf4, 0xea)];

/// The colour of a verdict status, in charts.
pub fn status_color(s: Status) -> RGBColor {
    match s {
        Status::Pass => PASS,
        Status::Warn => WARN,
        Status::Fail => FAIL,
        Status::Incomplete => INCOMPLETE,
    }
}

/// The CSS class of a verdict status (`pass`, `warn`, `fail`, `incomplete`).
pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Fail => "fail",
        Status::Incomplete => "incomplete",
    }
}

/// Series colours (Tableau 10), one per rack in hall order, the same in every chart.
const SERIES: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

pub fn series_color(i: usize) -> RGBColor {
    SERIES[i % SERIES.len()]
}

fn lerp(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let c = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    RGBColor(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// Sequential blue scale for power, `t` in 0..=1 (light to dark).
pub fn power_scale(t: f64) -> RGBColor {
    const STOPS: [RGBColor; 3] = [
        RGBColor(0xde, 0xeb, 0xf7),
        RGBColor(0x6b, 0xae, 0xd6),
        RGBColor(0x08, 0x30, 0x6b),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if t < 0.5 {
        lerp(STOPS[0], STOPS[1], t * 2.0)
    } else {
        lerp(STOPS[1], STOPS[2], (t - 0.5) * 2.0)
    }
}

/// Whether text on `c` should be white.
pub fn is_dark(c: RGBColor) -> bool {
    0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2) < 140.0
}

/// Sequential scale for a throttled fraction, `t` in 0..=1 (pale orange to dark red).
pub fn throttle_scale(t: f64) -> RGBColor {
    lerp(RGBColor(0xfd, 0xd4, 0x9e), RGBColor(0x99, 0x00, 0x0d), t)
}

/// Sequential scale for a latency, `t` in 0..=1 (pale yellow through orange to dark red).
pub fn latency_scale(t: f64) -> RGBColor {
    const STOPS: [RGBColor; 3] = [
        RGBColor(0xff, 0xf7, 0xbc),
        RGBColor(0xfd, 0x8d, 0x3c),
        RGBColor(0x80, 0x00, 0x26),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if t < 0.5 {
        lerp(STOPS[0], STOPS[1], t * 2.0)
    } else {
        lerp(STOPS[1], STOPS[2], (t - 0.5) * 2.0)
    }
}

/// `#rrggbb`.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with `decimals` places, or `–` when absent or not finite.
pub fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_string(),
    }
}

/// A quantity with an SI prefix and three significant digits: `si(Some(1.4124e15), "FLOP/s")` is
/// `1.41 PFLOP/s`; `–` when absent or not finite.
pub fn si(v: Option<f64>, unit: &str) -> String {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "–".to_string();
    };
    let mut i = 0;
    let mut x = v;
    while x.abs() >= 999.5 && i + 1 < PREFIXES.len() {
        x /= 1000.0;
        i += 1;
    }
    let digits = match x.abs() {
        a if a >= 99.95 => 0,
        a if a >= 9.995 => 1,
        _ => 2,
    };
    format!("{x:.digits$} {}{unit}", PREFIXES[i])
}

/// A duration in seconds as `62.6 s`, `12 min 5 s` or `2 h 3 min`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "–".into();
    }
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 7200.0 {
        format!("{} min {} s", (secs / 60.0).floor(), (secs % 60.0).round())
    } else {
        format!(
            "{} h {} min",
            (secs / 3600.0).floor(),
            ((secs % 3600.0) / 60.0).round()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(num(Some(1.234), 1), "1.2");
        assert_eq!(num(Some(f64::NAN), 1), "–");
        assert_eq!(num(None, 1), "–");
        assert_eq!(duration(62.64), "62.6 s");
        assert_eq!(duration(725.0), "12 min 5 s");
        assert_eq!(hex(power_scale(0.0)), "#deebf7");
        assert_eq!(hex(power_scale(1.0)), "#08306b");
        assert!(is_dark(power_scale(1.0)) && !is_dark(power_scale(0.0)));
        assert!(font_ready());
        assert_eq!(si(Some(1_412_374_710.6e6), "FLOP/s"), "1.41 PFLOP/s");
        assert_eq!(si(Some(141.2e12), "FLOP/s"), "141 TFLOP/s");
        assert_eq!(si(Some(14.12e9), "FLOP/s"), "14.1 GFLOP/s");
        assert_eq!(si(Some(999.7), "W"), "1.00 kW");
        assert_eq!(si(Some(0.5), "W"), "0.50 W");
        assert_eq!(si(None, "W"), "–");
    }
}
