//! Interruption: EC2's warnings and state changes, as EventBridge delivers them into the
//! interruption queue, turned into actions on our claims.
//!
//! The four sources Karpenter subscribes to: `EC2 Spot Instance Interruption Warning`,
//! `EC2 Instance Rebalance Recommendation`, `AWS Health Event` (service EC2, category
//! `scheduledChange`, with affected instances) and `EC2 Instance State-change Notification`.
//! [`parse`] reads one message body strictly; [`plan`] decides, for the instances that are
//! ours, what to do; [`apply`] does it through the store. The node's drain and the replacement
//! follow in the same invocation's provisioning pass: the two-minute warning leaves no time to
//! wait for a sweep.
//!
//! | notice                                  | action |
//! |-----------------------------------------|--------|
//! | spot interruption warning               | graceful termination now, deadline two minutes; the offering (type, zone, spot) unavailable for 3 minutes |
//! | scheduled change, stopping, stopped, shutting-down | graceful termination now |
//! | terminated                              | the instance is gone: delete the Node, close the claim |
//! | rebalance recommendation                | recorded; or, if configured, as a spot warning |
//!
//! A notice for an instance that is not ours, or whose claim is already terminating, changes
//! nothing: a message delivered twice does nothing twice.

mod apply;
mod parse;

use std::collections::BTreeMap;

pub use apply::{ClaimFailure, ClaimNotice, InterruptionReport, apply};
pub use parse::{ParseError, parse};

use crate::catalog::CapacityType;
use crate::nodeclaim::{ClaimState, NodeClaim};
use crate::pod::Millis;
use crate::ports::OfferingKey;

/// EC2 takes a spot instance back two minutes after its warning.
pub const SPOT_NOTICE_MS: Millis = 2 * 60 * 1000;

/// What a message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    SpotInterruption,
    Rebalance,
    ScheduledChange,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SpotInterruption => "spot_interruption",
            Kind::Rebalance => "rebalance",
            Kind::ScheduledChange => "scheduled_change",
            Kind::Stopping => "stopping",
            Kind::Stopped => "stopped",
            Kind::ShuttingDown => "shutting_down",
            Kind::Terminated => "terminated",
        }
    }
}

/// One message, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The EventBridge event id.
    pub id: String,
    pub kind: Kind,
    pub instance_ids: Vec<String>,
}

/// What to do with rebalance recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rebalance {
    /// Record it (Karpenter's default).
    #[default]
    Record,
    /// Treat it as a spot interruption warning.
    Drain,
}

/// One action on one claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start graceful termination now, with this deadline; mark the offering unavailable.
    Drain {
        claim: NodeClaim,
        kind: Kind,
        deadline: Option<Millis>,
        unavailable: Option<OfferingKey>,
    },
    /// The instance is gone: the claim only has its Node to delete and itself to close.
    Gone { claim: NodeClaim },
    /// Nothing to do but say so.
    Record { claim_id: String, kind: Kind },
}

/// Decides the actions for `notices` over the live claims (by instance id). `grace` gives a
/// pool's `terminationGracePeriod`, the deadline for non-spot drains.
pub fn plan(
    notices: &[Notice],
    claims: &BTreeMap<String, NodeClaim>,
    rebalance: Rebalance,
    grace: &dyn Fn(&str) -> Option<Millis>,
    now: Millis,
) -> Vec<Action> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&str, Kind> = BTreeMap::new();
    for notice in notices {
        for id in &notice.instance_ids {
            let Some(claim) = claims.get(id) else { continue };
            // The strongest notice per instance wins within a batch.
            if seen.get(id.as_str()).is_some_and(|k| *k >= notice.kind) {
                continue;
            }
            seen.insert(id, notice.kind);
            let kind = match (notice.kind, rebalance) {
                (Kind::Rebalance, Rebalance::Drain) => Kind::SpotInterruption,
                (k, _) => k,
            };
            if let Some(action) = action(claim, kind, grace, now) {
                out.retain(|a: &Action| claim_of(a) != claim.id);
                out.push(action);
            }
        }
    }
    out
}

fn claim_of(action: &Action) -> &str {
    match action {
        Action::Drain { claim, .. } | Action::Gone { claim } => &claim.id,
        Action::Record { claim_id, .. } => claim_id,
    }
}

fn action(
    claim: &NodeClaim,
    kind: Kind,
    grace: &dyn Fn(&str) -> Option<Millis>,
    now: Millis,
) -> Option<Action> {
    if claim.state == ClaimState::Terminated {
        return None;
    }
    let terminating = claim.state == ClaimState::Terminating;
    match kind {
        Kind::Rebalance => Some(Action::Record {
            claim_id: claim.id.clone(),
            kind,
        }),
        Kind::Terminated => {
            let done = claim
                .termination
                .as_ref()
                .is_some_and(|t| t.instance_terminated_at.is_some());
            (!done).then(|| Action::Gone { claim: claim.clone() })
        }
        _ if terminating => None,
        Kind::SpotInterruption => {
            let instance = claim.instance.as_ref();
            Some(Action::Drain {
                claim: claim.clone(),
                kind,
                deadline: Some(now + SPOT_NOTICE_MS),
                unavailable: instance
                    .filter(|i| i.capacity_type == CapacityType::Spot)
                    .map(|i| OfferingKey {
                        instance_type: i.instance_type.clone(),
                        zone: i.zone.clone(),
                        capacity_type: CapacityType::Spot,
                    }),
            })
        }
        Kind::ScheduledChange | Kind::Stopping | Kind::Stopped | Kind::ShuttingDown => Some(Action::Drain {
            claim: claim.clone(),
            kind,
            deadline: grace(&claim.nodepool).map(|g| now + g),
            unavailable: None,
        }),
    }
}

#[cfg(test)]
mod tests;
