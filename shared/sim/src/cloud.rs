//! The embedded cloud: EC2 as the provisioner sees it, over the embedded us-east-1 catalog.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::{CapacityType, Catalog, InstanceType, NodeSettings, embedded};
use nodewright_core::labels;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    CLAIM_TAG, Clock, Cloud, ErrorKind, Instance, LaunchRequest, Launched, OfferingKey, PortError, PortResult,
};
use serde::{Deserialize, Serialize};

use crate::calls::{Call, CloudOp, Recorder};
use crate::clock::VirtualClock;
use crate::ids::SplitMix64;

/// A set of offerings, for declaring capacity outages: an absent field matches every value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfferingPattern {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<CapacityType>,
}

impl OfferingPattern {
    pub fn matches(&self, key: &OfferingKey) -> bool {
        self.instance_type
            .as_ref()
            .is_none_or(|t| *t == key.instance_type)
            && self.zone.as_ref().is_none_or(|z| *z == key.zone)
            && self.capacity_type.is_none_or(|c| c == key.capacity_type)
    }
}

impl fmt::Display for OfferingPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = |v: Option<&str>| v.unwrap_or("*").to_string();
        write!(
            f,
            "{}/{}/{}",
            any(self.instance_type.as_deref()),
            any(self.zone.as_deref()),
            any(self.capacity_type.map(CapacityType::as_str))
        )
    }
}

/// An instance the cloud launched, with what the simulation needs beyond EC2's view of it.
#[derive(Debug, Clone)]
pub struct SimInstance {
    pub instance: Instance,
    /// The catalog entry it was launched as, with allocatable for its node class.
    pub instance_type: InstanceType,
    pub region: String,
    /// USD per hour, from the catalog offering.
    pub price: f64,
    pub terminated_at: Option<Millis>,
}

impl SimInstance {
    /// Hours it ran (or has run by `now`, if still running).
    pub fn hours(&self, now: Millis) -> f64 {
        let end = self.terminated_at.unwrap_or(now);
        (end - self.instance.launched_at).max(0) as f64 / 3_600_000.0
    }
}

/// A launch that found no capacity in any of its offerings.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityFailure {
    pub at: Millis,
    pub claim_id: String,
    pub offerings: Vec<OfferingKey>,
}

#[derive(Debug)]
struct CloudState {
    /// In launch order, so that everything iterating them is deterministic.
    instances: Vec<SimInstance>,
    by_id: BTreeMap<String, usize>,
    by_claim: BTreeMap<String, usize>,
    /// Catalogs built so far, by the node settings they were built for.
    catalogs: Vec<(NodeSettings, Arc<Catalog>)>,
    out_of_capacity: Vec<OfferingPattern>,
    capacity_failures: Vec<CapacityFailure>,
    rng: SplitMix64,
    recorder: Recorder<CloudOp>,
}

/// EC2 in memory. Launches take the first override with capacity, are idempotent per claim id
/// (as CreateFleet is per client token) and tag the instance with [`CLAIM_TAG`]; terminating an
/// instance that is gone is `Ok`; offerings declared out of capacity fail with
/// `InsufficientCapacity` naming them.
#[derive(Debug)]
pub struct SimCloud {
    clock: Arc<VirtualClock>,
    state: Mutex<CloudState>,
}

/// Private addresses start here (10.0.1.4: AWS keeps the first four of a subnet).
const FIRST_ADDRESS: u32 = (10 << 24) | (1 << 8) | 4;

