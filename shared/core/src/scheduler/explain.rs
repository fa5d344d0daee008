//! Why a pod fits nowhere, in terms a person can act on, naming the pool.

use super::offerings::*;
use super::pools::*;
use super::solver::Solver;
use super::view::*;
use crate::labels;
use crate::pod::{Pod, untolerated};
use crate::resources::{ResourceName, Resources};

impl<'a> Solver<'a> {
    /// A reason a person can act on, for a pod that fits nowhere.
    pub(super) fn explain(&mut self, pod: &Pod, view: &PodView) -> String {
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
            if let Some(shortfall) = min_values_shortfall(&pool.reqs, &view.term, &matching, &pod.requests) {
                reasons.push(format!("NodePool {name}: {shortfall}"));
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
                    "NodePool {name}: {} leave no {} the pod may use",
                    self.topology_constraints(view),
                    self.topology_domains(view),
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
}

impl Solver<'_> {
    /// The pod's topology constraints in words: `topology spread on topology.kubernetes.io/zone
    /// (maxSkew 1), pod anti-affinity on kubernetes.io/hostname`.
    fn topology_constraints(&self, view: &PodView) -> String {
        let key = |g: u32| self.topology.groups[g as usize].key.label().to_string();
        let mut parts: Vec<String> = view
            .spreads
            .iter()
            .map(|s| format!("topology spread on {} (maxSkew {})", key(s.group), s.max_skew))
            .collect();
        parts.extend(
            view.affinity
                .iter()
                .map(|(g, _)| format!("pod affinity on {}", key(*g))),
        );
        parts.extend(
            view.anti
                .iter()
                .map(|g| format!("pod anti-affinity on {}", key(*g))),
        );
        parts.dedup();
        parts.join(", ")
    }

    /// What the constraints count in: zones, nodes, or values of a label.
    fn topology_domains(&self, view: &PodView) -> &'static str {
        let groups = view
            .spreads
            .iter()
            .map(|s| s.group)
            .chain(view.affinity.iter().map(|(g, _)| *g))
            .chain(view.anti.iter().copied());
        let mut kinds = groups.map(|g| match self.topology.groups[g as usize].key {
            super::topology::TopoKey::Zone => "zone",
            super::topology::TopoKey::Hostname => "node",
            _ => "domain",
        });
        let first = kinds.next().unwrap_or("domain");
        if kinds.all(|k| k == first) {
            first
        } else {
            "domain"
        }
    }
}

/// A `minValues` the types that match the pod and have room for it cannot meet: `minValues 5
/// on karpenter.k8s.aws/instance-family, but only 2 of the types that fit the pod differ in
/// it`.
fn min_values_shortfall(
    pool_reqs: &crate::requirements::Requirements,
    term: &crate::requirements::Requirements,
    matching: &[&PoolType],
    requests: &Resources,
) -> Option<String> {
    let reqs = pool_reqs.intersection(term);
    reqs.iter().find_map(|(key, r)| {
        let min = r.min_values? as usize;
        let mut values: Vec<&str> = matching
            .iter()
            .filter(|pt| pt.usable.fits(requests))
            .filter_map(|pt| pt.it.labels.get(key).map(String::as_str))
            .collect();
        values.sort_unstable();
        values.dedup();
        (values.len() < min).then(|| {
            format!(
                "minValues {min} on {key}, but the instance types that fit the pod have only {} value(s) of it",
                values.len()
            )
        })
    })
}

pub(super) fn shortfall_ratio((_, want, have): &(String, i64, i64)) -> f64 {
    if *want <= 0 {
        0.0
    } else {
        (*want - *have) as f64 / *want as f64
    }
}

pub(super) fn describe_requests(r: &Resources) -> String {
    r.to_quantity_map()
        .into_iter()
        .filter(|(k, _)| k != "pods")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
