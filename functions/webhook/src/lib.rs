//! The webhook Lambda: AdmissionReview in, one provisioning request on SQS out.
//!
//! The API server calls it (a Lambda Function URL registered as a validating webhook with
//! `failurePolicy: Ignore`) when a pod is created and when its status is updated. It never
//! stands in the way of the API server: every review it can read is answered `allowed: true`
//! with the request's uid, quickly. Its only effect is to ask for a provisioning round when a
//! pod may need capacity, at most once per deduplication window per warm container (and SQS
//! deduplicates across containers). The secret in the URL path keeps anyone else from
//! triggering rounds.
//!
//! The API server waits for the answer (up to `timeoutSeconds: 2`), so the webhook makes one
//! SQS attempt with a sub-second timeout ([`send_policy`]) and, when it fails, does not try
//! again for the rest of the window: the minute's schedule runs the round anyway.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use base64::Engine;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use nodewright_aws::RetryPolicy;
use nodewright_aws::queue::{ProvisionQueue, ProvisionRequest, bucket};
use nodewright_aws::secrets::SecretsManagerSecret;
use nodewright_core::pending::{NotWaiting, PodState, Seen, waits_for_capacity};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{Clock, ErrorKind, PortError, PortResult};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub mod config;
pub mod metrics;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::{ConfigError, SecretConfig, WebhookConfig};
pub use metrics::MetricsOut;

/// Where provisioning requests go (SQS in Lambda; [`testing::RecordingSink`] in tests).
pub trait RequestSink: Send + Sync {
    fn send(&self, request: &ProvisionRequest) -> impl Future<Output = PortResult<()>> + Send;
}

impl RequestSink for ProvisionQueue {
    fn send(&self, request: &ProvisionRequest) -> impl Future<Output = PortResult<()>> + Send {
        ProvisionQueue::send(self, request)
    }
}

/// Where the accepted secret values are read (Secrets Manager in Lambda).
pub trait SecretSource: Send + Sync {
    /// The values accepted now, newest first.
    fn accepted(&self) -> Pin<Box<dyn Future<Output = PortResult<Vec<String>>> + Send + '_>>;
}

impl SecretSource for SecretsManagerSecret {
    fn accepted(&self) -> Pin<Box<dyn Future<Output = PortResult<Vec<String>>> + Send + '_>> {
        Box::pin(SecretsManagerSecret::accepted(self))
    }
}

/// A call with an unknown secret re-reads the accepted values at most this often per
/// container: a rotation reaches warm containers within a minute, and a stranger guessing
/// secrets cannot turn each guess into a Secrets Manager call.
pub const SECRET_REFRESH_MS: Millis = 60_000;

/// How the webhook sends to SQS: one attempt, abandoned after 800 ms. The API server gives the
/// whole call `timeoutSeconds: 2`, cold start included, and a request lost here only waits for
/// the schedule's pass.
pub fn send_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(50),
        attempt_timeout: Duration::from_millis(800),
    }
}

/// The secret values accepted, and when they were read.
#[derive(Default)]
struct Accepted {
    values: Vec<String>,
    read_at: Option<Millis>,
}

/// The webhook, built once per cold start.
pub struct Webhook<Q> {
    config: WebhookConfig,
    queue: Q,
    clock: Arc<dyn Clock>,
    secrets: Mutex<Accepted>,
    secret_source: Option<Arc<dyn SecretSource>>,
    /// The last bucket this container asked a round for; later reviews in it need no SQS call.
    last_bucket: AtomicI64,
    /// The last bucket whose request failed: later reviews in it do not try again.
    failed_bucket: AtomicI64,
    /// Where [`function_handler`] prints its EMF metrics; nowhere unless set.
    metrics: MetricsOut,
}

impl<Q> std::fmt::Debug for Webhook<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("window", &self.config.window)
            .finish_non_exhaustive()
    }
}

/// What the webhook did with a call, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A round was requested.
    Requested,
    /// A round was already requested in this window.
    AlreadyRequested,
    /// Sending failed earlier in this window; the scheduled backstop will run the round.
    FailedThisWindow,
    /// The review needs no round (a bound pod, a DaemonSet pod, a dry run, not a pod…).
    Ignored(&'static str),
    /// Sending the request failed; the scheduled backstop will run the round.
    SendFailed(String),
    /// The call was refused (wrong secret, bad body); the status says which.
    Refused(u16),
}

impl<Q: RequestSink> Webhook<Q> {
    /// A webhook accepting the configuration's secret value; one configured with a Secrets
    /// Manager secret accepts nothing until [`Webhook::with_secret_source`] has read it.
    pub fn new(config: WebhookConfig, queue: Q, clock: Arc<dyn Clock>) -> Self {
        let values = match &config.secret {
            SecretConfig::Value(value) => vec![value.clone()],
            SecretConfig::SecretsManager(_) => Vec::new(),
        };
        Webhook {
            config,
            queue,
            clock,
            secrets: Mutex::new(Accepted {
                values,
                read_at: None,
            }),
            secret_source: None,
            last_bucket: AtomicI64::new(i64::MIN),
            failed_bucket: AtomicI64::new(i64::MIN),
            metrics: MetricsOut::default(),
        }
    }

