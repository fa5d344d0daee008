//! Which nodes a sweep may disrupt, and what it knows about each.

use std::collections::{BTreeMap, BTreeSet};

use super::budgets::{self, Reason};
use super::{SweepInput, drift};
use crate::api::ConsolidationPolicy;
use crate::catalog::CapacityType;
use crate::lifecycle::termination::must_move;
use crate::nodeclaim::{ClaimState, NodeClaim};
use crate::pod::Pod;
use crate::scheduler::PoolInput;

/// A node of ours that a sweep looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub claim: NodeClaim,
    pub node: String,
    /// The pods that would have to move.
    pub pods: Vec<Pod>,
    /// $/h.
    pub price: f64,
    pub capacity_type: CapacityType,
    pub empty: bool,
    /// No pod has come or gone for the pool's `consolidateAfter` (false when it is `Never`).
    pub settled: bool,
    /// The pool consolidates underutilized nodes (`WhenEmptyOrUnderutilized`).
    pub underutilized_allowed: bool,
    /// Nothing forbids a voluntary disruption; otherwise `blocked_by` says what does.
    pub disruptable: bool,
    pub blocked_by: Option<String>,
    pub expired: bool,
    pub drifted: bool,
    /// Karpenter's ordering: pods weighted by priority, scaled by the lifetime left.
    pub disruption_cost: f64,
}

/// What evicting the pod costs, as Karpenter weighs it: 1, plus its
/// `controller.kubernetes.io/pod-deletion-cost` over 2²⁷ and its priority over 2²⁵ (so the
/// extremes count as about 16 pods either way), clamped to [-10, 10].
pub fn eviction_cost(pod: &Pod) -> f64 {
    (1.0 + f64::from(pod.deletion_cost) / 134_217_728.0 + f64::from(pod.priority) / 33_554_432.0)
        .clamp(-10.0, 10.0)
}

/// Every initialized node of ours, cheapest to disrupt first.
pub fn candidates(input: &SweepInput) -> Vec<Candidate> {
    let by_instance: BTreeMap<&str, &NodeClaim> = input
        .claims
        .iter()
        .filter_map(|c| Some((c.instance_id()?, c)))
        .collect();
    let pdb_counts = pdb_counts(input);
    let mut out = Vec::new();
    for n in &input.nodes {
        let Some(claim) = n.node.instance_id().and_then(|id| by_instance.get(id)) else {
            continue;
        };
        if claim.state != ClaimState::Initialized || n.node.deleting || n.node.unschedulable {
            continue;
        }
        let Some(pool) = input.pools.iter().find(|p| p.nodepool.name() == claim.nodepool) else {
            continue;
        };
        let pods: Vec<Pod> = n.pods.iter().filter(|p| must_move(p)).cloned().collect();
        let now = input.now;
        let start = claim
            .initialized_at
            .or(claim.registered_at)
            .unwrap_or(claim.created_at);
        let event_at = match claim.disruption.pods_hash {
            Some(h) if h == pods_hash(&pods) => claim.disruption.pod_event_at.unwrap_or(start),
            // The pods changed since the last sweep: that is the latest event.
            Some(_) => now,
            // Never looked at: the node's start is the last event.
            None => start,
        };
        let settled = match pool.nodepool.consolidate_after() {
            Ok(Some(after)) => now.saturating_sub(event_at) >= after,
            _ => false,
        };
        let expire_after = pool.nodepool.expire_after().ok().flatten();
        let launched = claim.launched_at.unwrap_or(claim.created_at);
        let age = now.saturating_sub(launched);
        let expired = expire_after.is_some_and(|e| age >= e);
        let blocked_by = blocked_by(&n.node, &pods, input, &pdb_counts);
        let lifetime_left = expire_after.map_or(1.0, |e| (1.0 - age as f64 / e as f64).clamp(0.0, 1.0));
        let cost: f64 = pods.iter().map(eviction_cost).sum();
        let instance = claim.instance.as_ref();
        out.push(Candidate {
            claim: (*claim).clone(),
            node: n.node.name.clone(),
            price: price(claim, pool),
            capacity_type: instance.map_or(CapacityType::OnDemand, |i| i.capacity_type),
            empty: pods.is_empty(),
            settled,
            underutilized_allowed: pool.nodepool.spec.disruption.consolidation_policy
                == ConsolidationPolicy::WhenEmptyOrUnderutilized,
            disruptable: blocked_by.is_none(),
            blocked_by,
            expired,
            drifted: drift::drifted(
                claim,
                &n.node,
                pool,
                input
                    .images
                    .get(pool.nodeclass.name())
                    .unwrap_or(&BTreeSet::new()),
            )
            .is_some(),
            disruption_cost: cost * lifetime_left,
            pods,
        });
    }
    out.sort_by(|a, b| {
        a.disruption_cost
            .total_cmp(&b.disruption_cost)
            .then(b.price.total_cmp(&a.price))
            .then(a.node.cmp(&b.node))
    });
    out
}

/// What the node paid at launch, or the catalog's price when that was lost (an adopted launch).
fn price(claim: &NodeClaim, pool: &PoolInput) -> f64 {
    let Some(i) = claim.instance.as_ref() else {
        return 0.0;
    };
    if i.price > 0.0 {
        return i.price;
    }
    pool.instance_types
        .iter()
        .find(|t| t.name == i.instance_type)
        .and_then(|t| {
            t.offerings
                .iter()
                .find(|o| o.zone == i.zone && o.capacity_type == i.capacity_type)
        })
        .map_or(0.0, |o| o.price)
}

