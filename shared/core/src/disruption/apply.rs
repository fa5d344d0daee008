//! Carrying out a sweep's decisions: nodes without a replacement go straight to graceful
//! termination; nodes that need one wait in `Disrupting` while it launches, and the lifecycle
//! drains them once it is initialized (or calls the disruption off if it fails).

use super::{Decision, SweepPlan};
use crate::lifecycle::{start_termination, termination_grace};
use crate::nodeclaim::{AuditRecord, ClaimState, DisruptionStarted, NodeClaim};
use crate::pod::Millis;
use crate::ports::{ClaimStore, Cloud, ErrorKind, PortResult};
use crate::provisioning::{LaunchSummary, RoundConfig};
use crate::scheduler::PoolInput;
use crate::wiring::Ports;

/// What [`apply`] did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The decisions carried out (those whose replacement could not launch are left out).
    pub decisions: Vec<Decision>,
    pub replacements: Vec<LaunchedReplacement>,
    /// Claims that moved since the sweep read them; the next sweep decides again.
    pub stale: Vec<String>,
    pub failures: Vec<String>,
}

/// A replacement launched for one of [`SweepReport::decisions`].
#[derive(Debug, Clone)]
pub struct LaunchedReplacement {
    /// The decision's index in [`SweepReport::decisions`].
    pub decision: usize,
    pub launch: LaunchSummary,
}

/// Writes the pod events, then carries out each decision. Never stops early.
pub async fn apply<C, K: Cloud, S: ClaimStore>(
    plan: SweepPlan,
    pools: &[PoolInput],
    ports: &Ports<'_, C, K, S>,
    config: &RoundConfig,
) -> SweepReport {
    let Ports { store, clock, .. } = *ports;
    let mut report = SweepReport::default();
    let mut written: Vec<NodeClaim> = Vec::new();
    for claim in plan.pod_events {
        match store.update(&claim).await {
            Ok(c) => written.push(c),
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
                report.stale.push(claim.id)
            }
            Err(e) => report
                .failures
                .push(format!("recording pod events of {}: {e}", claim.id)),
        }
    }
    let now = clock.now();
    for decision in plan.decisions {
        let mut launched = Vec::new();
        let mut failed = false;
        for planned in &decision.replacements {
            match crate::provisioning::launch_claim(ports, pools, planned, config).await {
                Ok(summary) => launched.push(summary),
                Err(e) => {
                    report
                        .failures
                        .push(format!("replacement for {:?}: {e}", decision.nodes()));
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            // Replacements already launched stay: their pods are real capacity needs only if
            // the candidates go, so they are left for emptiness to take back.
            continue;
        }
        let replacement_ids: Vec<String> = launched.iter().map(|l| l.claim_id.clone()).collect();
        let mut moved = 0;
        for candidate in &decision.candidates {
            // The pod-event write above may have moved the claim's version.
            let current = written
                .iter()
                .find(|c| c.id == candidate.claim.id)
                .unwrap_or(&candidate.claim);
            let next = if replacement_ids.is_empty() {
                let grace = pools
                    .iter()
                    .find(|p| p.nodepool.name() == current.nodepool)
                    .and_then(|p| termination_grace(&p.nodepool));
                start_termination(current, decision.reason.as_str(), grace, now)
            } else {
                let mut next = current.clone();
                next.state = ClaimState::Disrupting;
                next.reason = Some(decision.reason.as_str().to_string());
                next.disruption.started = Some(DisruptionStarted {
                    reason: decision.reason.as_str().to_string(),
                    at: now,
                    replacements: replacement_ids.clone(),
                });
                next
            };
            match store.update(&next).await {
                Ok(_) => moved += 1,
                Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {
                    report.stale.push(next.id.clone())
                }
                Err(e) => report.failures.push(format!("disrupting {}: {e}", next.id)),
            }
        }
        if moved == 0 {
            continue;
        }
        let index = report.decisions.len();
        if let Err(e) = audit(store, &decision, &replacement_ids, config, now).await {
            report.failures.push(format!("audit: {e}"));
        }
        report
            .replacements
            .extend(launched.into_iter().map(|launch| LaunchedReplacement {
                decision: index,
                launch,
            }));
        report.decisions.push(decision);
    }
    report
}

async fn audit<S: ClaimStore>(
    store: &S,
    decision: &Decision,
    replacements: &[String],
    config: &RoundConfig,
    now: Millis,
) -> PortResult<()> {
    for c in &decision.candidates {
        let mut reason = format!("{} ({})", decision.reason.as_str(), c.node);
        if !replacements.is_empty() {
            reason.push_str(&format!(", replaced by {}", replacements.join(", ")));
        }
        store
            .audit(&AuditRecord {
                at: now,
                actor: config.actor.clone(),
                action: "disrupt".into(),
                claim_id: c.claim.id.clone(),
                reason,
                delta_per_hour: -decision.savings_per_hour / decision.candidates.len() as f64,
            })
            .await?;
    }
    Ok(())
}
