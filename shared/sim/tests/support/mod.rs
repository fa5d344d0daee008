//! Builders shared by the sim's tests.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::sync::Arc;

use nodewright_core::builders;
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::{ClaimState, NodeClaim};
use nodewright_core::pod::Node;
use nodewright_core::ports::{LaunchOverride, LaunchRequest};
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_sim::{SimClaimStore, SimCloud, SimCluster, VirtualClock};

pub const START: i64 = 1_000_000;

/// A fresh cloud, cluster and store sharing one clock at [`START`].
pub fn world() -> (Arc<VirtualClock>, SimCloud, SimCluster, SimClaimStore) {
    let clock = Arc::new(VirtualClock::new(START));
    let cloud = SimCloud::new(clock.clone(), 1);
    let cluster = SimCluster::new(clock.clone(), 2);
    (clock, cloud, cluster, SimClaimStore::new())
}

/// A claim of pool `default` in state Launching, promising the label `team=a`.
pub fn claim(id: &str) -> NodeClaim {
    NodeClaim {
        id: id.into(),
        nodepool: "default".into(),
        nodeclass: "default".into(),
        state: ClaimState::Launching,
        version: 0,
        instance_types: vec!["m5.large".into()],
        zones: vec!["us-east-1a".into()],
        capacity_types: vec![CapacityType::OnDemand],
        labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
        taints: Vec::new(),
        startup_taints: Vec::new(),
        requests: Resources::new(),
        pods: Vec::new(),
        instance: None,
        node_name: None,
        created_at: START,
        launched_at: None,
        registered_at: None,
        initialized_at: None,
        reason: None,
        termination: None,
        disruption: Default::default(),
    }
}

/// A launch request for the claim trying `(instance type, zone)` on demand, in order.
pub fn request(claim: &NodeClaim, offerings: &[(&str, &str)]) -> LaunchRequest {
    LaunchRequest {
        claim: claim.clone(),
        nodeclass: builders::nodeclass("default"),
        overrides: offerings
            .iter()
            .map(|(t, z)| LaunchOverride {
                instance_type: t.to_string(),
                zone: z.to_string(),
                capacity_type: CapacityType::OnDemand,
                price: 0.0,
            })
            .collect(),
    }
}

/// A ready node in `us-east-1a` with the given CPU (millicores) and 8 GiB.
pub fn node(name: &str, cpu_milli: i64) -> Node {
    Node {
        name: name.into(),
        labels: builders::node_labels(name, "m5.large", "us-east-1a"),
        allocatable: Resources::new()
            .with(ResourceName::Cpu, cpu_milli)
            .with(ResourceName::Memory, 8 << 30)
            .with(ResourceName::Pods, 110),
        ready: true,
        ..Node::default()
    }
}
