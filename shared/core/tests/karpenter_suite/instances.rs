//! Instance types: compatibility with pod and pool constraints, extended resources, bin
//! packing, the cheapest offering that fits, and minValues.
//!
//! Karpenter's fake cloud has a handful of made-up types; here the expected type or price is
//! worked out from the real catalog the same way a person would: the cheapest offering, among
//! the types the constraints allow, whose allocatable holds the pods.

use crate::support::*;

fn pool() -> NodePool {
    three_zone_pool("default").build()
}

fn price_of(c: &PlannedClaim) -> f64 {
    c.chosen.price
}

/// The cheapest offering in the three zones for one pod with `requests` on types for which
/// `allowed(type, zone, capacity type)` holds.
fn cheapest_for(requests: &Resources, allowed: impl Fn(&InstanceType, &str, CapacityType) -> bool) -> f64 {
    cheapest_price(&catalog(), |t, z, ct| {
        THREE_ZONES.contains(&z) && t.allocatable.fits(requests) && allowed(t, z, ct)
    })
}

fn any(_: &InstanceType, _: &str, _: CapacityType) -> bool {
    true
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "chose ${got}/h, cheapest is ${want}/h");
}

// ---- Compatibility ----

#[test]
fn a_pod_larger_than_every_type_is_unschedulable() {
    let most = catalog().iter().map(|t| t.allocatable.cpu()).max().unwrap_or(0);
    let p = pod("p").cpu(&format!("{}m", most + 1000)).build();
    Round::new(vec![p], vec![pool()]).assert_unschedulable("p");
}

#[test]
fn pods_selecting_different_architectures_get_different_nodes() {
    let pool = three_zone_pool("default")
        .requirement(labels::ARCH, Operator::In, &["arm64", "amd64"])
        .build();
    let ps = vec![
        pod("amd").node_selector(labels::ARCH, "amd64").build(),
        pod("arm").node_selector(labels::ARCH, "arm64").build(),
    ];
    let r = Round::new(ps, vec![pool]);
    assert!(!r.same_host("amd", "arm"));
    assert_eq!(r.value("amd", labels::ARCH).as_deref(), Some("amd64"));
    assert_eq!(r.value("arm", labels::ARCH).as_deref(), Some("arm64"));
}

#[test]
fn a_pod_requiring_an_arm_type_cannot_use_an_amd64_pool() {
    let p = pod("p")
        .require(labels::INSTANCE_TYPE, Operator::In, &["m6g.large"])
        .build();
    Round::new(vec![p], vec![three_zone_pool("default").amd64().build()]).assert_unschedulable("p");
}

#[test]
fn a_pod_requiring_an_unknown_operating_system_is_unschedulable() {
    let p = pod("p").require(labels::OS, Operator::In, &["ios"]).build();
    Round::new(vec![p], vec![three_zone_pool("default").amd64().build()]).assert_unschedulable("p");
}

#[test]
fn a_pod_needing_a_graviton_cpu_cannot_use_an_amd64_pool() {
    let p = pod("p")
        .node_selector(labels::INSTANCE_CPU_MANUFACTURER, "aws")
        .build();
    Round::new(vec![p], vec![three_zone_pool("default").amd64().build()]).assert_unschedulable("p");
}

#[test]
fn linux_and_windows_pods_get_nodes_from_the_pools_of_their_os() {
    // The OS comes from the node class's AMI family here, not from the instance type.
    use nodewright_core::builders::{pool_input_with, windows_nodeclass};
    let input = Input {
        pending: vec![
            pod("linux").node_selector(labels::OS, "linux").build(),
            pod("windows").node_selector(labels::OS, "windows").build(),
        ],
        pools: vec![
            pool_input(three_zone_pool("linux").build()),
            pool_input_with(three_zone_pool("windows").build(), windows_nodeclass("default")),
        ],
        ..Input::default()
    };
    let r = Round::of(input);
    assert_eq!(r.claim("linux").nodepool, "linux");
    assert_eq!(r.claim("windows").nodepool, "windows");
    assert_eq!(r.value("windows", labels::OS).as_deref(), Some("windows"));
    assert_eq!(r.value("linux", labels::OS).as_deref(), Some("linux"));
}

