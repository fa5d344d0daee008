//! The plan checker: whether a scheduling [`Plan`] breaks a hard constraint of its [`Input`].
//!
//! It is independent of the solver. It works from the input and the plan alone — the pods' own
//! constraints, the pools' requirements, taints and limits, the catalog's labels, allocatable
//! and offerings — with its own hosts, room, daemonset overhead, topology counts and limits;
//! of the model it borrows only the atomic predicates (a requirement admitting a label value, a
//! toleration matching a taint, a selector matching labels, two host ports colliding). Every
//! host is checked in every way it can turn out: a new claim as each type and offering it
//! lists, an in-flight claim not launched yet in each of its zones. One function per property,
//! checked in this order; the first violation is the error.
//!
//! Spread and pod affinity are checked by replaying the placements in the order the scheduler
//! places pods (pods an in-flight claim was launched for first, then largest CPU, then memory, then
//! creation), against the domains each pod could possibly use: a narrower set than any
//! scheduler counts, so the skew measured over it is never stricter than the scheduler's own.
//!
//! The property tests check random plans with it (`core/tests/plan_properties.rs`), and the
//! CLI's tests the plans `nodewright plan` prints (`cli/tests/plan.rs`).

mod claims;
mod hosts;
mod placement;
mod topology;

use std::collections::{BTreeMap, HashMap};

use crate::catalog::{CapacityType, InstanceType};
use crate::labels;
use crate::pod::{Pod, Taint};
use crate::ports::OfferingKey;
use crate::requirements::Requirements;
use crate::resources::Resources;
use crate::scheduler::{Input, Plan, PoolInput};

type Labels = BTreeMap<String, String>;

/// Checks `plan` against `input`; the first violation found, in words, is the error.
pub fn check(input: &Input, plan: &Plan) -> Result<(), String> {
    check_with(input, plan, true)
}

/// [`check`] for a plan read back from what `nodewright plan` prints, which leaves each claim's
/// launch overrides out (they are its types × zones at catalog prices): all but those.
pub fn check_printed(input: &Input, plan: &Plan) -> Result<(), String> {
    check_with(input, plan, false)
}

fn check_with(input: &Input, plan: &Plan, overrides_given: bool) -> Result<(), String> {
    let ctx = Ctx::new(input, overrides_given)?;
    each_pod_placed_once(&ctx, plan)?;
    let mut hosts = hosts::existing_hosts(&ctx, plan)?;
    hosts::in_flight_hosts(&ctx, plan, &mut hosts)?;
    let pool_usage = claims::new_claim_hosts(&ctx, plan, &mut hosts)?;
    claims::limits_respected(&ctx, &pool_usage)?;
    let host_of = placement::hosts_respected(&ctx, &hosts)?;
    topology::domains_settled(&ctx, &hosts, &host_of)?;
    topology::anti_affinity_holds(&ctx, &hosts, &host_of)?;
    topology::spread_and_affinity_replayed(&ctx, &hosts, &host_of)?;
    unconstrained_pods_placed(&ctx, plan)?;
    cost_within_bounds(plan)
}

/// The input as the checks read it.
struct Ctx<'a> {
    input: &'a Input,
    /// The pending pods in the input's order, then the pods bound to existing nodes that still
    /// run (a finished pod holds nothing and counts in no topology).
    pods: Vec<&'a Pod>,
    pending: usize,
    /// Pending pods by key.
    index: HashMap<String, usize>,
    /// Each pool's requirements, in the order of `input.pools`.
    pool_requirements: Vec<Requirements>,
    /// Every node a pool could launch now: each type at each available offering it allows.
    launchable: Vec<Launchable>,
    /// Whether the plan carries each claim's launch overrides, to be checked.
    overrides_given: bool,
}

