//! The webhook Lambda's entry point: configuration and clients once per cold start, then one
//! [`Webhook::handle`] per Function URL call.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_aws::queue::ProvisionQueue;
use nodewright_aws::secrets::SecretsManagerSecret;
use nodewright_aws::{RetryPolicy, SystemClock};
use nodewright_webhook::{MetricsOut, SecretConfig, Webhook, WebhookConfig, function_handler, send_policy};

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
    let queue = ProvisionQueue::new(&sdk, config.queue_url.clone(), &send_policy());
    let secret = config.secret.clone();
    let mut webhook = Webhook::new(config, queue, Arc::new(SystemClock)).with_metrics(MetricsOut::stdout());
    if let SecretConfig::SecretsManager(id) = secret {
        // Read before the first call; a read that fails fails the cold start, which Lambda
        // reports, rather than refusing every call.
        let retry = RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(1),
        };
        webhook = webhook
            .with_secret_source(Arc::new(SecretsManagerSecret::new(&sdk, id, &retry)))
            .await?;
    }
    let webhook = Arc::new(webhook);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<LambdaFunctionUrlRequest>| {
        let webhook = webhook.clone();
        async move { function_handler(&webhook, event).await }
    }))
    .await
}
