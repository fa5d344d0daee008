//! The NodePools a round may launch from, prepared once: requirements (with the pool's own
//! name), instance types with usable room after daemonset overhead, offerings within the
//! pool's zones and capacity types, limits, and the CPU:memory balance claims are kept near.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::Input;
use super::limits::{Budget, LimitVec, NOTHING, largest, usage_of};
use super::offerings::*;
use crate::catalog::{CapacityType, InstanceType};
use crate::labels;
use crate::pod::{HostPort, Pod, Taint, untolerated};
use crate::ports::OfferingKey;
use crate::requirements::{Requirement, Requirements};
use crate::resources::Resources;

pub(super) struct PoolType<'a> {
    pub(super) it: &'a InstanceType,
    /// Allocatable minus the daemonsets that would run on this type.
    pub(super) usable: Resources,
    pub(super) overhead: Resources,
    /// Offerings available within the pool's zones and capacity types.
    pub(super) offer_mask: u64,
    /// The same offerings as (bit, price, index into the type's offerings), cheapest first:
    /// pricing thousands of claims must not compare zone names.
    pub(super) offers: Vec<(u64, f64, u32)>,
    /// Cheapest available offering within the pool.
    pub(super) price: f64,
    pub(super) limit: LimitVec,
    /// Within a few percent of the pool's best price for the round's CPU:memory mix. Claims
    /// do not grow out of the efficient types, so big claims end on cost-efficient nodes.
    pub(super) efficient: bool,
}

/// Type compatibility per (pool, requirements) (see [`Pool::compatible_types`]).
pub(super) type TypeCache = HashMap<(usize, Requirements), Rc<Vec<bool>>>;

pub(super) struct Pool<'a> {
    pub(super) name: &'a str,
    pub(super) nodeclass: &'a str,
    pub(super) reqs: Requirements,
    pub(super) taints: &'a [Taint],
    pub(super) startup_taints: &'a [Taint],
    pub(super) template_labels: &'a BTreeMap<String, String>,
    /// Sorted by price.
    pub(super) types: Vec<PoolType<'a>>,
    pub(super) zone_mask: u64,
    pub(super) ct_mask: u8,
    pub(super) budget: Budget,
    /// Usable cpu and memory of the largest type efficient for the round's pod shape: claims
    /// are kept near its balance (see [`BALANCE_SLACK`]).
    pub(super) balance: Option<(f64, f64)>,
    /// Indices of the efficient types (see [`PoolType::efficient`]), ascending.
    pub(super) efficient: Vec<u32>,
    /// Why the pool cannot launch at all, if so.
    pub(super) broken: Option<String>,
    /// Host ports of the daemonsets that run on the pool's nodes, with the types (a bitset
    /// over `types`) they run on.
    pub(super) daemon_ports: Vec<(HostPort, Vec<u64>)>,
}

impl Pool<'_> {
    /// What a claim with these candidates counts against the pool's limits: its largest
    /// candidate, resource by resource.
    pub(super) fn limit_charge_of(&self, types: &[u32]) -> LimitVec {
        if !self.budget.is_limited() {
            return NOTHING;
        }
        largest(types.iter().map(|t| &self.types[*t as usize].limit))
    }

    /// Which of the pool's types (by index) requirements `reqs` allow, worked out once per
    /// (pool `p`, requirements) in `cache`: claims of one pool mostly share them.
    pub(super) fn compatible_types(
        &self,
        p: usize,
        reqs: &Requirements,
        cache: &mut TypeCache,
    ) -> Rc<Vec<bool>> {
        cache
            .entry((p, reqs.clone()))
            .or_insert_with(|| {
                Rc::new(
                    self.types
                        .iter()
                        .map(|pt| pt.it.requirements.intersects(reqs).is_ok())
                        .collect(),
                )
            })
            .clone()
    }

    /// The candidates a claim keeps once the pool runs short (see [`Budget::tightest`]).
    pub(super) fn tightest(&self, types: &[u32]) -> Vec<u32> {
        let usages: Vec<(u32, &LimitVec)> = types
            .iter()
            .map(|t| (*t, &self.types[*t as usize].limit))
            .collect();
        self.budget.tightest(&usages)
    }
}

/// Share of the price an efficient type may exceed the best one by.
pub(super) const EFFICIENCY_TOLERANCE: f64 = 1.03;

