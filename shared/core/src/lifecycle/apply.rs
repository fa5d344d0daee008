//! Carrying out lifecycle decisions through the ports.

use std::collections::BTreeMap;

use serde::Serialize;

use super::termination::{DrainStep, disrupted_taint};
use super::{LifecycleAction, REGISTRATION_TIMEOUT};
use crate::labels;
use crate::nodeclaim::{AuditRecord, ClaimState, NodeClaim};
use crate::pod::Millis;
use crate::ports::{ClaimStore, Cloud, Cluster, ErrorKind, Eviction, NodePatch, PortError, PortResult};

/// What [`apply`] did. Claims are named by id, pods as `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleReport {
    pub registered: Vec<ClaimNode>,
    pub initialized: Vec<ClaimNode>,
    /// Claims whose node never joined; their instances were terminated.
    pub registration_timeouts: Vec<String>,
    /// Pods planned onto a claim that timed out.
    pub registration_timeout_pods: Vec<PodOnClaim>,
    /// The node of each claim this pass acted on, when it has one (for events).
    pub nodes_of: std::collections::BTreeMap<String, String>,
    /// Claims that entered graceful termination this pass, and why.
    pub terminating: Vec<ClaimReason>,
    pub evicted: Vec<PodOnNode>,
    /// Evictions a PodDisruptionBudget refused or do-not-disrupt holds.
    pub eviction_blocked: Vec<HeldEviction>,
    /// Claims closed after their instance was terminated.
    pub terminated: Vec<ClaimTerminated>,
    pub nodes_deleted: Vec<NodeDeleted>,
    /// Disruptions called off because a replacement failed, and why.
    pub called_off: Vec<ClaimReason>,
    /// Claims that moved since they were read; the next pass re-decides them.
    pub stale: Vec<String>,
    /// Steps that failed (throttling, outages); the next pass retries them.
    pub failures: Vec<String>,
}

/// A claim and its node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimNode {
    pub claim: String,
    pub node: String,
}

/// A claim and the reason for what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimReason {
    pub claim: String,
    pub reason: String,
}

/// A pod and the claim it was planned onto.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodOnClaim {
    pub pod: String,
    pub claim: String,
}

/// A pod and the node it ran on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodOnNode {
    pub pod: String,
    pub node: String,
}

/// A pod the drain of its node cannot evict yet, and what holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldEviction {
    pub pod: String,
    pub node: String,
    /// `PodDisruptionBudget`, or the do-not-disrupt annotation's words.
    pub reason: String,
}

/// A claim closed once its instance was terminated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimTerminated {
    pub claim: String,
    /// `None` when the claim never had an instance.
    pub instance: Option<String>,
    pub reason: String,
}

/// A Node deleted, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeDeleted {
    pub node: String,
    pub reason: String,
}