#[test]
fn pods_selecting_different_instance_types_get_different_nodes() {
    let ps = vec![
        pod("a").node_selector(labels::INSTANCE_TYPE, "c5.large").build(),
        pod("b").node_selector(labels::INSTANCE_TYPE, "m5.large").build(),
    ];
    let r = Round::new(ps, vec![pool()]);
    assert!(!r.same_host("a", "b"));
    assert_eq!(r.claim("a").instance_types, vec!["c5.large".to_string()]);
    assert_eq!(r.claim("b").instance_types, vec!["m5.large".to_string()]);
}

#[test]
fn pods_selecting_different_zones_get_different_nodes() {
    let ps = vec![
        pod("a").node_selector(labels::ZONE, "us-east-1a").build(),
        pod("b").node_selector(labels::ZONE, "us-east-1b").build(),
    ];
    let r = Round::new(ps, vec![pool()]);
    assert!(!r.same_host("a", "b"));
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1a"));
    assert_eq!(r.value("b", labels::ZONE).as_deref(), Some("us-east-1b"));
}

#[test]
fn pods_needing_accelerators_no_type_has_together_get_separate_nodes() {
    let ps = vec![
        pod("gpu").gpus(1).build(),
        pod("neuron").request(ResourceName::AwsNeuron, "1").build(),
    ];
    let r = Round::new(ps, vec![pool()]);
    assert!(!r.same_host("gpu", "neuron"));
    for t in r.candidates(r.claim("gpu")) {
        assert!(t.allocatable.get(ResourceName::NvidiaGpu) >= 1, "{}", t.name);
    }
    for t in r.candidates(r.claim("neuron")) {
        assert!(t.allocatable.get(ResourceName::AwsNeuron) >= 1, "{}", t.name);
    }
}

#[test]
fn a_pod_needing_two_accelerators_no_type_has_together_is_unschedulable() {
    let p = pod("p").gpus(1).request(ResourceName::AwsNeuron, "1").build();
    Round::new(vec![p], vec![pool()]).assert_unschedulable("p");
}

#[test]
fn a_pod_needing_a_device_no_type_offers_is_unschedulable() {
    let p = pod("p").request_named("example.com/fpga", "1").build();
    Round::new(vec![p], vec![pool()]).assert_unschedulable("p");
}

#[test]
fn an_instance_size_selector_keeps_only_that_size() {
    let ps = vec![
        pod("large").node_selector(labels::INSTANCE_SIZE, "large").build(),
        pod("metal").node_selector(labels::INSTANCE_SIZE, "metal").build(),
    ];
    let r = Round::new(ps, vec![pool()]);
    assert_eq!(r.value("large", labels::INSTANCE_SIZE).as_deref(), Some("large"));
    assert_eq!(r.value("metal", labels::INSTANCE_SIZE).as_deref(), Some("metal"));
}

#[test]
fn a_size_selector_contradicting_the_type_selector_is_unschedulable() {
    let ps = vec![
        pod("a")
            .node_selector(labels::INSTANCE_SIZE, "large")
            .node_selector(labels::INSTANCE_TYPE, "m5.xlarge")
            .build(),
        pod("b")
            .node_selector(labels::INSTANCE_SIZE, "xlarge")
            .node_selector(labels::INSTANCE_TYPE, "m5.large")
            .build(),
    ];
    let r = Round::new(ps, vec![pool()]);
    r.assert_unschedulable("a");
    r.assert_unschedulable("b");
}

#[test]
fn an_exists_requirement_on_an_optional_label_keeps_only_types_that_have_it() {
    let p = pod("p")
        .require(labels::INSTANCE_GPU_NAME, Operator::Exists, &[])
        .build();
    let r = Round::new(vec![p], vec![pool()]);
    let types = r.candidates(r.claim("p"));
    assert!(!types.is_empty());
    for t in types {
        assert!(t.labels.contains_key(labels::INSTANCE_GPU_NAME), "{}", t.name);
    }
}

#[test]
fn a_does_not_exist_requirement_on_an_optional_label_keeps_only_types_without_it() {
    let p = pod("p")
        .require(labels::INSTANCE_LOCAL_NVME, Operator::DoesNotExist, &[])
        .build();
    let r = Round::new(vec![p], vec![pool()]);
    for t in r.candidates(r.claim("p")) {
        assert!(!t.labels.contains_key(labels::INSTANCE_LOCAL_NVME), "{}", t.name);
    }
}

// ---- Bin packing ----

