//! The sweeper Lambda: one disruption sweep per EventBridge schedule tick.
//!
//! It runs in the provisioner's package because it needs the same adapters (the Kubernetes API,
//! EC2, the claims table) and configuration; it is its own binary (`sweeper`) and function. A
//! sweep only decides which nodes go and launches the replacements they need; the
//! provisioner's pass, a minute later at most, drains and terminates them.

use std::time::Instant;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use nodewright_core::pass::{SweepPassReport, run_sweep};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, Cloud, Cluster, PortResult};
use serde_json::{Value, json};

use crate::Provisioner;

/// Runs one sweep with the provisioner's adapters, under the cluster's lease.
pub async fn sweep<K: Cluster, C: Cloud, S: ClaimStore>(
    adapters: &Provisioner<K, C, S>,
    request_id: &str,
    deadline: Option<Millis>,
) -> PortResult<SweepPassReport> {
    let config = adapters.pass_config("sweeper", request_id, deadline);
    run_sweep(&adapters.ports(), &config).await
}

/// The Lambda handler: a scheduled event in, a summary out; a failed sweep is an error (the
/// next tick sweeps again).
pub async fn function_handler<K: Cluster, C: Cloud, S: ClaimStore>(
    adapters: &Provisioner<K, C, S>,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let _: EventBridgeEvent<Value> = serde_json::from_value(event.payload).map_err(|e| {
        tracing::error!(error = %e, "the event is not an EventBridge event");
        lambda_runtime::Error::from(format!("unrecognised event: {e}"))
    })?;
    let deadline = crate::deadline_of(&event.context);
    let started = Instant::now();
    let result = sweep(adapters, &event.context.request_id, deadline).await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    adapters.metrics.emit(&crate::metrics::sweep(
        result.as_ref().ok(),
        ms,
        adapters.clock.now(),
    ));
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, "sweep failed");
            return Err(format!("sweep failed: {e}").into());
        }
    };
    log(&report);
    Ok(json!({
        "ran": report.ran,
        "decisions": report.sweep.decisions.len(),
        "savings_per_hour": report.sweep.decisions.iter().map(|d| d.savings_per_hour).sum::<f64>(),
    }))
}

/// One structured event per decision, and a summary.
pub fn log(report: &SweepPassReport) {
    if let Some(holder) = &report.lease_conflict {
        tracing::warn!(lease = %holder, "another pass holds the cluster's lease; no sweep this time");
        return;
    }
    for (i, d) in report.sweep.decisions.iter().enumerate() {
        let replacements: Vec<Value> = report
            .sweep
            .replacements
            .iter()
            .filter(|r| r.decision == i)
            .map(|r| {
                let l = &r.launch;
                json!({
                    "claim": l.claim_id,
                    "type": l.instance_type,
                    "capacity": l.capacity_type.as_str(),
                    "price_per_hour": l.price,
                })
            })
            .collect();
        let replacements = Value::Array(replacements);
        tracing::info!(
            reason = d.reason.as_str(),
            nodes = ?d.nodes(),
            claims = ?d.candidates.iter().map(|c| c.claim.id.as_str()).collect::<Vec<_>>(),
            replacements = %replacements,
            savings_per_hour = d.savings_per_hour,
            "disrupting"
        );
    }
    tracing::info!(
        decisions = report.sweep.decisions.len(),
        blocked = ?report.blocked,
        stale = ?report.sweep.stale,
        failures = ?report.sweep.failures,
        invalid_config = ?report.invalid_config,
        launch_templates_deleted = ?report.launch_templates_deleted,
        instance_profiles_deleted = ?report.instance_profiles_deleted,
        hygiene_failures = ?report.failures,
        "sweep"
    );
}
