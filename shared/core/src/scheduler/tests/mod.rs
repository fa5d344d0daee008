use std::collections::BTreeMap;

use super::*;
use crate::builders::{nodepool, pod, pool_input};
use crate::catalog::CapacityType;
use crate::labels;
use crate::nodeclaim::NodeClaim;
use crate::pod::TaintEffect;
use crate::requirements::Operator;
use crate::resources::{ResourceName, Resources};
use crate::testing::{claim, node};

fn input(pods: Vec<Pod>, pools: Vec<NodePool>) -> Input {
    Input {
        pending: pods,
        pools: pools.into_iter().map(pool_input).collect(),
        ..Input::default()
    }
}

fn default_pool() -> NodePool {
    nodepool("default").amd64().on_demand_only().build()
}

fn pods(n: usize, f: impl Fn(usize) -> Pod) -> Vec<Pod> {
    (0..n).map(f).collect()
}

fn claim_of<'p>(plan: &'p Plan, pod: &str) -> &'p PlannedClaim {
    plan.new_claims
        .iter()
        .find(|c| c.pods.iter().any(|p| p == &format!("default/{pod}")))
        .unwrap_or_else(|| panic!("pod {pod} not on a new claim: {plan:#?}"))
}

fn existing_node(name: &str, instance_type: &str, zone: &str, cpu: &str) -> ExistingNode {
    node(name)
        .instance_type(instance_type)
        .zone(zone)
        .cpu(cpu)
        .memory("16Gi")
        .with_pods(Vec::new())
}

#[test]
fn packs_pods_for_no_more_than_one_node_of_the_cheapest_type_that_takes_them_all() {
    // Six one-CPU pods: one node of the cheapest type with room for all of them is an upper
    // bound; smaller nodes win only when they cost less in all.
    let plan = schedule(&input(
        pods(6, |i| pod(&format!("p{i}")).cpu("1").memory("1Gi").build()),
        vec![default_pool()],
    ));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let placed: usize = plan.new_claims.iter().map(|c| c.pods.len()).sum();
    assert_eq!(placed, 6);
    let one_node = pool_input(default_pool())
        .instance_types
        .iter()
        .filter(|t| t.labels.get(labels::ARCH).map(String::as_str) == Some("amd64"))
        .filter(|t| t.allocatable.cpu() >= 6_500 && t.allocatable.memory() >= 7 << 30)
        .flat_map(|t| {
            t.offerings
                .iter()
                .filter(|o| o.capacity_type == CapacityType::OnDemand)
        })
        .map(|o| o.price)
        .fold(f64::INFINITY, f64::min);
    assert!(
        plan.cost_per_hour <= one_node,
        "{} > {one_node}: {plan:#?}",
        plan.cost_per_hour
    );
    for c in &plan.new_claims {
        assert!(c.instance_types.len() <= MAX_INSTANCE_TYPES);
        assert_eq!(c.chosen.capacity_type, CapacityType::OnDemand);
    }
    assert!(plan.cost_per_hour >= plan.lower_bound_per_hour && plan.lower_bound_per_hour > 0.0);
}

#[test]
fn places_pods_on_existing_nodes_with_room_before_launching() {
    let mut inp = input(vec![pod("a").cpu("1").build()], vec![default_pool()]);
    inp.nodes
        .push(existing_node("n1", "m5.xlarge", "us-east-1a", "3"));
    let plan = schedule(&inp);
    assert!(plan.new_claims.is_empty());
    assert_eq!(plan.existing, vec![Assignment::new("n1", &["default/a"])]);
}

#[test]
fn does_not_place_pods_on_cordoned_or_untolerated_nodes() {
    let mut inp = input(vec![pod("a").cpu("1").build()], vec![default_pool()]);
    let mut cordoned = existing_node("n1", "m5.xlarge", "us-east-1a", "3");
    cordoned.node.unschedulable = true;
    let mut tainted = existing_node("n2", "m5.xlarge", "us-east-1a", "3");
    tainted.node.taints.push(crate::pod::Taint::new(
        "dedicated",
        Some("db"),
        TaintEffect::NoSchedule,
    ));
    inp.nodes = vec![cordoned, tainted];
    let plan = schedule(&inp);
    assert!(plan.existing.is_empty());
    assert_eq!(plan.new_claims.len(), 1);
}

