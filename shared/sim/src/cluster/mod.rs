//! The embedded cluster: the Kubernetes API as the provisioner sees it, plus the controllers a
//! real cluster runs beside it — a ReplicaSet controller that keeps each workload at its
//! replica count and recreates evicted pods, and a DaemonSet controller that puts a daemon pod
//! on every node it matches. Its kube-scheduler (`scheduling.rs`) runs the shared one in
//! [`crate::kube_scheduler`].

mod pdbs;
mod port;
mod scheduling;
mod volumes;
mod workloads;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use nodewright_core::api::{Ec2NodeClass, NodePool};
use nodewright_core::events::KubeEvent;
use nodewright_core::pdb::PodDisruptionBudget;
use nodewright_core::pod::{Millis, Node, Pod};
use nodewright_core::ports::{Clock, DaemonSet, ErrorKind, PortError, PortResult};
use nodewright_core::volumes::Volumes;

use crate::calls::{Call, ClusterOp, Recorder};
use crate::clock::VirtualClock;
use crate::ids::SplitMix64;
pub use scheduling::SchedulingPass;
use workloads::owned_by_workload;

/// Where a pod is, as its `PodScheduled` condition and `nodeName` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodStatus {
    /// Not yet looked at by the kube-scheduler.
    Pending,
    /// `PodScheduled=False, reason Unschedulable`, with the scheduler's message.
    Unschedulable { reason: String },
    /// Bound to `pod.node_name`.
    Bound,
}

/// The life of one (non-daemon) pod, for latency and "never got capacity" accounting.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRecord {
    pub key: String,
    /// The workload that owns it, if any.
    pub workload: Option<String>,
    pub created_at: Millis,
    pub bound_at: Option<Millis>,
    pub node: Option<String>,
    pub deleted_at: Option<Millis>,
}

/// A Deployment (or, `stateful`, a StatefulSet): a pod template and how many replicas to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    /// Pods are `<name>-<ordinal>`, made lowest ordinal first and removed highest first, and a
    /// recreated pod keeps its name and so its volume claims.
    pub stateful: bool,
    /// The pod each replica is made from (name and times are filled in per pod).
    pub template: Pod,
}

