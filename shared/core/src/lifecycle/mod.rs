//! The life of a node after its launch: registration, initialization, the registration
//! timeout, Nodes deleted by users, and graceful termination.
//!
//! Like [`crate::reconcile`], [`decide`] is a pure decision over plain data (claims, the
//! cluster's nodes with their pods, the instances alive, the pools) and [`apply`] carries it
//! out through the ports. Every action is idempotent and re-decided from what it observes, so
//! an invocation killed between two steps leaves nothing that the next pass does not finish.
//!
//! | observed                                                    | action |
//! |-------------------------------------------------------------|--------|
//! | launched claim, a Node with its providerID                  | label and taint the Node as Karpenter does, hold it with the finalizer; claim `Registered` |
//! | registered claim, Node Ready, startup and ephemeral taints gone | label `karpenter.sh/initialized`; claim `Initialized` |
//! | launched claim, no Node after the registration TTL          | terminate the instance; claim `Terminated`, "registration timeout" |
//! | live claim whose Node is being deleted, or is gone          | graceful termination, "node deleted" |
//! | `Terminating` claim                                         | taint, evict, terminate, delete the Node, close ([`termination`]) |
//! | a Node of ours without a live claim, its instance gone or the Node being deleted | delete the Node |

mod apply;
pub mod termination;

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::InstanceType;
use crate::labels;
use crate::nodeclaim::{ClaimState, NodeClaim, Termination};
use crate::pod::{Millis, Node};
use crate::ports::NodePatch;
use crate::scheduler::{ExistingNode, PoolInput};

pub use apply::{
    ClaimNode, ClaimReason, ClaimTerminated, HeldEviction, LifecycleReport, NodeDeleted, PodOnClaim,
    PodOnNode, apply,
};
pub use termination::DrainStep;

/// Karpenter's default: a claim whose node has not joined 15 minutes after launch is given up.
pub const DEFAULT_REGISTRATION_TTL_MS: Millis = 15 * 60 * 1000;

/// The label naming the claim on every Node nodewright registers: how a Node is known as ours
/// (Karpenter's own nodes carry `karpenter.sh/nodepool` too).
pub const CLAIM_LABEL: &str = "nodewright.io/nodeclaim";

pub const REGISTRATION_TIMEOUT: &str = "registration timeout";
pub const NODE_DELETED: &str = "node deleted";

/// How patient the lifecycle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// A launched claim with no Node this long after launch is terminated.
    pub registration_ttl_ms: Millis,
    /// A Node of ours whose instance the cloud does not list is deleted only once it is older
    /// than this (EC2's listing is eventually consistent).
    pub launch_grace_ms: Millis,
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        LifecyclePolicy {
            registration_ttl_ms: DEFAULT_REGISTRATION_TTL_MS,
            launch_grace_ms: crate::reconcile::DEFAULT_LAUNCH_GRACE_MS,
        }
    }
}

/// What the lifecycle looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The store's live claims.
    pub claims: &'a [NodeClaim],
    /// The cluster's nodes with the pods bound to them.
    pub nodes: &'a [ExistingNode],
    /// Ids of the instances the cloud lists as neither shutting down nor terminated.
    pub alive_instances: &'a BTreeSet<String>,
    pub pools: &'a [PoolInput],
    pub now: Millis,
}

/// One step of a node's life.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleAction {
    /// The claim's Node joined: patch it, then move the claim to `Registered` (and on to
    /// `Initialized` when `initialized`: the Node is already Ready without startup taints).
    Register {
        claim: NodeClaim,
        node: String,
        patch: NodePatch,
        initialized: bool,
    },
    /// The Node is Ready and its startup taints are gone: label it, claim `Initialized`.
    Initialize { claim: NodeClaim, node: String },
    /// No Node within the registration TTL: terminate the instance, close the claim.
    RegistrationTimeout { claim: NodeClaim },
    /// Graceful termination of a claim: `claim` is as it must be stored (`Terminating`, its
    /// progress); `begin` when this pass moves it there.
    Drain {
        claim: NodeClaim,
        begin: bool,
        step: DrainStep,
    },
    /// A Node of ours that no live claim stands for: remove it (finalizer first).
    DeleteNode { node: String, reason: String },
    /// A disruption whose replacement failed: the node stays (`Initialized` again).
    CallOff { claim: NodeClaim, why: String },
}

