//! The provisioner Lambda's entry point: configuration, cluster details and clients once per
//! cold start, then one [`function_handler`] call per invocation.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use nodewright_provisioner::{from_env, function_handler, init_tracing};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let provisioner = Arc::new(from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let provisioner = provisioner.clone();
        async move { function_handler(&provisioner, event).await }
    }))
    .await
}
