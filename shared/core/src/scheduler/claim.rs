//! The claim under construction: a NodeClaim of this round with its candidate types, and the
//! checks a pod must pass to join it, each narrowing the candidates.

use super::limits::{LimitVec, NOTHING};
use super::offerings::*;
use super::pools::*;
use super::solver::Solver;
use super::topology::TopoKey;
use super::view::*;
use crate::pod::{HostPort, Pod};
use crate::requirements::Requirements;
use crate::resources::Resources;

/// A claim the solver is still building this round; the finished ones become
/// [`super::PlannedClaim`]s.
#[derive(Clone)]
pub(super) struct DraftClaim {
    pub(super) pool: usize,
    pub(super) host_id: u32,
    pub(super) reqs: Requirements,
    /// Indices into the pool's types, cheapest first; all fit `requests`.
    pub(super) types: Vec<u32>,
    pub(super) requests: Resources,
    /// Element-wise maximum of the candidates' usable resources: a quick upper bound.
    pub(super) max_usable: Resources,
    /// How many candidates `max_usable` was taken over.
    pub(super) max_over: usize,
    pub(super) zones: u64,
    pub(super) cts: u8,
    pub(super) zone_pinned: bool,
    pub(super) ct_pinned: bool,
    pub(super) limit_charge: LimitVec,
    pub(super) pods: Vec<usize>,
    pub(super) host_ports: Vec<HostPort>,
}

/// Where a claim may launch: zone and capacity-type masks, and whether topology pinned them.
#[derive(Clone, Copy)]
pub(super) struct Placement {
    pub(super) zones: u64,
    pub(super) cts: u8,
    pub(super) zone_pinned: bool,
    pub(super) ct_pinned: bool,
}

impl DraftClaim {
    /// A claim of pool `p` holding `pods`, with candidates `types` (all of which fit them).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn of(
        p: usize,
        pool: &Pool,
        host_id: u32,
        reqs: Requirements,
        types: Vec<u32>,
        place: Placement,
        pods: Vec<usize>,
        pending: &[Pod],
    ) -> DraftClaim {
        let mut requests = Resources::new();
        let mut host_ports = Vec::new();
        for i in &pods {
            requests.add(&pending[*i].requests);
            host_ports.extend(pending[*i].host_ports.iter().cloned());
        }
        let mut claim = DraftClaim {
            pool: p,
            host_id,
            reqs,
            max_over: 0,
            limit_charge: NOTHING,
            types: Vec::new(),
            requests,
            max_usable: Resources::new(),
            zones: place.zones,
            cts: place.cts,
            zone_pinned: place.zone_pinned,
            ct_pinned: place.ct_pinned,
            pods,
            host_ports,
        };
        claim.set_types(pool, types);
        claim
    }

    /// Narrows the candidates to `types`, and what follows from them: the quick upper bound of
    /// their room and what the claim reserves of the pool's limits.
    pub(super) fn set_types(&mut self, pool: &Pool, types: Vec<u32>) {
        let mut max_usable = Resources::new();
        for t in &types {
            max_usable.max_with(&pool.types[*t as usize].usable);
        }
        self.max_usable = max_usable;
        self.max_over = types.len();
        self.limit_charge = pool.limit_charge_of(&types);
        self.types = types;
    }

    pub(super) fn placement(&self) -> Placement {
        Placement {
            zones: self.zones,
            cts: self.cts,
            zone_pinned: self.zone_pinned,
            ct_pinned: self.ct_pinned,
        }
    }
}

/// How much a pod may change the claim it joins.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// Only where the claim's cheapest type already has room: no cost added.
    Room,
    /// The claim may grow into bigger types, but not out of those efficient for the round's
    /// CPU:memory mix (big claims end on cost-efficient nodes).
    Grow,
    /// Into any bigger type: the last resort once no new claim can be opened.
    GrowAny,
}

/// How far a claim's cpu share may run ahead of its memory share (or the reverse), as
/// fractions of the balance type's usable capacity.
pub(super) const BALANCE_SLACK: f64 = 0.1;

impl<'a> Solver<'a> {
    pub(super) fn empty_claim(&self, p: usize) -> DraftClaim {
        let pool = &self.pools[p];
        let types: Vec<u32> = (0..pool.types.len() as u32)
            .filter(|t| pool.budget.admits(&pool.types[*t as usize].limit, &NOTHING))
            .collect();
        let host_id = (self.fixed.len() + self.claims.len()) as u32;
        let place = Placement {
            zones: pool.zone_mask,
            cts: pool.ct_mask,
            zone_pinned: false,
            ct_pinned: false,
        };
        let mut claim = DraftClaim::of(p, pool, host_id, pool.reqs.clone(), types, place, Vec::new(), &[]);
        // Nothing counts against the limits until a pod is committed to it.
        claim.limit_charge = NOTHING;
        claim
    }