/// Carries out `actions`, each to the end or to its first failure (recorded; the rest still
/// run). A claim write that loses a race (`Conflict`, `NotFound`) leaves the claim to the next
/// pass.
pub async fn apply(
    actions: Vec<LifecycleAction>,
    cluster: &impl Cluster,
    cloud: &impl Cloud,
    store: &impl ClaimStore,
    actor: &str,
    now: Millis,
) -> LifecycleReport {
    let mut report = LifecycleReport::default();
    for action in actions {
        let what = describe(&action);
        let outcome = match action {
            LifecycleAction::Register {
                claim,
                node,
                mut patch,
                initialized,
            } => {
                if initialized {
                    patch
                        .labels
                        .insert(labels::NODE_INITIALIZED.to_string(), "true".to_string());
                }
                register(claim, node, patch, initialized, cluster, store, now, &mut report).await
            }
            LifecycleAction::Initialize { claim, node } => {
                initialize(claim, node, cluster, store, now, &mut report).await
            }
            LifecycleAction::RegistrationTimeout { claim } => {
                timeout(claim, cloud, store, actor, now, &mut report).await
            }
            LifecycleAction::Drain { claim, begin, step } => {
                drain(claim, begin, step, cluster, cloud, store, actor, now, &mut report).await
            }
            LifecycleAction::CallOff { mut claim, why } => {
                claim.state = ClaimState::Initialized;
                claim.reason = None;
                claim.disruption.started = None;
                match write(&claim, store, &mut report).await {
                    Ok(Some(_)) => {
                        report.called_off.push(ClaimReason {
                            claim: claim.id,
                            reason: why,
                        });
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            LifecycleAction::DeleteNode { node, reason } => match cluster.delete_node(&node).await {
                Ok(()) => {
                    report.nodes_deleted.push(NodeDeleted { node, reason });
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = outcome {
            report.failures.push(format!("{what}: {e}"));
        }
    }
    report
}

fn describe(action: &LifecycleAction) -> String {
    match action {
        LifecycleAction::Register { claim, node, .. } => format!("registering {node} for {}", claim.id),
        LifecycleAction::Initialize { claim, node } => format!("initializing {node} for {}", claim.id),
        LifecycleAction::RegistrationTimeout { claim } => format!("timing out {}", claim.id),
        LifecycleAction::Drain { claim, .. } => format!("terminating {}", claim.id),
        LifecycleAction::DeleteNode { node, .. } => format!("deleting node {node}"),
        LifecycleAction::CallOff { claim, .. } => format!("calling off the disruption of {}", claim.id),
    }
}

/// Writes the claim; `None` when it moved or vanished (recorded as stale).
async fn write(
    claim: &NodeClaim,
    store: &impl ClaimStore,
    report: &mut LifecycleReport,
) -> PortResult<Option<NodeClaim>> {
    match store.update(claim).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
            report.stale.push(claim.id.clone());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[allow(clippy::too_many_arguments)]
async fn register(
    mut claim: NodeClaim,
    node: String,
    patch: NodePatch,
    initialized: bool,
    cluster: &impl Cluster,
    store: &impl ClaimStore,
    now: Millis,
    report: &mut LifecycleReport,
) -> PortResult<()> {
    // The Node first: a claim marked Registered is one whose Node carries the labels.
    cluster.patch_node(&node, &patch).await?;
    if claim.state == ClaimState::Launched {
        claim.state = ClaimState::Registered;
        claim.registered_at = Some(now);
    }
    claim.node_name = Some(node.clone());
    if initialized {
        claim.state = ClaimState::Initialized;
        claim.initialized_at = Some(now);
    }
    if write(&claim, store, report).await?.is_some() {
        report.registered.push(ClaimNode {
            claim: claim.id.clone(),
            node: node.clone(),
        });
        if initialized {
            report.initialized.push(ClaimNode {
                claim: claim.id,
                node,
            });
        }
    }
    Ok(())
}

async fn initialize(
    mut claim: NodeClaim,
    node: String,
    cluster: &impl Cluster,
    store: &impl ClaimStore,
    now: Millis,
    report: &mut LifecycleReport,
) -> PortResult<()> {
    let patch = NodePatch {
        labels: BTreeMap::from([(labels::NODE_INITIALIZED.to_string(), "true".to_string())]),
        ..NodePatch::default()
    };
    cluster.patch_node(&node, &patch).await?;
    claim.state = ClaimState::Initialized;
    claim.initialized_at = Some(now);
    if write(&claim, store, report).await?.is_some() {
        report.initialized.push(ClaimNode {
            claim: claim.id,
            node,
        });
    }
    Ok(())
}

async fn timeout(
    mut claim: NodeClaim,
    cloud: &impl Cloud,
    store: &impl ClaimStore,
    actor: &str,
    now: Millis,
    report: &mut LifecycleReport,
) -> PortResult<()> {
    if let Some(id) = claim.instance_id() {
        terminate_instance(cloud, id).await?;
    }
    claim.state = ClaimState::Terminated;
    claim.reason = Some(REGISTRATION_TIMEOUT.to_string());
    let Some(claim) = write(&claim, store, report).await? else {
        return Ok(());
    };
    report.registration_timeouts.push(claim.id.clone());
    report
        .registration_timeout_pods
        .extend(claim.pods.iter().map(|p| PodOnClaim {
            pod: p.clone(),
            claim: claim.id.clone(),
        }));
    audit(store, actor, &claim, REGISTRATION_TIMEOUT, now).await
}

#[allow(clippy::too_many_arguments)]
async fn drain(
    claim: NodeClaim,
    begin: bool,
    step: DrainStep,
    cluster: &impl Cluster,
    cloud: &impl Cloud,
    store: &impl ClaimStore,
    actor: &str,
    now: Millis,
    report: &mut LifecycleReport,
) -> PortResult<()> {
    let reason = claim.reason.clone().unwrap_or_else(|| "terminating".into());
    let mut claim = if begin {
        match write(&claim, store, report).await? {
            Some(c) => {
                report.terminating.push(ClaimReason {
                    claim: c.id.clone(),
                    reason: reason.clone(),
                });
                if let Some(node) = &c.node_name {
                    report.nodes_of.insert(c.id.clone(), node.clone());
                }
                c
            }
            None => return Ok(()),
        }
    } else {
        claim
    };
    if let Some(node) = &step.node {
        if step.taint {
            match cluster.cordon(node, &disrupted_taint()).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for pod in &step.evict {
            let key = pod.key();
            match cluster.evict(&pod.namespace, &pod.name).await? {
                Eviction::Evicted => report.evicted.push(PodOnNode {
                    pod: key,
                    node: node.clone(),
                }),
                Eviction::Blocked => report.eviction_blocked.push(HeldEviction {
                    pod: key,
                    node: node.clone(),
                    reason: "PodDisruptionBudget".into(),
                }),
                Eviction::Gone => {}
            }
        }
        for held in &step.waiting {
            report.eviction_blocked.push(HeldEviction {
                pod: held.pod.clone(),
                node: node.clone(),
                reason: held.reason.clone(),
            });
        }
    }
    if !step.finish {
        return Ok(());
    }
    let instance = claim.instance_id().map(str::to_string);
    let progress = claim.termination.get_or_insert(crate::nodeclaim::Termination {
        started_at: now,
        deadline: None,
        instance_terminated_at: None,
    });
    if progress.instance_terminated_at.is_none() {
        if let Some(id) = &instance {
            terminate_instance(cloud, id).await?;
        }
        progress.instance_terminated_at = Some(now);
        claim = match write(&claim, store, report).await? {
            Some(c) => c,
            None => return Ok(()),
        };
    }
    if let Some(node) = &step.node {
        cluster.delete_node(node).await?;
        report.nodes_deleted.push(NodeDeleted {
            node: node.clone(),
            reason: reason.clone(),
        });
    }
    claim.state = ClaimState::Terminated;
    let Some(claim) = write(&claim, store, report).await? else {
        return Ok(());
    };
    report.terminated.push(ClaimTerminated {
        claim: claim.id.clone(),
        instance,
        reason: reason.clone(),
    });
    audit(store, actor, &claim, &reason, now).await
}

/// Terminates an instance; one already gone counts as done.
async fn terminate_instance(cloud: &impl Cloud, id: &str) -> PortResult<()> {
    match cloud.terminate(id).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

async fn audit(
    store: &impl ClaimStore,
    actor: &str,
    claim: &NodeClaim,
    reason: &str,
    now: Millis,
) -> PortResult<()> {
    let price = claim.instance.as_ref().map_or(0.0, |i| i.price);
    store
        .audit(&AuditRecord {
            at: now,
            actor: actor.to_string(),
            action: "terminate".into(),
            claim_id: claim.id.clone(),
            reason: reason.to_string(),
            delta_per_hour: -price,
        })
        .await
        .map_err(|e: PortError| e)
}
