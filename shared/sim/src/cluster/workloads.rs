//! Workloads: the ReplicaSet and StatefulSet controllers that keep each at its replica count.

use std::collections::{BTreeMap, BTreeSet};

use nodewright_core::pod::{Millis, Pod};
use nodewright_core::ports::{Clock, ErrorKind, PortError, PortResult};

use super::{ClusterState, PodEntry, SimCluster, Workload};

impl SimCluster {
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

    pub fn workload(&self, name: &str) -> Option<Workload> {
        self.state().workloads.get(name).cloned()
    }
}

impl ClusterState {
    /// The ReplicaSet controller: creates or deletes pods until the workload has its replicas.
    pub(super) fn reconcile(&mut self, name: &str, now: Millis) {
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

pub(super) fn owned_by_workload(pod: &Pod) -> Option<&str> {
    match pod.owner_kind.as_deref() {
        Some("ReplicaSet" | "StatefulSet") => pod.owner_name.as_deref(),
        _ => None,
    }
}

/// A StatefulSet pod's ordinal: the number after the last `-`.
fn ordinal(name: &str) -> Option<usize> {
    name.rsplit_once('-')?.1.parse().ok()
}
