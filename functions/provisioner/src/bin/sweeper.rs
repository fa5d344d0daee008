//! The sweeper Lambda's entry point: the provisioner's adapters once per cold start, then one
//! sweep per scheduled invocation.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_provisioner::{from_env, init_tracing, sweeper};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let adapters = Arc::new(from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let adapters = adapters.clone();
        async move { sweeper::function_handler(&adapters, event).await }
    }))
    .await
}
