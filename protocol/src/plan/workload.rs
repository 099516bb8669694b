//! A phase's `workload`: its kind and the parameters of the kinds that take some (latency mesh,
//! collectives, target power), each checked with a [`PlanError`] at the offending value.

use std::ops::Range;

use toml::Spanned;

use super::errors::{one_of, Cx};
use super::file::{SizeFile, WorkloadFile, WorkloadParams};
use super::{PlanError, WORKLOAD_KINDS};
use crate::fabric::{
    CollectiveAlgorithm, CollectiveOp, CollectiveParams, CollectiveTransport, FabricParams,
    LatencyParams, MAX_COLLECTIVE_ITERATIONS,
};
use crate::message::Workload;

/// Smallest and largest latency test packet, bytes: header and tag take 40; the largest is the UDP
/// payload of a 1500-byte Ethernet frame over IPv4.
pub const PACKET_BYTES_RANGE: (i64, i64) = (40, 1472);
/// Smallest and largest collective message size, bytes (f32 elements: at least one).
pub const COLLECTIVE_SIZE_RANGE: (u64, u64) = (4, 4 << 30);
/// Highest accepted power target per device, W.
pub const MAX_TARGET_W: f64 = 5000.0;

/// A workload as the plan gives it.
pub(super) struct WorkloadSpec {
    pub(super) workload: Workload,
    pub(super) fabric: Option<FabricParams>,
    pub(super) target_power_w: Option<f64>,
}

/// The parameter keys each workload kind takes.
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "latency" => &["packet_bytes"],
        "collective" => &[
            "ops",
            "min_size",
            "max_size",
            "algorithm",
            "iterations",
            "transport",
        ],
        "target-power" => &["target_w"],
        _ => &[],
    }
}

pub(super) fn convert_workload(
    cx: &Cx,
    ctx: &str,
    w: &Spanned<WorkloadFile>,
) -> Result<WorkloadSpec, PlanError> {
    let f = w.get_ref();
    let kind_span = f.kind_span.clone().unwrap_or_else(|| w.span());
    let workload = match f.kind.as_str() {
        "burn" => Workload::Burn,
        "idle" => Workload::Idle,
        "latency" => Workload::Latency,
        "collective" => Workload::Collective,
        "memory-bandwidth" => Workload::MemoryBandwidth,
        "target-power" => Workload::TargetPower,
        other => {
            return Err(cx.err(
                kind_span,
                format!(
                    "{ctx}unknown workload `{other}`; expected one of {}",
                    one_of(WORKLOAD_KINDS)
                ),
            ))
        }
    };
    refuse_foreign_keys(cx, ctx, &f.kind, &f.params)?;
    let p = &f.params;
    let mut spec = WorkloadSpec {
        workload: workload.clone(),
        fabric: None,
        target_power_w: None,
    };
    match workload {
        Workload::Latency => {
            let mut params = LatencyParams::default();
            if let Some(b) = &p.packet_bytes {
                let (lo, hi) = PACKET_BYTES_RANGE;
                let v = *b.get_ref();
                if !(lo..=hi).contains(&v) {
                    return Err(cx.err(
                        b.span(),
                        format!("{ctx}`packet_bytes` = {v} is not allowed; give {lo} to {hi} bytes (UDP payload of one test packet)"),
                    ));
                }
                params.packet_bytes = v as u32;
            }
            spec.fabric = Some(FabricParams::Latency(params));
        }
        Workload::Collective => {
            spec.fabric = Some(FabricParams::Collective(collective(cx, ctx, p)?));
        }
        Workload::TargetPower => {
            let Some(t) = &p.target_w else {
                return Err(cx.err(
                    w.span(),
                    format!("{ctx}a `target-power` workload needs `target_w`, the power each device is held at in W, e.g. workload = {{ kind = \"target-power\", target_w = 600 }}"),
                ));
            };
            let v = *t.get_ref();
            if !(v.is_finite() && v > 0.0 && v <= MAX_TARGET_W) {
                return Err(cx.err(
                    t.span(),
                    format!("{ctx}`target_w` = {v} is not allowed; give a power per device greater than 0 and at most {MAX_TARGET_W} W"),
                ));
            }
            spec.target_power_w = Some(v);
        }
        Workload::Burn | Workload::Idle | Workload::MemoryBandwidth => {}
    }
    Ok(spec)
}

