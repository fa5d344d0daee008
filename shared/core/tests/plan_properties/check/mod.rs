//! The plan checker. It is independent of the solver: it works from the generated specs, the
//! catalog's labels, allocatable and offerings, and the plan alone, with its own label matching,
//! resource sums and topology counts. One function per property, checked in this order; the
//! first violation is the error.

mod claims;
mod hosts;
mod matching;
mod placement;
mod topology;

use std::collections::BTreeMap;

use nodewright_core::scheduler::{Input, Plan};

use crate::input::pod_key;
use crate::specs::{World, catalog};
use hosts::{Res, minus, node_variant_labels, overhead};
use matching::{is_unavailable, pool_allows};

pub fn check(w: &World, input: &Input, plan: &Plan) -> Result<(), String> {
    each_pod_placed_once(w, plan)?;
    // Hosts: existing nodes, in-flight claims, new claims, each with every way it can turn out.
    let mut hosts = hosts::existing_hosts(w, input, plan)?;
    hosts::in_flight_hosts(w, plan, &mut hosts)?;
    let pool_usage = claims::new_claim_hosts(w, input, plan, &mut hosts)?;
    claims::limits_respected(w, input, &pool_usage)?;
    let host_of = placement::hosts_respected(w, &hosts)?;
    topology::domains_settled(w, &hosts, &host_of)?;
    topology::anti_affinity_across_hosts(w, &hosts, &host_of)?;
    topology::spread_and_affinity_replayed(w, input, &hosts, &host_of)?;
    unconstrained_pods_placed(w, input, plan)?;
    cost_within_bounds(plan)
}

/// The index of a pending pod from its key.
fn index_of(w: &World, key: &str) -> Result<usize, String> {
    key.strip_prefix("default/p")
        .and_then(|n| n.parse().ok())
        .filter(|i| *i < w.pods.len())
        .ok_or(format!("unknown pod {key}"))
}

/// Every pod placed exactly once, or unschedulable with a reason.
fn each_pod_placed_once(w: &World, plan: &Plan) -> Result<(), String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let placed_lists = plan
        .new_claims
        .iter()
        .map(|c| &c.pods)
        .chain(plan.existing.iter().map(|(_, p)| p))
        .chain(plan.in_flight.iter().map(|(_, p)| p));
    for list in placed_lists {
        for p in list {
            *seen.entry(p.clone()).or_default() += 1;
        }
    }
    for u in &plan.unschedulable {
        if u.reason.trim().is_empty() {
            return Err(format!("{} unschedulable without a reason", u.pod));
        }
        *seen.entry(u.pod.clone()).or_default() += 1;
    }
    if seen.len() != w.pods.len() {
        return Err(format!(
            "{} pods in the plan, {} pending",
            seen.len(),
            w.pods.len()
        ));
    }
    for i in 0..w.pods.len() {
        if seen.get(&pod_key(i)) != Some(&1) {
            return Err(format!(
                "{} appears {:?} times",
                pod_key(i),
                seen.get(&pod_key(i))
            ));
        }
    }
    Ok(())
}

/// A pod with nothing to satisfy but its requests is never left out while a pool without
/// limits that it tolerates offers a type with room for it.
fn unconstrained_pods_placed(w: &World, input: &Input, plan: &Plan) -> Result<(), String> {
    let types = catalog();
    for u in &plan.unschedulable {
        let p = index_of(w, &u.pod)?;
        let s = &w.pods[p];
        let unconstrained = s.arch.is_none()
            && s.terms.is_empty()
            && s.spreads.is_empty()
            && s.affinity.is_none()
            && s.anti.is_none()
            && s.soft_anti.is_none()
            && s.port.is_none();
        if !unconstrained {
            continue;
        }
        let room_somewhere = w.pools.iter().enumerate().any(|(pi, pool)| {
            pool.limit.is_none()
                && (!pool.tainted || s.tolerates)
                && types.iter().any(|t| {
                    t.offerings.iter().any(|o| {
                        if !pool_allows(pool, t, &o.zone, o.capacity_type)
                            || is_unavailable(input, &t.name, &o.zone, o.capacity_type)
                        {
                            return false;
                        }
                        let l =
                            node_variant_labels(t, &o.zone, o.capacity_type, &format!("pool{pi}"), pool.team);
                        Res::pod(s).within(&minus(Res::of(&t.allocatable), overhead(w, &l, pool.tainted)))
                    })
                })
        });
        // Other pods' anti-affinity may still repel it from every node.
        let repelled = w.pods.iter().any(|o| o.anti.is_some_and(|(_, a)| a == s.app))
            || w.nodes
                .iter()
                .any(|n| n.bound.iter().any(|b| b.anti_host && b.app == s.app));
        if room_somewhere && !repelled {
            return Err(format!("p{p} has no constraints and fits, yet: {}", u.reason));
        }
    }
    Ok(())
}

/// The plan costs no less than its own lower bound, and an empty plan costs +0.
fn cost_within_bounds(plan: &Plan) -> Result<(), String> {
    if plan.cost_per_hour + 1e-9 < plan.lower_bound_per_hour {
        return Err(format!(
            "cost {} below the lower bound {}",
            plan.cost_per_hour, plan.lower_bound_per_hour
        ));
    }
    if plan.new_claims.is_empty() && plan.cost_per_hour.is_sign_negative() {
        return Err("an empty plan costs -0".into());
    }
    Ok(())
}
