//! What a pass, a sweep or an interruption batch acts through: the cluster, the cloud, the
//! claim store, the clock and the source of claim ids, and the process's warm record of
//! offerings out of capacity. The Lambda functions wire them to AWS and Kubernetes, the
//! simulator to its in-memory cloud and cluster.

use std::sync::{Mutex, MutexGuard};

use crate::ports::{Clock, IdSource};
use crate::unavailable::UnavailableOfferings;

pub struct Ports<'a, C, K, S> {
    pub cluster: &'a C,
    pub cloud: &'a K,
    pub store: &'a S,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    /// Kept warm between invocations; a pass adds the store's marks to it first.
    pub unavailable: &'a Mutex<UnavailableOfferings>,
}

// Derived Clone and Copy would ask the same of the ports themselves; only references are copied.
impl<C, K, S> Clone for Ports<'_, C, K, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, K, S> Copy for Ports<'_, C, K, S> {}

impl<'a, C, K, S> Ports<'a, C, K, S> {
    /// The same ports writing claims through `store` (the one fenced by a lease).
    pub fn with_store<'b, T>(&self, store: &'b T) -> Ports<'b, C, K, T>
    where
        'a: 'b,
    {
        Ports {
            cluster: self.cluster,
            cloud: self.cloud,
            store,
            clock: self.clock,
            ids: self.ids,
            unavailable: self.unavailable,
        }
    }

    /// The warm record of offerings out of capacity.
    pub fn unavailable(&self) -> MutexGuard<'a, UnavailableOfferings> {
        lock(self.unavailable)
    }
}

/// A poisoned record is still a valid record: every write to it is a single insert.
pub fn lock(m: &Mutex<UnavailableOfferings>) -> MutexGuard<'_, UnavailableOfferings> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
