//! NodeClaims: the record of every instance nodewright launched, and their lifecycle.
//!
//! The claim store (DynamoDB in production) is the source of truth for what was launched. A
//! claim row is written in state `Launching` *before* the cloud is asked for an instance and
//! completed afterwards, so a crash in between leaves a row that the next round reconciles
//! against the instances tagged with the claim id.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::CapacityType;
use crate::pod::{Millis, Taint};
use crate::resources::Resources;

/// Where a claim is in its life. Transitions only move forward (see [`ClaimState::can_become`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Row written; the launch request may or may not have reached EC2.
    Launching,
    /// EC2 returned an instance.
    Launched,
    /// A Node with the instance's provider id joined the cluster.
    Registered,
    /// The Node is Ready and its startup taints are gone.
    Initialized,
    /// Chosen for disruption (consolidation, drift, expiry, interruption); being replaced.
    Disrupting,
    /// Draining and terminating.
    Terminating,
    /// Instance gone; the row expires by TTL.
    Terminated,
}

impl ClaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Launching => "launching",
            ClaimState::Launched => "launched",
            ClaimState::Registered => "registered",
            ClaimState::Initialized => "initialized",
            ClaimState::Disrupting => "disrupting",
            ClaimState::Terminating => "terminating",
            ClaimState::Terminated => "terminated",
        }
    }

    /// Every state, in lifecycle order.
    pub const ALL: [ClaimState; 7] = [
        ClaimState::Launching,
        ClaimState::Launched,
        ClaimState::Registered,
        ClaimState::Initialized,
        ClaimState::Disrupting,
        ClaimState::Terminating,
        ClaimState::Terminated,
    ];

    pub fn parse(s: &str) -> Option<ClaimState> {
        ClaimState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Forward-only, with two shortcuts: any live state may go straight to terminating
    /// (interruption, registration timeout) and `Launching` may end as `Terminated` when the
    /// launch failed without creating an instance.
    pub fn can_become(self, next: ClaimState) -> bool {
        use ClaimState::*;
        match (self, next) {
            (a, b) if a == b => true,
            (Terminated, _) => false,
            (_, Terminating) | (_, Terminated) => true,
            (Launching, Launched) | (Launched, Registered) | (Registered, Initialized) => true,
            // A node that joined Ready, its startup taints already gone, is both at once.
            (Launched, Initialized) => true,
            (Launched | Registered | Initialized, Disrupting) => true,
            // A disruption whose replacement failed is called off.
            (Disrupting, Initialized) => true,
            _ => false,
        }
    }

    /// Whether the claim still stands for capacity (counted in flight or registered).
    pub fn is_live(self) -> bool {
        !matches!(self, ClaimState::Terminating | ClaimState::Terminated)
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was (or will be) bought for a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchedInstance {
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
    pub capacity_type: CapacityType,
    /// USD per hour at launch.
    pub price: f64,
}

/// A NodeClaim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeClaim {
    /// `<nodepool>-<suffix>`, also the Node name prefix and the CreateFleet client token seed.
    pub id: String,
    pub nodepool: String,
    pub nodeclass: String,
    pub state: ClaimState,
    /// Incremented on every write; writes are conditional on the previous value.
    pub version: u64,
    /// Instance types the launch may use, cheapest first.
    pub instance_types: Vec<String>,
    pub zones: Vec<String>,
    pub capacity_types: Vec<CapacityType>,
    /// Labels the node will carry (pool template labels and single-valued requirements).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub startup_taints: Vec<Taint>,
    /// Sum of the requests of the pods planned onto this claim, daemonsets included.
    pub requests: Resources,
    /// Pods (`namespace/name`) the plan put here; used to avoid launching twice for them.
    pub pods: Vec<String>,
    pub instance: Option<LaunchedInstance>,
    pub node_name: Option<String>,
    pub created_at: Millis,
    pub launched_at: Option<Millis>,
    pub registered_at: Option<Millis>,
    pub initialized_at: Option<Millis>,
    /// Why it is being disrupted or terminated, for the audit trail.
    pub reason: Option<String>,
    /// Graceful termination's progress, from the moment the claim became `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    /// What the disruption sweeps track and decide.
    #[serde(default)]
    pub disruption: DisruptionState,
}

/// What the disruption sweeps keep per claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DisruptionState {
    /// The hash of the NodePool template (and node class fields) the node was launched from;
    /// a node whose pool's hash now differs has drifted. `None` for claims that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    /// The AMI the instance runs: a node whose node class now selects other AMIs has drifted.
    /// `None` when it is not known (claims that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The launch template the instance came from: kept while the claim lives (see
    /// [`crate::launch_templates`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<String>,
    /// A hash of the pods on the node when the sweep last looked, and since when that set
    /// has not changed: `consolidateAfter` counts from the last pod event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_hash: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_event_at: Option<Millis>,
    /// Set while the claim is `Disrupting`: why, since when, and the replacement claims that
    /// must be initialized before the node is drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DisruptionStarted>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisruptionStarted {
    /// `empty`, `underutilized`, `drifted`, `expired`.
    pub reason: String,
    pub at: Millis,
    pub replacements: Vec<String>,
}

/// Where graceful termination stands. Kept in the claim row so that whichever invocation comes
/// next carries it on; everything else it needs (taint present, pods left) is read from the
/// cluster each pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Termination {
    pub started_at: Millis,
    /// When draining stops waiting and the instance goes anyway: the NodePool's
    /// `terminationGracePeriod` after the start; `None` waits for the drain.
    pub deadline: Option<Millis>,
    /// Set once TerminateInstances succeeded; what is left is deleting the Node and closing.
    pub instance_terminated_at: Option<Millis>,
}

impl NodeClaim {
    pub fn instance_id(&self) -> Option<&str> {
        self.instance.as_ref().map(|i| i.instance_id.as_str())
    }
}

/// An audit record of a decision that costs or saves money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: Millis,
    /// The function or tool that acted (`provisioner`, `sweeper`, `interruption`, `cli`).
    pub actor: String,
    /// `launch`, `terminate`, `replace`, …
    pub action: String,
    pub claim_id: String,
    pub reason: String,
    /// Change in hourly cost: positive for a launch, negative for a termination.
    pub delta_per_hour: f64,
}
