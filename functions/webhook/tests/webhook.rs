//! The webhook handler called with the events Lambda delivers (a Function URL request carrying
//! the AdmissionReview the API server sends). The handler sends its requests to a recording
//! sink; the last tests send them to a real SQS FIFO queue on moto, for the SQS sender itself:
//! deduplication across containers, one attempt within the API server's timeout.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use base64::Engine;
use lambda_runtime::{Context, LambdaEvent};
use nodewright_aws::RetryPolicy;
use nodewright_aws::queue::{ProvisionQueue, ProvisionRequest};
use nodewright_aws::secrets::SecretsManagerSecret;
use nodewright_aws::testing::{Moto, Printed, take_messages};
use nodewright_core::testing::VirtualClock;
use nodewright_webhook::testing::RecordingSink;
use nodewright_webhook::{
    MetricsOut, Outcome, SECRET_REFRESH_MS, SecretConfig, Webhook, WebhookConfig, function_handler,
    send_policy,
};
use serde_json::{Value, json};

const SECRET: &str = "a1b2c3d4e5f6g7h8i9j0-secret";
const T0: i64 = 1_795_342_530_000;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Function URL event for a call to `/<path>` with `body`.
fn event(path: &str, body: &str) -> LambdaFunctionUrlRequest {
    let mut event: Value = serde_json::from_str(&fixture("function-url-request.json")).expect("fixture");
    event["rawPath"] = Value::String(format!("/{path}"));
    event["requestContext"]["http"]["path"] = Value::String(format!("/{path}"));
    event["body"] = Value::String(body.to_string());
    serde_json::from_value(event).expect("a Function URL request")
}

fn review(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture")
}

/// The configuration of a webhook with a two-second window sending to `queue_url`.
fn config(queue_url: &str) -> WebhookConfig {
    WebhookConfig {
        secret: SecretConfig::Value(SECRET.to_string()),
        queue_url: queue_url.to_string(),
        window: Duration::from_secs(2),
        max_body_bytes: 64 * 1024,
    }
}

/// A warm container's webhook, sending to a recording sink, at `T0`.
struct World {
    webhook: Webhook<RecordingSink>,
    sent: RecordingSink,
    clock: Arc<VirtualClock>,
}

fn world() -> World {
    let sent = RecordingSink::new();
    let clock = VirtualClock::shared(T0);
    World {
        webhook: Webhook::new(config("unused"), sent.clone(), clock.clone()),
        sent,
        clock,
    }
}

impl World {
    async fn call(&self, path: &str, body: &str) -> (LambdaFunctionUrlResponse, Outcome) {
        self.webhook.handle(&event(path, body)).await
    }

    /// Another webhook on the same sink and clock.
    fn webhook_with(&self, config: WebhookConfig) -> Webhook<RecordingSink> {
        Webhook::new(config, self.sent.clone(), self.clock.clone())
    }
}

fn json_body(response: &LambdaFunctionUrlResponse) -> Value {
    serde_json::from_str(response.body.as_deref().expect("a body")).expect("a JSON body")
}

fn assert_allowed(response: &LambdaFunctionUrlResponse, uid: &str) {
    assert_eq!(response.status_code, 200);
    let body = json_body(response);
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["response"]["uid"], uid);
    assert_eq!(body["response"]["allowed"], true);
}

#[tokio::test]
async fn an_unschedulable_status_update_is_allowed_and_requests_one_round() {
    let w = world();
    let body = fixture("admission-pod-status-unschedulable.json");
    let response = function_handler(
        &w.webhook,
        LambdaEvent::new(event(SECRET, &body), Context::default()),
    )
    .await
    .expect("handled");
    assert_allowed(&response, "b1c7e0a2-4d3f-4a8e-9c61-7f2e5d8a9b30");
    assert_eq!(
        w.sent.take(),
        [ProvisionRequest {
            source: "webhook".into(),
            bucket: T0 / 2_000,
            sent_at: T0,
            pod: Some("default/inflate-7d9c8b6f5-x2k4p".into()),
        }]
    );
}

