//! Certifications: the verdicts of a run against a spec, stored in the tables `certifications` and
//! `verdicts` (schema version 2, `docs/SCHEMA.md`), as flat rows ([`CertificationRow`],
//! [`VerdictRow`]); what a verdict means is `hallmark-results`' business.
//!
//! [`Store::store_certification_rows`] replaces an earlier certification of the same run with the same
//! spec name, in one transaction; [`Store::certification_rows`] reads them back, with their verdicts,
//! oldest first.

use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::store::Store;

/// One stored verdict: a criterion judged at one subject (columns of the table `verdicts`).
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictRow {
    /// The criterion's id in the spec.
    pub criterion: String,
    pub title: String,
    /// `hall`, `row`, `rack`, `node` or `device`.
    pub scope: String,
    pub subject: String,
    /// `PASS`, `FAIL`, `INCOMPLETE` (as the results crate writes it).
    pub status: String,
    /// Absent (`None`) when nothing was measured; a non-finite value is stored as absent.
    pub measured: Option<f64>,
    pub limit: Option<f64>,
    /// `>=` or `<=`.
    pub comparison: String,
    pub unit: String,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// The subjects the evidence covers, as a JSON array of strings.
    pub subjects_json: String,
    pub detail: String,
}

/// One run certified against one spec (a row of `certifications`), with its verdicts in stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificationRow {
    pub spec_name: String,
    /// The spec file as evaluated.
    pub spec_toml: String,
    /// SHA-256 of `spec_toml`, lowercase hex.
    pub spec_sha256: String,
    /// When the verdicts were stored, ns since the UNIX epoch (the certifying machine's clock).
    pub certified_at_ns: i64,
    /// The overall status, as stored.
    pub status: String,
    /// The hallmark version that stored it.
    pub hallmark_version: String,
    pub verdicts: Vec<VerdictRow>,
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
    fn known_run(&self, run_id: &str) -> Result<(), StoreError> {
        if self.has_run(run_id)? {
            return Ok(());
        }
        Err(StoreError::UnknownRun {
            path: self.path.clone(),
            run_id: run_id.to_string(),
        })
    }

    /// Stores the verdicts of run `run_id` against the spec `spec_name` (whose text is
    /// `spec_toml`), with the spec's SHA-256, the time and the overall `status`. An earlier
    /// certification of the same run with the same spec name is replaced. An unknown run is
    /// [`StoreError::UnknownRun`].
    pub fn store_certification_rows(
        &mut self,
        run_id: &str,
        spec_name: &str,
        spec_toml: &str,
        status: &str,
        verdicts: &[VerdictRow],
    ) -> Result<(), StoreError> {
        self.known_run(run_id)?;
        let path = &self.path.clone();
        let err = |op| move |e| StoreError::sql(path, op, e);
        let tx = self
            .sqlite_mut()?
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
                    status,
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
            for (seq, v) in verdicts.iter().enumerate() {
                stmt.execute(params![
                    id,
                    seq as i64,
                    v.criterion,
                    v.title,
                    v.scope,
                    v.subject,
                    v.status,
                    v.measured.filter(|x| x.is_finite()),
                    v.limit.filter(|x| x.is_finite()),
                    v.comparison,
                    v.unit,
                    v.from_ns,
                    v.to_ns,
                    v.subjects_json,
                    v.detail
                ])
                .map_err(err("storing verdicts"))?;
            }
        }
        tx.commit().map_err(err("storing a certification"))
    }

    /// The certifications of a run, oldest first, each with its verdicts. A run without any gives
    /// an empty list; an unknown run is [`StoreError::UnknownRun`].
    pub fn certification_rows(&self, run_id: &str) -> Result<Vec<CertificationRow>, StoreError> {
        self.known_run(run_id)?;
        let mut stmt = self.sqlite()?
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
            out.push(CertificationRow {
                spec_name,
                spec_toml,
                spec_sha256,
                certified_at_ns: at,
                status,
                hallmark_version: version,
                verdicts: self.verdicts(id)?,
            });
        }
        Ok(out)
    }

    fn verdicts(&self, certification_id: i64) -> Result<Vec<VerdictRow>, StoreError> {
        let mut stmt = self.sqlite()?
            .prepare_cached(
                "SELECT criterion, title, scope, subject, status, measured, limit_value, comparison, unit, \
                 from_ns, to_ns, subjects_json, detail FROM verdicts WHERE certification_id = ?1 ORDER BY seq",
            )
            .map_err(self.err("reading verdicts"))?;
        stmt.query_map([certification_id], |r| {
            Ok(VerdictRow {
                criterion: r.get(0)?,
                title: r.get(1)?,
                scope: r.get(2)?,
                subject: r.get(3)?,
                status: r.get(4)?,
                measured: r.get(5)?,
                limit: r.get(6)?,
                comparison: r.get(7)?,
                unit: r.get(8)?,
                from_ns: r.get(9)?,
                to_ns: r.get(10)?,
                subjects_json: r.get(11)?,
                detail: r.get(12)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err("reading verdicts"))
    }
}
