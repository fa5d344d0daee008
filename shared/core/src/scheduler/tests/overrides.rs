//! The launch overrides each planned claim carries: what the cloud is asked for, as planned.

use std::collections::BTreeSet;

use super::*;
use crate::ports::OfferingKey;

/// The catalog's prices of a type's offerings in one capacity type, by zone.
fn offered(pool: &PoolInput, name: &str, ct: CapacityType) -> Vec<(String, f64)> {
    pool.instance_types
        .iter()
        .filter(|t| t.name == name)
        .flat_map(|t| t.offerings.iter())
        .filter(|o| o.capacity_type == ct)
        .map(|o| (o.zone.clone(), o.price))
        .collect()
}

#[test]
fn a_claim_sends_at_most_sixty_instance_types_the_cheapest_in_every_zone() {
    let pool = pool_input(nodepool("default").on_demand_only().build());
    let small = pod("a").cpu("100m").memory("128Mi").build();
    let plan = schedule(&Input {
        pending: vec![small.clone()],
        pools: vec![pool.clone()],
        ..Input::default()
    });
    let claim = &plan.new_claims[0];
    let overrides = &claim.launch_overrides();
    let types: BTreeSet<&str> = overrides.iter().map(|o| o.instance_type.as_str()).collect();
    assert!(pool.instance_types.len() > MAX_INSTANCE_TYPES);
    assert_eq!(types.len(), MAX_INSTANCE_TYPES);
    assert_eq!(
        types,
        claim.instance_types.iter().map(String::as_str).collect(),
        "the overrides are the claim's candidates"
    );
    assert!(overrides.windows(2).all(|w| w[0].price <= w[1].price));
    assert!(
        overrides
            .iter()
            .all(|o| o.capacity_type == CapacityType::OnDemand)
    );
    let first = &overrides[0];
    assert_eq!(
        (first.instance_type.as_str(), first.zone.as_str(), first.price),
        (
            claim.chosen.instance_type.as_str(),
            claim.chosen.zone.as_str(),
            claim.chosen.price
        ),
        "the cheapest override is the offering the plan priced"
    );
    // Every zone a kept type is offered in stays, at its price: EC2 picks the zone.
    for name in &types {
        let mut sent: Vec<(String, f64)> = overrides
            .iter()
            .filter(|o| o.instance_type == *name)
            .map(|o| (o.zone.clone(), o.price))
            .collect();
        let mut catalog = offered(&pool, name, CapacityType::OnDemand);
        sent.sort_by(|a, b| a.0.cmp(&b.0));
        catalog.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(sent, catalog, "{name}");
    }
    // The most expensive type sent is no dearer than the cheapest type left out that the pod
    // fits on.
    let cheapest_of = |name: &str| {
        offered(&pool, name, CapacityType::OnDemand)
            .iter()
            .map(|(_, p)| *p)
            .fold(f64::INFINITY, f64::min)
    };
    let dearest_kept = types.iter().map(|t| cheapest_of(t)).fold(0.0, f64::max);
    let cheapest_left_out = pool
        .instance_types
        .iter()
        .filter(|t| !types.contains(t.name.as_str()) && t.allocatable.fits(&small.requests))
        .map(|t| cheapest_of(&t.name))
        .fold(f64::INFINITY, f64::min);
    assert!(
        dearest_kept <= cheapest_left_out,
        "{dearest_kept} > {cheapest_left_out}"
    );
}

#[test]
fn a_claim_that_may_use_spot_sends_spot_offerings_only() {
    let plan = schedule(&Input {
        pending: vec![pod("a").cpu("1").build()],
        pools: vec![pool_input(nodepool("default").amd64().build())],
        ..Input::default()
    });
    let claim = &plan.new_claims[0];
    assert_eq!(claim.capacity_types, vec![CapacityType::Spot]);
    assert!(!claim.overrides.is_empty());
    assert!(
        claim
            .launch_overrides()
            .iter()
            .all(|o| o.capacity_type == CapacityType::Spot)
    );
}

#[test]
fn an_offering_out_of_capacity_is_not_sent_while_its_type_keeps_its_other_zones() {
    let mut inp = Input {
        pending: vec![pod("a").cpu("1").build()],
        pools: vec![pool_input(default_pool())],
        ..Input::default()
    };
    let first = schedule(&inp).new_claims[0].chosen.clone();
    let out = OfferingKey {
        instance_type: first.instance_type.clone(),
        zone: first.zone.clone(),
        capacity_type: first.capacity_type,
    };
    inp.unavailable.mark(out.clone(), inp.now);
    let claim = schedule(&inp).new_claims[0].clone();
    let sent: Vec<OfferingKey> = claim
        .launch_overrides()
        .iter()
        .map(|o| OfferingKey {
            instance_type: o.instance_type.clone(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type,
        })
        .collect();
    assert!(!sent.contains(&out), "{sent:?}");
    assert!(
        sent.iter().any(|k| k.instance_type == out.instance_type),
        "{} is still offered in other zones: {sent:?}",
        out.instance_type
    );

    // Once the mark expires the offering is sent again.
    inp.now += crate::unavailable::UNAVAILABLE_FOR_MS;
    let later = schedule(&inp).new_claims[0].clone();
    assert!(
        later
            .launch_overrides()
            .iter()
            .any(|o| o.instance_type == out.instance_type && o.zone == out.zone),
        "{:?}",
        later.launch_overrides()
    );
}
