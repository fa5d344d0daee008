//! Ports: the small traits the core owns and the I/O side implements (AWS, Kubernetes, the
//! embedded simulator). Each method's doc states its contract; adapters must honour it and
//! tests of adapters check it.
//!
//! Methods return `impl Future + Send` rather than using `async fn` so that callers can run them
//! on a multi-threaded runtime; the core itself never depends on a runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use thiserror::Error;

use crate::api::{Ec2NodeClass, NodePool};
use crate::catalog::{CapacityType, Catalog};
use crate::nodeclaim::{AuditRecord, NodeClaim};
use crate::pod::{Millis, Node, Pod, Taint};

/// The kinds of failure callers branch on. Adapters map their own errors to these in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object does not exist (an instance already terminated counts as done).
    NotFound,
    /// A conditional write lost: re-read and retry, or give up.
    Conflict,
    /// The cloud has no capacity for the requested offerings right now.
    InsufficientCapacity,
    /// Rate limited; retry with backoff.
    Throttled,
    /// A policy forbids it now (an eviction a PodDisruptionBudget blocks); try later.
    Forbidden,
    /// Credentials or permissions are wrong; retrying will not help.
    Unauthorized,
    /// The request itself is wrong (bad configuration or input); retrying will not help.
    Invalid,
    /// A transient failure (network, 5xx); retry.
    Unavailable,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Conflict | ErrorKind::Forbidden
        )
    }
}

/// An offering the cloud could not fill: (instance type, zone, capacity type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfferingKey {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
}

/// A failure at a port.
#[derive(Debug, Error)]
#[error("{kind:?}: {message}")]
pub struct PortError {
    pub kind: ErrorKind,
    pub message: String,
    /// For `InsufficientCapacity`: the offerings that could not be filled.
    pub unavailable: Vec<OfferingKey>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PortError {
            kind,
            message: message.into(),
            unavailable: Vec::new(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn insufficient_capacity(message: impl Into<String>, unavailable: Vec<OfferingKey>) -> Self {
        PortError {
            kind: ErrorKind::InsufficientCapacity,
            message: message.into(),
            unavailable,
            source: None,
        }
    }
}

pub type PortResult<T> = std::result::Result<T, PortError>;

/// The time. Everything in the core takes time as an argument; this is where it comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// Where new claim ids come from; randomness is injected so that tests and the simulator are
/// deterministic.
pub trait IdSource: Send + Sync {
    /// A short lowercase suffix unique within the cluster (`7f3k2`).
    fn next_suffix(&self) -> String;
}

/// An offering the store holds as out of capacity, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct UnavailableMark {
    pub offering: OfferingKey,
    pub until: Millis,
}

/// One offering to try for a launch, in the order given (cheapest first).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchOverride {
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price: f64,
}

/// Everything the cloud needs to launch one instance for one claim.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub claim: NodeClaim,
    pub nodeclass: Ec2NodeClass,
    /// At most 60 instance types, cheapest first; all of one capacity type; none the caller
    /// knows to be out of capacity (the cloud tries them as given and remembers nothing).
    pub overrides: Vec<LaunchOverride>,
}

/// An instance's state, as EC2 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    /// EC2's name for a state; a name EC2 adds later reads as `Pending`, which every decision
    /// treats as an instance that is still there.
    pub fn from_ec2(name: &str) -> InstanceState {
        match name {
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => InstanceState::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Shutting down or terminated: for every decision, the instance is gone.
    pub fn is_gone(self) -> bool {
        matches!(self, InstanceState::ShuttingDown | InstanceState::Terminated)
    }
}

/// An instance as the cloud reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    pub state: InstanceState,
    pub launched_at: Millis,
    pub tags: BTreeMap<String, String>,
    /// The claim this instance belongs to (tag `nodewright.io/nodeclaim`).
    pub claim_id: Option<String>,
    pub private_dns_name: Option<String>,
    /// The AMI it runs, when known.
    pub image_id: Option<String>,
    /// The name of the instance profile it runs with, when known.
    pub instance_profile: Option<String>,
}

