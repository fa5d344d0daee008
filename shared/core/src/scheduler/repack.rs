//! Repacking: unconstrained pods moved off the claims first-fit filled lopsidedly and
//! packed again to the CPU:memory balance of the types the lower bound buys.

use std::collections::HashMap;

use super::claim::*;
use super::limits::{LimitVec, NOTHING};
use super::lower_bound;
use super::offerings::*;
use super::pools::TypeCache;
use super::solver::Solver;
use crate::pod::Pod;
use crate::resources::Resources;

/// Repacking gives up on pools with more distinct pod shapes than this (it is O(pods × shapes)).
pub(super) const REPACK_MAX_SHAPES: usize = 256;

/// Repacking must save this share of the claims' cost: moving every pod for less is churn.
pub(super) const REPACK_SAVING: f64 = 0.01;

/// While filling a node, pods that keep its CPU and memory shares within this of each other
/// are taken largest first; outside it, the pod that restores the balance best.
pub(super) const REPACK_BAND: f64 = 0.02;

impl<'a> Solver<'a> {
    /// Whether a pod may go on any node of its pool: no node requirements or preferences, no
    /// topology of its own, no host ports, and no other pod's topology counts it.
    pub(super) fn is_unconstrained(&mut self, i: usize) -> bool {
        let p = &self.input.pending[i];
        let unconstrained = p.node_selector.is_empty()
            && p.required_affinity.is_empty()
            && p.preferred_affinity.is_empty()
            && p.topology_spread.is_empty()
            && p.pod_affinity.is_empty()
            && p.pod_anti_affinity.is_empty()
            && p.preferred_pod_affinity.is_empty()
            && p.preferred_pod_anti_affinity.is_empty()
            && p.host_ports.is_empty();
        unconstrained && self.topology.matching_groups(p).is_empty()
    }

