//! The provisioner Lambda: one provisioning round per invocation.
//!
//! Triggered by the provision queue (SQS FIFO, fed by the webhook) and by an EventBridge
//! schedule every minute as a backstop. Every message means the same thing, "look at the
//! cluster now", so one invocation runs one round whatever the batch holds: a message it cannot
//! read is logged and does not stop the round or fail the others. The round runs under the
//! cluster's lease; before it, claims and instances left inconsistent by a crashed round are
//! reconciled.
//!
//! The Lambda timeout (5 minutes in the template) is shorter than the lease (10 minutes), so a
//! round can never outlive its lease and two rounds never act on one cluster at once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use nodewright_aws::queue::ProvisionRequest;
use nodewright_core::ports::{ClaimStore, Clock, Cloud, Cluster, ErrorKind, PortError, PortResult};
use nodewright_core::provisioning::{IdSource, RoundConfig, RoundReport, run_round};
use nodewright_core::reconcile::{ReconcilePolicy, ReconcileReport, apply, reconcile};
use nodewright_core::unavailable::UnavailableOfferings;
use serde::Deserialize;
use serde_json::{Value, json};

pub mod config;

pub use config::{ConfigError, ProvisionerConfig};

/// What invoked the function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    Queue(SqsEvent),
    Schedule(EventBridgeEvent<Value>),
}

/// The provisioner, built once per cold start.
pub struct Provisioner<K, C, S> {
    pub cluster: K,
    pub cloud: C,
    pub store: S,
    pub clock: Arc<dyn Clock>,
    pub ids: Box<dyn IdSource>,
    /// Offerings EC2 could not fill, kept across warm invocations.
    pub unavailable: Mutex<UnavailableOfferings>,
    pub round: RoundConfig,
    pub reconcile: ReconcilePolicy,
}

impl<K, C, S> std::fmt::Debug for Provisioner<K, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("round", &self.round)
            .finish_non_exhaustive()
    }
}

/// What one invocation did.
#[derive(Debug)]
pub struct Invocation {
    pub trigger: &'static str,
    /// Queue messages read (ids) and the ones whose bodies could not be read.
    pub messages: Vec<String>,
    pub unreadable: Vec<String>,
    pub reconciled: Option<ReconcileReport>,
    pub round: PortResult<RoundReport>,
    pub duration_ms: u128,
}

impl<K: Cluster, C: Cloud, S: ClaimStore> Provisioner<K, C, S> {
    pub fn new(cluster: K, cloud: C, store: S, clock: Arc<dyn Clock>, ids: Box<dyn IdSource>) -> Self {
        Provisioner {
            cluster,
            cloud,
            store,
            clock,
            ids,
            unavailable: Mutex::new(UnavailableOfferings::new()),
            round: RoundConfig::default(),
            reconcile: ReconcilePolicy::default(),
        }
    }

    /// Runs one invocation: reconcile, then one round.
    pub async fn invoke(&self, trigger: &Trigger, request_id: &str) -> Invocation {
        let started = Instant::now();
        let (name, messages, unreadable) = match trigger {
            Trigger::Queue(event) => {
                let mut ids = Vec::new();
                let mut unreadable = Vec::new();
                for (i, record) in event.records.iter().enumerate() {
                    let id = record.message_id.clone().unwrap_or_else(|| format!("#{i}"));
                    let body = record.body.as_deref().unwrap_or("");
                    if let Err(e) = serde_json::from_str::<ProvisionRequest>(body) {
                        tracing::warn!(message_id = %id, error = %e, "unreadable provisioning request; running the round anyway");
                        unreadable.push(id.clone());
                    }
                    ids.push(id);
                }
                ("queue", ids, unreadable)
            }
            Trigger::Schedule(_) => ("schedule", Vec::new(), Vec::new()),
        };
        let round = RoundConfig {
            holder: format!("provisioner/{request_id}"),
            ..self.round.clone()
        };
        let reconciled = match self.reconcile_pass(&round).await {
            Ok(report) => report,
            Err(e) => {
                // The round itself is still worth running; the next invocation reconciles.
                tracing::warn!(error = %e, "reconcile pass failed");
                None
            }
        };
        let result = run_round(
            &self.cluster,
            &self.cloud,
            &self.store,
            self.clock.as_ref(),
            self.ids.as_ref(),
            &self.unavailable,
            &round,
        )
        .await;
        Invocation {
            trigger: name,
            messages,
            unreadable,
            reconciled,
            round: result,
            duration_ms: started.elapsed().as_millis(),
        }
    }