/// Marks the types whose price per unit of the round's average pod shape is near the best.
/// Total CPU, memory and pod count of the round's pending pods (daemonset pods left out).
fn round_shape(pending: &[Pod]) -> (f64, f64, f64) {
    let (mut cpu, mut mem, mut pods) = (0f64, 0f64, 0f64);
    for p in pending.iter().filter(|p| !p.is_daemon()) {
        cpu += p.requests.cpu() as f64;
        mem += p.requests.memory() as f64;
        pods += 1.0;
    }
    (cpu, mem, pods)
}

pub(super) fn mark_efficient(types: &mut [PoolType], pending: &[Pod]) {
    let (cpu, mem, pods) = round_shape(pending);
    if cpu <= 0.0 || mem <= 0.0 {
        return;
    }
    // Priced per average pod it holds, whole pods only: a type that holds none is of no use
    // however cheap its fraction, and pod slots count (a small type may have the CPU and
    // memory of many small pods yet take only a few of them).
    let unit_cost = |t: &PoolType| {
        let units = (t.usable.cpu() as f64 * pods / cpu)
            .min(t.usable.memory() as f64 * pods / mem)
            .min(t.usable.pods() as f64)
            .floor();
        if units > 0.0 {
            t.price / units
        } else {
            f64::INFINITY
        }
    };
    let best = types.iter().map(unit_cost).fold(f64::INFINITY, f64::min);
    for t in types.iter_mut() {
        t.efficient = unit_cost(t) <= best * EFFICIENCY_TOLERANCE;
    }
}

/// Host ports of the daemonsets that land on a pool's nodes, each with the types it lands on.
fn daemon_ports(
    daemons: &[Pod],
    pool_reqs: &Requirements,
    taints: &[Taint],
    types: &[PoolType],
) -> Vec<(HostPort, Vec<u64>)> {
    let mut out = Vec::new();
    for d in daemons.iter().filter(|d| !d.host_ports.is_empty()) {
        if untolerated(&d.tolerations, taints).is_some() {
            continue;
        }
        let mut lands = vec![0u64; types.len().div_ceil(64)];
        for (t, pt) in types.iter().enumerate() {
            if daemon_lands(d, pool_reqs, pt.it) {
                lands[t / 64] |= 1 << (t % 64);
            }
        }
        out.extend(d.host_ports.iter().map(|p| (p.clone(), lands.clone())));
    }
    out
}

/// Whether a daemonset (its pod template) runs on a node of this type in the pool.
pub(super) fn daemon_lands(d: &Pod, pool_reqs: &Requirements, it: &InstanceType) -> bool {
    d.node_requirement_terms()
        .iter()
        .any(|term| pool_reqs.compatible(term).is_ok() && it.requirements.intersects(term).is_ok())
}

pub(super) fn daemon_overhead(
    daemons: &[Pod],
    pool_reqs: &Requirements,
    it: &InstanceType,
    taints: &[Taint],
) -> Resources {
    let mut total = Resources::new();
    for d in daemons {
        if untolerated(&d.tolerations, taints).is_some() {
            continue;
        }
        if daemon_lands(d, pool_reqs, it) {
            total.add(&d.requests);
        }
    }
    total
}

/// A label value a claim's node will carry for `key`, if it is settled.
pub(super) fn claim_label(pool: &Pool, reqs: &Requirements, key: &str) -> Option<String> {
    if let Some(v) = pool.template_labels.get(key) {
        return Some(v.clone());
    }
    if key == labels::NODEPOOL {
        return Some(pool.name.to_string());
    }
    let r = reqs.get(key)?;
    (!r.is_complement() && r.values().len() == 1).then(|| r.values()[0].clone())
}

