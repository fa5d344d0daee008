//! Topology spread: zone, hostname, capacity type and custom keys; maxSkew, minDomains,
//! ScheduleAnyway, nodeAffinityPolicy and nodeTaintsPolicy; spread combined with node affinity.
//!
//! Pools are limited to three zones where Karpenter's counts assume its three fake zones.

use crate::support::*;

fn spread_pods(n: usize, prefix: &str, key: &str, max_skew: i32) -> Vec<Pod> {
    pods(n, prefix, |b| {
        b.label(APP.0, APP.1).spread_with(key, max_skew, &[APP])
    })
}

/// A full node in `zone` holding `n` pods of the spread selector (Karpenter's earlier rounds).
fn node_with_app_pods(name: &str, zone: &str, n: usize) -> ExistingNode {
    let mut node = existing(name, "m5.4xlarge", zone, "15");
    node.node.allocatable.set(ResourceName::Pods, n as i64);
    node.pods = pods(n, &format!("{name}-p"), |b| b.label(APP.0, APP.1).on_node(name));
    node
}

fn round(pending: Vec<Pod>, nodes: Vec<ExistingNode>, pools: Vec<NodePool>) -> Round {
    Round::of(Input {
        pending,
        nodes,
        pools: pools.into_iter().map(pool_input).collect(),
        ..Input::default()
    })
}

fn unschedulable_count(r: &Round) -> usize {
    r.plan.unschedulable.len()
}

// ---- Zonal ----

#[test]
fn a_spread_on_a_key_no_node_has_leaves_its_pod_unschedulable() {
    let mut ps = spread_pods(1, "spread", "unknown", 1);
    ps.push(pod("plain").build());
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    r.assert_unschedulable("spread0");
    r.placed("plain");
}

#[test]
fn four_pods_spread_over_three_zones_split_one_one_two() {
    let r = Round::new(
        spread_pods(4, "p", labels::ZONE, 1),
        vec![three_zone_pool("default").build()],
    );
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 1, 2]);
}

#[test]
fn a_spread_selector_given_as_an_expression_balances_the_same_way() {
    let mut selector = LabelSelector::default();
    selector
        .add_expression("test", Operator::In, vec!["test".into()])
        .expect("valid expression");
    let ps = pods(4, "p", |b| {
        b.label(APP.0, APP.1).spread_selector(
            labels::ZONE,
            1,
            WhenUnsatisfiable::DoNotSchedule,
            selector.clone(),
        )
    });
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 1, 2]);
}

#[test]
fn a_spread_over_every_region_zone_puts_one_pod_in_each_of_four_zones() {
    // us-east-1 has six zones (Karpenter's fake cloud three): four pods, four zones.
    let r = Round::new(
        spread_pods(4, "p", labels::ZONE, 1),
        vec![any_pool("default").build()],
    );
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 1, 1, 1]);
}

#[test]
fn the_pool_zones_are_the_only_spread_domains() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let r = Round::new(spread_pods(4, "p", labels::ZONE, 1), vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![2, 2]);
}

#[test]
fn a_zone_template_label_makes_one_spread_domain() {
    let pool = any_pool("default").label(labels::ZONE, "us-east-1a").build();
    let r = Round::new(spread_pods(4, "p", labels::ZONE, 1), vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![4]);
    assert_eq!(r.value("p0", labels::ZONE).as_deref(), Some("us-east-1a"));
}

#[test]
fn a_zone_template_label_within_the_required_zones_makes_one_domain() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .label(labels::ZONE, "us-east-1a")
        .build();
    let r = Round::new(spread_pods(4, "p", labels::ZONE, 1), vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![4]);
}

#[test]
fn zone_template_labels_of_two_pools_make_two_domains() {
    let a = any_pool("a")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .label(labels::ZONE, "us-east-1a")
        .build();
    let b = any_pool("b").label(labels::ZONE, "us-east-1b").build();
    let r = Round::new(spread_pods(4, "p", labels::ZONE, 1), vec![a, b]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![2, 2]);
}

