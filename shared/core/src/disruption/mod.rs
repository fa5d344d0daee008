//! Disruption sweeps: which nodes to take away, and why — expired, empty, drifted, or
//! underutilized (consolidation) — within NodePool budgets, PodDisruptionBudgets and
//! `karpenter.sh/do-not-disrupt`. A sweep only decides; [`apply`] hands the nodes to graceful
//! termination ([`crate::lifecycle`]) or, when a replacement is needed first, launches it and
//! marks the nodes `Disrupting` until it is initialized.
//!
//! Methods run in Karpenter's order, at most one decision each per sweep: expiration (forceful:
//! no budget, the drain still honours PodDisruptionBudgets and do-not-disrupt up to the pool's
//! `terminationGracePeriod`), emptiness, drift, multi-node consolidation, single-node
//! consolidation. Every consolidation is proven by running the scheduler over the cluster as it
//! would be after the change: the candidates' pods, with all their constraints, must fit on the
//! remaining nodes and claims in flight, plus at most one new node that costs less than the
//! candidates together.
//!
//! Spot rule: a spot node is replaced by a spot node only when at least
//! [`MIN_SPOT_TO_SPOT_TYPES`] instance types cheaper than it can take its pods (Karpenter's
//! rule: fewer would trade price for interruptions); on-demand nodes may be replaced by spot
//! when their pool allows spot.

mod apply;
pub mod budgets;
pub(crate) mod candidates;
mod consolidation;
pub mod drift;

use std::collections::BTreeMap;

pub use apply::{LaunchedReplacement, SweepReport, apply};
pub use budgets::Reason;
pub use candidates::{Candidate, candidates};

use crate::nodeclaim::NodeClaim;
use crate::pdb::PodDisruptionBudget;
use crate::pod::{Millis, Pod};
use crate::scheduler::{ExistingNode, PlannedClaim, PoolInput};

/// Karpenter's minimum of cheaper instance types for replacing a spot node with a spot node.
pub const MIN_SPOT_TO_SPOT_TYPES: usize = 15;

/// Karpenter's cap on multi-node consolidation candidates.
pub const MAX_MULTI_NODE_CANDIDATES: usize = 100;

/// What a sweep looks at.
#[derive(Debug, Clone, Default)]
pub struct SweepInput {
    pub nodes: Vec<ExistingNode>,
    /// Live claims.
    pub claims: Vec<NodeClaim>,
    pub pools: Vec<PoolInput>,
    pub daemonsets: Vec<Pod>,
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Pods waiting for capacity (they count as unhealthy for PodDisruptionBudgets).
    pub pending: Vec<Pod>,
    /// Offerings recently out of capacity: replacements are planned without them.
    pub unavailable: crate::unavailable::UnavailableOfferings,
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Per node class, the AMIs its selector resolves to now (see [`drift`]).
    pub images: BTreeMap<String, std::collections::BTreeSet<String>>,
    pub now: Millis,
}

/// One disruption.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub reason: Reason,
    /// The nodes taken away, with their claims.
    pub candidates: Vec<Candidate>,
    /// The new node(s) their pods need, launched before they are drained.
    pub replacements: Vec<PlannedClaim>,
    /// $/h: the candidates' price less the replacements'.
    pub savings_per_hour: f64,
}

impl Decision {
    pub fn nodes(&self) -> Vec<String> {
        self.candidates.iter().map(|c| c.node.clone()).collect()
    }
}

/// What a sweep decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepPlan {
    /// Claims whose node's pods changed since the last sweep: written with the new pod hash
    /// and event time (`consolidateAfter` counts from it).
    pub pod_events: Vec<NodeClaim>,
    pub decisions: Vec<Decision>,
    /// Settled nodes a voluntary disruption may not take, and why.
    pub blocked: Vec<Protected>,
}

/// A node no voluntary disruption may take, and what protects it (a do-not-disrupt pod or
/// annotation, a PodDisruptionBudget, a pod that fits nowhere else).
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    pub node: String,
    pub reason: String,
}

/// Decides one sweep.
pub fn plan_sweep(input: &SweepInput) -> SweepPlan {
    let mut plan = SweepPlan {
        pod_events: candidates::pod_events(input),
        ..SweepPlan::default()
    };
    let all = candidates(input);
    plan.blocked = all
        .iter()
        .filter(|c| c.settled)
        .filter_map(|c| {
            Some(Protected {
                node: c.node.clone(),
                reason: c.blocked_by.clone()?,
            })
        })
        .collect();
    let mut budget = candidates::Budgets::new(input);
    let mut taken: Vec<String> = Vec::new();

    // Expiration: forceful, whatever the budgets.
    let expired: Vec<Candidate> = all.iter().filter(|c| c.expired).cloned().collect();
    if !expired.is_empty() {
        taken.extend(expired.iter().map(|c| c.claim.id.clone()));
        plan.decisions.push(Decision {
            reason: Reason::Expired,
            savings_per_hour: 0.0,
            candidates: expired,
            replacements: Vec::new(),
        });
    }
    let open = |c: &&Candidate, taken: &[String]| !taken.contains(&c.claim.id);

    // Emptiness: every empty node whose pods have settled, as far as the budgets go.
    let mut empty = Vec::new();
    for c in all.iter().filter(|c| c.empty && c.settled && c.disruptable) {
        if open(&c, &taken) && budget.take(&c.claim.nodepool, Reason::Empty) {
            empty.push(c.clone());
        }
    }
    if !empty.is_empty() {
        taken.extend(empty.iter().map(|c| c.claim.id.clone()));
        plan.decisions.push(Decision {
            reason: Reason::Empty,
            savings_per_hour: empty.iter().fold(0.0, |sum, c| sum + c.price),
            candidates: empty,
            replacements: Vec::new(),
        });
    }

    // Drift: the first drifted node the budgets allow, replaced.
    for c in all.iter().filter(|c| c.drifted && c.disruptable) {
        if !open(&c, &taken) || !budget.allows(&c.claim.nodepool, Reason::Drifted) {
            continue;
        }
        if let Some(replacements) = consolidation::replacements_for_drift(input, c) {
            budget.take(&c.claim.nodepool, Reason::Drifted);
            taken.push(c.claim.id.clone());
            let cost: f64 = replacements.iter().map(|r| r.chosen.price).sum();
            plan.decisions.push(Decision {
                reason: Reason::Drifted,
                savings_per_hour: c.price - cost,
                candidates: vec![c.clone()],
                replacements,
            });
            break;
        }
    }

    // Consolidation: pools with WhenEmptyOrUnderutilized, settled, disruptable nodes.
    let consolidatable: Vec<Candidate> = all
        .iter()
        .filter(|c| c.underutilized_allowed && c.settled && c.disruptable && !c.empty)
        .filter(|c| open(c, &taken))
        .filter(|c| budget.allows(&c.claim.nodepool, Reason::Underutilized))
        .cloned()
        .collect();
    if let Some(decision) = consolidation::multi_node(input, &consolidatable, &mut budget) {
        taken.extend(decision.candidates.iter().map(|c| c.claim.id.clone()));
        plan.decisions.push(decision);
    }
    let remaining: Vec<Candidate> = consolidatable
        .into_iter()
        .filter(|c| !taken.contains(&c.claim.id))
        .collect();
    if let Some(decision) = consolidation::single_node(input, &remaining, &mut budget) {
        plan.decisions.push(decision);
    }
    plan
}

#[cfg(test)]
mod tests;
