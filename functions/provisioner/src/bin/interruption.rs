//! The interruption Lambda's entry point: the provisioner's adapters once per cold start, then
//! one SQS batch of interruption messages per invocation.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_core::interruption::Rebalance;
use nodewright_provisioner::{from_env, init_tracing, interruption};
use serde_json::Value;

/// `record` (the default) or `drain`: what a rebalance recommendation does.
const REBALANCE: &str = "NODEWRIGHT_REBALANCE";

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let rebalance = match std::env::var(REBALANCE).ok().as_deref() {
        None | Some("") | Some("record") => Rebalance::Record,
        Some("drain") => Rebalance::Drain,
        Some(other) => return Err(format!("{REBALANCE}: {other:?} is neither record nor drain").into()),
    };
    let adapters = Arc::new(from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let adapters = adapters.clone();
        async move { interruption::function_handler(&adapters, rebalance, event).await }
    }))
    .await
}
