//! The scheduler: which pending pods go where, and what to launch for the rest.
//!
//! A pure function of its input ([`schedule`]), in phases, each in a file of its own:
//!
//! 1. **Preparation** (`pools.rs`, `hosts.rs`, `limits.rs`): NodePools by weight, each with its
//!    requirements (its own name included), the instance types it allows with their usable room
//!    after daemonset overhead and their offerings as bits (`offerings.rs`), and its limits;
//!    existing nodes and in-flight claims as hosts with fixed labels and room.
//! 2. **Placement** (`solver.rs`): pods largest first, each to the first existing node or
//!    in-flight claim where it fits, then to a claim of this round (`claim.rs`: every check
//!    narrows the claim's candidate types), then to a new claim from the first pool that can
//!    take it. Topology (`topology.rs` counts, `domains.rs` checks) is counted as pods land.
//! 3. **Relaxation** (`view.rs`): a pod that fits nowhere has its preferences relaxed one at a
//!    time in Karpenter's order; when still nothing fits and a pool with limits ran short, that
//!    pool's claims keep only their smallest candidates and the pod is tried again.
//! 4. **Repacking** (`repack.rs`): pods without constraints are packed again to the balance of
//!    the types the lower bound (`lower_bound.rs`) buys, kept only when cheaper.
//! 5. **Splitting** (`split.rs`): half-empty claims split in two when two smaller nodes cost less.
//! 6. **The plan** (`plan.rs`): each claim priced at the offering EC2 would most likely pick, its
//!    candidates capped for the launch and priced as the launch's overrides; pods that fit
//!    nowhere get a reason (`explain.rs`).
//!
//! Offerings recently out of capacity (`Input::unavailable`) are left out once, when the pools
//! are prepared: nothing planned, priced or sent to the cloud includes them.

use std::collections::BTreeMap;

use crate::api::{Ec2NodeClass, NodePool};
use crate::catalog::{CapacityType, InstanceType};
use crate::nodeclaim::NodeClaim;
use crate::pod::{Millis, Node, Pod, Taint};
use crate::ports::LaunchOverride;
use crate::resources::Resources;
use crate::unavailable::UnavailableOfferings;

/// A NodePool with what the scheduler needs to launch from it.
#[derive(Debug, Clone)]
pub struct PoolInput {
    pub nodepool: NodePool,
    pub nodeclass: Ec2NodeClass,
    /// The catalog's instance types with allocatable computed for this node class.
    pub instance_types: std::sync::Arc<Vec<InstanceType>>,
}

/// A node that exists, with the pods bound to it.
#[derive(Debug, Clone)]
pub struct ExistingNode {
    pub node: Node,
    pub pods: Vec<Pod>,
}

/// Everything one scheduling round looks at.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub pending: Vec<Pod>,
    pub nodes: Vec<ExistingNode>,
    /// Claims launched (or launching) whose nodes have not registered yet.
    pub in_flight: Vec<NodeClaim>,
    /// DaemonSet pod templates: overhead on every node they would land on.
    pub daemonsets: Vec<Pod>,
    pub pools: Vec<PoolInput>,
    /// Offerings recently out of capacity (as of `now`): no claim plans or launches on them.
    pub unavailable: UnavailableOfferings,
    /// Labels of the cluster's namespaces, for pod (anti-)affinity namespace selectors.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    pub now: Millis,
}

/// The offering EC2 would most likely pick for a claim: the cheapest that satisfies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenOffering {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price: f64,
}

/// A NodeClaim to launch.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedClaim {
    pub nodepool: String,
    pub nodeclass: String,
    /// Cheapest first, at most [`MAX_INSTANCE_TYPES`].
    pub instance_types: Vec<String>,
    pub zones: Vec<String>,
    pub capacity_types: Vec<CapacityType>,
    pub chosen: ChosenOffering,
    /// What the launch sends: every available offering of `instance_types` in `zones` and the
    /// one capacity type of `capacity_types`, priced, cheapest first
    /// ([`PlannedClaim::launch_overrides`] spells them out).
    pub overrides: Vec<PlannedOverride>,
    /// Pods planned onto it (`namespace/name`).
    pub pods: Vec<String>,
    /// Pods' requests plus daemonset overhead for the chosen type.
    pub requests: Resources,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub startup_taints: Vec<Taint>,
}

/// A pod that cannot be placed, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Unschedulable {
    pub pod: String,
    pub reason: String,
}

/// One launch override of a [`PlannedClaim`], by position in its `instance_types` and `zones`:
/// a plan of thousands of claims carries hundreds of overrides each, and names would be a
/// string each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedOverride {
    pub instance_type: u16,
    pub zone: u16,
    pub price: f64,
}

impl PlannedClaim {
    /// The overrides the launch sends, cheapest first, as the cloud tries them.
    pub fn launch_overrides(&self) -> Vec<LaunchOverride> {
        let capacity_type = self.chosen.capacity_type;
        self.overrides
            .iter()
            .filter_map(|o| {
                Some(LaunchOverride {
                    instance_type: self.instance_types.get(o.instance_type as usize)?.clone(),
                    zone: self.zones.get(o.zone as usize)?.clone(),
                    capacity_type,
                    price: o.price,
                })
            })
            .collect()
    }
}

/// Pending pods the plan puts on a node or an in-flight claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub host: String,
    /// `namespace/name`.
    pub pods: Vec<String>,
}

impl Assignment {
    pub fn new(host: &str, pods: &[&str]) -> Assignment {
        Assignment {
            host: host.to_string(),
            pods: pods.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// The scheduler's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub new_claims: Vec<PlannedClaim>,
    /// Existing nodes that take pending pods (hosts named by node name).
    pub existing: Vec<Assignment>,
    /// In-flight claims that absorb pending pods (hosts named by claim id).
    pub in_flight: Vec<Assignment>,
    pub unschedulable: Vec<Unschedulable>,
    /// Hourly cost of the new claims at their chosen offerings.
    pub cost_per_hour: f64,
    /// LP lower bound of the hourly cost of covering the new claims' pods.
    pub lower_bound_per_hour: f64,
}

/// EC2 accepts many overrides, but more than this only slows CreateFleet down.
pub const MAX_INSTANCE_TYPES: usize = 60;

mod claim;
mod domains;
mod explain;
mod hosts;
mod limits;
mod lower_bound;
mod offerings;
mod packing_bound;
mod plan;
mod pools;
mod repack;
mod rooms;
mod solver;
mod split;
mod topology;
mod view;

/// Plans the round: see the module docs.
pub fn schedule(input: &Input) -> Plan {
    solver::solve(input)
}

#[cfg(test)]
mod tests;
