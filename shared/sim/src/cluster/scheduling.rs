//! The cluster's kube-scheduler: passes of [`crate::kube_scheduler`] over the pods not yet
//! bound, each binding applied at once so that the volumes it provisions constrain the pods
//! after it.

use nodewright_core::pod::Millis;
use nodewright_core::ports::Clock;

use super::{ClusterState, PodStatus, SimCluster};
use crate::kube_scheduler::{Binding, KubeScheduler, queue_key};

/// What one pass of the kube-scheduler did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulingPass {
    /// Pods bound in this pass, with their node.
    pub bound: Vec<Binding>,
    /// Pods marked Unschedulable in this pass that were not before: the admission webhook
    /// fires for these.
    pub newly_unschedulable: Vec<String>,
    /// Pods Unschedulable after the pass.
    pub unschedulable: usize,
}

impl SimCluster {
    /// Runs one scheduling pass over every pod not yet bound, if anything changed since the
    /// last pass (a new pod, node, deleted pod or removed taint); otherwise nothing is retried,
    /// as the real scheduler parks unschedulable pods until a cluster event. Daemon pods are
    /// not queued: the DaemonSet controller binds them as their node joins.
    pub fn run_scheduler(&self) -> SchedulingPass {
        let now = self.clock.now();
        let mut state = self.state();
        let mut pass = SchedulingPass::default();
        // Every change to pods or nodes marks the state dirty, so the count below is current
        // whenever nothing is to be done.
        if state.dirty {
            state.dirty = false;
            schedule(&mut state, now, &mut pass);
            state.unschedulable = state
                .pods
                .values()
                .filter(|e| matches!(e.status, PodStatus::Unschedulable { .. }))
                .count();
        }
        pass.unschedulable = state.unschedulable;
        pass
    }
}

fn schedule(state: &mut ClusterState, now: Millis, pass: &mut SchedulingPass) {
    let mut queue: Vec<_> = state
        .pods
        .values()
        .filter(|e| e.status != PodStatus::Bound && !e.pod.is_daemon())
        .map(|e| queue_key(&e.pod))
        .collect();
    if queue.is_empty() {
        return;
    }
    queue.sort();
    let mut scheduler = KubeScheduler::new(state.pods.values().map(|e| &e.pod));
    for (_, _, key) in queue {
        let Some(pod) = state.pods.get(&key).map(|e| e.pod.clone()) else {
            continue;
        };
        match scheduler.place(&pod, &state.nodes, &state.volumes) {
            Ok(node) => {
                scheduler.bind(&pod, &node, &state.nodes);
                state.bind(&key, &node, now);
                pass.bound.push(Binding { pod: key, node });
            }
            Err(reason) => {
                if let Some(entry) = state.pods.get_mut(&key) {
                    if !matches!(entry.status, PodStatus::Unschedulable { .. }) {
                        pass.newly_unschedulable.push(key.clone());
                    }
                    entry.status = PodStatus::Unschedulable { reason };
                }
            }
        }
    }
}
