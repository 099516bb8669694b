//! The plan file as written: private structs that mirror the TOML, with the spans of their values.
//!
//! Reading checks only the shape (keys, TOML types); every value is checked when `convert` turns
//! these into a [`Plan`](super::Plan).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::errors::one_of;
use super::WORKLOAD_KINDS;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanFile {
    pub(super) name: Spanned<String>,
    pub(super) sample_hz: Option<Spanned<f64>>,
    pub(super) expect: Spanned<ExpectFile>,
    pub(super) limits: Option<LimitsFile>,
    #[serde(default)]
    pub(super) phase: Vec<Spanned<PhaseFile>>,
}

/// `[expect.racks]`: rack name → node ids.
pub(super) type RacksFile = BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpectFile {
    pub(super) nodes: Option<Spanned<i64>>,
    pub(super) racks: Option<Spanned<RacksFile>>,
    pub(super) devices_per_node: Option<Spanned<i64>>,
    pub(super) timeout_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub(super) max_rack_kw: Option<Spanned<f64>>,
    pub(super) max_node_kw: Option<Spanned<f64>>,
    pub(super) max_gpu_temp_c: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PhaseFile {
    pub(super) name: Spanned<String>,
    pub(super) workload: Spanned<WorkloadFile>,
    pub(super) duration_s: Spanned<f64>,
    pub(super) pattern: Option<Spanned<PatternFile>>,
}

/// `workload = "burn"` or `workload = { kind = "burn" }`; the table form is where workloads with
/// parameters (collectives, latency meshes, target power) put them.
pub(super) struct WorkloadFile {
    pub(super) kind: String,
    /// The span of `kind` in the table form; the string form uses the whole value's span.
    pub(super) kind_span: Option<Range<usize>>,
    /// The parameters of the table form (every key any kind takes; which apply is checked later).
    pub(super) params: WorkloadParams,
}

/// A byte size: an integer number of bytes or a string with a binary unit (`"64MiB"`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum SizeFile {
    Bytes(i64),
    Text(String),
}

#[derive(Default)]
pub(super) struct WorkloadParams {
    pub(super) packet_bytes: Option<Spanned<i64>>,
    pub(super) ops: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) min_size: Option<Spanned<SizeFile>>,
    pub(super) max_size: Option<Spanned<SizeFile>>,
    pub(super) algorithm: Option<Spanned<String>>,
    pub(super) iterations: Option<Spanned<i64>>,
    pub(super) transport: Option<Spanned<String>>,
    pub(super) target_w: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadTable {
    kind: Spanned<String>,
    packet_bytes: Option<Spanned<i64>>,
    ops: Option<Spanned<Vec<Spanned<String>>>>,
    min_size: Option<Spanned<SizeFile>>,
    max_size: Option<Spanned<SizeFile>>,
    algorithm: Option<Spanned<String>>,
    iterations: Option<Spanned<i64>>,
    transport: Option<Spanned<String>>,
    target_w: Option<Spanned<f64>>,
}

impl<'de> Deserialize<'de> for WorkloadFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WorkloadFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a workload name ({}) or a table {{ kind = \"...\" }}",
                    one_of(WORKLOAD_KINDS)
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WorkloadFile, E> {
                Ok(WorkloadFile {
                    kind: v.to_string(),
                    kind_span: None,
                    params: WorkloadParams::default(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WorkloadFile, A::Error> {
                let t = WorkloadTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let span = t.kind.span();
                Ok(WorkloadFile {
                    kind: t.kind.into_inner(),
                    kind_span: Some(span),
                    params: WorkloadParams {
                        packet_bytes: t.packet_bytes,
                        ops: t.ops,
                        min_size: t.min_size,
                        max_size: t.max_size,
                        algorithm: t.algorithm,
                        iterations: t.iterations,
                        transport: t.transport,
                        target_w: t.target_w,
                    },
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Every key of every pattern kind; which ones a kind takes is checked after reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PatternFile {
    pub(super) kind: Spanned<String>,
    pub(super) level: Option<Spanned<f64>>,
    pub(super) from: Option<Spanned<f64>>,
    pub(super) to: Option<Spanned<f64>>,
    pub(super) levels: Option<Spanned<Vec<Spanned<f64>>>>,
    pub(super) step_s: Option<Spanned<f64>>,
    pub(super) low: Option<Spanned<f64>>,
    pub(super) high: Option<Spanned<f64>>,
    pub(super) period_s: Option<Spanned<f64>>,
    pub(super) duty: Option<Spanned<f64>>,
    pub(super) start_hz: Option<Spanned<f64>>,
    pub(super) end_hz: Option<Spanned<f64>>,
}
