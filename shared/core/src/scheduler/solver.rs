//! The placement loop: pods one at a time, largest CPU first (then memory, age, uid).
//!
//! A pod goes to the first existing node (or in-flight claim) where it fits; otherwise to a
//! claim of this round — first one whose cheapest instance type still has room (no cost
//! added), then one that can grow into a bigger type; otherwise to a new claim from the first
//! NodePool (by weight) that can take it. Claims keep every instance type that still fits all
//! their pods. Preferences are treated as required and relaxed one at a time, in Karpenter's
//! order, when a pod cannot be placed.

use std::collections::HashMap;

use super::claim::*;
use super::hosts::{self, *};
use super::limits::NODES;
use super::offerings::*;
use super::pools::{self, *};
use super::rooms::Rooms;
use super::topology::Topology;
use super::view::*;
use super::{Input, Plan, Unschedulable};
use crate::labels;
use crate::pod::TaintEffect;
use crate::requirements::Requirements;

pub(super) struct Solver<'a> {
    pub(super) input: &'a Input,
    pub(super) zones: Vec<String>,
    /// Zones and capacity types some valid pool or existing node offers: topology domains.
    pub(super) universe: (u64, u8),
    pub(super) pools: Vec<Pool<'a>>,
    pub(super) topology: Topology,
    pub(super) fixed: Vec<FixedHost>,
    pub(super) claims: Vec<DraftClaim>,
    /// Room left on each claim, kept while placing (see [`Rooms`]).
    pub(super) rooms: Rooms,
    /// Some pool or host has a PreferNoSchedule taint (see [`Relaxation`]).
    pub(super) prefer_no_schedule: bool,
    /// Type bitsets per (pool, requirements): which of a pool's types a term allows.
    pub(super) type_cache: HashMap<(usize, Requirements), std::rc::Rc<Vec<u64>>>,
}

pub(super) fn solve(input: &Input) -> Plan {
    let mut solver = Solver::new(input);
    let mut pods: Vec<usize> = (0..input.pending.len())
        .filter(|i| !input.pending[*i].is_daemon())
        .collect();
    pods.sort_by(|a, b| {
        let (pa, pb) = (&input.pending[*a], &input.pending[*b]);
        pb.requests
            .cpu()
            .cmp(&pa.requests.cpu())
            .then(pb.requests.memory().cmp(&pa.requests.memory()))
            .then(pa.created_at.cmp(&pb.created_at))
            .then(pa.uid.cmp(&pb.uid))
    });
    solver.register_groups(&pods);
    solver.count_existing();

    // Pods an in-flight claim was launched for go back to it first.
    let (promised, rest): (Vec<usize>, Vec<usize>) = pods
        .into_iter()
        .partition(|i| solver.host_launched_for(&input.pending[*i]).is_some());
    let mut failed: Vec<(usize, String)> = Vec::new();
    let mut waiting: Vec<bool> = vec![false; input.pending.len()];
    for i in promised.into_iter().chain(rest) {
        if let Err(reason) = solver.place(i) {
            waiting[i] = solver.affinity_target_missing(i);
            failed.push((i, reason));
        }
    }
    // A pod whose affinity target came later in the order is tried again once the others are
    // placed, as long as a pass places any. Only such pods: one placed out of order for any
    // other reason could break the spread of a pod placed before it, should the kube-scheduler
    // bind them in the order they were planned.
    loop {
        let before = failed.len();
        failed.retain_mut(|(i, reason)| {
            if !waiting[*i] {
                return true;
            }
            match solver.place(*i) {
                Ok(()) => false,
                Err(r) => {
                    *reason = r;
                    true
                }
            }
        });
        if failed.is_empty() || failed.len() == before {
            break;
        }
    }
    let unschedulable = failed
        .into_iter()
        .map(|(i, reason)| Unschedulable {
            pod: input.pending[i].key(),
            reason,
        })
        .collect();
    solver.repack();
    solver.right_size();
    solver.into_plan(unschedulable)
}

