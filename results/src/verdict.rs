//! Verdicts: the judgement of one certification criterion at one scope, with the measured value, the
//! limit, the unit and the evidence it rests on.
//!
//! A verdict is PASS, WARN, FAIL or INCOMPLETE. INCOMPLETE means the evidence the criterion needs is
//! not in the run (a sensor that was absent, a workload that did not run, a device that reported
//! nothing): it is never turned into a PASS. The run's overall verdict is the worst of its verdicts,
//! in the order FAIL > INCOMPLETE > WARN > PASS.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome of one criterion at one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Incomplete,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Incomplete => "INCOMPLETE",
            Status::Fail => "FAIL",
        }
    }

    /// The process exit code of a certification with this overall status: 0 PASS (and WARN),
    /// 1 FAIL, 2 INCOMPLETE.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Pass | Status::Warn => 0,
            Status::Fail => 1,
            Status::Incomplete => 2,
        }
    }

    /// Parses the stored form (`PASS`, `WARN`, `FAIL`, `INCOMPLETE`).
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "PASS" => Some(Status::Pass),
            "WARN" => Some(Status::Warn),
            "INCOMPLETE" => Some(Status::Incomplete),
            "FAIL" => Some(Status::Fail),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where in the hall a verdict applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Device,
    Node,
    Rack,
    Row,
    Hall,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Device => "device",
            Scope::Node => "node",
            Scope::Rack => "rack",
            Scope::Row => "row",
            Scope::Hall => "hall",
        }
    }

    /// Parses the stored and spec-file form (`device`, `node`, `rack`, `row`, `hall`).
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "device" => Some(Scope::Device),
            "node" => Some(Scope::Node),
            "rack" => Some(Scope::Rack),
            "row" => Some(Scope::Row),
            "hall" => Some(Scope::Hall),
            _ => None,
        }
    }
}

/// What a verdict rests on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// The time window the measurement covers (coordinator clock, ns), if it is one.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// The devices the measurement covers, as `node/index`, or the nodes, as `node`.
    pub subjects: Vec<String>,
    /// How the value was obtained, in words (e.g. "highest 20 s rolling mean of rack power in phase
    /// steady, 200 bins of 100 ms"), or why there is no value.
    pub detail: String,
}

/// One criterion judged at one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The criterion's id in the spec (e.g. `rack-sustained-power`).
    pub criterion: String,
    /// The criterion's human title.
    pub title: String,
    pub scope: Scope,
    /// What is judged: the hall's name, a row, a rack, a node id, or `node/index` for a device.
    pub subject: String,
    pub status: Status,
    /// The measured value in `unit`; `None` when there is no evidence (INCOMPLETE).
    pub measured: Option<f64>,
    /// The limit in `unit`, and how it applies (`>=` or `<=`).
    pub limit: Option<f64>,
    pub comparison: Comparison,
    pub unit: String,
    pub evidence: Evidence,
}

/// How a measured value is held against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// The value must be at least the limit.
    #[serde(rename = ">=")]
    AtLeast,
    /// The value must be at most the limit.
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::AtLeast => ">=",
            Comparison::AtMost => "<=",
        }
    }
}

/// The overall status of a set of verdicts: the worst of them; INCOMPLETE when there are none.
pub fn overall(verdicts: &[Verdict]) -> Status {
    verdicts
        .iter()
        .map(|v| v.status)
        .max()
        .unwrap_or(Status::Incomplete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(status: Status) -> Verdict {
        Verdict {
            criterion: "c".into(),
            title: "t".into(),
            scope: Scope::Rack,
            subject: "r".into(),
            status,
            measured: Some(1.0),
            limit: Some(2.0),
            comparison: Comparison::AtMost,
            unit: "kW".into(),
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn overall_is_the_worst_and_nothing_is_incomplete() {
        assert_eq!(overall(&[]), Status::Incomplete);
        assert_eq!(overall(&[v(Status::Pass), v(Status::Warn)]), Status::Warn);
        assert_eq!(
            overall(&[v(Status::Incomplete), v(Status::Warn)]),
            Status::Incomplete
        );
        assert_eq!(
            overall(&[v(Status::Incomplete), v(Status::Fail), v(Status::Pass)]),
            Status::Fail
        );
        assert_eq!(Status::Fail.exit_code(), 1);
        assert_eq!(Status::Incomplete.exit_code(), 2);
        assert_eq!(Status::Warn.exit_code(), 0);
    }

    #[test]
    fn forms_round_trip() {
        for s in [Status::Pass, Status::Warn, Status::Incomplete, Status::Fail] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for s in [
            Scope::Device,
            Scope::Node,
            Scope::Rack,
            Scope::Row,
            Scope::Hall,
        ] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        let json = serde_json::to_string(&v(Status::Fail)).unwrap();
        assert!(json.contains("\"FAIL\"") && json.contains("\"<=\"") && json.contains("\"rack\""));
    }
}
