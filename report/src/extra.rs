//! Sections assembled from several sources: the floor map (summary racks and verdicts), the GPU
//! temperature distribution with the hottest devices (the sample pass and the inventory). The
//! interconnect section is in `fabric`.

use super::charts::RackLabel;
use super::data::RunContext;
use super::floor::{self, FloorCell};
use super::html::{figure, Section};
use super::samples::SampleStats;
use super::style::esc;
use super::tables::{self, HotDevice};
use super::verdicts::PowerLimit;
use super::{chart, ReportError};
use hallmark_results::verdict::Status;
use hallmark_results::RunSummary;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

/// How many of the hottest devices are listed.
const HOTTEST: usize = 10;

/// The hall floor map.
pub fn floor_section(
    s: &RunSummary,
    labels: &[RackLabel],
    targets: &[PowerLimit],
) -> Result<Section, ReportError> {
    let halls: BTreeSet<&str> = s.racks.iter().map(|r| r.hall.as_str()).collect();
    let cells: Vec<FloorCell> = s
        .racks
        .iter()
        .zip(labels)
        .map(|(r, l)| FloorCell {
            row: if halls.len() > 1 {
                format!("{}/{}", r.hall, r.row)
            } else {
                r.row.clone()
            },
            rack: r.rack.clone(),
            sustained_kw: r.sustained_kw,
            max_gpu_temp_c: r.max_gpu_temp_c,
            throttle_s: r.throttle_s,
            status: l.status,
        })
        .collect();
    if cells.is_empty() {
        return Ok(Section {
            id: "floor",
            title: "Hall floor map",
            body: "<p class=\"note\">No probes registered in this run: no racks to map.</p>\n"
                .into(),
        });
    }
    let target = targets.iter().map(|t| t.kw).reduce(f64::max);
    let svg = chart("floor map", floor::floor_map(&cells, target))?;
    let mut caption = String::from(
        "Each cell is a rack, rows of the hall top to bottom; colour: the rack's sustained power \
         (highest mean over its sustained window), with its hottest GPU; outline: the worst verdict of \
         the rack, its nodes and devices; \"throttled\": a GPU of the rack slowed by heat, a hardware \
         slowdown or the power brake.",
    );
    let flagged: Vec<String> = labels
        .iter()
        .filter_map(|l| match l.status {
            Some(st) if st != Status::Pass => Some(format!("{} {}", esc(&l.name), st.as_str())),
            _ => None,
        })
        .collect();
    if !flagged.is_empty() {
        let _ = write!(caption, " <b>Not passing: {}.</b>", flagged.join(", "));
    }
    Ok(Section {
        id: "floor",
        title: "Hall floor map",
        body: figure(Some(svg), &caption, ""),
    })
}

/// The distribution of each device's highest GPU temperature and the hottest devices.
pub fn temperature_section(
    s: &RunSummary,
    ctx: &RunContext,
    stats: &SampleStats,
) -> Result<Section, ReportError> {
    let info: HashMap<(&str, i64), &super::data::DeviceInfo> = ctx
        .devices
        .iter()
        .map(|d| ((d.node.as_str(), d.device), d))
        .collect();
    let mut hot: Vec<HotDevice> = stats
        .device_max
        .iter()
        .filter_map(|(&(i, device), &max_c)| {
            let p = ctx.probes.get(i)?;
            Some(HotDevice {
                node: p.node.clone(),
                rack: p.rack.clone(),
                device,
                max_c,
                info: info.get(&(p.node.as_str(), device)).map(|d| (*d).clone()),
            })
        })
        .collect();
    hot.sort_by(|a, b| {
        b.max_c
            .total_cmp(&a.max_c)
            .then_with(|| a.node.cmp(&b.node))
            .then_with(|| a.device.cmp(&b.device))
    });
    let maxima: Vec<f64> = hot.iter().map(|d| d.max_c).collect();
    let lowest = |f: fn(&super::data::DeviceInfo) -> Option<f64>| {
        ctx.devices
            .iter()
            .filter_map(f)
            .filter(|v| v.is_finite())
            .reduce(f64::min)
    };
    let op = lowest(|d| d.max_operating_temp_c);
    let slow = lowest(|d| d.slowdown_temp_c);
    let svg = chart(
        "GPU temperature",
        floor::temperature_histogram(&maxima, op, slow),
    )?;
    let over = hot
        .iter()
        .filter(|d| {
            d.info
                .as_ref()
                .and_then(|i| i.max_operating_temp_c)
                .is_some_and(|op| d.max_c > op)
        })
        .count();
    let caption = format!(
        "{} devices with a GPU temperature; {} above their max operating temperature (red bars are at \
         or above the lowest max operating temperature{}). Hall maximum {} °C.",
        maxima.len(),
        over,
        op.map(|v| format!(", {v:.0} °C")).unwrap_or_default(),
        super::style::num(s.max_gpu_temp_c, 1)
    );
    let mut body = figure(
        svg,
        &caption,
        "No GPU temperature was stored for this run (no samples, or the sensor is absent).",
    );
    if !hot.is_empty() {
        let _ = write!(
            body,
            "<h3>Hottest {} devices</h3>{}",
            hot.len().min(HOTTEST),
            tables::hottest(&hot[..hot.len().min(HOTTEST)])
        );
    }
    Ok(Section {
        id: "temperature",
        title: "GPU temperatures",
        body,
    })
}
