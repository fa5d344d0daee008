//! What a simulation reports: a timeline of events in virtual time and a summary.

use std::fmt;

use nodewright_core::catalog::CapacityType;
use nodewright_core::pod::Millis;
use serde::Serialize;

/// The whole output of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub timeline: Vec<TimelineEvent>,
    pub summary: Summary,
}

/// An event at a moment of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// `mm:ss` from the start.
    pub at: String,
    pub at_ms: Millis,
    #[serde(flatten)]
    pub event: Event,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Scaled {
        workload: String,
        from: u32,
        to: u32,
    },
    OutOfCapacity {
        offerings: String,
    },
    CapacityRestored {
        offerings: String,
    },
    /// The kube-scheduler marked pods Unschedulable (the webhook fires).
    PodsPending {
        /// Newly marked.
        pods: usize,
        /// All pods Unschedulable now.
        unschedulable: usize,
    },
    Launched {
        claim: String,
        nodepool: String,
        instance_id: String,
        instance_type: String,
        zone: String,
        capacity_type: CapacityType,
        price_per_hour: f64,
        /// Pods the claim was launched for.
        pods: usize,
    },
    /// The provisioner found no way to place these pods.
    CannotProvision {
        pods: usize,
        reason: String,
    },
    /// Launches of a round that found no capacity in any offering they allowed.
    NoCapacity {
        launches: usize,
        /// Distinct offerings that failed.
        offerings: usize,
    },
    LaunchFailed {
        error: String,
    },
    RoundFailed {
        error: String,
    },
    InvalidConfig {
        error: String,
    },
    NodeRegistered {
        node: String,
        claim: Option<String>,
        instance_type: String,
        zone: String,
    },
    PodsBound {
        pods: usize,
        nodes: usize,
    },
    /// The sweep took nodes away: `empty`, `underutilized`, `drifted` or `expired`.
    Disrupting {
        reason: String,
        nodes: Vec<String>,
        /// The node launched for their pods, if one was needed.
        replacement: Option<Replacement>,
        savings_per_hour: f64,
    },
    /// The lifecycle labelled a joined node and marked its claim registered.
    Registered {
        node: String,
        claim: String,
    },
    /// The node is ready and its startup taints are gone.
    Initialized {
        node: String,
        claim: String,
    },
    /// The claim's node never joined; its instance was terminated.
    RegistrationTimeout {
        claim: String,
    },
    /// Instances launched from now on matching these offerings never register.
    RegistrationFailing {
        offerings: String,
    },
    RegistrationRestored {
        offerings: String,
    },
    /// EC2 sent an interruption event for the instance (`spot`, `rebalance`, `scheduled`,
    /// `stop`) — or, two minutes after a spot warning, took it (`reclaimed`).
    Interrupted {
        instance: String,
        node: Option<String>,
        /// The event kind (`kind` names the timeline event itself).
        interruption: String,
    },
    /// Manifests applied by a step.
    Applied {
        objects: Vec<String>,
    },
    /// EKS published a new release of its optimized AMIs (`release` counts from 1).
    AmiReleased {
        release: u32,
    },
    /// A user deleted the Node (`kubectl delete node`).
    DeleteRequested {
        node: String,
    },
    /// A claim entered graceful termination.
    Terminating {
        claim: String,
        reason: String,
    },
    Evicted {
        pod: String,
        node: String,
    },
    /// An eviction refused by a PodDisruptionBudget, or a pod held by do-not-disrupt.
    EvictionBlocked {
        pod: String,
        node: String,
        by: String,
    },
    /// The Node object was removed by nodewright.
    NodeDeleted {
        node: String,
        reason: String,
    },
    /// The claim closed once its instance was terminated.
    Terminated {
        claim: String,
        instance: Option<String>,
        reason: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Scaled { workload, from, to } => write!(f, "scaled {workload} {from} → {to}"),
            Event::OutOfCapacity { offerings } => write!(f, "out of capacity: {offerings}"),
            Event::CapacityRestored { offerings } => write!(f, "capacity restored: {offerings}"),
            Event::PodsPending { pods, unschedulable } => {
                write!(
                    f,
                    "{} unschedulable ({unschedulable} waiting)",
                    plural(*pods, "pod")
                )
            }
            Event::Launched {
                claim,
                instance_type,
                zone,
                capacity_type,
                price_per_hour,
                pods,
                ..
            } => write!(
                f,
                "launched {claim}: {instance_type} {zone} {capacity_type} ${price_per_hour:.4}/h for {}",
                plural(*pods, "pod")
            ),
            Event::CannotProvision { pods, reason } => {
                write!(f, "cannot provision {}: {reason}", plural(*pods, "pod"))
            }
            Event::NoCapacity { launches, offerings } => write!(
                f,
                "no capacity: {} failed across {}",
                plural(*launches, "launch"),
                plural(*offerings, "offering")
            ),
            Event::LaunchFailed { error } => write!(f, "launch failed: {error}"),
            Event::RoundFailed { error } => write!(f, "provisioning round failed: {error}"),
            Event::InvalidConfig { error } => write!(f, "invalid configuration skipped: {error}"),
            Event::NodeRegistered {
                node,
                claim,
                instance_type,
                zone,
            } => {
                write!(f, "node {node} registered ({instance_type}, {zone}")?;
                match claim {
                    Some(c) => write!(f, ", {c})"),
                    None => write!(f, ", no claim)"),
                }
            }
            Event::PodsBound { pods, nodes } => {
                write!(f, "{} bound to {}", plural(*pods, "pod"), plural(*nodes, "node"))
            }
            Event::Disrupting {
                reason,
                nodes,
                replacement,
                savings_per_hour,
            } => {
                write!(f, "disrupting {} ({reason})", nodes.join(", "))?;
                if let Some(r) = replacement {
                    write!(
                        f,
                        ", replaced by {} {} ${:.4}/h",
                        r.instance_type, r.capacity_type, r.price_per_hour
                    )?;
                }
                write!(f, ", saves ${savings_per_hour:.4}/h")
            }
            Event::Registered { node, claim } => write!(f, "{claim} registered as {node}"),
            Event::Initialized { node, claim } => write!(f, "{claim} initialized ({node})"),
            Event::RegistrationTimeout { claim } => {
                write!(f, "{claim}: registration timeout, instance terminated")
            }
            Event::RegistrationFailing { offerings } => {
                write!(f, "instances of {offerings} stop registering")
            }
            Event::RegistrationRestored { offerings } => {
                write!(f, "instances of {offerings} register again")
            }
            Event::DeleteRequested { node } => write!(f, "kubectl delete node {node}"),
            Event::Applied { objects } => write!(f, "applied {}", objects.join(", ")),
            Event::AmiReleased { release } => write!(f, "EKS released AMI release {release}"),
            Event::Interrupted {
                instance,
                node,
                interruption,
            } => {
                write!(f, "EC2: {interruption} for {instance}")?;
                match node {
                    Some(n) => write!(f, " ({n})"),
                    None => Ok(()),
                }
            }
            Event::Terminating { claim, reason } => write!(f, "{claim} terminating ({reason})"),
            Event::Evicted { pod, node } => write!(f, "evicted {pod} from {node}"),
            Event::EvictionBlocked { pod, node, by } => {
                write!(f, "eviction of {pod} from {node} blocked by {by}")
            }
            Event::NodeDeleted { node, reason } => write!(f, "node {node} deleted ({reason})"),
            Event::Terminated {
                claim,
                instance,
                reason,
            } => {
                write!(f, "{claim} terminated ({reason})")?;
                match instance {
                    Some(id) => write!(f, ", {id} gone"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn plural(n: usize, noun: &str) -> String {
    match (n, noun.ends_with("ch")) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{n} {noun}es"),
        (_, false) => format!("{n} {noun}s"),
    }
}

/// A node launched to take a disrupted node's pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replacement {
    pub claim: String,
    pub instance_type: String,
    pub capacity_type: CapacityType,
    pub price_per_hour: f64,
}

/// The run in numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// `mm:ss` of virtual time simulated.
    pub duration: String,
    /// Provisioning rounds that ran.
    pub rounds: usize,
    pub pods_created: usize,
    /// Most workload pods bound at one moment.
    pub peak_pods_bound: usize,
    /// Pods that never got capacity: never bound before they were deleted or the run ended.
    pub pods_never_bound: usize,
    pub pods_pending_at_end: usize,
    pub instances_launched: usize,
    pub peak_nodes: usize,
    pub nodes_at_end: usize,
    /// Hours the instances ran, summed.
    pub node_hours: f64,
    /// USD: each instance's hourly price × the hours it ran.
    pub total_cost: f64,
    /// From a pod turning pending to being bound, over the pods that were bound.
    pub time_to_bind: Latency,
    /// Pods evicted by graceful termination.
    pub pods_evicted: usize,
    /// $/h of the instances running at the end.
    pub cost_per_hour_at_end: f64,
    /// Nodes disrupted, by reason (`empty`, `underutilized`, `drifted`, `expired`).
    pub disruptions: std::collections::BTreeMap<String, usize>,
    /// Seconds the pods of interrupted nodes spent unbound, summed: from leaving the node to
    /// their replacement pod being bound (or the end).
    pub pods_disrupted_seconds: f64,
    /// Evictions of ours that left a PodDisruptionBudget broken (must stay 0).
    pub pdb_violations: usize,
}

/// A latency distribution, in seconds (nearest-rank percentiles).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_seconds: f64,
    pub p95_seconds: f64,
    pub max_seconds: f64,
}

impl Latency {
    pub fn of(mut samples_ms: Vec<Millis>) -> Latency {
        if samples_ms.is_empty() {
            return Latency::default();
        }
        samples_ms.sort_unstable();
        let n = samples_ms.len();
        let rank = |p: f64| {
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples_ms[i] as f64 / 1000.0
        };
        Latency {
            samples: n,
            p50_seconds: rank(0.50),
            p95_seconds: rank(0.95),
            max_seconds: samples_ms[n - 1] as f64 / 1000.0,
        }
    }
}

/// `mm:ss` for an offset from the start (minutes keep counting past 59).
pub fn format_offset(ms: Millis) -> String {
    let secs = ms.max(0) / 1000;
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let l = Latency::of((1..=100).map(|s| s * 1000).collect());
        assert_eq!((l.p50_seconds, l.p95_seconds, l.max_seconds), (50.0, 95.0, 100.0));
        assert_eq!(Latency::of(vec![]), Latency::default());
    }

    #[test]
    fn offsets_read_as_minutes_and_seconds() {
        assert_eq!(format_offset(0), "00:00");
        assert_eq!(format_offset(65_999), "01:05");
        assert_eq!(format_offset(125 * 60_000), "125:00");
    }
}