/// What an EC2NodeClass's selectors resolve to now (for its status).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeClassResolution {
    pub subnets: Vec<ResolvedSubnet>,
    pub security_groups: Vec<String>,
    pub amis: Vec<ResolvedImage>,
    pub instance_profile: Option<String>,
}

/// A subnet a node class selects, as its status lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedSubnet {
    pub id: String,
    pub zone: String,
}

/// An AMI a node class resolves to, as its status lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedImage {
    pub id: String,
    pub name: String,
}

/// A launch template of this cluster's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchTemplate {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// An instance profile nodewright made for a node class that names a `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile {
    pub name: String,
    /// The node class it was made for (its `karpenter.k8s.aws/ec2nodeclass` tag), if tagged.
    pub nodeclass: Option<String>,
    /// The roles it holds (IAM allows one).
    pub roles: Vec<String>,
    pub created_at: Millis,
}

/// The result of a launch: the instance, and offerings that failed before it was found.
#[derive(Debug, Clone)]
pub struct Launched {
    pub instance: Instance,
    pub price: f64,
    /// The name of the launch template the instance came from, where there is one.
    pub launch_template: Option<String>,
    /// Offerings tried first and found out of capacity (the caller marks them unavailable).
    pub unavailable: Vec<OfferingKey>,
}

/// The tag on every instance that names its claim.
pub const CLAIM_TAG: &str = "nodewright.io/nodeclaim";

/// EC2 (or the embedded cloud).
pub trait Cloud: Send + Sync {
    /// Launches one instance for the claim from the overrides, or fails with
    /// `InsufficientCapacity` listing the offerings that could not be filled. Idempotent per
    /// claim id: launching the same claim twice returns the same instance. The instance is
    /// tagged with [`CLAIM_TAG`] = claim id.
    fn launch(&self, request: &LaunchRequest) -> impl Future<Output = PortResult<Launched>> + Send;

    /// Terminates an instance. An instance that is already gone counts as done (`Ok`).
    fn terminate(&self, instance_id: &str) -> impl Future<Output = PortResult<()>> + Send;

    /// Every instance of this cluster that is not terminated, whatever its claim state.
    fn list_instances(&self) -> impl Future<Output = PortResult<Vec<Instance>>> + Send;

    /// The AMIs the node class's `amiSelectorTerms` resolve to now (for every architecture): a
    /// node running another has drifted. Empty when it cannot tell, which drifts nothing.
    fn images(&self, nodeclass: &Ec2NodeClass) -> impl Future<Output = PortResult<BTreeSet<String>>> + Send {
        let _ = nodeclass;
        std::future::ready(Ok(BTreeSet::new()))
    }

    /// What the node class's subnet, security group and AMI selectors resolve to now, and its
    /// instance profile; `None` where the cloud does not say.
    fn resolve_nodeclass(
        &self,
        nodeclass: &Ec2NodeClass,
    ) -> impl Future<Output = PortResult<Option<NodeClassResolution>>> + Send {
        let _ = nodeclass;
        std::future::ready(Ok(None))
    }

    /// This cluster's launch templates (none where the cloud has no such thing).
    fn list_launch_templates(&self) -> impl Future<Output = PortResult<Vec<LaunchTemplate>>> + Send {
        std::future::ready(Ok(Vec::new()))
    }

    /// Deletes a launch template; one already gone counts as done.
    fn delete_launch_template(&self, id: &str) -> impl Future<Output = PortResult<()>> + Send {
        let _ = id;
        std::future::ready(Ok(()))
    }

    /// The name of the instance profile the cloud makes (and launches with) for a node class
    /// that names a `role`; `None` for one that names its `instanceProfile`, or where the cloud
    /// makes none. Pure: no call is made.
    fn managed_instance_profile(&self, nodeclass: &Ec2NodeClass) -> Option<String> {
        let _ = nodeclass;
        None
    }