    /// First-fit in CPU order fills claims to whatever shape the pods arrive in, so memory-heavy
    /// and CPU-heavy nodes end up half used in the other resource. Per pool, the unconstrained pods (see
    /// [`Self::is_unconstrained`]) are taken out of every claim; a claim left with other pods shrinks to
    /// the types that take what remains, and its cheapest type's room is filled with unconstrained pods
    /// again, largest first; the unconstrained pods left over are packed from scratch (see
    /// [`Self::pack_unconstrained`]). The result replaces the pool's claims only if it saves
    /// [`REPACK_SAVING`] and stays within the pool's limits, so it never makes a plan worse.
    pub(super) fn repack(&mut self) {
        let unconstrained_pod: Vec<bool> = (0..self.input.pending.len())
            .map(|i| self.is_unconstrained(i))
            .collect();
        let mut compat: TypeCache = TypeCache::new();
        'pools: for p in 0..self.pools.len() {
            let involved: Vec<usize> = (0..self.claims.len())
                .filter(|c| self.claims[*c].pool == p)
                .collect();
            // A single claim too: one big node may cost more than a few of the types the
            // bound buys, however full it is.
            if involved.is_empty() {
                continue;
            }
            let mut unconstrained = Vec::new();
            let mut kept: Vec<DraftClaim> = Vec::new();
            for &c in &involved {
                let (f, rest): (Vec<usize>, Vec<usize>) =
                    self.claims[c].pods.iter().partition(|i| unconstrained_pod[**i]);
                if rest.is_empty() {
                    unconstrained.extend(f);
                } else if f.is_empty() {
                    kept.push(self.claims[c].clone());
                } else {
                    let Some(shrunk) = self.shrink(c, rest, &mut compat) else {
                        continue 'pools;
                    };
                    unconstrained.extend(f);
                    kept.push(shrunk);
                }
            }
            if unconstrained.is_empty() {
                continue;
            }
            let Some(left) = self.fill_slack(p, &mut kept, &unconstrained) else {
                continue;
            };
            let packed = if left.is_empty() {
                Vec::new()
            } else {
                // Both ways of choosing types; the cheaper plan is kept.
                let price = |claims: &Vec<DraftClaim>| -> f64 {
                    let pool = &self.pools[p];
                    claims
                        .iter()
                        .map(|c| {
                            c.types
                                .first()
                                .map_or(f64::INFINITY, |t| pool.types[*t as usize].price)
                        })
                        .sum()
                };
                let by_lp = self.pack_unconstrained(p, &left, NodeChoice::LpType);
                let by_worth = self.pack_unconstrained(p, &left, NodeChoice::Worth);
                let Some(packed) = [by_lp, by_worth]
                    .into_iter()
                    .flatten()
                    .min_by(|a, b| price(a).total_cmp(&price(b)))
                else {
                    continue;
                };
                packed
            };
            let pool = &self.pools[p];
            let cost = |claims: &mut dyn Iterator<Item = &DraftClaim>| -> f64 {
                claims
                    .map(|c| {
                        c.types
                            .first()
                            .map_or(f64::INFINITY, |t| pool.types[*t as usize].price)
                    })
                    .sum()
            };
            let old_cost = cost(&mut involved.iter().map(|c| &self.claims[*c]));
            let new_cost = cost(&mut kept.iter().chain(&packed));
            let old: Vec<&LimitVec> = involved.iter().map(|c| &self.claims[*c].limit_charge).collect();
            let new: Vec<&LimitVec> = kept.iter().chain(&packed).map(|c| &c.limit_charge).collect();
            if new_cost >= old_cost * (1.0 - REPACK_SAVING) || !pool.budget.admits_exchange(&old, &new) {
                continue;
            }
            let (old, new): (Vec<LimitVec>, Vec<LimitVec>) = (
                old.into_iter().copied().collect(),
                new.into_iter().copied().collect(),
            );
            let budget = &mut self.pools[p].budget;
            for o in &old {
                budget.exchange(o, &NOTHING);
            }
            for n in &new {
                budget.exchange(&NOTHING, n);
            }
            self.claims.retain(|c| c.pool != p);
            // Host ids only mattered while placing; they stay unique for the split that follows.
            for mut c in kept.into_iter().chain(packed) {
                c.host_id = (self.fixed.len() + self.claims.len()) as u32;
                self.claims.push(c);
            }
        }
    }

    /// Claim `c` holding only `pods` (a subset of its own): every type its requirements allow
    /// in its zones and capacity types that takes them, smaller ones included.
    pub(super) fn shrink(&self, c: usize, pods: Vec<usize>, compat: &mut TypeCache) -> Option<DraftClaim> {
        let claim = &self.claims[c];
        let pool = &self.pools[claim.pool];
        let compatible = pool.compatible_types(claim.pool, &claim.reqs, compat);
        let offer = expand(claim.zones, claim.cts);
        let mut requests = Resources::new();
        for i in &pods {
            requests.add(&self.input.pending[*i].requests);
        }
        let types: Vec<u32> = (0..pool.types.len())
            .filter(|t| {
                compatible[*t]
                    && pool.types[*t].offer_mask & offer != 0
                    && pool.types[*t].usable.fits(&requests)
            })
            .map(|t| t as u32)
            .collect();
        if types.is_empty() || !min_values_hold(pool, &claim.reqs, &types) {
            return None;
        }
        Some(DraftClaim::of(
            claim.pool,
            pool,
            claim.host_id,
            claim.reqs.clone(),
            types,
            claim.placement(),
            pods,
            &self.input.pending,
        ))
    }

    /// Fills the room left on each kept claim's cheapest type with unconstrained pods, largest first;
    /// returns the unconstrained pods left over (`None` with too many distinct shapes).
    pub(super) fn fill_slack(
        &self,
        p: usize,
        kept: &mut [DraftClaim],
        unconstrained: &[usize],
    ) -> Option<Vec<usize>> {
        let pool = &self.pools[p];
        let pending = &self.input.pending;
        let shapes = shapes_of(pending, unconstrained)?;
        let mut next = vec![0usize; shapes.len()];
        for claim in kept.iter_mut() {
            let Some(&cheapest) = claim.types.first() else {
                continue;
            };
            let room = &pool.types[cheapest as usize].usable;
            let (cpu_cap, mem_cap) = (room.cpu().max(1) as f64, room.memory().max(1) as f64);
            let before = claim.pods.len();
            loop {
                let mut best: Option<(f64, usize)> = None;
                for (s, (req, list)) in shapes.iter().enumerate() {
                    if next[s] == list.len() || !room.fits_sum(&claim.requests, req) {
                        continue;
                    }
                    let size = req.cpu() as f64 / cpu_cap + req.memory() as f64 / mem_cap;
                    if best.is_none_or(|(b, _)| size > b) {
                        best = Some((size, s));
                    }
                }
                let Some((_, s)) = best else { break };
                claim.requests.add(shapes[s].0);
                claim.pods.push(shapes[s].1[next[s]]);
                next[s] += 1;
            }
            if claim.pods.len() > before {
                let types = (claim.types.iter().copied())
                    .filter(|t| pool.types[*t as usize].usable.fits(&claim.requests))
                    .collect();
                claim.set_types(pool, types);
            }
        }
        Some(
            shapes
                .iter()
                .zip(&next)
                .flat_map(|((_, list), n)| list[*n..].iter().copied())
                .collect(),
        )
    }

    /// Packs unconstrained pods of pool `p` into new claims (see [`Self::repack`]); `None` when it
    /// cannot (too many shapes, or a pod fits no type).
    pub(super) fn pack_unconstrained(
        &self,
        p: usize,
        pods: &[usize],
        choice: NodeChoice,
    ) -> Option<Vec<DraftClaim>> {
        let pool = &self.pools[p];
        let pending = &self.input.pending;
        let offer = expand(pool.zone_mask, pool.ct_mask);
        let candidates: Vec<u32> = (0..pool.types.len() as u32)
            .filter(|t| pool.types[*t as usize].offer_mask & offer != 0)
            .collect();
        let shapes = shapes_of(pending, pods)?;
        // Each shape's pods are taken from the front.
        let mut next = vec![0usize; shapes.len()];
        let mut demand = Resources::new();
        for &i in pods {
            demand.add(&pending[i].requests);
        }
        let mut left = pods.len();
        let mut out = Vec::new();
        let smallest = lower_bound::smallest(pods.iter().map(|i| &pending[*i].requests));
        let rooms: Vec<(Resources, f64)> = candidates
            .iter()
            .map(|t| {
                let pt = &pool.types[*t as usize];
                (lower_bound::usable_by_pods(&pt.usable, &smallest), pt.price)
            })
            .collect();
        let offers: Vec<(&Resources, f64)> = rooms.iter().map(|(r, p)| (r, *p)).collect();
        let cover = lower_bound::Cover::new(&offers);
        let mut memo: Option<Memo> = None;
        // The cheapest type of each room (candidates are cheapest first).
        let distinct: Vec<u32> = {
            let mut seen = std::collections::HashSet::new();
            candidates
                .iter()
                .copied()
                .filter(|t| {
                    let u = &pool.types[*t as usize].usable;
                    seen.insert((u.cpu(), u.memory(), u.pods()))
                })
                .collect()
        };
        while left > 0 {
            let basis = cover.optimal(&demand)?;
            let (widest, x, _) = basis.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
            // Worth is what the node holds at the prices of the whole remaining demand: a node
            // full of small pods is worth little where pod slots are not what is short overall.
            let prices = cover.prices(&demand)?;
            // While whole nodes are needed: a node of the LP's main type, or (by `choice`) of
            // whichever type holds the most per dollar once filled with whole pods (the LP's
            // fractions ignore that three 2-CPU pods leave a quarter of an 8-CPU node idle, and
            // make burstable types look cheapest though whole pods leave most of them idle). For
            // the tail: the same choice, so a type that takes everything left competes like any
            // other.
            let (used, taken) = if x >= 1.0 && choice == NodeChoice::LpType {
                best_fill(
                    &pool.types[candidates[widest] as usize].usable,
                    &shapes,
                    &next,
                    &prices,
                )
            } else {
                let same_prices = |a: &[f64; 3]| {
                    a.iter()
                        .zip(&prices)
                        .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()))
                };
                // Every type is weighed when the prices move; in between, only the few that
                // were worth most then (weighing hundreds of types for every node is the cost).
                let fresh = memo
                    .as_ref()
                    .is_none_or(|m| !same_prices(&m.prices) || m.uses >= SHORTLIST_USES);
                let weighed: &[u32] = match &memo {
                    Some(m) if !fresh => &m.shortlist,
                    _ => &distinct,
                };
                let mut ranked: Vec<(f64, u32, (Resources, Vec<usize>))> = Vec::new();
                for &t in weighed {
                    let pt = &pool.types[t as usize];
                    let (used, taken) = best_fill(&pt.usable, &shapes, &next, &prices);
                    if taken.is_empty() {
                        continue;
                    }
                    let worth = lower_bound::Cover::value(&prices, &used) / pt.price;
                    ranked.push((worth, t, (used, taken)));
                }
                // Stable: among equals, the first (cheapest) type wins, as before.
                ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
                if fresh {
                    memo = Some(Memo {
                        prices,
                        shortlist: ranked.iter().take(SHORTLIST).map(|r| r.1).collect(),
                        best: ranked.first().map_or(0.0, |r| r.0),
                        uses: 0,
                    });
                } else if let Some(m) = memo.as_mut() {
                    m.uses += 1;
                    // The mix left has moved away from what the shortlist was chosen for.
                    if ranked.first().is_none_or(|r| r.0 < m.best * SHORTLIST_DRIFT) {
                        memo = None;
                        continue;
                    }
                }
                match ranked.into_iter().next() {
                    Some((_, _, fill)) => fill,
                    // The shortlist ran dry: weigh everything again.
                    None if !fresh => {
                        memo = None;
                        continue;
                    }
                    None => return None,
                }
            };
            let taken: Vec<usize> = taken
                .into_iter()
                .map(|s| {
                    let i = shapes[s].1[next[s]];
                    next[s] += 1;
                    i
                })
                .collect();
            if taken.is_empty() {
                return None;
            }
            demand.sub(&used);
            left -= taken.len();
            out.push(self.claim_of_unconstrained(p, &candidates, taken, used)?);
        }
        Some(out)
    }

    /// A claim of pool `p` holding unconstrained pods: every candidate type that takes them.
    pub(super) fn claim_of_unconstrained(
        &self,
        p: usize,
        candidates: &[u32],
        pods: Vec<usize>,
        requests: Resources,
    ) -> Option<DraftClaim> {
        let pool = &self.pools[p];
        let types: Vec<u32> = candidates
            .iter()
            .copied()
            .filter(|t| pool.types[*t as usize].usable.fits(&requests))
            .collect();
        if types.is_empty() || !min_values_hold(pool, &pool.reqs, &types) {
            return None;
        }
        let place = Placement {
            zones: pool.zone_mask,
            cts: pool.ct_mask,
            zone_pinned: false,
            ct_pinned: false,
        };
        // Host ids are given out again once the repacked claims replace the old ones.
        Some(DraftClaim::of(
            p,
            pool,
            0,
            pool.reqs.clone(),
            types,
            place,
            pods,
            &self.input.pending,
        ))
    }
}

