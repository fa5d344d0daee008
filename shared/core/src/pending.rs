//! Whether a pod waits for capacity nodewright should provide: the one rule that the Kubernetes
//! adapter (listing pending pods), the webhook (deciding whether a review asks for a round),
//! the fake API server's kube-scheduler and the core's own pods answer with. Each reads the
//! facts from its own representation of a pod into a [`PodState`]; the rule is here alone.
//!
//! It is Karpenter's `IsProvisionable`: unbound, Pending, marked `PodScheduled=False` with
//! reason `Unschedulable`, not nominated to a node (it is preempting others and will land
//! there), not being deleted, and not owned by a DaemonSet or a Node (a static pod's mirror) —
//! those are overhead on every node, never a reason for one.

/// What a pod object says, as far as the rule needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodState<'a> {
    pub node_name: Option<&'a str>,
    pub phase: Option<&'a str>,
    /// The `PodScheduled` condition's status and reason, if the pod has one.
    pub scheduled: Option<(&'a str, Option<&'a str>)>,
    pub nominated_node: Option<&'a str>,
    pub deleting: bool,
}

/// When the pod is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// As it is created (the webhook): the kube-scheduler has not tried it yet, so no verdict
    /// is required — a pod created unbound is likely to need capacity, and asking early saves
    /// the scheduler's round trip.
    AtCreation,
    /// After the kube-scheduler tried it: only its `Unschedulable` verdict counts.
    AfterScheduling,
}

/// Why a pod does not wait for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotWaiting {
    Bound,
    Deleting,
    NotPending,
    Nominated,
    NodeOverhead,
    NotUnschedulable,
}

impl NotWaiting {
    pub fn as_str(self) -> &'static str {
        match self {
            NotWaiting::Bound => "already bound",
            NotWaiting::Deleting => "being deleted",
            NotWaiting::NotPending => "not pending",
            NotWaiting::Nominated => "nominated to a node",
            NotWaiting::NodeOverhead => "a DaemonSet or static pod",
            NotWaiting::NotUnschedulable => "not unschedulable",
        }
    }
}

/// Whether an owner makes the pod node overhead: a DaemonSet's pod or a Node's (a static
/// pod's mirror). `api_version` is checked where the reader has it, so that a custom resource
/// of the same kind in another group does not count.
pub fn is_node_overhead_owner(kind: &str, api_version: Option<&str>) -> bool {
    match kind {
        "DaemonSet" => api_version.is_none_or(|v| v.starts_with("apps/")),
        "Node" => api_version.is_none_or(|v| v == "v1"),
        _ => false,
    }
}

/// Unbound, not being deleted, and Pending (a pod just created has no phase yet): the pods a
/// kube-scheduler considers at all.
pub fn unbound_and_pending(state: &PodState) -> Result<(), NotWaiting> {
    if state.node_name.is_some_and(|n| !n.is_empty()) {
        return Err(NotWaiting::Bound);
    }
    if state.deleting {
        return Err(NotWaiting::Deleting);
    }
    if !matches!(state.phase, None | Some("Pending")) {
        return Err(NotWaiting::NotPending);
    }
    Ok(())
}

/// Whether the pod waits for capacity; `owners` are its owner references' (kind, apiVersion).
/// Every owner reference counts, controller or not, as in Karpenter.
pub fn waits_for_capacity<'a>(
    state: &PodState,
    owners: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    seen: Seen,
) -> Result<(), NotWaiting> {
    unbound_and_pending(state)?;
    if state.nominated_node.is_some_and(|n| !n.is_empty()) {
        return Err(NotWaiting::Nominated);
    }
    if owners
        .into_iter()
        .any(|(kind, version)| is_node_overhead_owner(kind, version))
    {
        return Err(NotWaiting::NodeOverhead);
    }
    let unschedulable = state.scheduled == Some(("False", Some("Unschedulable")));
    if seen == Seen::AfterScheduling && !unschedulable {
        return Err(NotWaiting::NotUnschedulable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSCHEDULABLE: PodState<'static> = PodState {
        node_name: None,
        phase: Some("Pending"),
        scheduled: Some(("False", Some("Unschedulable"))),
        nominated_node: None,
        deleting: false,
    };

    fn after(state: PodState, owners: &[(&'static str, Option<&'static str>)]) -> Result<(), NotWaiting> {
        waits_for_capacity(&state, owners.iter().copied(), Seen::AfterScheduling)
    }

    #[test]
    fn an_unschedulable_pending_pod_waits_and_each_exception_says_why() {
        assert_eq!(after(UNSCHEDULABLE, &[("ReplicaSet", Some("apps/v1"))]), Ok(()));
        let bound = PodState {
            node_name: Some("n1"),
            ..UNSCHEDULABLE
        };
        assert_eq!(after(bound, &[]), Err(NotWaiting::Bound));
        let deleting = PodState {
            deleting: true,
            ..UNSCHEDULABLE
        };
        assert_eq!(after(deleting, &[]), Err(NotWaiting::Deleting));
        let running = PodState {
            phase: Some("Running"),
            ..UNSCHEDULABLE
        };
        assert_eq!(after(running, &[]), Err(NotWaiting::NotPending));
        let preempting = PodState {
            nominated_node: Some("n2"),
            ..UNSCHEDULABLE
        };
        assert_eq!(after(preempting, &[]), Err(NotWaiting::Nominated));
        let scheduled = PodState {
            scheduled: Some(("True", None)),
            ..UNSCHEDULABLE
        };
        assert_eq!(after(scheduled, &[]), Err(NotWaiting::NotUnschedulable));
        let untried = PodState {
            scheduled: None,
            ..UNSCHEDULABLE
        };
        assert_eq!(after(untried, &[]), Err(NotWaiting::NotUnschedulable));
    }

    #[test]
    fn daemonset_and_static_pods_are_overhead_whoever_controls_them() {
        assert_eq!(
            after(UNSCHEDULABLE, &[("DaemonSet", Some("apps/v1"))]),
            Err(NotWaiting::NodeOverhead)
        );
        assert_eq!(
            after(UNSCHEDULABLE, &[("Node", Some("v1"))]),
            Err(NotWaiting::NodeOverhead)
        );
        // Not a controller reference, still counted; a custom DaemonSet kind in another group is not.
        assert_eq!(
            after(
                UNSCHEDULABLE,
                &[
                    ("Rollout", Some("argoproj.io/v1alpha1")),
                    ("DaemonSet", Some("apps/v1"))
                ]
            ),
            Err(NotWaiting::NodeOverhead)
        );
        assert_eq!(
            after(UNSCHEDULABLE, &[("DaemonSet", Some("example.com/v1"))]),
            Ok(())
        );
        assert!(is_node_overhead_owner("DaemonSet", None));
    }

    #[test]
    fn at_creation_no_verdict_is_needed_but_the_rest_of_the_rule_holds() {
        let created = PodState {
            phase: None,
            scheduled: None,
            ..UNSCHEDULABLE
        };
        assert_eq!(waits_for_capacity(&created, [], Seen::AtCreation), Ok(()));
        let bound = PodState {
            node_name: Some("n1"),
            ..created
        };
        assert_eq!(
            waits_for_capacity(&bound, [], Seen::AtCreation),
            Err(NotWaiting::Bound)
        );
        assert_eq!(
            waits_for_capacity(&created, [("DaemonSet", Some("apps/v1"))], Seen::AtCreation),
            Err(NotWaiting::NodeOverhead)
        );
    }
}
