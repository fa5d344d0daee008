//! Cost of the packing (balance, splitting, repacking) and in-flight claims.

use super::*;

#[test]
fn balances_cpu_heavy_and_memory_heavy_pods_instead_of_buying_memory_optimized_nodes() {
    // Largest CPU first, a first-fit packer gives the CPU-heavy pods their own nodes and leaves
    // the memory-heavy tail to r-family types; balanced claims stay on the efficient family.
    let plan = schedule(&crate::benchmark::input(3000, crate::benchmark::Mix::Plain, 7));
    assert!(plan.unschedulable.is_empty());
    let ratio = plan.cost_per_hour / plan.lower_bound_per_hour;
    assert!(
        ratio < 1.18,
        "cost {:.2} is {ratio:.3}× the lower bound",
        plan.cost_per_hour
    );
}

#[test]
fn splits_a_half_empty_claim_when_two_smaller_nodes_cost_less() {
    // Karpenter's getting-started pool: c, m and r on demand, cpu limit 1000. Packed into one
    // claim, twenty one-CPU pods fill 32-vCPU types by under two thirds.
    let pool = nodepool("default")
        .amd64()
        .on_demand_only()
        .requirement(labels::INSTANCE_CATEGORY, Operator::In, &["c", "m", "r"])
        .limit("cpu", "1000")
        .build();
    let ps = pods(20, |i| pod(&format!("p{i}")).cpu("1").build());
    let inp = input(ps, vec![pool]);
    // The cheapest single type of the pool that takes all twenty pods.
    let mut need = Resources::new();
    for p in &inp.pending {
        need.add(&p.requests);
    }
    let one_node = inp.pools[0]
        .instance_types
        .iter()
        .filter(|t| {
            t.labels.get(labels::ARCH).map(String::as_str) == Some("amd64")
                && ["c", "m", "r"]
                    .contains(&t.labels.get(labels::INSTANCE_CATEGORY).map_or("", String::as_str))
                && t.allocatable.fits(&need)
        })
        .filter_map(|t| {
            t.offerings
                .iter()
                .filter(|o| o.capacity_type == CapacityType::OnDemand)
                .map(|o| o.price)
                .min_by(f64::total_cmp)
        })
        .min_by(f64::total_cmp)
        .expect("some type fits");
    let plan = schedule(&inp);
    assert!(plan.unschedulable.is_empty());
    assert_eq!(plan.new_claims.iter().map(|c| c.pods.len()).sum::<usize>(), 20);
    assert!(plan.new_claims.len() >= 2, "{plan:#?}");
    assert!(
        plan.cost_per_hour < one_node * 0.9,
        "${:.3}/h should beat one node at ${one_node:.3}/h",
        plan.cost_per_hour
    );
}

