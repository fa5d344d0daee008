//! The simulated kubelet: a launched instance boots and registers as a Node, as EKS nodes do.

use nodewright_core::catalog::CapacityType;
use nodewright_core::labels;
use nodewright_core::pod::{Millis, Node};
use nodewright_core::ports::{ClaimStore, Clock, OfferingKey};

use crate::cloud::{OfferingPattern, SimCloud, SimInstance};
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

/// Registers each instance `boot_delay` after its launch, as strictly as the real kubelet: a
/// Node named after its private DNS name (`ip-10-0-1-4.ec2.internal`) with only the labels the
/// user data passes (the claim's labels the kubelet may set, see
/// [`labels::kubelet_labels`]), those the kubelet sets itself (hostname, arch, os) and those the
/// cloud controller sets (instance type, zone, region); the claim's taints and startup taints;
/// providerID `aws:///<zone>/<instance-id>`; Ready. Everything else — the instance type's
/// labels, capacity type, `registered`, `initialized`, the claim's state — is the core
/// lifecycle's work. The agents owning startup taints are ready at once: those taints are lifted
/// right after registration.
///
/// Instances launched while a [`Kubelet::fail_registration`] pattern matches them never join.
#[derive(Debug)]
pub struct Kubelet {
    boot_delay: Millis,
    /// Instances (in the cloud's launch order) already booted: registered, or terminated
    /// before they could.
    booted: usize,
    /// (pattern, from, until): instances launched in that window never register.
    failing: Vec<(OfferingPattern, Millis, Option<Millis>)>,
}

impl Kubelet {
    pub fn new(boot_delay: Millis) -> Self {
        Kubelet {
            boot_delay,
            booted: 0,
            failing: Vec::new(),
        }
    }

    /// From `now` on, launched instances matching `pattern` never register.
    pub fn fail_registration(&mut self, pattern: OfferingPattern, now: Millis) {
        self.failing.push((pattern, now, None));
    }

    /// Instances launched from `now` on register again.
    pub fn restore_registration(&mut self, pattern: &OfferingPattern, now: Millis) {
        for (p, _, until) in &mut self.failing {
            if p == pattern && until.is_none() {
                *until = Some(now);
            }
        }
    }

    fn never_joins(&self, instance: &nodewright_core::ports::Instance) -> bool {
        let key = OfferingKey {
            instance_type: instance.instance_type.clone(),
            zone: instance.zone.clone(),
            capacity_type: instance.capacity_type,
        };
        self.failing.iter().any(|(p, from, until)| {
            p.matches(&key) && instance.launched_at >= *from && until.is_none_or(|u| instance.launched_at < u)
        })
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
            if sim.terminated_at.is_none() && !self.never_joins(&sim.instance) {
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
    // The user data was rendered from the claim at launch; reading the claim gives the same.
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
    let mut node_labels = claim
        .as_ref()
        .map(|c| labels::kubelet_labels(&c.labels))
        .unwrap_or_default();
    for key in [labels::ARCH, labels::OS] {
        if let Some(v) = sim.instance_type.labels.get(key) {
            node_labels.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in [
        (labels::HOSTNAME, name.as_str()),
        (labels::INSTANCE_TYPE, instance.instance_type.as_str()),
        (labels::ZONE, instance.zone.as_str()),
        (labels::REGION, sim.region.as_str()),
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
        do_not_disrupt: false,
    };
    cluster
        .register_node(node)
        .map_err(|e| Error::port(format!("registering node {name}"), e))?;
    for taint in &startup {
        cluster.remove_taint(&name, &taint.key);
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
