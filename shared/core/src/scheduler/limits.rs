//! NodePool limits: what a pool may still launch, and what a claim reserves of it.
//!
//! A claim may come up as any of its candidate types, so it reserves the largest of each
//! resource among them: whichever candidate EC2 picks for every claim, the pool stays within
//! its limits. Candidates too large for what is left are dropped rather than the pod refused;
//! once a pool runs short, its claims are narrowed to their smallest candidates ([`tightest`])
//! so that the budget goes to more nodes rather than to the headroom of a few.

use super::{Input, PoolInput};
use crate::labels;
use crate::resources::{ResourceName, Resources};

/// Usage of each limited resource, the last slot counting nodes.
pub(super) type LimitVec = [i64; ResourceName::ALL.len() + 1];
pub(super) const NODES: usize = ResourceName::ALL.len();
pub(super) const NOTHING: LimitVec = [0; NODES + 1];

/// What one node of an instance type counts against limits: its capacity, and one node.
pub(super) fn usage_of(capacity: &Resources) -> LimitVec {
    let mut out = NOTHING;
    for r in ResourceName::ALL {
        out[r as usize] = capacity.get(r);
    }
    out[NODES] = 1;
    out
}

/// The largest of each resource among some types' usages: what a claim with them reserves.
pub(super) fn largest<'u>(usages: impl IntoIterator<Item = &'u LimitVec>) -> LimitVec {
    let mut out = NOTHING;
    for u in usages {
        for (o, v) in out.iter_mut().zip(u) {
            *o = (*o).max(*v);
        }
    }
    out
}

/// A pool's limits and what is left of them this round; `i64::MAX` where unlimited.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    pub(super) remaining: LimitVec,
    total: LimitVec,
    /// Set once the pool ran short: its claims keep only their smallest candidates.
    pub(super) tight: bool,
}

impl Budget {
    /// The pool's limits less what its nodes and in-flight claims use.
    pub(super) fn of(p: &PoolInput, input: &Input) -> Budget {
        let mut total = [i64::MAX; NODES + 1];
        if let Ok(Some(limits)) = p.nodepool.limits() {
            for r in ResourceName::ALL {
                if p.nodepool.spec.limits.contains_key(r.as_str()) {
                    total[r as usize] = limits.get(r);
                }
            }
            if let Some(nodes) = limits.other().get("nodes") {
                total[NODES] = *nodes;
            }
        }
        let mut budget = Budget {
            remaining: total,
            total,
            tight: false,
        };
        if !budget.is_limited() {
            return budget;
        }
        // The whole catalog, not only the types the pool allows now: a node launched before
        // the pool's requirements changed still counts in full.
        let usage_of_type = |type_name: Option<&String>, fallback: &Resources| -> LimitVec {
            let found = type_name.and_then(|n| p.instance_types.iter().find(|t| &t.name == n));
            usage_of(found.map_or(fallback, |t| &t.capacity))
        };
        let name = p.nodepool.name();
        let nodes = input
            .nodes
            .iter()
            .filter(|n| n.node.labels.get(labels::NODEPOOL).is_some_and(|v| v == name))
            .map(|n| usage_of_type(n.node.labels.get(labels::INSTANCE_TYPE), &n.node.allocatable));
        // A claim not launched yet may still come up as its largest candidate.
        let claims = input
            .in_flight
            .iter()
            .filter(|c| c.nodepool == name)
            .map(|c| match &c.instance {
                Some(i) => usage_of_type(Some(&i.instance_type), &c.requests),
                None if c.instance_types.is_empty() => usage_of_type(None, &c.requests),
                None => largest(
                    &c.instance_types
                        .iter()
                        .map(|t| usage_of_type(Some(t), &c.requests))
                        .collect::<Vec<_>>(),
                ),
            });
        for used in nodes.chain(claims).collect::<Vec<_>>() {
            budget.exchange(&NOTHING, &used);
        }
        budget
    }

    pub(super) fn is_limited(&self) -> bool {
        self.total.iter().any(|t| *t != i64::MAX)
    }

    /// Whether a claim reserving `already` may reserve `usage` instead.
    pub(super) fn admits(&self, usage: &LimitVec, already: &LimitVec) -> bool {
        (0..=NODES).all(|k| {
            self.remaining[k] == i64::MAX || usage[k] <= self.remaining[k].saturating_add(already[k])
        })
    }

    /// Whether reservations `old` may be given back for `new` (several claims at once).
    pub(super) fn admits_exchange(&self, old: &[&LimitVec], new: &[&LimitVec]) -> bool {
        (0..=NODES).all(|k| {
            let back: i64 = old.iter().map(|o| o[k]).sum();
            let taken: i64 = new.iter().map(|n| n[k]).sum();
            self.remaining[k] == i64::MAX || self.remaining[k] + back - taken >= 0
        })
    }

    /// Gives back the reservation `old` and takes `new`.
    pub(super) fn exchange(&mut self, old: &LimitVec, new: &LimitVec) {
        for k in 0..=NODES {
            if self.remaining[k] != i64::MAX {
                self.remaining[k] = self.remaining[k].saturating_add(old[k]).saturating_sub(new[k]);
            }
        }
    }

    /// Whether no new node fits at all.
    pub(super) fn exhausted(&self) -> bool {
        self.remaining[NODES] < 1 || self.remaining.iter().any(|r| *r <= 0)
    }

    /// The first limited resource `usage` would exceed, with what is left of it.
    pub(super) fn exceeded_by(&self, usage: &LimitVec) -> Option<(String, i64)> {
        (0..=NODES)
            .find(|k| self.remaining[*k] != i64::MAX && usage[*k] > self.remaining[*k])
            .map(|k| {
                let name = ResourceName::ALL
                    .get(k)
                    .map_or_else(|| "nodes".to_string(), |r| r.as_str().to_string());
                (name, self.remaining[k].max(0))
            })
    }

    /// A type's share of the pool's limits, summed over the limited resources.
    fn weight(&self, usage: &LimitVec) -> f64 {
        (0..=NODES)
            .filter(|k| self.total[*k] != i64::MAX && self.total[*k] > 0)
            .map(|k| usage[k] as f64 / self.total[k] as f64)
            .sum()
    }

    /// Of some candidates (cheapest first) with their usages, the ones no larger in any
    /// limited resource than the candidate with the smallest share of the limits.
    pub(super) fn tightest(&self, candidates: &[(u32, &LimitVec)]) -> Vec<u32> {
        let Some(smallest) = candidates
            .iter()
            .min_by(|a, b| self.weight(a.1).total_cmp(&self.weight(b.1)))
            .map(|(_, u)| *u)
        else {
            return Vec::new();
        };
        candidates
            .iter()
            .filter(|(_, u)| (0..=NODES).all(|k| self.total[k] == i64::MAX || u[k] <= smallest[k]))
            .map(|(t, _)| *t)
            .collect()
    }
}