#[test]
fn a_pod_in_a_zone_the_pool_no_longer_offers_still_counts_toward_skew() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let ps = pods(6, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .spread_with(labels::ZONE, 1, &[APP])
    });
    let r = round(ps, vec![node_with_app_pods("old", "us-east-1c", 1)], vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 2, 2]);
    assert_eq!(unschedulable_count(&r), 2);
}

#[test]
fn a_large_max_skew_fills_the_only_zone_left_up_to_the_skew() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1c"])
        .build();
    let ps = pods(10, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .spread_with(labels::ZONE, 5, &[APP])
    });
    let nodes = vec![
        node_with_app_pods("n1", "us-east-1a", 1),
        node_with_app_pods("n2", "us-east-1b", 1),
    ];
    let r = round(ps, nodes, vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 1, 6]);
    assert_eq!(unschedulable_count(&r), 4);
}

#[test]
fn pods_go_to_the_emptiest_zones_when_the_spread_is_already_skewed() {
    let mut nodes = vec![node_with_app_pods("n1", "us-east-1a", 3)];
    nodes.push(existing("n2", "m5.large", "us-east-1b", "1"));
    nodes.push(existing("n3", "m5.large", "us-east-1c", "1"));
    let ps = pods(3, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .spread_with(labels::ZONE, 1, &[APP])
    });
    let r = round(ps, nodes, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 2, 3]);
    assert_eq!(r.domain_counts(labels::ZONE, &[APP])["us-east-1a"], 3);
}

#[test]
fn max_skew_is_never_exceeded_when_the_pool_cannot_reach_the_emptiest_zone() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1b", "us-east-1c"])
        .build();
    let ps = pods(10, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .spread_with(labels::ZONE, 1, &[APP])
    });
    let r = round(ps, vec![node_with_app_pods("n1", "us-east-1a", 1)], vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 2, 2]);
    assert_eq!(unschedulable_count(&r), 6);
}

#[test]
fn only_live_matching_pods_in_the_namespace_on_nodes_with_the_key_are_counted() {
    let mut n1 = existing("n1", "m5.4xlarge", "us-east-1a", "15");
    n1.pods = vec![
        pod("unlabelled").on_node("n1").build(),
        pod("other-ns")
            .namespace("elsewhere")
            .label(APP.0, APP.1)
            .on_node("n1")
            .build(),
        pod("failed").label(APP.0, APP.1).on_node("n1").terminal().build(),
        pod("done").label(APP.0, APP.1).on_node("n1").terminal().build(),
        pod("live1").label(APP.0, APP.1).on_node("n1").build(),
        pod("live2").label(APP.0, APP.1).on_node("n1").build(),
    ];
    let mut n2 = existing("n2", "m5.4xlarge", "us-east-1b", "15");
    n2.pods = vec![pod("live3").label(APP.0, APP.1).on_node("n2").build()];
    let mut n3 = existing("n3", "m5.4xlarge", "us-east-1c", "15");
    n3.node.labels.remove(labels::ZONE);
    n3.pods = vec![pod("zoneless").label(APP.0, APP.1).on_node("n3").build()];
    let r = round(
        spread_pods(2, "p", labels::ZONE, 1),
        vec![n1, n2, n3],
        vec![three_zone_pool("default").build()],
    );
    r.assert_all_placed();
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 2, 2]);
    assert_eq!(r.domain_counts(labels::ZONE, &[APP])["us-east-1a"], 2);
}

#[test]
fn spread_pods_outside_their_own_selector_share_nodes() {
    // The selector matches no pod, so placing these never changes the skew. Karpenter gets one
    // node; the cheapest types here hold four pods, so we only require that they share.
    let ps = pods(5, "p", |b| b.spread_with(labels::HOSTNAME, 1, &[APP]));
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    r.assert_all_placed();
    assert!(
        r.plan.new_claims.iter().any(|c| c.pods.len() >= 4),
        "{:#?}",
        r.plan
    );
}

