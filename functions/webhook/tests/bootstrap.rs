//! The real `webhook` bootstrap, started as Lambda starts it through the runtime API emulator,
//! with the stack's environment (the secret read from Secrets Manager), answering the Function
//! URL calls the API server makes and putting one provisioning request per window on the queue,
//! as the in-process handler does in `webhook.rs` and the end-to-end tests.

use std::path::Path;
use std::time::Duration;

use nodewright_aws::queue::ProvisionRequest;
use nodewright_aws::runtime_api::{Answer, RuntimeApi};
use nodewright_aws::testing::Moto;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
const SECRET: &str = "bootstrap-secret-0123456789";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Function URL event for a call to `/<path>` with the fixture review `review`.
fn event(path: &str, review: &str) -> Value {
    let mut event: Value = serde_json::from_str(&fixture("function-url-request.json")).expect("fixture");
    event["rawPath"] = Value::String(format!("/{path}"));
    event["requestContext"]["http"]["path"] = Value::String(format!("/{path}"));
    event["body"] = Value::String(fixture(review));
    event
}

#[tokio::test]
async fn the_webhook_bootstrap_allows_reviews_and_requests_one_round_per_window() {
    let moto = Moto::start();
    let sdk = moto.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("bootstrap.fifo")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("queue url");
    let arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("nodewright-bootstrap-webhook")
        .secret_string(SECRET)
        .send()
        .await
        .expect("secret")
        .arn
        .expect("arn");
    let mut env = moto.lambda_environment();
    env.push((nodewright_webhook::config::SECRET_ID.into(), arn));
    env.push((nodewright_webhook::config::QUEUE_URL.into(), queue_url.clone()));
    // A window longer than the test, so that every review falls in one.
    env.push((nodewright_webhook::config::WINDOW_MS.into(), "600000".into()));

    let api = RuntimeApi::start().await;
    let mut bootstrap = api.spawn(
        Path::new(env!("CARGO_BIN_EXE_webhook")),
        "nodewright-bootstrap-webhook",
        &env,
    );
    let init = api.cold_start(&mut bootstrap, TIMEOUT).await;
    assert!(init.is_ok(), "the cold start failed: {init:?}");

    for review in [
        "admission-pod-create.json",
        "admission-pod-status-unschedulable.json",
    ] {
        let call = event(SECRET, review);
        let Answer::Response(response) = api.invoke(&call, TIMEOUT).await else {
            panic!("the webhook failed; its output:\n{}", bootstrap.output())
        };
        assert_eq!(response["statusCode"], 200, "{response}");
        let body: Value =
            serde_json::from_str(response["body"].as_str().expect("a body")).expect("JSON body");
        let sent: Value = serde_json::from_str(call["body"].as_str().expect("body")).expect("review");
        assert_eq!(body["response"]["allowed"], true);
        assert_eq!(body["response"]["uid"], sent["request"]["uid"]);
    }
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1, "one request for the window");
    let request: ProvisionRequest =
        serde_json::from_str(received[0].body.as_deref().expect("body")).expect("a provisioning request");
    assert_eq!(request.source, "webhook");

    // A caller without the secret is refused by the binary too.
    let Answer::Response(response) = api
        .invoke(
            &event("not-the-secret-0123456789", "admission-pod-create.json"),
            TIMEOUT,
        )
        .await
    else {
        panic!("the webhook failed")
    };
    assert_eq!(response["statusCode"], 403);
}
