//! Existing nodes and in-flight claims, their taints, daemonset overhead and NodePool limits.

use crate::support::*;

fn pool() -> NodePool {
    three_zone_pool("default").build()
}

fn round(
    pending: Vec<Pod>,
    nodes: Vec<ExistingNode>,
    in_flight: Vec<NodeClaim>,
    pools: Vec<NodePool>,
) -> Round {
    Round::of(Input {
        pending,
        nodes,
        in_flight,
        pools: pools.into_iter().map(pool_input).collect(),
        ..Input::default()
    })
}

fn with_daemonsets(pending: Vec<Pod>, daemonsets: Vec<Pod>, pools: Vec<NodePool>) -> Round {
    Round::of(Input {
        pending,
        daemonsets,
        pools: pools.into_iter().map(pool_input).collect(),
        ..Input::default()
    })
}

fn node_of_pool(name: &str, instance_type: &str, cpu: &str) -> ExistingNode {
    let mut n = existing(name, instance_type, "us-east-1a", cpu);
    n.node.labels.insert(labels::NODEPOOL.into(), "default".into());
    n
}

// ---- In-flight claims ----

#[test]
fn an_in_flight_claim_with_room_takes_the_pod_instead_of_a_new_node() {
    let r = round(
        vec![pod("p").cpu("10m").build()],
        Vec::new(),
        vec![launched("default-1", "m5.large", "us-east-1b", &[])],
        vec![pool()],
    );
    assert_eq!(r.placed("p"), Host::InFlight("default-1".into()));
    assert!(r.plan.new_claims.is_empty());
}

