//! The webhook Lambda's entry point: configuration and clients once per cold start, then one
//! [`Webhook::handle`] per Function URL call.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_aws::queue::ProvisionQueue;
use nodewright_aws::{RetryPolicy, SystemClock};
use nodewright_webhook::{MetricsOut, Webhook, WebhookConfig, function_handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
    let config = WebhookConfig::from_env(|k| std::env::var(k).ok())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // The API server waits for this answer: two quick attempts, then the backstop's turn.
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(2),
    };
    let queue = ProvisionQueue::new(&sdk, config.queue_url.clone(), &retry);
    let webhook =
        Arc::new(Webhook::new(config, queue, Arc::new(SystemClock)).with_metrics(MetricsOut::stdout()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<LambdaFunctionUrlRequest>| {
        let webhook = webhook.clone();
        async move { function_handler(&webhook, event).await }
    }))
    .await
}