fn refuse_foreign_keys(
    cx: &Cx,
    ctx: &str,
    kind: &str,
    p: &WorkloadParams,
) -> Result<(), PlanError> {
    let given: [(&str, Option<Range<usize>>); 8] = [
        ("packet_bytes", p.packet_bytes.as_ref().map(Spanned::span)),
        ("ops", p.ops.as_ref().map(Spanned::span)),
        ("min_size", p.min_size.as_ref().map(Spanned::span)),
        ("max_size", p.max_size.as_ref().map(Spanned::span)),
        ("algorithm", p.algorithm.as_ref().map(Spanned::span)),
        ("iterations", p.iterations.as_ref().map(Spanned::span)),
        ("transport", p.transport.as_ref().map(Spanned::span)),
        ("target_w", p.target_w.as_ref().map(Spanned::span)),
    ];
    let takes = keys_of(kind);
    for (key, span) in given {
        if let Some(span) = span {
            if !takes.contains(&key) {
                let what = if takes.is_empty() {
                    "takes no parameters".to_string()
                } else {
                    format!("takes {}", one_of(takes))
                };
                return Err(cx.err(
                    span,
                    format!("{ctx}`{key}` does not apply to a `{kind}` workload, which {what}"),
                ));
            }
        }
    }
    Ok(())
}

fn collective(cx: &Cx, ctx: &str, p: &WorkloadParams) -> Result<CollectiveParams, PlanError> {
    let mut out = CollectiveParams::default();
    if let Some(ops) = &p.ops {
        let names: Vec<&str> = CollectiveOp::ALL.iter().map(|o| o.name()).collect();
        if ops.get_ref().is_empty() {
            return Err(cx.err(
                ops.span(),
                format!(
                    "{ctx}`ops` is empty; name at least one of {}",
                    one_of(&names)
                ),
            ));
        }
        let mut list = Vec::new();
        for o in ops.get_ref() {
            let Some(op) = CollectiveOp::from_name(o.get_ref()) else {
                return Err(cx.err(
                    o.span(),
                    format!(
                        "{ctx}unknown collective `{}`; expected one of {}",
                        o.get_ref(),
                        one_of(&names)
                    ),
                ));
            };
            if list.contains(&op) {
                return Err(cx.err(
                    o.span(),
                    format!("{ctx}collective `{}` is named twice in `ops`", o.get_ref()),
                ));
            }
            list.push(op);
        }
        out.ops = list;
    }
    if let Some(v) = &p.min_size {
        out.min_bytes = size(cx, ctx, "min_size", v)?;
    }
    if let Some(v) = &p.max_size {
        out.max_bytes = size(cx, ctx, "max_size", v)?;
    }
    if out.min_bytes > out.max_bytes {
        let span = p
            .max_size
            .as_ref()
            .or(p.min_size.as_ref())
            .map(Spanned::span)
            .unwrap_or(0..0);
        return Err(cx.err(
            span,
            format!(
                "{ctx}`min_size` ({} bytes) is larger than `max_size` ({} bytes)",
                out.min_bytes, out.max_bytes
            ),
        ));
    }
    if let Some(i) = &p.iterations {
        let v = *i.get_ref();
        let max = i64::from(MAX_COLLECTIVE_ITERATIONS);
        if !(1..=max).contains(&v) {
            return Err(cx.err(
                i.span(),
                format!("{ctx}`iterations` = {v} is not allowed; give 1 to {max} timed iterations per size"),
            ));
        }
        out.iterations = Some(v as u32);
    }
    if let Some(t) = &p.transport {
        out.transport = CollectiveTransport::from_name(t.get_ref()).ok_or_else(|| {
            cx.err(
                t.span(),
                format!(
                    "{ctx}unknown transport `{}`; expected one of auto, data-plane, nccl",
                    t.get_ref()
                ),
            )
        })?;
    }
    if let Some(a) = &p.algorithm {
        out.algorithm = match CollectiveAlgorithm::from_name(a.get_ref()) {
            Some(CollectiveAlgorithm::Nccl) | None => None,
            Some(a) => Some(a),
        }
        .ok_or_else(|| {
            cx.err(
                a.span(),
                format!(
                    "{ctx}unknown algorithm `{}`; expected one of auto, ring, latency-optimal",
                    a.get_ref()
                ),
            )
        })?;
    }
    Ok(out)
}

fn size(cx: &Cx, ctx: &str, key: &str, v: &Spanned<SizeFile>) -> Result<u64, PlanError> {
    let (lo, hi) = COLLECTIVE_SIZE_RANGE;
    let parsed = match v.get_ref() {
        SizeFile::Bytes(b) => u64::try_from(*b).ok(),
        SizeFile::Text(t) => parse_size(t),
    };
    match parsed {
        Some(b) if (lo..=hi).contains(&b) => Ok(b),
        _ => Err(cx.err(
            v.span(),
            format!("{ctx}`{key}` must be a size from {lo} bytes to 4 GiB: a number of bytes or a string such as \"8B\", \"64KiB\", \"256MiB\", \"1GiB\""),
        )),
    }
}

/// `"64MiB"`, `"64 MiB"`, `"512KiB"`, `"8B"`, `"8"`: binary units (KiB = 1024 bytes; K, M, G mean the
/// same). `None` for anything else.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" | "KB" => 10,
        "M" | "MiB" | "MB" => 20,
        "G" | "GiB" | "GB" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("8B"), Some(8));
        assert_eq!(parse_size("8"), Some(8));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size(" 64 MiB "), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("1.5MiB"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("-8"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }
}
