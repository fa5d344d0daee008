//! The checker finds what breaks a plan: each test breaks one constraint of a plan the
//! scheduler made and expects the checker to say so.

use super::check;
use crate::builders::{nodepool, pod, pool_input};
use crate::labels;
use crate::scheduler::{Assignment, Input, Plan, PlannedOverride, schedule};
use crate::testing::node;

fn input(pending: Vec<crate::pod::Pod>) -> Input {
    Input {
        pending,
        pools: vec![pool_input(nodepool("default").on_demand_only().build())],
        ..Input::default()
    }
}

/// The scheduler's plan for `input`, which the checker passes.
fn checked_plan(input: &Input) -> Plan {
    let plan = schedule(input);
    assert_eq!(check(input, &plan), Ok(()));
    plan
}

fn violation(input: &Input, plan: &Plan) -> String {
    match check(input, plan) {
        Ok(()) => panic!("the checker passes a broken plan: {plan:#?}"),
        Err(violation) => violation,
    }
}

#[test]
fn a_pod_placed_twice_or_not_at_all_is_found() {
    let input = input(vec![pod("a").cpu("1").build(), pod("b").cpu("1").build()]);
    let mut plan = checked_plan(&input);
    let a = plan.new_claims[0].pods[0].clone();
    plan.new_claims[0].pods.push(a.clone());
    assert!(violation(&input, &plan).contains(&format!("{a} appears 2 times")));
    plan.new_claims[0].pods.clear();
    assert!(violation(&input, &plan).contains("appears 0 times"));
}

#[test]
fn a_claim_too_small_for_its_pods_is_found() {
    let input = input(vec![pod("big").cpu("6").build()]);
    let mut plan = checked_plan(&input);
    let claim = &mut plan.new_claims[0];
    // The cheapest on-demand offering of a 2-CPU type, in a zone of the claim.
    let small = &input.pools[0]
        .instance_types
        .iter()
        .find(|t| t.name == "m5.large")
        .expect("m5.large in the catalog");
    let offering = small.cheapest(claim.chosen.capacity_type).expect("offered");
    claim.instance_types = vec![small.name.clone()];
    claim.zones = vec![offering.zone.clone()];
    claim.chosen.instance_type = small.name.clone();
    claim.chosen.zone = offering.zone.clone();
    claim.chosen.price = offering.price;
    claim.overrides = vec![PlannedOverride {
        instance_type: 0,
        zone: 0,
        price: offering.price,
    }];
    plan.cost_per_hour = offering.price;
    plan.lower_bound_per_hour = 0.0;
    assert!(violation(&input, &plan).contains("holds"), "{plan:#?}");
}

#[test]
fn launch_overrides_that_are_not_the_claims_offerings_are_found() {
    let input = input(vec![pod("a").cpu("1").build()]);
    let plan = checked_plan(&input);
    assert!(plan.new_claims[0].overrides.len() > 1, "{plan:#?}");

    let mut dropped = plan.clone();
    dropped.new_claims[0].overrides.pop();
    assert!(violation(&input, &dropped).contains("sends overrides"));

    let mut reordered = plan.clone();
    reordered.new_claims[0].overrides.reverse();
    assert!(violation(&input, &reordered).contains("not cheapest first"));

    let mut printed = plan;
    printed.new_claims[0].overrides.clear();
    assert_eq!(super::check_printed(&input, &printed), Ok(()));
}

#[test]
fn a_chosen_offering_dearer_than_the_cheapest_is_found() {
    let input = input(vec![pod("a").cpu("1").build()]);
    let mut plan = checked_plan(&input);
    plan.new_claims[0].chosen.price += 1.0;
    plan.cost_per_hour += 1.0;
    assert!(violation(&input, &plan).contains("none of its available offerings"));
}

#[test]
fn a_broken_hostname_anti_affinity_is_found() {
    let spread = |name: &str| {
        pod(name)
            .cpu("100m")
            .label("app", "web")
            .anti_affinity(labels::HOSTNAME, &[("app", "web")])
            .build()
    };
    let mut input = input(vec![spread("a"), spread("b")]);
    input.nodes = vec![node("n1").cpu("4").with_pods(Vec::new())];
    let mut plan = checked_plan(&input);
    plan.new_claims.clear();
    plan.cost_per_hour = 0.0;
    plan.lower_bound_per_hour = 0.0;
    plan.existing = vec![Assignment::new("n1", &["default/a", "default/b"])];
    assert!(violation(&input, &plan).contains("against anti-affinity"));
}

#[test]
fn pods_on_a_cordoned_node_are_found() {
    let mut input = input(vec![pod("a").cpu("1").build()]);
    input.nodes = vec![node("n1").cpu("4").unschedulable().with_pods(Vec::new())];
    let mut plan = checked_plan(&input);
    plan.new_claims.clear();
    plan.cost_per_hour = 0.0;
    plan.lower_bound_per_hour = 0.0;
    plan.existing = vec![Assignment::new("n1", &["default/a"])];
    assert_eq!(violation(&input, &plan), "pods placed on cordoned n1");
}

#[test]
fn a_broken_zone_spread_is_found() {
    let spread = |name: &str| pod(name).cpu("100m").label("app", "web").zone_spread(1).build();
    let mut input = input(vec![spread("a"), spread("b"), spread("c")]);
    input.nodes = ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
        .map(|(i, zone)| node(&format!("n{i}")).zone(zone).cpu("4").with_pods(Vec::new()))
        .collect();
    let mut plan = checked_plan(&input);
    assert_eq!(plan.existing.len(), 3, "one pod a zone: {plan:#?}");
    let pods: Vec<String> = plan.existing.iter().flat_map(|a| a.pods.clone()).collect();
    plan.existing = vec![Assignment {
        host: "n0".into(),
        pods,
    }];
    assert!(violation(&input, &plan).contains("spread (maxSkew 1)"));
}

#[test]
fn a_claim_over_its_pools_limit_is_found() {
    let mut input = input(vec![pod("a").cpu("1").build()]);
    input.pools = vec![pool_input(
        nodepool("default").on_demand_only().limit("cpu", "1").build(),
    )];
    let plan = schedule(&input);
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    let mut unlimited = input.clone();
    unlimited.pools = vec![pool_input(nodepool("default").on_demand_only().build())];
    let over = checked_plan(&unlimited);
    assert!(violation(&input, &over).contains("over its limit"));
}
