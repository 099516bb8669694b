//! Certifications: the verdicts of a run against a spec, stored in the tables `certifications` and
//! `verdicts` (schema version 2, `docs/SCHEMA.md`), as flat rows ([`CertificationRow`],
//! [`VerdictRow`]); what a verdict means is `hallmark-results`' business.
//!
//! [`Store::store_certification_rows`] replaces an earlier certification of the same run with the same
//! spec name, in one transaction; [`Store::certification_rows`] reads them back, with their verdicts,
//! oldest first.

use sha2::{Digest, Sha256};

use crate::db::DbError;
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
        let res = self.db.transaction(|db| {
            let replacing = |e| Step("replacing a certification", Box::new(e));
            db.execute(
                "DELETE FROM verdicts WHERE certification_id IN \
                 (SELECT certification_id FROM certifications WHERE run_id = ?1 AND spec_name = ?2)",
                &[run_id.into(), spec_name.into()],
            )
            .map_err(replacing)?;
            db.execute(
                "DELETE FROM certifications WHERE run_id = ?1 AND spec_name = ?2",
                &[run_id.into(), spec_name.into()],
            )
            .map_err(replacing)?;
            let id = db
                .query_opt(
                    "INSERT INTO certifications (run_id, spec_name, spec_toml, spec_sha256, \
                     certified_at_ns, status, hallmark_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     RETURNING certification_id",
                    &[
                        run_id.into(),
                        spec_name.into(),
                        spec_toml.into(),
                        sha256_hex(spec_toml).into(),
                        now_ns().into(),
                        status.into(),
                        env!("CARGO_PKG_VERSION").into(),
                    ],
                    |r| r.i64(0),
                )?
                .ok_or_else(|| {
                    Step(
                        "storing a certification",
                        Box::new(DbError::Usage {
                            store: db.store().to_owned(),
                            statement: "INSERT INTO certifications … RETURNING".into(),
                            what: "no certification_id returned".into(),
                        }),
                    )
                })?;
            for (seq, v) in verdicts.iter().enumerate() {
                db.execute(
                    "INSERT INTO verdicts (certification_id, seq, criterion, title, scope, subject, status, \
                     measured, limit_value, comparison, unit, from_ns, to_ns, subjects_json, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                    &[
                        id.into(),
                        (seq as i64).into(),
                        v.criterion.as_str().into(),
                        v.title.as_str().into(),
                        v.scope.as_str().into(),
                        v.subject.as_str().into(),
                        v.status.as_str().into(),
                        v.measured.filter(|x| x.is_finite()).into(),
                        v.limit.filter(|x| x.is_finite()).into(),
                        v.comparison.as_str().into(),
                        v.unit.as_str().into(),
                        v.from_ns.into(),
                        v.to_ns.into(),
                        v.subjects_json.as_str().into(),
                        v.detail.as_str().into(),
                    ],
                )
                .map_err(|e| Step("storing verdicts", Box::new(e)))?;
            }
            Ok(())
        });
        res.map_err(|Step(op, e)| StoreError::db(&self.path, op, *e))
    }

    /// The certifications of a run, oldest first, each with its verdicts. A run without any gives
    /// an empty list; an unknown run is [`StoreError::UnknownRun`].
    pub fn certification_rows(&self, run_id: &str) -> Result<Vec<CertificationRow>, StoreError> {
        self.known_run(run_id)?;
        type Head = (i64, String, String, String, i64, String, String);
        let heads: Vec<Head> = self
            .db
            .query_map(
                "SELECT certification_id, spec_name, spec_toml, spec_sha256, certified_at_ns, status, \
                 hallmark_version FROM certifications WHERE run_id = ?1 \
                 ORDER BY certified_at_ns, certification_id",
                &[run_id.into()],
                |r| {
                    Ok((
                        r.i64(0)?,
                        r.text(1)?,
                        r.text(2)?,
                        r.text(3)?,
                        r.i64(4)?,
                        r.text(5)?,
                        r.text(6)?,
                    ))
                },
            )
            .map_err(self.db_err("reading certifications"))?;
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
        self.db
            .query_map(
                "SELECT criterion, title, scope, subject, status, measured, limit_value, comparison, unit, \
                 from_ns, to_ns, subjects_json, detail FROM verdicts WHERE certification_id = ?1 ORDER BY seq",
                &[certification_id.into()],
                |r| {
                    Ok(VerdictRow {
                        criterion: r.text(0)?,
                        title: r.text(1)?,
                        scope: r.text(2)?,
                        subject: r.text(3)?,
                        status: r.text(4)?,
                        measured: r.opt_f64(5)?,
                        limit: r.opt_f64(6)?,
                        comparison: r.text(7)?,
                        unit: r.text(8)?,
                        from_ns: r.opt_i64(9)?,
                        to_ns: r.opt_i64(10)?,
                        subjects_json: r.text(11)?,
                        detail: r.text(12)?,
                    })
                },
            )
            .map_err(self.db_err("reading verdicts"))
    }
}

/// A failure inside the certification's transaction, with what was being done.
struct Step(&'static str, Box<DbError>);

impl From<DbError> for Step {
    fn from(e: DbError) -> Self {
        Step("storing a certification", Box::new(e))
    }
}
