//! Configurations users write that earlier plans got wrong: pools chosen by label, limits,
//! hostnames and legacy labels, spread domains, and minValues at launch.

use std::collections::BTreeSet;

use super::*;
use crate::pod::InclusionPolicy;

fn pool_of<'p>(plan: &'p Plan, pod: &str) -> &'p str {
    &claim_of(plan, pod).nodepool
}

fn two_pools() -> Vec<NodePool> {
    vec![
        nodepool("general").amd64().on_demand_only().weight(10).build(),
        nodepool("payments")
            .amd64()
            .on_demand_only()
            .label("team", "payments")
            .build(),
    ]
}

#[test]
fn a_pod_selecting_a_pool_by_name_never_joins_a_claim_of_another_pool() {
    // The big pod is placed first and opens a claim of the heavier pool; the small one
    // selects the other pool by name and must not join that claim.
    let ps = vec![
        pod("big").cpu("2").build(),
        pod("picky")
            .cpu("1")
            .node_selector(labels::NODEPOOL, "payments")
            .build(),
        pod("affine")
            .cpu("1")
            .require(labels::NODEPOOL, Operator::In, &["payments"])
            .build(),
    ];
    let plan = schedule(&input(ps, two_pools()));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(pool_of(&plan, "big"), "general");
    assert_eq!(pool_of(&plan, "picky"), "payments");
    assert_eq!(pool_of(&plan, "affine"), "payments");
    for c in &plan.new_claims {
        assert_eq!(c.labels.get(labels::NODEPOOL), Some(&c.nodepool), "{c:#?}");
    }
}

