//! Hosts as the checker sees them: existing nodes, in-flight claims and new claims, each with
//! every way it can turn out, and the room each way leaves for pending pods.

use crate::catalog::CapacityType;
use crate::labels;
use crate::pod::Taint;
use crate::resources::Resources;
use crate::scheduler::Plan;

use super::{Ctx, Labels, minus, node_labels};

/// One way a host can turn out: the node's labels and taints, and what pods can use on it.
#[derive(Debug, Clone)]
pub(super) struct Variant {
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub room: Resources,
}

#[derive(Debug)]
pub(super) struct Host {
    pub name: String,
    pub variants: Vec<Variant>,
    /// Pending pods the plan puts here (indices into the checker's pods).
    pub placed: Vec<usize>,
    /// Pods bound here already (indices into the checker's pods).
    pub bound: Vec<usize>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An existing node: its daemonset pods are among its bound pods.
    Node { cordoned: bool },
    /// A claim launched or launching in an earlier round.
    InFlight,
    /// A claim of this plan.
    New,
}

impl Host {
    /// A host that needs no launch and takes pods: a schedulable node, an in-flight claim.
    pub fn fixed_and_schedulable(&self) -> bool {
        matches!(self.kind, Kind::Node { cordoned: false } | Kind::InFlight)
    }

    /// The value of a topology label if every variant agrees on it; each host is a hostname
    /// domain of its own.
    pub fn settled(&self, key: &str) -> Option<String> {
        if key == labels::HOSTNAME {
            return Some(self.name.clone());
        }
        let first = self.variants.first()?.labels.get(key)?;
        self.variants
            .iter()
            .all(|v| v.labels.get(key) == Some(first))
            .then(|| first.clone())
    }
}

/// The pending pods the plan lists, as indices.
fn indices(ctx: &Ctx, pods: &[String]) -> Result<Vec<usize>, String> {
    pods.iter().map(|p| ctx.index_of(p)).collect()
}

/// Existing nodes, with the pods bound to them and the pending pods the plan puts on them.
pub(super) fn existing_hosts(ctx: &Ctx, plan: &Plan) -> Result<Vec<Host>, String> {
    let mut hosts: Vec<Host> = Vec::new();
    // Bound pods follow the pending ones in the checker's list, node by node.
    let mut next_bound = ctx.pending;
    for n in &ctx.input.nodes {
        let node = &n.node;
        let running = n.pods.iter().filter(|p| !p.terminal).count();
        let bound: Vec<usize> = (next_bound..next_bound + running).collect();
        next_bound += running;
        let mut room = node.allocatable.clone();
        for p in &bound {
            room.sub(&ctx.pods[*p].requests);
        }
        let placed = match plan.existing.iter().find(|a| a.host == node.name) {
            Some(a) if !a.pods.is_empty() && node.unschedulable => {
                return Err(format!("pods placed on cordoned {}", node.name));
            }
            Some(a) => indices(ctx, &a.pods)?,
            None => Vec::new(),
        };
        hosts.push(Host {
            name: node.name.clone(),
            variants: vec![Variant {
                labels: node.labels.clone(),
                taints: node.taints.clone(),
                room,
            }],
            placed,
            bound,
            kind: Kind::Node {
                cordoned: node.unschedulable,
            },
        });
    }
    if let Some(a) = plan
        .existing
        .iter()
        .find(|a| !hosts.iter().any(|h| h.name == a.host))
    {
        return Err(format!("the plan uses unknown node {}", a.host));
    }
    Ok(hosts)
}

/// In-flight claims, with the pending pods the plan puts on them. A claim not launched yet
/// may still come up as any of its types, in any of its zones.
pub(super) fn in_flight_hosts(ctx: &Ctx, plan: &Plan, hosts: &mut Vec<Host>) -> Result<(), String> {
    for c in &ctx.input.in_flight {
        let pool = ctx.pool(&c.nodepool).map(|(p, _)| p);
        let offerings: Vec<(&String, &String, CapacityType)> = match &c.instance {
            Some(i) => vec![(&i.instance_type, &i.zone, i.capacity_type)],
            None => c
                .instance_types
                .iter()
                .flat_map(|t| c.zones.iter().map(move |z| (t, z)))
                .flat_map(|(t, z)| c.capacity_types.iter().map(move |ct| (t, z, *ct)))
                .collect(),
        };
        let mut variants = Vec::new();
        for (type_name, zone, ct) in offerings {
            let (labels, room) = match ctx.instance_type(pool, type_name) {
                Some(t) => {
                    let l = node_labels(t, zone, ct, &c.nodepool, &[&c.labels]);
                    let room = minus(&t.allocatable, &ctx.overhead(&l, &c.taints));
                    (l, room)
                }
                // A type no catalog of the round knows: what the claim was launched for is
                // all the room it is sure to have.
                None => {
                    let mut l = c.labels.clone();
                    l.insert(labels::INSTANCE_TYPE.into(), type_name.clone());
                    l.insert(labels::ZONE.into(), zone.clone());
                    l.insert(labels::CAPACITY_TYPE.into(), ct.as_str().into());
                    l.insert(labels::NODEPOOL.into(), c.nodepool.clone());
                    (l, c.requests.clone())
                }
            };
            variants.push(Variant {
                labels,
                taints: c.taints.clone(),
                room,
            });
        }
        let placed = match plan.in_flight.iter().find(|a| a.host == c.id) {
            Some(a) => indices(ctx, &a.pods)?,
            None => Vec::new(),
        };
        if variants.is_empty() && !placed.is_empty() {
            return Err(format!(
                "pods placed on in-flight {}, which has no instance type",
                c.id
            ));
        }
        hosts.push(Host {
            name: c.id.clone(),
            variants,
            placed,
            bound: Vec::new(),
            kind: Kind::InFlight,
        });
    }
    if let Some(a) = plan
        .in_flight
        .iter()
        .find(|a| !ctx.input.in_flight.iter().any(|c| c.id == a.host))
    {
        return Err(format!("the plan uses unknown in-flight claim {}", a.host));
    }
    Ok(())
}