/// The labels Karpenter puts on a node that its kubelet could not: the instance type's
/// well-known labels, zone, capacity type, NodePool, the claim's labels, `registered`, and
/// nodewright's claim label.
pub fn registration_labels(
    claim: &NodeClaim,
    instance_type: Option<&InstanceType>,
) -> BTreeMap<String, String> {
    let mut out = instance_type.map(|t| t.labels.clone()).unwrap_or_default();
    out.extend(claim.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.insert(labels::NODEPOOL.into(), claim.nodepool.clone());
    if let Some(instance) = &claim.instance {
        out.insert(labels::INSTANCE_TYPE.into(), instance.instance_type.clone());
        out.insert(labels::ZONE.into(), instance.zone.clone());
        out.insert(
            labels::CAPACITY_TYPE.into(),
            instance.capacity_type.as_str().into(),
        );
    }
    out.insert(labels::NODE_REGISTERED.into(), "true".into());
    out.insert(CLAIM_LABEL.into(), claim.id.clone());
    out
}

/// The catalog entry of the claim's launched type, found through its pool's node class.
pub fn instance_type_of<'a>(claim: &NodeClaim, pools: &'a [PoolInput]) -> Option<&'a InstanceType> {
    let name = &claim.instance.as_ref()?.instance_type;
    pools
        .iter()
        .filter(|p| p.nodeclass.name() == claim.nodeclass)
        .find_map(|p| p.instance_types.iter().find(|t| &t.name == name))
}

/// Whether a registered Node has finished starting: Ready, and none of the claim's startup
/// taints or the ephemeral taints left.
pub fn is_initialized(node: &Node, claim: &NodeClaim) -> bool {
    node.ready
        && !node.taints.iter().any(|t| {
            labels::EPHEMERAL_TAINTS.contains(&t.key.as_str())
                || claim
                    .startup_taints
                    .iter()
                    .any(|s| s.key == t.key && s.effect == t.effect)
        })
}

