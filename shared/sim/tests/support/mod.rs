//! Builders shared by the sim's tests.

#![allow(dead_code)] // each test file uses its own subset

use std::sync::{Arc, Mutex};

use nodewright_core::builders;
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::NodeClaim;
use nodewright_core::pass::{PassConfig, PassReport, SweepPassReport, run_pass, run_sweep};
use nodewright_core::pod::Node;
use nodewright_core::ports::{Cloud, LaunchOverride, LaunchRequest, PortResult};
use nodewright_core::provisioning::RoundConfig;
use nodewright_core::testing;
use nodewright_core::unavailable::UnavailableOfferings;
use nodewright_core::wiring::Ports;
use nodewright_sim::{Kubelet, SeededIds, SimClaimStore, SimCloud, SimCluster, VirtualClock};
use pollster::block_on;

pub const START: i64 = 1_000_000;

/// A fresh cloud, cluster and store sharing one clock at [`START`].
pub fn world() -> (Arc<VirtualClock>, SimCloud, SimCluster, SimClaimStore) {
    let clock = Arc::new(VirtualClock::new(START));
    let cloud = SimCloud::new(clock.clone(), 1);
    let cluster = SimCluster::new(clock.clone(), 2);
    (clock, cloud, cluster, SimClaimStore::new())
}

/// A claim of pool `default` in state Launching, promising the label `team=a` (and no other).
pub fn claim(id: &str) -> NodeClaim {
    testing::claim(id)
        .version(0)
        .created_at(START)
        .without_labels()
        .label("team", "a")
        .build()
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
    testing::node(name).cpu(&format!("{cpu_milli}m")).build()
}

/// The cloud, cluster and store the passes run against, with what a provisioner keeps between
/// invocations (ids, offerings out of capacity) and the kubelet that registers booted instances.
pub struct World {
    pub clock: Arc<VirtualClock>,
    pub cloud: SimCloud,
    pub cluster: SimCluster,
    pub store: SimClaimStore,
    pub ids: SeededIds,
    pub unavailable: Mutex<UnavailableOfferings>,
    pub kubelet: Kubelet,
}

impl World {
    /// Empty, at [`START`], drawing ids and failures from `seed`.
    pub fn new(seed: u64) -> World {
        let clock = Arc::new(VirtualClock::new(START));
        World {
            cloud: SimCloud::new(clock.clone(), seed),
            cluster: SimCluster::new(clock.clone(), seed),
            store: SimClaimStore::new(),
            ids: SeededIds::new(seed),
            unavailable: Mutex::new(UnavailableOfferings::new()),
            kubelet: Kubelet::new(45_000),
            clock,
        }
    }

    pub fn config(&self) -> PassConfig {
        PassConfig {
            round: RoundConfig {
                holder: "test".into(),
                ..RoundConfig::default()
            },
            ..PassConfig::default()
        }
    }

    /// The world's ports, launching through `cloud`.
    pub fn ports<'a, K>(&'a self, cloud: &'a K) -> Ports<'a, SimCluster, K, SimClaimStore> {
        Ports {
            cluster: &self.cluster,
            cloud,
            store: &self.store,
            clock: self.clock.as_ref(),
            ids: &self.ids,
            unavailable: &self.unavailable,
        }
    }

    pub fn pass_with(&self, cloud: &impl Cloud, config: &PassConfig) -> PortResult<PassReport> {
        block_on(run_pass(&self.ports(cloud), config))
    }

    pub fn pass(&self) -> PassReport {
        self.pass_with(&self.cloud, &self.config()).expect("pass")
    }

    /// A minute goes by: instances boot and join, the kube-scheduler binds, a pass runs.
    pub fn minute(&mut self) -> PassReport {
        self.clock.advance(60_000);
        self.kubelet
            .register_booted(&self.cloud, &self.cluster, &self.store)
            .expect("kubelet");
        self.cluster.run_scheduler();
        let report = self.pass();
        self.cluster.run_scheduler();
        report
    }

    pub fn sweep(&self) -> SweepPassReport {
        block_on(run_sweep(&self.ports(&self.cloud), &self.config())).expect("sweep")
    }
}
