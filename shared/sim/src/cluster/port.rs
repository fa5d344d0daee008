//! The core's `Cluster` port over the embedded cluster: listings, status and event writes, and
//! cordon, eviction, node deletion and patches as the API server answers them.

use nodewright_core::api::{Ec2NodeClass, NodePool};
use nodewright_core::config_status::{ConfigKind, StatusUpdate};
use nodewright_core::events::KubeEvent;
use nodewright_core::pdb::PodDisruptionBudget;
use nodewright_core::pod::{Node, Pod, Taint};
use nodewright_core::ports::{
    Clock, Cluster, DaemonSet, ErrorKind, Eviction, NodePatch, PortError, PortResult,
};
use nodewright_core::volumes::Volumes;

use crate::calls::ClusterOp;

use super::{ClusterState, PodStatus, SimCluster};

impl SimCluster {
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
}

fn not_found_node(node: &str) -> PortError {
    PortError::new(ErrorKind::NotFound, format!("node {node} does not exist"))
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
            split_valid(&s.nodepools, |p| p.validate().map_err(|e| e.to_string()))
        }))
    }

    fn list_nodeclasses(&self) -> impl Future<Output = PortResult<(Vec<Ec2NodeClass>, Vec<String>)>> + Send {
        std::future::ready(self.listing(ClusterOp::ListNodeclasses, |s| {
            split_valid(&s.nodeclasses, |c| c.validate().map_err(|e| e.to_string()))
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
