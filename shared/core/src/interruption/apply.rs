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
    /// (claim, kind): claims moved to graceful termination.
    pub draining: Vec<(String, Kind)>,
    /// Claims whose instance is gone: only the Node and the claim are left to close.
    pub gone: Vec<String>,
    /// (claim, kind): notices recorded without action (rebalance recommendations).
    pub recorded: Vec<(String, Kind)>,
    /// Claims that moved since they were read (another function acted first).
    pub stale: Vec<String>,
    /// (claim, error): actions that failed and must be retried.
    pub failures: Vec<(String, PortError)>,
    /// The instance of every claim acted on, to trace actions back to messages.
    pub instances: std::collections::BTreeMap<String, String>,
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
            Action::Record { claim_id, kind } => report.recorded.push((claim_id, kind)),
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
                    report.failures.push((claim.id.clone(), e));
                    continue;
                }
                let mut next = start_termination(&claim, INTERRUPTED, None, now);
                if let Some(t) = next.termination.as_mut() {
                    t.deadline = deadline;
                }
                match store.update(&next).await {
                    Ok(_) => report.draining.push((claim.id, kind)),
                    Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
                        report.stale.push(claim.id)
                    }
                    Err(e) => report.failures.push((claim.id, e)),
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
                    Err(e) => report.failures.push((claim.id, e)),
                }
            }
        }
    }
    report
}