#[test]
fn min_domains_above_the_zones_available_allows_one_pod_per_zone() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let ps = pods(3, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(labels::ZONE, 1, &[APP])
            .min_domains(3)
    });
    let r = Round::new(ps, vec![pool]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 1]);
    assert_eq!(unschedulable_count(&r), 1);
}

#[test]
fn satisfied_min_domains_spread_eleven_pods_four_four_three() {
    for min in [3, 2] {
        let ps = pods(11, "p", |b| {
            b.label(APP.0, APP.1)
                .spread_with(labels::ZONE, 1, &[APP])
                .min_domains(min)
        });
        let r = Round::new(ps, vec![three_zone_pool("default").build()]);
        assert_eq!(r.skew(labels::ZONE, &[APP]), vec![3, 4, 4], "minDomains {min}");
    }
}

// ---- Hostname ----

#[test]
fn a_hostname_spread_of_one_gives_every_pod_its_own_node() {
    let r = Round::new(
        spread_pods(4, "p", labels::HOSTNAME, 1),
        vec![three_zone_pool("default").build()],
    );
    assert_eq!(r.skew(labels::HOSTNAME, &[APP]), vec![1, 1, 1, 1]);
}

#[test]
fn a_hostname_spread_of_four_lets_four_pods_share_a_node() {
    let r = Round::new(
        spread_pods(4, "p", labels::HOSTNAME, 4),
        vec![three_zone_pool("default").build()],
    );
    assert_eq!(r.skew(labels::HOSTNAME, &[APP]), vec![4]);
}

#[test]
fn two_deployments_spread_by_hostname_share_two_nodes() {
    let mut ps = pods(2, "a", |b| b.label("app", "app1").hostname_spread(1));
    ps.extend(pods(2, "b", |b| b.label("app", "app2").hostname_spread(1)));
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    r.assert_all_placed();
    assert_eq!(r.plan.new_claims.len(), 2, "{:#?}", r.plan);
}

#[test]
fn two_deployments_spread_by_hostname_on_different_architectures_need_four_nodes() {
    let mut ps = pods(2, "a", |b| {
        b.label("app", "app1")
            .require(labels::ARCH, Operator::In, &["amd64"])
            .hostname_spread(1)
    });
    ps.extend(pods(2, "b", |b| {
        b.label("app", "app2")
            .require(labels::ARCH, Operator::In, &["arm64"])
            .hostname_spread(1)
    }));
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    r.assert_all_placed();
    assert_eq!(r.plan.new_claims.len(), 4, "{:#?}", r.plan);
}

// ---- Capacity type ----

#[test]
fn four_pods_spread_over_capacity_types_split_two_two() {
    for pool in [
        three_zone_pool("default").build(),
        three_zone_pool("default")
            .requirement(labels::CAPACITY_TYPE, Operator::In, &["spot", "on-demand"])
            .build(),
    ] {
        let r = Round::new(spread_pods(4, "p", labels::CAPACITY_TYPE, 1), vec![pool]);
        assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![2, 2]);
    }
}

fn spot_node_with_one_app_pod() -> ExistingNode {
    let mut n = node_with_app_pods("spot-node", "us-east-1a", 1);
    n.node.labels.insert(labels::CAPACITY_TYPE.into(), "spot".into());
    n
}

#[test]
fn a_capacity_type_spread_stops_at_max_skew_when_only_on_demand_can_launch() {
    let ps = pods(5, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
    });
    let r = round(
        ps,
        vec![spot_node_with_one_app_pod()],
        vec![three_zone_pool("default").on_demand_only().build()],
    );
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![1, 2]);
    assert_eq!(unschedulable_count(&r), 3);
}