#[test]
fn a_small_pod_gets_the_cheapest_type_that_fits() {
    let p = pod("p").memory("100M").build();
    let want = cheapest_for(&p.requests, any);
    let r = Round::new(vec![p], vec![pool()]);
    assert_close(price_of(r.claim("p")), want);
}

#[test]
fn a_claim_lists_larger_types_too_with_the_cheapest_first() {
    let r = Round::new(vec![pod("p").cpu("1m").memory("1Mi").build()], vec![pool()]);
    let c = r.claim("p");
    assert_eq!(c.instance_types.first(), Some(&c.chosen.instance_type));
    let chosen_memory = instance_type(&c.chosen.instance_type).capacity.memory();
    assert!(
        r.candidates(c)
            .iter()
            .any(|t| t.capacity.memory() > chosen_memory),
        "{:?}",
        c.instance_types
    );
}

#[test]
fn small_pods_are_packed_no_dearer_than_one_node_for_all() {
    let ps = pods(5, "p", |b| b.memory("10M"));
    let mut total = Resources::new();
    for p in &ps {
        total.add(&p.requests);
    }
    let one_node = cheapest_for(&total, any);
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
    assert!(
        r.plan.cost_per_hour <= one_node + 1e-9,
        "{} > {one_node}",
        r.plan.cost_per_hour
    );
}

fn only(instance_type: &str) -> NodePool {
    three_zone_pool("default")
        .requirement(labels::INSTANCE_TYPE, Operator::In, &[instance_type])
        .build()
}

#[test]
fn pods_beyond_one_nodes_memory_get_more_nodes_of_that_type() {
    let mem = instance_type("m5.large").allocatable.memory();
    let ps = pods(40, "p", |b| b.memory(&format!("{}", mem / 2 - (64 << 20))));
    let r = Round::new(ps, vec![only("m5.large")]);
    r.assert_all_placed();
    assert_eq!(r.plan.new_claims.len(), 20);
    assert!(
        r.plan
            .new_claims
            .iter()
            .all(|c| c.chosen.instance_type == "m5.large")
    );
}

#[test]
fn small_pods_fill_the_room_large_pods_leave() {
    let mem = instance_type("m5.large").allocatable.memory();
    let mut ps = pods(40, "large", |b| b.memory(&format!("{}", mem * 2 / 5)));
    ps.extend(pods(20, "small", |b| b.memory(&format!("{}", mem * 3 / 20))));
    let r = Round::new(ps, vec![only("m5.large")]);
    r.assert_all_placed();
    assert_eq!(r.plan.new_claims.len(), 20);
}

#[test]
fn pods_beyond_a_types_pod_capacity_get_more_nodes() {
    let slots = instance_type("t3.small").allocatable.pods();
    let ps = pods(25, "p", |b| b.cpu("1m").memory("1m"));
    let r = Round::new(ps, vec![only("t3.small")]);
    r.assert_all_placed();
    assert_eq!(r.plan.new_claims.len() as i64, (25 + slots - 1) / slots);
}

#[test]
fn a_pod_filling_the_largest_allowed_type_leaves_the_next_pod_a_smaller_one() {
    let pool = three_zone_pool("default")
        .requirement(labels::INSTANCE_FAMILY, Operator::In, &["c5"])
        .requirement(
            labels::INSTANCE_SIZE,
            Operator::In,
            &["large", "xlarge", "2xlarge"],
        )
        .build();
    let r = Round::new(
        vec![pod("big").cpu("7").build(), pod("small").cpu("1").build()],
        vec![pool],
    );
    assert!(!r.same_host("big", "small"));
    assert_eq!(r.claim("big").chosen.instance_type, "c5.2xlarge");
    assert_ne!(r.claim("small").chosen.instance_type, "c5.2xlarge");
}

#[test]
fn a_zero_request_for_a_resource_no_type_has_schedules() {
    let p = pod("p").request_named("foo.com/weird-resources", "0").build();
    Round::new(vec![p], vec![pool()]).placed("p");
}

#[test]
fn a_pod_needing_more_memory_than_any_type_is_unschedulable() {
    let p = pod("p").memory("100Ti").build();
    Round::new(vec![p], vec![pool()]).assert_unschedulable("p");
}