#[test]
fn absorbs_pending_pods_into_in_flight_claims_instead_of_launching_again() {
    let mut inp = input(
        pods(4, |i| pod(&format!("p{i}")).cpu("1").build()),
        vec![default_pool()],
    );
    let launched_for: Vec<String> = (0..4).map(|i| format!("default/p{i}")).collect();
    inp.in_flight.push(
        claim("default-abc")
            .without_labels()
            .version(2)
            .instance_types(&["m5.2xlarge"])
            .pods(&launched_for)
            .launched("i-1", 0)
            .price(0.384)
            .build(),
    );
    let plan = schedule(&inp);
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.in_flight.len(), 1);
    assert_eq!(plan.in_flight[0].pods.len(), 4);
}

#[test]
fn honours_node_selector_on_instance_family() {
    let p = pod("a")
        .cpu("1")
        .node_selector(labels::INSTANCE_FAMILY, "r6i")
        .build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    let c = claim_of(&plan, "a");
    assert!(
        c.instance_types.iter().all(|t| t.starts_with("r6i.")),
        "{:?}",
        c.instance_types
    );
}

#[test]
fn honours_required_node_affinity_with_or_terms() {
    let p = pod("a")
        .cpu("1")
        .require(labels::INSTANCE_CATEGORY, Operator::In, &["q"])
        .or_require(labels::INSTANCE_FAMILY, Operator::In, &["c6i"])
        .build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    let c = claim_of(&plan, "a");
    assert!(
        c.instance_types.iter().all(|t| t.starts_with("c6i.")),
        "{:?}",
        c.instance_types
    );
}

#[test]
fn launches_a_gpu_type_for_a_gpu_request() {
    let p = pod("train").cpu("4").gpus(1).build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    let c = claim_of(&plan, "train");
    let catalog = pool_input(default_pool());
    let chosen = catalog
        .instance_types
        .iter()
        .find(|t| t.name == c.chosen.instance_type)
        .expect("type");
    assert!(chosen.allocatable.get(ResourceName::NvidiaGpu) >= 1);
}

#[test]
fn uses_a_tainted_pool_only_for_pods_that_tolerate_it() {
    let gpu_pool = nodepool("gpu")
        .amd64()
        .taint("nvidia.com/gpu", None, TaintEffect::NoSchedule)
        .weight(10)
        .build();
    let plain = pod("web").cpu("1").build();
    let tolerant = pod("train")
        .cpu("1")
        .tolerate("nvidia.com/gpu", None, None)
        .build();
    let plan = schedule(&input(vec![plain, tolerant], vec![gpu_pool, default_pool()]));
    assert_eq!(claim_of(&plan, "web").nodepool, "default");
    assert_eq!(claim_of(&plan, "train").nodepool, "gpu");
}

#[test]
fn prefers_the_heavier_weighted_pool() {
    let heavy = nodepool("heavy").amd64().on_demand_only().weight(50).build();
    let plan = schedule(&input(
        vec![pod("a").cpu("1").build()],
        vec![default_pool(), heavy],
    ));
    assert_eq!(claim_of(&plan, "a").nodepool, "heavy");
}