    /// Settles what a crashed round left behind, under the lease. `None` if another holder has it.
    async fn reconcile_pass(&self, round: &RoundConfig) -> PortResult<Option<ReconcileReport>> {
        let now = self.clock.now();
        let lease = match self
            .store
            .acquire_lease(&round.holder, now, round.lease_ttl_ms)
            .await
        {
            Ok(lease) => lease,
            Err(e) if e.kind == ErrorKind::Conflict => return Ok(None),
            Err(e) => return Err(e),
        };
        let outcome = async {
            let claims = self.store.list_live().await?;
            let instances = self.cloud.list_instances().await?;
            let actions = reconcile(&claims, &instances, now, &self.reconcile);
            Ok::<_, PortError>(apply(actions, &self.cloud, &self.store, now).await)
        }
        .await;
        // The lease expires on its own if releasing fails.
        let _ = self.store.release_lease(&lease).await;
        outcome.map(Some)
    }
}

/// The Lambda handler: the event in, the batch response (queue) or a summary (schedule) out.
/// A failed round reports every message as failed so SQS delivers them again; a schedule
/// invocation returns the error.
pub async fn function_handler<K: Cluster, C: Cloud, S: ClaimStore>(
    provisioner: &Provisioner<K, C, S>,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let trigger: Trigger = serde_json::from_value(event.payload).map_err(|e| {
        tracing::error!(error = %e, "the event is neither an SQS batch nor an EventBridge event");
        lambda_runtime::Error::from(format!("unrecognised event: {e}"))
    })?;
    let invocation = provisioner.invoke(&trigger, &event.context.request_id).await;
    log_summary(&invocation);
    match (&trigger, &invocation.round) {
        (Trigger::Queue(_), Ok(_)) => Ok(serde_json::to_value(SqsBatchResponse::default())?),
        (Trigger::Queue(_), Err(_)) => {
            let mut response = SqsBatchResponse::default();
            for id in &invocation.messages {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id.clone();
                response.batch_item_failures.push(failure);
            }
            Ok(serde_json::to_value(response)?)
        }
        (Trigger::Schedule(_), Ok(report)) => Ok(json!({
            "ran": report.ran,
            "launched": report.launched.len(),
            "unschedulable": report.unschedulable.len(),
        })),
        (Trigger::Schedule(_), Err(e)) => Err(format!("provisioning round failed: {e}").into()),
    }
}

/// The one structured line each invocation logs.
pub fn log_summary(invocation: &Invocation) {
    let reconciled = invocation.reconciled.as_ref().map(|r| {
        json!({
            "adopted": r.adopted,
            "closed": r.closed,
            "terminated": r.terminated,
            "failures": r.failures.iter().map(|f| f.error.to_string()).collect::<Vec<_>>(),
        })
    });
    match &invocation.round {
        Ok(report) => {
            let launched: Vec<Value> = report
                .launched
                .iter()
                .map(|l| {
                    json!({
                        "claim": l.claim_id,
                        "nodepool": l.nodepool,
                        "instance": l.instance_id,
                        "type": l.instance_type,
                        "zone": l.zone,
                        "capacity": l.capacity_type.as_str(),
                        "price_per_hour": l.price,
                        "pods": l.pods,
                    })
                })
                .collect();
            let launched = Value::Array(launched);
            let unschedulable: Vec<Value> = report
                .unschedulable
                .iter()
                .map(|u| json!({"pod": u.pod, "reason": u.reason}))
                .collect();
            let unschedulable = Value::Array(unschedulable);
            let reconciled = reconciled.unwrap_or(Value::Null);
            tracing::info!(
                trigger = invocation.trigger,
                messages = invocation.messages.len(),
                unreadable = invocation.unreadable.len(),
                ran = report.ran,
                pods_pending = report.pods_pending,
                pods_in_flight = report.pods_absorbed_in_flight,
                pods_on_existing_nodes = report.pods_on_existing_nodes,
                launched = %launched,
                unschedulable = %unschedulable,
                failures = ?report.failures,
                invalid_config = ?report.invalid_config,
                cost_per_hour = report.cost_per_hour,
                lower_bound_per_hour = report.lower_bound_per_hour,
                reconciled = %reconciled,
                duration_ms = invocation.duration_ms as u64,
                "provisioning round"
            );
        }
        Err(e) => tracing::error!(
            trigger = invocation.trigger,
            messages = invocation.messages.len(),
            error = %e,
            duration_ms = invocation.duration_ms as u64,
            "provisioning round failed"
        ),
    }
}

/// Claim id suffixes from the process's random hasher keys: unpredictable across cold starts,
/// unique within one by the counter.
#[derive(Debug)]
pub struct RandomIds {
    state: RandomState,
    counter: AtomicU64,
}

impl Default for RandomIds {
    fn default() -> Self {
        RandomIds {
            state: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }
}

impl IdSource for RandomIds {
    fn next_suffix(&self) -> String {
        let mut hasher = self.state.build_hasher();
        hasher.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        let mut n = hasher.finish();
        // Five base-36 characters, as Karpenter's NodeClaim names have.
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut out = String::with_capacity(5);
        for _ in 0..5 {
            out.push(ALPHABET[(n % 36) as usize] as char);
            n /= 36;
        }
        out
    }
}
