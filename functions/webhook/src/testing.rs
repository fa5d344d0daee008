//! Test support (feature `test-util`): a [`RequestSink`] that records what the webhook sends,
//! so that the handler's tests need no SQS.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nodewright_aws::queue::ProvisionRequest;
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

use crate::RequestSink;

/// Records every request it is given; clones share the record, so a test keeps one and hands
/// the webhook another.
///
/// More lenient than SQS: nothing is serialized or size-checked and a send never times out.
/// The webhook's over-the-wire tests (a FIFO queue in moto, `tests/webhook.rs`) cover those.
#[derive(Debug, Clone, Default)]
pub struct RecordingSink {
    sent: Arc<Mutex<Vec<ProvisionRequest>>>,
    failures_left: Arc<AtomicU32>,
    attempts: Arc<AtomicU32>,
}

impl RecordingSink {
    pub fn new() -> Self {
        RecordingSink::default()
    }

    /// The next `count` sends fail as a queue that is down fails them (retryable).
    pub fn fail_next(&self, count: u32) {
        self.failures_left.store(count, Ordering::SeqCst);
    }

    /// The requests that went through since the last call, oldest first.
    pub fn take(&self) -> Vec<ProvisionRequest> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every send tried so far, failed ones included.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl RequestSink for RecordingSink {
    fn send(&self, request: &ProvisionRequest) -> impl Future<Output = PortResult<()>> + Send {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let failed = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok();
        let result = if failed {
            Err(PortError::new(
                ErrorKind::Unavailable,
                "SendMessage: the recording sink was told to fail",
            ))
        } else {
            self.sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(request.clone());
            Ok(())
        };
        std::future::ready(result)
    }
}
