//! The bin-packing solver behind [`super::schedule`].
//!
//! Pods are placed one at a time, largest first. A pod goes to the first existing node (or
//! in-flight claim) where it fits; otherwise to a claim of this round — first one whose
//! cheapest instance type still has room (no cost added), then one that can grow into a bigger
//! type; otherwise to a new claim from the first NodePool (by weight) that can take it. Claims
//! keep every instance type that still fits all their pods. Preferences are treated as required
//! and relaxed one at a time, in Karpenter's order, when a pod cannot be placed.

use std::collections::{BTreeMap, HashMap};

use super::limits::{Budget, LimitVec, NODES, NOTHING, largest, usage_of};
use super::lower_bound;
use super::topology::{NsScope, TopoKey, Topology, next_clear, or_into};
use super::{ChosenOffering, Input, MAX_INSTANCE_TYPES, Plan, PlannedClaim, Unschedulable};
use crate::catalog::{CapacityType, InstanceType};
use crate::labels;
use crate::pod::{HostPort, InclusionPolicy, Pod, Taint, WhenUnsatisfiable, untolerated};
use crate::ports::OfferingKey;
use crate::requirements::{Requirement, Requirements};
use crate::resources::{ResourceName, Resources};

const CT_SPOT: u32 = 0;
const CT_ON_DEMAND: u32 = 1;

fn ct_index(ct: CapacityType) -> u32 {
    match ct {
        CapacityType::Spot => CT_SPOT,
        CapacityType::OnDemand => CT_ON_DEMAND,
    }
}

fn ct_of(index: u32) -> CapacityType {
    if index == CT_SPOT {
        CapacityType::Spot
    } else {
        CapacityType::OnDemand
    }
}

/// One bit per (zone, capacity type) pair.
fn offering_bit(zone: u32, ct: u32) -> u64 {
    1u64 << (zone * 2 + ct)
}

fn expand(zones: u64, cts: u8) -> u64 {
    let mut out = 0;
    for z in bits(zones) {
        for c in 0..2 {
            if cts & (1 << c) != 0 {
                out |= offering_bit(z, c);
            }
        }
    }
    out
}

fn bits(mask: u64) -> impl Iterator<Item = u32> {
    (0..64u32).filter(move |i| mask & (1u64 << i) != 0)
}

struct PoolType<'a> {
    it: &'a InstanceType,
    /// Allocatable minus the daemonsets that would run on this type.
    usable: Resources,
    overhead: Resources,
    /// Offerings available within the pool's zones and capacity types.
    offer_mask: u64,
    /// The same offerings as (bit, price, index into the type's offerings), cheapest first:
    /// pricing thousands of claims must not compare zone names.
    offers: Vec<(u64, f64, u32)>,
    /// Cheapest available offering within the pool.
    price: f64,
    limit: LimitVec,
    /// Within a few percent of the pool's best price for the round's CPU:memory mix. Claims
    /// do not grow out of the efficient types, so big claims end on cost-efficient nodes.
    efficient: bool,
}

struct Pool<'a> {
    name: &'a str,
    nodeclass: &'a str,
    reqs: Requirements,
    taints: &'a [Taint],
    startup_taints: &'a [Taint],
    template_labels: &'a BTreeMap<String, String>,
    /// Sorted by price.
    types: Vec<PoolType<'a>>,
    zone_mask: u64,
    ct_mask: u8,
    budget: Budget,
    /// Usable cpu and memory of the largest type efficient for the round's pod shape: claims
    /// are kept near its balance (see [`BALANCE_SLACK`]).
    balance: Option<(f64, f64)>,
    /// Why the pool cannot launch at all, if so.
    broken: Option<String>,
}

/// A pod's constraints as currently in force (preferences included until relaxed).
#[derive(Clone)]
struct PodView {
    term: Requirements,
    zone_req: u64,
    ct_req: u8,
    /// Zones and capacity types the required terms alone allow (preferences left out): the
    /// domains a spread honouring node affinity counts.
    zone_required: u64,
    ct_required: u8,
    spreads: Vec<Spread>,
    affinity: Vec<(u32, bool)>,
    anti: Vec<u32>,
    /// Groups whose selector selects this pod.
    matching: Vec<u32>,
    pins_zone: bool,
    pins_ct: bool,
    /// The term names hostnames (or requires none): a new node's name is not known before it
    /// registers, so only an existing node can take the pod.
    existing_only: bool,
    /// Zones and capacity types the pod's topology allows right now.
    zone_allowed: u64,
    ct_allowed: u8,
    /// Per pool, the types compatible with `term` (bitset), looked up once per view: keying
    /// the cache by the term on every claim tried would clone and hash it thousands of times.
    type_bits: Vec<std::rc::Rc<Vec<u64>>>,
}

