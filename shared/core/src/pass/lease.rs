//! The cluster's lease around a pass or a sweep.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::PassConfig;
use crate::pod::Millis;
use crate::ports::{ClaimStore, Clock, ErrorKind, Lease, PortError, PortResult};

/// What running under the lease came to.
pub(super) enum Leased<T> {
    Ran(T),
    /// Another holder had the lease (who, until when).
    Held(String),
}

/// Takes the cluster's lease, runs `work` with the store fenced by it, and releases the lease
/// however `work` ends — a panic is caught, the lease released, and the panic resumed.
pub(super) async fn leased<S, F, Fut, T>(
    store: &S,
    clock: &dyn Clock,
    config: &PassConfig,
    work: F,
) -> PortResult<Leased<T>>
where
    S: ClaimStore,
    F: FnOnce(S) -> Fut,
    Fut: Future<Output = PortResult<T>>,
{
    let lease = match store
        .acquire_lease(&config.round.holder, clock.now(), config.round.lease_ttl_ms)
        .await
    {
        Ok(lease) => lease,
        Err(e) if e.kind == ErrorKind::Conflict => return Ok(Leased::Held(e.message)),
        Err(e) => return Err(e),
    };
    let outcome = CatchUnwind(Box::pin(work(store.fenced(&lease)))).await;
    release(store, &lease).await;
    match outcome {
        Ok(result) => result.map(Leased::Ran),
        Err(panic) => resume_unwind(panic),
    }
}

/// The lease expires on its own if releasing fails; the pass's result matters more.
async fn release<S: ClaimStore>(store: &S, lease: &Lease) {
    let _ = store.release_lease(lease).await;
}

/// Polls a future, catching a panic so that the lease can be released before it goes on.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Refuses a lease shorter than the invocation it guards: a lease that expires while its
/// holder still runs lets a second pass act on the cluster at the same time.
pub fn check_lease_ttl(lease_ttl_ms: Millis, function_timeout_ms: Millis) -> PortResult<()> {
    if lease_ttl_ms < function_timeout_ms + LEASE_MARGIN_MS {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!(
                "the lease TTL ({} s) must be at least the function timeout ({} s) plus {} s",
                lease_ttl_ms / 1000,
                function_timeout_ms / 1000,
                LEASE_MARGIN_MS / 1000
            ),
        ));
    }
    Ok(())
}

/// How much longer than the function timeout a lease lasts: clock skew and the release write.
pub const LEASE_MARGIN_MS: Millis = 30_000;