#[test]
fn an_in_flight_claim_takes_pods_whose_zones_include_its_zone_only() {
    let both = pod("both")
        .cpu("10m")
        .require(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let other = pod("other")
        .cpu("10m")
        .require(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1c"])
        .build();
    let r = round(
        vec![both, other],
        Vec::new(),
        vec![launched("default-1", "m5.large", "us-east-1b", &[])],
        vec![pool()],
    );
    assert_eq!(r.placed("both"), Host::InFlight("default-1".into()));
    assert!(matches!(r.placed("other"), Host::New(_)));
}

#[test]
fn a_pod_that_does_not_fit_beside_an_in_flight_claims_pods_gets_a_new_node() {
    // The claim (m5.large, about 1.9 CPUs) was launched for `first`; `second` does not fit too.
    let r = round(
        vec![pod("first").cpu("1001m").build(), pod("second").cpu("1").build()],
        Vec::new(),
        vec![launched("default-1", "m5.large", "us-east-1b", &["first"])],
        vec![pool()],
    );
    assert_eq!(r.placed("first"), Host::InFlight("default-1".into()));
    assert!(matches!(r.placed("second"), Host::New(_)));
}

#[test]
fn a_pod_whose_selector_the_in_flight_claim_does_not_meet_gets_a_new_node() {
    let p = pod("arm").node_selector(labels::ARCH, "arm64").build();
    let r = round(
        vec![p],
        Vec::new(),
        vec![launched("default-1", "m5.large", "us-east-1b", &[])],
        vec![pool()],
    );
    assert!(matches!(r.placed("arm"), Host::New(_)));
    assert_eq!(r.value("arm", labels::ARCH).as_deref(), Some("arm64"));
}

#[test]
fn a_node_being_deleted_takes_no_pods() {
    let mut n = node_of_pool("n1", "m5.large", "1");
    n.node.deleting = true;
    let r = round(
        vec![pod("p").cpu("10m").build()],
        vec![n],
        Vec::new(),
        vec![pool()],
    );
    assert!(matches!(r.placed("p"), Host::New(_)));
}

#[test]
fn zone_spread_pods_fill_in_flight_claims_evenly_before_launching() {
    // Round one put four pods in three zones (1/1/2); five more arrive before the nodes join.
    let spread = |b: PodBuilder| b.label(APP.0, APP.1).spread_with(labels::ZONE, 1, &[APP]);
    let mut ps = pods(4, "old", spread);
    ps.extend(pods(5, "new", spread));
    let in_flight = vec![
        launched("default-a", "m5.2xlarge", "us-east-1a", &["old0", "old3"]),
        launched("default-b", "m5.2xlarge", "us-east-1b", &["old1"]),
        launched("default-c", "m5.2xlarge", "us-east-1c", &["old2"]),
    ];
    let r = round(ps, Vec::new(), in_flight, vec![pool()]);
    assert!(r.plan.new_claims.is_empty(), "{:#?}", r.plan);
    assert_eq!(r.skew(labels::ZONE, &[APP]), vec![3, 3, 3]);
}

#[test]
fn hostname_spread_pods_launch_new_nodes_beside_in_flight_ones() {
    let spread = |b: PodBuilder| b.label(APP.0, APP.1).spread_with(labels::HOSTNAME, 1, &[APP]);
    let mut ps = pods(4, "old", spread);
    ps.extend(pods(5, "new", spread));
    let in_flight = (0..4)
        .map(|i| {
            launched(
                &format!("default-{i}"),
                "m5.large",
                THREE_ZONES[i % 3],
                &[&format!("old{i}")],
            )
        })
        .collect();
    let r = round(ps, Vec::new(), in_flight, vec![pool()]);
    assert_eq!(r.plan.new_claims.len(), 5);
    assert_eq!(r.skew(labels::HOSTNAME, &[APP]), vec![1; 9]);
}

#[test]
fn pods_with_the_same_host_port_get_different_nodes() {
    let ps = pods(2, "p", |b| b.host_port(80));
    let r = Round::new(ps, vec![pool()]);
    assert!(!r.same_host("p0", "p1"));
}

// ---- Taints on existing nodes ----

#[test]
fn a_node_whose_taints_were_removed_takes_pods() {
    let n = node_of_pool("n1", "m5.2xlarge", "7");
    let r = round(vec![pod("p").build()], vec![n], Vec::new(), vec![pool()]);
    assert_eq!(r.placed("p"), Host::Existing("n1".into()));
}

#[test]
fn a_node_with_a_taint_the_pod_does_not_tolerate_takes_no_pods() {
    let mut n = node_of_pool("n1", "m5.2xlarge", "7");
    n.node
        .labels
        .insert(labels::NODE_INITIALIZED.into(), "true".into());
    n.node.taints.push(Taint::new(
        "foo.com/taint",
        Some("tainted"),
        TaintEffect::NoSchedule,
    ));
    let r = round(vec![pod("p").build()], vec![n], Vec::new(), vec![pool()]);
    assert!(matches!(r.placed("p"), Host::New(_)));
}

#[test]
fn a_node_still_initializing_takes_pods_despite_its_startup_taint() {
    let pool = three_zone_pool("default")
        .startup_taint("foo.com/taint", TaintEffect::NoSchedule)
        .build();
    let mut n = node_of_pool("n1", "m5.2xlarge", "7");
    n.node.ready = false;
    n.node
        .taints
        .push(Taint::new("foo.com/taint", None, TaintEffect::NoSchedule));
    let r = round(vec![pod("p").build()], vec![n], Vec::new(), vec![pool]);
    assert_eq!(r.placed("p"), Host::Existing("n1".into()));
}

#[test]
fn an_initialized_node_that_has_its_startup_taint_again_takes_no_pods() {
    let pool = three_zone_pool("default")
        .startup_taint("ignore-me", TaintEffect::NoSchedule)
        .build();
    let mut n = node_of_pool("n1", "m5.2xlarge", "7");
    n.node
        .labels
        .insert(labels::NODE_INITIALIZED.into(), "true".into());
    n.node
        .taints
        .push(Taint::new("ignore-me", None, TaintEffect::NoSchedule));
    let r = round(vec![pod("p").build()], vec![n], Vec::new(), vec![pool]);
    assert!(matches!(r.placed("p"), Host::New(_)));
}

#[test]
fn a_node_still_initializing_takes_pods_despite_the_not_ready_taint() {
    let mut n = node_of_pool("n1", "m5.2xlarge", "7");
    n.node.ready = false;
    n.node.taints.push(Taint::new(
        "node.kubernetes.io/not-ready",
        None,
        TaintEffect::NoExecute,
    ));
    let r = round(vec![pod("p").build()], vec![n], Vec::new(), vec![pool()]);
    assert_eq!(r.placed("p"), Host::Existing("n1".into()));
}

#[test]
fn an_initialized_node_with_the_not_ready_taint_takes_no_pods() {
    let mut n = node_of_pool("n1", "m5.2xlarge", "7");
    n.node
        .labels
        .insert(labels::NODE_INITIALIZED.into(), "true".into());
    n.node.taints.push(Taint::new(
        "node.kubernetes.io/not-ready",
        None,
        TaintEffect::NoExecute,
    ));
    let r = round(vec![pod("p").build()], vec![n], Vec::new(), vec![pool()]);
    assert!(matches!(r.placed("p"), Host::New(_)));
}

// ---- Existing nodes ----

#[test]
fn pods_go_to_an_existing_node_nodewright_did_not_launch() {
    let n = existing("foreign", "m5.2xlarge", "us-east-1a", "7");
    let r = round(pods(3, "p", |b| b.cpu("1")), vec![n], Vec::new(), vec![pool()]);
    for i in 0..3 {
        assert_eq!(r.placed(&format!("p{i}")), Host::Existing("foreign".into()));
    }
    assert!(r.plan.new_claims.is_empty());
}

#[test]
fn a_pod_that_does_not_match_an_existing_node_gets_a_new_one() {
    let n = existing("amd", "m5.2xlarge", "us-east-1a", "7");
    let p = pod("p").node_selector(labels::ARCH, "arm64").build();
    let r = round(vec![p], vec![n], Vec::new(), vec![pool()]);
    assert!(matches!(r.placed("p"), Host::New(_)));
}

// ---- Daemonset overhead ----

fn ds(b: PodBuilder) -> Pod {
    b.cpu("2").memory("2Gi").daemonset().build()
}

fn one_pod() -> Vec<Pod> {
    vec![pod("p").cpu("1").memory("1Gi").build()]
}

/// CPU the plan reserves on the pod's claim beyond the pods' own requests.
fn overhead_cpu(r: &Round) -> i64 {
    let c = r.claim("p");
    c.requests.cpu() - r.pod_requests(c).cpu()
}

#[test]
fn daemonset_requests_are_reserved_on_every_new_node() {
    let r = with_daemonsets(one_pod(), vec![ds(pod("agent"))], vec![pool()]);
    assert_eq!(overhead_cpu(&r), 2000);
    for t in r.candidates(r.claim("p")) {
        assert!(
            t.allocatable.cpu() >= 3000 && t.allocatable.memory() >= 3 << 30,
            "{}",
            t.name
        );
    }
}

#[test]
fn a_daemonset_host_port_blocks_a_pod_wanting_the_same_port() {
    let agent = pod("agent").cpu("2").host_port(8080).daemonset().build();
    let p = pod("p").cpu("1").host_port(8080).build();
    let r = with_daemonsets(vec![p], vec![agent], vec![pool()]);
    r.assert_unschedulable("p");
    assert!(r.plan.new_claims.is_empty());
}

#[test]
fn a_daemonset_not_tolerating_a_startup_taint_still_counts() {
    let pool = three_zone_pool("default")
        .startup_taint("foo.com/taint", TaintEffect::NoSchedule)
        .build();
    let r = with_daemonsets(one_pod(), vec![ds(pod("agent"))], vec![pool]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn a_daemonset_larger_than_every_type_leaves_pods_unschedulable() {
    let huge = pod("agent").cpu("10000").memory("10000Gi").daemonset().build();
    let r = with_daemonsets(vec![pod("p").build()], vec![huge], vec![pool()]);
    r.assert_unschedulable("p");
}

#[test]
fn a_daemonset_not_tolerating_the_pool_taint_is_not_counted() {
    let pool = three_zone_pool("default")
        .taint("foo", Some("bar"), TaintEffect::NoSchedule)
        .build();
    let p = pod("p").cpu("1").memory("1Gi").tolerate_any(None).build();
    let r = with_daemonsets(vec![p], vec![ds(pod("agent"))], vec![pool]);
    assert_eq!(overhead_cpu(&r), 0);
}

#[test]
fn a_daemonset_selecting_a_label_no_node_has_is_not_counted() {
    let agent = ds(pod("agent").node_selector("node", "invalid"));
    let r = with_daemonsets(one_pod(), vec![agent], vec![pool()]);
    assert_eq!(overhead_cpu(&r), 0);
}

#[test]
fn a_daemonset_requiring_a_type_the_catalog_lacks_is_not_counted() {
    let agent = ds(pod("agent").require(labels::INSTANCE_TYPE, Operator::In, &["non-existent"]));
    let r = with_daemonsets(one_pod(), vec![agent], vec![pool()]);
    assert_eq!(overhead_cpu(&r), 0);
}

#[test]
fn a_daemonset_selecting_a_pool_template_label_is_counted() {
    let pool = three_zone_pool("default").label("purpose", "monitoring").build();
    let agent = ds(pod("agent").node_selector("purpose", "monitoring"));
    let r = with_daemonsets(one_pod(), vec![agent], vec![pool]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn daemonsets_are_counted_only_on_the_types_they_select() {
    let on_large = pod("on-large")
        .cpu("1")
        .require(labels::INSTANCE_SIZE, Operator::In, &["large"])
        .daemonset()
        .build();
    let on_metal = pod("on-metal")
        .cpu("10")
        .require(labels::INSTANCE_SIZE, Operator::In, &["metal"])
        .daemonset()
        .build();
    // A large type keeps about 930m beside the 1-CPU daemonset.
    let p = pod("p")
        .cpu("500m")
        .memory("512Mi")
        .node_selector(labels::INSTANCE_SIZE, "large")
        .build();
    let r = with_daemonsets(vec![p], vec![on_large, on_metal], vec![pool()]);
    assert_eq!(overhead_cpu(&r), 1000);
}

#[test]
fn a_daemonset_with_not_in_on_an_unset_label_is_counted() {
    let agent = ds(pod("agent").require("foo", Operator::NotIn, &["bar"]));
    let p = pod("p")
        .cpu("1")
        .memory("1Gi")
        .require(labels::ZONE, Operator::In, &["us-east-1b"])
        .build();
    let r = with_daemonsets(vec![p], vec![agent], vec![pool()]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn a_daemonset_pinned_to_a_hostname_still_counts_on_new_nodes() {
    // The DaemonSet controller pins each of its pods to one node by hostname; the template
    // without that pin is what lands on a new node.
    let pool = three_zone_pool("default").label("foo", "bar").build();
    let agent = ds(pod("agent").require("foo", Operator::In, &["bar"]).require(
        labels::HOSTNAME,
        Operator::In,
        &["node-name"],
    ));
    let p = pod("p")
        .cpu("1")
        .memory("1Gi")
        .node_selector("foo", "bar")
        .build();
    let r = with_daemonsets(vec![p], vec![agent], vec![pool]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn a_daemonset_matching_any_one_of_its_affinity_terms_is_counted() {
    let pool = three_zone_pool("default").label("foo", "bar").build();
    let agent =
        ds(pod("agent")
            .require("foo", Operator::In, &["voo"])
            .or_require("foo", Operator::In, &["bar"]));
    let r = with_daemonsets(one_pod(), vec![agent], vec![pool]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn a_daemonset_with_an_impossible_preference_is_counted() {
    let agent = ds(pod("agent").prefer(1, "node", Operator::In, &["invalid"]));
    let r = with_daemonsets(one_pod(), vec![agent], vec![pool()]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn a_daemonset_not_tolerating_a_prefer_no_schedule_taint_is_counted() {
    let pool = three_zone_pool("default")
        .taint("test", None, TaintEffect::PreferNoSchedule)
        .build();
    let r = with_daemonsets(one_pod(), vec![ds(pod("agent"))], vec![pool]);
    assert_eq!(overhead_cpu(&r), 2000);
}

#[test]
fn a_daemonset_host_port_matters_only_where_the_daemonset_runs() {
    let agent = pod("agent")
        .cpu("4")
        .host_port(8080)
        .require(labels::INSTANCE_SIZE, Operator::In, &["metal"])
        .daemonset()
        .build();
    let p = pod("p")
        .cpu("1")
        .host_port(8080)
        .require(labels::INSTANCE_SIZE, Operator::In, &["large"])
        .build();
    let r = with_daemonsets(vec![p], vec![agent], vec![pool()]);
    assert_eq!(r.value("p", labels::INSTANCE_SIZE).as_deref(), Some("large"));
    assert_eq!(overhead_cpu(&r), 0);
}

// ---- NodePool limits ----

#[test]
fn a_pool_whose_nodes_already_exceed_its_cpu_limit_launches_nothing() {
    let pool = three_zone_pool("default").limit("cpu", "20").build();
    let n = node_of_pool("big", "m5.24xlarge", "1");
    let r = round(vec![pod("p").cpu("2").build()], vec![n], Vec::new(), vec![pool]);
    r.assert_unschedulable("p");
}

#[test]
fn a_cpu_limit_of_two_still_launches_a_two_cpu_node() {
    let pool = three_zone_pool("default").limit("cpu", "2").build();
    let r = Round::new(vec![pod("p").cpu("1750m").build()], vec![pool]);
    for t in r.candidates(r.claim("p")) {
        assert!(t.capacity.cpu() <= 2000, "{} exceeds the limit", t.name);
    }
}

#[test]
fn a_cpu_limit_stops_launches_part_way_through_a_round() {
    let pool = three_zone_pool("default").limit("cpu", "3").build();
    let ps = pods(2, "p", |b| {
        b.label("app", "foo")
            .cpu("1500m")
            .anti_affinity(labels::HOSTNAME, &[("app", "foo")])
    });
    let r = Round::new(ps, vec![pool]);
    assert_eq!(r.plan.new_claims.len(), 1);
    assert_eq!(r.plan.unschedulable.len(), 1);
}

#[test]
fn a_pod_needing_more_than_the_cpu_limit_is_unschedulable() {
    let pool = three_zone_pool("default").limit("cpu", "2").build();
    Round::new(vec![pod("p").cpu("2100m").build()], vec![pool]).assert_unschedulable("p");
}

#[test]
fn a_pods_limit_below_every_types_pod_capacity_launches_nothing() {
    let pool = three_zone_pool("default").limit("pods", "1").build();
    Round::new(vec![pod("p").build()], vec![pool]).assert_unschedulable("p");
}

#[test]
fn a_cpu_limit_counts_the_pools_existing_nodes() {
    let pool = three_zone_pool("default").limit("cpu", "2").build();
    let n = node_of_pool("n1", "m5.large", "0");
    let r = round(
        vec![pod("p").cpu("1750m").build()],
        vec![n],
        Vec::new(),
        vec![pool],
    );
    r.assert_unschedulable("p");
}

#[test]
fn a_node_count_limit_caps_the_nodes_of_a_round() {
    let pool = three_zone_pool("default").limit("nodes", "2").build();
    let ps = pods(3, "p", |b| {
        b.label("app", "foo")
            .cpu("1500m")
            .anti_affinity(labels::HOSTNAME, &[("app", "foo")])
    });
    let r = Round::new(ps, vec![pool]);
    assert_eq!(r.plan.new_claims.len(), 2);
    assert_eq!(r.plan.unschedulable.len(), 1);
}

#[test]
fn a_node_count_limit_counts_the_pools_existing_nodes() {
    let pool = three_zone_pool("default").limit("nodes", "2").build();
    let nodes = vec![
        node_of_pool("n1", "m5.large", "0"),
        node_of_pool("n2", "m5.large", "0"),
    ];
    let r = round(vec![pod("p").cpu("1").build()], nodes, Vec::new(), vec![pool]);
    r.assert_unschedulable("p");
}