    /// The instance profiles the cloud made for this cluster's node classes (none where the
    /// cloud makes none).
    fn list_instance_profiles(&self) -> impl Future<Output = PortResult<Vec<InstanceProfile>>> + Send {
        std::future::ready(Ok(Vec::new()))
    }

    /// Deletes one of this cluster's instance profiles (its role removed first); one already
    /// gone counts as done.
    fn delete_instance_profile(&self, name: &str) -> impl Future<Output = PortResult<()>> + Send {
        let _ = name;
        std::future::ready(Ok(()))
    }

    /// The instance catalog for a node class (allocatable depends on its kubelet settings).
    /// Only what it can launch: offerings in zones of its selected subnets, of types whose
    /// architecture one of its AMIs supports, no type without offerings; failing to resolve
    /// subnets or AMIs is an error, never the unfiltered catalog.
    fn catalog(&self, nodeclass: &Ec2NodeClass) -> impl Future<Output = PortResult<Catalog>> + Send;
}

/// A DaemonSet, as the pod its template would make (for overhead per node).
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSet {
    pub namespace: String,
    pub name: String,
    pub pod: Pod,
}

/// What an eviction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    Evicted,
    /// A PodDisruptionBudget forbids it now (HTTP 429).
    Blocked,
    /// The pod is already gone.
    Gone,
}

/// The Kubernetes API (or the embedded cluster).
pub trait Cluster: Send + Sync {
    /// Pods the kube-scheduler could not place: unbound, phase Pending, PodScheduled=False with
    /// reason Unschedulable, not owned by a DaemonSet or Node. Adapters filter client-side too.
    fn list_pending_pods(&self) -> impl Future<Output = PortResult<Vec<Pod>>> + Send;

    /// Pods bound to nodes and not terminal (they hold node capacity).
    fn list_bound_pods(&self) -> impl Future<Output = PortResult<Vec<Pod>>> + Send;

    fn list_nodes(&self) -> impl Future<Output = PortResult<Vec<Node>>> + Send;

    fn list_daemonsets(&self) -> impl Future<Output = PortResult<Vec<DaemonSet>>> + Send;

    /// PodDisruptionBudgets (`policy/v1`); one that cannot be read is skipped and logged.
    fn list_pdbs(&self) -> impl Future<Output = PortResult<Vec<crate::pdb::PodDisruptionBudget>>> + Send;

    /// Every namespace's labels, for pod (anti-)affinity namespace selectors. A cluster that
    /// cannot tell has none (a non-empty namespace selector then selects nothing).
    fn list_namespace_labels(
        &self,
    ) -> impl Future<Output = PortResult<BTreeMap<String, BTreeMap<String, String>>>> + Send {
        std::future::ready(Ok(BTreeMap::new()))
    }

    /// PersistentVolumeClaims, PersistentVolumes and StorageClasses, for the zones pods'
    /// volumes allow (listed only when some pod has a claim). A cluster without them has none.
    fn list_volumes(&self) -> impl Future<Output = PortResult<crate::volumes::Volumes>> + Send {
        std::future::ready(Ok(crate::volumes::Volumes::default()))
    }

    /// NodePools; ones that fail validation are returned as errors in the second list so that
    /// one bad pool does not stop the others.
    fn list_nodepools(&self) -> impl Future<Output = PortResult<(Vec<NodePool>, Vec<String>)>> + Send;

    fn list_nodeclasses(&self) -> impl Future<Output = PortResult<(Vec<Ec2NodeClass>, Vec<String>)>> + Send;

    /// Records events (`events.k8s.io/v1`): an event whose name already exists counts once
    /// more in its `series`. Returns how many were written; one that fails does not stop the
    /// others, and the first error is returned after all were tried.
    fn record_events(
        &self,
        events: &[crate::events::KubeEvent],
    ) -> impl Future<Output = PortResult<usize>> + Send {
        let _ = events;
        std::future::ready(Ok(0))
    }