#[test]
fn a_pod_selecting_a_template_label_lands_only_on_a_pool_that_puts_it_on_its_nodes() {
    let ps = vec![
        pod("big").cpu("2").build(),
        pod("team").cpu("1").node_selector("team", "payments").build(),
        pod("not-team")
            .cpu("1")
            .require("team", Operator::NotIn, &["payments"])
            .build(),
    ];
    let plan = schedule(&input(ps, two_pools()));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(pool_of(&plan, "team"), "payments");
    assert_eq!(
        claim_of(&plan, "team").labels.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(pool_of(&plan, "not-team"), "general");
}

#[test]
fn a_pod_that_excludes_a_pool_by_name_never_lands_on_its_claims() {
    // The payments claim is opened first (heavier pod, only that pool takes it); the other pod
    // excludes that pool and must open one of its own.
    let ps = vec![
        pod("team").cpu("2").node_selector("team", "payments").build(),
        pod("elsewhere")
            .cpu("1")
            .require(labels::NODEPOOL, Operator::NotIn, &["payments"])
            .build(),
    ];
    let plan = schedule(&input(ps, two_pools()));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(pool_of(&plan, "elsewhere"), "general");
}

/// Largest value of `resource` among a claim's candidates, from the catalog.
fn largest_candidate(c: &PlannedClaim, resource: ResourceName) -> i64 {
    let types = pool_input(default_pool()).instance_types;
    c.instance_types
        .iter()
        .map(|n| {
            types
                .iter()
                .find(|t| &t.name == n)
                .map(|t| t.capacity.get(resource))
                .unwrap_or(i64::MAX)
        })
        .max()
        .unwrap_or(0)
}

fn anti_affine(n: usize, cpu: &str, memory: &str) -> Vec<Pod> {
    pods(n, |i| {
        pod(&format!("p{i}"))
            .cpu(cpu)
            .memory(memory)
            .label("app", "solo")
            .anti_affinity(labels::HOSTNAME, &[("app", "solo")])
            .build()
    })
}

#[test]
fn a_cpu_limit_keeps_placing_pods_while_some_fitting_type_stays_within_it() {
    let pool = nodepool("default").amd64().limit("cpu", "1000").build();
    let plan = schedule(&input(anti_affine(8, "250m", "256Mi"), vec![pool]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(plan.new_claims.len(), 8);
    // Whichever candidate EC2 picks for every claim, the pool stays within its limit.
    let worst: i64 = plan
        .new_claims
        .iter()
        .map(|c| largest_candidate(c, ResourceName::Cpu))
        .sum();
    assert!(worst <= 1_000_000, "worst case {worst}m of 1000 CPUs");
}

#[test]
fn a_memory_limit_narrows_claims_to_types_that_stay_within_it() {
    let pool = nodepool("default").amd64().limit("memory", "48Gi").build();
    let plan = schedule(&input(anti_affine(10, "100m", "256Mi"), vec![pool]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(plan.new_claims.len(), 10);
    let worst: i64 = plan
        .new_claims
        .iter()
        .map(|c| largest_candidate(c, ResourceName::Memory))
        .sum();
    assert!(worst <= 48 << 30, "worst case {} GiB of 48", worst >> 30);
}

#[test]
fn a_pod_refused_for_limits_says_so_and_names_the_pool() {
    let pool = nodepool("small").amd64().limit("cpu", "8").build();
    let plan = schedule(&input(anti_affine(3, "3", "1Gi"), vec![pool]));
    assert!(!plan.unschedulable.is_empty(), "{plan:#?}");
    for u in &plan.unschedulable {
        assert!(
            u.reason.contains("NodePool small") && u.reason.contains("limit"),
            "{}",
            u.reason
        );
    }
}

#[test]
fn a_pod_selecting_a_hostname_goes_only_to_the_node_of_that_name() {
    let selecting = |name: &str, host: &str| pod(name).cpu("1").node_selector(labels::HOSTNAME, host).build();
    let mut inp = input(
        vec![selecting("here", "n1"), selecting("nowhere", "n9")],
        vec![default_pool()],
    );
    inp.nodes
        .push(existing_node("n1", "m5.xlarge", "us-east-1a", "3"));
    let plan = schedule(&inp);
    assert_eq!(plan.existing, vec![Assignment::new("n1", &["default/here"])]);
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.unschedulable.len(), 1, "{plan:#?}");
    assert!(
        plan.unschedulable[0].reason.contains(labels::HOSTNAME),
        "{}",
        plan.unschedulable[0].reason
    );
}

#[test]
fn a_pod_requiring_a_hostname_by_affinity_never_gets_a_new_claim() {
    let p = pod("a")
        .cpu("1")
        .require(labels::HOSTNAME, Operator::In, &["n1", "n2"])
        .build();
    let plan = schedule(&input(vec![p], vec![default_pool()]));
    assert!(plan.new_claims.is_empty(), "{plan:#?}");
    assert_eq!(plan.unschedulable.len(), 1);
}

#[test]
fn legacy_beta_labels_select_as_their_current_names() {
    let ps = vec![
        pod("arch")
            .cpu("1")
            .node_selector("beta.kubernetes.io/arch", "amd64")
            .build(),
        pod("zone")
            .cpu("1")
            .node_selector("failure-domain.beta.kubernetes.io/zone", "us-east-1b")
            .build(),
        pod("type")
            .cpu("1")
            .require("beta.kubernetes.io/instance-type", Operator::In, &["m5.large"])
            .build(),
        pod("os")
            .cpu("1")
            .node_selector("beta.kubernetes.io/os", "linux")
            .build(),
        pod("ebs")
            .cpu("1")
            .require("topology.ebs.csi.aws.com/zone", Operator::In, &["us-east-1c"])
            .build(),
    ];
    let plan = schedule(&input(ps, vec![default_pool()]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(claim_of(&plan, "zone").zones, vec!["us-east-1b".to_string()]);
    assert_eq!(claim_of(&plan, "ebs").zones, vec!["us-east-1c".to_string()]);
    assert_eq!(
        claim_of(&plan, "type").instance_types,
        vec!["m5.large".to_string()]
    );
}

fn three_zone_pool() -> NodePool {
    nodepool("default")
        .amd64()
        .on_demand_only()
        .requirement(
            labels::ZONE,
            Operator::In,
            &["us-east-1a", "us-east-1b", "us-east-1c"],
        )
        .build()
}

fn zones_of(plan: &Plan) -> BTreeMap<String, usize> {
    let mut per_zone = BTreeMap::new();
    for c in &plan.new_claims {
        *per_zone.entry(c.chosen.zone.clone()).or_default() += c.pods.len();
    }
    per_zone
}

#[test]
fn a_preferred_zone_does_not_narrow_the_domains_a_spread_counts() {
    let ps = pods(6, |i| {
        pod(&format!("p{i}"))
            .cpu("1")
            .label("app", "web")
            .zone_spread(1)
            .prefer(10, labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
            .build()
    });
    let plan = schedule(&input(ps, vec![three_zone_pool()]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let per_zone = zones_of(&plan);
    assert_eq!(per_zone.len(), 3, "{per_zone:?}");
    assert!(per_zone.values().all(|n| *n == 2), "{per_zone:?}");
}

fn tainted_zone_pools() -> Vec<NodePool> {
    vec![
        nodepool("open")
            .amd64()
            .on_demand_only()
            .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
            .build(),
        nodepool("gpu-only")
            .amd64()
            .on_demand_only()
            .requirement(labels::ZONE, Operator::In, &["us-east-1c"])
            .taint("dedicated", Some("gpu"), TaintEffect::NoSchedule)
            .build(),
    ]
}

fn spread_pods(policy: InclusionPolicy) -> Vec<Pod> {
    pods(4, |i| {
        let mut p = pod(&format!("p{i}"))
            .cpu("1")
            .label("app", "web")
            .zone_spread(1)
            .build();
        p.topology_spread[0].node_taints_policy = policy;
        p
    })
}

#[test]
fn a_spread_honouring_taints_ignores_zones_only_untolerated_pools_offer() {
    let plan = schedule(&input(spread_pods(InclusionPolicy::Honor), tainted_zone_pools()));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let per_zone = zones_of(&plan);
    assert_eq!(per_zone.get("us-east-1a"), Some(&2), "{per_zone:?}");
    assert_eq!(per_zone.get("us-east-1b"), Some(&2), "{per_zone:?}");
}

#[test]
fn a_spread_ignoring_taints_counts_the_zone_of_an_untolerated_pool() {
    // Kubernetes' default: the tainted zone is a domain with no pods, so at most one pod per
    // other zone fits within maxSkew 1.
    let plan = schedule(&input(spread_pods(InclusionPolicy::Ignore), tainted_zone_pools()));
    assert_eq!(plan.unschedulable.len(), 2, "{plan:#?}");
}

#[test]
fn a_spread_ignoring_node_affinity_counts_zones_the_pod_cannot_use() {
    let ps = pods(4, |i| {
        let mut p = pod(&format!("p{i}"))
            .cpu("1")
            .label("app", "web")
            .zone_spread(1)
            .require(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
            .build();
        p.topology_spread[0].node_affinity_policy = InclusionPolicy::Ignore;
        p
    });
    let plan = schedule(&input(ps, vec![three_zone_pool()]));
    // us-east-1c counts with no pods: one pod per usable zone, then the skew is reached.
    assert_eq!(plan.unschedulable.len(), 2, "{plan:#?}");
}

#[test]
fn a_launch_keeps_every_min_values_minimum_within_the_type_cap() {
    let pool = nodepool("default")
        .amd64()
        .on_demand_only()
        .requirement(labels::INSTANCE_FAMILY, Operator::Exists, &[])
        .min_values(labels::INSTANCE_FAMILY, 40)
        .requirement(labels::INSTANCE_CPU, Operator::Exists, &[])
        .min_values(labels::INSTANCE_CPU, 12)
        .build();
    let plan = schedule(&input(vec![pod("a").cpu("1").build()], vec![pool]));
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let c = &plan.new_claims[0];
    assert!(
        c.instance_types.len() <= MAX_INSTANCE_TYPES,
        "{}",
        c.instance_types.len()
    );
    let types = pool_input(default_pool()).instance_types;
    let distinct = |key: &str| -> usize {
        c.instance_types
            .iter()
            .filter_map(|n| types.iter().find(|t| &t.name == n)?.labels.get(key))
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert!(distinct(labels::INSTANCE_FAMILY) >= 40, "{c:#?}");
    assert!(distinct(labels::INSTANCE_CPU) >= 12, "{c:#?}");
}

#[test]
fn a_pool_limited_to_one_node_never_breaks_a_zone_spread_to_fit_one_more_pod() {
    let pool = nodepool("pool0")
        .requirement(labels::INSTANCE_CATEGORY, Operator::In, &["r"])
        .limit("nodes", "1")
        .build();
    let ps = vec![
        pod("p0").cpu("4").memory("16Gi").label("app", "a0").build(),
        pod("p1").cpu("500m").memory("128Mi").label("app", "a0").build(),
        pod("p2")
            .cpu("4")
            .memory("128Mi")
            .label("app", "a2")
            .require(labels::INSTANCE_GENERATION, Operator::Gt, &["5"])
            .build(),
        pod("p3")
            .cpu("100m")
            .memory("16Gi")
            .label("app", "a2")
            .spread_with(labels::ZONE, 2, &[("app", "a2")])
            .build(),
        pod("p4").cpu("100m").memory("128Mi").label("app", "a0").build(),
        pod("p5").cpu("250m").memory("128Mi").label("app", "a2").build(),
    ];
    let plan = schedule(&input(ps, vec![pool]));
    assert!(plan.new_claims.len() <= 1, "{plan:#?}");
    if let Ok(c) = std::panic::catch_unwind(|| claim_of(&plan, "p3").clone()) {
        let a2 = c
            .pods
            .iter()
            .filter(|p| ["default/p2", "default/p3", "default/p5"].contains(&p.as_str()))
            .count();
        assert!(a2 <= 2, "three a2 pods in one zone against maxSkew 2: {plan:#?}");
    }
}

fn anti_by_namespace_selector(name: &str, ns: &str) -> Pod {
    let mut p = pod(name)
        .namespace(ns)
        .cpu("1")
        .label("app", "db")
        .anti_affinity(labels::HOSTNAME, &[("app", "db")])
        .build();
    p.pod_anti_affinity[0].namespace_selector =
        Some(crate::pod::LabelSelector::match_labels(&[("team", "shop")]));
    p
}

#[test]
fn anti_affinity_with_a_namespace_selector_keeps_apart_pods_of_every_selected_namespace() {
    // Two namespaces labelled team=shop, one not: the pods of the first two repel each other
    // across namespaces; the third's pod is outside the selector and may share a node.
    let ps = vec![
        anti_by_namespace_selector("a", "shop-eu"),
        anti_by_namespace_selector("b", "shop-us"),
        anti_by_namespace_selector("c", "blog"),
    ];
    let mut inp = input(ps, vec![default_pool()]);
    for (ns, team) in [("shop-eu", "shop"), ("shop-us", "shop"), ("blog", "blog")] {
        inp.namespace_labels.insert(
            ns.into(),
            BTreeMap::from([("team".to_string(), team.to_string())]),
        );
    }
    let plan = schedule(&inp);
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    let host = |name: &str, ns: &str| {
        plan.new_claims
            .iter()
            .position(|c| c.pods.contains(&format!("{ns}/{name}")))
            .unwrap_or_else(|| panic!("{ns}/{name} placed: {plan:#?}"))
    };
    assert_ne!(host("a", "shop-eu"), host("b", "shop-us"), "{plan:#?}");
}

#[test]
fn a_namespace_selector_covers_the_pods_own_namespace_only_when_it_matches() {
    // Pod b's anti-affinity selects namespaces labelled team=shop; b itself lives in blog, so
    // the db pod already running in blog does not repel it from that node.
    let mut inp = input(
        vec![anti_by_namespace_selector("b", "blog")],
        vec![default_pool()],
    );
    let mut n1 = existing_node("n1", "m5.xlarge", "us-east-1a", "3");
    n1.pods.push(
        pod("a")
            .namespace("blog")
            .cpu("1")
            .label("app", "db")
            .on_node("n1")
            .build(),
    );
    inp.nodes.push(n1);
    inp.namespace_labels.insert(
        "blog".into(),
        BTreeMap::from([("team".to_string(), "blog".to_string())]),
    );
    let plan = schedule(&inp);
    assert_eq!(
        plan.existing,
        vec![Assignment::new("n1", &["blog/b"])],
        "{plan:#?}"
    );
    // Labelled team=shop, the namespace is covered and the node is off limits.
    inp.namespace_labels.insert(
        "blog".into(),
        BTreeMap::from([("team".to_string(), "shop".to_string())]),
    );
    let plan = schedule(&inp);
    assert!(plan.existing.is_empty(), "{plan:#?}");
}

#[test]
fn a_pod_refused_for_its_topology_is_told_which_constraint_and_which_pool() {
    // Both zones the pod may use already run a pod it must not share a zone with.
    let mut inp = input(
        vec![
            pod("db")
                .cpu("1")
                .label("app", "db")
                .require(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
                .anti_affinity(labels::ZONE, &[("app", "db")])
                .build(),
        ],
        vec![default_pool()],
    );
    for (name, zone) in [("n1", "us-east-1a"), ("n2", "us-east-1b")] {
        let mut node = existing_node(name, "m5.xlarge", zone, "3");
        node.pods.push(
            pod(&format!("db-{zone}"))
                .cpu("1")
                .label("app", "db")
                .on_node(name)
                .build(),
        );
        inp.nodes.push(node);
    }
    let plan = schedule(&inp);
    let [refused] = plan.unschedulable.as_slice() else {
        panic!("one pod refused: {plan:#?}");
    };
    assert!(
        refused.reason.contains("NodePool default")
            && refused
                .reason
                .contains("pod anti-affinity on topology.kubernetes.io/zone")
            && refused.reason.contains("no zone"),
        "{}",
        refused.reason
    );
}

#[test]
fn a_pod_refused_because_minvalues_cannot_be_met_is_told_so() {
    // Only two families are allowed, so five distinct families can never be offered.
    let pool = nodepool("default")
        .amd64()
        .requirement(labels::INSTANCE_FAMILY, Operator::In, &["m5", "c5"])
        .min_values(labels::INSTANCE_FAMILY, 5)
        .build();
    let plan = schedule(&input(vec![pod("a").cpu("1").build()], vec![pool]));
    let [refused] = plan.unschedulable.as_slice() else {
        panic!("one pod refused: {plan:#?}");
    };
    assert!(
        refused.reason.contains("NodePool default")
            && refused.reason.contains("minValues 5")
            && refused.reason.contains(labels::INSTANCE_FAMILY),
        "{}",
        refused.reason
    );
}
