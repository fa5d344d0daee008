//! The webhook's shared secret in Secrets Manager.
//!
//! The stack generates the secret; the API server puts it in the webhook URL's path. To rotate
//! it without refusing the API server in between, the webhook accepts both the current value
//! (`AWSCURRENT`) and the one before it (`AWSPREVIOUS`): put a new value, update the webhook
//! configuration's URL, and the old URL keeps working until the value after next.

use aws_config::SdkConfig;
use nodewright_core::ports::{ErrorKind, PortResult};

use crate::config::RetryPolicy;
use crate::errors::from_sdk;

/// The version stages whose values are accepted, newest first.
const STAGES: [&str; 2] = ["AWSCURRENT", "AWSPREVIOUS"];

/// Reads one secret's accepted values.
#[derive(Debug, Clone)]
pub struct SecretsManagerSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSecret {
    /// A reader for `secret_id` (a name or ARN) with the given retry policy.
    pub fn new(sdk: &SdkConfig, secret_id: impl Into<String>, retry: &RetryPolicy) -> Self {
        let client = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(sdk)
                .retry_config(retry.sdk())
                .timeout_config(retry.timeouts())
                .build(),
        );
        SecretsManagerSecret {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// The current value, then the previous one where there is one. A missing current value is
    /// an error; a secret never rotated has no previous value, which is not.
    pub async fn accepted(&self) -> PortResult<Vec<String>> {
        let mut values = Vec::with_capacity(STAGES.len());
        for (i, stage) in STAGES.into_iter().enumerate() {
            let result = self
                .client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .version_stage(stage)
                .send()
                .await;
            match result {
                Ok(output) => {
                    if let Some(value) = output.secret_string {
                        values.push(value);
                    }
                }
                Err(e) => {
                    let error = from_sdk(&format!("secretsmanager GetSecretValue {stage}"), e);
                    if i > 0 && error.kind == ErrorKind::NotFound {
                        continue;
                    }
                    return Err(error);
                }
            }
        }
        Ok(values)
    }
}
