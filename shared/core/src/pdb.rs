//! PodDisruptionBudgets, and the arithmetic of Kubernetes' disruption controller that decides
//! whether one more voluntary disruption is allowed.

use crate::pod::{LabelSelector, Pod};

/// `minAvailable` / `maxUnavailable`: a count, or a percentage of the expected pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u32),
}

impl IntOrPercent {
    /// Parses `3` or `"50%"`.
    pub fn parse(raw: &str) -> Result<IntOrPercent, String> {
        let raw = raw.trim();
        match raw.strip_suffix('%') {
            Some(p) => p
                .parse()
                .map(IntOrPercent::Percent)
                .map_err(|_| format!("{raw:?} is not a percentage")),
            None => raw
                .parse()
                .map(IntOrPercent::Int)
                .map_err(|_| format!("{raw:?} is neither a count nor a percentage")),
        }
    }

    /// The count for `expected` pods; percentages round up, as the disruption controller's do.
    pub fn of(self, expected: u32) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => (u64::from(expected) * u64::from(p)).div_ceil(100) as u32,
        }
    }
}

/// What a budget keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    MinAvailable(IntOrPercent),
    MaxUnavailable(IntOrPercent),
}

/// A `policy/v1 PodDisruptionBudget`.
#[derive(Debug, Clone, PartialEq)]
pub struct PodDisruptionBudget {
    pub namespace: String,
    pub name: String,
    /// `None` (no selector) selects no pod; an empty selector selects every pod.
    pub selector: Option<LabelSelector>,
    pub budget: Budget,
}

impl PodDisruptionBudget {
    /// Whether the budget covers the pod: same namespace, labels selected.
    pub fn selects(&self, pod: &Pod) -> bool {
        pod.namespace == self.namespace && self.selector.as_ref().is_some_and(|s| s.matches(&pod.labels))
    }

    /// How many of `expected` pods must stay healthy.
    pub fn desired_healthy(&self, expected: u32) -> u32 {
        match self.budget {
            Budget::MinAvailable(m) => m.of(expected),
            Budget::MaxUnavailable(m) => expected.saturating_sub(m.of(expected)),
        }
    }

    /// Disruptions allowed now: healthy pods beyond the desired number.
    pub fn disruptions_allowed(&self, expected: u32, healthy: u32) -> u32 {
        healthy.saturating_sub(self.desired_healthy(expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(budget: Budget) -> PodDisruptionBudget {
        PodDisruptionBudget {
            namespace: "default".into(),
            name: "web".into(),
            selector: Some(LabelSelector::match_labels(&[("app", "web")])),
            budget,
        }
    }

    #[test]
    fn percentages_round_up_and_counts_are_taken_as_written() {
        assert_eq!(IntOrPercent::parse("50%"), Ok(IntOrPercent::Percent(50)));
        assert_eq!(IntOrPercent::parse("2"), Ok(IntOrPercent::Int(2)));
        assert!(IntOrPercent::parse("two").is_err());
        assert_eq!(IntOrPercent::Percent(50).of(3), 2);
        assert_eq!(IntOrPercent::Percent(10).of(5), 1);
    }

    #[test]
    fn a_budget_allows_only_the_healthy_pods_beyond_what_it_keeps() {
        let min = pdb(Budget::MinAvailable(IntOrPercent::Int(2)));
        assert_eq!(min.disruptions_allowed(3, 3), 1);
        assert_eq!(min.disruptions_allowed(3, 2), 0);
        let max = pdb(Budget::MaxUnavailable(IntOrPercent::Percent(25)));
        // 25% of 4 is 1 unavailable: 3 must stay.
        assert_eq!(max.disruptions_allowed(4, 4), 1);
        assert_eq!(max.disruptions_allowed(4, 3), 0);
    }
}
