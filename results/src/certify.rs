//! Certifications: the verdicts of a run against a spec, stored in the tables `certifications` and
//! `verdicts` (schema version 2, `docs/SCHEMA.md`).
//!
//! [`Store::store_certification`] replaces an earlier certification of the same run with the same
//! spec name, in one transaction; [`Store::certifications`] reads them back, with their verdicts, for
//! the report.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::store::Store;
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

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Store {
    /// Stores the verdicts of run `run_id` against the spec `spec_name` (whose text is
    /// `spec_toml`), with the spec's SHA-256, the time and the overall status. An earlier
    /// certification of the same run with the same spec name is replaced. An unknown run is
    /// [`StoreError::UnknownRun`].
    pub fn store_certification(
        &mut self,
        run_id: &str,
        spec_name: &str,
        spec_toml: &str,
        verdicts: &[Verdict],
    ) -> Result<(), StoreError> {
        let known = self
            .conn
            .query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
            .optional()
            .map_err(self.err("looking up a run"))?;
        if known.is_none() {
            return Err(StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run_id.to_string(),
            });
        }
        let mut rows = Vec::with_capacity(verdicts.len());
        for v in verdicts {
            let subjects = serde_json::to_string(&v.evidence.subjects)
                .map_err(|e| StoreError::invalid("verdict subjects", e.to_string()))?;
            rows.push((v, subjects));
        }
        let path = &self.path.clone();
        let err = |op| move |e| StoreError::sql(path, op, e);
        let tx = self
            .conn
            .transaction()
            .map_err(err("storing a certification"))?;
        tx.execute(
            "DELETE FROM verdicts WHERE certification_id IN \
             (SELECT certification_id FROM certifications WHERE run_id = ?1 AND spec_name = ?2)",
            params![run_id, spec_name],
        )
        .map_err(err("replacing a certification"))?;
        tx.execute(
            "DELETE FROM certifications WHERE run_id = ?1 AND spec_name = ?2",
            params![run_id, spec_name],
        )
        .map_err(err("replacing a certification"))?;
        let id: i64 = tx
            .query_row(
                "INSERT INTO certifications (run_id, spec_name, spec_toml, spec_sha256, certified_at_ns, \
                 status, hallmark_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING certification_id",
                params![
                    run_id,
                    spec_name,
                    spec_toml,
                    sha256_hex(spec_toml),
                    now_ns(),
                    overall(verdicts).as_str(),
                    env!("CARGO_PKG_VERSION")
                ],
                |r| r.get(0),
            )
            .map_err(err("storing a certification"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO verdicts (certification_id, seq, criterion, title, scope, subject, status, \
                     measured, limit_value, comparison, unit, from_ns, to_ns, subjects_json, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(err("storing verdicts"))?;
            for (seq, (v, subjects)) in rows.iter().enumerate() {
                stmt.execute(params![
                    id,
                    seq as i64,
                    v.criterion,
                    v.title,
                    v.scope.as_str(),
                    v.subject,
                    v.status.as_str(),
                    v.measured.filter(|x| x.is_finite()),
                    v.limit.filter(|x| x.is_finite()),
                    v.comparison.as_str(),
                    v.unit,
                    v.evidence.from_ns,
                    v.evidence.to_ns,
                    subjects,
                    v.evidence.detail
                ])
                .map_err(err("storing verdicts"))?;
            }
        }
        tx.commit().map_err(err("storing a certification"))
    }

    /// The certifications of a run, oldest first, each with its verdicts. A run without any gives
    /// an empty list; an unknown run is [`StoreError::UnknownRun`].
    pub fn certifications(&self, run_id: &str) -> Result<Vec<Certification>, StoreError> {
        let known = self
            .conn
            .query_row("SELECT 1 FROM runs WHERE run_id = ?1", [run_id], |_| Ok(()))
            .optional()
            .map_err(self.err("looking up a run"))?;
        if known.is_none() {
            return Err(StoreError::UnknownRun {
                path: self.path.clone(),
                run_id: run_id.to_string(),
            });
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT certification_id, spec_name, spec_toml, spec_sha256, certified_at_ns, status, \
                 hallmark_version FROM certifications WHERE run_id = ?1 \
                 ORDER BY certified_at_ns, certification_id",
            )
            .map_err(self.err("reading certifications"))?;
        type Head = (i64, String, String, String, i64, String, String);
        let heads: Vec<Head> = stmt
            .query_map([run_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading certifications"))?;
        let mut out = Vec::with_capacity(heads.len());
        for (id, spec_name, spec_toml, spec_sha256, at, status, version) in heads {
            out.push(Certification {
                run_id: run_id.to_string(),
                spec_name,
                spec_toml,
                spec_sha256,
                certified_at_ns: at,
                status: self.parse_status(&status)?,
                hallmark_version: version,
                verdicts: self.verdicts(id)?,
            });
        }
        Ok(out)
    }

    fn parse_status(&self, s: &str) -> Result<Status, StoreError> {
        Status::parse(s).ok_or_else(|| self.corrupt(format!("verdict status {s:?} cannot be read")))
    }

    pub(crate) fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn verdicts(&self, certification_id: i64) -> Result<Vec<Verdict>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT criterion, title, scope, subject, status, measured, limit_value, comparison, unit, \
                 from_ns, to_ns, subjects_json, detail FROM verdicts WHERE certification_id = ?1 ORDER BY seq",
            )
            .map_err(self.err("reading verdicts"))?;
        type Row = (
            String,
            String,
            String,
            String,
            String,
            Option<f64>,
            Option<f64>,
            String,
            String,
            Option<i64>,
            Option<i64>,
            String,
            String,
        );
        let rows: Vec<Row> = stmt
            .query_map([certification_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading verdicts"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (
            criterion,
            title,
            scope,
            subject,
            status,
            measured,
            limit,
            cmp,
            unit,
            from,
            to,
            subjects,
            detail,
        ) in rows
        {
            let scope = Scope::parse(&scope)
                .ok_or_else(|| self.corrupt(format!("verdict scope {scope:?} cannot be read")))?;
            let comparison = match cmp.as_str() {
                ">=" => Comparison::AtLeast,
                "<=" => Comparison::AtMost,
                other => {
                    return Err(self.corrupt(format!("verdict comparison {other:?} cannot be read")))
                }
            };
            let subjects: Vec<String> = serde_json::from_str(&subjects)
                .map_err(|e| self.corrupt(format!("verdict subjects cannot be read: {e}")))?;
            out.push(Verdict {
                criterion,
                title,
                scope,
                subject,
                status: self.parse_status(&status)?,
                measured,
                limit,
                comparison,
                unit,
                evidence: Evidence {
                    from_ns: from,
                    to_ns: to,
                    subjects,
                    detail,
                },
            });
        }
        Ok(out)
    }
}
