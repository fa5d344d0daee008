//! The plan: each claim priced at the offering EC2 would most likely pick, its candidates
//! capped for the launch with every minValues minimum kept, and the round's lower bound.

use std::collections::BTreeMap;

use super::claim::*;
use super::lower_bound;
use super::offerings::*;
use super::packing_bound;
use super::pools::*;
use super::solver::Solver;
use super::{
    Assignment, ChosenOffering, Input, MAX_INSTANCE_TYPES, Plan, PlannedClaim, PlannedOverride, Unschedulable,
};
use crate::catalog::CapacityType;
use crate::labels;
use crate::requirements::Requirements;
use crate::resources::Resources;

impl<'a> Solver<'a> {
    pub(super) fn into_plan(self, unschedulable: Vec<Unschedulable>) -> Plan {
        let key = |i: &usize| self.input.pending[*i].key();
        let existing = self
            .fixed
            .iter()
            .filter(|h| !h.in_flight && !h.placed.is_empty())
            .map(|h| Assignment {
                host: h.name.clone(),
                pods: h.placed.iter().map(key).collect(),
            })
            .collect();
        let in_flight = self
            .fixed
            .iter()
            .filter(|h| h.in_flight && !h.placed.is_empty())
            .map(|h| Assignment {
                host: h.name.clone(),
                pods: h.placed.iter().map(key).collect(),
            })
            .collect();
        let new_claims: Vec<PlannedClaim> = self
            .claims
            .iter()
            .map(|c| planned_claim(&self.pools[c.pool], c, &self.zones, self.input))
            .collect();
        // Summed from +0.0: an empty plan costs 0, not -0 (an empty f64 sum is -0.0).
        let cost_per_hour = new_claims.iter().fold(0.0, |sum, c| sum + c.chosen.price);
        // The bound covers all new pods at once with every offering of the pools used.
        let mut total = Resources::new();
        let mut used_pools = vec![false; self.pools.len()];
        for c in &self.claims {
            for i in &c.pods {
                total.add(&self.input.pending[*i].requests);
            }
            used_pools[c.pool] = true;
        }
        let pods: Vec<&Resources> = self
            .claims
            .iter()
            .flat_map(|c| c.pods.iter().map(|i| &self.input.pending[*i].requests))
            .collect();
        let offers: Vec<(&Resources, f64)> = self
            .pools
            .iter()
            .zip(&used_pools)
            .filter(|(_, used)| **used)
            .flat_map(|(p, _)| p.types.iter().map(|pt| (&pt.usable, pt.price)))
            .collect();
        // Both are true bounds; the packing LP is the closer one where it applies, and worth
        // its time only when the plan is not already within a hair of the cheaper one.
        let cover = lower_bound::round_bound(&pods, &offers);
        let lower_bound_per_hour = if cost_per_hour > cover * (1.0 + PACKING_BOUND_GAP) {
            cover.max(packing_bound::packing_bound(&shapes_of(&pods), &offers))
        } else {
            cover
        };
        Plan {
            new_claims,
            existing,
            in_flight,
            unschedulable,
            cost_per_hour,
            lower_bound_per_hour,
        }
    }
}

/// Plans within this share of the fractional cover are not bounded more closely.
const PACKING_BOUND_GAP: f64 = 0.005;

/// Distinct requests with their counts.
fn shapes_of<'r>(pods: &[&'r Resources]) -> Vec<(&'r Resources, usize)> {
    let mut out: Vec<(&Resources, usize)> = Vec::new();
    let mut index: std::collections::HashMap<&Resources, usize> = std::collections::HashMap::new();
    for p in pods {
        match index.get(p) {
            Some(&i) => out[i].1 += 1,
            None => {
                index.insert(p, out.len());
                out.push((p, 1));
            }
        }
        if out.len() > packing_bound::MAX_SHAPES {
            break;
        }
    }
    out
}

