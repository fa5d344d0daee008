//! The interruption Lambda: EC2's interruption warnings and state changes, from the SQS queue
//! EventBridge rules feed, acted on at once.
//!
//! SQS semantics (`ReportBatchItemFailures`): a message that cannot be read, or names an event
//! nodewright does not act on, is logged and acknowledged — never retried forever, never
//! holding up its batch. A message whose action failed for a passing reason (throttling, an
//! outage, the lease held by another pass) is reported as a batch item failure, alone, and
//! comes back; acting on it twice changes nothing twice.

use std::collections::BTreeSet;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use nodewright_core::interruption::{Notice, Rebalance, parse};
use nodewright_core::pass::{InterruptionPassReport, run_interruptions};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, Cloud, Cluster, PortResult};
use serde_json::Value;

use crate::Provisioner;

/// What one batch came to.
#[derive(Debug)]
pub struct Batch {
    /// Every message read as a notice.
    pub notices: Vec<NoticeMessage>,
    /// Messages acknowledged without action.
    pub ignored: Vec<IgnoredMessage>,
    /// The ids of those of `ignored` whose bodies could not be read.
    pub unreadable: Vec<String>,
    pub outcome: PortResult<InterruptionPassReport>,
}

/// A message of the batch and the notice it carries.
#[derive(Debug, Clone)]
pub struct NoticeMessage {
    pub message_id: String,
    pub notice: Notice,
}

/// A message acknowledged without action, and why.
#[derive(Debug, Clone)]
pub struct IgnoredMessage {
    pub message_id: String,
    pub why: String,
}

/// Reads and acts on one SQS batch.
pub async fn handle<K: Cluster, C: Cloud, S: ClaimStore>(
    adapters: &Provisioner<K, C, S>,
    event: &SqsEvent,
    request_id: &str,
    deadline: Option<Millis>,
    rebalance: Rebalance,
) -> Batch {
    let mut notices = Vec::new();
    let mut ignored = Vec::new();
    let mut unreadable = Vec::new();
    for (i, record) in event.records.iter().enumerate() {
        let id = record.message_id.clone().unwrap_or_else(|| format!("#{i}"));
        match parse(record.body.as_deref().unwrap_or("")) {
            Ok(Some(notice)) => notices.push(NoticeMessage {
                message_id: id,
                notice,
            }),
            Ok(None) => ignored.push(IgnoredMessage {
                message_id: id,
                why: "nothing to do".to_string(),
            }),
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "unusable interruption message; acknowledged");
                unreadable.push(id.clone());
                ignored.push(IgnoredMessage {
                    message_id: id,
                    why: e.to_string(),
                });
            }
        }
    }
    let config = adapters.pass_config("interruption", request_id, deadline);
    let plain: Vec<Notice> = notices.iter().map(|m| m.notice.clone()).collect();
    let outcome = run_interruptions(&plain, rebalance, &adapters.ports(), &config).await;
    Batch {
        notices,
        ignored,
        unreadable,
        outcome,
    }
}

/// The messages to retry: all read ones when the batch failed as a whole; those naming a claim
/// whose action failed; and, when the pass could not run (another held the lease), those that
/// moved a claim, so that a pass runs for them soon.
pub fn retries(batch: &Batch) -> Vec<String> {
    let report = match &batch.outcome {
        Ok(r) => r,
        Err(_) => return batch.notices.iter().map(|m| m.message_id.clone()).collect(),
    };
    let i = &report.interruption;
    let instance = |claim: &str| i.instances.get(claim).cloned();
    let failed: BTreeSet<String> = i.failures.iter().filter_map(|f| instance(&f.claim)).collect();
    let pass_missing = report.pass.as_ref().is_some_and(|p| !p.ran);
    let moved: BTreeSet<String> = i
        .draining
        .iter()
        .map(|n| &n.claim)
        .chain(i.gone.iter())
        .filter_map(|c| instance(c))
        .collect();
    batch
        .notices
        .iter()
        .filter(|m| {
            let mine = |set: &BTreeSet<String>| m.notice.instance_ids.iter().any(|id| set.contains(id));
            mine(&failed) || (pass_missing && mine(&moved))
        })
        .map(|m| m.message_id.clone())
        .collect()
}

/// The Lambda handler: an SQS batch in, the batch response out.
pub async fn function_handler<K: Cluster, C: Cloud, S: ClaimStore>(
    adapters: &Provisioner<K, C, S>,
    rebalance: Rebalance,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let sqs: SqsEvent = serde_json::from_value(event.payload).map_err(|e| {
        tracing::error!(error = %e, "the event is not an SQS batch");
        lambda_runtime::Error::from(format!("unrecognised event: {e}"))
    })?;
    let deadline = crate::deadline_of(&event.context);
    let batch = handle(adapters, &sqs, &event.context.request_id, deadline, rebalance).await;
    let retry = retries(&batch);
    match &batch.outcome {
        Ok(report) => {
            let i = &report.interruption;
            tracing::info!(
                messages = sqs.records.len(),
                notices = ?batch.notices.iter().map(|m| (m.message_id.as_str(), m.notice.kind.as_str(), m.notice.instance_ids.clone())).collect::<Vec<_>>(),
                ignored = ?batch.ignored.iter().map(|m| (m.message_id.as_str(), m.why.as_str())).collect::<Vec<_>>(),
                draining = ?i.draining.iter().map(|n| (n.claim.as_str(), n.kind.as_str())).collect::<Vec<_>>(),
                gone = ?i.gone,
                recorded = ?i.recorded.iter().map(|n| (n.claim.as_str(), n.kind.as_str())).collect::<Vec<_>>(),
                failures = ?i.failures.iter().map(|f| format!("{}: {}", f.claim, f.error)).collect::<Vec<_>>(),
                pass_ran = report.pass.as_ref().map(|p| p.ran),
                launched = report.pass.as_ref().map_or(0, |p| p.round.launched.len()),
                retried = ?retry,
                "interruption batch"
            );
        }
        Err(e) => tracing::error!(error = %e, retried = ?retry, "interruption batch failed"),
    }
    adapters
        .metrics
        .emit(&crate::metrics::interruption(&batch, adapters.clock.now()));
    let mut response = SqsBatchResponse::default();
    for id in retry {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    Ok(serde_json::to_value(response)?)
}
