//! A minimal emptiness sweep, so that scaling a workload to zero removes its nodes.
//!
//! Only emptiness: a node whose non-daemon pods have all been gone for its NodePool's
//! `consolidateAfter` is handed to graceful termination (its claim becomes `Terminating`); the
//! core's lifecycle, run by the provisioner's pass, drains and terminates it. Both
//! consolidation policies include emptiness. Consolidating underutilized nodes (delete or
//! replace), disruption budgets, expiry and drift are the sweeper's job and not simulated here.

use std::collections::BTreeMap;

use nodewright_core::api::ConsolidationPolicy;
use nodewright_core::labels;
use nodewright_core::lifecycle;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, Clock, PortResult};

use crate::cluster::{PodStatus, SimCluster};
use crate::error::{Error, Result};
use crate::store::SimClaimStore;

/// A node the sweep removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    pub node: String,
    pub nodepool: String,
    pub instance_id: Option<String>,
    pub claim_id: Option<String>,
    /// How long it had been empty.
    pub empty_for_ms: Millis,
}

/// Remembers since when each node has been empty.
#[derive(Debug, Default)]
pub struct EmptinessSweep {
    empty_since: BTreeMap<String, Millis>,
}

impl EmptinessSweep {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes the nodes that have been empty for their pool's `consolidateAfter`.
    pub fn sweep(&mut self, cluster: &SimCluster, store: &SimClaimStore) -> Result<Vec<Removal>> {
        let now = cluster.clock.now();
        // Reads go straight to the cluster's state: they run every tick, and a port call
        // would copy every pod each time. Writes go through the ports, as the sweeper's do.
        let after: BTreeMap<String, Millis> = cluster
            .nodepools()
            .iter()
            .filter(|p| p.validate().is_ok())
            .filter(|p| match p.spec.disruption.consolidation_policy {
                ConsolidationPolicy::WhenEmpty | ConsolidationPolicy::WhenEmptyOrUnderutilized => true,
            })
            // `Never` (None) keeps the pool's nodes.
            .filter_map(|p| Some((p.name().to_string(), p.consolidate_after().ok()??)))
            .collect();
        let nodes = cluster.nodes();
        let busy = cluster.workload_pods_per_node();
        self.empty_since
            .retain(|name, _| nodes.iter().any(|n| &n.name == name));
        let mut removals = Vec::new();
        for node in &nodes {
            let pool = node.labels.get(labels::NODEPOOL);
            let Some((pool, wait)) = pool.and_then(|p| Some((p, *after.get(p)?))) else {
                self.empty_since.remove(&node.name);
                continue;
            };
            if busy.contains_key(&node.name) {
                self.empty_since.remove(&node.name);
                continue;
            }
            let since = *self.empty_since.entry(node.name.clone()).or_insert(now);
            if now - since < wait {
                continue;
            }
            let removal = Removal {
                node: node.name.clone(),
                nodepool: pool.clone(),
                instance_id: node.instance_id().map(str::to_string),
                claim_id: None,
                empty_for_ms: now - since,
            };
            let removal = hand_off(cluster, store, removal, now)
                .map_err(|e| Error::port(format!("removing empty node {}", node.name), e))?;
            self.empty_since.remove(&node.name);
            removals.extend(removal);
        }
        Ok(removals)
    }
}

/// Hands the node's claim to graceful termination (the core's lifecycle drains the node and
/// terminates it on the next pass); `None` if it has no live claim to hand over.
fn hand_off(
    cluster: &SimCluster,
    store: &SimClaimStore,
    mut removal: Removal,
    now: Millis,
) -> PortResult<Option<Removal>> {
    let claim = match &removal.instance_id {
        Some(id) => pollster::block_on(store.find_by_instance(id))?,
        None => None,
    };
    let Some(claim) = claim.filter(|c| c.state.is_live()) else {
        return Ok(None);
    };
    // A node launched for pods still on their way (pending, or on a node being drained) is
    // not empty: it is waiting for them, as Karpenter's nominations keep such a node.
    let awaited = claim.pods.iter().any(|key| match cluster.pod(key) {
        Some((_, PodStatus::Bound)) => cluster
            .pod(key)
            .and_then(|(p, _)| p.node_name)
            .and_then(|n| cluster.node(&n))
            .is_some_and(|n| n.unschedulable || n.deleting),
        Some(_) => true,
        None => false,
    });
    if awaited {
        return Ok(None);
    }
    let grace = cluster
        .nodepools()
        .iter()
        .find(|p| p.name() == claim.nodepool)
        .and_then(lifecycle::termination_grace);
    let reason = format!("empty for {}s", removal.empty_for_ms / 1000);
    let next = lifecycle::start_termination(&claim, &reason, grace, now);
    let stored = pollster::block_on(store.update(&next))?;
    removal.claim_id = Some(stored.id);
    Ok(Some(removal))
}
