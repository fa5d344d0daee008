//! Right-sizing: a half-filled claim split in two when a smaller type plus the cheapest type
//! for the rest costs less.

use super::claim::*;
use super::limits::NOTHING;
use super::offerings::*;
use super::pools::TypeCache;
use super::solver::Solver;
use crate::labels;
use crate::resources::Resources;

/// A claim is only split when the two halves cost this much less than the whole.
pub(super) const SPLIT_SAVING: f64 = 0.02;

/// Claims whose cheapest type is fuller than this are left as they are.
pub(super) const SPLIT_BELOW_FILL: f64 = 0.8;

impl<'a> Solver<'a> {
    /// Packing fills each claim to the largest type that takes its pods, so a claim often ends
    /// on a type it fills by half (20 one-CPU pods on a 32-vCPU type). Where a cheaper type
    /// filled first-fit plus the cheapest type for the rest costs less, the claim is split in
    /// two; the rest is looked at again in turn. Splitting only separates pods, so it cannot
    /// break anti-affinity, host ports or hostname spread; claims with hostname pod affinity
    /// (which wants pods together) are left alone, a split must fit the pool's limits (two
    /// nodes reserve more than one), and both halves keep the claim's zone and capacity type.
    pub(super) fn right_size(&mut self) {
        // Claims of one pool mostly share requirements: type compatibility is worked out once
        // per (pool, requirements).
        let mut compat: TypeCache = TypeCache::new();
        let mut c = 0;
        while c < self.claims.len() {
            if let Some((a, b)) = self.split(c, &mut compat) {
                // Two nodes reserve more of the pool's limits than one: split only within them.
                let budget = &mut self.pools[a.pool].budget;
                let whole = self.claims[c].limit_charge;
                if budget.admits_exchange(&[&whole], &[&a.limit_charge, &b.limit_charge]) {
                    budget.exchange(&whole, &a.limit_charge);
                    budget.exchange(&NOTHING, &b.limit_charge);
                    self.claims[c] = a;
                    self.claims.push(b);
                }
            }
            c += 1;
        }
    }

    pub(super) fn split(&self, c: usize, compat: &mut TypeCache) -> Option<(DraftClaim, DraftClaim)> {
        let claim = &self.claims[c];
        let pool = &self.pools[claim.pool];
        if claim.pods.len() < 2 {
            return None;
        }
        let pending = &self.input.pending;
        let wants_company = |i: &usize| {
            let p = &pending[*i];
            p.pod_affinity.iter().any(|t| t.topology_key != labels::ZONE)
                || p.preferred_pod_affinity
                    .iter()
                    .any(|t| t.term.topology_key != labels::ZONE)
        };
        if claim.pods.iter().any(wants_company) {
            return None;
        }
        let offer = expand(claim.zones, claim.cts);
        let price = |t: u32| pool.types[t as usize].price;
        let &current = claim
            .types
            .iter()
            .filter(|t| pool.types[**t as usize].offer_mask & offer != 0)
            .min_by(|a, b| price(**a).total_cmp(&price(**b)))?;
        let usable = &pool.types[current as usize].usable;
        let fill = (claim.requests.cpu() as f64 / usable.cpu().max(1) as f64)
            .max(claim.requests.memory() as f64 / usable.memory().max(1) as f64);
        if fill >= SPLIT_BELOW_FILL {
            return None;
        }
        // Types the claim's requirements allow in its zones and capacity types, smaller ones
        // included (the claim's own list holds only types that take all its pods). Pool types
        // are sorted by price; compatibility is checked lazily, once per type.
        let compatible = pool.compatible_types(claim.pool, &claim.reqs, compat);
        let allowed = |t: usize| -> bool { pool.types[t].offer_mask & offer != 0 && compatible[t] };
        let mut pods = claim.pods.clone();
        pods.sort_by(|a, b| {
            let (pa, pb) = (&pending[*a].requests, &pending[*b].requests);
            pb.cpu()
                .cmp(&pa.cpu())
                .then(pb.memory().cmp(&pa.memory()))
                .then(a.cmp(b))
        });
        let mut best: Option<(f64, Vec<usize>, Vec<usize>)> = None;
        // One try per distinct usable shape: the first (cheapest) of each is the one to try.
        let mut shapes = std::collections::HashSet::new();
        for t in 0..pool.types.len() {
            if pool.types[t].price >= price(current) {
                break;
            }
            let room = &pool.types[t].usable;
            let shape = (room.cpu(), room.memory(), room.pods());
            if shapes.contains(&shape) || !allowed(t) {
                continue;
            }
            shapes.insert(shape);
            let (mut used, mut first, mut rest) = (Resources::new(), Vec::new(), Vec::new());
            let mut rest_requests = Resources::new();
            for &i in &pods {
                if room.fits_sum(&used, &pending[i].requests) {
                    used.add(&pending[i].requests);
                    first.push(i);
                } else {
                    rest_requests.add(&pending[i].requests);
                    rest.push(i);
                }
            }
            if first.is_empty() || rest.is_empty() {
                continue;
            }
            let Some(second) = (0..pool.types.len())
                .find(|u| pool.types[*u].usable.fits(&rest_requests) && allowed(*u))
                .map(|u| pool.types[u].price)
            else {
                continue;
            };
            let cost = pool.types[t].price + second;
            if best.as_ref().is_none_or(|(b, _, _)| cost < *b) {
                best = Some((cost, first, rest));
            }
        }
        let (cost, first, rest) = best?;
        if cost >= price(current) * (1.0 - SPLIT_SAVING) {
            return None;
        }
        let half = |pods: Vec<usize>, host_id: u32| -> DraftClaim {
            let mut requests = Resources::new();
            for i in &pods {
                requests.add(&pending[*i].requests);
            }
            let types: Vec<u32> = (0..pool.types.len())
                .filter(|t| pool.types[*t].usable.fits(&requests) && allowed(*t))
                .map(|t| t as u32)
                .collect();
            let reqs = claim.reqs.clone();
            DraftClaim::of(
                claim.pool,
                pool,
                host_id,
                reqs,
                types,
                claim.placement(),
                pods,
                pending,
            )
        };
        let next_host = (self.fixed.len() + self.claims.len()) as u32;
        Some((half(first, claim.host_id), half(rest, next_host)))
    }
}