#[test]
fn a_schedule_anyway_capacity_type_spread_goes_past_max_skew() {
    let ps = pods(5, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .soft_spread_with(labels::CAPACITY_TYPE, 1, &[APP])
    });
    let r = round(
        ps,
        vec![spot_node_with_one_app_pod()],
        vec![three_zone_pool("default").on_demand_only().build()],
    );
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![1, 5]);
}

#[test]
fn a_capacity_type_spread_ignores_nodes_the_pod_cannot_select() {
    let mut od = node_with_app_pods("od-node", "us-east-1a", 1);
    od.node
        .labels
        .insert(labels::CAPACITY_TYPE.into(), "on-demand".into());
    let ps = pods(5, "p", |b| {
        b.label(APP.0, APP.1)
            .require(labels::ZONE, Operator::In, &["us-east-1b"])
            .require(labels::CAPACITY_TYPE, Operator::In, &["spot"])
            .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
    });
    let r = round(ps, vec![od], vec![three_zone_pool("default").build()]);
    r.assert_all_placed();
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![1, 5]);
}

#[test]
fn an_arch_spread_counts_an_existing_node_of_the_other_arch() {
    let mut amd = node_with_app_pods("amd-node", "us-east-1a", 1);
    amd.node.labels.insert(labels::ARCH.into(), "amd64".into());
    let ps = pods(5, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1100m")
            .spread_with(labels::ARCH, 1, &[APP])
    });
    let pool = three_zone_pool("default")
        .requirement(labels::ARCH, Operator::In, &["arm64"])
        .build();
    let r = round(ps, vec![amd], vec![pool]);
    assert_eq!(r.skew(labels::ARCH, &[APP]), vec![1, 2]);
    assert_eq!(unschedulable_count(&r), 3);
}

// ---- Combined keys ----

#[test]
fn zone_and_hostname_spreads_hold_together() {
    let ps = pods(21, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(labels::ZONE, 1, &[APP])
            .spread_with(labels::HOSTNAME, 3, &[APP])
    });
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![7, 7, 7]);
    assert!(r.skew(labels::HOSTNAME, &[APP]).iter().all(|n| *n <= 3));
}

#[test]
fn a_spread_over_a_custom_label_balances_across_pools_offering_its_values() {
    let key = "capacity.spread.4-1";
    let spot = three_zone_pool("spot")
        .spot_only()
        .requirement(key, Operator::In, &["2", "3", "4", "5"])
        .build();
    let od = three_zone_pool("od")
        .on_demand_only()
        .requirement(key, Operator::In, &["1"])
        .build();
    let r = Round::new(spread_pods(20, "p", key, 1), vec![spot, od]);
    r.assert_all_placed();
    assert_eq!(r.skew(key, &[APP]), vec![4, 4, 4, 4, 4]);
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![4, 16]);
}

#[test]
fn capacity_type_and_hostname_spreads_hold_together() {
    let ps = pods(21, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
            .spread_with(labels::HOSTNAME, 3, &[APP])
    });
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![10, 11]);
    assert!(r.skew(labels::HOSTNAME, &[APP]).iter().all(|n| *n <= 3));
}

#[test]
fn zone_and_capacity_type_spreads_hold_together() {
    let ps = pods(19, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
            .spread_with(labels::ZONE, 1, &[APP])
    });
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    r.assert_all_placed();
    let ct = r.skew(labels::CAPACITY_TYPE, &[APP]);
    let zones = r.skew(labels::ZONE, &[APP]);
    assert!(ct.len() == 2 && ct[1] - ct[0] <= 1, "{ct:?}");
    assert!(zones.len() == 3 && zones[2] - zones[0] <= 1, "{zones:?}");
}

