//! Topology for one pod: the zone and capacity-type domains its spreads and pod (anti-)affinity
//! allow, the per-host checks for hostname and custom keys, and the counts kept as pods land.

use std::collections::BTreeSet;

use super::offerings::*;
use super::pools::*;
use super::solver::Solver;
use super::topology::{NsScope, TopoKey, Topology, or_into};
use super::view::*;
use crate::pod::{Pod, untolerated};
use crate::requirements::{Requirement, Requirements};

impl<'a> Solver<'a> {
    /// Registers every group any pending pod refers to, and existing pods' anti-affinity terms.
    pub(super) fn register_groups(&mut self, pods: &[usize]) {
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
                    NsScope::for_term(t, &pod.namespace, &self.input.namespace_labels),
                );
            }
        }
        for n in &self.input.nodes {
            for pod in &n.pods {
                for t in &pod.pod_anti_affinity {
                    self.topology.group(
                        TopoKey::of(&t.topology_key),
                        &t.selector,
                        NsScope::for_term(t, &pod.namespace, &self.input.namespace_labels),
                    );
                }
            }
        }
    }

    /// Whether some required pod affinity term of the pod selects no pod placed so far: the
    /// pod may fit once its target is placed.
    pub(super) fn affinity_target_missing(&mut self, i: usize) -> bool {
        let pod = &self.input.pending[i];
        pod.pod_affinity.iter().any(|t| {
            let g = self.topology.group(
                TopoKey::of(&t.topology_key),
                &t.selector,
                NsScope::for_term(t, &pod.namespace, &self.input.namespace_labels),
            );
            self.topology.groups[g as usize].total == 0
        })
    }

    pub(super) fn count_existing(&mut self) {
        for h in 0..self.input.nodes.len() {
            for pod in self.input.nodes[h].pods.iter().filter(|p| !p.terminal) {
                self.record(pod, h as u32, None);
            }
        }
    }

    /// Domain of a host for a topology key; `None` when the host has no such label (yet).
    pub(super) fn domain(&mut self, host: u32, key: &TopoKey) -> Option<u32> {
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
    pub(super) fn record(&mut self, pod: &Pod, host: u32, view: Option<&PodView>) {
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
                NsScope::for_term(t, &pod.namespace, &self.input.namespace_labels),
            );
            let key = self.topology.groups[g as usize].key.clone();
            if let Some(d) = self.domain(host, &key) {
                self.topology.record_owner(g, d);
            }
        }
    }

    /// Domains (zone or capacity type) the pod's topology allows, as a mask over the domains
    /// some pool or existing node offers. A spread counts skew over the domains its policies
    /// admit: those the required node affinity allows (`nodeAffinityPolicy: Honor`, the
    /// default) and those of tolerated pools and nodes (`nodeTaintsPolicy: Honor`, given in
    /// `tolerated`).
    pub(super) fn allowed_domains(&self, view: &PodView, key: &TopoKey, tolerated: Option<(u64, u8)>) -> u64 {
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
            // As the kube-scheduler: with a matching pod anywhere, the pod must share its
            // domain; with none, a pod its own term selects may start the group.
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
    /// The fewest pods the spread's selector matches in any domain of a custom label key that
    /// it counts: the values of `key` the pools put on their nodes (template labels, the values
    /// a requirement allows, or the instance types' own labels) and existing nodes carry,
    /// narrowed by the spread's node affinity and taint policies; 0 when there are fewer such
    /// domains than `minDomains`.
    pub(super) fn label_floor(&mut self, pod: &Pod, required: &Requirements, key: &str, s: &Spread) -> u32 {
        let allowed = |v: &str| !s.honor_affinity || required.get(key).is_none_or(|r| r.has(v));
        let mut values: BTreeSet<String> = BTreeSet::new();
        for p in self.pools.iter().filter(|p| p.broken.is_none()) {
            if s.honor_taints && untolerated(&pod.tolerations, p.taints).is_some() {
                continue;
            }
            if s.honor_affinity && p.reqs.compatible(required).is_err() {
                continue;
            }
            if let Some(v) = p.template_labels.get(key) {
                values.extend(allowed(v).then(|| v.clone()));
            } else if let Some(r) = p.reqs.get(key).filter(|r| !r.is_complement()) {
                values.extend(r.values().iter().filter(|v| allowed(v)).cloned());
            } else {
                let typed = p.types.iter().filter_map(|t| t.it.labels.get(key));
                values.extend(typed.filter(|v| allowed(v)).cloned());
            }
        }
        for f in &self.fixed {
            let Some(v) = f.labels.get(key) else { continue };
            if s.honor_taints && untolerated(&pod.tolerations, &f.taints).is_some() {
                continue;
            }
            if s.honor_affinity && !required.matches_labels(&f.labels) {
                continue;
            }
            values.insert(v.clone());
        }
        if (values.len() as i64) < i64::from(s.min_domains) {
            return 0;
        }
        let ids: Vec<u32> = values.iter().map(|v| self.topology.value_id(v)).collect();
        let g = &self.topology.groups[s.group as usize];
        ids.into_iter().map(|d| g.count(d)).min().unwrap_or(0)
    }

    /// Whether a host id is a claim of this round (not an existing node or in-flight claim).
    fn is_claim(&self, host: u32) -> bool {
        host as usize >= self.fixed.len()
    }

    /// Whether label value `value` of `key` is a domain the pod may join: its spreads stay
    /// within their skew, its affinity finds a match (or may start one), its anti-affinity and
    /// others' anti-affinity find no conflict.
    fn label_value_ok(&mut self, view: &PodView, key: &str, value: &str) -> bool {
        let d = self.topology.value_id(value);
        let keyed = |g: u32, t: &Topology| matches!(&t.groups[g as usize].key, TopoKey::Label(k) if k == key);
        let t = &self.topology;
        view.spreads.iter().filter(|s| keyed(s.group, t)).all(|s| {
            let g = &t.groups[s.group as usize];
            (g.count(d) + u32::from(s.self_match)) as i64 - s.floor as i64 <= s.max_skew as i64
        }) && view
            .affinity
            .iter()
            .filter(|(g, _)| keyed(*g, t))
            .all(|(g, self_match)| {
                let g = &t.groups[*g as usize];
                if g.total > 0 { g.count(d) > 0 } else { *self_match }
            })
            && view
                .anti
                .iter()
                .filter(|g| keyed(**g, t))
                .all(|g| t.groups[*g as usize].count(d) == 0)
            && view
                .matching
                .iter()
                .filter(|g| keyed(**g, t))
                .all(|g| !t.groups[*g as usize].has_owners || t.groups[*g as usize].owners_in(d) == 0)
    }

    /// Settles a claim's value of each custom label key the pod's topology counts in: the value
    /// its requirements already give, or else the allowed one with the fewest matching pods
    /// among those its requirements or its candidates' labels offer. Narrows `reqs` to it and
    /// `types` to the candidates that carry it; `false` when no value will do.
    pub(super) fn settle_labels(
        &mut self,
        view: &PodView,
        pool: usize,
        reqs: &mut Requirements,
        types: &mut Vec<u32>,
    ) -> bool {
        for key in &view.label_keys {
            let settled = claim_label(&self.pools[pool], reqs, key);
            let candidates: Vec<String> = match settled {
                Some(v) => vec![v],
                None => match reqs.get(key).filter(|r| !r.is_complement()) {
                    Some(r) => r.values().to_vec(),
                    None => {
                        let types_of = &self.pools[pool].types;
                        let mut values: Vec<String> = types
                            .iter()
                            .filter_map(|t| types_of[*t as usize].it.labels.get(key).cloned())
                            .collect();
                        values.sort();
                        values.dedup();
                        values
                    }
                },
            };
            if candidates.is_empty() {
                // The node will not carry the key: only a spread or affinity on it rules out.
                let needs =
                    |g: u32| matches!(&self.topology.groups[g as usize].key, TopoKey::Label(k) if k == key);
                if view.spreads.iter().any(|s| needs(s.group)) || view.affinity.iter().any(|(g, _)| needs(*g))
                {
                    return false;
                }
                continue;
            }
            let mut best: Option<(u32, String)> = None;
            for v in candidates {
                if !self.label_value_ok(view, key, &v) {
                    continue;
                }
                let d = self.topology.value_id(&v);
                let load = view
                    .spreads
                    .iter()
                    .find(|s| matches!(&self.topology.groups[s.group as usize].key, TopoKey::Label(k) if k == key))
                    .map_or(0, |s| self.topology.groups[s.group as usize].count(d));
                if best.as_ref().is_none_or(|(l, _)| load < *l) {
                    best = Some((load, v));
                }
            }
            let Some((_, value)) = best else { return false };
            if reqs
                .get(key)
                .is_none_or(|r| r.is_complement() || r.values().len() != 1)
            {
                let single = Requirement::is_in([value.clone()]);
                reqs.add(key, single.clone());
                let mut only = Requirements::new();
                only.add(key, single);
                let types_of = &self.pools[pool].types;
                types.retain(|t| types_of[*t as usize].it.requirements.intersects(&only).is_ok());
                if types.is_empty() {
                    return false;
                }
            }
        }
        true
    }

    pub(super) fn host_topology_ok(&mut self, view: &PodView, host: u32) -> bool {
        for s in &view.spreads {
            if matches!(
                self.topology.groups[s.group as usize].key,
                TopoKey::Zone | TopoKey::CapacityType
            ) {
                continue;
            }
            let key = self.topology.groups[s.group as usize].key.clone();
            let Some(d) = self.domain(host, &key) else {
                // A claim not settled on a custom label yet settles when the pod joins.
                if self.is_claim(host) && matches!(key, TopoKey::Label(_)) {
                    continue;
                }
                return false;
            };
            let g = &self.topology.groups[s.group as usize];
            if (g.count(d) + u32::from(s.self_match)) as i64 - s.floor as i64 > s.max_skew as i64 {
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
            if d.is_none() && self.is_claim(host) && matches!(key, TopoKey::Label(_)) {
                continue;
            }
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

    /// Hosts the pod must avoid whatever else holds: those with a pod its hostname
    /// anti-affinity selects, with a pod whose anti-affinity selects it, or where a hostname
    /// spread already allows no more. A bitset by host id; the full checks still run on the rest.
    pub(super) fn hosts_to_skip(&self, view: &PodView) -> Vec<u64> {
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

    /// Matching pods already in a domain for the pod's first spread on that key (ties → index).
    pub(super) fn domain_load(&self, view: &PodView, key: &TopoKey, domain: u32) -> (u32, u32) {
        let load = view
            .spreads
            .iter()
            .find(|s| &self.topology.groups[s.group as usize].key == key)
            .map(|s| self.topology.groups[s.group as usize].count(domain))
            .unwrap_or(0);
        (load, domain)
    }
}
