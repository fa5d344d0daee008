//! Property tests: for random pods, daemonsets, NodePools, existing nodes, in-flight claims and
//! unavailable offerings over a slice of the embedded catalog, no plan breaks a hard constraint.
//!
//! The checker is independent of the solver: it works from the generated specs, the catalog's
//! labels, allocatable and offerings, and the plan alone, with its own label matching, resource
//! sums and topology counts. Spread and pod affinity are checked by replaying the placements
//! in the order the issue fixes (pods reserved by in-flight claims first, then largest CPU,
//! then memory, then creation), against the domains each pod could possibly use.

#[path = "plan_properties/check/mod.rs"]
mod check;
#[path = "plan_properties/generators.rs"]
mod generators;
#[path = "plan_properties/input.rs"]
mod input;
#[path = "plan_properties/specs.rs"]
mod specs;

use nodewright_core::scheduler::schedule;
use proptest::prelude::*;

use check::check;
use generators::{busy_world, world};
use input::build_input;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_breaks_a_hard_constraint(world in world()) {
        let input = build_input(&world);
        let plan = schedule(&input);
        if let Err(violation) = check(&world, &input, &plan) {
            return Err(TestCaseError::fail(format!("{violation}\nplan: {plan:#?}")));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_for_many_mostly_unconstrained_pods_breaks_a_hard_constraint(world in busy_world()) {
        let input = build_input(&world);
        let plan = schedule(&input);
        if let Err(violation) = check(&world, &input, &plan) {
            return Err(TestCaseError::fail(format!("{violation}\nplan: {plan:#?}")));
        }
    }
}