/// Pods grouped by their requests, in the order given; `None` past [`REPACK_MAX_SHAPES`].
fn shapes_of<'p>(pending: &'p [Pod], pods: &[usize]) -> Option<Vec<(&'p Resources, Vec<usize>)>> {
    let mut shape_of: HashMap<&Resources, usize> = HashMap::new();
    let mut shapes: Vec<(&Resources, Vec<usize>)> = Vec::new();
    for &i in pods {
        let r = &pending[i].requests;
        let s = *shape_of.entry(r).or_insert_with(|| {
            shapes.push((r, Vec::new()));
            shapes.len() - 1
        });
        shapes[s].1.push(i);
        if shapes.len() > REPACK_MAX_SHAPES {
            return None;
        }
    }
    Some(shapes)
}

/// Types weighed for each node while the prices stay the same (see [`Memo`]).
const SHORTLIST: usize = 8;

/// Nodes chosen from one shortlist before every type is weighed again.
const SHORTLIST_USES: usize = 16;

/// A shortlist is weighed again in full once its best is worth less than this share of what
/// the best was worth when it was drawn up.
const SHORTLIST_DRIFT: f64 = 0.995;

/// The types worth most per dollar when the prices were last these, what the best of them was
/// worth, and how many nodes have been chosen from them since.
struct Memo {
    prices: [f64; 3],
    shortlist: Vec<u32>,
    best: f64,
    uses: usize,
}