#[derive(Debug)]
pub(crate) struct PodEntry {
    pub(crate) pod: Pod,
    pub(crate) status: PodStatus,
    /// Index into the history; `None` for daemon pods.
    record: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct ClusterState {
    /// By `namespace/name`.
    pub(crate) pods: BTreeMap<String, PodEntry>,
    pub(crate) nodes: BTreeMap<String, Node>,
    /// Nodes holding nodewright's termination finalizer: deleting one only marks it.
    finalizers: BTreeSet<String>,
    /// Non-daemon pods bound per node, kept as pods bind and go: read every tick.
    workload_pods: BTreeMap<String, usize>,
    /// Something changed that may let a pending pod fit: the kube-scheduler retries.
    pub(crate) dirty: bool,
    /// Pods Unschedulable after the last scheduling pass.
    pub(crate) unschedulable: usize,
    daemonsets: Vec<DaemonSet>,
    pdbs: Vec<PodDisruptionBudget>,
    /// Times a budget went from kept to broken by a deletion of a pod it covers.
    pdb_violations: usize,
    nodepools: Vec<NodePool>,
    nodeclasses: Vec<Ec2NodeClass>,
    /// Claims, volumes and classes: volumes are made as the EBS CSI driver makes them (see
    /// [`ClusterState::provision_volumes`]).
    pub(crate) volumes: Volumes,
    /// Events recorded, by name, with how many times each was recorded.
    events: BTreeMap<String, (KubeEvent, u32)>,
    workloads: BTreeMap<String, Workload>,
    history: Vec<PodRecord>,
    rng: SplitMix64,
    recorder: Recorder<ClusterOp>,
}

/// Kubernetes in memory. `list_pending_pods` returns only pods the kube-scheduler marked
/// Unschedulable; eviction (no PodDisruptionBudgets yet: it always succeeds) deletes the pod and
/// its workload recreates it as a new pending pod; deleting a node deletes its pods the same
/// way; cordon, patch and delete of a missing node behave as the API server does.
#[derive(Debug)]
pub struct SimCluster {
    pub(crate) clock: Arc<VirtualClock>,
    state: Mutex<ClusterState>,
}

impl SimCluster {
    pub fn new(clock: Arc<VirtualClock>, seed: u64) -> Self {
        SimCluster {
            clock,
            state: Mutex::new(ClusterState {
                pods: BTreeMap::new(),
                nodes: BTreeMap::new(),
                finalizers: BTreeSet::new(),
                workload_pods: BTreeMap::new(),
                dirty: false,
                unschedulable: 0,
                daemonsets: Vec::new(),
                pdbs: Vec::new(),
                pdb_violations: 0,
                nodepools: Vec::new(),
                nodeclasses: Vec::new(),
                volumes: Volumes::default(),
                events: BTreeMap::new(),
                workloads: BTreeMap::new(),
                history: Vec::new(),
                rng: SplitMix64::new(seed),
                recorder: Recorder::default(),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ClusterState> {
        // Every mutation completes under the lock, so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates or replaces a NodePool (by name).
    pub fn apply_nodepool(&self, nodepool: NodePool) {
        let mut state = self.state();
        state.nodepools.retain(|p| p.name() != nodepool.name());
        state.nodepools.push(nodepool);
    }

    /// Creates or replaces an EC2NodeClass (by name).
    pub fn apply_nodeclass(&self, nodeclass: Ec2NodeClass) {
        let mut state = self.state();
        state.nodeclasses.retain(|c| c.name() != nodeclass.name());
        state.nodeclasses.push(nodeclass);
    }

    /// Deletes an EC2NodeClass; false if there was none of that name.
    pub fn delete_nodeclass(&self, name: &str) -> bool {
        let mut state = self.state();
        let before = state.nodeclasses.len();
        state.nodeclasses.retain(|c| c.name() != name);
        state.nodeclasses.len() != before
    }

    /// Events recorded so far, each with its count (as `series.count` on a real cluster).
    pub fn events(&self) -> Vec<(KubeEvent, u32)> {
        self.state().events.values().cloned().collect()
    }

    pub fn apply_daemonset(&self, daemonset: DaemonSet) {
        let mut state = self.state();
        state
            .daemonsets
            .retain(|d| (&d.namespace, &d.name) != (&daemonset.namespace, &daemonset.name));
        state.daemonsets.push(daemonset);
    }

    /// Creates a pod as given (a bare pod: nothing recreates it). `Conflict` if the name is
    /// taken.
    pub fn create_pod(&self, mut pod: Pod) -> PortResult<()> {
        let now = self.clock.now();
        let mut state = self.state();
        let key = pod.key();
        if state.pods.contains_key(&key) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("pod {key} already exists"),
            ));
        }
        pod.created_at = now;
        state.insert_pod(pod, None, now);
        Ok(())
    }

    /// A node joins (what the kubelet does); the DaemonSet controller adds its pods at once.
    /// `Conflict` if a node of that name exists.
    pub fn register_node(&self, node: Node) -> PortResult<()> {
        let now = self.clock.now();
        let mut state = self.state();
        if state.nodes.contains_key(&node.name) {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("node {} already exists", node.name),
            ));
        }
        let daemons: Vec<Pod> = state
            .daemonsets
            .iter()
            .filter(|d| d.pod.matches_node_labels(&node.labels) && d.pod.tolerates(&node.taints))
            .map(|d| d.pod.clone())
            .collect();
        for mut pod in daemons {
            pod.name = state.unique_name(&pod.namespace, &pod.name);
            pod.node_name = Some(node.name.clone());
            pod.created_at = now;
            let key = pod.key();
            state.pods.insert(
                key,
                PodEntry {
                    pod,
                    status: PodStatus::Bound,
                    record: None,
                },
            );
        }
        state.nodes.insert(node.name.clone(), node);
        state.dirty = true;
        Ok(())
    }

    pub fn node_count(&self) -> usize {
        self.state().nodes.len()
    }

    /// NodePools as applied, valid or not.
    pub fn nodepools(&self) -> Vec<NodePool> {
        self.state().nodepools.clone()
    }

    /// How many non-daemon pods are bound to each node that has any (cheaper than listing the
    /// pods, for checks that run every tick).
    pub fn workload_pods_per_node(&self) -> BTreeMap<String, usize> {
        self.state().workload_pods.clone()
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.state().nodes.values().cloned().collect()
    }

    pub fn node(&self, name: &str) -> Option<Node> {
        self.state().nodes.get(name).cloned()
    }

    /// Every pod with its status, daemon pods included, by `namespace/name`.
    pub fn pods(&self) -> Vec<(Pod, PodStatus)> {
        self.state()
            .pods
            .values()
            .map(|e| (e.pod.clone(), e.status.clone()))
            .collect()
    }

    pub fn pod(&self, key: &str) -> Option<(Pod, PodStatus)> {
        self.state()
            .pods
            .get(key)
            .map(|e| (e.pod.clone(), e.status.clone()))
    }