/// The valid and broken pools of the round, heaviest weight first (ties by name). Offerings
/// out of capacity are left out here, the one place planning looks at them.
pub(super) fn prepare<'a>(
    input: &'a Input,
    zones: &[String],
    zone_index: &HashMap<&str, u32>,
) -> Vec<Pool<'a>> {
    let unavailable = |it: &InstanceType, o: &crate::catalog::Offering| {
        !input.unavailable.is_empty()
            && input.unavailable.is_unavailable(
                &OfferingKey {
                    instance_type: it.name.clone(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type,
                },
                input.now,
            )
    };
    let mut pools: Vec<Pool<'a>> = Vec::new();
    let mut order: Vec<&super::PoolInput> = input.pools.iter().collect();
    order.sort_by(|a, b| {
        b.nodepool
            .weight()
            .cmp(&a.nodepool.weight())
            .then(a.nodepool.name().cmp(b.nodepool.name()))
    });
    for p in order {
        let spec = &p.nodepool.spec.template.spec;
        let (mut reqs, broken) = match p.nodepool.requirements() {
            Ok(r) => (r, None),
            Err(e) => (Requirements::new(), Some(e.to_string())),
        };
        // Every node of the pool carries its name: a pod selecting a pool by name (or
        // excluding one) is then checked like any other label, on every claim it joins.
        reqs.add(labels::NODEPOOL, Requirement::is_in([p.nodepool.name()]));
        let zone_mask = zones
            .iter()
            .enumerate()
            .filter(|(_, z)| reqs.get(labels::ZONE).is_none_or(|r| r.has(z)))
            .fold(0u64, |m, (i, _)| m | (1 << i));
        let ct_mask = [CapacityType::Spot, CapacityType::OnDemand]
            .into_iter()
            .filter(|ct| reqs.get(labels::CAPACITY_TYPE).is_none_or(|r| r.has(ct.as_str())))
            .fold(0u8, |m, ct| m | (1 << ct_index(ct)));
        let allowed = expand(zone_mask, ct_mask);
        let mut types = Vec::new();
        for it in p.instance_types.iter() {
            if reqs.intersects(&it.requirements).is_err() {
                continue;
            }
            let mut offer_mask = 0;
            let mut price = f64::INFINITY;
            let mut offers = Vec::new();
            for (oi, o) in it.offerings.iter().enumerate() {
                let Some(z) = zone_index.get(o.zone.as_str()) else {
                    continue;
                };
                let bit = offering_bit(*z, ct_index(o.capacity_type));
                if bit & allowed != 0 && !unavailable(it, o) {
                    offer_mask |= bit;
                    price = price.min(o.price);
                    offers.push((bit, o.price, oi as u32));
                }
            }
            // Stable: equal prices keep the catalog's order.
            offers.sort_by(|a, b| a.1.total_cmp(&b.1));
            if offer_mask == 0 {
                continue;
            }
            let overhead = daemon_overhead(&input.daemonsets, &reqs, it, &spec.taints);
            let mut usable = it.allocatable.clone();
            if !usable.fits(&overhead) {
                continue;
            }
            usable.sub(&overhead);
            types.push(PoolType {
                it,
                usable,
                overhead,
                offer_mask,
                offers,
                price,
                limit: usage_of(&it.capacity),
                efficient: false,
            });
        }
        types.sort_by(|a, b| a.price.total_cmp(&b.price).then(a.it.name.cmp(&b.it.name)));
        mark_efficient(&mut types, &input.pending);
        // Topology domains are where the pool can launch: a zone the requirements allow but
        // no allowed type is offered in is not a domain a spread must fill.
        let offered = types.iter().fold(0u64, |m, t| m | t.offer_mask);
        let zone_mask = bits(zone_mask)
            .filter(|z| expand(1 << z, ct_mask) & offered != 0)
            .fold(0u64, |m, z| m | (1 << z));
        let ct_mask = (0..2u32)
            .filter(|ct| ct_mask & (1 << ct) != 0 && expand(zone_mask, 1 << ct) & offered != 0)
            .fold(0u8, |m, ct| m | (1 << ct));
        let budget = Budget::of(p, input);
        // The round's own CPU:memory shape, scaled to what the largest efficient type holds of
        // it: a claim of average pods has no skew, whatever the type's own shape.
        let (cpu, mem, _) = round_shape(&input.pending);
        let balance = types
            .iter()
            .filter(|t| t.efficient)
            .max_by_key(|t| (t.usable.cpu(), t.usable.memory()))
            .map(|t| (t.usable.cpu() as f64 / cpu).min(t.usable.memory() as f64 / mem))
            .map(|units| (units * cpu, units * mem))
            .filter(|(c, m)| *c > 0.0 && *m > 0.0);
        let efficient = (0..types.len() as u32)
            .filter(|t| types[*t as usize].efficient)
            .collect();
        let daemon_ports = daemon_ports(&input.daemonsets, &reqs, &spec.taints, &types);
        pools.push(Pool {
            name: p.nodepool.name(),
            nodeclass: &spec.node_class_ref.name,
            reqs,
            taints: &spec.taints,
            startup_taints: &spec.startup_taints,
            template_labels: &p.nodepool.spec.template.metadata.labels,
            types,
            zone_mask,
            ct_mask,
            budget,
            daemon_ports,
            efficient,
            balance,
            broken,
        });
    }
    pools
}
