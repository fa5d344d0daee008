//! A pod's constraints as in force right now, and the preferences relaxed one at a time in
//! Karpenter's order when the pod fits nowhere.

use super::offerings::*;
use super::solver::Solver;
use super::topology::{NsScope, TopoKey};
use crate::catalog::CapacityType;
use crate::labels;
use crate::pod::{InclusionPolicy, Pod, Taint, TaintEffect, WhenUnsatisfiable, untolerated};
use crate::requirements::Requirements;

/// A pod's constraints as currently in force (preferences included until relaxed).
#[derive(Clone)]
pub(super) struct PodView {
    pub(super) term: Requirements,
    pub(super) zone_req: u64,
    pub(super) ct_req: u8,
    /// Zones and capacity types the required terms alone allow (preferences left out): the
    /// domains a spread honouring node affinity counts.
    pub(super) zone_required: u64,
    pub(super) ct_required: u8,
    pub(super) spreads: Vec<Spread>,
    pub(super) affinity: Vec<(u32, bool)>,
    pub(super) anti: Vec<u32>,
    /// Groups whose selector selects this pod.
    pub(super) matching: Vec<u32>,
    pub(super) pins_zone: bool,
    pub(super) pins_ct: bool,
    /// Custom label keys (not zone, capacity type or hostname) its topology counts in: a claim
    /// must settle on one value of each (see [`Solver::settle_labels`]).
    pub(super) label_keys: Vec<String>,
    /// PreferNoSchedule taints the pod does not tolerate still rule a host or pool out.
    pub(super) avoid_prefer_no_schedule: bool,
    /// The term names hostnames (or requires none): a new node's name is not known before it
    /// registers, so only an existing node can take the pod.
    pub(super) existing_only: bool,
    /// Zones and capacity types the pod's topology allows right now.
    pub(super) zone_allowed: u64,
    pub(super) ct_allowed: u8,
    /// Per pool, the types compatible with `term` (bitset), looked up once per view: keying
    /// the cache by the term on every claim tried would clone and hash it thousands of times.
    pub(super) type_bits: Vec<std::rc::Rc<Vec<u64>>>,
}

#[derive(Clone, Copy)]
pub(super) struct Spread {
    pub(super) group: u32,
    pub(super) max_skew: i32,
    pub(super) min_domains: i32,
    pub(super) self_match: bool,
    /// `nodeAffinityPolicy: Honor`: only domains the pod's required node affinity allows count.
    pub(super) honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor`: only domains of nodes and pools whose taints it tolerates.
    pub(super) honor_taints: bool,
    /// For a custom label key: the fewest matching pods in any domain it counts (see
    /// [`Solver::label_floor`]); hostnames have a new, empty domain always, so 0.
    pub(super) floor: u32,
}

/// Preferences still in force for a pod, relaxed one at a time.
#[derive(Clone)]
pub(super) struct Relaxation {
    pub(super) required_term: usize,
    pub(super) preferred_node: Vec<Requirements>,
    pub(super) preferred_affinity: usize,
    pub(super) preferred_anti: usize,
    pub(super) schedule_anyway: bool,
    /// PreferNoSchedule taints are avoided like NoSchedule ones until this last relaxation.
    pub(super) tolerate_prefer_no_schedule: bool,
}

impl<'a> Solver<'a> {
    pub(super) fn view(&mut self, pod: &Pod, relax: &Relaxation) -> PodView {
        let terms = pod.node_requirement_terms();
        let mut term = terms.get(relax.required_term).cloned().unwrap_or_default();
        let (zone_required, ct_required) = self.domains_of(&term);
        let required = term.clone();
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
            let mut spread = Spread {
                group,
                max_skew: s.max_skew.max(1),
                min_domains: s.min_domains.unwrap_or(1),
                self_match: s.selector.matches(&pod.labels),
                honor_affinity: s.node_affinity_policy == InclusionPolicy::Honor,
                honor_taints: s.node_taints_policy == InclusionPolicy::Honor,
                floor: 0,
            };
            if let TopoKey::Label(key) = TopoKey::of(&s.topology_key) {
                spread.floor = self.label_floor(pod, &required, &key, &spread);
            }
            spreads.push(spread);
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
                NsScope::for_term(t, &pod.namespace, &self.input.namespace_labels),
            );
            affinity.push((
                g,
                t.selects_in(
                    &pod.namespace,
                    &pod.namespace,
                    &pod.labels,
                    &self.input.namespace_labels,
                ),
            ));
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
                NsScope::for_term(t, &pod.namespace, &self.input.namespace_labels),
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
        let mut label_keys: Vec<String> = spreads
            .iter()
            .map(|s| s.group)
            .chain(affinity.iter().map(|(g, _)| *g))
            .chain(anti.iter().copied())
            .chain(matching.iter().copied())
            .filter_map(|g| match &self.topology.groups[g as usize].key {
                TopoKey::Label(k) => Some(k.clone()),
                _ => None,
            })
            .collect();
        label_keys.sort();
        label_keys.dedup();
        let mut view = PodView {
            label_keys,
            avoid_prefer_no_schedule: !relax.tolerate_prefer_no_schedule,
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
    pub(super) fn domains_of(&self, term: &Requirements) -> (u64, u8) {
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
    pub(super) fn tolerated_universe(&self, pod: &Pod) -> (u64, u8) {
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
}

/// Applies the next relaxation in Karpenter's order; false when nothing is left to relax.
impl PodView {
    /// The first taint among `taints` that keeps the pod off (see
    /// [`Self::avoid_prefer_no_schedule`]).
    pub(super) fn untolerated<'t>(&self, pod: &Pod, taints: &'t [Taint]) -> Option<&'t Taint> {
        untolerated(&pod.tolerations, taints).or_else(|| {
            self.avoid_prefer_no_schedule.then(|| {
                taints.iter().find(|t| {
                    t.effect == TaintEffect::PreferNoSchedule
                        && !pod.tolerations.iter().any(|tol| tol.tolerates(t))
                })
            })?
        })
    }
}

pub(super) fn relax_once(pod: &Pod, relax: &mut Relaxation) -> bool {
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
    if !relax.tolerate_prefer_no_schedule {
        relax.tolerate_prefer_no_schedule = true;
        return true;
    }
    false
}