#[test]
fn every_candidate_type_has_room_for_the_pods_of_its_claim() {
    for (cpu, mem) in [
        ("100m", "100Mi"),
        ("1", "1Gi"),
        ("2500m", "4Gi"),
        ("4", "16Gi"),
        ("16", "32Gi"),
    ] {
        let ps = pods(3, "p", |b| b.cpu(cpu).memory(mem));
        let r = Round::new(ps, vec![pool()]);
        r.assert_all_placed();
        for c in &r.plan.new_claims {
            let need = r.pod_requests(c);
            for t in r.candidates(c) {
                assert!(t.allocatable.fits(&need), "{cpu}/{mem}: {} too small", t.name);
            }
        }
    }
}

// ---- The cheapest offering under constraints ----

fn arch(t: &InstanceType) -> &str {
    label(t, labels::ARCH)
}

#[test]
fn an_unconstrained_pod_gets_the_cheapest_offering() {
    let p = pod("p").build();
    let want = cheapest_for(&p.requests, any);
    let r = Round::new(vec![p], vec![pool()]);
    assert_close(price_of(r.claim("p")), want);
}

#[test]
fn an_arch_requirement_picks_the_cheapest_of_that_arch_and_only_that_arch() {
    for a in ["amd64", "arm64"] {
        for on_pool in [false, true] {
            let (p, pool) = if on_pool {
                (
                    pod("p").build(),
                    three_zone_pool("default")
                        .requirement(labels::ARCH, Operator::In, &[a])
                        .build(),
                )
            } else {
                (pod("p").require(labels::ARCH, Operator::In, &[a]).build(), pool())
            };
            let want = cheapest_for(&p.requests, |t, _, _| arch(t) == a);
            let r = Round::new(vec![p], vec![pool]);
            assert_close(price_of(r.claim("p")), want);
            assert!(r.candidates(r.claim("p")).iter().all(|t| arch(t) == a));
        }
    }
}

#[test]
fn a_linux_requirement_keeps_only_linux_types() {
    let p = pod("p").node_selector(labels::OS, "linux").build();
    let r = Round::new(vec![p], vec![pool()]);
    assert!(
        r.candidates(r.claim("p"))
            .iter()
            .all(|t| label(t, labels::OS) == "linux")
    );
}

#[test]
fn a_zone_requirement_picks_the_cheapest_offering_in_that_zone() {
    let on_pool = three_zone_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1b"])
        .build();
    let on_pod = pod("p").node_selector(labels::ZONE, "us-east-1b").build();
    for (p, pool) in [(pod("p").build(), on_pool), (on_pod, pool())] {
        let want = cheapest_for(&p.requests, |_, z, _| z == "us-east-1b");
        let r = Round::new(vec![p], vec![pool]);
        assert_close(price_of(r.claim("p")), want);
        assert_eq!(r.claim("p").zones, vec!["us-east-1b".to_string()]);
    }
}

#[test]
fn a_capacity_type_requirement_picks_the_cheapest_offering_of_that_type() {
    for ct in [CapacityType::Spot, CapacityType::OnDemand] {
        let on_pool = three_zone_pool("default")
            .requirement(labels::CAPACITY_TYPE, Operator::In, &[ct.as_str()])
            .build();
        let on_pod = pod("p").node_selector(labels::CAPACITY_TYPE, ct.as_str()).build();
        for (p, pool) in [(pod("p").build(), on_pool), (on_pod, pool())] {
            let want = cheapest_for(&p.requests, |_, _, c| c == ct);
            let r = Round::new(vec![p], vec![pool]);
            assert_close(price_of(r.claim("p")), want);
            assert_eq!(r.claim("p").capacity_types, vec![ct]);
        }
    }
}

#[test]
fn pool_and_pod_constraints_on_zone_capacity_type_and_arch_combine() {
    let pool = three_zone_pool("default")
        .on_demand_only()
        .requirement(labels::ZONE, Operator::In, &["us-east-1a"])
        .requirement(labels::ARCH, Operator::In, &["arm64"])
        .build();
    let p = pod("p").build();
    let want = cheapest_for(&p.requests, |t, z, c| {
        z == "us-east-1a" && c == CapacityType::OnDemand && arch(t) == "arm64"
    });
    let r = Round::new(vec![p], vec![pool]);
    let c = r.claim("p");
    assert_close(price_of(c), want);
    assert_eq!(c.zones, vec!["us-east-1a".to_string()]);

    let pool = three_zone_pool("default")
        .spot_only()
        .requirement(labels::ZONE, Operator::In, &["us-east-1b"])
        .build();
    let p = pod("p")
        .node_selector(labels::ARCH, "amd64")
        .node_selector(labels::OS, "linux")
        .build();
    let want = cheapest_for(&p.requests, |t, z, c| {
        z == "us-east-1b" && c == CapacityType::Spot && arch(t) == "amd64"
    });
    let r = Round::new(vec![p], vec![pool]);
    assert_close(price_of(r.claim("p")), want);
}