#[test]
fn spreads_pods_across_zones_within_max_skew() {
    let ps = pods(6, |i| {
        pod(&format!("p{i}"))
            .cpu("1")
            .label("app", "web")
            .zone_spread(1)
            .build()
    });
    let plan = schedule(&input(ps, vec![default_pool()]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &plan.new_claims {
        assert_eq!(c.zones.len(), 1, "zone-spread claims are pinned");
        *per_zone.entry(&c.zones[0]).or_default() += c.pods.len();
    }
    let max = per_zone.values().max().copied().unwrap_or(0);
    let min = per_zone.values().min().copied().unwrap_or(0);
    assert!(per_zone.len() >= 3 && max - min <= 1, "{per_zone:?}");
}

#[test]
fn spreads_pods_across_hostnames_one_per_node() {
    let ps = pods(4, |i| {
        pod(&format!("p{i}"))
            .cpu("100m")
            .label("app", "web")
            .hostname_spread(1)
            .build()
    });
    let plan = schedule(&input(ps, vec![default_pool()]));
    assert_eq!(plan.new_claims.len(), 4);
}

#[test]
fn keeps_anti_affine_pods_on_separate_nodes_and_fills_those_nodes_with_other_pods() {
    let mut ps = pods(3, |i| {
        pod(&format!("db{i}"))
            .cpu("1")
            .label("app", "db")
            .anti_affinity(labels::HOSTNAME, &[("app", "db")])
            .build()
    });
    ps.extend(pods(3, |i| pod(&format!("web{i}")).cpu("500m").build()));
    let plan = schedule(&input(ps, vec![default_pool()]));
    assert_eq!(plan.new_claims.len(), 3, "{plan:#?}");
    for c in &plan.new_claims {
        assert_eq!(c.pods.iter().filter(|p| p.contains("db")).count(), 1);
    }
}

#[test]
fn co_locates_pods_with_zone_affinity() {
    let ps = pods(5, |i| {
        pod(&format!("p{i}"))
            .cpu("8")
            .label("app", "cache")
            .affinity(labels::ZONE, &[("app", "cache")])
            .build()
    });
    let plan = schedule(&input(ps, vec![default_pool()]));
    let zones: std::collections::BTreeSet<&String> = plan.new_claims.iter().flat_map(|c| &c.zones).collect();
    assert_eq!(zones.len(), 1, "{plan:#?}");
}

#[test]
fn separates_pods_that_want_the_same_host_port() {
    let ps = pods(2, |i| pod(&format!("p{i}")).cpu("100m").host_port(8080).build());
    let plan = schedule(&input(ps, vec![default_pool()]));
    assert_eq!(plan.new_claims.len(), 2);
}

#[test]
fn counts_daemonset_overhead_on_every_new_node() {
    let mut inp = input(vec![pod("a").cpu("1500m").build()], vec![default_pool()]);
    let without = schedule(&inp);
    inp.daemonsets
        .push(pod("agent").cpu("1").memory("512Mi").daemonset().build());
    let with = schedule(&inp);
    let types = pool_input(default_pool());
    let cpu = |name: &str| {
        types
            .instance_types
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.allocatable.cpu())
    };
    assert!(
        cpu(&with.new_claims[0].chosen.instance_type) >= Some(2500),
        "{:?}",
        with.new_claims[0].chosen
    );
    assert!(with.cost_per_hour > without.cost_per_hour);
    assert!(with.new_claims[0].requests.cpu() >= 2500);
}

#[test]
fn skips_offerings_that_recently_ran_out_of_capacity() {
    let mut inp = input(vec![pod("a").cpu("1").build()], vec![default_pool()]);
    let first = schedule(&inp).new_claims[0].chosen.clone();
    for zone in [
        "us-east-1a",
        "us-east-1b",
        "us-east-1c",
        "us-east-1d",
        "us-east-1e",
        "us-east-1f",
    ] {
        inp.unavailable.mark(
            crate::ports::OfferingKey {
                instance_type: first.instance_type.clone(),
                zone: zone.into(),
                capacity_type: first.capacity_type,
            },
            inp.now,
        );
    }
    let second = &schedule(&inp).new_claims[0];
    assert_ne!(second.chosen.instance_type, first.instance_type);
    assert!(!second.instance_types.contains(&first.instance_type));
}

#[test]
fn stops_at_nodepool_limits_with_a_reason() {
    let pool = nodepool("small")
        .amd64()
        .on_demand_only()
        .limit("cpu", "4")
        .build();
    let plan = schedule(&input(
        pods(3, |i| pod(&format!("p{i}")).cpu("3").build()),
        vec![pool],
    ));
    assert!(!plan.unschedulable.is_empty(), "{plan:#?}");
    let total_cpu: i64 = plan.new_claims.len() as i64;
    assert!(total_cpu <= 1);
    assert!(
        plan.unschedulable[0].reason.contains("limit"),
        "{}",
        plan.unschedulable[0].reason
    );
}

#[test]
fn prefers_spot_when_the_pool_allows_it() {
    let pool = nodepool("default").amd64().build();
    let plan = schedule(&input(vec![pod("a").cpu("1").build()], vec![pool]));
    assert_eq!(plan.new_claims[0].chosen.capacity_type, CapacityType::Spot);
}

#[test]
fn honours_preferred_node_affinity_when_it_can() {
    let p = pod("a")
        .cpu("1")
        .prefer(10, labels::INSTANCE_FAMILY, Operator::In, &["m6i"])
        .build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    assert!(
        claim_of(&plan, "a")
            .instance_types
            .iter()
            .all(|t| t.starts_with("m6i."))
    );
}

#[test]
fn relaxes_preferred_node_affinity_that_cannot_be_met() {
    let p = pod("a")
        .cpu("1")
        .prefer(10, labels::INSTANCE_FAMILY, Operator::In, &["nonexistent"])
        .build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    assert!(plan.unschedulable.is_empty());
    assert_eq!(plan.new_claims.len(), 1);
}

#[test]
fn relaxes_schedule_anyway_spread_when_it_cannot_be_met() {
    let pool = nodepool("one-zone")
        .amd64()
        .requirement(labels::ZONE, Operator::In, &["us-east-1a"])
        .build();
    let ps = pods(3, |i| {
        pod(&format!("p{i}"))
            .cpu("1")
            .label("app", "w")
            .soft_spread(labels::ZONE, 1)
            .build()
    });
    let plan = schedule(&input(ps, vec![pool]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
}

#[test]
fn explains_conflicting_constraints_in_terms_a_person_can_act_on() {
    let p = pod("a").cpu("1").node_selector(labels::ARCH, "arm64").build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    let reason = &plan.unschedulable[0].reason;
    assert!(
        reason.contains("kubernetes.io/arch") && reason.contains("arm64"),
        "{reason}"
    );

    let huge = pod("big")
        .cpu("1")
        .memory("96Gi")
        .gpus(8)
        .require(labels::ZONE, Operator::In, &["us-east-1a"])
        .build();
    let pool = nodepool("default")
        .amd64()
        .requirement(labels::INSTANCE_CATEGORY, Operator::In, &["p"])
        .build();
    let plan = schedule(&input(vec![huge], vec![pool]));
    if let Some(u) = plan.unschedulable.first() {
        assert!(u.reason.contains("us-east-1a"), "{}", u.reason);
    }

    let custom = pod("c").cpu("1").node_selector("team", "payments").build();
    let plan = schedule(&input(vec![custom], vec![default_pool()]));
    assert!(
        plan.unschedulable[0].reason.contains("team"),
        "{}",
        plan.unschedulable[0].reason
    );
}

#[test]
fn explains_a_pod_too_big_for_any_instance_type() {
    let p = pod("a").cpu("1000").build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    let reason = &plan.unschedulable[0].reason;
    assert!(
        reason.contains("no instance type has room") && reason.contains("nearest"),
        "{reason}"
    );
}

#[test]
fn keeps_enough_distinct_families_for_min_values() {
    let pool = nodepool("default")
        .amd64()
        .requirement(labels::INSTANCE_FAMILY, Operator::Exists, &[])
        .min_values(labels::INSTANCE_FAMILY, 5)
        .build();
    let plan = schedule(&input(vec![pod("a").cpu("1").build()], vec![pool]));
    let c = &plan.new_claims[0];
    let mut families: Vec<&str> = c
        .instance_types
        .iter()
        .filter_map(|t| t.split('.').next())
        .collect();
    families.sort();
    families.dedup();
    assert!(families.len() >= 5, "{families:?}");
}

#[test]
fn labels_new_claims_with_their_pool_and_template_labels() {
    let pool = nodepool("default").amd64().label("team", "payments").build();
    let p = pod("a").cpu("1").node_selector("team", "payments").build();
    let plan = schedule(&input(vec![p], vec![pool]));
    let c = claim_of(&plan, "a");
    assert_eq!(c.labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        c.labels.get(labels::NODEPOOL).map(String::as_str),
        Some("default")
    );
}

#[test]
fn daemonset_pods_are_never_scheduled_as_work() {
    let plan = schedule(&input(
        vec![pod("agent").cpu("1").daemonset().build()],
        vec![default_pool()],
    ));
    assert!(plan.new_claims.is_empty() && plan.unschedulable.is_empty());
}

#[test]
fn schedules_every_pod_of_karpenters_benchmark_mix() {
    let input = crate::benchmark::input(1000, crate::benchmark::Mix::Diverse, 7);
    let plan = schedule(&input);
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable.first());
    // One node per hostname-anti-affine pod at least: a fifth of the mix.
    assert!(plan.new_claims.len() >= 200);
    assert!(plan.cost_per_hour >= plan.lower_bound_per_hour);
}

#[test]
fn zone_spread_counts_only_zones_where_the_pool_can_launch() {
    // A family offered in some zones of the region but not all of them.
    let types = pool_input(default_pool()).instance_types;
    let all_zones: std::collections::BTreeSet<&str> = types
        .iter()
        .flat_map(|t| t.offerings.iter().map(|o| o.zone.as_str()))
        .collect();
    let (family, offered) = types
        .iter()
        .filter(|t| t.labels.get(labels::ARCH).map(String::as_str) == Some("amd64"))
        .filter_map(|t| {
            let zones: std::collections::BTreeSet<&str> = t
                .offerings
                .iter()
                .filter(|o| o.capacity_type == CapacityType::OnDemand)
                .map(|o| o.zone.as_str())
                .collect();
            let family = t.labels.get(labels::INSTANCE_FAMILY)?;
            let same_family_zones: std::collections::BTreeSet<&str> = types
                .iter()
                .filter(|u| u.labels.get(labels::INSTANCE_FAMILY) == Some(family))
                .flat_map(|u| u.offerings.iter().map(|o| o.zone.as_str()))
                .collect();
            (zones.len() >= 2 && zones.len() < all_zones.len() && same_family_zones == zones)
                .then(|| (family.clone(), zones))
        })
        .next()
        .expect("the embedded catalog has a family missing from some zone");
    let pool = nodepool("default")
        .amd64()
        .on_demand_only()
        .requirement(labels::INSTANCE_FAMILY, Operator::In, &[family.as_str()])
        .build();
    let n = offered.len() * 2;
    let ps = pods(n, |i| {
        pod(&format!("p{i}"))
            .cpu("100m")
            .label("app", "web")
            .zone_spread(1)
            .build()
    });
    let plan = schedule(&input(ps, vec![pool]));
    assert!(
        plan.unschedulable.is_empty(),
        "{family}: {:?}",
        plan.unschedulable
    );
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &plan.new_claims {
        *per_zone.entry(c.chosen.zone.as_str()).or_default() += c.pods.len();
    }
    assert!(
        per_zone.keys().all(|z| offered.contains(z)),
        "{per_zone:?} vs {offered:?}"
    );
    assert_eq!(per_zone.len(), offered.len(), "{per_zone:?}");
}

#[test]
fn an_empty_round_costs_nothing_not_minus_nothing() {
    let plan = schedule(&input(Vec::new(), vec![default_pool()]));
    assert!(plan.new_claims.is_empty());
    assert!(plan.cost_per_hour == 0.0 && plan.cost_per_hour.is_sign_positive());
}

mod configurations;
mod overrides;
mod packing;
