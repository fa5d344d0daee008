//! The interruption Lambda's entry point: the provisioner's adapters once per cold start, then
//! one SQS batch of interruption messages per invocation.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_aws::SystemClock;
use nodewright_core::interruption::Rebalance;
use nodewright_kube::{EksConfigSource, KubeCluster};
use nodewright_provisioner::{ProvisionerConfig, assemble, cluster_info, interruption};
use serde_json::Value;

/// `record` (the default) or `drain`: what a rebalance recommendation does.
const REBALANCE: &str = "NODEWRIGHT_REBALANCE";

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
    let rebalance = match std::env::var(REBALANCE).ok().as_deref() {
        None | Some("") | Some("record") => Rebalance::Record,
        Some("drain") => Rebalance::Drain,
        Some(other) => return Err(format!("{REBALANCE}: {other:?} is neither record nor drain").into()),
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let info = cluster_info(&config, &sdk).await?;
    let source = Arc::new(EksConfigSource::new(&sdk, info.clone())?);
    let cluster = KubeCluster::from_source(source).await?;
    let adapters = Arc::new(assemble(&config, &sdk, cluster, &info, Arc::new(SystemClock))?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let adapters = adapters.clone();
        async move { interruption::function_handler(&adapters, rebalance, event).await }
    }))
    .await
}