#[test]
fn hostname_zone_and_capacity_type_spreads_hold_together_at_every_size() {
    for n in [1, 2, 5, 9, 14] {
        let ps = pods(n, "p", |b| {
            b.label(APP.0, APP.1)
                .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
                .spread_with(labels::ZONE, 2, &[APP])
                .spread_with(labels::HOSTNAME, 3, &[APP])
        });
        let r = Round::new(ps, vec![three_zone_pool("default").build()]);
        r.assert_all_placed();
        let spread = |key: &str, domains: usize| {
            let mut c = r.skew(key, &[APP]);
            c.resize(c.len().max(domains), 0);
            c.sort_unstable();
            c[c.len() - 1] - c[0]
        };
        assert!(spread(labels::CAPACITY_TYPE, 2) <= 1, "{n}");
        assert!(spread(labels::ZONE, 3) <= 2, "{n}");
        assert!(r.skew(labels::HOSTNAME, &[APP]).iter().all(|c| *c <= 3), "{n}");
    }
}

// ---- nodeTaintsPolicy and nodeAffinityPolicy ----

const SPREAD: &str = "fake-label";

fn tainted_node(name: &str, value: &str) -> ExistingNode {
    let mut n = existing(name, "m5.xlarge", "us-east-1a", "3");
    n.node.labels.insert(SPREAD.into(), value.into());
    n.node.taints.push(Taint::new(
        "taintname",
        Some("taintvalue"),
        TaintEffect::NoSchedule,
    ));
    n
}

fn label_spread_pods(policy: InclusionPolicy) -> Vec<Pod> {
    pods(5, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1")
            .spread_with(SPREAD, 1, &[APP])
            .node_taints_policy(policy)
    })
}

#[test]
fn tainted_nodes_count_as_domains_when_taints_are_ignored() {
    let pool = three_zone_pool("default").label(SPREAD, "baz").build();
    let r = round(
        label_spread_pods(InclusionPolicy::Ignore),
        vec![tainted_node("n1", "foo"), tainted_node("n2", "bar")],
        vec![pool],
    );
    assert_eq!(r.skew(SPREAD, &[APP]), vec![1]);
    assert_eq!(unschedulable_count(&r), 4);
}

#[test]
fn tainted_nodes_are_not_domains_when_taints_are_honoured() {
    let pool = three_zone_pool("default").label(SPREAD, "baz").build();
    let r = round(
        label_spread_pods(InclusionPolicy::Honor),
        vec![tainted_node("n1", "foo"), tainted_node("n2", "bar")],
        vec![pool],
    );
    r.assert_all_placed();
    assert_eq!(r.skew(SPREAD, &[APP]), vec![5]);
}

/// Pool zones a and b, and a node nobody tolerates in zone c.
fn zone_taint_policy_round(policy: InclusionPolicy) -> Round {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let mut tainted = existing("tainted", "m5.xlarge", "us-east-1c", "3");
    tainted.node.taints.push(Taint::new(
        "taintname",
        Some("taintvalue"),
        TaintEffect::NoSchedule,
    ));
    let ps = pods(4, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(labels::ZONE, 1, &[APP])
            .node_taints_policy(policy)
    });
    round(ps, vec![tainted], vec![pool])
}

#[test]
fn an_untolerated_node_keeps_its_zone_a_domain_when_taints_are_ignored() {
    let r = zone_taint_policy_round(InclusionPolicy::Ignore);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 1]);
    assert_eq!(unschedulable_count(&r), 2);
}

#[test]
fn an_untolerated_node_does_not_make_its_zone_a_domain_when_taints_are_honoured() {
    let r = zone_taint_policy_round(InclusionPolicy::Honor);
    r.assert_all_placed();
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![2, 2]);
}

fn plain_and_tainted_pools() -> Vec<NodePool> {
    vec![
        three_zone_pool("plain")
            .requirement(SPREAD, Operator::In, &["foo"])
            .build(),
        three_zone_pool("tainted")
            .taint("taint-key", Some("taint-value"), TaintEffect::NoSchedule)
            .requirement(SPREAD, Operator::In, &["bar"])
            .build(),
    ]
}