#[test]
fn never_splits_pods_that_want_to_share_a_host() {
    let ps = pods(20, |i| {
        pod(&format!("p{i}"))
            .cpu("1")
            .label("app", "web")
            .affinity(labels::HOSTNAME, &[("app", "web")])
            .build()
    });
    let plan = schedule(&input(ps, vec![default_pool()]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(plan.new_claims.len(), 1, "{plan:#?}");
}

fn in_flight(id: &str, instance_type: &str, zones: &[&str], launched: bool, pods: &[&str]) -> NodeClaim {
    let pods: Vec<String> = pods.iter().map(|p| format!("default/{p}")).collect();
    let claim = claim(id)
        .without_labels()
        .instance_types(&[instance_type])
        .zones(zones)
        .pods(&pods);
    let claim = if launched {
        claim.launched("i-1", 0).price(0.192)
    } else {
        claim
    };
    claim.build()
}

#[test]
fn an_in_flight_claim_that_may_still_land_in_two_zones_takes_no_zone_spread_pods() {
    let spread = pod("spread").label("app", "web").cpu("1").zone_spread(1).build();
    let plain = pod("plain").cpu("1").build();
    let mut inp = input(vec![spread, plain], vec![default_pool()]);
    inp.in_flight.push(in_flight(
        "default-x",
        "m5.xlarge",
        &["us-east-1a", "us-east-1b"],
        false,
        &[],
    ));
    let plan = schedule(&inp);
    // Its zone is not settled, so the spread pod cannot be counted there; the plain pod can.
    assert_eq!(
        plan.in_flight,
        vec![Assignment::new("default-x", &["default/plain"])]
    );
    assert_eq!(claim_of(&plan, "spread").zones.len(), 1);
}

#[test]
fn an_in_flight_claim_whose_type_has_since_run_out_of_capacity_still_takes_its_pods() {
    let mut inp = input(
        pods(2, |i| pod(&format!("p{i}")).cpu("1").build()),
        vec![default_pool()],
    );
    inp.in_flight.push(in_flight(
        "default-x",
        "m5.xlarge",
        &["us-east-1a"],
        true,
        &["p0", "p1"],
    ));
    let m5 = inp.pools[0]
        .instance_types
        .iter()
        .find(|t| t.name == "m5.xlarge")
        .cloned();
    for o in m5.map(|t| t.offerings).unwrap_or_default() {
        inp.unavailable.mark(
            crate::ports::OfferingKey {
                instance_type: "m5.xlarge".into(),
                zone: o.zone,
                capacity_type: o.capacity_type,
            },
            inp.now,
        );
    }
    let plan = schedule(&inp);
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.in_flight[0].pods.len(), 2);
}

#[test]
fn in_flight_claims_count_against_limits_even_when_the_pool_no_longer_allows_their_type() {
    // The pool now wants c types only; an m5.4xlarge (16 vCPU) launched earlier still counts.
    let pool = nodepool("default")
        .amd64()
        .on_demand_only()
        .requirement(labels::INSTANCE_CATEGORY, Operator::In, &["c"])
        .limit("cpu", "20")
        .build();
    let mut inp = input(pods(8, |i| pod(&format!("p{i}")).cpu("1").build()), vec![pool]);
    inp.in_flight
        .push(in_flight("default-x", "m5.4xlarge", &["us-east-1a"], true, &[]));
    let plan = schedule(&inp);
    let charged: i64 = plan
        .new_claims
        .iter()
        .map(|c| {
            c.instance_types
                .iter()
                .filter_map(|n| inp.pools[0].instance_types.iter().find(|t| &t.name == n))
                .map(|t| t.capacity.cpu())
                .max()
                .unwrap_or(0)
        })
        .sum();
    assert!(
        charged <= 4000,
        "{charged}m charged to the limit beside 16 vCPU in flight: {plan:#?}"
    );
}

#[test]
fn a_pod_requiring_two_different_values_of_one_label_is_unschedulable() {
    // A label no node carries: read as "absent", the pair would let the pod onto any node.
    let p = pod("torn")
        .cpu("1")
        .require("team", Operator::In, &["blue"])
        .require("team", Operator::In, &["green"])
        .build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.unschedulable.len(), 1);
    assert!(!plan.unschedulable[0].reason.is_empty());
}

#[test]
fn packs_karpenters_plain_mix_within_five_percent_of_the_lower_bound() {
    let plan = schedule(&crate::benchmark::input(2000, crate::benchmark::Mix::Plain, 7));
    assert!(plan.unschedulable.is_empty());
    let ratio = plan.cost_per_hour / plan.lower_bound_per_hour;
    assert!(ratio <= 1.05, "{ratio}: {} claims", plan.new_claims.len());
}

#[test]
fn repacking_leaves_pods_with_topology_where_their_constraints_put_them() {
    // Spread pods pin their claims' zones; the plain pods beside them are not moved away from
    // those claims, and every spread pod stays alone on its host.
    let mut all = pods(12, |i| {
        pod(&format!("s{i}"))
            .label("app", "web")
            .cpu("1")
            .hostname_spread(1)
            .build()
    });
    all.extend(pods(40, |i| {
        pod(&format!("p{i}")).cpu("500m").memory("3Gi").build()
    }));
    let plan = schedule(&input(all, vec![default_pool()]));
    assert!(plan.unschedulable.is_empty(), "{:#?}", plan.unschedulable);
    for c in &plan.new_claims {
        let spread = c.pods.iter().filter(|p| p.starts_with("default/s")).count();
        assert!(spread <= 1, "{c:#?}");
    }
    let placed: usize = plan.new_claims.iter().map(|c| c.pods.len()).sum();
    assert_eq!(placed, 52);
}

#[test]
fn a_cpu_only_pod_among_memory_heavy_ones_still_gets_a_node() {
    // The round's balance leans to memory; an empty claim must still take a CPU-only pod.
    let mut all = vec![pod("cpu-only").cpu("2").build()];
    all.extend(pods(40, |i| {
        pod(&format!("m{i}")).cpu("250m").memory("6Gi").build()
    }));
    let plan = schedule(&input(all, vec![default_pool()]));
    assert!(plan.unschedulable.is_empty(), "{:#?}", plan.unschedulable);
    claim_of(&plan, "cpu-only");
}

