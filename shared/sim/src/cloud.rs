//! The embedded cloud: EC2 as the provisioner sees it, over the embedded us-east-1 catalog,
//! with the subnets and images node classes select (by default, every zone has a subnet and
//! every architecture an image, for every node class).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use nodewright_core::api::{AmiSelectorTerm, Ec2NodeClass, SelectorTerm};
use nodewright_core::catalog::{CapacityType, Catalog, InstanceType, NodeSettings, embedded};
use nodewright_core::labels;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    CLAIM_TAG, Clock, Cloud, ErrorKind, Instance, InstanceProfile, InstanceState, LaunchRequest, Launched,
    OfferingKey, PortError, PortResult,
};
use serde::{Deserialize, Serialize};

use crate::calls::{Call, CloudOp, Recorder};
use crate::ids::SplitMix64;
use nodewright_core::clock::VirtualClock;

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

/// A subnet node classes may select with `subnetSelectorTerms` (by `id` or `tags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimSubnet {
    pub id: String,
    pub zone: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// An image's CPU architecture, as EC2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImageArch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl ImageArch {
    /// Kubernetes' name for it (`kubernetes.io/arch`).
    pub fn kube(self) -> &'static str {
        match self {
            ImageArch::X86_64 => "amd64",
            ImageArch::Arm64 => "arm64",
        }
    }
}

/// An image node classes may select with `amiSelectorTerms` other than an alias (by `id`,
/// `name` with `*` and `?` wildcards, `owner` or `tags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimImage {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub architecture: ImageArch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// What node classes can select. An absent list is the default world: every node class has a
/// subnet in every zone, and every AMI selection finds an image for every architecture. An
/// alias (`al2023@latest`) always resolves for every architecture, as EKS publishes its
/// optimized AMIs for both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudWorld {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<SimSubnet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<SimImage>>,
}

impl CloudWorld {
    /// The zones of the subnets the node class selects; `None` for every zone.
    fn zones(&self, nodeclass: &Ec2NodeClass) -> PortResult<Option<BTreeSet<String>>> {
        let Some(subnets) = &self.subnets else {
            return Ok(None);
        };
        let terms = &nodeclass.spec.subnet_selector_terms;
        if terms.iter().any(|t| t.id.is_none() && t.tags.is_empty()) {
            return Err(invalid_terms("a subnetSelectorTerm must set id or tags"));
        }
        let selects = |s: &SimSubnet, t: &SelectorTerm| {
            t.id.as_ref().is_none_or(|id| *id == s.id) && tags_match(&t.tags, &s.tags)
        };
        Ok(Some(
            subnets
                .iter()
                .filter(|s| terms.iter().any(|t| selects(s, t)))
                .map(|s| s.zone.clone())
                .collect(),
        ))
    }