impl<'a> Solver<'a> {
    pub(super) fn new(input: &'a Input) -> Self {
        let mut zones: Vec<String> = input
            .pools
            .iter()
            .flat_map(|p| {
                p.instance_types
                    .iter()
                    .flat_map(|t| t.offerings.iter().map(|o| o.zone.clone()))
            })
            .chain(
                input
                    .nodes
                    .iter()
                    .filter_map(|n| n.node.labels.get(labels::ZONE).cloned()),
            )
            // In-flight claims may sit in zones no pool's node class offers any more.
            .chain(input.in_flight.iter().flat_map(|c| {
                c.zones
                    .iter()
                    .cloned()
                    .chain(c.instance.as_ref().map(|i| i.zone.clone()))
            }))
            .collect();
        zones.sort();
        zones.dedup();
        zones.truncate(32);
        let zone_index: HashMap<&str, u32> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.as_str(), i as u32))
            .collect();

        let pools = pools::prepare(input, &zones, &zone_index);
        let mut fixed = hosts::existing(input, &pools, &zone_index);
        fixed.extend(hosts::in_flight(input, &pools, &zone_index));
        let mut universe = (0u64, 0u8);
        for p in pools.iter().filter(|p| p.broken.is_none()) {
            universe.0 |= p.zone_mask;
            universe.1 |= p.ct_mask;
        }
        for f in &fixed {
            universe.0 |= f.zone.map_or(0, |z| 1 << z);
            universe.1 |= f.ct.map_or(0, |c| 1 << c);
        }
        let prefer_no_schedule = pools
            .iter()
            .flat_map(|p| p.taints.iter())
            .chain(fixed.iter().flat_map(|f| f.taints.iter()))
            .any(|t| t.effect == TaintEffect::PreferNoSchedule);
        Solver {
            input,
            zones,
            universe,
            prefer_no_schedule,
            pools,
            topology: Topology::default(),
            fixed,
            claims: Vec::new(),
            rooms: Rooms::default(),
            type_cache: HashMap::new(),
        }
    }

    /// Places a pod (see [`Self::place_relaxing`]); when it fits nowhere and some pool with
    /// limits has not run short before, that pool's claims give up their larger candidates
    /// (see [`Budget::tightest`]) and the pod is tried once more.
    pub(super) fn place(&mut self, i: usize) -> Result<(), String> {
        match self.place_relaxing(i) {
            Err(_) if self.tighten() => self.place_relaxing(i),
            placed => placed,
        }
    }

    /// Narrows the claims of every limited pool not yet tight to their smallest candidates,
    /// giving the rest of their reservations back; false when there was none to tighten.
    pub(super) fn tighten(&mut self) -> bool {
        let mut any = false;
        for p in 0..self.pools.len() {
            let pool = &mut self.pools[p];
            if pool.budget.tight || !pool.budget.is_limited() {
                continue;
            }
            pool.budget.tight = true;
            any = true;
            for claim in self.claims.iter_mut().filter(|c| c.pool == p) {
                let pool = &self.pools[p];
                let types = pool.tightest(&claim.types);
                if types.is_empty() || !min_values_hold(pool, &claim.reqs, &types) {
                    continue;
                }
                let before = claim.limit_charge;
                claim.set_types(pool, types);
                self.pools[p].budget.exchange(&before, &claim.limit_charge);
            }
            for c in 0..self.claims.len() {
                if self.claims[c].pool == p {
                    self.refresh_room(c);
                }
            }
        }
        any
    }

    /// Places a pod with its preferences, relaxing them one at a time until it fits.
    pub(super) fn place_relaxing(&mut self, i: usize) -> Result<(), String> {
        let pod = &self.input.pending[i];
        let mut relax = Relaxation {
            required_term: 0,
            preferred_node: {
                let mut p = pod.preferred_affinity.clone();
                p.sort_by_key(|w| std::cmp::Reverse(w.weight));
                p.into_iter().map(|w| w.term.normalized()).collect()
            },
            preferred_affinity: 0,
            preferred_anti: 0,
            schedule_anyway: true,
            // Nothing to relax where no pool or host has such a taint.
            tolerate_prefer_no_schedule: !self.prefer_no_schedule,
        };
        loop {
            let view = self.view(pod, &relax);
            if self.place_with(i, &view) {
                return Ok(());
            }
            if !relax_once(pod, &mut relax) {
                return Err(self.explain(pod, &view));
            }
        }
    }

    pub(super) fn place_with(&mut self, i: usize, view: &PodView) -> bool {
        let pod = &self.input.pending[i];
        let skip = self.hosts_to_skip(view);
        // 1. Existing nodes, then in-flight claims (a pod an in-flight claim was launched for goes to it first).
        let promised = self.host_launched_for(pod);
        let order: Vec<usize> = promised
            .into_iter()
            .chain((0..self.fixed.len()).filter(|h| Some(*h) != promised))
            .collect();
        for h in order {
            if self.fits_fixed(h, pod, view) {
                self.commit_fixed(h, i, view);
                return true;
            }
        }
        if view.existing_only {
            return false;
        }
        // 2. Claims of this round: first without adding cost, then by growing.
        if self.join_claim(i, view, &skip, Fit::Room) || self.join_claim(i, view, &skip, Fit::Grow) {
            return true;
        }
        // 3. A new claim from the first pool that can take the pod; 4. failing that, any
        // claim that can grow into a type of any shape (a pool at its limits opens none).
        self.open_claim(i, view) || self.join_claim(i, view, &skip, Fit::GrowAny)
    }

    /// Adds the pod to the first claim of this round it fits as `fit` allows. A claim's host
    /// id is the number of fixed hosts plus its index.
    fn join_claim(&mut self, i: usize, view: &PodView, skip: &[u64], fit: Fit) -> bool {
        let pod = &self.input.pending[i];
        let first = self.fixed.len();
        let need = [pod.requests.cpu(), pod.requests.memory()];
        let mut from = 0;
        while let Some(c) = self.rooms.next(from, &need, fit != Fit::Room, skip, first) {
            debug_assert_eq!(self.claims[c].host_id as usize, first + c);
            if let Some(update) = self.try_add(c, pod, view, fit) {
                self.commit_claim(c, update, i, view);
                return true;
            }
            from = c + 1;
        }
        false
    }

    /// Opens a claim for the pod in the first pool (by weight) that can take it.
    fn open_claim(&mut self, i: usize, view: &PodView) -> bool {
        let pod = &self.input.pending[i];
        for p in 0..self.pools.len() {
            if self.pools[p].broken.is_some() || view.untolerated(pod, self.pools[p].taints).is_some() {
                continue;
            }
            if self.pools[p].budget.remaining[NODES] < 1 {
                continue;
            }
            let claim = self.empty_claim(p);
            self.claims.push(claim);
            let c = self.claims.len() - 1;
            self.refresh_room(c);
            match self.try_add(c, pod, view, Fit::Grow) {
                Some(update) => {
                    self.commit_claim(c, update, i, view);
                    return true;
                }
                None => {
                    self.claims.pop();
                    self.rooms.truncate(self.claims.len());
                }
            }
        }
        false
    }
}
