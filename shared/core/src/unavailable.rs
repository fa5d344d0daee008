//! Offerings that recently failed with insufficient capacity, skipped for a while.

use std::collections::BTreeMap;

use crate::pod::Millis;
use crate::ports::OfferingKey;

/// How long an offering stays unavailable after EC2 reports insufficient capacity.
pub const UNAVAILABLE_FOR_MS: Millis = 3 * 60 * 1000;

/// Offerings out of capacity, each until a moment in time.
#[derive(Debug, Clone, Default)]
pub struct UnavailableOfferings {
    until: BTreeMap<OfferingKey, Millis>,
}

impl UnavailableOfferings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the offering unavailable for [`UNAVAILABLE_FOR_MS`] from `now`.
    pub fn mark(&mut self, key: OfferingKey, now: Millis) {
        self.until.insert(key, now + UNAVAILABLE_FOR_MS);
    }

    /// Marks the offering unavailable until `until` (a later mark wins).
    pub fn mark_until(&mut self, key: OfferingKey, until: Millis) {
        let entry = self.until.entry(key).or_insert(until);
        *entry = (*entry).max(until);
    }

    pub fn is_unavailable(&self, key: &OfferingKey, now: Millis) -> bool {
        self.until.get(key).is_some_and(|until| now < *until)
    }

    /// The offerings still unavailable at `now`, forgetting the expired ones.
    pub fn current(&mut self, now: Millis) -> Vec<OfferingKey> {
        self.until.retain(|_, until| now < *until);
        self.until.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CapacityType;

    fn key() -> OfferingKey {
        OfferingKey {
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::Spot,
        }
    }

    #[test]
    fn an_offering_is_unavailable_for_three_minutes_after_capacity_runs_out() {
        let mut u = UnavailableOfferings::new();
        u.mark(key(), 1_000);
        assert!(u.is_unavailable(&key(), 1_000 + UNAVAILABLE_FOR_MS - 1));
        assert!(!u.is_unavailable(&key(), 1_000 + UNAVAILABLE_FOR_MS));
        assert_eq!(u.current(1_000).len(), 1);
        assert!(u.current(1_000 + UNAVAILABLE_FOR_MS).is_empty());
    }
}