    /// The image the node class's AMI selection resolves to for each architecture: an alias
    /// to EKS's release (`ami-al2023-amd64-r3` for `al2023@latest` at release 3, the version
    /// itself when pinned), explicit terms to the last matching image of each architecture
    /// (as EC2 resolves them to the newest), or a fixed custom image in the default world.
    fn images_for(
        &self,
        nodeclass: &Ec2NodeClass,
        release: u32,
    ) -> PortResult<BTreeMap<&'static str, String>> {
        const ARCHES: [&str; 2] = ["amd64", "arm64"];
        if let Some(alias) = nodeclass
            .spec
            .ami_selector_terms
            .iter()
            .find_map(|t| t.alias.as_deref())
        {
            let (family, version) = alias.split_once('@').unwrap_or((alias, "latest"));
            let version = if version == "latest" {
                format!("r{release}")
            } else {
                version.to_string()
            };
            return Ok(ARCHES
                .iter()
                .map(|a| (*a, format!("ami-{}-{a}-{version}", family.to_ascii_lowercase())))
                .collect());
        }
        let Some(images) = &self.images else {
            return Ok(ARCHES.iter().map(|a| (*a, format!("ami-custom-{a}"))).collect());
        };
        self.arches(nodeclass)?;
        let terms = &nodeclass.spec.ami_selector_terms;
        let mut out = BTreeMap::new();
        for i in images {
            let selected = terms.iter().any(|t| {
                t.id.as_ref().is_none_or(|id| *id == i.id)
                    && t.name.as_ref().is_none_or(|n| wildcard_match(n, &i.name))
                    && t.owner.as_ref().is_none_or(|o| i.owner.as_ref() == Some(o))
                    && tags_match(&t.tags, &i.tags)
            });
            if selected {
                out.insert(i.architecture.kube(), i.id.clone());
            }
        }
        Ok(out)
    }

    /// The Kubernetes architectures the node class's AMI selection has an image for; `None`
    /// for every architecture.
    fn arches(&self, nodeclass: &Ec2NodeClass) -> PortResult<Option<BTreeSet<&'static str>>> {
        let terms = &nodeclass.spec.ami_selector_terms;
        // An alias decides alone, as on EC2.
        let Some(images) = self
            .images
            .as_ref()
            .filter(|_| terms.iter().all(|t| t.alias.is_none()))
        else {
            return Ok(None);
        };
        for t in terms {
            if t.ssm_parameter.is_some() {
                return Err(invalid_terms(
                    "amiSelectorTerms.ssmParameter is not supported yet",
                ));
            }
            if t.id.is_none() && t.name.is_none() && t.tags.is_empty() {
                return Err(invalid_terms(
                    "an amiSelectorTerm must set alias, id, name or tags",
                ));
            }
        }
        let selects = |i: &SimImage, t: &AmiSelectorTerm| {
            t.id.as_ref().is_none_or(|id| *id == i.id)
                && t.name.as_ref().is_none_or(|n| wildcard_match(n, &i.name))
                && t.owner.as_ref().is_none_or(|o| i.owner.as_ref() == Some(o))
                && tags_match(&t.tags, &i.tags)
        };
        Ok(Some(
            images
                .iter()
                .filter(|i| terms.iter().any(|t| selects(i, t)))
                .map(|i| i.architecture.kube())
                .collect(),
        ))
    }
}

/// The same words the EC2 adapter uses; the round names the node class.
fn invalid_terms(message: &str) -> PortError {
    PortError::new(ErrorKind::Invalid, message)
}

/// A selector term's tags against an object's: every key present, with the value unless `*`.
fn tags_match(wanted: &BTreeMap<String, String>, tags: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(k, v)| tags.get(k).is_some_and(|have| v == "*" || have == v))
}

/// EC2's filter wildcards: `*` any run of characters, `?` any one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Greedy matching with backtracking to the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
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

/// An instance profile the cloud made for a node class that names a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimProfile {
    pub nodeclass: String,
    pub role: String,
    pub created_at: Millis,
}

#[derive(Debug)]
struct CloudState {
    /// In launch order, so that everything iterating them is deterministic.
    instances: Vec<SimInstance>,
    by_id: BTreeMap<String, usize>,
    by_claim: BTreeMap<String, usize>,
    /// Catalogs built so far, by the node settings they were built for.
    catalogs: Vec<(NodeSettings, Arc<Catalog>)>,
    world: CloudWorld,
    /// Catalogs narrowed to what node classes can launch, by settings, zones and architectures.
    launchable: Vec<(Launchable, Arc<Catalog>)>,
    out_of_capacity: Vec<OfferingPattern>,
    capacity_failures: Vec<CapacityFailure>,
    /// Instance profiles made for node classes' roles, by name.
    profiles: BTreeMap<String, SimProfile>,
    /// EKS's AMI release that `@latest` aliases resolve to; [`SimCloud::release_ami`] publishes
    /// the next one.
    ami_release: u32,
    rng: SplitMix64,
    recorder: Recorder<CloudOp>,
}

/// What a node class can launch, as a cache key.
#[derive(Debug, Clone, PartialEq)]
struct Launchable {
    settings: NodeSettings,
    zones: Option<BTreeSet<String>>,
    arches: Option<BTreeSet<&'static str>>,
}