/// A node a pool could launch: its labels and the room its daemonsets leave.
struct Launchable {
    /// The index of the pool in `input.pools`.
    pool: usize,
    labels: Labels,
    room: Resources,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a Input, overrides_given: bool) -> Result<Ctx<'a>, String> {
        let mut pods: Vec<&Pod> = input.pending.iter().collect();
        let index = pods.iter().enumerate().map(|(i, p)| (p.key(), i)).collect();
        pods.extend(
            input
                .nodes
                .iter()
                .flat_map(|n| n.pods.iter())
                .filter(|p| !p.terminal),
        );
        let pool_requirements = input
            .pools
            .iter()
            .map(|p| p.nodepool.requirements().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ctx = Ctx {
            input,
            pods,
            pending: input.pending.len(),
            index,
            pool_requirements,
            launchable: Vec::new(),
            overrides_given,
        };
        ctx.launchable = ctx.launchable_nodes();
        Ok(ctx)
    }

    fn launchable_nodes(&self) -> Vec<Launchable> {
        let mut out = Vec::new();
        for (i, (pool, reqs)) in self.input.pools.iter().zip(&self.pool_requirements).enumerate() {
            let extra = pool_labels(pool, reqs);
            for t in pool.instance_types.iter() {
                for o in &t.offerings {
                    if self.is_unavailable(&t.name, &o.zone, o.capacity_type) {
                        continue;
                    }
                    let labels = node_labels(t, &o.zone, o.capacity_type, pool.nodepool.name(), &[&extra]);
                    if !reqs.matches_labels(&labels) {
                        continue;
                    }
                    let room = minus(&t.allocatable, &self.overhead(&labels, taints_of(pool)));
                    out.push(Launchable {
                        pool: i,
                        labels,
                        room,
                    });
                }
            }
        }
        out
    }

    /// The index of a pending pod from its key.
    fn index_of(&self, key: &str) -> Result<usize, String> {
        self.index
            .get(key)
            .copied()
            .ok_or_else(|| format!("{key} is not a pending pod"))
    }

    fn pool(&self, name: &str) -> Option<(&'a PoolInput, &Requirements)> {
        let i = self.input.pools.iter().position(|p| p.nodepool.name() == name)?;
        Some((&self.input.pools[i], &self.pool_requirements[i]))
    }

    /// An instance type by name: from `pool`'s catalog when it has it, else any pool's.
    fn instance_type(&self, pool: Option<&'a PoolInput>, name: &str) -> Option<&'a InstanceType> {
        let in_pool = |p: &'a PoolInput| p.instance_types.iter().find(|t| t.name == name);
        pool.and_then(in_pool)
            .or_else(|| self.input.pools.iter().find_map(in_pool))
    }

    fn is_unavailable(&self, instance_type: &str, zone: &str, ct: CapacityType) -> bool {
        let key = OfferingKey {
            instance_type: instance_type.to_string(),
            zone: zone.to_string(),
            capacity_type: ct,
        };
        self.input.unavailable.is_unavailable(&key, self.input.now)
    }

    /// What the daemonsets that would run on a node with these labels and taints request.
    fn overhead(&self, labels: &Labels, taints: &[Taint]) -> Resources {
        let mut out = Resources::new();
        for d in &self.input.daemonsets {
            if d.tolerates(taints) && node_affinity_holds(d, labels) {
                out.add(&d.requests);
            }
        }
        out
    }
}

/// The node-affinity terms of a pod: its nodeSelector ANDed with each required term (or alone
/// when it has none), label keys under their current names.
fn terms_of(pod: &Pod) -> Vec<Vec<Requirements>> {
    let selector = pod.node_selector.normalized();
    if pod.required_affinity.is_empty() {
        return vec![vec![selector]];
    }
    pod.required_affinity
        .iter()
        .map(|t| vec![selector.clone(), t.normalized()])
        .collect()
}

fn term_holds(term: &[Requirements], labels: &Labels) -> bool {
    term.iter().all(|r| r.matches_labels(labels))
}

/// nodeSelector and required node affinity hold on a node with these labels.
fn node_affinity_holds(pod: &Pod, labels: &Labels) -> bool {
    terms_of(pod).iter().any(|t| term_holds(t, labels))
}

/// The labels of a node of type `t` at an offering, launched from pool `pool`, with the labels
/// of `extra` (the pool's template, its single-valued requirements, a claim's) where the type
/// and the offering leave them unset: a pool cannot relabel the architecture of a type.
fn node_labels(t: &InstanceType, zone: &str, ct: CapacityType, pool: &str, extra: &[&Labels]) -> Labels {
    let mut l = t.labels.clone();
    l.insert(labels::ZONE.into(), zone.into());
    l.insert(labels::CAPACITY_TYPE.into(), ct.as_str().into());
    l.insert(labels::NODEPOOL.into(), pool.into());
    for (k, v) in extra.iter().flat_map(|e| e.iter()) {
        l.entry(k.clone()).or_insert_with(|| v.clone());
    }
    l
}