    /// Reads the accepted secret values from `source` now (at cold start), and again when a
    /// call brings an unknown one ([`SECRET_REFRESH_MS`]). Fails when the source cannot be read
    /// or holds no usable value, so that a misconfigured function fails its cold start loudly.
    pub async fn with_secret_source(mut self, source: Arc<dyn SecretSource>) -> PortResult<Self> {
        let values = usable(source.accepted().await?);
        if values.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                "the webhook secret holds no usable value: it must be at least 16 letters, digits, '-' or '_'",
            ));
        }
        self.secrets = Mutex::new(Accepted {
            values,
            read_at: Some(self.clock.now()),
        });
        self.secret_source = Some(source);
        Ok(self)
    }

    /// Prints each call's EMF metrics to `out` (stdout in Lambda).
    pub fn with_metrics(mut self, out: MetricsOut) -> Self {
        self.metrics = out;
        self
    }

    /// Answers one Function URL call.
    pub async fn handle(&self, request: &LambdaFunctionUrlRequest) -> (LambdaFunctionUrlResponse, Outcome) {
        if !self.authorized(request).await {
            return refuse(403, "forbidden");
        }
        let body = match self.body(request) {
            Ok(body) => body,
            Err((status, message)) => return refuse(status, &message),
        };
        let review: AdmissionReview = match serde_json::from_slice(&body) {
            Ok(review) => review,
            Err(e) => return refuse(400, &format!("the body is not an AdmissionReview: {e}")),
        };
        let Some(admission) = review.request else {
            return refuse(400, "the AdmissionReview has no request");
        };
        let outcome = match needs_round(&admission) {
            Err(reason) => Outcome::Ignored(reason),
            Ok(pod) => self.request_round(pod).await,
        };
        (allowed(&review.api_version, &admission.uid), outcome)
    }

    async fn authorized(&self, request: &LambdaFunctionUrlRequest) -> bool {
        let path = request
            .raw_path
            .as_deref()
            .or(request.request_context.http.path.as_deref())
            .unwrap_or("");
        let given = path.trim_matches('/');
        if self.accepts(given) {
            return true;
        }
        // An unknown value may be a rotated secret this container has not read yet.
        let Some(source) = &self.secret_source else {
            return false;
        };
        let now = self.clock.now();
        {
            let mut secrets = lock(&self.secrets);
            if secrets.read_at.is_some_and(|at| now - at < SECRET_REFRESH_MS) {
                return false;
            }
            // Claimed before the read, so concurrent calls do not all read.
            secrets.read_at = Some(now);
        }
        match source.accepted().await {
            Ok(values) => {
                let values = usable(values);
                if values.is_empty() {
                    tracing::warn!(
                        "the webhook secret holds no usable value; keeping the values read before"
                    );
                } else {
                    lock(&self.secrets).values = values;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not re-read the webhook secret"),
        }
        self.accepts(given)
    }

    /// Whether `given` is one of the accepted values; every value is compared, so timing does
    /// not tell which matched.
    fn accepts(&self, given: &str) -> bool {
        let secrets = lock(&self.secrets);
        secrets.values.iter().fold(false, |found, value| {
            found | constant_time_eq(given.as_bytes(), value.as_bytes())
        })
    }

    fn body(&self, request: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, (u16, String)> {
        let raw = request.body.as_deref().unwrap_or("");
        // Base64 grows by a third; check the encoded size first so a huge body is never decoded.
        let limit = self.config.max_body_bytes;
        let encoded_limit = if request.is_base64_encoded {
            limit.div_ceil(3) * 4
        } else {
            limit
        };
        if raw.len() > encoded_limit {
            return Err((413, format!("the body is larger than {limit} bytes")));
        }
        let body = if request.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map_err(|e| (400, format!("the body is not valid base64: {e}")))?
        } else {
            raw.as_bytes().to_vec()
        };
        if body.len() > limit {
            return Err((413, format!("the body is larger than {limit} bytes")));
        }
        if body.is_empty() {
            return Err((400, "the body is empty".to_string()));
        }
        Ok(body)
    }

    async fn request_round(&self, pod: String) -> Outcome {
        let now = self.clock.now();
        let bucket = bucket(now, self.config.window);
        if self.last_bucket.swap(bucket, Ordering::SeqCst) == bucket {
            if self.failed_bucket.load(Ordering::SeqCst) == bucket {
                return Outcome::FailedThisWindow;
            }
            return Outcome::AlreadyRequested;
        }
        let request = ProvisionRequest {
            source: "webhook".to_string(),
            bucket,
            sent_at: now,
            pod: Some(pod),
        };
        match self.queue.send(&request).await {
            Ok(()) => Outcome::Requested,
            Err(e) => {
                // Remembered for the rest of the window: every later review would wait for the
                // same failing queue, and the schedule's pass is at most a minute away.
                self.failed_bucket.store(bucket, Ordering::SeqCst);
                Outcome::SendFailed(e.to_string())
            }
        }
    }
}

fn lock(m: &Mutex<Accepted>) -> std::sync::MutexGuard<'_, Accepted> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The values that pass [`config::check_secret`]; others are logged (without the value).
fn usable(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .filter(|value| match config::check_secret(value) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(%reason, "ignoring a webhook secret value");
                false
            }
        })
        .collect()
}