    /// Every non-daemon pod that ever existed, in creation order.
    pub fn pod_history(&self) -> Vec<PodRecord> {
        self.state().history.clone()
    }

    /// The next call of `op` fails with `error`.
    pub fn fail_next(&self, op: ClusterOp, error: PortError) {
        self.state().recorder.fail_next(op, error);
    }

    pub fn calls(&self) -> Vec<Call<ClusterOp>> {
        self.state().recorder.calls().to_vec()
    }

    /// `kubectl delete node`: a node holding nodewright's finalizer is only marked deleting
    /// (its deletionTimestamp set) and stays until nodewright removes the finalizer; any other
    /// node goes at once. False if there is no such node.
    pub fn delete_node_as_user(&self, node: &str) -> bool {
        let now = self.clock.now();
        let mut state = self.state();
        if state.finalizers.contains(node) {
            return match state.nodes.get_mut(node) {
                Some(n) => {
                    n.deleting = true;
                    state.dirty = true;
                    true
                }
                None => false,
            };
        }
        state.remove_node(node, now)
    }

    /// Lifts a taint, as the agent that owns a startup taint does once it is ready.
    pub fn remove_taint(&self, node: &str, key: &str) {
        let mut state = self.state();
        if let Some(n) = state.nodes.get_mut(node) {
            n.taints.retain(|t| t.key != key);
            state.dirty = true;
        }
    }
}

impl ClusterState {
    /// Deletes the node and, as the pod garbage collector does, the pods bound to it (their
    /// owners recreate them). False if there was no such node.
    fn remove_node(&mut self, node: &str, now: Millis) -> bool {
        if self.nodes.remove(node).is_none() {
            return false;
        }
        let on_node: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| e.pod.node_name.as_deref() == Some(node))
            .map(|(k, _)| k.clone())
            .collect();
        let kept = self.budgets_kept();
        self.delete_pods(&on_node, now);
        let after = self.budgets_kept();
        self.pdb_violations += kept.iter().zip(&after).filter(|(b, a)| **b && !**a).count();
        self.dirty = true;
        true
    }

    /// `<prefix>-<5 base-36 characters>`, unused in the namespace, as the API server's
    /// `generateName` does.
    fn unique_name(&mut self, namespace: &str, prefix: &str) -> String {
        loop {
            let name = format!("{prefix}-{}", self.rng.base36(5));
            if !self.pods.contains_key(&format!("{namespace}/{name}")) {
                return name;
            }
        }
    }

    fn insert_pod(&mut self, pod: Pod, workload: Option<String>, now: Millis) {
        let key = pod.key();
        self.history.push(PodRecord {
            key: key.clone(),
            workload,
            created_at: now,
            bound_at: None,
            node: None,
            deleted_at: None,
        });
        let record = Some(self.history.len() - 1);
        self.pods.insert(
            key,
            PodEntry {
                pod,
                status: PodStatus::Pending,
                record,
            },
        );
        self.dirty = true;
    }

    pub(crate) fn bind(&mut self, key: &str, node: &str, now: Millis) {
        self.provision_volumes(key, node);
        if let Some(entry) = self.pods.get_mut(key) {
            entry.pod.node_name = Some(node.to_string());
            entry.status = PodStatus::Bound;
            if !entry.pod.is_daemon() {
                *self.workload_pods.entry(node.to_string()).or_default() += 1;
            }
            if let Some(r) = entry.record.and_then(|i| self.history.get_mut(i)) {
                r.bound_at = Some(now);
                r.node = Some(node.to_string());
            }
        }
    }

    fn remove_pod(&mut self, key: &str, now: Millis) -> Option<PodEntry> {
        let entry = self.pods.remove(key)?;
        if let Some(r) = entry.record.and_then(|i| self.history.get_mut(i)) {
            r.deleted_at = Some(now);
        }
        if let Some(node) = entry.pod.node_name.as_ref().filter(|_| !entry.pod.is_daemon())
            && let Some(count) = self.workload_pods.get_mut(node)
        {
            *count -= 1;
            if *count == 0 {
                self.workload_pods.remove(node);
            }
        }
        Some(entry)
    }

    /// Deletes pods, then lets their workloads replace them.
    fn delete_pods(&mut self, keys: &[String], now: Millis) {
        let mut owners = Vec::new();
        for key in keys {
            if let Some(entry) = self.remove_pod(key, now)
                && let Some(owner) = owned_by_workload(&entry.pod)
            {
                owners.push(owner.to_string());
            }
        }
        owners.sort();
        owners.dedup();
        for owner in owners {
            self.reconcile(&owner, now);
        }
        self.dirty = true;
    }
}
