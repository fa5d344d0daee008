//! New claims: each well formed, within its pool, on the cheapest offering it may use; and the
//! NodePools' limits over what exists, what is in flight and every new claim at its largest type.

use std::collections::BTreeMap;

use nodewright_core::catalog::CapacityType;
use nodewright_core::labels;
use nodewright_core::scheduler::{Input, MAX_INSTANCE_TYPES, Plan, PlannedClaim};

use super::hosts::{Host, Res, Variant, minus, node_variant_labels, overhead};
use super::index_of;
use super::matching::{is_unavailable, pool_allows};
use crate::specs::{Limit, World, catalog};

/// Per pool: (cpu, memory, nodes) its new claims reserve at their largest types, and how many.
pub type PoolUsage = BTreeMap<usize, ([i64; 3], usize)>;

/// Checks every new claim and adds it to the hosts, with the pods the plan puts on it.
pub fn new_claim_hosts(
    w: &World,
    input: &Input,
    plan: &Plan,
    hosts: &mut Vec<Host>,
) -> Result<PoolUsage, String> {
    let types = catalog();
    let type_of = |name: &str| types.iter().find(|t| t.name == name);
    let mut pool_usage: PoolUsage = BTreeMap::new();
    for (ci, c) in plan.new_claims.iter().enumerate() {
        let pi: usize = c
            .nodepool
            .strip_prefix("pool")
            .and_then(|n| n.parse().ok())
            .filter(|i| *i < w.pools.len())
            .ok_or(format!("unknown pool {}", c.nodepool))?;
        let pool = &w.pools[pi];
        claim_well_formed(ci, c, input)?;
        let chosen = &c.chosen;
        let mut variants = Vec::new();
        let mut reserve = [0i64; 3];
        let mut cheapest = f64::INFINITY;
        let mut offered_here: Vec<(&str, &str, f64)> = Vec::new();
        for name in &c.instance_types {
            let t = type_of(name).ok_or(format!("claim {ci}: {name} not in the catalog"))?;
            let mut offered = false;
            for o in &t.offerings {
                if !c.zones.contains(&o.zone) || !c.capacity_types.contains(&o.capacity_type) {
                    continue;
                }
                if !pool_allows(pool, t, &o.zone, o.capacity_type) {
                    return Err(format!(
                        "claim {ci}: {name} in {} {:?} outside {pool:?}",
                        o.zone, o.capacity_type
                    ));
                }
                if is_unavailable(input, name, &o.zone, o.capacity_type) {
                    continue;
                }
                offered = true;
                offered_here.push((name, &o.zone, o.price));
                if o.capacity_type == chosen.capacity_type {
                    cheapest = cheapest.min(o.price);
                }
                let l = node_variant_labels(t, &o.zone, o.capacity_type, &c.nodepool, pool.team);
                for (k, v) in &c.labels {
                    if l.get(k).is_some_and(|have| have != v) {
                        return Err(format!("claim {ci} labels {k}={v} but {name} has {:?}", l.get(k)));
                    }
                }
                let room = minus(Res::of(&t.allocatable), overhead(w, &l, pool.tainted));
                variants.push(Variant {
                    labels: l,
                    room,
                    tainted: pool.tainted,
                });
            }
            if !offered {
                return Err(format!(
                    "claim {ci}: {name} has no available offering in its zones"
                ));
            }
            reserve[0] = reserve[0].max(t.capacity.cpu());
            reserve[1] = reserve[1].max(t.capacity.memory());
        }
        reserve[2] = 1;
        if (chosen.price - cheapest).abs() > 1e-9 {
            return Err(format!("claim {ci} chose {chosen:?}, cheapest is {cheapest}"));
        }
        overrides_are_the_offerings(ci, c, offered_here)?;
        let entry = pool_usage.entry(pi).or_default();
        for (total, r) in entry.0.iter_mut().zip(reserve) {
            *total += r;
        }
        entry.1 += 1;
        let mut host = Host {
            name: format!("new{ci}"),
            variants,
            placed: Vec::new(),
            bound: Vec::new(),
        };
        for p in &c.pods {
            host.placed.push(index_of(w, p)?);
        }
        hosts.push(host);
    }
    Ok(pool_usage)
}

/// A claim sends 1 to MAX_INSTANCE_TYPES types, carries pods, and chose an offering inside it,
/// spot whenever it may, and available.
fn claim_well_formed(ci: usize, c: &PlannedClaim, input: &Input) -> Result<(), String> {
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
    if is_unavailable(input, &chosen.instance_type, &chosen.zone, chosen.capacity_type) {
        return Err(format!("claim {ci} chose an unavailable offering {chosen:?}"));
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
    if c.overrides
        .iter()
        .any(|o| o.capacity_type != c.chosen.capacity_type)
    {
        return Err(format!("claim {ci}: an override of another capacity type"));
    }
    if c.overrides.windows(2).any(|w| w[0].price > w[1].price) {
        return Err(format!("claim {ci}: overrides not cheapest first"));
    }
    let mut sent: Vec<(&str, &str, f64)> = c
        .overrides
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

/// NodePool limits: what exists, what is in flight and every new claim at its largest type.
pub fn limits_respected(w: &World, input: &Input, pool_usage: &PoolUsage) -> Result<(), String> {
    let types = catalog();
    let type_of = |name: &str| types.iter().find(|t| t.name == name);
    for (pi, (new, _)) in pool_usage {
        let Some(limit) = w.pools[*pi].limit else { continue };
        let mut used = *new;
        let name = format!("pool{pi}");
        for n in &input.nodes {
            if n.node.labels.get(labels::NODEPOOL) == Some(&name) {
                let t = type_of(&n.node.labels[labels::INSTANCE_TYPE]).ok_or("node type")?;
                used[0] += t.capacity.cpu();
                used[1] += t.capacity.memory();
                used[2] += 1;
            }
        }
        for c in input.in_flight.iter().filter(|c| c.nodepool == name) {
            let t = type_of(&c.instance_types[0]).ok_or("claim type")?;
            used[0] += t.capacity.cpu();
            used[1] += t.capacity.memory();
            used[2] += 1;
        }
        let (k, cap) = match limit {
            Limit::Cpu(n) => (0, n * 1000),
            Limit::MemoryGi(n) => (1, n << 30),
            Limit::Nodes(n) => (2, n),
        };
        if used[k] > cap {
            return Err(format!("pool{pi} uses {used:?} over its limit {limit:?}"));
        }
    }
    Ok(())
}
