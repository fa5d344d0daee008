//! The bin-packing solver.

use super::{Input, Plan, Unschedulable};

pub(super) fn solve(input: &Input) -> Plan {
    // Placeholder until the solver lands: nothing is placed.
    Plan {
        unschedulable: input
            .pending
            .iter()
            .map(|p| Unschedulable {
                pod: p.key(),
                reason: "scheduler not built yet".into(),
            })
            .collect(),
        ..Plan::default()
    }
}
