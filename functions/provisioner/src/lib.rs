//! The provisioner Lambda: one provisioning round per invocation.
//!
//! Triggered by the provision queue (SQS FIFO, fed by the webhook) and by an EventBridge
//! schedule every minute. Every message means the same thing, "look at the cluster now", so one
//! invocation runs one pass whatever the batch holds: a message it cannot read is logged and
//! does not stop the pass or fail the others. The pass ([`run_pass`]) runs under the cluster's
//! lease: it reconciles claims with instances, carries every node's lifecycle a step further
//! (registration, initialization, registration timeouts, deleted Nodes, graceful termination)
//! and runs a provisioning round. The minute's schedule is what keeps the lifecycle moving when
//! no pod is pending.
//!
//! No launch starts within [`DEADLINE_MARGIN_MS`] of the invocation's deadline, and the lease
//! (at least the function timeout plus a margin) is released when the pass ends, panics
//! included, so a pass stopped by its deadline never blocks the next.

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
use nodewright_core::pass::{PassConfig, PassReport, run_pass};
use nodewright_core::pod::Millis;
use nodewright_core::ports::IdSource;
use nodewright_core::ports::{ClaimStore, Clock, Cloud, Cluster, ErrorKind, PortError, PortResult};
use nodewright_core::provisioning::RoundConfig;
use nodewright_core::unavailable::UnavailableOfferings;
use nodewright_core::wiring::Ports;
use nodewright_kube::{ClusterInfo, KubeCluster, describe_cluster};
use serde::Deserialize;
use serde_json::{Value, json};

pub mod config;
pub mod interruption;
pub mod metrics;
pub mod sweeper;

pub use config::{ConfigError, ProvisionerConfig};
pub use metrics::MetricsOut;

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
    /// Offerings EC2 could not fill, kept across warm invocations: this process's one record of
    /// them (the EC2 adapter keeps none).
    pub unavailable: Mutex<UnavailableOfferings>,
    pub pass: PassConfig,
    /// Where the handlers print their EMF metrics: stdout in Lambda ([`from_env`]), nowhere
    /// unless set.
    pub metrics: MetricsOut,
}

/// Launches stop this long before the invocation's deadline: a CreateFleet call with its
/// retries and the claim writes around it fit well inside.
pub const DEADLINE_MARGIN_MS: Millis = 45_000;

impl<K, C, S> std::fmt::Debug for Provisioner<K, C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("pass", &self.pass)
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
    pub pass: PortResult<PassReport>,
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
            pass: PassConfig::default(),
            metrics: MetricsOut::default(),
        }
    }

    /// What a pass acts through: this process's clients and its warm state.
    pub fn ports(&self) -> Ports<'_, K, C, S> {
        Ports {
            cluster: &self.cluster,
            cloud: &self.cloud,
            store: &self.store,
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
            unavailable: &self.unavailable,
        }
    }

    /// The pass settings of one invocation of the function `actor`: the lease taken in the
    /// invocation's name, and no launch within [`DEADLINE_MARGIN_MS`] of its `deadline`
    /// (epoch millis, from the Lambda context).
    pub fn pass_config(&self, actor: &str, request_id: &str, deadline: Option<Millis>) -> PassConfig {
        PassConfig {
            round: RoundConfig {
                holder: format!("{actor}/{request_id}"),
                actor: actor.to_string(),
                ..self.pass.round.clone()
            },
            deadline: deadline.map(|d| d - DEADLINE_MARGIN_MS),
            ..self.pass.clone()
        }
    }

    /// Runs one invocation: one pass, launching nothing after `deadline` (epoch millis) less
    /// [`DEADLINE_MARGIN_MS`].
    pub async fn invoke(&self, trigger: &Trigger, request_id: &str, deadline: Option<Millis>) -> Invocation {
        let started = Instant::now();
        let (name, messages, unreadable) = match trigger {
            Trigger::Queue(event) => {
                let mut ids = Vec::new();
                let mut unreadable = Vec::new();
                for (i, record) in event.records.iter().enumerate() {
                    let id = record.message_id.clone().unwrap_or_else(|| format!("#{i}"));
                    let body = record.body.as_deref().unwrap_or("");
                    if let Err(e) = serde_json::from_str::<ProvisionRequest>(body) {
                        tracing::warn!(message_id = %id, error = %e, "unreadable provisioning request; running the pass anyway");
                        unreadable.push(id.clone());
                    }
                    ids.push(id);
                }
                ("queue", ids, unreadable)
            }
            Trigger::Schedule(_) => ("schedule", Vec::new(), Vec::new()),
        };
        let config = self.pass_config("provisioner", request_id, deadline);
        let result = run_pass(&self.ports(), &config).await;
        Invocation {
            trigger: name,
            messages,
            unreadable,
            pass: result,
            duration_ms: started.elapsed().as_millis(),
        }
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
    let deadline = deadline_of(&event.context);
    let invocation = provisioner
        .invoke(&trigger, &event.context.request_id, deadline)
        .await;
    log_summary(&invocation);
    provisioner
        .metrics
        .emit(&metrics::invocation(&invocation, provisioner.clock.now()));
    match (&trigger, &invocation.pass) {
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
            "launched": report.round.launched.len(),
            "unschedulable": report.round.unschedulable.len(),
            "registered": report.lifecycle.registered.len(),
            "terminated": report.lifecycle.terminated.len(),
        })),
        (Trigger::Schedule(_), Err(e)) => Err(format!("provisioning round failed: {e}").into()),
    }
}

