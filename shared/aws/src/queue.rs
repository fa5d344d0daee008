//! The provision queue: an SQS FIFO queue carrying "run a provisioning round" requests.
//!
//! A burst of pods must become one round, not one round per pod. Requests are deduplicated by a
//! time bucket: every request sent in the same `window` carries the same deduplication id, and
//! SQS keeps only the first. The queue's delivery delay is at least `window` (the template sets
//! both), so the round a bucket's first request starts runs after that bucket has closed and
//! sees every pod that became pending in it; a request in the next bucket starts the next
//! round. No request is lost to deduplication, and the EventBridge schedule backstops any that
//! never reached the queue.

use std::time::Duration;

use aws_config::SdkConfig;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ErrorKind, PortError, PortResult};
use serde::{Deserialize, Serialize};

use crate::config::RetryPolicy;
use crate::errors::from_sdk;

/// Every request is in one message group: rounds for one cluster run one at a time.
pub const MESSAGE_GROUP: &str = "provision";

/// The body of a provisioning request. The round reads the cluster itself; the body says only
/// why it was asked for, for the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionRequest {
    /// What asked: `webhook`, `interruption`, an operator.
    pub source: String,
    /// The deduplication bucket (milliseconds since the epoch / window).
    pub bucket: i64,
    /// When it was sent, milliseconds since the epoch.
    pub sent_at: Millis,
    /// The pod that triggered it (`namespace/name`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// The bucket a moment falls in.
pub fn bucket(now: Millis, window: Duration) -> i64 {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
    now.div_euclid(window_ms)
}

/// The deduplication id of a bucket.
pub fn deduplication_id(bucket: i64) -> String {
    format!("round-{bucket}")
}

/// Sends provisioning requests to the queue.
#[derive(Debug, Clone)]
pub struct ProvisionQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl ProvisionQueue {
    /// A client for `queue_url` with the given retry policy. The webhook answers the API
    /// server within its timeout, so it passes a short policy.
    pub fn new(sdk: &SdkConfig, queue_url: impl Into<String>, retry: &RetryPolicy) -> Self {
        let client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .retry_config(retry.sdk())
                .timeout_config(retry.timeouts())
                .build(),
        );
        ProvisionQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one request, deduplicated within its bucket.
    pub async fn send(&self, request: &ProvisionRequest) -> PortResult<()> {
        let body = serde_json::to_string(request)
            .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()).with_source(e))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(MESSAGE_GROUP)
            .message_deduplication_id(deduplication_id(request.bucket))
            .message_body(body)
            .send()
            .await
            .map_err(|e| from_sdk("SendMessage", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_in_one_window_share_a_bucket_and_the_next_window_does_not() {
        let w = Duration::from_secs(2);
        assert_eq!(bucket(10_000, w), bucket(11_999, w));
        assert_ne!(bucket(11_999, w), bucket(12_000, w));
        assert_eq!(deduplication_id(bucket(10_000, w)), "round-5");
    }

    #[test]
    fn a_request_reads_back_from_its_body_and_unknown_fields_are_refused() {
        let request = ProvisionRequest {
            source: "webhook".into(),
            bucket: 7,
            sent_at: 14_000,
            pod: Some("default/inflate-1".into()),
        };
        let body = serde_json::to_string(&request).expect("serialize");
        assert_eq!(
            serde_json::from_str::<ProvisionRequest>(&body).expect("parse"),
            request
        );
        assert!(
            serde_json::from_str::<ProvisionRequest>(r#"{"source":"x","bucket":1,"sentAt":1,"extra":1}"#)
                .is_err()
        );
    }
}