impl SimCloud {
    pub fn new(clock: Arc<VirtualClock>, seed: u64) -> Self {
        SimCloud {
            clock,
            state: Mutex::new(CloudState {
                instances: Vec::new(),
                by_id: BTreeMap::new(),
                by_claim: BTreeMap::new(),
                catalogs: Vec::new(),
                out_of_capacity: Vec::new(),
                capacity_failures: Vec::new(),
                rng: SplitMix64::new(seed),
                recorder: Recorder::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, CloudState> {
        // Every mutation completes under the lock, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offerings matching `pattern` have no capacity until [`Self::restore_capacity`].
    pub fn set_out_of_capacity(&self, pattern: OfferingPattern) {
        let mut state = self.state();
        if !state.out_of_capacity.contains(&pattern) {
            state.out_of_capacity.push(pattern);
        }
    }

    /// Lifts an outage declared with the same pattern.
    pub fn restore_capacity(&self, pattern: &OfferingPattern) {
        self.state().out_of_capacity.retain(|p| p != pattern);
    }

    /// Every instance ever launched, terminated ones included, in launch order.
    pub fn instances(&self) -> Vec<SimInstance> {
        self.state().instances.clone()
    }

    /// Instances from position `from` of the launch order that launched by `launched_by`
    /// (launch order is time order, so the scan stops at the first later one).
    pub fn instances_launched_by(&self, from: usize, launched_by: Millis) -> Vec<SimInstance> {
        self.state()
            .instances
            .iter()
            .skip(from)
            .take_while(|i| i.instance.launched_at <= launched_by)
            .cloned()
            .collect()
    }

    pub fn instance(&self, id: &str) -> Option<SimInstance> {
        let state = self.state();
        state.by_id.get(id).map(|i| state.instances[*i].clone())
    }

    /// Every launch that failed with `InsufficientCapacity`, in order.
    pub fn capacity_failures(&self) -> Vec<CapacityFailure> {
        self.state().capacity_failures.clone()
    }

    /// The next call of `op` fails with `error`.
    pub fn fail_next(&self, op: CloudOp, error: PortError) {
        self.state().recorder.fail_next(op, error);
    }

    pub fn calls(&self) -> Vec<Call<CloudOp>> {
        self.state().recorder.calls().to_vec()
    }

    fn launch_now(&self, request: &LaunchRequest) -> PortResult<Launched> {
        let claim = &request.claim;
        let mut state = self.state();
        state.recorder.call(CloudOp::Launch, &claim.id)?;
        if let Some(i) = state.by_claim.get(&claim.id) {
            let existing = &state.instances[*i];
            return Ok(Launched {
                instance: existing.instance.clone(),
                price: existing.price,
                unavailable: Vec::new(),
            });
        }
        if request.overrides.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!("launch for claim {}: no overrides", claim.id),
            ));
        }
        let catalog = catalog_for(&mut state.catalogs, &request.nodeclass)?;
        let mut unavailable = Vec::new();
        for o in &request.overrides {
            let key = OfferingKey {
                instance_type: o.instance_type.clone(),
                zone: o.zone.clone(),
                capacity_type: o.capacity_type,
            };
            let offered = catalog.get(&o.instance_type).and_then(|it| {
                it.offerings
                    .iter()
                    .find(|off| off.zone == o.zone && off.capacity_type == o.capacity_type)
                    .map(|off| (it, off.price))
            });
            // An offering the catalog does not have is what EC2 calls "Unsupported"; Karpenter
            // treats it like one without capacity.
            let Some((it, price)) =
                offered.filter(|_| !state.out_of_capacity.iter().any(|p| p.matches(&key)))
            else {
                unavailable.push(key);
                continue;
            };
            let index = state.instances.len();
            let id = format!("i-0{:016x}", state.rng.next_u64());
            let address = FIRST_ADDRESS.wrapping_add(index as u32).to_be_bytes();
            let dns = format!(
                "ip-{}-{}-{}-{}.ec2.internal",
                address[0], address[1], address[2], address[3]
            );
            let mut tags = request.nodeclass.spec.tags.clone();
            tags.insert(CLAIM_TAG.to_string(), claim.id.clone());
            tags.insert(labels::NODEPOOL.to_string(), claim.nodepool.clone());
            tags.insert(
                labels::EC2NODECLASS.to_string(),
                request.nodeclass.name().to_string(),
            );
            let instance = Instance {
                id: id.clone(),
                instance_type: o.instance_type.clone(),
                zone: o.zone.clone(),
                capacity_type: o.capacity_type,
                state: "running".into(),
                launched_at: self.clock.now(),
                tags,
                claim_id: Some(claim.id.clone()),
                private_dns_name: Some(dns),
            };
            let record = SimInstance {
                instance: instance.clone(),
                instance_type: it.clone(),
                region: catalog.region.clone(),
                price,
                terminated_at: None,
            };
            state.instances.push(record);
            state.by_id.insert(id, index);
            state.by_claim.insert(claim.id.clone(), index);
            return Ok(Launched {
                instance,
                price,
                unavailable,
            });
        }
        let mut names: Vec<String> = unavailable
            .iter()
            .take(3)
            .map(|k| format!("{}/{}/{}", k.instance_type, k.zone, k.capacity_type))
            .collect();
        if unavailable.len() > names.len() {
            names.push(format!("{} more", unavailable.len() - names.len()));
        }
        state.capacity_failures.push(CapacityFailure {
            at: self.clock.now(),
            claim_id: claim.id.clone(),
            offerings: unavailable.clone(),
        });
        Err(PortError::insufficient_capacity(
            format!("no capacity for claim {} in {}", claim.id, names.join(", ")),
            unavailable,
        ))
    }

    fn terminate_now(&self, instance_id: &str) -> PortResult<()> {
        let now = self.clock.now();
        let mut state = self.state();
        state.recorder.call(CloudOp::Terminate, instance_id)?;
        if let Some(i) = state.by_id.get(instance_id).copied() {
            let record = &mut state.instances[i];
            if record.terminated_at.is_none() {
                record.terminated_at = Some(now);
                record.instance.state = "terminated".into();
            }
        }
        Ok(())
    }

    fn list_now(&self) -> PortResult<Vec<Instance>> {
        let mut state = self.state();
        state.recorder.call(CloudOp::ListInstances, "")?;
        Ok(state
            .instances
            .iter()
            .filter(|i| i.terminated_at.is_none())
            .map(|i| i.instance.clone())
            .collect())
    }

    fn catalog_now(&self, nodeclass: &Ec2NodeClass) -> PortResult<Catalog> {
        let mut state = self.state();
        state.recorder.call(CloudOp::Catalog, nodeclass.name())?;
        Ok((*catalog_for(&mut state.catalogs, nodeclass)?).clone())
    }
}

/// The embedded catalog for a node class's settings, built once per distinct settings.
fn catalog_for(
    cache: &mut Vec<(NodeSettings, Arc<Catalog>)>,
    nodeclass: &Ec2NodeClass,
) -> PortResult<Arc<Catalog>> {
    let settings = NodeSettings::for_nodeclass(nodeclass).map_err(|e| {
        PortError::new(
            ErrorKind::Invalid,
            format!("EC2NodeClass {}: {e}", nodeclass.name()),
        )
        .with_source(e)
    })?;
    if let Some((_, catalog)) = cache.iter().find(|(s, _)| *s == settings) {
        return Ok(catalog.clone());
    }
    let catalog = embedded::catalog(&settings).map_err(|e| {
        PortError::new(ErrorKind::Invalid, format!("the embedded catalog: {e}")).with_source(e)
    })?;
    let catalog = Arc::new(catalog);
    cache.push((settings, catalog.clone()));
    Ok(catalog)
}

impl Cloud for SimCloud {
    fn launch(&self, request: &LaunchRequest) -> impl Future<Output = PortResult<Launched>> + Send {
        std::future::ready(self.launch_now(request))
    }

    fn terminate(&self, instance_id: &str) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.terminate_now(instance_id))
    }

    fn list_instances(&self) -> impl Future<Output = PortResult<Vec<Instance>>> + Send {
        std::future::ready(self.list_now())
    }

    fn catalog(&self, nodeclass: &Ec2NodeClass) -> impl Future<Output = PortResult<Catalog>> + Send {
        std::future::ready(self.catalog_now(nodeclass))
    }
}