/// What a pool puts on its nodes besides the type's and the offering's labels.
fn pool_labels(pool: &PoolInput, requirements: &Requirements) -> Labels {
    let mut l = pool.nodepool.spec.template.metadata.labels.clone();
    l.extend(requirements.single_valued_labels());
    l
}

/// The taints of a pool's nodes.
fn taints_of(pool: &PoolInput) -> &[Taint] {
    &pool.nodepool.spec.template.spec.taints
}

/// `a` less `b`.
fn minus(a: &Resources, b: &Resources) -> Resources {
    let mut out = a.clone();
    out.sub(b);
    out
}

/// Every pending pod placed exactly once, or unschedulable with a reason; nothing else placed.
fn each_pod_placed_once(ctx: &Ctx, plan: &Plan) -> Result<(), String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let placed_lists = plan
        .new_claims
        .iter()
        .map(|c| &c.pods)
        .chain(plan.existing.iter().map(|a| &a.pods))
        .chain(plan.in_flight.iter().map(|a| &a.pods));
    for list in placed_lists {
        for p in list {
            *seen.entry(p).or_default() += 1;
        }
    }
    for u in &plan.unschedulable {
        if u.reason.trim().is_empty() {
            return Err(format!("{} unschedulable without a reason", u.pod));
        }
        *seen.entry(&u.pod).or_default() += 1;
    }
    if let Some(unknown) = seen.keys().find(|k| !ctx.index.contains_key(**k)) {
        return Err(format!("the plan places {unknown}, which is not pending"));
    }
    for pod in &ctx.pods[..ctx.pending] {
        let key = pod.key();
        match seen.get(key.as_str()) {
            Some(1) => {}
            times => return Err(format!("{key} appears {} times", times.copied().unwrap_or(0))),
        }
    }
    Ok(())
}

/// A pod with nothing to satisfy but its requests is never left out while a pool without
/// limits that it tolerates offers a type with room for it, unless another pod's
/// anti-affinity may repel it from every node.
fn unconstrained_pods_placed(ctx: &Ctx, plan: &Plan) -> Result<(), String> {
    for u in &plan.unschedulable {
        let p = ctx.index_of(&u.pod)?;
        let pod = ctx.pods[p];
        let unconstrained = pod.node_selector.is_empty()
            && pod.required_affinity.is_empty()
            && pod.preferred_affinity.is_empty()
            && pod.topology_spread.is_empty()
            && pod.pod_affinity.is_empty()
            && pod.pod_anti_affinity.is_empty()
            && pod.preferred_pod_affinity.is_empty()
            && pod.preferred_pod_anti_affinity.is_empty()
            && pod.host_ports.is_empty()
            && pod.volume_claims.is_empty();
        if !unconstrained {
            continue;
        }
        let room_somewhere = ctx.launchable.iter().any(|l| {
            let pool = &ctx.input.pools[l.pool];
            pool.nodepool.spec.limits.is_empty()
                && pod.tolerates(taints_of(pool))
                && l.room.fits(&pod.requests)
        });
        let repelled = ctx.pods.iter().enumerate().any(|(q, other)| {
            q != p
                && other.pod_anti_affinity.iter().any(|term| {
                    term.selects_in(
                        &other.namespace,
                        &pod.namespace,
                        &pod.labels,
                        &ctx.input.namespace_labels,
                    )
                })
        });
        if room_somewhere && !repelled {
            return Err(format!(
                "{} has no constraints and fits, yet: {}",
                u.pod, u.reason
            ));
        }
    }
    Ok(())
}

/// The plan costs its claims' chosen prices, no less than its own lower bound, and an empty
/// plan costs +0.
fn cost_within_bounds(plan: &Plan) -> Result<(), String> {
    let total: f64 = plan.new_claims.iter().map(|c| c.chosen.price).sum();
    if (plan.cost_per_hour - total).abs() > 1e-6 {
        return Err(format!(
            "cost {} is not the sum of the chosen prices {total}",
            plan.cost_per_hour
        ));
    }
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

#[cfg(test)]
mod tests;
