//! Findings: what a walk of a facility service found wrong or suspicious, each with its kind, the
//! URI it is about, a sentence for people (what and what to do) and the numbers behind it.

use serde::Serialize;
use std::collections::BTreeMap;

/// The kinds of finding, as they appear in `--json` (`snake_case`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A resource could not be read or parsed; what it would have given is absent.
    Unreadable,
    /// A Sensor named by a `DataSourceUri` could not be read: the reading stands, without its
    /// reading time, interval or accuracy.
    SensorUnreadable,
    /// A reading the walk needs is not there.
    MissingReading,
    /// A reading is there but is not a number.
    MalformedReading,
    /// A reading is outside its physical range (see `Quantity::range`).
    OutOfRange,
    /// A reading's `ReadingTime` is further from now than allowed.
    StaleReading,
    /// A `ReadingTime` that is no RFC 3339 date-time.
    BadReadingTime,
    /// Coolant density or specific heat stated by the service but not physical.
    BadCoolant,
    /// ρ · c_p · flow · ΔT disagrees with the reported `HeatRemovedkW`.
    HeatMismatch,
    /// The reported ΔT disagrees with return − supply.
    DeltaTMismatch,
    /// Coolant returns colder than it is supplied while flowing.
    ReturnColderThanSupply,
    /// A CDU's primary and secondary loops report different heat.
    PrimarySecondaryMismatch,
    /// A chassis's power disagrees with the sum of its power supplies' input power.
    PsuInputMismatch,
    /// A PDU's outlets together draw more than the PDU.
    OutletsExceedPdu,
    /// The walk stopped at its resource or time bound; what was not read is absent.
    WalkBounded,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub uri: String,
    pub message: String,
    /// The numbers behind it, named with their units (`heat_removed_kw`, `age_s`, …).
    pub values: BTreeMap<String, f64>,
    /// The `ReadingTime` involved, for stale or malformed reading times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reading_time: Option<String>,
}

impl Finding {
    pub fn new(kind: FindingKind, uri: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            kind,
            uri: uri.into(),
            message: message.into(),
            values: BTreeMap::new(),
            reading_time: None,
        }
    }

    /// Adds a number behind the finding.
    pub fn with(mut self, name: &str, value: f64) -> Finding {
        self.values.insert(name.to_string(), value);
        self
    }

    /// Adds a number when there is one.
    pub fn with_opt(self, name: &str, value: Option<f64>) -> Finding {
        match value {
            Some(v) => self.with(name, v),
            None => self,
        }
    }
}