#[derive(Clone, Copy)]
struct Spread {
    group: u32,
    max_skew: i32,
    min_domains: i32,
    self_match: bool,
    /// `nodeAffinityPolicy: Honor`: only domains the pod's required node affinity allows count.
    honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor`: only domains of nodes and pools whose taints it tolerates.
    honor_taints: bool,
}

/// Preferences still in force for a pod, relaxed one at a time.
#[derive(Clone)]
struct Relaxation {
    required_term: usize,
    preferred_node: Vec<Requirements>,
    preferred_affinity: usize,
    preferred_anti: usize,
    schedule_anyway: bool,
}

/// Existing nodes and in-flight claims.
struct FixedHost {
    name: String,
    in_flight: bool,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    free: Resources,
    unschedulable: bool,
    zone: Option<u32>,
    ct: Option<u32>,
    host_ports: Vec<HostPort>,
    placed: Vec<usize>,
    /// Pods (`ns/name`) an in-flight claim was launched for.
    reserved_for: Vec<String>,
}

#[derive(Clone)]
struct NewClaim {
    pool: usize,
    host_id: u32,
    reqs: Requirements,
    /// Indices into the pool's types, cheapest first; all fit `requests`.
    types: Vec<u32>,
    requests: Resources,
    /// Element-wise maximum of the candidates' usable resources: a quick upper bound.
    max_usable: Resources,
    /// How many candidates `max_usable` was taken over.
    max_over: usize,
    zones: u64,
    cts: u8,
    zone_pinned: bool,
    ct_pinned: bool,
    reserved: LimitVec,
    pods: Vec<usize>,
    host_ports: Vec<HostPort>,
}

struct Solver<'a> {
    input: &'a Input,
    zones: Vec<String>,
    /// Zones and capacity types some valid pool or existing node offers: topology domains.
    universe: (u64, u8),
    pools: Vec<Pool<'a>>,
    topology: Topology,
    fixed: Vec<FixedHost>,
    claims: Vec<NewClaim>,
    /// Type bitsets per (pool, requirements): which of a pool's types a term allows.
    type_cache: HashMap<(usize, Requirements), std::rc::Rc<Vec<u64>>>,
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

    let mut unschedulable = Vec::new();
    // Pods an in-flight claim was launched for go back to it first.
    let (reserved, rest): (Vec<usize>, Vec<usize>) = pods
        .into_iter()
        .partition(|i| solver.reserved_host(&input.pending[*i]).is_some());
    for i in reserved.into_iter().chain(rest) {
        if let Err(reason) = solver.place(i) {
            unschedulable.push(Unschedulable {
                pod: input.pending[i].key(),
                reason,
            });
        }
    }
    solver.repack();
    solver.right_size();
    solver.into_plan(unschedulable)
}

/// Repacking gives up on pools with more distinct pod shapes than this (it is O(pods × shapes)).
const REPACK_MAX_SHAPES: usize = 256;
/// Repacking must save this share of the claims' cost: moving every pod for less is churn.
const REPACK_SAVING: f64 = 0.01;
/// While filling a node, pods that keep its CPU and memory shares within this of each other
/// are taken largest first; outside it, the pod that restores the balance best.
const REPACK_BAND: f64 = 0.02;

/// A claim is only split when the two halves cost this much less than the whole.
const SPLIT_SAVING: f64 = 0.02;
/// Claims whose cheapest type is fuller than this are left as they are.
const SPLIT_BELOW_FILL: f64 = 0.8;

impl<'a> Solver<'a> {
    fn new(input: &'a Input) -> Self {
        let unavailable: std::collections::HashSet<&OfferingKey> = input.unavailable.iter().collect();
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
            .collect();
        zones.sort();
        zones.dedup();
        zones.truncate(32);
        let zone_index: HashMap<&str, u32> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.as_str(), i as u32))
            .collect();

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
                    let key = OfferingKey {
                        instance_type: it.name.clone(),
                        zone: o.zone.clone(),
                        capacity_type: o.capacity_type,
                    };
                    if bit & allowed != 0 && !unavailable.contains(&key) {
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
            let balance = types
                .iter()
                .filter(|t| t.efficient)
                .max_by_key(|t| (t.usable.cpu(), t.usable.memory()))
                .map(|t| (t.usable.cpu() as f64, t.usable.memory() as f64))
                .filter(|(c, m)| *c > 0.0 && *m > 0.0);
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
                balance,
                broken,
            });
        }

        let mut fixed = Vec::new();
        for n in &input.nodes {
            let mut free = n.node.allocatable.clone();
            let mut host_ports = Vec::new();
            for p in n.pods.iter().filter(|p| !p.terminal) {
                free.sub(&p.requests);
                host_ports.extend(p.host_ports.iter().cloned());
            }
            fixed.push(FixedHost {
                name: n.node.name.clone(),
                in_flight: false,
                zone: n
                    .node
                    .labels
                    .get(labels::ZONE)
                    .and_then(|z| zone_index.get(z.as_str()).copied()),
                ct: n
                    .node
                    .labels
                    .get(labels::CAPACITY_TYPE)
                    .and_then(|c| CapacityType::parse(c))
                    .map(ct_index),
                labels: n.node.labels.clone(),
                taints: n.node.taints.clone(),
                free,
                unschedulable: n.node.unschedulable || n.node.deleting,
                host_ports,
                placed: Vec::new(),
                reserved_for: Vec::new(),
            });
        }
        for claim in &input.in_flight {
            let Some(pool) = pools.iter().find(|p| p.name == claim.nodepool) else {
                continue;
            };
            let Some(catalog) = input.pools.iter().find(|p| p.nodepool.name() == claim.nodepool) else {
                continue;
            };
            let launched = claim.instance.as_ref();
            // Looked up in the whole catalog: the claim exists even if its type has since run
            // out of capacity or left the pool's requirements. Until EC2 answers, any
            // candidate may come up: count only the room and the labels every candidate has.
            let names: Vec<&String> = match launched {
                Some(i) => vec![&i.instance_type],
                None => claim.instance_types.iter().collect(),
            };
            let candidates: Vec<&InstanceType> = names
                .into_iter()
                .filter_map(|n| catalog.instance_types.iter().find(|t| &t.name == n))
                .collect();
            let Some((first, rest)) = candidates.split_first() else {
                continue;
            };
            let usable = |it: &InstanceType| {
                let mut room = it.allocatable.clone();
                room.sub(&daemon_overhead(&input.daemonsets, &pool.reqs, it, &claim.taints));
                room
            };
            let mut free = usable(first);
            let mut type_labels = first.labels.clone();
            for t in rest {
                free.min_with(&usable(t));
                type_labels.retain(|k, v| t.labels.get(k) == Some(v));
            }
            let mut labels = claim.labels.clone();
            labels.extend(type_labels);
            labels.insert(labels::NODEPOOL.into(), claim.nodepool.clone());
            let (zone, ct) = match launched {
                Some(i) => {
                    labels.insert(labels::ZONE.into(), i.zone.clone());
                    labels.insert(labels::CAPACITY_TYPE.into(), i.capacity_type.as_str().into());
                    (
                        zone_index.get(i.zone.as_str()).copied(),
                        Some(ct_index(i.capacity_type)),
                    )
                }
                // Not launched yet: EC2 may still pick any of its zones and capacity types, so
                // only a single one is a settled domain (and a label pods can select).
                None => {
                    let zone = match claim.zones.as_slice() {
                        [z] => {
                            labels.insert(labels::ZONE.into(), z.clone());
                            zone_index.get(z.as_str()).copied()
                        }
                        _ => None,
                    };
                    let ct = match claim.capacity_types.as_slice() {
                        [c] => {
                            labels.insert(labels::CAPACITY_TYPE.into(), c.as_str().into());
                            Some(ct_index(*c))
                        }
                        _ => None,
                    };
                    (zone, ct)
                }
            };
            fixed.push(FixedHost {
                name: claim.id.clone(),
                in_flight: true,
                labels,
                taints: claim.taints.clone(),
                free,
                unschedulable: false,
                zone,
                ct,
                host_ports: Vec::new(),
                placed: Vec::new(),
                reserved_for: claim.pods.clone(),
            });
        }
        let mut universe = (0u64, 0u8);
        for p in pools.iter().filter(|p| p.broken.is_none()) {
            universe.0 |= p.zone_mask;
            universe.1 |= p.ct_mask;
        }
        for f in &fixed {
            universe.0 |= f.zone.map_or(0, |z| 1 << z);
            universe.1 |= f.ct.map_or(0, |c| 1 << c);
        }
        Solver {
            input,
            zones,
            universe,
            pools,
            topology: Topology::default(),
            fixed,
            claims: Vec::new(),
            type_cache: HashMap::new(),
        }
    }

    fn reserved_host(&self, pod: &Pod) -> Option<usize> {
        let key = pod.key();
        self.fixed.iter().position(|h| h.reserved_for.contains(&key))
    }

    /// Registers every group any pending pod refers to, and existing pods' anti-affinity terms.
    fn register_groups(&mut self, pods: &[usize]) {
        for &i in pods {
            let pod = &self.input.pending[i];
            for s in &pod.topology_spread {
                self.topology.group(
                    TopoKey::of(&s.topology_key),
                    &s.selector,
                    NsScope::List(vec![pod.namespace.clone()]),
                );
            }
            let terms = pod
                .pod_affinity
                .iter()
                .chain(&pod.pod_anti_affinity)
                .chain(pod.preferred_pod_affinity.iter().map(|w| &w.term))
                .chain(pod.preferred_pod_anti_affinity.iter().map(|w| &w.term));
            for t in terms {
                self.topology.group(
                    TopoKey::of(&t.topology_key),
                    &t.selector,
                    NsScope::for_term(t, &pod.namespace),
                );
            }
        }
        for n in &self.input.nodes {
            for pod in &n.pods {
                for t in &pod.pod_anti_affinity {
                    self.topology.group(
                        TopoKey::of(&t.topology_key),
                        &t.selector,
                        NsScope::for_term(t, &pod.namespace),
                    );
                }
            }
        }
    }

    fn count_existing(&mut self) {
        for h in 0..self.input.nodes.len() {
            for pod in self.input.nodes[h].pods.iter().filter(|p| !p.terminal) {
                self.record(pod, h as u32, None);
            }
        }
    }

    /// Domain of a host for a topology key; `None` when the host has no such label (yet).
    fn domain(&mut self, host: u32, key: &TopoKey) -> Option<u32> {
        let h = host as usize;
        if h < self.fixed.len() {
            let f = &self.fixed[h];
            return match key {
                TopoKey::Zone => f.zone,
                TopoKey::CapacityType => f.ct,
                TopoKey::Hostname => Some(host),
                TopoKey::Label(k) => {
                    let v = f.labels.get(k)?.clone();
                    Some(self.topology.value_id(&v))
                }
            };
        }
        let c = &self.claims[h - self.fixed.len()];
        match key {
            TopoKey::Zone => c.zone_pinned.then(|| c.zones.trailing_zeros()),
            TopoKey::CapacityType => c.ct_pinned.then(|| c.cts.trailing_zeros()),
            TopoKey::Hostname => Some(host),
            TopoKey::Label(k) => {
                let v = claim_label(&self.pools[c.pool], &c.reqs, k)?;
                Some(self.topology.value_id(&v))
            }
        }
    }

    /// Counts a pod placed on a host in every group that selects it, and its anti-affinity terms.
    fn record(&mut self, pod: &Pod, host: u32, view: Option<&PodView>) {
        let matching = match view {
            Some(v) => v.matching.clone(),
            None => self.topology.matching_groups(pod),
        };
        for g in matching {
            let key = self.topology.groups[g as usize].key.clone();
            if let Some(d) = self.domain(host, &key) {
                self.topology.record_match(g, d);
            }
        }
        for t in &pod.pod_anti_affinity {
            let g = self.topology.group(
                TopoKey::of(&t.topology_key),
                &t.selector,
                NsScope::for_term(t, &pod.namespace),
            );
            let key = self.topology.groups[g as usize].key.clone();
            if let Some(d) = self.domain(host, &key) {
                self.topology.record_owner(g, d);
            }
        }
    }

    fn view(&mut self, pod: &Pod, relax: &Relaxation) -> PodView {
        let terms = pod.node_requirement_terms();
        let mut term = terms.get(relax.required_term).cloned().unwrap_or_default();
        let (zone_required, ct_required) = self.domains_of(&term);
        if let Some(pref) = relax.preferred_node.first() {
            term.add_all(pref);
        }
        let (zone_req, ct_req) = self.domains_of(&term);
        let ns = NsScope::List(vec![pod.namespace.clone()]);
        let mut spreads = Vec::new();
        for s in &pod.topology_spread {
            if s.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway && !relax.schedule_anyway {
                continue;
            }
            let group = self
                .topology
                .group(TopoKey::of(&s.topology_key), &s.selector, ns.clone());
            spreads.push(Spread {
                group,
                max_skew: s.max_skew.max(1),
                min_domains: s.min_domains.unwrap_or(1),
                self_match: s.selector.matches(&pod.labels),
                honor_affinity: s.node_affinity_policy == InclusionPolicy::Honor,
                honor_taints: s.node_taints_policy == InclusionPolicy::Honor,
            });
        }
        let mut affinity = Vec::new();
        let mut sorted_pref_aff: Vec<_> = pod.preferred_pod_affinity.iter().collect();
        sorted_pref_aff.sort_by_key(|w| std::cmp::Reverse(w.weight));
        for t in pod.pod_affinity.iter().chain(
            sorted_pref_aff
                .iter()
                .skip(relax.preferred_affinity)
                .map(|w| &w.term),
        ) {
            let g = self.topology.group(
                TopoKey::of(&t.topology_key),
                &t.selector,
                NsScope::for_term(t, &pod.namespace),
            );
            affinity.push((g, t.selects(&pod.namespace, &pod.namespace, &pod.labels)));
        }
        let mut anti = Vec::new();
        let mut sorted_pref_anti: Vec<_> = pod.preferred_pod_anti_affinity.iter().collect();
        sorted_pref_anti.sort_by_key(|w| std::cmp::Reverse(w.weight));
        for t in pod.pod_anti_affinity.iter().chain(
            sorted_pref_anti
                .iter()
                .skip(relax.preferred_anti)
                .map(|w| &w.term),
        ) {
            anti.push(self.topology.group(
                TopoKey::of(&t.topology_key),
                &t.selector,
                NsScope::for_term(t, &pod.namespace),
            ));
        }
        let matching = self.topology.matching_groups(pod);
        let keyed = |g: u32, k: &TopoKey| &self.topology.groups[g as usize].key == k;
        let touches = |k: TopoKey| {
            spreads.iter().any(|s| keyed(s.group, &k))
                || affinity.iter().any(|(g, _)| keyed(*g, &k))
                || anti.iter().any(|g| keyed(*g, &k))
                || matching.iter().any(|g| keyed(*g, &k))
        };
        let pins_zone = touches(TopoKey::Zone);
        let pins_ct = touches(TopoKey::CapacityType);
        let mut view = PodView {
            existing_only: term.get(labels::HOSTNAME).is_some_and(|r| !r.is_complement()),
            term,
            zone_req,
            ct_req,
            zone_required,
            ct_required,
            spreads,
            affinity,
            anti,
            matching,
            pins_zone,
            pins_ct,
            zone_allowed: u64::MAX,
            ct_allowed: u8::MAX,
            type_bits: Vec::new(),
        };
        view.type_bits = (0..self.pools.len())
            .map(|p| self.type_bits(p, &view.term))
            .collect();
        let tolerated = view
            .spreads
            .iter()
            .any(|s| s.honor_taints)
            .then(|| self.tolerated_universe(pod));
        view.zone_allowed = self.allowed_domains(&view, &TopoKey::Zone, tolerated);
        view.ct_allowed = self.allowed_domains(&view, &TopoKey::CapacityType, tolerated) as u8;
        view
    }

    /// The zones and capacity types a term allows, as masks.
    fn domains_of(&self, term: &Requirements) -> (u64, u8) {
        let zones = self
            .zones
            .iter()
            .enumerate()
            .filter(|(_, z)| term.get(labels::ZONE).is_none_or(|r| r.has(z)))
            .fold(0u64, |m, (i, _)| m | (1 << i));
        let cts = [CapacityType::Spot, CapacityType::OnDemand]
            .into_iter()
            .filter(|ct| term.get(labels::CAPACITY_TYPE).is_none_or(|r| r.has(ct.as_str())))
            .fold(0u8, |m, ct| m | (1 << ct_index(ct)));
        (zones, cts)
    }

    /// Zones and capacity types of the pools and existing nodes whose taints the pod tolerates.
    fn tolerated_universe(&self, pod: &Pod) -> (u64, u8) {
        let mut zones = 0u64;
        let mut cts = 0u8;
        for p in self.pools.iter().filter(|p| p.broken.is_none()) {
            if untolerated(&pod.tolerations, p.taints).is_none() {
                zones |= p.zone_mask;
                cts |= p.ct_mask;
            }
        }
        for f in &self.fixed {
            if untolerated(&pod.tolerations, &f.taints).is_none() {
                zones |= f.zone.map_or(0, |z| 1 << z);
                cts |= f.ct.map_or(0, |c| 1 << c);
            }
        }
        (zones, cts)
    }

    /// Domains (zone or capacity type) the pod's topology allows, as a mask over the domains
    /// some pool or existing node offers. A spread counts skew over the domains its policies
    /// admit: those the required node affinity allows (`nodeAffinityPolicy: Honor`, the
    /// default) and those of tolerated pools and nodes (`nodeTaintsPolicy: Honor`, given in
    /// `tolerated`).
    fn allowed_domains(&self, view: &PodView, key: &TopoKey, tolerated: Option<(u64, u8)>) -> u64 {
        let by_key = |(zones, cts): (u64, u8)| match key {
            TopoKey::Zone => zones,
            _ => u64::from(cts),
        };
        let universe = by_key(self.universe);
        let required = by_key((view.zone_required, view.ct_required));
        let mut allowed = universe;
        for s in &view.spreads {
            let g = &self.topology.groups[s.group as usize];
            if &g.key != key {
                continue;
            }
            let mut domains = universe;
            if s.honor_affinity {
                domains &= required;
            }
            if s.honor_taints {
                domains &= tolerated.map_or(universe, by_key);
            }
            let eligible: Vec<u32> = bits(domains).collect();
            let min = if (eligible.len() as i32) < s.min_domains {
                0
            } else {
                eligible.iter().map(|d| g.count(*d)).min().unwrap_or(0)
            };
            let own = u32::from(s.self_match);
            allowed &= eligible
                .iter()
                .filter(|d| (g.count(**d) + own) as i64 - min as i64 <= s.max_skew as i64)
                .fold(0u64, |m, d| m | (1 << d));
        }
        for (gid, self_match) in &view.affinity {
            let g = &self.topology.groups[*gid as usize];
            if &g.key != key {
                continue;
            }
            if g.total > 0 {
                allowed &= bits(universe)
                    .filter(|d| g.count(*d) > 0)
                    .fold(0u64, |m, d| m | (1 << d));
            } else if !self_match {
                allowed = 0;
            }
        }
        for gid in &view.anti {
            let g = &self.topology.groups[*gid as usize];
            if &g.key == key {
                allowed &= bits(universe)
                    .filter(|d| g.count(*d) == 0)
                    .fold(0u64, |m, d| m | (1 << d));
            }
        }
        for gid in &view.matching {
            let g = &self.topology.groups[*gid as usize];
            if &g.key == key && g.has_owners {
                allowed &= bits(universe)
                    .filter(|d| g.owners_in(*d) == 0)
                    .fold(0u64, |m, d| m | (1 << d));
            }
        }
        allowed
    }

    /// Checks the per-host topology keys (hostname and custom labels) for a host.
    fn host_topology_ok(&mut self, view: &PodView, host: u32) -> bool {
        for s in &view.spreads {
            if matches!(
                self.topology.groups[s.group as usize].key,
                TopoKey::Zone | TopoKey::CapacityType
            ) {
                continue;
            }
            let key = self.topology.groups[s.group as usize].key.clone();
            let Some(d) = self.domain(host, &key) else {
                return false;
            };
            let g = &self.topology.groups[s.group as usize];
            if (g.count(d) + u32::from(s.self_match)) as i64 > s.max_skew as i64 {
                return false;
            }
        }
        for &(gid, self_match) in &view.affinity {
            if matches!(
                self.topology.groups[gid as usize].key,
                TopoKey::Zone | TopoKey::CapacityType
            ) {
                continue;
            }
            let key = self.topology.groups[gid as usize].key.clone();
            let d = self.domain(host, &key);
            let g = &self.topology.groups[gid as usize];
            let ok = if g.total > 0 {
                d.is_some_and(|d| g.count(d) > 0)
            } else {
                self_match && d.is_some()
            };
            if !ok {
                return false;
            }
        }
        for &gid in view.anti.iter().chain(&view.matching) {
            if matches!(
                self.topology.groups[gid as usize].key,
                TopoKey::Zone | TopoKey::CapacityType
            ) {
                continue;
            }
            let key = self.topology.groups[gid as usize].key.clone();
            let Some(d) = self.domain(host, &key) else {
                continue;
            };
            let g = &self.topology.groups[gid as usize];
            let is_own_term = view.anti.contains(&gid);
            if (is_own_term && g.count(d) > 0)
                || (g.has_owners && view.matching.contains(&gid) && g.owners_in(d) > 0)
            {
                return false;
            }
        }
        true
    }

    /// Places a pod (see [`Self::place_relaxing`]); when it fits nowhere and some pool with
    /// limits has not run short before, that pool's claims give up their larger candidates
    /// (see [`Budget::tightest`]) and the pod is tried once more.
    fn place(&mut self, i: usize) -> Result<(), String> {
        match self.place_relaxing(i) {
            Err(_) if self.tighten() => self.place_relaxing(i),
            placed => placed,
        }
    }

    /// Narrows the claims of every limited pool not yet tight to their smallest candidates,
    /// giving the rest of their reservations back; false when there was none to tighten.
    fn tighten(&mut self) -> bool {
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
                let reserved = pool.reserved_by(&types);
                let mut max_usable = Resources::new();
                for t in &types {
                    max_usable.max_with(&pool.types[*t as usize].usable);
                }
                self.pools[p].budget.exchange(&claim.reserved, &reserved);
                claim.reserved = reserved;
                claim.max_over = types.len();
                claim.max_usable = max_usable;
                claim.types = types;
            }
        }
        any
    }

    /// Places a pod with its preferences, relaxing them one at a time until it fits.
    fn place_relaxing(&mut self, i: usize) -> Result<(), String> {
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

    /// Hosts the pod must avoid whatever else holds: those with a pod its hostname
    /// anti-affinity selects, with a pod whose anti-affinity selects it, or where a hostname
    /// spread already allows no more. A bitset by host id; the full checks still run on the rest.
    fn hosts_to_skip(&self, view: &PodView) -> Vec<u64> {
        let mut skip = Vec::new();
        let by_host = |g: u32| {
            let g = &self.topology.groups[g as usize];
            (g.key == TopoKey::Hostname).then_some(g)
        };
        for g in view.anti.iter().filter_map(|g| by_host(*g)) {
            or_into(&mut skip, g.nonzero());
        }
        for g in view.matching.iter().filter_map(|g| by_host(*g)) {
            or_into(&mut skip, g.owned());
        }
        for s in &view.spreads {
            if let Some(g) = by_host(s.group)
                && s.max_skew <= i32::from(s.self_match)
            {
                or_into(&mut skip, g.nonzero());
            }
        }
        skip
    }

    fn place_with(&mut self, i: usize, view: &PodView) -> bool {
        let pod = &self.input.pending[i];
        let skip = self.hosts_to_skip(view);
        // 1. Existing nodes, then in-flight claims (reserved pods go to their claim first).
        let reserved = self.reserved_host(pod);
        let order: Vec<usize> = reserved
            .into_iter()
            .chain((0..self.fixed.len()).filter(|h| Some(*h) != reserved))
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
        // 2. Claims of this round: first without adding cost, then by growing. A claim's host
        // id is the number of fixed hosts plus its index.
        let first = self.fixed.len();
        for grow in [false, true] {
            let mut h = first;
            while let Some(found) = next_clear(&skip, h, first + self.claims.len()) {
                let c = found - first;
                debug_assert_eq!(self.claims[c].host_id as usize, found);
                if let Some(update) = self.try_add(c, pod, view, grow) {
                    self.commit_claim(c, update, i, view);
                    return true;
                }
                h = found + 1;
            }
        }
        // 3. A new claim from the first pool that can take the pod.
        for p in 0..self.pools.len() {
            if self.pools[p].broken.is_some() || untolerated(&pod.tolerations, self.pools[p].taints).is_some()
            {
                continue;
            }
            if self.pools[p].budget.remaining[NODES] < 1 {
                continue;
            }
            let claim = self.empty_claim(p);
            self.claims.push(claim);
            let c = self.claims.len() - 1;
            match self.try_add(c, pod, view, true) {
                Some(update) => {
                    self.commit_claim(c, update, i, view);
                    return true;
                }
                None => {
                    self.claims.pop();
                }
            }
        }
        false
    }

    fn fits_fixed(&mut self, h: usize, pod: &Pod, view: &PodView) -> bool {
        let f = &self.fixed[h];
        if f.unschedulable || !f.free.fits(&pod.requests) {
            return false;
        }
        if untolerated(&pod.tolerations, &f.taints).is_some() || !view.term.matches_labels(&f.labels) {
            return false;
        }
        if pod
            .host_ports
            .iter()
            .any(|p| f.host_ports.iter().any(|q| p.conflicts(q)))
        {
            return false;
        }
        if view.pins_zone && f.zone.is_none_or(|z| view.zone_allowed & (1 << z) == 0) {
            return false;
        }
        if view.pins_ct && f.ct.is_none_or(|c| view.ct_allowed & (1 << c) == 0) {
            return false;
        }
        self.host_topology_ok(view, h as u32)
    }

    fn commit_fixed(&mut self, h: usize, i: usize, view: &PodView) {
        let pod = &self.input.pending[i];
        let f = &mut self.fixed[h];
        f.free.sub(&pod.requests);
        f.host_ports.extend(pod.host_ports.iter().cloned());
        f.placed.push(i);
        self.record(pod, h as u32, Some(view));
    }

    fn empty_claim(&self, p: usize) -> NewClaim {
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
        let mut claim = NewClaim::of(p, pool, host_id, pool.reqs.clone(), types, place, Vec::new(), &[]);
        // Nothing is reserved until a pod is committed to it.
        claim.reserved = NOTHING;
        claim
    }

    fn type_bits(&mut self, p: usize, term: &Requirements) -> std::rc::Rc<Vec<u64>> {
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
    /// Without `grow`, only a claim whose cheapest type already has room qualifies.
    fn try_add(&mut self, c: usize, pod: &Pod, view: &PodView, grow: bool) -> Option<NewClaim> {
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
        if let Some((cpu_ref, mem_ref)) = self.pools[p].balance.filter(|_| !claim.pods.is_empty()) {
            let skew = |cpu: i64, mem: i64| cpu as f64 / cpu_ref - mem as f64 / mem_ref;
            let (cpu, mem) = (claim.requests.cpu(), claim.requests.memory());
            let before = skew(cpu, mem);
            let after = skew(cpu + pod.requests.cpu(), mem + pod.requests.memory());
            if after.abs() > BALANCE_SLACK && after.abs() > before.abs() {
                return None;
            }
        }
        if !grow {
            let cheapest = claim.types.first()?;
            if !self.pools[p].types[*cheapest as usize]
                .usable
                .fits_sum(&claim.requests, &pod.requests)
            {
                return None;
            }
        }
        if untolerated(&pod.tolerations, self.pools[p].taints).is_some() {
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
        let reqs = if view.term.is_empty() {
            claim.reqs.clone()
        } else {
            if claim.reqs.compatible(&view.term).is_err() {
                return None;
            }
            claim.reqs.intersection(&view.term)
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
        let types: Vec<u32> = claim
            .types
            .iter()
            .copied()
            .filter(|t| {
                let pt = &pool.types[*t as usize];
                type_bits[*t as usize / 64] & (1 << (*t % 64)) != 0
                    && pt.offer_mask & offer != 0
                    && pt.usable.fits(&requests)
            })
            .collect();
        if types.is_empty() {
            return None;
        }
        let efficient = |ts: &[u32]| ts.iter().any(|t| pool.types[*t as usize].efficient);
        if grow && !claim.pods.is_empty() && efficient(&claim.types) && !efficient(&types) {
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
        let mut reserved = NOTHING;
        if pool.budget.is_limited() {
            types.retain(|t| {
                pool.budget
                    .admits(&pool.types[*t as usize].limit, &claim.reserved)
            });
            if pool.budget.tight {
                types = pool.tightest(&types);
            }
            reserved = pool.reserved_by(&types);
        }
        if types.is_empty() || !min_values_hold(pool, &reqs, &types) {
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
        Some(NewClaim {
            reqs,
            types,
            requests,
            max_usable,
            max_over,
            zones,
            cts,
            zone_pinned,
            ct_pinned,
            reserved,
            host_ports,
            pods: Vec::new(),
            pool: claim.pool,
            host_id: claim.host_id,
        })
    }

    /// Matching pods already in a domain for the pod's first spread on that key (ties → index).
    fn domain_load(&self, view: &PodView, key: &TopoKey, domain: u32) -> (u32, u32) {
        let load = view
            .spreads
            .iter()
            .find(|s| &self.topology.groups[s.group as usize].key == key)
            .map(|s| self.topology.groups[s.group as usize].count(domain))
            .unwrap_or(0);
        (load, domain)
    }

    fn commit_claim(&mut self, c: usize, mut update: NewClaim, i: usize, view: &PodView) {
        self.pools[update.pool]
            .budget
            .exchange(&self.claims[c].reserved, &update.reserved);
        update.pods = std::mem::take(&mut self.claims[c].pods);
        update.pods.push(i);
        self.claims[c] = update;
        let host = self.claims[c].host_id;
        let pod = &self.input.pending[i];
        self.record(pod, host, Some(view));
    }

    /// A reason a person can act on, for a pod that fits nowhere.
    fn explain(&mut self, pod: &Pod, view: &PodView) -> String {
        if self.pools.is_empty() {
            return "no NodePool can launch nodes (none found, or none with a valid EC2NodeClass)".into();
        }
        if view.existing_only {
            let wanted = view
                .term
                .get(labels::HOSTNAME)
                .map(ToString::to_string)
                .unwrap_or_default();
            return format!(
                "the pod requires {} {wanted}: no existing node of that name has room and a new node's name cannot be chosen",
                labels::HOSTNAME
            );
        }
        let mut reasons = Vec::new();
        for p in 0..self.pools.len() {
            let pool = &self.pools[p];
            let name = pool.name;
            if let Some(b) = &pool.broken {
                reasons.push(format!("NodePool {name} is invalid: {b}"));
                continue;
            }
            if let Some(t) = untolerated(&pod.tolerations, pool.taints) {
                reasons.push(format!(
                    "NodePool {name} has taint {t} that the pod does not tolerate"
                ));
                continue;
            }
            if let Err(e) = pool.reqs.compatible(&view.term) {
                reasons.push(format!("NodePool {name}: pod requires {e}"));
                continue;
            }
            if pool.budget.exhausted() {
                reasons.push(format!("NodePool {name} has reached its limits"));
                continue;
            }
            let bits = view.type_bits[p].clone();
            let pool = &self.pools[p];
            let offer = expand(pool.zone_mask & view.zone_req, pool.ct_mask & view.ct_req);
            let matching: Vec<&PoolType> = pool
                .types
                .iter()
                .enumerate()
                .filter(|(t, pt)| bits[t / 64] & (1 << (t % 64)) != 0 && pt.offer_mask & offer != 0)
                .map(|(_, pt)| pt)
                .collect();
            let zones: Vec<&str> = bits_iter(pool.zone_mask & view.zone_req)
                .map(|z| self.zones[z as usize].as_str())
                .collect();
            if matching.is_empty() {
                reasons.push(format!(
                    "NodePool {name}: no available instance type matches the pod's requirements ({}) in zones [{}]",
                    view.term,
                    zones.join(", ")
                ));
                continue;
            }
            if !matching.iter().any(|pt| pt.usable.fits(&pod.requests)) {
                let nearest = matching
                    .iter()
                    .filter_map(|pt| pt.usable.first_shortfall(&pod.requests).map(|s| (pt, s)))
                    .min_by(|a, b| shortfall_ratio(&a.1).total_cmp(&shortfall_ratio(&b.1)));
                let wanted = describe_requests(&pod.requests);
                let near = nearest
                    .map(|(pt, (r, want, have))| {
                        let rn = ResourceName::parse(&r);
                        let fmt = |v: i64| rn.map(|n| n.format(v)).unwrap_or_else(|| v.to_string());
                        format!(
                            "; nearest: {} has {} {} free of the {} needed",
                            pt.it.name,
                            fmt(have),
                            r,
                            fmt(want)
                        )
                    })
                    .unwrap_or_default();
                reasons.push(format!(
                    "NodePool {name}: no instance type has room for 1 pod with {wanted} in zones [{}]{near}",
                    zones.join(", ")
                ));
                continue;
            }
            let fitting = matching.iter().filter(|pt| pt.usable.fits(&pod.requests));
            if let Some((resource, left)) = fitting
                .map(|pt| pool.budget.exceeded_by(&pt.limit))
                .min_by_key(|e| e.as_ref().map(|(_, left)| -*left))
                .flatten()
            {
                let left = ResourceName::parse(&resource).map_or(left.to_string(), |r| r.format(left));
                reasons.push(format!(
                    "NodePool {name} has reached its limits: every instance type that fits the pod needs more {resource} than the {left} left"
                ));
                continue;
            }
            if !view.spreads.is_empty() || !view.affinity.is_empty() || !view.anti.is_empty() {
                reasons.push(format!(
                    "NodePool {name}: the pod's topology spread or pod (anti-)affinity leaves no zone or node it may use"
                ));
                continue;
            }
            if !pod.host_ports.is_empty() {
                reasons.push(format!("NodePool {name}: host port conflict"));
                continue;
            }
            reasons.push(format!(
                "NodePool {name}: no instance type satisfies all constraints (minValues or limits)"
            ));
        }
        reasons.join("; ")
    }

    /// Whether a pod may go on any node of its pool: no node requirements or preferences, no
    /// topology of its own, no host ports, and no other pod's topology counts it.
    fn is_free(&mut self, i: usize) -> bool {
        let p = &self.input.pending[i];
        let free = p.node_selector.is_empty()
            && p.required_affinity.is_empty()
            && p.preferred_affinity.is_empty()
            && p.topology_spread.is_empty()
            && p.pod_affinity.is_empty()
            && p.pod_anti_affinity.is_empty()
            && p.preferred_pod_affinity.is_empty()
            && p.preferred_pod_anti_affinity.is_empty()
            && p.host_ports.is_empty();
        free && self.topology.matching_groups(p).is_empty()
    }

    /// First-fit in CPU order fills claims to whatever shape the pods arrive in, so memory-heavy
    /// and CPU-heavy nodes end up half used in the other resource. Per pool, the free pods (see
    /// [`Self::is_free`]) are taken out of every claim; a claim left with other pods shrinks to
    /// the types that take what remains, and its cheapest type's room is filled with free pods
    /// again, largest first; the free pods left over are packed from scratch (see
    /// [`Self::pack_free`]). The result replaces the pool's claims only if it saves
    /// [`REPACK_SAVING`] and stays within the pool's limits, so it never makes a plan worse.
    fn repack(&mut self) {
        let free_pod: Vec<bool> = (0..self.input.pending.len()).map(|i| self.is_free(i)).collect();
        let mut compat: HashMap<(usize, Requirements), std::rc::Rc<Vec<bool>>> = HashMap::new();
        'pools: for p in 0..self.pools.len() {
            let involved: Vec<usize> = (0..self.claims.len())
                .filter(|c| self.claims[*c].pool == p)
                .collect();
            // A single claim is the split's business (see [`Self::right_size`]).
            if involved.len() < 2 {
                continue;
            }
            let mut free = Vec::new();
            let mut kept: Vec<NewClaim> = Vec::new();
            for &c in &involved {
                let (f, rest): (Vec<usize>, Vec<usize>) =
                    self.claims[c].pods.iter().partition(|i| free_pod[**i]);
                if rest.is_empty() {
                    free.extend(f);
                } else if f.is_empty() {
                    kept.push(self.claims[c].clone());
                } else {
                    let Some(shrunk) = self.shrink(c, rest, &mut compat) else {
                        continue 'pools;
                    };
                    free.extend(f);
                    kept.push(shrunk);
                }
            }
            if free.is_empty() {
                continue;
            }
            let Some(left) = self.fill_slack(p, &mut kept, &free) else {
                continue;
            };
            let packed = if left.is_empty() {
                Vec::new()
            } else {
                let Some(packed) = self.pack_free(p, &left) else {
                    continue;
                };
                packed
            };
            let pool = &self.pools[p];
            let cost = |claims: &mut dyn Iterator<Item = &NewClaim>| -> f64 {
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
            let old: Vec<&LimitVec> = involved.iter().map(|c| &self.claims[*c].reserved).collect();
            let new: Vec<&LimitVec> = kept.iter().chain(&packed).map(|c| &c.reserved).collect();
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
    fn shrink(
        &self,
        c: usize,
        pods: Vec<usize>,
        compat: &mut HashMap<(usize, Requirements), std::rc::Rc<Vec<bool>>>,
    ) -> Option<NewClaim> {
        let claim = &self.claims[c];
        let pool = &self.pools[claim.pool];
        let compatible = compat
            .entry((claim.pool, claim.reqs.clone()))
            .or_insert_with(|| {
                std::rc::Rc::new(
                    pool.types
                        .iter()
                        .map(|pt| pt.it.requirements.intersects(&claim.reqs).is_ok())
                        .collect(),
                )
            })
            .clone();
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
        Some(NewClaim::of(
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

    /// Fills the room left on each kept claim's cheapest type with free pods, largest first;
    /// returns the free pods left over (`None` with too many distinct shapes).
    fn fill_slack(&self, p: usize, kept: &mut [NewClaim], free: &[usize]) -> Option<Vec<usize>> {
        let pool = &self.pools[p];
        let pending = &self.input.pending;
        let mut shape_of: HashMap<&Resources, usize> = HashMap::new();
        let mut shapes: Vec<(&Resources, Vec<usize>)> = Vec::new();
        for &i in free {
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
                claim
                    .types
                    .retain(|t| pool.types[*t as usize].usable.fits(&claim.requests));
                claim.reserved = pool.reserved_by(&claim.types);
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

    /// Packs free pods of pool `p` into new claims (see [`Self::repack`]); `None` when it
    /// cannot (too many shapes, or a pod fits no type).
    fn pack_free(&self, p: usize, pods: &[usize]) -> Option<Vec<NewClaim>> {
        let pool = &self.pools[p];
        let pending = &self.input.pending;
        let offer = expand(pool.zone_mask, pool.ct_mask);
        let candidates: Vec<u32> = (0..pool.types.len() as u32)
            .filter(|t| pool.types[*t as usize].offer_mask & offer != 0)
            .collect();
        // Pods grouped by their requests, in the order they were placed.
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
        // Each shape's pods are taken from the front.
        let mut next = vec![0usize; shapes.len()];
        let mut demand = Resources::new();
        for &i in pods {
            demand.add(&pending[i].requests);
        }
        let mut left = pods.len();
        let mut out = Vec::new();
        let offers: Vec<(&Resources, f64)> = candidates
            .iter()
            .map(|t| (&pool.types[*t as usize].usable, pool.types[*t as usize].price))
            .collect();
        let cover = lower_bound::Cover::new(&offers);
        while left > 0 {
            let basis = cover.optimal(&demand)?;
            let (widest, x, _) = basis.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
            // While a whole node of one of the LP's types is needed, fill one. For the tail, try
            // one node of each shape and keep the one that buys the most of the bound per
            // dollar (a type that takes everything left competes like any other).
            let (used, taken) = if x >= 1.0 {
                fill(&pool.types[candidates[widest] as usize].usable, &shapes, &next)
            } else {
                let mut seen = std::collections::HashSet::new();
                let mut best: Option<(f64, (Resources, Vec<usize>))> = None;
                for &t in &candidates {
                    let pt = &pool.types[t as usize];
                    // Candidates are cheapest first: the first type of each shape is the one.
                    if !seen.insert((pt.usable.cpu(), pt.usable.memory(), pt.usable.pods())) {
                        continue;
                    }
                    let (used, taken) = fill(&pt.usable, &shapes, &next);
                    if taken.is_empty() {
                        continue;
                    }
                    let worth = cover.cost(&used) / pt.price;
                    if best.as_ref().is_none_or(|(b, _)| worth > *b) {
                        best = Some((worth, (used, taken)));
                    }
                }
                best?.1
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
            out.push(self.claim_of_free(p, &candidates, taken, used)?);
        }
        Some(out)
    }

    /// A claim of pool `p` holding free pods: every candidate type that takes them.
    fn claim_of_free(
        &self,
        p: usize,
        candidates: &[u32],
        pods: Vec<usize>,
        requests: Resources,
    ) -> Option<NewClaim> {
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
        Some(NewClaim::of(
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

    /// Packing fills each claim to the largest type that takes its pods, so a claim often ends
    /// on a type it fills by half (20 one-CPU pods on a 32-vCPU type). Where a cheaper type
    /// filled first-fit plus the cheapest type for the rest costs less, the claim is split in
    /// two; the rest is looked at again in turn. Splitting only separates pods, so it cannot
    /// break anti-affinity, host ports or hostname spread; claims with hostname pod affinity
    /// (which wants pods together) are left alone, a split must fit the pool's limits (two
    /// nodes reserve more than one), and both halves keep the claim's zone and capacity type.
    fn right_size(&mut self) {
        // Claims of one pool mostly share requirements: type compatibility is worked out once
        // per (pool, requirements).
        let mut compat: HashMap<(usize, Requirements), std::rc::Rc<Vec<bool>>> = HashMap::new();
        let mut c = 0;
        while c < self.claims.len() {
            if let Some((a, b)) = self.split(c, &mut compat) {
                // Two nodes reserve more of the pool's limits than one: split only within them.
                let budget = &mut self.pools[a.pool].budget;
                let whole = self.claims[c].reserved;
                if budget.admits_exchange(&[&whole], &[&a.reserved, &b.reserved]) {
                    budget.exchange(&whole, &a.reserved);
                    budget.exchange(&NOTHING, &b.reserved);
                    self.claims[c] = a;
                    self.claims.push(b);
                }
            }
            c += 1;
        }
    }

    fn split(
        &self,
        c: usize,
        compat: &mut HashMap<(usize, Requirements), std::rc::Rc<Vec<bool>>>,
    ) -> Option<(NewClaim, NewClaim)> {
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
        let compatible = compat
            .entry((claim.pool, claim.reqs.clone()))
            .or_insert_with(|| {
                std::rc::Rc::new(
                    pool.types
                        .iter()
                        .map(|pt| pt.it.requirements.intersects(&claim.reqs).is_ok())
                        .collect(),
                )
            })
            .clone();
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
        let half = |pods: Vec<usize>, host_id: u32| -> NewClaim {
            let mut requests = Resources::new();
            for i in &pods {
                requests.add(&pending[*i].requests);
            }
            let types: Vec<u32> = (0..pool.types.len())
                .filter(|t| pool.types[*t].usable.fits(&requests) && allowed(*t))
                .map(|t| t as u32)
                .collect();
            let reqs = claim.reqs.clone();
            NewClaim::of(
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

    fn into_plan(self, unschedulable: Vec<Unschedulable>) -> Plan {
        let key = |i: &usize| self.input.pending[*i].key();
        let existing = self
            .fixed
            .iter()
            .filter(|h| !h.in_flight && !h.placed.is_empty())
            .map(|h| (h.name.clone(), h.placed.iter().map(key).collect()))
            .collect();
        let in_flight = self
            .fixed
            .iter()
            .filter(|h| h.in_flight && !h.placed.is_empty())
            .map(|h| (h.name.clone(), h.placed.iter().map(key).collect()))
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
        let offers: Vec<(&Resources, f64)> = self
            .pools
            .iter()
            .zip(&used_pools)
            .filter(|(_, used)| **used)
            .flat_map(|(p, _)| p.types.iter().map(|pt| (&pt.usable, pt.price)))
            .collect();
        let lower_bound_per_hour = lower_bound::fractional_cover(&total, &offers);
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

/// Where a claim may launch: zone and capacity-type masks, and whether topology pinned them.
#[derive(Clone, Copy)]
struct Placement {
    zones: u64,
    cts: u8,
    zone_pinned: bool,
    ct_pinned: bool,
}

impl NewClaim {
    /// A claim of pool `p` holding `pods`, with candidates `types` (all of which fit them).
    #[allow(clippy::too_many_arguments)]
    fn of(
        p: usize,
        pool: &Pool,
        host_id: u32,
        reqs: Requirements,
        types: Vec<u32>,
        place: Placement,
        pods: Vec<usize>,
        pending: &[Pod],
    ) -> NewClaim {
        let mut requests = Resources::new();
        let mut host_ports = Vec::new();
        for i in &pods {
            requests.add(&pending[*i].requests);
            host_ports.extend(pending[*i].host_ports.iter().cloned());
        }
        let mut max_usable = Resources::new();
        for t in &types {
            max_usable.max_with(&pool.types[*t as usize].usable);
        }
        NewClaim {
            pool: p,
            host_id,
            reqs,
            max_over: types.len(),
            reserved: pool.reserved_by(&types),
            types,
            requests,
            max_usable,
            zones: place.zones,
            cts: place.cts,
            zone_pinned: place.zone_pinned,
            ct_pinned: place.ct_pinned,
            pods,
            host_ports,
        }
    }

    fn placement(&self) -> Placement {
        Placement {
            zones: self.zones,
            cts: self.cts,
            zone_pinned: self.zone_pinned,
            ct_pinned: self.ct_pinned,
        }
    }
}

impl Pool<'_> {
    /// What a claim with these candidates reserves of the pool's limits.
    fn reserved_by(&self, types: &[u32]) -> LimitVec {
        if !self.budget.is_limited() {
            return NOTHING;
        }
        largest(types.iter().map(|t| &self.types[*t as usize].limit))
    }

    /// The candidates a claim keeps once the pool runs short (see [`Budget::tightest`]).
    fn tightest(&self, types: &[u32]) -> Vec<u32> {
        let usages: Vec<(u32, &LimitVec)> = types
            .iter()
            .map(|t| (*t, &self.types[*t as usize].limit))
            .collect();
        self.budget.tightest(&usages)
    }
}

/// Fills one node with `room` from the pods left (`shapes[s].1[next[s]..]`): pods that keep
/// its CPU and memory shares within [`REPACK_BAND`] of each other, largest first; otherwise the
/// one that restores the balance best. Returns what it uses and the shape of each pod taken.
fn fill(room: &Resources, shapes: &[(&Resources, Vec<usize>)], next: &[usize]) -> (Resources, Vec<usize>) {
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

fn bits_iter(mask: u64) -> impl Iterator<Item = u32> {
    bits(mask)
}

fn shortfall_ratio((_, want, have): &(String, i64, i64)) -> f64 {
    if *want <= 0 {
        0.0
    } else {
        (*want - *have) as f64 / *want as f64
    }
}

fn describe_requests(r: &Resources) -> String {
    r.to_quantity_map()
        .into_iter()
        .filter(|(k, _)| k != "pods")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies the next relaxation in Karpenter's order; false when nothing is left to relax.
fn relax_once(pod: &Pod, relax: &mut Relaxation) -> bool {
    if relax.required_term + 1 < pod.required_affinity.len() {
        relax.required_term += 1;
        return true;
    }
    if relax.preferred_affinity < pod.preferred_pod_affinity.len() {
        relax.preferred_affinity += 1;
        return true;
    }
    if relax.preferred_anti < pod.preferred_pod_anti_affinity.len() {
        relax.preferred_anti += 1;
        return true;
    }
    if !relax.preferred_node.is_empty() {
        relax.preferred_node.remove(0);
        return true;
    }
    if relax.schedule_anyway
        && pod
            .topology_spread
            .iter()
            .any(|s| s.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway)
    {
        relax.schedule_anyway = false;
        return true;
    }
    false
}

/// Share of the price an efficient type may exceed the best one by.
const EFFICIENCY_TOLERANCE: f64 = 1.03;

/// How far a claim's cpu share may run ahead of its memory share (or the reverse), as
/// fractions of the balance type's usable capacity.
const BALANCE_SLACK: f64 = 0.1;

/// Marks the types whose price per unit of the round's average pod shape is near the best.
fn mark_efficient(types: &mut [PoolType], pending: &[Pod]) {
    let (mut cpu, mut mem) = (0f64, 0f64);
    for p in pending.iter().filter(|p| !p.is_daemon()) {
        cpu += p.requests.cpu() as f64;
        mem += p.requests.memory() as f64;
    }
    if cpu <= 0.0 || mem <= 0.0 {
        return;
    }
    let unit_cost = |t: &PoolType| {
        let units = (t.usable.cpu() as f64 / cpu).min(t.usable.memory() as f64 / mem);
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

/// Every `minValues` requirement still has enough distinct values among the candidates.
fn min_values_hold(pool: &Pool, reqs: &Requirements, types: &[u32]) -> bool {
    reqs.iter().all(|(key, r)| {
        let Some(min) = r.min_values else { return true };
        let mut values: Vec<&str> = types
            .iter()
            .filter_map(|t| pool.types[*t as usize].it.labels.get(key).map(String::as_str))
            .collect();
        values.sort_unstable();
        values.dedup();
        values.len() >= min as usize
    })
}

/// A label value a claim's node will carry for `key`, if it is settled.
fn claim_label(pool: &Pool, reqs: &Requirements, key: &str) -> Option<String> {
    if let Some(v) = pool.template_labels.get(key) {
        return Some(v.clone());
    }
    if key == labels::NODEPOOL {
        return Some(pool.name.to_string());
    }
    let r = reqs.get(key)?;
    (!r.is_complement() && r.values().len() == 1).then(|| r.values()[0].clone())
}

fn daemon_overhead(
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
        let lands = d
            .node_requirement_terms()
            .iter()
            .any(|term| pool_reqs.compatible(term).is_ok() && it.requirements.intersects(term).is_ok());
        if lands {
            total.add(&d.requests);
        }
    }
    total
}

fn planned_claim(pool: &Pool, c: &NewClaim, zones: &[String], input: &Input) -> PlannedClaim {
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
        pods: c.pods.iter().map(|i| input.pending[*i].key()).collect(),
        requests,
        labels,
        taints: pool.taints.to_vec(),
        startup_taints: pool.startup_taints.to_vec(),
    }
}

type Priced<'p> = (f64, &'p PoolType<'p>, Option<(&'p str, CapacityType)>);

/// At most [`MAX_INSTANCE_TYPES`] candidates (sorted by price), cheapest first, but holding
/// for every `minValues` requirement enough distinct values: first the cheapest types that
/// bring a value some minimum still lacks, then the cheapest of the rest.
fn keep_for_min_values<'p>(priced: &[Priced<'p>], reqs: &Requirements) -> Vec<Priced<'p>> {
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