/// EC2 in memory. Launches take the first override with capacity, are idempotent per claim id
/// (as CreateFleet is per client token) and tag the instance with [`CLAIM_TAG`]; terminating an
/// instance that is gone is `Ok`; offerings declared out of capacity fail with
/// `InsufficientCapacity` naming them. A node class's catalog holds only the offerings in zones
/// of its subnets, of types with an image for their architecture ([`CloudWorld`]); a launch
/// treats any other offering as one without capacity.
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
                world: CloudWorld::default(),
                launchable: Vec::new(),
                out_of_capacity: Vec::new(),
                capacity_failures: Vec::new(),
                profiles: BTreeMap::new(),
                ami_release: 1,
                rng: SplitMix64::new(seed),
                recorder: Recorder::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, CloudState> {
        // Every mutation completes under the lock, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the subnets and images node classes select.
    pub fn set_world(&self, world: CloudWorld) {
        let mut state = self.state();
        state.world = world;
        state.launchable.clear();
    }

    /// EKS publishes a new release of its optimized AMIs: `@latest` aliases resolve to it from
    /// now on (pinned aliases and explicit images do not change). Returns the release.
    pub fn release_ami(&self) -> u32 {
        let mut state = self.state();
        state.ami_release += 1;
        state.ami_release
    }

    /// The image the node class launches for each Kubernetes architecture it has one for.
    fn images_now(&self, nodeclass: &Ec2NodeClass) -> PortResult<BTreeMap<&'static str, String>> {
        let state = self.state();
        state.world.images_for(nodeclass, state.ami_release)
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

    /// The instance profiles made for node classes' roles and not deleted, by name.
    pub fn instance_profiles(&self) -> BTreeMap<String, SimProfile> {
        self.state().profiles.clone()
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
                launch_template: None,
                unavailable: Vec::new(),
            });
        }
        if request.overrides.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!("launch for claim {}: no overrides", claim.id),
            ));
        }
        let catalog = launchable_for(&mut state, &request.nodeclass)?;
        // As on EC2, the node class's role gets a profile of nodewright's before the launch.
        let profile = match managed_profile(&request.nodeclass) {
            Some(name) => {
                let role = request.nodeclass.spec.role.clone().unwrap_or_default();
                let now = self.clock.now();
                let entry = state.profiles.entry(name.clone()).or_insert_with(|| SimProfile {
                    nodeclass: request.nodeclass.name().to_string(),
                    role: role.clone(),
                    created_at: now,
                });
                entry.role = role;
                Some(name)
            }
            None => request.nodeclass.spec.instance_profile.clone(),
        };
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
            let arch = it
                .labels
                .get(labels::ARCH)
                .map(String::as_str)
                .unwrap_or_default();
            let image_id = state
                .world
                .images_for(&request.nodeclass, state.ami_release)?
                .remove(arch);
            let instance = Instance {
                image_id,
                id: id.clone(),
                instance_type: o.instance_type.clone(),
                zone: o.zone.clone(),
                capacity_type: o.capacity_type,
                state: InstanceState::Running,
                launched_at: self.clock.now(),
                tags,
                claim_id: Some(claim.id.clone()),
                private_dns_name: Some(dns),
                instance_profile: profile.clone(),
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
                launch_template: None,
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
                record.instance.state = InstanceState::Terminated;
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

    fn list_profiles_now(&self) -> PortResult<Vec<InstanceProfile>> {
        let mut state = self.state();
        state.recorder.call(CloudOp::ListInstanceProfiles, "")?;
        Ok(state
            .profiles
            .iter()
            .map(|(name, p)| InstanceProfile {
                name: name.clone(),
                nodeclass: Some(p.nodeclass.clone()),
                roles: vec![p.role.clone()],
                created_at: p.created_at,
            })
            .collect())
    }

    fn delete_profile_now(&self, name: &str) -> PortResult<()> {
        let mut state = self.state();
        state.recorder.call(CloudOp::DeleteInstanceProfile, name)?;
        state.profiles.remove(name);
        Ok(())
    }

    fn catalog_now(&self, nodeclass: &Ec2NodeClass) -> PortResult<Catalog> {
        let mut state = self.state();
        state.recorder.call(CloudOp::Catalog, nodeclass.name())?;
        Ok((*launchable_for(&mut state, nodeclass)?).clone())
    }
}