/// Why a node may not be disrupted voluntarily, if anything forbids it.
fn blocked_by(
    node: &crate::pod::Node,
    pods: &[Pod],
    input: &SweepInput,
    pdb_counts: &[(u32, u32)],
) -> Option<String> {
    if node.do_not_disrupt {
        return Some("the node is annotated karpenter.sh/do-not-disrupt".into());
    }
    if let Some(p) = pods.iter().find(|p| p.do_not_disrupt) {
        return Some(format!(
            "pod {} is annotated karpenter.sh/do-not-disrupt",
            p.key()
        ));
    }
    if let Some(p) = pods.iter().find(|p| p.owner_kind.is_none()) {
        return Some(format!("pod {} has no controller to recreate it", p.key()));
    }
    for (i, pdb) in input.pdbs.iter().enumerate() {
        if !pods.iter().any(|p| pdb.selects(p)) {
            continue;
        }
        let (expected, healthy) = pdb_counts[i];
        if pdb.disruptions_allowed(expected, healthy) == 0 {
            return Some(format!(
                "PodDisruptionBudget {}/{} allows no disruption now",
                pdb.namespace, pdb.name
            ));
        }
    }
    None
}

/// (expected, healthy) pods of each budget: every pod it selects, and those bound.
fn pdb_counts(input: &SweepInput) -> Vec<(u32, u32)> {
    input
        .pdbs
        .iter()
        .map(|pdb| {
            let bound = input
                .nodes
                .iter()
                .flat_map(|n| n.pods.iter())
                .filter(|p| !p.terminal && pdb.selects(p))
                .count() as u32;
            let pending = input.pending.iter().filter(|p| pdb.selects(p)).count() as u32;
            (bound + pending, bound)
        })
        .collect()
}

/// A hash of the pods that would have to move (their keys, sorted).
pub(super) fn pods_hash(pods: &[Pod]) -> u64 {
    let mut keys: Vec<String> = pods.iter().map(Pod::key).collect();
    keys.sort();
    crate::stable_hash::fnv1a(&keys)
}

/// Claims whose node's pods changed since the last sweep, with the new hash and time.
pub(super) fn pod_events(input: &SweepInput) -> Vec<NodeClaim> {
    let by_instance: BTreeMap<&str, &NodeClaim> = input
        .claims
        .iter()
        .filter(|c| c.state == ClaimState::Initialized)
        .filter_map(|c| Some((c.instance_id()?, c)))
        .collect();
    let mut out = Vec::new();
    for n in &input.nodes {
        let Some(claim) = n.node.instance_id().and_then(|id| by_instance.get(id)) else {
            continue;
        };
        let pods: Vec<Pod> = n.pods.iter().filter(|p| must_move(p)).cloned().collect();
        let hash = pods_hash(&pods);
        if claim.disruption.pods_hash != Some(hash) {
            let mut next = (*claim).clone();
            // The first look is not an event: the node's start is.
            if claim.disruption.pods_hash.is_some() {
                next.disruption.pod_event_at = Some(input.now);
            }
            next.disruption.pods_hash = Some(hash);
            out.push(next);
        }
    }
    out
}

/// Disruption allowances per pool, as decisions take them.
pub(super) struct Budgets<'a> {
    input: &'a SweepInput,
    /// (nodes, disrupting) per pool.
    counts: BTreeMap<String, (usize, usize)>,
}

impl<'a> Budgets<'a> {
    pub(super) fn new(input: &'a SweepInput) -> Self {
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for c in input.claims.iter().filter(|c| c.state != ClaimState::Terminated) {
            let entry = counts.entry(c.nodepool.clone()).or_default();
            entry.0 += 1;
            if matches!(c.state, ClaimState::Disrupting | ClaimState::Terminating) {
                entry.1 += 1;
            }
        }
        Budgets { input, counts }
    }

    pub(super) fn allows(&self, pool: &str, reason: Reason) -> bool {
        let Some(p) = self.input.pools.iter().find(|p| p.nodepool.name() == pool) else {
            return false;
        };
        let (total, disrupting) = self.counts.get(pool).copied().unwrap_or_default();
        budgets::allowed(&p.nodepool, reason, total, disrupting, self.input.now) > 0
    }

    /// Takes one node of the pool's allowance; false (and nothing taken) when none is left.
    pub(super) fn take(&mut self, pool: &str, reason: Reason) -> bool {
        if !self.allows(pool, reason) {
            return false;
        }
        self.counts.entry(pool.to_string()).or_default().1 += 1;
        true
    }

    /// Whether all of `pools` (one entry per node) fit the allowances together.
    pub(super) fn allows_all(&self, pools: &[&str], reason: Reason) -> bool {
        let mut extra: BTreeMap<&str, usize> = BTreeMap::new();
        for p in pools {
            *extra.entry(p).or_default() += 1;
        }
        extra.iter().all(|(pool, n)| {
            let Some(p) = self.input.pools.iter().find(|p| p.nodepool.name() == *pool) else {
                return false;
            };
            let (total, disrupting) = self.counts.get(*pool).copied().unwrap_or_default();
            budgets::allowed(&p.nodepool, reason, total, disrupting, self.input.now) >= *n
        })
    }
}
