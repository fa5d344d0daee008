//! CloudWatch metrics in the Embedded Metric Format (EMF): one JSON document a line on stdout
//! after each call, which CloudWatch Logs turns into metrics of the namespace `nodewright` (the
//! provisioner's functions print theirs the same way; see `nodewright_provisioner::metrics`).
//!
//! A call that reads as an AdmissionReview counts as a review; whether it asked for a
//! provisioning round, and whether sending that request failed, are counted with it. A refused
//! call (wrong secret, unreadable body) is no review and prints nothing; its warning is logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use nodewright_core::pod::Millis;
use serde_json::{Value, json};

use crate::Outcome;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "nodewright";
/// AdmissionReviews answered.
pub const REVIEWS: &str = "WebhookReviews";
/// Provisioning requests sent to the provision queue.
pub const MESSAGES_SENT: &str = "WebhookMessagesSent";
/// Provisioning requests the queue did not take (the schedule's pass covers them).
pub const SEND_FAILURES: &str = "WebhookSendFailures";

/// The EMF document of one call, if it was a review: the three counts, without dimensions.
pub fn call(outcome: &Outcome, timestamp: Millis) -> Option<Value> {
    let (sent, failed) = match outcome {
        Outcome::Refused(_) => return None,
        Outcome::Requested => (1, 0),
        Outcome::SendFailed(_) => (0, 1),
        Outcome::AlreadyRequested | Outcome::Ignored(_) => (0, 0),
    };
    Some(json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [
                    {"Name": REVIEWS, "Unit": "Count"},
                    {"Name": MESSAGES_SENT, "Unit": "Count"},
                    {"Name": SEND_FAILURES, "Unit": "Count"},
                ],
            }],
        },
        REVIEWS: 1,
        MESSAGES_SENT: sent,
        SEND_FAILURES: failed,
    }))
}

/// Where the documents go: stdout in Lambda (CloudWatch Logs reads it), a buffer in tests,
/// nowhere unless set.
#[derive(Clone, Default)]
pub struct MetricsOut(Option<Arc<Mutex<dyn Write + Send>>>);

impl std::fmt::Debug for MetricsOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "MetricsOut(writer)"
        } else {
            "MetricsOut(none)"
        })
    }
}

impl MetricsOut {
    /// Writes to `writer`.
    pub fn to(writer: impl Write + Send + 'static) -> Self {
        MetricsOut(Some(Arc::new(Mutex::new(writer))))
    }

    /// Writes to the process's stdout, as Lambda wants EMF.
    pub fn stdout() -> Self {
        Self::to(std::io::stdout())
    }

    /// Writes the document as one line. A write that fails is logged: metrics never fail a
    /// call.
    pub fn emit(&self, document: &Value) {
        let Some(writer) = &self.0 else { return };
        let mut line = document.to_string();
        line.push('\n');
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write_all(line.as_bytes()).and_then(|()| w.flush()) {
            tracing::warn!(error = %e, "could not write the metrics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_342_530_000;

    fn document(sent: u32, failed: u32) -> Value {
        json!({
            "_aws": {
                "Timestamp": NOW,
                "CloudWatchMetrics": [{
                    "Namespace": "nodewright",
                    "Dimensions": [[]],
                    "Metrics": [
                        {"Name": "WebhookReviews", "Unit": "Count"},
                        {"Name": "WebhookMessagesSent", "Unit": "Count"},
                        {"Name": "WebhookSendFailures", "Unit": "Count"},
                    ],
                }],
            },
            "WebhookReviews": 1,
            "WebhookMessagesSent": sent,
            "WebhookSendFailures": failed,
        })
    }

    #[test]
    fn a_review_that_requested_a_round_counts_one_message_sent() {
        assert_eq!(call(&Outcome::Requested, NOW), Some(document(1, 0)));
    }

    #[test]
    fn a_review_whose_request_could_not_be_sent_counts_one_send_failure() {
        let outcome = Outcome::SendFailed("Unavailable: ServiceUnavailable".into());
        assert_eq!(call(&outcome, NOW), Some(document(0, 1)));
    }

    #[test]
    fn a_review_that_needs_no_message_counts_only_as_a_review() {
        assert_eq!(call(&Outcome::AlreadyRequested, NOW), Some(document(0, 0)));
        assert_eq!(call(&Outcome::Ignored("dry run"), NOW), Some(document(0, 0)));
    }

    #[test]
    fn a_refused_call_is_no_review_and_prints_nothing() {
        assert_eq!(call(&Outcome::Refused(403), NOW), None);
        assert_eq!(call(&Outcome::Refused(400), NOW), None);
    }
}
