//! Consolidation and drift replacement, each proven by the scheduler: the candidates' pods are
//! planned over the cluster without the candidates (other nodes, claims in flight), with no
//! pool (delete) or with every pool (replace), and the plan must place every one of them.

use super::budgets::Reason;
use super::candidates::Budgets;
use super::{Candidate, Decision, MAX_MULTI_NODE_CANDIDATES, MIN_SPOT_TO_SPOT_TYPES, SweepInput};
use crate::catalog::CapacityType;
use crate::pod::Pod;
use crate::scheduler::{self, Input, Plan, PlannedClaim, PlannedOverride, PoolInput};

/// Plans the candidates' pods over the rest of the cluster; `None` if any cannot be placed.
fn simulate(input: &SweepInput, candidates: &[&Candidate], pools: Vec<PoolInput>) -> Option<Plan> {
    let leaving: Vec<&str> = candidates.iter().map(|c| c.node.as_str()).collect();
    let pending: Vec<Pod> = candidates
        .iter()
        .flat_map(|c| c.pods.iter())
        .map(|p| {
            let mut p = p.clone();
            p.node_name = None;
            p
        })
        .collect();
    let nodes = input
        .nodes
        .iter()
        .filter(|n| !leaving.contains(&n.node.name.as_str()))
        .cloned()
        .collect::<Vec<_>>();
    let in_flight = crate::provisioning::in_flight_claims(&input.claims, &nodes);
    let plan = scheduler::schedule(&Input {
        pending,
        nodes,
        in_flight,
        daemonsets: input.daemonsets.clone(),
        pools,
        unavailable: input.unavailable.clone(),
        namespace_labels: input.namespace_labels.clone(),
        now: input.now,
    });
    plan.unschedulable.is_empty().then_some(plan)
}

/// The candidates go and their pods fit on the other nodes: a delete.
fn delete(input: &SweepInput, candidates: &[&Candidate]) -> Option<Decision> {
    simulate(input, candidates, Vec::new())?;
    Some(Decision {
        reason: Reason::Underutilized,
        candidates: candidates.iter().map(|c| (*c).clone()).collect(),
        replacements: Vec::new(),
        savings_per_hour: candidates.iter().fold(0.0, |sum, c| sum + c.price),
    })
}

/// The candidates go for one new node that costs less than they do together.
fn replace(input: &SweepInput, candidates: &[&Candidate]) -> Option<Decision> {
    let plan = simulate(input, candidates, input.pools.clone())?;
    let [replacement] = plan.new_claims.as_slice() else {
        return None;
    };
    let current: f64 = candidates.iter().map(|c| c.price).sum();
    let replacement = cheaper_only(replacement, current)?;
    let any_spot = candidates.iter().any(|c| c.capacity_type == CapacityType::Spot);
    if any_spot
        && replacement.chosen.capacity_type == CapacityType::Spot
        && replacement.instance_types.len() < MIN_SPOT_TO_SPOT_TYPES
    {
        return None;
    }
    Some(Decision {
        reason: Reason::Underutilized,
        candidates: candidates.iter().map(|c| (*c).clone()).collect(),
        savings_per_hour: current - replacement.chosen.price,
        replacements: vec![replacement],
    })
}

/// The replacement with only the instance types whose price (their cheapest override: in its
/// capacity type, in its zones, available) is below `limit`, so that whichever EC2 picks saves
/// money; `None` if none is.
fn cheaper_only(planned: &PlannedClaim, limit: f64) -> Option<PlannedClaim> {
    if planned.chosen.price >= limit {
        return None;
    }
    // Overrides are cheapest first: a type's first one is its price.
    let mut cheaper = vec![false; planned.instance_types.len()];
    for o in &planned.overrides {
        if o.price < limit
            && let Some(c) = cheaper.get_mut(o.instance_type as usize)
        {
            *c = true;
        }
    }
    if !cheaper.contains(&true) {
        return None;
    }
    // The types kept, and where each kept type's overrides now point.
    let mut position = vec![None; cheaper.len()];
    let mut out = planned.clone();
    out.instance_types.clear();
    for (i, name) in planned.instance_types.iter().enumerate() {
        if cheaper[i] {
            position[i] = Some(out.instance_types.len() as u16);
            out.instance_types.push(name.clone());
        }
    }
    out.overrides = planned
        .overrides
        .iter()
        .filter_map(|o| {
            let instance_type = (*position.get(o.instance_type as usize)?)?;
            Some(PlannedOverride { instance_type, ..*o })
        })
        .collect();
    out.capacity_types = vec![planned.chosen.capacity_type];
    Some(out)
}

/// Several nodes at once: the longest prefix of the candidates (in disruption order, within
/// the budgets) that can be deleted or replaced by one cheaper node, found by binary search as
/// Karpenter searches it.
pub(super) fn multi_node(
    input: &SweepInput,
    candidates: &[Candidate],
    budgets: &mut Budgets<'_>,
) -> Option<Decision> {
    let mut prefix: Vec<&Candidate> = Vec::new();
    for c in candidates.iter().take(MAX_MULTI_NODE_CANDIDATES) {
        let mut pools: Vec<&str> = prefix.iter().map(|p| p.claim.nodepool.as_str()).collect();
        pools.push(&c.claim.nodepool);
        if budgets.allows_all(&pools, Reason::Underutilized) {
            prefix.push(c);
        }
    }
    if prefix.len() < 2 {
        return None;
    }
    let attempt = |k: usize| delete(input, &prefix[..k]).or_else(|| replace(input, &prefix[..k]));
    let (mut lo, mut hi) = (2, prefix.len());
    let mut best = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        match attempt(mid) {
            Some(decision) => {
                best = Some(decision);
                lo = mid + 1;
            }
            None => hi = mid - 1,
        }
    }
    let decision = best?;
    for c in &decision.candidates {
        budgets.take(&c.claim.nodepool, Reason::Underutilized);
    }
    Some(decision)
}

/// One node: the first candidate (in disruption order) that can be deleted, or else replaced
/// by a cheaper node.
pub(super) fn single_node(
    input: &SweepInput,
    candidates: &[Candidate],
    budgets: &mut Budgets<'_>,
) -> Option<Decision> {
    for c in candidates {
        if !budgets.allows(&c.claim.nodepool, Reason::Underutilized) {
            continue;
        }
        if let Some(decision) = delete(input, &[c]).or_else(|| replace(input, &[c])) {
            budgets.take(&c.claim.nodepool, Reason::Underutilized);
            return Some(decision);
        }
    }
    None
}

/// What a drifted node's pods need: nothing new if they fit elsewhere, else the new claims the
/// plan makes for them; `None` if some cannot be placed at all.
pub(super) fn replacements_for_drift(input: &SweepInput, candidate: &Candidate) -> Option<Vec<PlannedClaim>> {
    let plan = simulate(input, &[candidate], input.pools.clone())?;
    Some(plan.new_claims)
}
