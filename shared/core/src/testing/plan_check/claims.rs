//! New claims: each well formed, within its pool, on the cheapest offering it may use with its
//! types cheapest first; and the NodePools' limits over what exists, what is in flight and
//! every new claim at its largest type.

use std::collections::BTreeMap;

use crate::catalog::CapacityType;
use crate::labels;
use crate::resources::{ResourceName, Resources};
use crate::scheduler::{MAX_INSTANCE_TYPES, Plan, PlannedClaim};

use super::hosts::{Host, Kind, Variant};
use super::{Ctx, minus, node_labels, pool_labels};

/// Per pool: what its new claims reserve (each at the largest of its types, resource by
/// resource), and how many there are.
pub(super) type PoolUsage = BTreeMap<String, (Resources, i64)>;

/// Checks every new claim and adds it to the hosts, with the pods the plan puts on it.
pub(super) fn new_claim_hosts(ctx: &Ctx, plan: &Plan, hosts: &mut Vec<Host>) -> Result<PoolUsage, String> {
    let mut pool_usage = PoolUsage::new();
    for (ci, c) in plan.new_claims.iter().enumerate() {
        let (pool, reqs) = ctx
            .pool(&c.nodepool)
            .ok_or_else(|| format!("claim {ci}: unknown pool {}", c.nodepool))?;
        claim_well_formed(ctx, ci, c)?;
        let chosen = &c.chosen;
        let taints = &pool.nodepool.spec.template.spec.taints;
        let extra = pool_labels(pool, reqs);
        let mut variants = Vec::new();
        let mut reserve = Resources::new();
        let mut cheapest = f64::INFINITY;
        let mut chosen_offered = false;
        let mut offered_here: Vec<(&str, &str, f64)> = Vec::new();
        // Each type at its cheapest offering of the chosen capacity type in the claim.
        let mut prices = Vec::new();
        for name in &c.instance_types {
            let t = pool
                .instance_types
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| format!("claim {ci}: {name} is not in the catalog of {}", c.nodepool))?;
            let mut offered = false;
            let mut price = f64::INFINITY;
            for o in &t.offerings {
                if !c.zones.contains(&o.zone) || !c.capacity_types.contains(&o.capacity_type) {
                    continue;
                }
                let l = node_labels(t, &o.zone, o.capacity_type, &c.nodepool, &[&extra, &c.labels]);
                if !reqs.matches_labels(&l) {
                    return Err(format!(
                        "claim {ci}: {name} in {} {} is outside pool {}",
                        o.zone, o.capacity_type, c.nodepool
                    ));
                }
                if ctx.is_unavailable(name, &o.zone, o.capacity_type) {
                    continue;
                }
                offered = true;
                offered_here.push((name, &o.zone, o.price));
                if o.capacity_type == chosen.capacity_type {
                    cheapest = cheapest.min(o.price);
                    price = price.min(o.price);
                }
                chosen_offered |= *name == chosen.instance_type
                    && o.zone == chosen.zone
                    && o.capacity_type == chosen.capacity_type
                    && o.price == chosen.price;
                if let Some((k, v)) = c
                    .labels
                    .iter()
                    .find(|(k, v)| l.get(*k).is_some_and(|have| have != *v))
                {
                    return Err(format!("claim {ci} labels {k}={v} but {name} has {:?}", l.get(k)));
                }
                let room = minus(&t.allocatable, &ctx.overhead(&l, taints));
                variants.push(Variant {
                    labels: l,
                    taints: taints.clone(),
                    room,
                });
            }
            if !offered {
                return Err(format!(
                    "claim {ci}: {name} has no available offering in its zones"
                ));
            }
            reserve.max_with(&t.capacity);
            prices.push(price);
        }
        if !chosen_offered {
            return Err(format!(
                "claim {ci} chose {chosen:?}, which is none of its available offerings"
            ));
        }
        if (chosen.price - cheapest).abs() > 1e-9 {
            return Err(format!("claim {ci} chose {chosen:?}, cheapest is {cheapest}"));
        }
        if ctx.overrides_given {
            overrides_are_the_offerings(ci, c, offered_here)?;
        }
        if !prices.windows(2).all(|w| w[0] <= w[1]) {
            return Err(format!(
                "claim {ci} lists its types out of price order: {:?}",
                c.instance_types.iter().zip(&prices).collect::<Vec<_>>()
            ));
        }
        let entry = pool_usage.entry(c.nodepool.clone()).or_default();
        entry.0.add(&reserve);
        entry.1 += 1;
        let placed = c.pods.iter().map(|p| ctx.index_of(p)).collect::<Result<_, _>>()?;
        hosts.push(Host {
            name: format!("new-claim-{ci}"),
            variants,
            placed,
            bound: Vec::new(),
            kind: Kind::New,
        });
    }
    Ok(pool_usage)
}

