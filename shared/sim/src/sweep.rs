//! A minimal emptiness sweep, so that scaling a workload to zero removes its nodes.
//!
//! Only emptiness: a node whose non-daemon pods have all been gone for its NodePool's
//! `consolidateAfter` is cordoned, deleted, its instance terminated and its claim closed. Both
//! consolidation policies include emptiness. Consolidating underutilized nodes (delete or
//! replace), disruption budgets, expiry and drift are the sweeper's job and not simulated here.

use std::collections::BTreeMap;

use nodewright_core::api::ConsolidationPolicy;
use nodewright_core::labels;
use nodewright_core::nodeclaim::{AuditRecord, ClaimState};
use nodewright_core::pod::{Millis, Taint, TaintEffect};
use nodewright_core::ports::{ClaimStore, Clock, Cloud, Cluster, PortResult};

use crate::cloud::SimCloud;
use crate::cluster::SimCluster;
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
    pub fn sweep(
        &mut self,
        cluster: &SimCluster,
        cloud: &SimCloud,
        store: &SimClaimStore,
        actor: &str,
    ) -> Result<Vec<Removal>> {
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
            let removal = remove(cluster, cloud, store, removal, actor, now)
                .map_err(|e| Error::port(format!("removing empty node {}", node.name), e))?;
            self.empty_since.remove(&node.name);
            removals.push(removal);
        }
        Ok(removals)
    }
}

/// Cordon, close the claim as terminating, delete the Node, terminate the instance, close the
/// claim as terminated — the order the sweeper's termination follows.
fn remove(
    cluster: &SimCluster,
    cloud: &SimCloud,
    store: &SimClaimStore,
    mut removal: Removal,
    actor: &str,
    now: Millis,
) -> PortResult<Removal> {
    let taint = Taint::new(labels::DISRUPTED_TAINT, None, TaintEffect::NoSchedule);
    pollster::block_on(cluster.cordon(&removal.node, &taint))?;
    let claim = match &removal.instance_id {
        Some(id) => pollster::block_on(store.find_by_instance(id))?,
        None => None,
    };
    let reason = format!("empty for {}s", removal.empty_for_ms / 1000);
    let claim = match claim.filter(|c| c.state.is_live()) {
        Some(mut c) => {
            c.state = ClaimState::Terminating;
            c.reason = Some(reason.clone());
            Some(pollster::block_on(store.update(&c))?)
        }
        None => None,
    };
    pollster::block_on(cluster.delete_node(&removal.node))?;
    if let Some(id) = &removal.instance_id {
        pollster::block_on(cloud.terminate(id))?;
    }
    if let Some(mut c) = claim {
        c.state = ClaimState::Terminated;
        let c = pollster::block_on(store.update(&c))?;
        let price = c.instance.as_ref().map_or(0.0, |i| i.price);
        pollster::block_on(store.audit(&AuditRecord {
            at: now,
            actor: actor.to_string(),
            action: "terminate".into(),
            claim_id: c.id.clone(),
            reason,
            delta_per_hour: -price,
        }))?;
        removal.claim_id = Some(c.id);
    }
    Ok(removal)
}
