//! PodDisruptionBudgets: applying them, counting what each covers, and the violations a node
//! deletion causes.

use nodewright_core::pdb::PodDisruptionBudget;

use super::{ClusterState, PodStatus, SimCluster};

impl SimCluster {
    /// Creates or replaces a PodDisruptionBudget (by namespace and name).
    pub fn apply_pdb(&self, pdb: PodDisruptionBudget) {
        let mut state = self.state();
        state
            .pdbs
            .retain(|p| (&p.namespace, &p.name) != (&pdb.namespace, &pdb.name));
        state.pdbs.push(pdb);
    }

    /// Times a PodDisruptionBudget was broken by a pod deletion (eviction never breaks one;
    /// deleting a node with its pods can).
    pub fn pdb_violations(&self) -> usize {
        self.state().pdb_violations
    }
}

impl ClusterState {
    /// (expected, healthy) pods a budget covers: every non-terminal pod it selects, and those
    /// of them bound (running).
    pub(super) fn budget_counts(&self, pdb: &PodDisruptionBudget) -> (u32, u32) {
        let mut expected = 0;
        let mut healthy = 0;
        for e in self
            .pods
            .values()
            .filter(|e| !e.pod.terminal && pdb.selects(&e.pod))
        {
            expected += 1;
            if e.status == PodStatus::Bound {
                healthy += 1;
            }
        }
        (expected, healthy)
    }

    /// Budgets kept now, by index.
    pub(super) fn budgets_kept(&self) -> Vec<bool> {
        self.pdbs
            .iter()
            .map(|b| {
                let (expected, healthy) = self.budget_counts(b);
                healthy >= b.desired_healthy(expected)
            })
            .collect()
    }
}