/// The profile the simulated cloud makes for a node class that names a role.
fn managed_profile(nodeclass: &Ec2NodeClass) -> Option<String> {
    (nodeclass.spec.instance_profile.is_none() && nodeclass.spec.role.is_some())
        .then(|| format!("nodewright_sim_{}", nodeclass.name()))
}

/// The catalog of what the node class can launch: the embedded catalog for its settings,
/// narrowed to the zones of its subnets and the architectures of its images.
fn launchable_for(state: &mut CloudState, nodeclass: &Ec2NodeClass) -> PortResult<Arc<Catalog>> {
    let settings = NodeSettings::for_nodeclass(nodeclass).map_err(|e| {
        PortError::new(
            ErrorKind::Invalid,
            format!("EC2NodeClass {}: {e}", nodeclass.name()),
        )
        .with_source(e)
    })?;
    let key = Launchable {
        zones: state.world.zones(nodeclass)?,
        arches: state.world.arches(nodeclass)?,
        settings,
    };
    if let Some((_, catalog)) = state.launchable.iter().find(|(k, _)| *k == key) {
        return Ok(catalog.clone());
    }
    let full = catalog_for(&mut state.catalogs, &key.settings)?;
    let catalog = if key.zones.is_none() && key.arches.is_none() {
        full
    } else {
        let mut narrowed = (*full).clone();
        if let Some(arches) = &key.arches {
            narrowed.types.retain(|t| {
                t.labels
                    .get(labels::ARCH)
                    .is_some_and(|a| arches.contains(a.as_str()))
            });
        }
        if let Some(zones) = &key.zones {
            narrowed.retain_offerings(|_, o| zones.contains(&o.zone));
        }
        Arc::new(narrowed)
    };
    state.launchable.push((key, catalog.clone()));
    Ok(catalog)
}

/// The embedded catalog for node settings, built once per distinct settings.
fn catalog_for(
    cache: &mut Vec<(NodeSettings, Arc<Catalog>)>,
    settings: &NodeSettings,
) -> PortResult<Arc<Catalog>> {
    if let Some((_, catalog)) = cache.iter().find(|(s, _)| s == settings) {
        return Ok(catalog.clone());
    }
    let catalog = embedded::catalog(settings).map_err(|e| {
        PortError::new(ErrorKind::Invalid, format!("the embedded catalog: {e}")).with_source(e)
    })?;
    let catalog = Arc::new(catalog);
    cache.push((settings.clone(), catalog.clone()));
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

    fn managed_instance_profile(&self, nodeclass: &Ec2NodeClass) -> Option<String> {
        managed_profile(nodeclass)
    }

    fn list_instance_profiles(&self) -> impl Future<Output = PortResult<Vec<InstanceProfile>>> + Send {
        std::future::ready(self.list_profiles_now())
    }

    fn delete_instance_profile(&self, name: &str) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.delete_profile_now(name))
    }

    fn images(&self, nodeclass: &Ec2NodeClass) -> impl Future<Output = PortResult<BTreeSet<String>>> + Send {
        std::future::ready(
            self.images_now(nodeclass)
                .map(|by_arch| by_arch.into_values().collect()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_ec2_filters_do() {
        assert!(wildcard_match(
            "amazon-eks-node-al2023-x86_64-*",
            "amazon-eks-node-al2023-x86_64-standard"
        ));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(wildcard_match("*-v2024*07", "node-v20240807"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("*-arm64-*", "node-x86_64-standard"));
        assert!(!wildcard_match("exact", "exactly"));
    }
}