/// A claim sends 1 to MAX_INSTANCE_TYPES types, carries pods, and chose an offering inside it,
/// spot whenever it may, and available.
fn claim_well_formed(ctx: &Ctx, ci: usize, c: &PlannedClaim) -> Result<(), String> {
    if c.instance_types.is_empty() || c.instance_types.len() > MAX_INSTANCE_TYPES {
        return Err(format!(
            "claim {ci} sends {} instance types",
            c.instance_types.len()
        ));
    }
    if c.pods.is_empty() {
        return Err(format!("claim {ci} has no pods"));
    }
    let chosen = &c.chosen;
    if !c.instance_types.contains(&chosen.instance_type)
        || !c.zones.contains(&chosen.zone)
        || !c.capacity_types.contains(&chosen.capacity_type)
    {
        return Err(format!("chosen {chosen:?} outside claim {ci}"));
    }
    if c.capacity_types.contains(&CapacityType::Spot) && chosen.capacity_type != CapacityType::Spot {
        return Err(format!("claim {ci} allows spot but chose {chosen:?}"));
    }
    if ctx.is_unavailable(&chosen.instance_type, &chosen.zone, chosen.capacity_type) {
        return Err(format!("claim {ci} chose an unavailable offering {chosen:?}"));
    }
    Ok(())
}

/// NodePool limits, for every pool this plan launches from: what its nodes use, what its
/// in-flight claims may (each at its launched type, or its largest candidate), and every new
/// claim at its largest type.
pub(super) fn limits_respected(ctx: &Ctx, pool_usage: &PoolUsage) -> Result<(), String> {
    for (name, (new, new_nodes)) in pool_usage {
        let Some((pool, _)) = ctx.pool(name) else { continue };
        let limits = match pool.nodepool.limits() {
            Ok(Some(limits)) => limits,
            Ok(None) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let mut used = new.clone();
        let mut nodes = *new_nodes;
        let capacity_of = |type_name: Option<&String>| {
            type_name
                .and_then(|n| ctx.instance_type(Some(pool), n))
                .map(|t| t.capacity.clone())
        };
        for n in &ctx.input.nodes {
            if n.node.labels.get(labels::NODEPOOL) == Some(name) {
                let capacity = capacity_of(n.node.labels.get(labels::INSTANCE_TYPE));
                used.add(capacity.as_ref().unwrap_or(&n.node.allocatable));
                nodes += 1;
            }
        }
        for c in ctx.input.in_flight.iter().filter(|c| &c.nodepool == name) {
            let mut largest = Resources::new();
            match &c.instance {
                Some(i) => largest.max_with(&capacity_of(Some(&i.instance_type)).unwrap_or_default()),
                None => {
                    for t in &c.instance_types {
                        largest.max_with(&capacity_of(Some(t)).unwrap_or_default());
                    }
                }
            }
            used.add(&largest);
            nodes += 1;
        }
        for key in pool.nodepool.spec.limits.keys() {
            let (have, cap) = match ResourceName::parse(key) {
                Some(r) => (used.get(r), limits.get(r)),
                None if key == "nodes" => (nodes, limits.get_by_name(key)),
                None => continue,
            };
            if have > cap {
                return Err(format!("{name} uses {have} {key}, over its limit {cap}"));
            }
        }
    }
    Ok(())
}

/// The launch's overrides are exactly the claim's available offerings (its types, zones and
/// capacity type), at their catalog prices, cheapest first.
fn overrides_are_the_offerings(
    ci: usize,
    c: &PlannedClaim,
    mut offered: Vec<(&str, &str, f64)>,
) -> Result<(), String> {
    let launch = c.launch_overrides();
    if launch.len() != c.overrides.len() {
        return Err(format!("claim {ci}: an override outside its types or zones"));
    }
    if launch.iter().any(|o| o.capacity_type != c.chosen.capacity_type) {
        return Err(format!("claim {ci}: an override of another capacity type"));
    }
    if launch.windows(2).any(|w| w[0].price > w[1].price) {
        return Err(format!("claim {ci}: overrides not cheapest first"));
    }
    let mut sent: Vec<(&str, &str, f64)> = launch
        .iter()
        .map(|o| (o.instance_type.as_str(), o.zone.as_str(), o.price))
        .collect();
    let order = |a: &(&str, &str, f64), b: &(&str, &str, f64)| (a.0, a.1).cmp(&(b.0, b.1));
    sent.sort_by(order);
    offered.sort_by(order);
    if sent != offered {
        return Err(format!(
            "claim {ci} sends overrides {sent:?}, its available offerings are {offered:?}"
        ));
    }
    Ok(())
}