    /// Writes the `status` of NodePools and EC2NodeClasses (the status subresource); one that
    /// fails does not stop the others, and the first error is returned after all were tried.
    fn update_statuses(
        &self,
        updates: &[crate::config_status::StatusUpdate],
    ) -> impl Future<Output = PortResult<usize>> + Send {
        let _ = updates;
        std::future::ready(Ok(0))
    }

    /// Adds the taint (if absent) and marks the node unschedulable. `NotFound` if the node is gone.
    fn cordon(&self, node: &str, taint: &Taint) -> impl Future<Output = PortResult<()>> + Send;

    /// Evicts through the Eviction API, honouring PodDisruptionBudgets.
    fn evict(&self, namespace: &str, name: &str) -> impl Future<Output = PortResult<Eviction>> + Send;

    /// Removes nodewright's [`TERMINATION_FINALIZER`](crate::labels::TERMINATION_FINALIZER)
    /// and deletes the Node object, so that it goes at once. A node already gone counts as done.
    fn delete_node(&self, node: &str) -> impl Future<Output = PortResult<()>> + Send;

    /// Changes a node as [`NodePatch`] says, on a fresh read (a concurrent writer is not
    /// overwritten). `NotFound` if the node is gone.
    fn patch_node(&self, node: &str, patch: &NodePatch) -> impl Future<Output = PortResult<()>> + Send;
}

/// A change to a registered Node: labels merged in, taints added where absent (never removed:
/// the agents that own startup taints remove them, and a stale list must not put them back),
/// and optionally nodewright's termination finalizer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodePatch {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub finalizer: bool,
}

/// A held lease: the fencing token orders holders; a write carrying an older token loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub token: u64,
    pub expires_at: Millis,
}

/// The NodeClaim store (DynamoDB, or in memory).
pub trait ClaimStore: Send + Sync {
    /// The same store with every claim create and update conditional on `lease` still being
    /// the current one: a holder that lost its lease gets `Conflict` instead of overwriting its
    /// successor's claims.
    fn fenced(&self, lease: &Lease) -> Self
    where
        Self: Sized;

    /// Creates the claim with version 1. `Conflict` if a claim with that id exists.
    fn create(&self, claim: &NodeClaim) -> impl Future<Output = PortResult<NodeClaim>> + Send;

    /// Writes the claim if the stored version equals `claim.version`, storing version + 1 and
    /// returning the stored claim. `Conflict` when the version moved, `NotFound` if absent.
    fn update(&self, claim: &NodeClaim) -> impl Future<Output = PortResult<NodeClaim>> + Send;

    fn get(&self, id: &str) -> impl Future<Output = PortResult<Option<NodeClaim>>> + Send;

    /// Every claim not yet terminated.
    fn list_live(&self) -> impl Future<Output = PortResult<Vec<NodeClaim>>> + Send;

    fn find_by_instance(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = PortResult<Option<NodeClaim>>> + Send;

    /// Takes the cluster's lease if it is free or expired at `now`; `Conflict` if someone else
    /// holds it. Each successful acquisition gets a larger fencing token.
    fn acquire_lease(
        &self,
        holder: &str,
        now: Millis,
        ttl_ms: Millis,
    ) -> impl Future<Output = PortResult<Lease>> + Send;

    /// Releases the lease if still held with this token; a lease already lost is not an error.
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = PortResult<()>> + Send;

    fn audit(&self, record: &AuditRecord) -> impl Future<Output = PortResult<()>> + Send;

    /// Records an offering as unavailable until `until` where every function sees it (an
    /// interrupted spot offering, seen by the interruption function, must steer the
    /// provisioner's next launch). A later `until` wins.
    fn mark_unavailable(
        &self,
        key: &OfferingKey,
        until: Millis,
    ) -> impl Future<Output = PortResult<()>> + Send;

    /// The offerings recorded unavailable whose time has not passed at `now`, with their end.
    fn list_unavailable(&self, now: Millis) -> impl Future<Output = PortResult<Vec<UnavailableMark>>> + Send;
}
