//! In-memory caches with a time to live, read against the injected clock so that tests of
//! expiry need no sleeping. They live as long as the Lambda execution environment.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use nodewright_core::pod::Millis;

/// Values by key, each good for `ttl` after it was stored.
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    ttl: Millis,
    entries: Mutex<HashMap<K, (Millis, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Millis) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K, now: Millis) -> Option<V> {
        let entries = lock(&self.entries);
        let (stored_at, value) = entries.get(key)?;
        (now < stored_at + self.ttl).then(|| value.clone())
    }

    pub(crate) fn put(&self, key: K, value: V, now: Millis) {
        let mut entries = lock(&self.entries);
        entries.retain(|_, (stored_at, _)| now < *stored_at + self.ttl);
        entries.insert(key, (now, value));
    }

    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }
}

/// A poisoned lock only means another task panicked mid-update of a cache; the cache is still
/// usable (at worst it misses), so carry on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_served_until_its_time_to_live_runs_out() {
        let cache = TtlCache::new(1_000);
        cache.put("k", 1, 10_000);
        assert_eq!(cache.get(&"k", 10_999), Some(1));
        assert_eq!(cache.get(&"k", 11_000), None);
        assert_eq!(cache.get(&"other", 10_000), None);
    }

    #[test]
    fn clearing_forgets_everything() {
        let cache = TtlCache::new(1_000);
        cache.put(1, "a", 0);
        cache.clear();
        assert_eq!(cache.get(&1, 0), None);
    }
}
