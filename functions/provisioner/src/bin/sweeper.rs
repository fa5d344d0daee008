//! The sweeper Lambda's entry point: the provisioner's adapters once per cold start, then one
//! sweep per scheduled invocation.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_aws::SystemClock;
use nodewright_kube::{EksConfigSource, KubeCluster};
use nodewright_provisioner::{ProvisionerConfig, assemble, cluster_info, sweeper};
use serde_json::Value;

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
    let config = ProvisionerConfig::from_env(|k| std::env::var(k).ok())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let info = cluster_info(&config, &sdk).await?;
    let source = Arc::new(EksConfigSource::new(&sdk, info.clone())?);
    let cluster = KubeCluster::from_source(source).await?;
    let adapters = Arc::new(assemble(&config, &sdk, cluster, &info, Arc::new(SystemClock))?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let adapters = adapters.clone();
        async move { sweeper::function_handler(&adapters, event).await }
    }))
    .await
}
