//! The scheduler: which pending pods go where, and what to launch for the rest.
//!
//! A pure function of its input ([`schedule`]): pods are taken largest first and each goes to
//! an existing node with room, then to an in-flight NodeClaim, then to a NodeClaim created in
//! this round, then to a new NodeClaim from the NodePools in weight order. Every new NodeClaim
//! keeps every instance type that still fits its pods, cheapest first.

use std::collections::BTreeMap;

use crate::api::{Ec2NodeClass, NodePool};
use crate::catalog::{CapacityType, InstanceType};
use crate::nodeclaim::NodeClaim;
use crate::pod::{Millis, Node, Pod, Taint};
use crate::ports::OfferingKey;
use crate::resources::Resources;

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
    /// Offerings recently out of capacity.
    pub unavailable: Vec<OfferingKey>,
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

/// The scheduler's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub new_claims: Vec<PlannedClaim>,
    /// Existing nodes that take pending pods: (node name, pods).
    pub existing: Vec<(String, Vec<String>)>,
    /// In-flight claims that absorb pending pods: (claim id, pods).
    pub in_flight: Vec<(String, Vec<String>)>,
    pub unschedulable: Vec<Unschedulable>,
    /// Hourly cost of the new claims at their chosen offerings.
    pub cost_per_hour: f64,
    /// LP lower bound of the hourly cost of covering the new claims' pods.
    pub lower_bound_per_hour: f64,
}

/// EC2 accepts many overrides, but more than this only slows CreateFleet down.
pub const MAX_INSTANCE_TYPES: usize = 60;

mod limits;
mod lower_bound;
mod solver;
mod topology;

/// Plans the round: see the module docs.
pub fn schedule(input: &Input) -> Plan {
    solver::solve(input)
}

#[cfg(test)]
mod tests;
