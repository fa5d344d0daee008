//! The embedded cluster: the Kubernetes API as the provisioner sees it, plus the controllers a
//! real cluster runs beside it — a ReplicaSet controller that keeps each workload at its
//! replica count and recreates evicted pods, and a DaemonSet controller that puts a daemon pod
//! on every node it matches. The kube-scheduler is in `kube_scheduler.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use nodewright_core::api::{Ec2NodeClass, NodePool};
use nodewright_core::config_status::{ConfigKind, StatusUpdate};
use nodewright_core::events::KubeEvent;
use nodewright_core::labels;
use nodewright_core::pdb::PodDisruptionBudget;
use nodewright_core::pod::{Millis, Node, Pod, Taint};
use nodewright_core::ports::{
    Clock, Cluster, DaemonSet, ErrorKind, Eviction, NodePatch, PortError, PortResult,
};
use nodewright_core::requirements::{Requirement, Requirements};
use nodewright_core::volumes::{
    PersistentVolume, PersistentVolumeClaim, PodVolumeClaim, StorageClass, VolumeBindingMode, Volumes,
};

use crate::calls::{Call, ClusterOp, Recorder};
use crate::clock::VirtualClock;
use crate::ids::SplitMix64;

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

    /// Adds a DaemonSet; its pods go on nodes that register from now on.
    /// Creates or replaces a PodDisruptionBudget (by namespace and name).
    pub fn apply_pdb(&self, pdb: PodDisruptionBudget) {
        let mut state = self.state();
        state
            .pdbs
            .retain(|p| (&p.namespace, &p.name) != (&pdb.namespace, &pdb.name));
        state.pdbs.push(pdb);
    }

    /// Times a PodDisruptionBudget was broken by a pod deletion (eviction never breaks one;
    /// deleting a node with its pods can).
    pub fn pdb_violations(&self) -> usize {
        self.state().pdb_violations
    }

    /// Events recorded so far, each with its count (as `series.count` on a real cluster).
    pub fn events(&self) -> Vec<(KubeEvent, u32)> {
        self.state().events.values().cloned().collect()
    }

    /// Creates or replaces a StorageClass (by name).
    pub fn apply_storage_class(&self, class: StorageClass) {
        self.state().volumes.add_class(class);
    }

    /// The volume a claim is bound to, and its zone: `(volume, zone)`.
    pub fn claim_volume(&self, namespace: &str, claim: &str) -> Option<(String, String)> {
        let state = self.state();
        let name = state.volumes.claim(namespace, claim)?.volume_name.clone()?;
        let zone = state
            .volumes
            .volume(&name)?
            .node_affinity
            .first()?
            .get(labels::ZONE)?
            .values()
            .first()?
            .clone();
        Some((name, zone))
    }

    pub fn apply_daemonset(&self, daemonset: DaemonSet) {
        let mut state = self.state();
        state
            .daemonsets
            .retain(|d| (&d.namespace, &d.name) != (&daemonset.namespace, &daemonset.name));
        state.daemonsets.push(daemonset);
    }

    /// Adds a workload and creates its replicas. Workloads are addressed by name alone.
    pub fn apply_workload(&self, workload: Workload) {
        let now = self.clock.now();
        let mut state = self.state();
        let name = workload.name.clone();
        state.workloads.insert(name.clone(), workload);
        state.reconcile(&name, now);
    }

    /// Sets a workload's replica count, creating or deleting pods as its ReplicaSet would;
    /// returns the previous count. `NotFound` for an unknown workload.
    pub fn scale(&self, name: &str, replicas: u32) -> PortResult<u32> {
        let now = self.clock.now();
        let mut state = self.state();
        let Some(w) = state.workloads.get_mut(name) else {
            return Err(PortError::new(
                ErrorKind::NotFound,
                format!("workload {name} does not exist"),
            ));
        };
        let before = std::mem::replace(&mut w.replicas, replicas);
        state.reconcile(name, now);
        Ok(before)
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

    pub fn workload(&self, name: &str) -> Option<Workload> {
        self.state().workloads.get(name).cloned()
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

    fn listing<T>(&self, op: ClusterOp, list: impl FnOnce(&ClusterState) -> T) -> PortResult<T> {
        let mut state = self.state();
        state.recorder.call(op, "")?;
        Ok(list(&state))
    }

    fn cordon_now(&self, node: &str, taint: &Taint) -> PortResult<()> {
        let mut state = self.state();
        state.recorder.call(ClusterOp::Cordon, node)?;
        let Some(n) = state.nodes.get_mut(node) else {
            return Err(not_found_node(node));
        };
        if !n
            .taints
            .iter()
            .any(|t| t.key == taint.key && t.effect == taint.effect)
        {
            n.taints.push(taint.clone());
        }
        n.unschedulable = true;
        Ok(())
    }

    fn evict_now(&self, namespace: &str, name: &str) -> PortResult<Eviction> {
        let now = self.clock.now();
        let key = format!("{namespace}/{name}");
        let mut state = self.state();
        state.recorder.call(ClusterOp::Evict, &key)?;
        let Some(entry) = state.pods.get(&key) else {
            return Ok(Eviction::Gone);
        };
        // As the Eviction API: a healthy pod goes only if every budget covering it allows one
        // more disruption (HTTP 429 otherwise).
        if entry.status == PodStatus::Bound
            && state.pdbs.iter().filter(|b| b.selects(&entry.pod)).any(|b| {
                let (expected, healthy) = state.budget_counts(b);
                b.disruptions_allowed(expected, healthy) == 0
            })
        {
            return Ok(Eviction::Blocked);
        }
        state.delete_pods(&[key], now);
        Ok(Eviction::Evicted)
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

    fn delete_node_now(&self, node: &str) -> PortResult<()> {
        let now = self.clock.now();
        let mut state = self.state();
        state.recorder.call(ClusterOp::DeleteNode, node)?;
        state.finalizers.remove(node);
        state.remove_node(node, now);
        Ok(())
    }

    fn patch_node_now(&self, node: &str, patch: &NodePatch) -> PortResult<()> {
        let mut state = self.state();
        state.recorder.call(ClusterOp::PatchNode, node)?;
        let Some(n) = state.nodes.get_mut(node) else {
            return Err(not_found_node(node));
        };
        n.labels
            .extend(patch.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        for t in &patch.taints {
            if !n.taints.iter().any(|h| h.key == t.key && h.effect == t.effect) {
                n.taints.push(t.clone());
            }
        }
        if patch.finalizer {
            state.finalizers.insert(node.to_string());
        }
        state.dirty = true;
        Ok(())
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
    /// (expected, healthy) pods a budget covers: every non-terminal pod it selects, and those
    /// of them bound (running).
    fn budget_counts(&self, pdb: &PodDisruptionBudget) -> (u32, u32) {
        let mut expected = 0;
        let mut healthy = 0;
        for e in self
            .pods
            .values()
            .filter(|e| !e.pod.terminal && pdb.selects(&e.pod))
        {
            expected += 1;
            if e.status == PodStatus::Bound {
                healthy += 1;
            }
        }
        (expected, healthy)
    }

    /// Budgets kept now, by index.
    fn budgets_kept(&self) -> Vec<bool> {
        self.pdbs
            .iter()
            .map(|b| {
                let (expected, healthy) = self.budget_counts(b);
                healthy >= b.desired_healthy(expected)
            })
            .collect()
    }

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
}

fn not_found_node(node: &str) -> PortError {
    PortError::new(ErrorKind::NotFound, format!("node {node} does not exist"))
}

impl ClusterState {
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

    /// The EBS CSI driver and the PV controller: a pod's claims that do not exist yet are made
    /// from their templates, and each unbound claim of a `WaitForFirstConsumer` class gets a
    /// volume in the zone of the node the pod is bound to (an `Immediate` class's claim was
    /// bound when made, see [`Self::make_claims`]). Claims outlive their pods, as a
    /// StatefulSet's do.
    fn provision_volumes(&mut self, key: &str, node: &str) {
        let Some(pod) = self.pods.get(key).map(|e| e.pod.clone()) else {
            return;
        };
        let Some(zone) = self
            .nodes
            .get(node)
            .and_then(|n| n.labels.get(labels::ZONE))
            .cloned()
        else {
            return;
        };
        self.make_claims(&pod);
        for v in &pod.volume_claims {
            let name = v.claim_name(&pod.name);
            let Some(claim) = self.volumes.claim(&pod.namespace, &name).cloned() else {
                continue;
            };
            let waits = self
                .volumes
                .class(claim.storage_class.as_deref())
                .is_some_and(|c| c.binding_mode == VolumeBindingMode::WaitForFirstConsumer);
            if claim.volume_name.is_none() && waits {
                self.bind_claim(claim, &zone);
            }
        }
    }

    /// Claims made from the pod's templates where missing; an `Immediate` class's is bound at
    /// once, in the first zone its class allows (or the region's first).
    fn make_claims(&mut self, pod: &Pod) {
        for v in &pod.volume_claims {
            let PodVolumeClaim::Template { storage_class, .. } = v else {
                continue;
            };
            let name = v.claim_name(&pod.name);
            if self.volumes.claim(&pod.namespace, &name).is_some() {
                continue;
            }
            let claim = PersistentVolumeClaim {
                namespace: pod.namespace.clone(),
                name,
                volume_name: None,
                storage_class: storage_class.clone(),
            };
            self.volumes.add_claim(claim.clone());
            let immediate = self.volumes.class(storage_class.as_deref()).and_then(|c| {
                (c.binding_mode == VolumeBindingMode::Immediate).then(|| {
                    c.allowed_topologies
                        .iter()
                        .find_map(|t| t.get(labels::ZONE).and_then(|r| r.values().first().cloned()))
                        .unwrap_or_else(|| FIRST_ZONE.to_string())
                })
            });
            if let Some(zone) = immediate {
                self.bind_claim(claim, &zone);
            }
        }
    }

    /// A new zonal volume (`pv-<namespace>-<claim>`) for the claim, and the claim bound to it.
    fn bind_claim(&mut self, mut claim: PersistentVolumeClaim, zone: &str) {
        let name = format!("pv-{}-{}", claim.namespace, claim.name);
        let mut affinity = Requirements::new();
        affinity.add(labels::ZONE, Requirement::is_in([zone]));
        self.volumes.add_volume(PersistentVolume {
            name: name.clone(),
            node_affinity: vec![affinity],
        });
        claim.volume_name = Some(name);
        self.volumes.add_claim(claim);
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

    /// The ReplicaSet controller: creates or deletes pods until the workload has its replicas.
    fn reconcile(&mut self, name: &str, now: Millis) {
        let Some(w) = self.workloads.get(name).cloned() else {
            return;
        };
        let mut owned: Vec<&PodEntry> = self
            .pods
            .values()
            .filter(|e| e.pod.namespace == w.namespace && owned_by_workload(&e.pod) == Some(name))
            .collect();
        let want = w.replicas as usize;
        if owned.len() > want {
            // The ReplicaSet's deletion order: unbound pods first, then pods sharing a node with
            // more of their replicas, then the newest.
            let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &owned {
                if let Some(n) = e.pod.node_name.as_deref() {
                    *per_node.entry(n).or_default() += 1;
                }
            }
            if w.stateful {
                // The StatefulSet controller removes the highest ordinal first.
                owned.sort_by_key(|e| std::cmp::Reverse(ordinal(&e.pod.name)));
            } else {
                owned.sort_by(|a, b| {
                    let colocated = |e: &PodEntry| {
                        e.pod
                            .node_name
                            .as_deref()
                            .map_or(usize::MAX, |n| per_node.get(n).copied().unwrap_or(0))
                    };
                    colocated(b)
                        .cmp(&colocated(a))
                        .then(b.pod.created_at.cmp(&a.pod.created_at))
                        .then(b.pod.name.cmp(&a.pod.name))
                });
            }
            let doomed: Vec<String> = owned[..owned.len() - want].iter().map(|e| e.pod.key()).collect();
            for key in doomed {
                self.remove_pod(&key, now);
            }
            self.dirty = true;
        } else {
            let taken: BTreeSet<usize> = owned.iter().filter_map(|e| ordinal(&e.pod.name)).collect();
            let mut ordinals = (0..).filter(|i| !taken.contains(i));
            for _ in owned.len()..want {
                let mut pod = w.template.clone();
                pod.namespace = w.namespace.clone();
                if w.stateful {
                    let i = ordinals.next().unwrap_or_default();
                    pod.name = format!("{}-{i}", w.name);
                    pod.owner_kind = Some("StatefulSet".into());
                } else {
                    pod.name = self.unique_name(&w.namespace, &w.name);
                    pod.owner_kind = Some("ReplicaSet".into());
                }
                pod.uid = format!("{:016x}", self.rng.next_u64());
                pod.created_at = now;
                pod.owner_name = Some(w.name.clone());
                pod.node_name = None;
                self.make_claims(&pod);
                self.insert_pod(pod, Some(w.name.clone()), now);
            }
        }
    }
}

/// Objects that pass validation, and an error for each that does not, as the Kubernetes
/// adapter reports them so that one bad object does not hide the others.
fn split_valid<T: Clone>(
    objects: &[T],
    validate: impl Fn(&T) -> Result<(), String>,
) -> (Vec<T>, Vec<String>) {
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for o in objects {
        match validate(o) {
            Ok(()) => valid.push(o.clone()),
            Err(e) => errors.push(e),
        }
    }
    (valid, errors)
}

fn owned_by_workload(pod: &Pod) -> Option<&str> {
    match pod.owner_kind.as_deref() {
        Some("ReplicaSet" | "StatefulSet") => pod.owner_name.as_deref(),
        _ => None,
    }
}

/// A StatefulSet pod's ordinal: the number after the last `-`.
fn ordinal(name: &str) -> Option<usize> {
    name.rsplit_once('-')?.1.parse().ok()
}

/// Where an `Immediate` class with no allowed topologies makes its volumes: the simulated
/// region's first zone.
const FIRST_ZONE: &str = "us-east-1a";

impl Cluster for SimCluster {
    fn list_pending_pods(&self) -> impl Future<Output = PortResult<Vec<Pod>>> + Send {
        std::future::ready(self.listing(ClusterOp::ListPendingPods, |s| {
            s.pods
                .values()
                .filter(|e| matches!(e.status, PodStatus::Unschedulable { .. }) && !e.pod.is_daemon())
                .map(|e| e.pod.clone())
                .collect()
        }))
    }

    fn list_bound_pods(&self) -> impl Future<Output = PortResult<Vec<Pod>>> + Send {
        std::future::ready(self.listing(ClusterOp::ListBoundPods, |s| {
            s.pods
                .values()
                .filter(|e| e.pod.node_name.is_some() && !e.pod.terminal)
                .map(|e| e.pod.clone())
                .collect()
        }))
    }

    fn list_nodes(&self) -> impl Future<Output = PortResult<Vec<Node>>> + Send {
        std::future::ready(self.listing(ClusterOp::ListNodes, |s| s.nodes.values().cloned().collect()))
    }

    fn list_daemonsets(&self) -> impl Future<Output = PortResult<Vec<DaemonSet>>> + Send {
        std::future::ready(self.listing(ClusterOp::ListDaemonsets, |s| s.daemonsets.clone()))
    }

    fn list_pdbs(&self) -> impl Future<Output = PortResult<Vec<PodDisruptionBudget>>> + Send {
        std::future::ready(self.listing(ClusterOp::ListPdbs, |s| s.pdbs.clone()))
    }

    fn update_statuses(&self, updates: &[StatusUpdate]) -> impl Future<Output = PortResult<usize>> + Send {
        std::future::ready(self.listing(ClusterOp::UpdateStatuses, |_| ()).map(|()| {
            let mut state = self.state();
            let mut written = 0;
            for u in updates {
                let status = Some(u.status.clone());
                let target = match u.kind {
                    ConfigKind::NodePool => state
                        .nodepools
                        .iter_mut()
                        .find(|p| p.name() == u.name)
                        .map(|p| &mut p.status),
                    ConfigKind::Ec2NodeClass => state
                        .nodeclasses
                        .iter_mut()
                        .find(|c| c.name() == u.name)
                        .map(|c| &mut c.status),
                };
                if let Some(slot) = target {
                    *slot = status;
                    written += 1;
                }
            }
            written
        }))
    }

    fn record_events(&self, events: &[KubeEvent]) -> impl Future<Output = PortResult<usize>> + Send {
        std::future::ready(self.listing(ClusterOp::RecordEvents, |_| ()).map(|()| {
            let mut state = self.state();
            for e in events {
                state.events.entry(e.name()).or_insert_with(|| (e.clone(), 0)).1 += 1;
            }
            events.len()
        }))
    }

    fn list_volumes(&self) -> impl Future<Output = PortResult<Volumes>> + Send {
        std::future::ready(self.listing(ClusterOp::ListVolumes, |s| s.volumes.clone()))
    }

    fn list_nodepools(&self) -> impl Future<Output = PortResult<(Vec<NodePool>, Vec<String>)>> + Send {
        std::future::ready(self.listing(ClusterOp::ListNodepools, |s| {
            split_valid(&s.nodepools, |p| {
                p.validate().map_err(|e| format!("NodePool {}: {e}", p.name()))
            })
        }))
    }

    fn list_nodeclasses(&self) -> impl Future<Output = PortResult<(Vec<Ec2NodeClass>, Vec<String>)>> + Send {
        std::future::ready(self.listing(ClusterOp::ListNodeclasses, |s| {
            split_valid(&s.nodeclasses, |c| {
                c.validate()
                    .map_err(|e| format!("EC2NodeClass {}: {e}", c.name()))
            })
        }))
    }

    fn cordon(&self, node: &str, taint: &Taint) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.cordon_now(node, taint))
    }

    fn evict(&self, namespace: &str, name: &str) -> impl Future<Output = PortResult<Eviction>> + Send {
        std::future::ready(self.evict_now(namespace, name))
    }

    fn delete_node(&self, node: &str) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.delete_node_now(node))
    }

    fn patch_node(&self, node: &str, patch: &NodePatch) -> impl Future<Output = PortResult<()>> + Send {
        std::future::ready(self.patch_node_now(node, patch))
    }
}
