//! Carrying out interruption actions through the claim store.

use super::{Action, Kind};
use crate::lifecycle::start_termination;
use crate::nodeclaim::{ClaimState, Termination};
use crate::pod::Millis;
use crate::ports::{ClaimStore, ErrorKind, PortError};
use crate::unavailable::UNAVAILABLE_FOR_MS;

/// The reason interrupted claims are terminated with.
pub const INTERRUPTED: &str = "interrupted";

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct InterruptionReport {
    /// Claims moved to graceful termination.
    pub draining: Vec<ClaimNotice>,
    /// Claims whose instance is gone: only the Node and the claim are left to close.
    pub gone: Vec<String>,
    /// Notices recorded without action (rebalance recommendations).
    pub recorded: Vec<ClaimNotice>,
    /// Claims that moved since they were read (another function acted first).
    pub stale: Vec<String>,
    /// Actions that failed and must be retried.
    pub failures: Vec<ClaimFailure>,
    /// The instance of every claim acted on, to trace actions back to messages.
    pub instances: std::collections::BTreeMap<String, String>,
}

/// A claim and the kind of notice about its instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimNotice {
    pub claim: String,
    pub kind: Kind,
}

/// A claim whose action failed, and the error.
#[derive(Debug)]
pub struct ClaimFailure {
    pub claim: String,
    pub error: PortError,
}

/// Writes each action. A claim that moved meanwhile is left (whoever moved it acted).
pub async fn apply(actions: Vec<Action>, store: &impl ClaimStore, now: Millis) -> InterruptionReport {
    let mut report = InterruptionReport::default();
    for action in actions {
        if let Action::Drain { claim, .. } | Action::Gone { claim } = &action
            && let Some(instance) = claim.instance_id()
        {
            report.instances.insert(claim.id.clone(), instance.to_string());
        }
        match action {
            Action::Record { claim_id, kind } => report.recorded.push(ClaimNotice {
                claim: claim_id,
                kind,
            }),
            Action::Drain {
                claim,
                kind,
                deadline,
                unavailable,
            } => {
                // The offering first: the replacement must not land where the interruption was.
                if let Some(key) = &unavailable
                    && let Err(e) = store.mark_unavailable(key, now + UNAVAILABLE_FOR_MS).await
                {
                    report.failures.push(ClaimFailure {
                        claim: claim.id.clone(),
                        error: e,
                    });
                    continue;
                }
                let mut next = start_termination(&claim, INTERRUPTED, None, now);
                if let Some(t) = next.termination.as_mut() {
                    t.deadline = deadline;
                }
                match store.update(&next).await {
                    Ok(_) => report.draining.push(ClaimNotice {
                        claim: claim.id,
                        kind,
                    }),
                    Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
                        report.stale.push(claim.id)
                    }
                    Err(error) => report.failures.push(ClaimFailure {
                        claim: claim.id,
                        error,
                    }),
                }
            }
            Action::Gone { claim } => {
                let mut next = claim.clone();
                if next.state != ClaimState::Terminating {
                    next.state = ClaimState::Terminating;
                    next.reason = Some(INTERRUPTED.into());
                }
                let started = next.termination.as_ref().map_or(now, |t| t.started_at);
                next.termination = Some(Termination {
                    started_at: started,
                    deadline: None,
                    instance_terminated_at: Some(now),
                });
                match store.update(&next).await {
                    Ok(_) => report.gone.push(claim.id),
                    Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
                        report.stale.push(claim.id)
                    }
                    Err(error) => report.failures.push(ClaimFailure {
                        claim: claim.id,
                        error,
                    }),
                }
            }
        }
    }
    report
}