/// The one structured line each invocation logs, and a warning when another pass held the
/// lease.
pub fn log_summary(invocation: &Invocation) {
    let report = match &invocation.pass {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(
                trigger = invocation.trigger,
                messages = invocation.messages.len(),
                error = %e,
                duration_ms = invocation.duration_ms as u64,
                "provisioning pass failed"
            );
            return;
        }
    };
    if let Some(holder) = &report.lease_conflict {
        tracing::warn!(
            trigger = invocation.trigger,
            lease = %holder,
            "another pass holds the cluster's lease; this one did nothing"
        );
        return;
    }
    let r = &report.reconciled;
    if !r.withheld.is_empty() {
        tracing::warn!(
            instances = ?r.withheld,
            "instances without a claim left running: more than the per-pass share of the fleet has none; check the claims table (NODEWRIGHT_MAX_ORPHANS_PERCENT lifts the bound)"
        );
    }
    let reconciled = json!({
        "adopted": r.adopted,
        "closed": r.closed,
        "terminated": r.terminated,
        "failures": r.failures.iter().map(|f| f.error.to_string()).collect::<Vec<_>>(),
    });
    let l = &report.lifecycle;
    let lifecycle = json!({
        "registered": l.registered,
        "initialized": l.initialized,
        "registration_timeouts": l.registration_timeouts,
        "terminating": l.terminating,
        "evicted": l.evicted.len(),
        "eviction_blocked": l.eviction_blocked,
        "terminated": l.terminated,
        "nodes_deleted": l.nodes_deleted,
        "failures": l.failures,
    });
    let round = &report.round;
    let launched: Vec<Value> = round
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
    let unschedulable: Vec<Value> = round
        .unschedulable
        .iter()
        .map(|u| json!({"pod": u.pod, "reason": u.reason}))
        .collect();
    let unschedulable = Value::Array(unschedulable);
    tracing::info!(
        trigger = invocation.trigger,
        messages = invocation.messages.len(),
        unreadable = invocation.unreadable.len(),
        pods_pending = round.pods_pending,
        pods_in_flight = round.pods_absorbed_in_flight,
        pods_on_existing_nodes = round.pods_on_existing_nodes,
        launched = %launched,
        deferred = round.deferred,
        unschedulable = %unschedulable,
        failures = ?round.failures,
        invalid_config = ?round.invalid_config,
        cost_per_hour = round.cost_per_hour,
        lower_bound_per_hour = round.lower_bound_per_hour,
        reconciled = %reconciled,
        lifecycle = %lifecycle,
        duration_ms = invocation.duration_ms as u64,
        "provisioning pass"
    );
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
    let as_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    provisioner.pass.round.lease_ttl_ms = as_ms(config.lease_ttl_seconds);
    provisioner.pass.lifecycle.registration_ttl_ms = as_ms(config.registration_ttl_seconds);
    provisioner.pass.reconcile.max_orphans_percent = config.max_orphans_percent;
    Ok(provisioner)
}

/// The invocation's deadline in epoch millis, if Lambda gave one.
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<Millis> {
    i64::try_from(context.deadline).ok().filter(|d| *d > 0)
}

/// JSON logs at `RUST_LOG` (default `info`), as every function of the package writes them.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

/// The adapters of a cold start, from the environment: configuration, the SDK, the cluster's
/// details and a Kubernetes client renewed from EKS; metrics go to stdout.
pub async fn from_env() -> Result<LiveProvisioner, lambda_runtime::Error> {
    let config = ProvisionerConfig::from_env(|k| std::env::var(k).ok())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let info = cluster_info(&config, &sdk).await?;
    let source = Arc::new(nodewright_kube::EksConfigSource::new(&sdk, info.clone())?);
    let cluster = KubeCluster::from_source(source).await?;
    let mut provisioner = assemble(
        &config,
        &sdk,
        cluster,
        &info,
        Arc::new(nodewright_aws::SystemClock),
    )?;
    provisioner.metrics = MetricsOut::stdout();
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
