//! Certifications: the verdicts of a run against a spec, stored through the store's flat
//! certification rows ([`hallmark_store::CertificationRow`], tables `certifications` and `verdicts`,
//! `docs/SCHEMA.md`) and read back as [`Certification`]s with their [`Verdict`]s.
//!
//! [`store_certification`] replaces an earlier certification of the same run with the same spec
//! name, in one transaction; [`certifications`] reads them back for the report.

use hallmark_store::{CertificationRow, Store, StoreError, VerdictRow};
use serde::{Deserialize, Serialize};

use crate::verdict::{overall, Comparison, Evidence, Scope, Status, Verdict};

/// One run certified against one spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certification {
    pub run_id: String,
    pub spec_name: String,
    /// The spec file as evaluated.
    pub spec_toml: String,
    /// SHA-256 of `spec_toml`, lowercase hex.
    pub spec_sha256: String,
    /// When the verdicts were stored, ns since the UNIX epoch (the certifying machine's clock).
    pub certified_at_ns: i64,
    /// The worst of the verdicts ([`overall`]).
    pub status: Status,
    /// The hallmark version that evaluated the spec.
    pub hallmark_version: String,
    /// In the order they were stored (the spec's criteria, subjects in hall order).
    pub verdicts: Vec<Verdict>,
}

/// Stores the verdicts of run `run_id` against the spec `spec_name` (whose text is `spec_toml`),
/// with the spec's SHA-256, the time and the overall status. An earlier certification of the same
/// run with the same spec name is replaced. An unknown run is [`StoreError::UnknownRun`].
pub fn store_certification(
    store: &mut Store,
    run_id: &str,
    spec_name: &str,
    spec_toml: &str,
    verdicts: &[Verdict],
) -> Result<(), StoreError> {
    let mut rows = Vec::with_capacity(verdicts.len());
    for v in verdicts {
        let subjects_json =
            serde_json::to_string(&v.evidence.subjects).map_err(|e| StoreError::Invalid {
                what: "verdict subjects",
                detail: e.to_string(),
            })?;
        rows.push(VerdictRow {
            criterion: v.criterion.clone(),
            title: v.title.clone(),
            scope: v.scope.as_str().to_string(),
            subject: v.subject.clone(),
            status: v.status.as_str().to_string(),
            measured: v.measured.filter(|x| x.is_finite()),
            limit: v.limit.filter(|x| x.is_finite()),
            comparison: v.comparison.as_str().to_string(),
            unit: v.unit.clone(),
            from_ns: v.evidence.from_ns,
            to_ns: v.evidence.to_ns,
            subjects_json,
            detail: v.evidence.detail.clone(),
        });
    }
    let status = overall(verdicts).as_str();
    store.store_certification_rows(run_id, spec_name, spec_toml, status, &rows)
}

/// The certifications of a run, oldest first, each with its verdicts. A run without any gives an
/// empty list; an unknown run is [`StoreError::UnknownRun`]; a stored value that cannot be read
/// back is [`StoreError::Corrupt`].
pub fn certifications(store: &Store, run_id: &str) -> Result<Vec<Certification>, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail,
    };
    let parse_status = |s: &str| {
        Status::parse(s).ok_or_else(|| corrupt(format!("verdict status {s:?} cannot be read")))
    };
    let mut out = Vec::new();
    for c in store.certification_rows(run_id)? {
        let CertificationRow {
            spec_name,
            spec_toml,
            spec_sha256,
            certified_at_ns,
            status,
            hallmark_version,
            verdicts,
        } = c;
        let status = parse_status(&status)?;
        let mut vs = Vec::with_capacity(verdicts.len());
        for v in verdicts {
            let scope = Scope::parse(&v.scope)
                .ok_or_else(|| corrupt(format!("verdict scope {:?} cannot be read", v.scope)))?;
            let comparison = match v.comparison.as_str() {
                ">=" => Comparison::AtLeast,
                "<=" => Comparison::AtMost,
                other => {
                    return Err(corrupt(format!(
                        "verdict comparison {other:?} cannot be read"
                    )))
                }
            };
            let subjects: Vec<String> = serde_json::from_str(&v.subjects_json)
                .map_err(|e| corrupt(format!("verdict subjects cannot be read: {e}")))?;
            vs.push(Verdict {
                criterion: v.criterion,
                title: v.title,
                scope,
                subject: v.subject,
                status: parse_status(&v.status)?,
                measured: v.measured,
                limit: v.limit,
                comparison,
                unit: v.unit,
                evidence: Evidence {
                    from_ns: v.from_ns,
                    to_ns: v.to_ns,
                    subjects,
                    detail: v.detail,
                },
            });
        }
        out.push(Certification {
            run_id: run_id.to_string(),
            spec_name,
            spec_toml,
            spec_sha256,
            certified_at_ns,
            status,
            hallmark_version,
            verdicts: vs,
        });
    }
    Ok(out)
}