/// Equal-length comparison that takes the same time wherever the inputs differ: both sides are
/// hashed first, so neither the length nor the position of a difference leaks through timing.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReview {
    #[serde(default = "default_api_version")]
    api_version: String,
    request: Option<AdmissionRequest>,
}

fn default_api_version() -> String {
    "admission.k8s.io/v1".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionRequest {
    uid: String,
    #[serde(default)]
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct GroupVersionResource {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resource: String,
}

/// Whether the review is about a pod that may need new capacity ([`nodewright_core::pending`]):
/// a pod created unbound, or a pod whose status says the kube-scheduler found no node. Returns
/// the pod's `namespace/name`, or why no round is needed.
fn needs_round(request: &AdmissionRequest) -> Result<String, &'static str> {
    if request.dry_run == Some(true) {
        return Err("dry run");
    }
    // The webhook configuration excludes kube-system too; this holds if an older one does not.
    if request.namespace.as_deref() == Some(SYSTEM_NAMESPACE) {
        return Err("in kube-system");
    }
    if !request.resource.group.is_empty() || request.resource.resource != "pods" {
        return Err("not a pod");
    }
    let object = request.object.as_ref().ok_or("no object")?;
    let seen = match (request.operation.as_str(), request.sub_resource.as_deref()) {
        ("CREATE", None | Some("")) => Seen::AtCreation,
        ("UPDATE", Some("status")) => Seen::AfterScheduling,
        _ => return Err("not a pod creation or status update"),
    };
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let scheduled = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
        .map(|c| {
            (
                c.get("status").and_then(Value::as_str).unwrap_or_default(),
                c.get("reason").and_then(Value::as_str),
            )
        });
    let state = PodState {
        node_name: text("/spec/nodeName"),
        phase: text("/status/phase"),
        scheduled,
        nominated_node: text("/status/nominatedNodeName"),
        deleting: object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null()),
    };
    let owners = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let kind = o.get("kind").and_then(Value::as_str)?;
            Some((kind, o.get("apiVersion").and_then(Value::as_str)))
        });
    waits_for_capacity(&state, owners, seen).map_err(NotWaiting::as_str)?;
    let name = request
        .name
        .as_deref()
        .or_else(|| object.pointer("/metadata/name").and_then(Value::as_str))
        .or_else(|| object.pointer("/metadata/generateName").and_then(Value::as_str))
        .unwrap_or("");
    let namespace = request
        .namespace
        .as_deref()
        .or_else(|| object.pointer("/metadata/namespace").and_then(Value::as_str))
        .unwrap_or("default");
    Ok(format!("{namespace}/{name}"))
}

fn response(status: u16, body: Value) -> LambdaFunctionUrlResponse {
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(body.to_string());
    response
}

fn allowed(api_version: &str, uid: &str) -> LambdaFunctionUrlResponse {
    response(
        200,
        json!({
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": true},
        }),
    )
}

fn refuse(status: u16, message: &str) -> (LambdaFunctionUrlResponse, Outcome) {
    (
        response(status, json!({"error": message})),
        Outcome::Refused(status),
    )
}

/// The Lambda handler: one Function URL event in, its response out. Outcomes are logged, and
/// the call's metrics printed, here so that the entry point stays a line.
pub async fn function_handler<Q: RequestSink>(
    webhook: &Webhook<Q>,
    event: lambda_runtime::LambdaEvent<LambdaFunctionUrlRequest>,
) -> Result<LambdaFunctionUrlResponse, lambda_runtime::Error> {
    let (response, outcome) = webhook.handle(&event.payload).await;
    match &outcome {
        Outcome::SendFailed(e) => tracing::warn!(error = %e, "could not request a provisioning round"),
        Outcome::Refused(status) => tracing::warn!(status, "refused a call"),
        Outcome::Requested => tracing::info!("requested a provisioning round"),
        other => tracing::debug!(outcome = ?other, "no round requested"),
    }
    if let Some(document) = metrics::call(&outcome, webhook.clock.now()) {
        webhook.metrics.emit(&[document]);
    }
    Ok(response)
}

/// Pods here are the cluster's own (CoreDNS, the CNI, add-ons): never a reason to launch, and
/// their creation must not wait on the webhook.
pub const SYSTEM_NAMESPACE: &str = "kube-system";

/// The default deduplication window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);