/// How [`Solver::pack_unconstrained`] picks the type of each whole node.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeChoice {
    /// The type the LP cover buys most of: best where one type suits the whole mix.
    LpType,
    /// The type that, filled with whole pods, holds the most per dollar at the demand's prices:
    /// best where big and small pods need different types.
    Worth,
}

/// The better of two ways to fill a node (see [`fill`] and [`fill_by_value`]), by what it holds
/// at the demand's prices.
fn best_fill(
    room: &Resources,
    shapes: &[(&Resources, Vec<usize>)],
    next: &[usize],
    prices: &[f64; 3],
) -> (Resources, Vec<usize>) {
    let balanced = fill(room, shapes, next);
    let valued = fill_by_value(room, shapes, next, prices);
    let value = |f: &(Resources, Vec<usize>)| lower_bound::Cover::value(prices, &f.0);
    if value(&valued) > value(&balanced) {
        valued
    } else {
        balanced
    }
}

/// Fills one node with `room` from the pods left, the pod worth most at `prices` first: big
/// pods take the node and small ones fill what they leave.
fn fill_by_value(
    room: &Resources,
    shapes: &[(&Resources, Vec<usize>)],
    next: &[usize],
    prices: &[f64; 3],
) -> (Resources, Vec<usize>) {
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    let worth = |s: &usize| lower_bound::Cover::value(prices, shapes[*s].0);
    order.sort_by(|a, b| worth(b).total_cmp(&worth(a)).then(a.cmp(b)));
    let mut used = Resources::new();
    let mut taken = Vec::new();
    for s in order {
        let (req, list) = &shapes[s];
        let mut left = list.len() - next[s];
        while left > 0 && room.fits_sum(&used, req) {
            used.add(req);
            taken.push(s);
            left -= 1;
        }
    }
    (used, taken)
}