#[test]
fn a_claim_asks_for_spot_only_and_for_on_demand_once_spot_is_gone_where_it_must_land() {
    let pinned = || {
        pod("a")
            .cpu("1")
            .require(labels::INSTANCE_TYPE, Operator::In, &["m5.large"])
            .require(labels::ZONE, Operator::In, &["us-east-1a"])
            .build()
    };
    let both = nodepool("default").amd64().build();
    let mut inp = input(vec![pinned()], vec![both]);
    let claim = schedule(&inp).new_claims[0].clone();
    assert_eq!(claim.capacity_types, vec![CapacityType::Spot]);
    assert_eq!(claim.chosen.capacity_type, CapacityType::Spot);
    inp.unavailable.mark(
        crate::ports::OfferingKey {
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::Spot,
        },
        inp.now,
    );
    let claim = schedule(&inp).new_claims[0].clone();
    assert_eq!(claim.capacity_types, vec![CapacityType::OnDemand]);
    assert_eq!(claim.chosen.capacity_type, CapacityType::OnDemand);
    assert_eq!(claim.zones, vec!["us-east-1a".to_string()]);
}

#[test]
fn an_in_flight_claim_in_a_zone_that_lost_its_subnet_still_takes_its_pods() {
    // The node class's catalog no longer offers anything in us-east-1c; the instance launched
    // there before is still coming up and its pods must not get a second node.
    let mut inp = input(
        pods(4, |i| pod(&format!("p{i}")).cpu("1").build()),
        vec![default_pool()],
    );
    let narrowed: Vec<_> = inp.pools[0]
        .instance_types
        .iter()
        .filter(|t| t.name != "m5.2xlarge")
        .map(|t| {
            let mut t = t.clone();
            t.offerings.retain(|o| o.zone != "us-east-1c");
            t
        })
        .collect();
    inp.pools[0].instance_types = std::sync::Arc::new(narrowed);
    let mut claim = in_flight(
        "default-abc",
        "m5.2xlarge",
        &["us-east-1c"],
        true,
        &["p0", "p1", "p2", "p3"],
    );
    claim.requests =
        Resources::from_quantities([("cpu", "4"), ("memory", "4Gi"), ("pods", "4")]).expect("valid");
    inp.in_flight.push(claim);
    let plan = schedule(&inp);
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.in_flight.len(), 1);
    assert_eq!(plan.in_flight[0].pods.len(), 4);
}

#[test]
fn unconstrained_pods_sharing_zone_pinned_claims_of_a_spot_and_on_demand_pool_are_packed_within_ten_percent()
{
    // A few pods spread over zones pin the claims they open to one zone; the many pods without
    // constraints that join those claims must still be packed to the bound, whatever the
    // pool's capacity types and architectures.
    let pool = nodepool("default")
        .requirement(labels::CAPACITY_TYPE, Operator::In, &["spot", "on-demand"])
        .requirement(labels::ARCH, Operator::In, &["amd64", "arm64"])
        .requirement(labels::INSTANCE_CATEGORY, Operator::In, &["c", "m", "r"])
        .requirement(labels::INSTANCE_GENERATION, Operator::Gt, &["2"])
        .build();
    let shapes = [("500m", "512Mi"), ("1", "4Gi"), ("250m", "2Gi")];
    let mut ps = pods(1500, |i| {
        let (cpu, memory) = shapes[i % shapes.len()];
        pod(&format!("p{i}")).cpu(cpu).memory(memory).build()
    });
    ps.extend(pods(30, |i| {
        pod(&format!("web{i}"))
            .cpu("2")
            .memory("2Gi")
            .label("app", "web")
            .zone_spread(1)
            .build()
    }));
    let plan = schedule(&input(ps, vec![pool]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable.first());
    let ratio = plan.cost_per_hour / plan.lower_bound_per_hour;
    assert!(ratio <= 1.10, "{ratio}: {} claims", plan.new_claims.len());
}

#[test]
fn an_in_flight_claim_whose_nodepool_was_deleted_still_takes_its_pods() {
    // The instance is coming up whatever happened to its pool: its pods must not get another.
    let mut inp = input(
        pods(4, |i| pod(&format!("p{i}")).cpu("1").build()),
        vec![default_pool()],
    );
    let mut claim = in_flight(
        "gone-abc",
        "m5.2xlarge",
        &["us-east-1a"],
        true,
        &["p0", "p1", "p2", "p3"],
    );
    claim.nodepool = "gone".into();
    inp.in_flight.push(claim);
    let plan = schedule(&inp);
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.in_flight.len(), 1);
    assert_eq!(plan.in_flight[0].pods.len(), 4);
}
