//! CloudWatch metrics in the Embedded Metric Format (EMF): one JSON document a line on stdout
//! after each call, which CloudWatch Logs turns into metrics of the namespace `nodewright` (the
//! provisioner's functions print theirs the same way; see `nodewright_provisioner::metrics`).
//!
//! A call that reads as an AdmissionReview counts as a review; whether it asked for a
//! provisioning round, and whether sending that request failed, are counted with it. A refused
//! call (wrong secret, unreadable body) is no review and prints nothing; its warning is logged.

use nodewright_aws::emf::{Metric, document};
pub use nodewright_aws::emf::{MetricsOut, NAMESPACE};
use nodewright_core::pod::Millis;
use serde_json::Value;

use crate::Outcome;

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
        Outcome::AlreadyRequested | Outcome::FailedThisWindow | Outcome::Ignored(_) => (0, 0),
    };
    Some(document(
        timestamp,
        &[],
        &[
            Metric::count(REVIEWS, 1),
            Metric::count(MESSAGES_SENT, sent),
            Metric::count(SEND_FAILURES, failed),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
