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
    /// Value and the moment it expires.
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
        let (expires_at, value) = entries.get(key)?;
        (now < *expires_at).then(|| value.clone())
    }

    pub(crate) fn put(&self, key: K, value: V, now: Millis) {
        self.put_for(key, value, now, self.ttl);
    }

    /// Stores a value good for `ttl` rather than the cache's usual time.
    pub(crate) fn put_for(&self, key: K, value: V, now: Millis, ttl: Millis) {
        let mut entries = lock(&self.entries);
        entries.retain(|_, (expires_at, _)| now < *expires_at);
        entries.insert(key, (now + ttl, value));
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
    fn a_value_can_be_kept_for_a_shorter_time() {
        let cache = TtlCache::new(1_000);
        cache.put_for("k", 1, 0, 10);
        assert_eq!(cache.get(&"k", 9), Some(1));
        assert_eq!(cache.get(&"k", 10), None);
    }

    #[test]
    fn clearing_forgets_everything() {
        let cache = TtlCache::new(1_000);
        cache.put(1, "a", 0);
        cache.clear();
        assert_eq!(cache.get(&1, 0), None);
    }
}