#[test]
fn a_tainted_pool_value_is_a_domain_when_taints_are_ignored() {
    let ps = pods(2, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(SPREAD, 1, &[APP])
            .node_taints_policy(InclusionPolicy::Ignore)
    });
    let r = Round::new(ps, plain_and_tainted_pools());
    assert_eq!(r.skew(SPREAD, &[APP]), vec![1]);
    assert_eq!(unschedulable_count(&r), 1);
}

#[test]
fn a_tainted_pool_value_is_not_a_domain_when_taints_are_honoured() {
    let ps = pods(2, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(SPREAD, 1, &[APP])
            .node_taints_policy(InclusionPolicy::Honor)
    });
    let r = Round::new(ps, plain_and_tainted_pools());
    r.assert_all_placed();
    assert_eq!(r.skew(SPREAD, &[APP]), vec![2]);
}

#[test]
fn tainted_pools_sharing_a_value_balance_each_tolerating_deployment_over_its_own_domains() {
    let pools: Vec<NodePool> = [("one", ["foo", "bar"]), ("two", ["foo", "baz"])]
        .into_iter()
        .map(|(name, values)| {
            three_zone_pool(name)
                .taint("taint-key", Some(name), TaintEffect::NoSchedule)
                .requirement(SPREAD, Operator::In, &values)
                .build()
        })
        .collect();
    let spread = |n: usize, prefix: &str, value: &str| {
        pods(n, prefix, |b| {
            b.label(APP.0, APP.1)
                .tolerate("taint-key", Some(value), Some(TaintEffect::NoSchedule))
                .spread_with(SPREAD, 1, &[APP])
                .node_taints_policy(InclusionPolicy::Honor)
        })
    };
    let mut ps = spread(2, "one", "one");
    ps.extend(spread(4, "two", "two"));
    let r = Round::new(ps, pools);
    r.assert_all_placed();
    assert_eq!(r.skew(SPREAD, &[APP]), vec![1, 2, 3]);
}

fn mismatched_node(name: &str, value: &str) -> ExistingNode {
    let mut n = existing(name, "m5.xlarge", "us-east-1a", "3");
    n.node.labels.insert(SPREAD.into(), value.into());
    n.node.labels.insert("selector".into(), "mismatch".into());
    n
}

fn affinity_policy_round(policy: InclusionPolicy) -> Round {
    let pool = three_zone_pool("default")
        .label(SPREAD, "baz")
        .label("selector", "value")
        .build();
    let ps = pods(5, "p", |b| {
        b.label(APP.0, APP.1)
            .cpu("1")
            .node_selector("selector", "value")
            .spread_with(SPREAD, 1, &[APP])
            .node_affinity_policy(policy)
    });
    round(
        ps,
        vec![mismatched_node("n1", "foo"), mismatched_node("n2", "bar")],
        vec![pool],
    )
}

#[test]
fn nodes_the_pod_cannot_select_count_as_domains_when_affinity_is_ignored() {
    let r = affinity_policy_round(InclusionPolicy::Ignore);
    assert_eq!(r.skew(SPREAD, &[APP]), vec![1]);
    assert_eq!(unschedulable_count(&r), 4);
}

#[test]
fn nodes_the_pod_cannot_select_are_not_domains_when_affinity_is_honoured() {
    let r = affinity_policy_round(InclusionPolicy::Honor);
    r.assert_all_placed();
    assert_eq!(r.skew(SPREAD, &[APP]), vec![5]);
}

// ---- Spread and node affinity ----

#[test]
fn zone_node_selectors_limit_each_pods_spread_domains() {
    let mut ps = pods(5, "a", |b| {
        b.label(APP.0, APP.1)
            .node_selector(labels::ZONE, "us-east-1a")
            .spread_with(labels::ZONE, 1, &[APP])
    });
    ps.extend(pods(10, "b", |b| {
        b.label(APP.0, APP.1)
            .node_selector(labels::ZONE, "us-east-1b")
            .spread_with(labels::ZONE, 1, &[APP])
    }));
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![5, 10]);
}

