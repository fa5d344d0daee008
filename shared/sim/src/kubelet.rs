//! The simulated kubelet: a launched instance boots and registers as a Node, as EKS nodes do.

use std::collections::BTreeMap;

use nodewright_core::catalog::CapacityType;
use nodewright_core::labels;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::pod::{Millis, Node};
use nodewright_core::ports::{ClaimStore, Clock, Cluster};

use crate::cloud::{SimCloud, SimInstance};
use crate::cluster::SimCluster;
use crate::error::{Error, Result};
use crate::store::SimClaimStore;

/// A node that joined the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub node: String,
    pub instance_id: String,
    pub claim_id: Option<String>,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
}

/// Registers each instance `boot_delay` after its launch: a Node named after its private DNS
/// name (`ip-10-0-1-4.ec2.internal`) with the labels its claim promised plus the instance
/// type's, zone, capacity type, region, NodePool and hostname; the type's allocatable for the
/// node class; the claim's taints and startup taints; providerID `aws:///<zone>/<instance-id>`.
/// The claim then becomes `Registered`. Startup taints are lifted at once (as if the agents
/// owning them were ready immediately) and the claim becomes `Initialized`.
#[derive(Debug)]
pub struct Kubelet {
    boot_delay: Millis,
    /// Instances (in the cloud's launch order) already booted: registered, or terminated
    /// before they could.
    booted: usize,
}

impl Kubelet {
    pub fn new(boot_delay: Millis) -> Self {
        Kubelet {
            boot_delay,
            booted: 0,
        }
    }

    /// Registers every running instance that has finished booting and has not joined yet.
    pub fn register_booted(
        &mut self,
        cloud: &SimCloud,
        cluster: &SimCluster,
        store: &SimClaimStore,
    ) -> Result<Vec<Registration>> {
        let now = cluster.clock.now();
        let mut out = Vec::new();
        for sim in cloud.instances_launched_by(self.booted, now - self.boot_delay) {
            self.booted += 1;
            if sim.terminated_at.is_none() {
                out.push(register(&sim, cluster, store, now)?);
            }
        }
        Ok(out)
    }
}

fn register(
    sim: &SimInstance,
    cluster: &SimCluster,
    store: &SimClaimStore,
    now: Millis,
) -> Result<Registration> {
    let instance = &sim.instance;
    let claim = match &instance.claim_id {
        Some(id) => {
            pollster::block_on(store.get(id)).map_err(|e| Error::port(format!("reading claim {id}"), e))?
        }
        None => None,
    };
    let name = instance
        .private_dns_name
        .clone()
        .unwrap_or_else(|| instance.id.clone());
    let mut node_labels: BTreeMap<String, String> =
        claim.as_ref().map(|c| c.labels.clone()).unwrap_or_default();
    node_labels.extend(sim.instance_type.labels.clone());
    let nodepool = claim
        .as_ref()
        .map(|c| c.nodepool.clone())
        .or_else(|| instance.tags.get(labels::NODEPOOL).cloned());
    if let Some(pool) = nodepool {
        node_labels.insert(labels::NODEPOOL.into(), pool);
    }
    for (k, v) in [
        (labels::ZONE, instance.zone.as_str()),
        (labels::REGION, sim.region.as_str()),
        (labels::CAPACITY_TYPE, instance.capacity_type.as_str()),
        (labels::HOSTNAME, name.as_str()),
        (labels::NODE_REGISTERED, "true"),
    ] {
        node_labels.insert(k.to_string(), v.to_string());
    }
    let mut taints = claim.as_ref().map(|c| c.taints.clone()).unwrap_or_default();
    let startup = claim
        .as_ref()
        .map(|c| c.startup_taints.clone())
        .unwrap_or_default();
    taints.extend(startup.iter().cloned());
    let node = Node {
        name: name.clone(),
        labels: node_labels,
        taints,
        allocatable: sim.instance_type.allocatable.clone(),
        unschedulable: false,
        provider_id: Some(format!("aws:///{}/{}", instance.zone, instance.id)),
        ready: true,
        created_at: now,
        deleting: false,
    };
    cluster
        .register_node(node)
        .map_err(|e| Error::port(format!("registering node {name}"), e))?;

    if let Some(mut claim) = claim.filter(|c| c.state == ClaimState::Launched) {
        claim.state = ClaimState::Registered;
        claim.node_name = Some(name.clone());
        claim.registered_at = Some(now);
        let mut claim = pollster::block_on(store.update(&claim))
            .map_err(|e| Error::port(format!("marking claim {} registered", claim.id), e))?;
        let initialized = BTreeMap::from([(labels::NODE_INITIALIZED.to_string(), "true".to_string())]);
        pollster::block_on(cluster.patch_node(&name, &initialized, &claim.taints))
            .map_err(|e| Error::port(format!("initializing node {name}"), e))?;
        claim.state = ClaimState::Initialized;
        claim.initialized_at = Some(now);
        pollster::block_on(store.update(&claim))
            .map_err(|e| Error::port(format!("marking claim {} initialized", claim.id), e))?;
    }
    Ok(Registration {
        node: name,
        instance_id: instance.id.clone(),
        claim_id: instance.claim_id.clone(),
        instance_type: instance.instance_type.clone(),
        zone: instance.zone.clone(),
        capacity_type: instance.capacity_type,
    })
}
