//! Kubernetes events: what nodewright decided, shown where `kubectl describe pod` and
//! `kubectl describe node` (and `kubectl get events`) look, since there is no controller in
//! the cluster whose logs users could read.
//!
//! Events are made from the reports of a pass, a sweep and an interruption batch, with the
//! reasons Karpenter uses where it has one (`Nominated`, `FailedScheduling`,
//! `DisruptionTerminating`, `DisruptionBlocked`, `SpotInterrupted`, …). Each has a name derived
//! from what it says ([`KubeEvent::name`]), so the same event from the next invocation finds the
//! first and counts in its `series` instead of piling up, as the kubelet's recorder aggregates
//! repeats; [`limit`] keeps one invocation from flooding an object or the API server.

use std::collections::BTreeMap;

use crate::disruption::{Protected, SweepReport};
use crate::interruption::Kind;
use crate::lifecycle::{ClaimReason, HeldEviction, LifecycleReport, PodOnClaim};
use crate::provisioning::RoundReport;

/// `Normal` or `Warning`, as Kubernetes types events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Regarding {
    Pod,
    Node,
}

impl Regarding {
    pub fn kind(self) -> &'static str {
        match self {
            Regarding::Pod => "Pod",
            Regarding::Node => "Node",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubeEvent {
    pub regarding: Regarding,
    /// The pod's namespace; for a node (cluster-scoped), the namespace its events go in.
    pub namespace: String,
    pub name: String,
    pub event_type: EventType,
    /// CamelCase, what happened: `Nominated`, `DisruptionBlocked`, …
    pub reason: String,
    /// What nodewright did or would do: `Launching`, `Disrupting`, `Draining`, …
    pub action: String,
    pub note: String,
}

/// Where node events go, as the kubelet and node controller put theirs.
pub const NODE_EVENT_NAMESPACE: &str = "default";

/// Events per object per invocation at most (client-go's spam filter allows a burst of 25).
pub const MAX_PER_OBJECT: usize = 25;

/// Events per invocation at most: a round over thousands of pending pods reports the first.
pub const MAX_PER_INVOCATION: usize = 500;

/// The most of a Kubernetes note (the API server refuses more than 1 KiB).
const MAX_NOTE: usize = 1024;

impl KubeEvent {
    fn new(
        regarding: Regarding,
        namespace: &str,
        name: &str,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) -> KubeEvent {
        let mut note = note;
        if note.len() > MAX_NOTE {
            let mut end = MAX_NOTE - 3;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
            note.push_str("...");
        }
        KubeEvent {
            regarding,
            namespace: namespace.to_string(),
            name: name.to_string(),
            event_type,
            reason: reason.to_string(),
            action: action.to_string(),
            note,
        }
    }

    /// An event on the pod `namespace/name`.
    pub fn pod(key: &str, event_type: EventType, reason: &str, action: &str, note: String) -> KubeEvent {
        let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
        KubeEvent::new(Regarding::Pod, namespace, name, event_type, reason, action, note)
    }

    /// An event on the node `name`.
    pub fn node(name: &str, event_type: EventType, reason: &str, action: &str, note: String) -> KubeEvent {
        KubeEvent::new(
            Regarding::Node,
            NODE_EVENT_NAMESPACE,
            name,
            event_type,
            reason,
            action,
            note,
        )
    }

    /// The Event object's name: the object's name and a hash of what the event says, so that
    /// the same event again is the same object (a DNS subdomain of at most 253 characters).
    pub fn name(&self) -> String {
        let hash = crate::stable_hash::fnv1a(&(
            self.regarding,
            &self.namespace,
            &self.name,
            &self.reason,
            &self.note,
        ));
        let mut prefix: String = self.name.chars().take(200).collect();
        while prefix.ends_with(['.', '-']) {
            prefix.pop();
        }
        format!("{prefix}.{hash:016x}")
    }
}

/// The events worth recording: each once, at most [`MAX_PER_OBJECT`] per object and
/// [`MAX_PER_INVOCATION`] in all, in the order given.
pub fn limit(events: Vec<KubeEvent>) -> Vec<KubeEvent> {
    let mut seen = std::collections::HashSet::new();
    let mut per_object: BTreeMap<(Regarding, String, String), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        if out.len() == MAX_PER_INVOCATION {
            break;
        }
        if !seen.insert(e.name()) {
            continue;
        }
        let n = per_object
            .entry((e.regarding, e.namespace.clone(), e.name.clone()))
            .or_default();
        if *n == MAX_PER_OBJECT {
            continue;
        }
        *n += 1;
        out.push(e);
    }
    out
}

/// What a provisioning pass tells pods and nodes.
pub fn of_pass(round: &RoundReport, lifecycle: &LifecycleReport) -> Vec<KubeEvent> {
    let mut out = Vec::new();
    for n in &round.nominated {
        out.push(KubeEvent::pod(
            &n.pod,
            EventType::Normal,
            "Nominated",
            "Scheduling",
            format!("Pod should schedule on: {}", n.target),
        ));
    }
    for u in &round.unschedulable {
        out.push(KubeEvent::pod(
            &u.pod,
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            format!("Failed to schedule pod, {}", u.reason),
        ));
    }
    for PodOnClaim { pod, claim } in &lifecycle.registration_timeout_pods {
        out.push(KubeEvent::pod(
            pod,
            EventType::Warning,
            "RegistrationTimeout",
            "Launching",
            format!(
                "nodeclaim/{claim}, launched for this pod, did not join the cluster in time; its instance was terminated and the pod is planned again"
            ),
        ));
    }
    for HeldEviction { pod, node, reason } in &lifecycle.eviction_blocked {
        out.push(KubeEvent::node(
            node,
            EventType::Normal,
            "DisruptionBlocked",
            "Draining",
            format!("Cannot evict pod {pod} yet: {reason}"),
        ));
    }
    for ClaimReason { claim, reason } in &lifecycle.terminating {
        if let Some(node) = lifecycle.nodes_of.get(claim) {
            out.push(KubeEvent::node(
                node,
                EventType::Normal,
                "DisruptionTerminating",
                "Draining",
                format!("Disrupting Node: {}", reason_words(reason)),
            ));
        }
    }
    out
}

/// What a disruption sweep tells nodes.
pub fn of_sweep(sweep: &SweepReport, blocked: &[Protected]) -> Vec<KubeEvent> {
    let mut out = Vec::new();
    for d in &sweep.decisions {
        let replacement = match d.replacements.first() {
            Some(r) => format!(
                ", replaced by a {} {}",
                r.chosen.capacity_type, r.chosen.instance_type
            ),
            None => String::new(),
        };
        for c in &d.candidates {
            out.push(KubeEvent::node(
                &c.node,
                EventType::Normal,
                "DisruptionTerminating",
                "Disrupting",
                format!(
                    "Disrupting Node: {}{replacement}, saving ${:.4}/h",
                    reason_words(d.reason.as_str()),
                    d.savings_per_hour
                ),
            ));
        }
    }
    for protected in blocked {
        out.push(KubeEvent::node(
            &protected.node,
            EventType::Normal,
            "DisruptionBlocked",
            "Disrupting",
            format!("Cannot disrupt Node: {}", protected.reason),
        ));
    }
    out
}

/// What interruption notices tell nodes: `nodes` maps the claims acted on to their nodes.
pub fn of_interruptions(
    report: &crate::interruption::InterruptionReport,
    nodes: &BTreeMap<String, String>,
) -> Vec<KubeEvent> {
    let mut out = Vec::new();
    let acted = report.draining.iter().map(|n| (&n.claim, &n.kind, true));
    let recorded = report.recorded.iter().map(|n| (&n.claim, &n.kind, false));
    for (claim, kind, draining) in acted.chain(recorded) {
        let Some(node) = nodes.get(claim) else {
            continue;
        };
        let (reason, event_type, what) = match kind {
            Kind::SpotInterruption => (
                "SpotInterrupted",
                EventType::Warning,
                "Spot interruption warning was triggered",
            ),
            Kind::Rebalance => (
                "SpotRebalanceRecommendation",
                EventType::Normal,
                "Spot rebalance recommendation was triggered",
            ),
            Kind::ScheduledChange => (
                "InstanceUnhealthy",
                EventType::Warning,
                "An AWS Health scheduled change is due for the instance",
            ),
            Kind::Stopping | Kind::Stopped => {
                ("InstanceStopping", EventType::Warning, "The instance is stopping")
            }
            Kind::ShuttingDown | Kind::Terminated => (
                "InstanceTerminating",
                EventType::Warning,
                "The instance is terminating",
            ),
        };
        let action = if draining { "; draining the node" } else { "" };
        out.push(KubeEvent::node(
            node,
            event_type,
            reason,
            "Interrupting",
            format!("{what}{action}"),
        ));
    }
    out
}

/// `underutilized` → `Underutilized`, as Karpenter writes the reason in its notes.
fn reason_words(reason: &str) -> String {
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_again_has_the_same_name_and_another_note_another() {
        let a = KubeEvent::pod(
            "shop/web-1",
            EventType::Normal,
            "Nominated",
            "Scheduling",
            "on a".into(),
        );
        let b = KubeEvent::pod(
            "shop/web-1",
            EventType::Normal,
            "Nominated",
            "Scheduling",
            "on a".into(),
        );
        let c = KubeEvent::pod(
            "shop/web-1",
            EventType::Normal,
            "Nominated",
            "Scheduling",
            "on b".into(),
        );
        assert_eq!(a.name(), b.name());
        assert_ne!(a.name(), c.name());
        assert!(a.name().starts_with("web-1."));
        assert_eq!((a.namespace.as_str(), a.name.as_str()), ("shop", "web-1"));
    }

    #[test]
    fn a_long_name_and_note_are_cut_to_what_the_api_server_takes() {
        let name = "p".repeat(300);
        let e = KubeEvent::node(&name, EventType::Warning, "X", "Y", "é".repeat(1000));
        assert!(e.name().len() <= 253, "{}", e.name().len());
        assert!(e.note.len() <= 1024);
        assert!(e.note.ends_with("..."));
    }

    #[test]
    fn repeats_are_dropped_and_one_object_gets_at_most_its_burst() {
        let mut events = Vec::new();
        for i in 0..40 {
            events.push(KubeEvent::node(
                "n1",
                EventType::Normal,
                "DisruptionBlocked",
                "Draining",
                format!("pod {i}"),
            ));
        }
        events.push(KubeEvent::node(
            "n1",
            EventType::Normal,
            "DisruptionBlocked",
            "Draining",
            "pod 0".into(),
        ));
        events.push(KubeEvent::node(
            "n2",
            EventType::Normal,
            "DisruptionBlocked",
            "Draining",
            "pod 0".into(),
        ));
        let kept = limit(events);
        assert_eq!(kept.iter().filter(|e| e.name == "n1").count(), MAX_PER_OBJECT);
        assert_eq!(kept.iter().filter(|e| e.name == "n2").count(), 1);
    }
}