/// Decides the lifecycle steps due at `observed.now`, ordered by claim id, then node name.
pub fn decide(observed: &Observed<'_>, policy: &LifecyclePolicy) -> Vec<LifecycleAction> {
    let now = observed.now;
    let by_instance: BTreeMap<&str, &ExistingNode> = observed
        .nodes
        .iter()
        .filter_map(|n| Some((n.node.instance_id()?, n)))
        .collect();
    let mut claims: Vec<&NodeClaim> = observed
        .claims
        .iter()
        .filter(|c| c.state != ClaimState::Terminated)
        .collect();
    claims.sort_by(|a, b| a.id.cmp(&b.id));

    let mut actions = Vec::new();
    let mut accounted: BTreeSet<&str> = BTreeSet::new();
    for claim in claims {
        let node = match claim.instance_id() {
            Some(id) => by_instance.get(id).copied(),
            None => None,
        };
        if let Some(n) = node {
            accounted.insert(n.node.name.as_str());
        }
        let launched_at = claim.launched_at.unwrap_or(claim.created_at);
        let instance_gone = claim.instance_id().is_some_and(|id| {
            !observed.alive_instances.contains(id) && now.saturating_sub(launched_at) > policy.launch_grace_ms
        });
        let action = match (claim.state, node) {
            (ClaimState::Launching, _) => None,
            (ClaimState::Terminating, node) => Some(LifecycleAction::Drain {
                claim: claim.clone(),
                begin: false,
                step: termination::step(claim, node, instance_gone, now),
            }),
            (_, Some(n)) if n.node.deleting => Some(begin_termination(
                claim,
                Some(n),
                instance_gone,
                NODE_DELETED,
                observed,
            )),
            (ClaimState::Launched, Some(n)) => Some(register(claim, &n.node, observed.pools)),
            (ClaimState::Launched, None) => (now.saturating_sub(launched_at) > policy.registration_ttl_ms)
                .then(|| LifecycleAction::RegistrationTimeout { claim: claim.clone() }),
            (ClaimState::Registered, Some(n)) => {
                let patch = register_patch(claim, observed.pools);
                if !has_patch(&n.node, &patch) {
                    // Registered but not labelled: a pass died between the patch and the
                    // claim write, or the Node registered again.
                    Some(register(claim, &n.node, observed.pools))
                } else if is_initialized(&n.node, claim) {
                    Some(LifecycleAction::Initialize {
                        claim: claim.clone(),
                        node: n.node.name.clone(),
                    })
                } else {
                    None
                }
            }
            (ClaimState::Registered | ClaimState::Initialized | ClaimState::Disrupting, None) => Some(
                begin_termination(claim, None, instance_gone, NODE_DELETED, observed),
            ),
            (ClaimState::Disrupting, Some(n)) => disrupting(claim, n, instance_gone, observed),
            _ => None,
        };
        actions.extend(action);
    }

    let mut nodes: Vec<&ExistingNode> = observed
        .nodes
        .iter()
        .filter(|n| n.node.labels.contains_key(CLAIM_LABEL) && !accounted.contains(n.node.name.as_str()))
        .collect();
    nodes.sort_by(|a, b| a.node.name.cmp(&b.node.name));
    for n in nodes {
        let settled = now.saturating_sub(n.node.created_at) > policy.launch_grace_ms;
        let alive = n
            .node
            .instance_id()
            .is_some_and(|id| observed.alive_instances.contains(id));
        let reason = if n.node.deleting {
            "node deleted, its claim already closed"
        } else if !alive && settled {
            "instance gone"
        } else {
            continue;
        };
        actions.push(LifecycleAction::DeleteNode {
            node: n.node.name.clone(),
            reason: reason.into(),
        });
    }
    actions
}

/// A node being replaced: drained once every replacement is initialized, kept if one failed.
fn disrupting(
    claim: &NodeClaim,
    node: &ExistingNode,
    instance_gone: bool,
    observed: &Observed<'_>,
) -> Option<LifecycleAction> {
    let Some(started) = &claim.disruption.started else {
        let reason = claim.reason.clone().unwrap_or_else(|| "disrupted".into());
        return Some(begin_termination(
            claim,
            Some(node),
            instance_gone,
            &reason,
            observed,
        ));
    };
    let mut ready = true;
    for id in &started.replacements {
        match observed.claims.iter().find(|c| &c.id == id).map(|c| c.state) {
            Some(ClaimState::Initialized) => {}
            Some(ClaimState::Launching | ClaimState::Launched | ClaimState::Registered) => ready = false,
            _ => {
                return Some(LifecycleAction::CallOff {
                    claim: claim.clone(),
                    why: format!("replacement {id} did not come up"),
                });
            }
        }
    }
    ready.then(|| begin_termination(claim, Some(node), instance_gone, &started.reason, observed))
}

fn register(claim: &NodeClaim, node: &Node, pools: &[PoolInput]) -> LifecycleAction {
    LifecycleAction::Register {
        claim: claim.clone(),
        node: node.name.clone(),
        patch: register_patch(claim, pools),
        initialized: is_initialized(node, claim),
    }
}

fn register_patch(claim: &NodeClaim, pools: &[PoolInput]) -> NodePatch {
    NodePatch {
        labels: registration_labels(claim, instance_type_of(claim, pools)),
        taints: claim.taints.clone(),
        finalizer: true,
    }
}