pub(super) fn planned_claim(pool: &Pool, c: &DraftClaim, zones: &[String], input: &Input) -> PlannedClaim {
    let zone_names: Vec<&str> = bits(c.zones).map(|z| zones[z as usize].as_str()).collect();
    // Spot where the claim allows it and some candidate still has it in the claim's zones,
    // on-demand otherwise; the launch asks for that capacity type only, so the candidates
    // and the chosen offering are that capacity type's.
    let spot = expand(c.zones, 1 << CT_SPOT);
    let has_spot = c.cts & (1 << CT_SPOT) != 0
        && c.types
            .iter()
            .any(|t| pool.types[*t as usize].offer_mask & spot != 0);
    let prefer = if has_spot { CT_SPOT } else { CT_ON_DEMAND };
    // Each candidate at its cheapest offering there. Unavailable offerings are not in `offers`.
    let preferred = expand(c.zones, 1 << prefer);
    let mut priced: Vec<Priced> = c
        .types
        .iter()
        .filter_map(|t| {
            let pt = &pool.types[*t as usize];
            let &(_, price, oi) = pt.offers.iter().find(|o| o.0 & preferred != 0)?;
            let o = &pt.it.offerings[oi as usize];
            Some((price, pt, Some((o.zone.as_str(), o.capacity_type))))
        })
        .collect();
    let by_price = |a: &Priced, b: &Priced| a.0.total_cmp(&b.0).then(a.1.it.name.cmp(&b.1.it.name));
    // Only the cheapest MAX_INSTANCE_TYPES are sent, unless minValues may reach past them.
    let min_values = c.reqs.iter().any(|(_, r)| r.min_values.is_some());
    if !min_values && priced.len() > MAX_INSTANCE_TYPES {
        priced.select_nth_unstable_by(MAX_INSTANCE_TYPES, by_price);
        priced.truncate(MAX_INSTANCE_TYPES);
    }
    priced.sort_by(by_price);
    let kept = keep_for_min_values(&priced, &c.reqs);
    let (price, pt, offering) =
        kept.first()
            .copied()
            .unwrap_or((f64::INFINITY, &pool.types[c.types[0] as usize], None));
    let (zone, capacity_type) =
        offering.unwrap_or((zone_names.first().copied().unwrap_or(""), ct_of(prefer)));
    let mut labels: BTreeMap<String, String> = pool.template_labels.clone();
    labels.extend(c.reqs.single_valued_labels());
    labels.insert(labels::NODEPOOL.into(), pool.name.to_string());
    let mut requests = Resources::new();
    for i in &c.pods {
        requests.add(&input.pending[*i].requests);
    }
    requests.add(&pt.overhead);
    let used_zones: Vec<String> = bits(c.zones)
        .filter(|z| {
            kept.iter()
                .any(|(_, pt, _)| pt.offer_mask & expand(1 << z, 1 << prefer) != 0)
        })
        .map(|z| zones[z as usize].clone())
        .collect();
    // The launch's overrides: every offering the kept types have in the claim's zones and
    // capacity type (`offers` holds no unavailable one), cheapest first, as the cloud tries them.
    let zone_index = |zone: &str| used_zones.iter().position(|z| z == zone);
    let mut overrides: Vec<PlannedOverride> = Vec::new();
    for (ti, (_, pt, _)) in kept.iter().enumerate() {
        for &(bit, price, oi) in &pt.offers {
            if bit & preferred == 0 {
                continue;
            }
            if let Some(zi) = zone_index(&pt.it.offerings[oi as usize].zone) {
                overrides.push(PlannedOverride {
                    instance_type: ti as u16,
                    zone: zi as u16,
                    price,
                });
            }
        }
    }
    // Ties in price go by type name, which is the order of `kept` among equal prices.
    overrides.sort_by(|a, b| {
        a.price
            .total_cmp(&b.price)
            .then(a.instance_type.cmp(&b.instance_type))
    });
    PlannedClaim {
        nodepool: pool.name.to_string(),
        nodeclass: pool.nodeclass.to_string(),
        instance_types: kept.iter().map(|(_, pt, _)| pt.it.name.clone()).collect(),
        zones: used_zones,
        capacity_types: vec![ct_of(prefer)],
        chosen: ChosenOffering {
            instance_type: pt.it.name.clone(),
            zone: zone.to_string(),
            capacity_type,
            price,
        },
        overrides,
        pods: c.pods.iter().map(|i| input.pending[*i].key()).collect(),
        requests,
        labels,
        taints: pool.taints.to_vec(),
        startup_taints: pool.startup_taints.to_vec(),
    }
}

pub(super) type Priced<'p> = (f64, &'p PoolType<'p>, Option<(&'p str, CapacityType)>);

/// At most [`MAX_INSTANCE_TYPES`] candidates (sorted by price), cheapest first, but holding
/// for every `minValues` requirement enough distinct values: first the cheapest types that
/// bring a value some minimum still lacks, then the cheapest of the rest.
pub(super) fn keep_for_min_values<'p>(priced: &[Priced<'p>], reqs: &Requirements) -> Vec<Priced<'p>> {
    let minimums: Vec<(&String, usize)> = reqs
        .iter()
        .filter_map(|(k, r)| r.min_values.map(|m| (k, m as usize)))
        .collect();
    if minimums.is_empty() {
        return priced.iter().take(MAX_INSTANCE_TYPES).copied().collect();
    }
    let mut seen: Vec<std::collections::HashSet<&str>> = vec![Default::default(); minimums.len()];
    let mut chosen = vec![false; priced.len()];
    let mut count = 0;
    for (i, (_, pt, _)) in priced.iter().enumerate() {
        if count == MAX_INSTANCE_TYPES || minimums.iter().zip(&seen).all(|((_, m), s)| s.len() >= *m) {
            break;
        }
        let brings = minimums
            .iter()
            .zip(&seen)
            .any(|((k, m), s)| s.len() < *m && pt.it.labels.get(*k).is_some_and(|v| !s.contains(v.as_str())));
        if brings {
            for ((k, _), s) in minimums.iter().zip(seen.iter_mut()) {
                if let Some(v) = pt.it.labels.get(*k) {
                    s.insert(v.as_str());
                }
            }
            chosen[i] = true;
            count += 1;
        }
    }
    for c in chosen.iter_mut() {
        if count == MAX_INSTANCE_TYPES {
            break;
        }
        if !*c {
            *c = true;
            count += 1;
        }
    }
    priced
        .iter()
        .zip(chosen)
        .filter(|(_, c)| *c)
        .map(|(p, _)| *p)
        .collect()
}