fn zones_ab(b: PodBuilder) -> PodBuilder {
    b.label(APP.0, APP.1)
        .require(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .spread_with(labels::ZONE, 1, &[APP])
}

#[test]
fn required_zone_affinity_limits_the_spread_domains() {
    let r = Round::new(pods(10, "p", zones_ab), vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![5, 5]);
}

#[test]
fn a_pod_allowed_into_an_empty_zone_goes_there_even_past_max_skew() {
    let nodes = vec![
        node_with_app_pods("a", "us-east-1a", 3),
        node_with_app_pods("b", "us-east-1b", 3),
    ];
    let p = pod("p")
        .label(APP.0, APP.1)
        .require(labels::ZONE, Operator::In, &["us-east-1b", "us-east-1c"])
        .spread_with(labels::ZONE, 1, &[APP])
        .build();
    let r = round(vec![p], nodes, vec![three_zone_pool("default").build()]);
    assert_eq!(r.value("p", labels::ZONE).as_deref(), Some("us-east-1c"));
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![1, 3, 3]);
}

#[test]
fn unconstrained_pods_even_out_zones_left_uneven_by_constrained_ones() {
    let mut nodes = vec![
        node_with_app_pods("a", "us-east-1a", 3),
        node_with_app_pods("b", "us-east-1b", 3),
    ];
    nodes.push(node_with_app_pods("c", "us-east-1c", 1));
    let r = round(
        spread_pods(5, "p", labels::ZONE, 1),
        nodes,
        vec![three_zone_pool("default").build()],
    );
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![4, 4, 4]);
}

#[test]
fn preferred_zone_affinity_does_not_limit_the_spread_domains() {
    let ps = pods(6, "p", |b| {
        b.label(APP.0, APP.1)
            .prefer(1, labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
            .spread_with(labels::ZONE, 1, &[APP])
    });
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![2, 2, 2]);
}

#[test]
fn capacity_type_node_selectors_limit_each_pods_soft_spread() {
    let spread = |prefix: &str, ct: &str| {
        pods(5, prefix, |b| {
            b.label(APP.0, APP.1)
                .node_selector(labels::CAPACITY_TYPE, ct)
                .soft_spread_with(labels::CAPACITY_TYPE, 1, &[APP])
        })
    };
    let mut ps = spread("s", "spot");
    ps.extend(spread("o", "on-demand"));
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![5, 5]);
}

fn ct_node(name: &str, ct: &str, n: usize) -> ExistingNode {
    let mut node = node_with_app_pods(name, "us-east-1a", n);
    node.node.labels.insert(labels::CAPACITY_TYPE.into(), ct.into());
    node
}

#[test]
fn required_capacity_type_affinity_limits_the_spread_domains() {
    let ps = pods(3, "p", |b| {
        b.label(APP.0, APP.1)
            .require(labels::CAPACITY_TYPE, Operator::In, &["spot"])
            .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
    });
    let r = Round::new(ps, vec![three_zone_pool("default").build()]);
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![3]);
}

#[test]
fn a_pod_allowed_both_capacity_types_goes_to_the_empty_one() {
    let p = pod("p")
        .label(APP.0, APP.1)
        .require(labels::CAPACITY_TYPE, Operator::In, &["on-demand", "spot"])
        .spread_with(labels::CAPACITY_TYPE, 1, &[APP])
        .build();
    let r = round(
        vec![p],
        vec![ct_node("spot", "spot", 3)],
        vec![three_zone_pool("default").build()],
    );
    assert_eq!(r.value("p", labels::CAPACITY_TYPE).as_deref(), Some("on-demand"));
}

#[test]
fn unconstrained_pods_even_out_capacity_types() {
    let r = round(
        spread_pods(5, "p", labels::CAPACITY_TYPE, 1),
        vec![ct_node("spot", "spot", 3), ct_node("od", "on-demand", 1)],
        vec![three_zone_pool("default").build()],
    );
    assert_eq!(r.skew(labels::CAPACITY_TYPE, &[APP]), vec![4, 5]);
}