    pub(super) fn type_bits(&mut self, p: usize, term: &Requirements) -> std::rc::Rc<Vec<u64>> {
        if let Some(b) = self.type_cache.get(&(p, term.clone())) {
            return b.clone();
        }
        let pool = &self.pools[p];
        let mut out = vec![0u64; pool.types.len().div_ceil(64)];
        if pool.reqs.compatible(term).is_ok() {
            for (t, pt) in pool.types.iter().enumerate() {
                if pt.it.requirements.intersects(term).is_ok()
                    && pt.it.requirements.intersects(&pool.reqs).is_ok()
                {
                    out[t / 64] |= 1 << (t % 64);
                }
            }
        }
        let out = std::rc::Rc::new(out);
        self.type_cache.insert((p, term.clone()), out.clone());
        out
    }

    /// The claim as it would be with the pod added, or `None` if the pod cannot go there.
    /// How far the claim may change (see [`Fit`]).
    pub(super) fn try_add(&mut self, c: usize, pod: &Pod, view: &PodView, fit: Fit) -> Option<DraftClaim> {
        let claim = &self.claims[c];
        // The cheapest test first: a pod anti-affine by hostname to pods already on the claim
        // (most claims, for such a pod) is turned away by one lookup.
        let host = claim.host_id;
        for &gid in &view.anti {
            let g = &self.topology.groups[gid as usize];
            if g.key == TopoKey::Hostname && g.count(host) > 0 {
                return None;
            }
        }
        if !claim.max_usable.fits_sum(&claim.requests, &pod.requests) {
            return None;
        }
        let p = claim.pool;
        // Pods come largest CPU first, so a claim filled first-fit takes CPU-heavy pods early
        // and leaves the memory-heavy tail to memory-optimized types that cost more per unit.
        // A claim that would drift further from the round's balance than the slack passes the
        // pod on; later pods of the other shape fill it back towards balance.
        // An empty claim takes any pod: otherwise a pod of an unusual shape fits nowhere.
        if let Some((cpu_ref, mem_ref)) = self.pools[p]
            .balance
            .filter(|_| !claim.pods.is_empty() && fit != Fit::GrowAny)
        {
            let skew = |cpu: i64, mem: i64| cpu as f64 / cpu_ref - mem as f64 / mem_ref;
            let (cpu, mem) = (claim.requests.cpu(), claim.requests.memory());
            let before = skew(cpu, mem);
            let after = skew(cpu + pod.requests.cpu(), mem + pod.requests.memory());
            if after.abs() > BALANCE_SLACK && after.abs() > before.abs() {
                return None;
            }
        }
        if fit == Fit::Room {
            let cheapest = claim.types.first()?;
            if !self.pools[p].types[*cheapest as usize]
                .usable
                .fits_sum(&claim.requests, &pod.requests)
            {
                return None;
            }
        }
        if view.untolerated(pod, self.pools[p].taints).is_some() {
            return None;
        }
        if pod
            .host_ports
            .iter()
            .any(|hp| claim.host_ports.iter().any(|q| hp.conflicts(q)))
        {
            return None;
        }
        let host = claim.host_id;
        if !self.host_topology_ok(view, host) {
            return None;
        }
        let claim = &self.claims[c];
        // Narrowed requirements, only where the pod has a term: cloning the claim's for every
        // pod tried would cost more than the rest of the checks.
        let narrowed = if view.term.is_empty() {
            None
        } else {
            if claim.reqs.compatible(&view.term).is_err() {
                return None;
            }
            Some(claim.reqs.intersection(&view.term))
        };
        let mut zones = claim.zones & view.zone_req;
        let mut cts = claim.cts & view.ct_req;
        if view.pins_zone {
            zones &= view.zone_allowed;
        }
        if view.pins_ct {
            cts &= view.ct_allowed;
        }
        if zones == 0 || cts == 0 {
            return None;
        }
        let type_bits = view.type_bits[p].clone();
        let claim = &self.claims[c];
        let pool = &self.pools[p];
        let mut requests = claim.requests.clone();
        requests.add(&pod.requests);
        let offer = expand(zones, cts);
        // A daemonset's host port is taken only on the types it runs on.
        let port_taken = |t: u32| {
            !pod.host_ports.is_empty()
                && pool.daemon_ports.iter().any(|(port, lands)| {
                    lands[t as usize / 64] & (1 << (t % 64)) != 0
                        && pod.host_ports.iter().any(|p| p.conflicts(port))
                })
        };
        let keep = |t: u32| {
            let pt = &pool.types[t as usize];
            type_bits[t as usize / 64] & (1 << (t % 64)) != 0
                && pt.offer_mask & offer != 0
                && pt.usable.fits(&requests)
                && !port_taken(t)
        };
        // A claim that holds an efficient type keeps one (see [`Fit::Grow`]): checked on the
        // few efficient types first, since most claims tried fail here.
        if fit == Fit::Grow && !claim.pods.is_empty() {
            let held = pool
                .efficient
                .iter()
                .filter(|e| claim.types.binary_search(e).is_ok());
            let mut any_held = false;
            let mut kept = false;
            for e in held {
                any_held = true;
                if keep(*e) {
                    kept = true;
                    break;
                }
            }
            if any_held && !kept {
                return None;
            }
        }
        let types: Vec<u32> = claim.types.iter().copied().filter(|t| keep(*t)).collect();
        if types.is_empty() {
            return None;
        }
        // Pin zone and capacity type when topology counts depend on them: the domain with the
        // fewest matching pods that some candidate is offered in.
        let available: u64 = types
            .iter()
            .fold(0, |m, t| m | pool.types[*t as usize].offer_mask)
            & offer;
        let zone_pinned = claim.zone_pinned || view.pins_zone;
        let ct_pinned = claim.ct_pinned || view.pins_ct;
        if view.pins_zone && !claim.zone_pinned {
            let offered = bits(zones).filter(|z| expand(1 << z, cts) & available != 0);
            let z = offered.min_by_key(|z| self.domain_load(view, &TopoKey::Zone, *z))?;
            zones = 1 << z;
        }
        if view.pins_ct && !claim.ct_pinned {
            let offered = bits(cts as u64).filter(|c| expand(zones, 1 << c) & available != 0);
            let ct = offered.min_by_key(|c| (self.domain_load(view, &TopoKey::CapacityType, *c), *c))?;
            cts = 1 << ct;
        }
        let offer = expand(zones, cts);
        let mut types: Vec<u32> = types
            .into_iter()
            .filter(|t| pool.types[*t as usize].offer_mask & offer != 0)
            .collect();
        // Under limits, candidates too large for what is left are dropped (the pod is refused
        // only when none is left), and the claim reserves the largest of the rest.
        let mut limit_charge = NOTHING;
        if pool.budget.is_limited() {
            types.retain(|t| {
                pool.budget
                    .admits(&pool.types[*t as usize].limit, &claim.limit_charge)
            });
            if pool.budget.tight {
                types = pool.tightest(&types);
            }
            limit_charge = pool.limit_charge_of(&types);
        }
        let mut narrowed = narrowed;
        if !view.label_keys.is_empty() {
            let mut reqs = narrowed.unwrap_or_else(|| claim.reqs.clone());
            if !self.settle_labels(view, p, &mut reqs, &mut types) {
                return None;
            }
            narrowed = Some(reqs);
        }
        let claim = &self.claims[c];
        let pool = &self.pools[p];
        let reqs = narrowed.as_ref().unwrap_or(&claim.reqs);
        if types.is_empty() || !min_values_hold(pool, reqs, &types) {
            return None;
        }
        // The candidates only shrink, so the old bound still holds; it is worked out again
        // once half of the candidates it was taken over are gone.
        let (max_usable, max_over) = if types.len() * 2 <= claim.max_over {
            let mut max_usable = Resources::new();
            for t in &types {
                max_usable.max_with(&pool.types[*t as usize].usable);
            }
            (max_usable, types.len())
        } else {
            (claim.max_usable.clone(), claim.max_over)
        };
        let mut host_ports = claim.host_ports.clone();
        host_ports.extend(pod.host_ports.iter().cloned());
        Some(DraftClaim {
            reqs: narrowed.unwrap_or_else(|| claim.reqs.clone()),
            types,
            requests,
            max_usable,
            max_over,
            zones,
            cts,
            zone_pinned,
            ct_pinned,
            limit_charge,
            host_ports,
            pods: Vec::new(),
            pool: claim.pool,
            host_id: claim.host_id,
        })
    }

    /// Records what claim `c` has left for placement to find (see [`Rooms`]).
    pub(super) fn refresh_room(&mut self, c: usize) {
        let claim = &self.claims[c];
        let left = |r: &Resources| {
            [
                r.cpu() - claim.requests.cpu(),
                r.memory() - claim.requests.memory(),
            ]
        };
        let cheapest = claim.types.first().map_or([-1, -1], |t| {
            left(&self.pools[claim.pool].types[*t as usize].usable)
        });
        let widest = left(&claim.max_usable);
        self.rooms.set(c, cheapest, widest);
    }

    pub(super) fn commit_claim(&mut self, c: usize, mut update: DraftClaim, i: usize, view: &PodView) {
        self.pools[update.pool]
            .budget
            .exchange(&self.claims[c].limit_charge, &update.limit_charge);
        update.pods = std::mem::take(&mut self.claims[c].pods);
        update.pods.push(i);
        self.claims[c] = update;
        self.refresh_room(c);
        let host = self.claims[c].host_id;
        let pod = &self.input.pending[i];
        self.record(pod, host, Some(view));
    }
}
