//! Property tests: for random pods, daemonsets, NodePools, existing nodes, in-flight claims and
//! unavailable offerings over a slice of the embedded catalog, no plan breaks a hard constraint.
//!
//! The checker is the test kit's (`nodewright_core::testing::plan_check`), independent of the
//! solver: it re-derives every constraint from the input the specs build, and is the one the
//! CLI's tests check printed plans with.

#[path = "plan_properties/generators.rs"]
mod generators;
#[path = "plan_properties/input.rs"]
mod input;
#[path = "plan_properties/specs.rs"]
mod specs;

use nodewright_core::scheduler::schedule;
use nodewright_core::testing::plan_check::check;
use proptest::prelude::*;

use generators::{busy_world, world};
use input::build_input;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_breaks_a_hard_constraint(world in world()) {
        let input = build_input(&world);
        let plan = schedule(&input);
        if let Err(violation) = check(&input, &plan) {
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
        if let Err(violation) = check(&input, &plan) {
            return Err(TestCaseError::fail(format!("{violation}\nplan: {plan:#?}")));
        }
    }
}
