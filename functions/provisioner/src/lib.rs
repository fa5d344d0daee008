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

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use nodewright_aws::claims::DynamoClaimStore;
use nodewright_aws::queue::ProvisionRequest;
use nodewright_aws::{AwsConfig, Ec2Cloud, RetryPolicy};
use nodewright_core::ports::{ClaimStore, Clock, Cloud, Cluster, ErrorKind, PortError, PortResult};
use nodewright_core::provisioning::{IdSource, RoundConfig, RoundReport, run_round};
use nodewright_core::reconcile::{ReconcilePolicy, ReconcileReport, apply, reconcile};
use nodewright_core::unavailable::UnavailableOfferings;
use nodewright_kube::{ClusterInfo, KubeCluster, describe_cluster};
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

/// The provisioner over the real adapters: the Kubernetes API, EC2 and DynamoDB.
pub type LiveProvisioner = Provisioner<KubeCluster, Ec2Cloud, DynamoClaimStore>;

/// Wires the real adapters together from the configuration, the SDK configuration, a
/// connected cluster and what `DescribeCluster` (or the environment) says about it.
pub fn assemble(
    config: &ProvisionerConfig,
    sdk: &SdkConfig,
    cluster: KubeCluster,
    info: &ClusterInfo,
    clock: Arc<dyn Clock>,
) -> PortResult<LiveProvisioner> {
    let retry = RetryPolicy::default();
    let aws = AwsConfig {
        cluster_name: config.cluster_name.clone(),
        cluster_endpoint: info.endpoint.clone(),
        cluster_ca_bundle: info.certificate_authority.clone(),
        service_cidr: info.service_cidr.clone().ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                format!(
                    "the service CIDR of cluster {} is unknown; set {}",
                    config.cluster_name,
                    config::SERVICE_CIDR
                ),
            )
        })?,
        cluster_dns_ip: None,
        kubernetes_version: info.kubernetes_version.clone(),
        region: config.region.clone(),
        retry,
    };
    let cloud = Ec2Cloud::new(sdk, aws, clock.clone());
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(retry.sdk())
            .timeout_config(retry.timeouts())
            .build(),
    );
    let store = DynamoClaimStore::new(
        dynamodb,
        &config.claims_table,
        &config.cluster_name,
        clock.clone(),
    );
    let mut provisioner = Provisioner::new(cluster, cloud, store, clock, Box::new(RandomIds::default()));
    provisioner.round.lease_ttl_ms =
        i64::try_from(config.lease_ttl_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(provisioner)
}

/// What the environment says about the cluster, completed by `DescribeCluster` when it leaves
/// something out.
pub async fn cluster_info(config: &ProvisionerConfig, sdk: &SdkConfig) -> PortResult<ClusterInfo> {
    if let (Some(endpoint), Some(ca), Some(cidr), Some(version)) = (
        &config.cluster_endpoint,
        &config.cluster_ca,
        &config.service_cidr,
        &config.kubernetes_version,
    ) {
        return Ok(ClusterInfo {
            name: config.cluster_name.clone(),
            endpoint: endpoint.clone(),
            certificate_authority: ca.clone(),
            kubernetes_version: version.clone(),
            service_cidr: Some(cidr.clone()),
        });
    }
    let eks = aws_sdk_eks::Client::new(sdk);
    let mut info = describe_cluster(&eks, &config.cluster_name).await?;
    if let Some(endpoint) = &config.cluster_endpoint {
        info.endpoint = endpoint.clone();
    }
    if let Some(ca) = &config.cluster_ca {
        info.certificate_authority = ca.clone();
    }
    if let Some(cidr) = &config.service_cidr {
        info.service_cidr = Some(cidr.clone());
    }
    if let Some(version) = &config.kubernetes_version {
        info.kubernetes_version = version.clone();
    }
    Ok(info)
}