#[tokio::test]
async fn an_unbound_pod_creation_requests_a_round() {
    let w = world();
    let (response, outcome) = w.call(SECRET, &fixture("admission-pod-create.json")).await;
    assert_allowed(&response, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(outcome, Outcome::Requested);
    assert_eq!(w.sent.take().len(), 1);
}

#[tokio::test]
async fn a_burst_in_one_window_is_one_request_per_container() {
    let w = world();
    let body = fixture("admission-pod-status-unschedulable.json");
    // A second warm container: its own memory, the same queue.
    let other = w.webhook_with(config("unused"));
    let mut outcomes = Vec::new();
    for i in 0..1000 {
        let target = if i % 2 == 0 { &w.webhook } else { &other };
        let (response, outcome) = target.handle(&event(SECRET, &body)).await;
        assert_eq!(response.status_code, 200);
        outcomes.push(outcome);
        w.clock.advance(1); // 1,000 reviews within one second
    }
    let sent = outcomes.iter().filter(|o| **o == Outcome::Requested).count();
    assert_eq!(sent, 2, "one request per container and window");
    assert_eq!(w.sent.take().len(), 2);

    w.clock.advance(2_000);
    let (_, outcome) = w.webhook.handle(&event(SECRET, &body)).await;
    assert_eq!(outcome, Outcome::Requested, "the next window asks again");
    assert_eq!(w.sent.take().len(), 1);
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_forbidden_and_enqueues_nothing() {
    let w = world();
    let body = fixture("admission-pod-status-unschedulable.json");
    for path in [
        "wrong-secret-wrong-secret",
        "",
        &SECRET[..SECRET.len() - 1],
        &format!("{SECRET}x"),
    ] {
        let (response, outcome) = w.call(path, &body).await;
        assert_eq!(response.status_code, 403, "path {path:?}");
        assert_eq!(outcome, Outcome::Refused(403));
    }
    assert!(w.sent.take().is_empty());
}

#[tokio::test]
async fn a_dry_run_is_allowed_without_a_round() {
    let w = world();
    let mut review = review("admission-pod-status-unschedulable.json");
    review["request"]["dryRun"] = Value::Bool(true);
    let (response, outcome) = w.call(SECRET, &review.to_string()).await;
    assert_allowed(&response, "b1c7e0a2-4d3f-4a8e-9c61-7f2e5d8a9b30");
    assert_eq!(outcome, Outcome::Ignored("dry run"));
    assert!(w.sent.take().is_empty());
}

#[tokio::test]
async fn bound_daemonset_and_schedulable_pods_are_allowed_without_a_round() {
    let w = world();
    let mut bound = review("admission-pod-create.json");
    bound["request"]["object"]["spec"]["nodeName"] = Value::String("ip-10-0-1-5.ec2.internal".into());
    let mut daemon = review("admission-pod-create.json");
    daemon["request"]["object"]["metadata"]["ownerReferences"][0]["kind"] = Value::String("DaemonSet".into());
    let mut scheduled = review("admission-pod-status-unschedulable.json");
    scheduled["request"]["object"]["status"]["conditions"][0]["status"] = Value::String("True".into());
    let mut configmap = review("admission-pod-create.json");
    configmap["request"]["resource"]["resource"] = Value::String("configmaps".into());
    for (review, why) in [
        (bound, "already bound"),
        (daemon, "a DaemonSet or static pod"),
        (scheduled, "not unschedulable"),
        (configmap, "not a pod"),
    ] {
        let uid = review["request"]["uid"].as_str().expect("uid").to_string();
        let (response, outcome) = w.call(SECRET, &review.to_string()).await;
        assert_allowed(&response, &uid);
        assert_eq!(outcome, Outcome::Ignored(why));
    }
    assert!(w.sent.take().is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_bad_requests_with_a_clear_message() {
    let w = world();
    for (body, expected) in [
        ("{not json", "the body is not an AdmissionReview"),
        ("", "the body is empty"),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            "has no request",
        ),
        (r#"{"request":{"operation":"CREATE"}}"#, "missing field `uid`"),
    ] {
        let (response, outcome) = w.call(SECRET, body).await;
        assert_eq!(response.status_code, 400, "{body:?}");
        assert_eq!(outcome, Outcome::Refused(400));
        let message = json_body(&response)["error"]
            .as_str()
            .expect("message")
            .to_string();
        assert!(message.contains(expected), "{message:?} should say {expected:?}");
    }
    assert!(w.sent.take().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let w = world();
    let mut review = review("admission-pod-create.json");
    review["request"]["object"]["metadata"]["annotations"] =
        serde_json::json!({"padding": "x".repeat(70 * 1024)});
    let (response, outcome) = w.call(SECRET, &review.to_string()).await;
    assert_eq!(response.status_code, 413);
    assert_eq!(outcome, Outcome::Refused(413));
    assert!(w.sent.take().is_empty());
}

#[tokio::test]
async fn a_base64_encoded_body_is_decoded() {
    let w = world();
    let encoded = base64::engine::general_purpose::STANDARD.encode(fixture("admission-pod-create.json"));
    let mut request = event(SECRET, &encoded);
    request.is_base64_encoded = true;
    let (response, outcome) = w.webhook.handle(&request).await;
    assert_allowed(&response, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(outcome, Outcome::Requested);
}

#[tokio::test]
async fn a_failed_send_is_not_tried_again_in_its_window() {
    let w = world();
    w.sent.fail_next(1);
    let body = fixture("admission-pod-status-unschedulable.json");
    let (response, outcome) = w.call(SECRET, &body).await;
    assert_allowed(&response, "b1c7e0a2-4d3f-4a8e-9c61-7f2e5d8a9b30");
    assert!(matches!(outcome, Outcome::SendFailed(_)), "{outcome:?}");
    let (response, outcome) = w.call(SECRET, &body).await;
    assert_allowed(&response, "b1c7e0a2-4d3f-4a8e-9c61-7f2e5d8a9b30");
    assert_eq!(outcome, Outcome::FailedThisWindow);
    assert_eq!(w.sent.attempts(), 1, "the rest of the window sends nothing");
    w.clock.advance(2_000);
    let (_, outcome) = w.call(SECRET, &body).await;
    assert_eq!(outcome, Outcome::Requested, "the next window tries again");
    assert_eq!(w.sent.take().len(), 1);
}

#[test]
fn the_webhook_sends_once_within_a_second() {
    let policy = send_policy();
    assert_eq!(policy.max_attempts, 1);
    assert!(policy.attempt_timeout < Duration::from_secs(1));
    assert!(
        policy
            .timeouts()
            .connect_timeout()
            .is_some_and(|t| t < Duration::from_secs(1))
    );
}

#[tokio::test]
async fn a_pod_in_kube_system_is_allowed_without_a_round() {
    let w = world();
    let mut review = review("admission-pod-create.json");
    review["request"]["namespace"] = json!("kube-system");
    review["request"]["object"]["metadata"]["namespace"] = json!("kube-system");
    let (response, outcome) = w.call(SECRET, &review.to_string()).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(json_body(&response)["response"]["allowed"], json!(true));
    assert_eq!(outcome, Outcome::Ignored("in kube-system"));
    assert!(w.sent.take().is_empty());
}

/// A secret in moto's Secrets Manager with `values` put in order (the last is current).
async fn secret_with(moto: &Moto, name: &str, values: &[&str]) -> aws_sdk_secretsmanager::Client {
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config());
    client
        .create_secret()
        .name(name)
        .secret_string(values[0])
        .send()
        .await
        .expect("create secret");
    for value in &values[1..] {
        put_value(&client, name, value).await;
    }
    client
}

async fn put_value(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    client
        .put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .expect("put secret value");
}

/// The configuration of a webhook reading its secret from Secrets Manager.
fn secret_config(name: &str) -> WebhookConfig {
    WebhookConfig {
        secret: SecretConfig::SecretsManager(name.into()),
        ..config("unused")
    }
}

#[tokio::test]
async fn a_rotated_secret_is_accepted_with_the_one_before_it_and_reaches_warm_containers() {
    const OLD: &str = "old-value-0123456789abcdef";
    const CURRENT: &str = "current-value-0123456789ab";
    const NEXT: &str = "next-value-0123456789abcdef";
    // It counts the server's reads: this test owns its moto.
    let own = Moto::start();
    let client = secret_with(&own, "nodewright-webhook", &[OLD, CURRENT]).await;
    let w = world();
    let source = SecretsManagerSecret::new(&own.sdk_config(), "nodewright-webhook", &RetryPolicy::default());
    let hook = w
        .webhook_with(secret_config("nodewright-webhook"))
        .with_secret_source(Arc::new(source))
        .await
        .expect("the secret is read at cold start");
    let reads = || {
        own.calls()
            .iter()
            .filter(|c| c.action == "GetSecretValue")
            .count()
    };
    let body = fixture("admission-pod-create.json");
    for accepted in [CURRENT, OLD] {
        let (response, _) = hook.handle(&event(accepted, &body)).await;
        assert_eq!(response.status_code, 200, "{accepted} is accepted");
    }
    let at_cold_start = reads();

    // Rotated: until the refresh interval has passed, an unknown value costs no read.
    put_value(&client, "nodewright-webhook", NEXT).await;
    let (response, outcome) = hook.handle(&event(NEXT, &body)).await;
    assert_eq!((response.status_code, outcome), (403, Outcome::Refused(403)));
    assert_eq!(reads(), at_cold_start);
    w.clock.advance(SECRET_REFRESH_MS);
    let (response, _) = hook.handle(&event(NEXT, &body)).await;
    assert_eq!(
        response.status_code, 200,
        "the new value reaches a warm container"
    );
    assert!(reads() > at_cold_start);
    let (response, _) = hook.handle(&event(CURRENT, &body)).await;
    assert_eq!(response.status_code, 200, "the value before it is still accepted");
    let (response, _) = hook.handle(&event(OLD, &body)).await;
    assert_eq!(response.status_code, 403, "the value before that is not");
}

#[tokio::test]
async fn a_cold_start_fails_when_the_secret_is_missing_or_unusable() {
    let moto = Moto::shared();
    let w = world();
    let source = SecretsManagerSecret::new(&moto.sdk_config(), "missing", &RetryPolicy::default());
    let err = w
        .webhook_with(secret_config("missing"))
        .with_secret_source(Arc::new(source))
        .await
        .expect_err("no such secret");
    assert!(err.to_string().contains("GetSecretValue"), "{err}");

    secret_with(moto, "short", &["short"]).await;
    let source = SecretsManagerSecret::new(&moto.sdk_config(), "short", &RetryPolicy::default());
    let err = w
        .webhook_with(secret_config("short"))
        .with_secret_source(Arc::new(source))
        .await
        .expect_err("too short");
    assert!(err.to_string().contains("at least 16"), "{err}");
}

/// The EMF document of one review at `at`.
fn review_metrics(at: i64, sent: u32, failed: u32) -> Value {
    json!({
        "_aws": {
            "Timestamp": at,
            "CloudWatchMetrics": [{
                "Namespace": "nodewright",
                "Dimensions": [[]],
                "Metrics": [
                    {"Name": "WebhookReviews", "Unit": "Count"},
                    {"Name": "WebhookMessagesSent", "Unit": "Count"},
                    {"Name": "WebhookSendFailures", "Unit": "Count"},
                ],
            }],
        },
        "WebhookReviews": 1,
        "WebhookMessagesSent": sent,
        "WebhookSendFailures": failed,
    })
}

#[tokio::test]
async fn each_review_through_the_handler_prints_one_emf_line_and_a_refused_call_none() {
    let w = world();
    let printed = Printed::default();
    let hook = w
        .webhook_with(config("unused"))
        .with_metrics(MetricsOut::to(printed.clone()));
    let body = fixture("admission-pod-status-unschedulable.json");
    for path in [SECRET, SECRET, "wrong-secret-wrong-secret"] {
        function_handler(&hook, LambdaEvent::new(event(path, &body), Context::default()))
            .await
            .expect("handled");
    }
    assert_eq!(
        printed.take(),
        vec![review_metrics(T0, 1, 0), review_metrics(T0, 0, 0)],
        "a message for the first review, none for the second in its window, no line for the refused call"
    );
    assert_eq!(w.sent.take().len(), 1);
}

#[tokio::test]
async fn a_request_the_queue_does_not_take_is_printed_as_a_send_failure() {
    let w = world();
    let printed = Printed::default();
    let hook = w
        .webhook_with(config("unused"))
        .with_metrics(MetricsOut::to(printed.clone()));
    w.sent.fail_next(1);
    let body = fixture("admission-pod-status-unschedulable.json");
    for _ in 0..2 {
        function_handler(&hook, LambdaEvent::new(event(SECRET, &body), Context::default()))
            .await
            .expect("handled");
    }
    w.clock.advance(2_000);
    function_handler(&hook, LambdaEvent::new(event(SECRET, &body), Context::default()))
        .await
        .expect("handled");
    assert_eq!(
        printed.take(),
        vec![
            review_metrics(T0, 0, 1),
            review_metrics(T0, 0, 0),
            review_metrics(T0 + 2_000, 1, 0)
        ],
        "the failure, a review in the same window, then the next window's request"
    );
}

// Over the wire: the SQS sender against a FIFO queue on moto.

/// A FIFO queue named `name` on `moto`, and a client for it.
async fn fifo_queue(moto: &Moto, name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    (sqs, queue_url)
}

/// The requests on the queue, received and deleted.
async fn messages(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<ProvisionRequest> {
    take_messages(sqs, queue_url)
        .await
        .iter()
        .map(|m| serde_json::from_str(m.body.as_deref().expect("a body")).expect("a provisioning request"))
        .collect()
}

#[tokio::test]
async fn the_queue_keeps_one_request_a_window_whichever_container_sent_it() {
    let moto = Moto::shared();
    let (sqs, queue_url) = fifo_queue(moto, "burst").await;
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(5),
    };
    let clock = VirtualClock::shared(T0);
    // Two warm containers: their own memory, the same queue.
    let containers: Vec<Webhook<ProvisionQueue>> = (0..2)
        .map(|_| {
            let queue = ProvisionQueue::new(&moto.sdk_config(), &queue_url, &retry);
            Webhook::new(config(&queue_url), queue, clock.clone())
        })
        .collect();
    let body = fixture("admission-pod-status-unschedulable.json");
    for i in 0..100 {
        let (response, _) = containers[i % 2].handle(&event(SECRET, &body)).await;
        assert_eq!(response.status_code, 200);
        clock.advance(10); // 100 reviews within one second
    }
    let received = messages(&sqs, &queue_url).await;
    assert_eq!(
        received,
        [ProvisionRequest {
            source: "webhook".into(),
            bucket: T0 / 2_000,
            sent_at: T0,
            pod: Some("default/inflate-7d9c8b6f5-x2k4p".into()),
        }],
        "SQS keeps one per window"
    );

    clock.advance(2_000);
    let (_, outcome) = containers[1].handle(&event(SECRET, &body)).await;
    assert_eq!(outcome, Outcome::Requested);
    assert_eq!(
        messages(&sqs, &queue_url).await.len(),
        1,
        "the next window asks again"
    );
}

#[tokio::test]
async fn when_sqs_fails_the_one_attempt_is_not_retried_and_the_pod_is_still_allowed() {
    // Injected failures apply to the whole server: this test owns its moto.
    let own = Moto::start();
    let (_, queue_url) = fifo_queue(&own, "failing").await;
    let clock = VirtualClock::shared(T0);
    // The policy Lambda uses: one attempt.
    let queue = ProvisionQueue::new(&own.sdk_config(), &queue_url, &send_policy());
    let webhook = Webhook::new(config(&queue_url), queue, clock.clone());
    own.fail_next_with_status("sqs", "SendMessage", "ServiceUnavailable", 1, 503);
    let sends = || {
        own.calls()
            .iter()
            .filter(|c| c.service == "sqs" && c.action == "SendMessage")
            .count()
    };
    let body = fixture("admission-pod-status-unschedulable.json");
    let (response, outcome) = webhook.handle(&event(SECRET, &body)).await;
    assert_allowed(&response, "b1c7e0a2-4d3f-4a8e-9c61-7f2e5d8a9b30");
    assert!(matches!(outcome, Outcome::SendFailed(_)), "{outcome:?}");
    assert_eq!(sends(), 1, "one attempt, no retry");
    clock.advance(2_000);
    let (_, outcome) = webhook.handle(&event(SECRET, &body)).await;
    assert_eq!(outcome, Outcome::Requested, "the next window tries again");
    assert_eq!(sends(), 2);
}
