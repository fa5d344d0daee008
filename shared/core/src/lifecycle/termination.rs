//! Graceful termination, one pass at a time: taint `karpenter.sh/disrupted:NoSchedule` and
//! cordon → evict every pod that must go through the Eviction API (a PodDisruptionBudget's
//! refusal is retried on the next pass; `karpenter.sh/do-not-disrupt` pods wait) → once
//! drained, or once the deadline has passed, terminate the instance → delete the Node → close
//! the claim.
//!
//! The claim row keeps only what the cluster cannot show: when termination started, its
//! deadline, and whether the instance was terminated. Everything else is observed again each
//! pass, so each step runs until it is seen done and a repeated step changes nothing.

use crate::labels;
use crate::nodeclaim::NodeClaim;
use crate::pod::{Millis, Pod, Taint, TaintEffect};
use crate::scheduler::ExistingNode;

/// A pod by namespace and name, as the Eviction API names it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodName {
    pub namespace: String,
    pub name: String,
}

impl PodName {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A pod (`namespace/name`) the drain waits for without evicting it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldPod {
    pub pod: String,
    pub reason: String,
}

/// What one pass does for a `Terminating` claim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainStep {
    /// The claim's Node, if it still exists.
    pub node: Option<String>,
    /// Taint and cordon the Node (it is not yet).
    pub taint: bool,
    /// Pods to evict now.
    pub evict: Vec<PodName>,
    /// Pods that hold the drain and are not evicted.
    pub waiting: Vec<HeldPod>,
    /// Drained (or out of time): terminate the instance, delete the Node, close the claim.
    pub finish: bool,
}

/// The taint every node being terminated carries.
pub fn disrupted_taint() -> Taint {
    Taint::new(labels::DISRUPTED_TAINT, None, TaintEffect::NoSchedule)
}

/// Whether draining must move the pod: it holds the node (not a daemon or static pod, not
/// finished) and does not tolerate the disrupted taint (a pod that does is meant to stay until
/// the node goes, as Karpenter leaves it).
pub fn must_move(pod: &Pod) -> bool {
    !pod.is_daemon() && !pod.terminal && !pod.tolerations.iter().any(|t| t.tolerates(&disrupted_taint()))
}

/// The next step for a `Terminating` claim whose Node (if any) is `node`, at `now`. When the
/// instance is already gone there is nothing left to drain: its pods are lost with it.
pub fn step(claim: &NodeClaim, node: Option<&ExistingNode>, instance_gone: bool, now: Millis) -> DrainStep {
    let progress = claim.termination.as_ref();
    let Some(n) = node else {
        return DrainStep {
            finish: true,
            ..DrainStep::default()
        };
    };
    let mut step = DrainStep {
        node: Some(n.node.name.clone()),
        ..DrainStep::default()
    };
    if instance_gone || progress.is_some_and(|t| t.instance_terminated_at.is_some()) {
        step.finish = true;
        return step;
    }
    let taint = disrupted_taint();
    step.taint = !(n.node.unschedulable
        && n.node
            .taints
            .iter()
            .any(|t| t.key == taint.key && t.effect == taint.effect));
    let out_of_time = progress
        .and_then(|t| t.deadline)
        .is_some_and(|deadline| now >= deadline);
    let mut to_move: Vec<&Pod> = n.pods.iter().filter(|p| must_move(p)).collect();
    to_move.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    if to_move.is_empty() || out_of_time {
        step.finish = true;
        return step;
    }
    for pod in to_move {
        // Already going (evicted by an earlier pass, or deleted by someone): evicting it again
        // would do nothing but count it twice; the drain waits for it to stop.
        if pod.deleting {
            continue;
        }
        if pod.do_not_disrupt {
            step.waiting.push(HeldPod {
                pod: pod.key(),
                reason: format!("{} is set", labels::DO_NOT_DISRUPT),
            });
        } else {
            step.evict.push(PodName {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
            });
        }
    }
    step
}
