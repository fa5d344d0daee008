//! Offerings that recently failed with insufficient capacity, skipped for a while.
//!
//! The one record of this fact: whoever runs passes owns one (the provisioner's warm state,
//! the simulator), seeds it from the claim store each pass and marks it from the cloud's
//! answers; the scheduler leaves these offerings out of everything it plans, launch overrides
//! included, so nothing downstream filters for capacity again.

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

    /// Nothing is marked (expired marks count until [`Self::snapshot`] forgets them).
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// The offerings still unavailable at `now`, for one decision; the expired ones are
    /// forgotten here too.
    pub fn snapshot(&mut self, now: Millis) -> UnavailableOfferings {
        self.until.retain(|_, until| now < *until);
        self.clone()
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
        assert!(!u.snapshot(1_000).is_empty());
        assert!(u.snapshot(1_000 + UNAVAILABLE_FOR_MS).is_empty());
        assert!(u.is_empty(), "the expired mark is forgotten");
    }
}
