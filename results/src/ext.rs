//! [`StoreExt`]: the summaries and certifications of this crate as methods of the store, so that
//! `store.run_summary(run)` reads as it did when the store lived in this crate. Each method is the
//! free function of the same name.

use crate::certify::{certifications, store_certification, Certification};
use crate::fabric::{fabric_summary, FabricSummary};
use crate::summary::{run_summary, RunSummary};
use crate::verdict::Verdict;
use hallmark_store::{Store, StoreError};

/// Summaries and certifications read from, and stored into, a [`Store`].
pub trait StoreExt {
    /// [`run_summary`](crate::run_summary): the run's [`RunSummary`].
    fn run_summary(&self, run_id: &str) -> Result<RunSummary, StoreError>;
    /// [`fabric_summary`](crate::fabric_summary): the run's fabric phases.
    fn fabric_summary(&self, run_id: &str) -> Result<FabricSummary, StoreError>;
    /// [`store_certification`](crate::store_certification): stores verdicts against a spec.
    fn store_certification(
        &mut self,
        run_id: &str,
        spec_name: &str,
        spec_toml: &str,
        verdicts: &[Verdict],
    ) -> Result<(), StoreError>;
    /// [`certifications`](crate::certifications): the run's certifications, oldest first.
    fn certifications(&self, run_id: &str) -> Result<Vec<Certification>, StoreError>;
}

impl StoreExt for Store {
    fn run_summary(&self, run_id: &str) -> Result<RunSummary, StoreError> {
        run_summary(self, run_id)
    }

    fn fabric_summary(&self, run_id: &str) -> Result<FabricSummary, StoreError> {
        fabric_summary(self, run_id)
    }

    fn store_certification(
        &mut self,
        run_id: &str,
        spec_name: &str,
        spec_toml: &str,
        verdicts: &[Verdict],
    ) -> Result<(), StoreError> {
        store_certification(self, run_id, spec_name, spec_toml, verdicts)
    }

    fn certifications(&self, run_id: &str) -> Result<Vec<Certification>, StoreError> {
        certifications(self, run_id)
    }
}