/// Fills one node with `room` from the pods left (`shapes[s].1[next[s]..]`): pods that keep
/// its CPU and memory shares within [`REPACK_BAND`] of each other, largest first; otherwise the
/// one that restores the balance best. Returns what it uses and the shape of each pod taken.
pub(super) fn fill(
    room: &Resources,
    shapes: &[(&Resources, Vec<usize>)],
    next: &[usize],
) -> (Resources, Vec<usize>) {
    let (cpu_cap, mem_cap) = (room.cpu().max(1) as f64, room.memory().max(1) as f64);
    let mut left: Vec<usize> = shapes.iter().zip(next).map(|((_, l), n)| l.len() - n).collect();
    let mut used = Resources::new();
    let mut taken = Vec::new();
    loop {
        // (outside the band, imbalance there or minus size within it); ties to the first shape.
        let mut best: Option<(bool, f64, usize)> = None;
        for (s, (req, _)) in shapes.iter().enumerate() {
            if left[s] == 0 || !room.fits_sum(&used, req) {
                continue;
            }
            let c = (used.cpu() + req.cpu()) as f64 / cpu_cap;
            let m = (used.memory() + req.memory()) as f64 / mem_cap;
            let imbalance = (c - m).abs();
            let key = if imbalance <= REPACK_BAND {
                (
                    false,
                    -(req.cpu() as f64 / cpu_cap + req.memory() as f64 / mem_cap),
                )
            } else {
                (true, imbalance)
            };
            if best.is_none_or(|b| (!key.0 && b.0) || (key.0 == b.0 && key.1 < b.1)) {
                best = Some((key.0, key.1, s));
            }
        }
        let Some((_, _, s)) = best else { break };
        left[s] -= 1;
        used.add(shapes[s].0);
        taken.push(s);
    }
    (used, taken)
}
