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
