//! The versions of the software under each probe's load (driver, libraries, kernel) as its
//! Hello listed them: table `probe_software` (schema version 8), one row per run, node and name.
//! Written beside the probe ([`Store::add_probe_software`]), read into the run's context
//! ([`crate::RunContext`]) for the context diff of `hallmark compare`.

use crate::error::StoreError;
use crate::model::RunId;
use crate::store::Store;
use hallmark_protocol::{NodeId, SoftwareVersion};
use std::collections::BTreeMap;

impl Store {
    /// Stores the software versions of probe `node` of run `run` (added with
    /// [`Store::add_probe`] first, else [`StoreError::UnknownNode`]), replacing any it had: a
    /// probe that registers again lists what it runs now. A name listed twice keeps its last
    /// version.
    pub fn add_probe_software(
        &mut self,
        run: &RunId,
        node: &NodeId,
        software: &[SoftwareVersion],
    ) -> Result<(), StoreError> {
        self.node_key(run, node)?;
        self.db
            .transaction(|db| {
                db.execute(
                    "DELETE FROM probe_software WHERE run_id = ?1 AND node_id = ?2",
                    &[run.as_str().into(), node.as_str().into()],
                )?;
                for s in software {
                    db.execute(
                        "INSERT INTO probe_software (run_id, node_id, name, version) \
                         VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (run_id, node_id, name) DO UPDATE SET version = excluded.version",
                        &[
                            run.as_str().into(),
                            node.as_str().into(),
                            s.name.as_str().into(),
                            s.version.as_str().into(),
                        ],
                    )?;
                }
                Ok(())
            })
            .map_err(self.db_err("storing a probe's software versions"))
    }

    /// Each probe's software of run `run_id` as node → (name, version) pairs sorted by name;
    /// a probe that listed none is absent.
    pub(crate) fn probe_software(
        &self,
        run_id: &str,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, StoreError> {
        let rows = self
            .db
            .query_map(
                "SELECT node_id, name, version FROM probe_software WHERE run_id = ?1 \
                 ORDER BY node_id, name",
                &[run_id.into()],
                |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?)),
            )
            .map_err(self.db_err("reading the probes' software versions"))?;
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (node, name, version) in rows {
            out.entry(node).or_default().push((name, version));
        }
        Ok(out)
    }
}
