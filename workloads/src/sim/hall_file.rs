//! The raw shape of a hall file as serde reads it, and how a byte offset in the file becomes a line,
//! a column and a key for error messages.
//!
//! Every number is read [`Spanned`] so that a range check after parsing still points at the value.
//! Sections and optional keys are `Option`s here; [`super::hall`] fills in the defaults and checks
//! ranges and references.

pub(super) use hallmark_protocol::textpos::line_col;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHall {
    pub name: Spanned<String>,
    pub seed: Spanned<u64>,
    pub rows: Spanned<u16>,
    pub racks_per_row: Spanned<u16>,
    pub nodes_per_rack: Spanned<u16>,
    pub gpus_per_node: Spanned<u16>,
    #[serde(default)]
    pub gpu: RawGpu,
    #[serde(default)]
    pub node: RawNode,
    #[serde(default)]
    pub coolant: RawCoolant,
    #[serde(default)]
    pub faults: RawFaults,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGpu {
    pub model: Option<Spanned<String>>,
    pub power_limit_w: Option<Spanned<f64>>,
    pub idle_power_w: Option<Spanned<f64>>,
    pub slowdown_temp_c: Option<Spanned<f64>>,
    pub shutdown_temp_c: Option<Spanned<f64>>,
    pub max_operating_temp_c: Option<Spanned<f64>>,
    pub memory_gib: Option<Spanned<u32>>,
    pub max_sm_clock_mhz: Option<Spanned<u32>>,
    pub idle_sm_clock_mhz: Option<Spanned<u32>>,
    pub thermal_time_constant_s: Option<Spanned<f64>>,
    pub cold_plate_resistance_k_per_w: Option<Spanned<f64>>,
    pub efficiency_spread: Option<Spanned<f64>>,
    pub resistance_spread: Option<Spanned<f64>>,
    pub peak_tflops: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub base_load_w: Option<Spanned<f64>>,
    pub psu_efficiency: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCoolant {
    pub setpoint_c: Option<Spanned<f64>>,
    pub capacity_kw: Option<Spanned<f64>>,
    pub rise_k_per_kw: Option<Spanned<f64>>,
    pub lag_s: Option<Spanned<f64>>,
    pub capture_fraction: Option<Spanned<f64>>,
    pub flow_lpm: Option<Spanned<f64>>,
    #[serde(default)]
    pub rack: OneOrMany<RawRackCoolant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRackCoolant {
    pub name: Spanned<String>,
    pub setpoint_c: Option<Spanned<f64>>,
    pub capacity_kw: Option<Spanned<f64>>,
    pub flow_lpm: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFaults {
    #[serde(default)]
    pub weak_cold_plate: OneOrMany<RawWeakColdPlate>,
    #[serde(default)]
    pub undersized_cooling: OneOrMany<RawUndersizedCooling>,
    #[serde(default)]
    pub slow_link: OneOrMany<RawSlowLink>,
    #[serde(default)]
    pub pdu_reads_low: OneOrMany<RawPduReadsLow>,
    #[serde(default)]
    pub cdu_low_flow: OneOrMany<RawCduLowFlow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeakColdPlate {
    pub node: Spanned<String>,
    pub device: Spanned<u16>,
    pub factor: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUndersizedCooling {
    pub rack: Spanned<String>,
    pub capacity_kw: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlowLink {
    pub node: Spanned<String>,
    pub extra_latency_us: Spanned<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPduReadsLow {
    pub rack: Spanned<String>,
    pub factor: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCduLowFlow {
    pub rack: Spanned<String>,
    pub fraction: Spanned<f64>,
}

/// One table (`key = { … }`, `[key]`) or an array of them (`[[key]]`, `key = [{ … }]`).
#[derive(Debug)]
pub(super) struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table or an array of tables")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| OneOrMany(vec![t]))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The keys of the inline tables (`key = { …`) still open at the end of `before` (one line).
fn inline_parents(before: &str) -> Vec<String> {
    let mut open: Vec<usize> = Vec::new();
    let mut in_string = false;
    for (i, c) in before.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '{' if !in_string => open.push(i),
            '}' if !in_string => {
                open.pop();
            }
            _ => {}
        }
    }
    open.iter()
        .filter_map(|&i| {
            let head = before[..i].trim_end().strip_suffix('=')?.trim_end();
            let start = head
                .char_indices()
                .rev()
                .find(|(_, c)| !is_key_char(*c))
                .map_or(0, |(i, c)| i + c.len_utf8());
            let k = head[start..].replace('"', "");
            (!k.is_empty()).then_some(k)
        })
        .collect()
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// The line holding byte `offset`, and a caret line under `span` (clipped to that line).
pub(super) fn excerpt(text: &str, offset: usize, len: usize) -> String {
    let offset = floor_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line_text = text[start..end].trim_end_matches('\r');
    if line_text.trim().is_empty() {
        return String::new();
    }
    let (line, col) = line_col(text, offset);
    let width = text[offset..end].chars().count().clamp(1, len.max(1));
    let gutter = line.to_string().len();
    format!(
        "\n {line} | {line_text}\n {} | {}{}",
        " ".repeat(gutter),
        " ".repeat(col - 1),
        "^".repeat(width)
    )
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"')
}

/// The dotted key whose value or name sits at byte `offset`: the table header above it (`[gpu]`,
/// `[[faults.slow_link]]`) joined with the key on its line (the one before the last `=` preceding
/// the offset, or the one starting at the offset). A best effort for messages: `None` if unclear.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    let rest = &text[offset..];
    let at: String = match rest.strip_prefix('"') {
        // A quoted key or string: up to its closing quote.
        Some(inner) => inner
            .find('"')
            .map_or_else(String::new, |end| rest[..end + 2].to_string()),
        None => rest.chars().take_while(|c| is_key_char(*c)).collect(),
    };
    let key = if !at.is_empty() && text[offset + at.len()..].trim_start().starts_with('=') {
        // The offset is at a key.
        at
    } else if let Some(eq) = before.rfind('=') {
        // The offset is at a value: the key is the one before the `=`.
        let head = before[..eq].trim_end();
        let start = head
            .char_indices()
            .rev()
            .find(|(_, c)| !is_key_char(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        head[start..].to_string()
    } else {
        String::new()
    };
    let key = key.replace('"', "");
    if key.is_empty() {
        return None;
    }
    let mut path = inline_parents(before);
    path.push(key);
    let key = path.join(".");
    let header = text[..line_start].lines().rev().find_map(|l| {
        let t = l.trim();
        t.starts_with('[').then(|| {
            t.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .replace('"', "")
        })
    });
    match header {
        Some(h) if !h.is_empty() => Some(format!("{h}.{key}")),
        _ => Some(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_columns_and_keys() {
        let text = "name = \"x\"\n[gpu]\npower_limit_w = \"a\"\n[[faults.slow_link]]\nnode = \"é\", extra = 3\n";
        assert_eq!(line_col(text, 0), (1, 1));
        let v = text.find("\"a\"").unwrap();
        assert_eq!(line_col(text, v), (3, 17));
        assert_eq!(key_at(text, v).as_deref(), Some("gpu.power_limit_w"));
        assert_eq!(
            key_at(text, text.find("power").unwrap()).as_deref(),
            Some("gpu.power_limit_w")
        );
        let three = text.find('3').unwrap();
        assert_eq!(
            key_at(text, three).as_deref(),
            Some("faults.slow_link.extra")
        );
        assert_eq!(line_col(text, three), (5, 21));
        assert_eq!(key_at(text, 7).as_deref(), Some("name"));
        let inline = "[faults]\nslow_link = { node = \"a=b\", bogus = 1, x = { y = 2 } }\n";
        let at = |s: &str| key_at(inline, inline.find(s).unwrap());
        assert_eq!(at("bogus").as_deref(), Some("faults.slow_link.bogus"));
        assert_eq!(at("1,").as_deref(), Some("faults.slow_link.bogus"));
        assert_eq!(at("\"a").as_deref(), Some("faults.slow_link.node"));
        assert_eq!(at("2 ").as_deref(), Some("faults.slow_link.x.y"));
        let ex = excerpt(text, v, 3);
        assert!(
            ex.contains("3 | power_limit_w = \"a\"") && ex.ends_with("^^^"),
            "{ex}"
        );
        // Offsets past the end or inside a character do not panic.
        let _ = (
            line_col(text, 10_000),
            key_at(text, 10_000),
            excerpt(text, 10_000, 1),
        );
        let e = text.find('é').unwrap() + 1;
        let _ = (line_col(text, e), key_at(text, e), excerpt(text, e, 4));
    }
}