/// Whether the node already carries every label and taint of the patch.
fn has_patch(node: &Node, patch: &NodePatch) -> bool {
    patch.labels.iter().all(|(k, v)| node.labels.get(k) == Some(v))
        && patch
            .taints
            .iter()
            .all(|t| node.taints.iter().any(|h| h.key == t.key && h.effect == t.effect))
}

/// Moves a claim into graceful termination, with the deadline its pool's
/// `terminationGracePeriod` sets (none when the pool is gone or sets none).
fn begin_termination(
    claim: &NodeClaim,
    node: Option<&ExistingNode>,
    instance_gone: bool,
    reason: &str,
    observed: &Observed<'_>,
) -> LifecycleAction {
    let grace = observed
        .pools
        .iter()
        .find(|p| p.nodepool.name() == claim.nodepool)
        .and_then(|p| termination_grace(&p.nodepool));
    let next = start_termination(claim, reason, grace, observed.now);
    let step = termination::step(&next, node, instance_gone, observed.now);
    LifecycleAction::Drain {
        claim: next,
        begin: true,
        step,
    }
}

/// The pool's `terminationGracePeriod`, if it sets one.
pub fn termination_grace(nodepool: &crate::api::NodePool) -> Option<Millis> {
    let raw = nodepool.spec.template.spec.termination_grace_period.as_deref()?;
    crate::api::parse_duration(raw).ok().flatten()
}

/// The claim as it is stored once it enters graceful termination: what a disruption or an
/// interruption writes to hand a node to the termination machine.
pub fn start_termination(
    claim: &NodeClaim,
    reason: &str,
    grace_ms: Option<Millis>,
    now: Millis,
) -> NodeClaim {
    let mut next = claim.clone();
    next.state = ClaimState::Terminating;
    next.reason = Some(reason.to_string());
    next.termination = Some(Termination {
        started_at: now,
        deadline: grace_ms.map(|g| now.saturating_add(g)),
        instance_terminated_at: None,
    });
    next
}

/// The scheduler's view of a node nodewright launched: until it is initialized it is capacity
/// in flight, so it carries the labels registration gives it even before the patch lands, and
/// a node being terminated takes no pods.
pub fn planning_view(nodes: &mut [ExistingNode], claims: &[NodeClaim], pools: &[PoolInput]) {
    let by_instance: BTreeMap<&str, &NodeClaim> = claims
        .iter()
        .filter_map(|c| Some((c.instance_id()?, c)))
        .collect();
    for n in nodes {
        let Some(claim) = n.node.instance_id().and_then(|id| by_instance.get(id)) else {
            continue;
        };
        // The labels were read before this pass's patches, or the patch has not landed yet:
        // what registration puts there counts already.
        for (k, v) in registration_labels(claim, instance_type_of(claim, pools)) {
            n.node.labels.entry(k).or_insert(v);
        }
        if matches!(
            claim.state,
            ClaimState::Disrupting | ClaimState::Terminating | ClaimState::Terminated
        ) {
            n.node.unschedulable = true;
        }
    }
}

/// Pods that graceful termination will move off their nodes (nodes of `Terminating` or
/// `Disrupting` claims, and Nodes being deleted), whose new capacity should be on its way while
/// they drain, as Karpenter provisions for them.
pub fn reschedulable_pods(nodes: &[ExistingNode], claims: &[NodeClaim]) -> Vec<crate::pod::Pod> {
    // A node being replaced has its replacement in flight already.
    let leaving: BTreeSet<&str> = claims
        .iter()
        .filter(|c| match c.state {
            ClaimState::Terminating => true,
            ClaimState::Disrupting => c
                .disruption
                .started
                .as_ref()
                .is_none_or(|s| s.replacements.is_empty()),
            _ => false,
        })
        .filter_map(|c| c.instance_id())
        .collect();
    nodes
        .iter()
        .filter(|n| n.node.deleting || n.node.instance_id().is_some_and(|id| leaving.contains(id)))
        .flat_map(|n| n.pods.iter().filter(|p| termination::must_move(p)).cloned())
        .collect()
}

#[cfg(test)]
mod tests;