#[test]
fn an_on_demand_pool_is_priced_by_on_demand_prices() {
    let p = pod("p").build();
    let want = cheapest_for(&p.requests, |_, _, c| c == CapacityType::OnDemand);
    let r = Round::new(vec![p], vec![three_zone_pool("default").on_demand_only().build()]);
    let c = r.claim("p");
    assert_eq!(c.chosen.capacity_type, CapacityType::OnDemand);
    assert_close(price_of(c), want);
}

#[test]
fn constraints_no_type_meets_together_are_unschedulable() {
    let p = pod("p")
        .node_selector(labels::ARCH, "arm64")
        .node_selector(labels::INSTANCE_TYPE, "m5.large")
        .build();
    Round::new(vec![p], vec![pool()]).assert_unschedulable("p");
    let arm_pool = three_zone_pool("default")
        .requirement(labels::ARCH, Operator::In, &["arm64"])
        .build();
    let p = pod("p")
        .node_selector(labels::INSTANCE_FAMILY, "m5")
        .node_selector(labels::ZONE, "us-east-1b")
        .build();
    Round::new(vec![p], vec![arm_pool]).assert_unschedulable("p");
}

// ---- minValues ----

fn distinct(types: &[InstanceType], key: &str) -> usize {
    let mut v: Vec<&str> = types.iter().map(|t| label(t, key)).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

#[test]
fn min_values_on_instance_types_keeps_pods_apart_rather_than_lose_a_type() {
    // Together the two pods fit only m5.xlarge; minValues 2 needs both types on every claim.
    let pool = three_zone_pool("default")
        .requirement(labels::INSTANCE_TYPE, Operator::In, &["m5.large", "m5.xlarge"])
        .min_values(labels::INSTANCE_TYPE, 2)
        .build();
    let ps = pods(2, "p", |b| b.cpu("1500m").memory("1Gi"));
    let r = Round::new(ps, vec![pool]);
    r.assert_all_placed();
    assert!(!r.same_host("p0", "p1"));
    for c in &r.plan.new_claims {
        assert!(c.instance_types.len() >= 2, "{:?}", c.instance_types);
    }
}

#[test]
fn min_values_on_a_numeric_label_with_gt_or_lt_keeps_enough_values() {
    for op in [Operator::Gt, Operator::Lt] {
        let pool = three_zone_pool("default")
            .requirement(labels::INSTANCE_CPU, op, &["8"])
            .min_values(labels::INSTANCE_CPU, 3)
            .build();
        let r = Round::new(vec![pod("p").build()], vec![pool]);
        assert!(
            distinct(&r.candidates(r.claim("p")), labels::INSTANCE_CPU) >= 3,
            "{op}"
        );
    }
}

#[test]
fn min_values_more_than_the_allowed_types_is_unschedulable() {
    let pool = three_zone_pool("default")
        .requirement(labels::INSTANCE_TYPE, Operator::In, &["m5.large", "m5.xlarge"])
        .min_values(labels::INSTANCE_TYPE, 3)
        .build();
    Round::new(vec![pod("p").build()], vec![pool]).assert_unschedulable("p");
}

#[test]
fn min_values_on_several_keys_all_hold() {
    let pool = three_zone_pool("default")
        .requirement(labels::INSTANCE_FAMILY, Operator::Exists, &[])
        .min_values(labels::INSTANCE_FAMILY, 3)
        .requirement(labels::INSTANCE_CPU, Operator::Exists, &[])
        .min_values(labels::INSTANCE_CPU, 4)
        .build();
    let r = Round::new(vec![pod("p").cpu("1").build()], vec![pool]);
    let types = r.candidates(r.claim("p"));
    assert!(distinct(&types, labels::INSTANCE_FAMILY) >= 3);
    assert!(distinct(&types, labels::INSTANCE_CPU) >= 4);
}
