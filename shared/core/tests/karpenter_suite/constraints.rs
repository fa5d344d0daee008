//! Node constraints: template labels, custom and well-known label requirements with every
//! operator, preferred terms and their relaxation, NodePool selection, taints and tolerations.

use crate::support::*;

const KEY: &str = "test-key";

fn labelled_pool() -> NodePool {
    any_pool("default").label(KEY, "test-value").build()
}

fn required_pool(values: &[&str]) -> NodePool {
    any_pool("default").requirement(KEY, Operator::In, values).build()
}

// ---- NodePool template labels ----

#[test]
fn a_pod_without_selectors_lands_on_a_node_carrying_the_pool_template_labels() {
    let r = Round::new(vec![pod("a").build()], vec![labelled_pool()]);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
}

#[test]
fn a_node_selector_conflicting_with_a_template_label_is_unschedulable() {
    let p = pod("a").node_selector(KEY, "different-value").build();
    Round::new(vec![p], vec![labelled_pool()]).assert_unschedulable("a");
}

#[test]
fn a_node_selector_on_a_label_no_pool_defines_is_unschedulable() {
    let p = pod("a").node_selector(KEY, "test-value").build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn a_required_term_allowing_the_template_label_value_lands_on_it() {
    let p = pod("a")
        .require(KEY, Operator::In, &["test-value", "another-value"])
        .build();
    let r = Round::new(vec![p], vec![labelled_pool()]);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
}

#[test]
fn a_required_term_excluding_the_template_label_value_is_unschedulable() {
    let p = pod("a").require(KEY, Operator::In, &["another-value"]).build();
    Round::new(vec![p], vec![labelled_pool()]).assert_unschedulable("a");
}

// ---- Custom label requirements with every operator ----

#[test]
fn an_in_requirement_on_a_label_nothing_defines_is_unschedulable() {
    let p = pod("a").require(KEY, Operator::In, &["test-value"]).build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn a_not_in_requirement_on_a_label_nothing_defines_is_satisfied_by_its_absence() {
    let p = pod("a").require(KEY, Operator::NotIn, &["test-value"]).build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", KEY), None);
}

#[test]
fn an_exists_requirement_on_a_label_nothing_defines_is_unschedulable() {
    let p = pod("a").require(KEY, Operator::Exists, &[]).build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn a_does_not_exist_requirement_on_a_label_nothing_defines_is_satisfied() {
    let p = pod("a").require(KEY, Operator::DoesNotExist, &[]).build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert!(!r.claim("a").labels.contains_key(KEY));
}

#[test]
fn a_single_valued_pool_requirement_labels_nodes_of_unconstrained_pods() {
    let r = Round::new(vec![pod("a").build()], vec![required_pool(&["test-value"])]);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
}

#[test]
fn an_in_requirement_matching_the_pool_requirement_lands_on_it() {
    let p = pod("a").require(KEY, Operator::In, &["test-value"]).build();
    let r = Round::new(vec![p], vec![required_pool(&["test-value"])]);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
}

#[test]
fn a_not_in_requirement_excluding_the_only_pool_value_is_unschedulable() {
    let p = pod("a").require(KEY, Operator::NotIn, &["test-value"]).build();
    Round::new(vec![p], vec![required_pool(&["test-value"])]).assert_unschedulable("a");
}

#[test]
fn an_exists_requirement_on_a_label_the_pool_defines_is_satisfied() {
    let p = pod("a").require(KEY, Operator::Exists, &[]).build();
    let r = Round::new(vec![p], vec![required_pool(&["test-value"])]);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
}

#[test]
fn a_does_not_exist_requirement_on_a_label_the_pool_always_sets_is_unschedulable() {
    let p = pod("a").require(KEY, Operator::DoesNotExist, &[]).build();
    Round::new(vec![p], vec![required_pool(&["test-value"])]).assert_unschedulable("a");
}

#[test]
fn an_in_requirement_on_a_value_the_pool_does_not_offer_is_unschedulable() {
    let p = pod("a").require(KEY, Operator::In, &["another-value"]).build();
    Round::new(vec![p], vec![required_pool(&["test-value"])]).assert_unschedulable("a");
}

#[test]
fn a_not_in_requirement_on_another_value_keeps_the_pool_value() {
    let p = pod("a").require(KEY, Operator::NotIn, &["another-value"]).build();
    let r = Round::new(vec![p], vec![required_pool(&["test-value"])]);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
}

#[test]
fn pods_whose_label_requirements_agree_share_a_node() {
    let a = pod("a").require(KEY, Operator::In, &["test-value"]).build();
    let b = pod("b").require(KEY, Operator::NotIn, &["another-value"]).build();
    let r = Round::new(vec![a, b], vec![required_pool(&["test-value", "another-value"])]);
    assert!(r.same_host("a", "b"), "{:#?}", r.plan);
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
    assert_eq!(r.value("b", KEY).as_deref(), Some("test-value"));
}

#[test]
fn pods_requiring_different_values_of_a_label_get_different_nodes() {
    let a = pod("a").require(KEY, Operator::In, &["test-value"]).build();
    let b = pod("b").require(KEY, Operator::In, &["another-value"]).build();
    let r = Round::new(vec![a, b], vec![required_pool(&["test-value", "another-value"])]);
    assert!(!r.same_host("a", "b"));
    assert_eq!(r.value("a", KEY).as_deref(), Some("test-value"));
    assert_eq!(r.value("b", KEY).as_deref(), Some("another-value"));
}

#[test]
fn an_exists_requirement_does_not_widen_an_in_requirement_on_the_same_key() {
    let p = pod("a")
        .require(labels::ZONE, Operator::In, &["non-existent-zone"])
        .require(labels::ZONE, Operator::Exists, &[])
        .build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn a_pool_whose_requirements_cannot_be_read_launches_nothing() {
    // Karpenter skips a NodePool that is not Ready; the nearest case here is a pool whose
    // requirements are invalid (Gt needs an integer).
    let broken = any_pool("default")
        .requirement(labels::INSTANCE_CPU, Operator::Gt, &["lots"])
        .build();
    Round::new(vec![pod("a").build()], vec![broken]).assert_unschedulable("a");
}

// ---- Well-known labels ----

#[test]
fn a_pool_zone_requirement_pins_the_claim_to_that_zone() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1b"])
        .build();
    let r = Round::new(vec![pod("a").build()], vec![pool]);
    assert_eq!(r.claim("a").zones, vec!["us-east-1b".to_string()]);
    assert_eq!(r.claim("a").chosen.zone, "us-east-1b");
}

#[test]
fn a_zone_node_selector_narrows_the_pool_zones() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let p = pod("a").node_selector(labels::ZONE, "us-east-1b").build();
    let r = Round::new(vec![p], vec![pool]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1b"));
}

#[test]
fn a_hostname_node_selector_cannot_be_met_by_a_new_node() {
    let p = pod("a").node_selector(labels::HOSTNAME, "red-node").build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn an_unknown_zone_node_selector_is_unschedulable() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a"])
        .build();
    let p = pod("a").node_selector(labels::ZONE, "unknown").build();
    Round::new(vec![p], vec![pool]).assert_unschedulable("a");
}

#[test]
fn a_zone_node_selector_outside_the_pool_zones_is_unschedulable() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a"])
        .build();
    let p = pod("a").node_selector(labels::ZONE, "us-east-1b").build();
    Round::new(vec![p], vec![pool]).assert_unschedulable("a");
}

#[test]
fn a_required_zone_in_term_picks_that_zone() {
    let p = pod("a")
        .require(labels::ZONE, Operator::In, &["us-east-1c"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1c"));
}

#[test]
fn a_pool_gt_requirement_keeps_only_types_above_the_bound() {
    let pool = any_pool("default")
        .requirement(labels::INSTANCE_CPU, Operator::Gt, &["8"])
        .build();
    let r = Round::new(vec![pod("a").build()], vec![pool]);
    let types = r.candidates(r.claim("a"));
    assert!(!types.is_empty());
    for t in types {
        let cpus: i64 = label(&t, labels::INSTANCE_CPU).parse().expect("integer label");
        assert!(cpus > 8, "{} has {cpus} vCPUs", t.name);
    }
}

#[test]
fn a_pool_lt_requirement_keeps_only_types_below_the_bound() {
    let pool = any_pool("default")
        .requirement(labels::INSTANCE_CPU, Operator::Lt, &["8"])
        .build();
    let r = Round::new(vec![pod("a").build()], vec![pool]);
    let types = r.candidates(r.claim("a"));
    assert!(!types.is_empty());
    for t in types {
        let cpus: i64 = label(&t, labels::INSTANCE_CPU).parse().expect("integer label");
        assert!(cpus < 8, "{} has {cpus} vCPUs", t.name);
    }
}

#[test]
fn a_pod_gt_and_lt_requirement_pair_selects_a_band_of_sizes() {
    let p = pod("a")
        .require(labels::INSTANCE_MEMORY, Operator::Gt, &["16384"])
        .require(labels::INSTANCE_MEMORY, Operator::Lt, &["65536"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    for t in r.candidates(r.claim("a")) {
        let mib: i64 = label(&t, labels::INSTANCE_MEMORY).parse().expect("integer label");
        assert!(mib > 16384 && mib < 65536, "{} has {mib} MiB", t.name);
    }
}

#[test]
fn a_required_zone_in_term_with_only_unknown_zones_is_unschedulable() {
    let p = pod("a").require(labels::ZONE, Operator::In, &["unknown"]).build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn a_zone_not_in_requirement_keeps_the_claim_out_of_those_zones() {
    let p = pod("a")
        .require(
            labels::ZONE,
            Operator::NotIn,
            &["us-east-1a", "us-east-1b", "unknown"],
        )
        .build();
    let r = Round::new(vec![p], vec![three_zone_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1c"));
}

#[test]
fn a_zone_not_in_requirement_excluding_every_pool_zone_is_unschedulable() {
    let p = pod("a")
        .require(labels::ZONE, Operator::NotIn, &THREE_ZONES)
        .build();
    Round::new(vec![p], vec![three_zone_pool("default").build()]).assert_unschedulable("a");
}

fn required_three_zones(b: PodBuilder) -> PodBuilder {
    b.require(
        labels::ZONE,
        Operator::In,
        &["us-east-1a", "us-east-1b", "us-east-1c", "unknown"],
    )
}

#[test]
fn a_compatible_zone_preference_narrows_the_required_zones() {
    let p = required_three_zones(pod("a"))
        .prefer(1, labels::ZONE, Operator::In, &["us-east-1b", "unknown"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1b"));
}

#[test]
fn an_impossible_zone_preference_is_dropped_and_the_requirement_kept() {
    let p = required_three_zones(pod("a"))
        .prefer(1, labels::ZONE, Operator::In, &["unknown"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    let c = r.claim("a");
    assert!(
        c.zones.iter().all(|z| THREE_ZONES.contains(&z.as_str())),
        "{c:#?}"
    );
}

#[test]
fn a_not_in_zone_preference_narrows_the_required_zones() {
    let p = required_three_zones(pod("a"))
        .prefer(1, labels::ZONE, Operator::NotIn, &["us-east-1a", "us-east-1c"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1b"));
}

#[test]
fn a_not_in_zone_preference_excluding_every_required_zone_is_dropped() {
    let p = required_three_zones(pod("a"))
        .prefer(1, labels::ZONE, Operator::NotIn, &THREE_ZONES)
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    let c = r.claim("a");
    assert!(
        c.zones.iter().all(|z| THREE_ZONES.contains(&z.as_str())),
        "{c:#?}"
    );
}

#[test]
fn node_selector_requirement_and_preference_on_a_zone_combine() {
    let p = pod("a")
        .node_selector(labels::ZONE, "us-east-1c")
        .require(labels::ZONE, Operator::In, &THREE_ZONES)
        .prefer(1, labels::ZONE, Operator::In, &THREE_ZONES)
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1c"));
}

#[test]
fn node_selectors_requirements_and_preferences_on_two_keys_combine() {
    let p = pod("a")
        .node_selector(labels::ZONE, "us-east-1c")
        .node_selector(labels::INSTANCE_TYPE, "m5.large")
        .require(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1c"])
        .require(labels::INSTANCE_TYPE, Operator::In, &["c5.large", "m5.large"])
        .prefer_all(
            1,
            &[
                (labels::ZONE, Operator::NotIn, &["unknown"]),
                (labels::INSTANCE_TYPE, Operator::NotIn, &["unknown"]),
            ],
        )
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1c"));
    assert_eq!(r.claim("a").instance_types, vec!["m5.large".to_string()]);
}

#[test]
fn every_well_known_label_can_be_selected() {
    let ps = vec![
        pod("zone").node_selector(labels::ZONE, "us-east-1a").build(),
        pod("type")
            .node_selector(labels::INSTANCE_TYPE, "m5.large")
            .build(),
        pod("arch").node_selector(labels::ARCH, "arm64").build(),
        pod("os").node_selector(labels::OS, "linux").build(),
        pod("ct").node_selector(labels::CAPACITY_TYPE, "spot").build(),
        pod("region").node_selector(labels::REGION, "us-east-1").build(),
    ];
    let r = Round::new(ps, vec![any_pool("default").build()]);
    r.assert_all_placed();
    assert_eq!(r.value("zone", labels::ZONE).as_deref(), Some("us-east-1a"));
    assert_eq!(
        r.value("type", labels::INSTANCE_TYPE).as_deref(),
        Some("m5.large")
    );
    assert_eq!(r.value("arch", labels::ARCH).as_deref(), Some("arm64"));
    assert_eq!(r.value("os", labels::OS).as_deref(), Some("linux"));
    assert_eq!(r.value("ct", labels::CAPACITY_TYPE).as_deref(), Some("spot"));
}

#[test]
fn legacy_beta_labels_select_like_their_stable_names() {
    let ps = vec![
        pod("zone")
            .node_selector("failure-domain.beta.kubernetes.io/zone", "us-east-1b")
            .build(),
        pod("arch")
            .node_selector("beta.kubernetes.io/arch", "arm64")
            .build(),
        pod("os").node_selector("beta.kubernetes.io/os", "linux").build(),
        pod("type")
            .node_selector("beta.kubernetes.io/instance-type", "c5.large")
            .build(),
        pod("region")
            .node_selector("failure-domain.beta.kubernetes.io/region", "us-east-1")
            .build(),
    ];
    let r = Round::new(ps, vec![any_pool("default").build()]);
    r.assert_all_placed();
    assert_eq!(r.value("zone", labels::ZONE).as_deref(), Some("us-east-1b"));
    assert_eq!(r.value("arch", labels::ARCH).as_deref(), Some("arm64"));
    assert_eq!(r.claim("type").instance_types, vec!["c5.large".to_string()]);
}

#[test]
fn pods_selecting_different_types_by_legacy_and_stable_labels_get_different_nodes() {
    let a = pod("a")
        .node_selector("beta.kubernetes.io/instance-type", "c5.large")
        .build();
    let b = pod("b").node_selector(labels::INSTANCE_TYPE, "m5.large").build();
    let r = Round::new(vec![a, b], vec![any_pool("default").build()]);
    assert!(!r.same_host("a", "b"));
    assert_eq!(r.claim("a").instance_types, vec!["c5.large".to_string()]);
    assert_eq!(r.claim("b").instance_types, vec!["m5.large".to_string()]);
}

// ---- Restricted labels ----

#[test]
fn a_requirement_in_the_karpenter_domain_cannot_be_met_by_new_nodes() {
    let p = pod("a")
        .require("karpenter.sh/test", Operator::In, &["test"])
        .build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn a_hostname_requirement_cannot_be_met_by_new_nodes() {
    let p = pod("a")
        .require(labels::HOSTNAME, Operator::In, &["test"])
        .build();
    Round::new(vec![p], vec![any_pool("default").build()]).assert_unschedulable("a");
}

#[test]
fn pool_requirements_in_kubernetes_domains_label_the_nodes() {
    let pool = any_pool("default")
        .requirement("kubernetes.io/test", Operator::In, &["test-value"])
        .requirement("k8s.io/test", Operator::In, &["test-value"])
        .requirement("subdomain.kubernetes.io/test", Operator::In, &["test-value"])
        .requirement("subdomain.k8s.io/test", Operator::In, &["test-value"])
        .build();
    let r = Round::new(vec![pod("a").build()], vec![pool]);
    for key in [
        "kubernetes.io/test",
        "k8s.io/test",
        "subdomain.kubernetes.io/test",
        "subdomain.k8s.io/test",
    ] {
        assert_eq!(r.value("a", key).as_deref(), Some("test-value"), "{key}");
    }
}

// ---- Preferential fallback ----

#[test]
fn the_last_required_term_is_never_relaxed() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a"])
        .requirement(labels::INSTANCE_TYPE, Operator::In, &["m5.large"])
        .build();
    let p = pod("a").require(labels::ZONE, Operator::In, &["invalid"]).build();
    Round::new(vec![p], vec![pool]).assert_unschedulable("a");
}

#[test]
fn required_terms_are_tried_in_order_until_one_fits() {
    let p = pod("a")
        .require(labels::ZONE, Operator::In, &["invalid"])
        .or_require(labels::ZONE, Operator::In, &["invalid"])
        .or_require(labels::ZONE, Operator::In, &["us-east-1a"])
        .or_require(labels::ZONE, Operator::In, &["us-east-1b"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1a"));
}

#[test]
fn every_impossible_preference_is_relaxed() {
    let p = pod("a")
        .prefer(1, labels::ZONE, Operator::In, &["invalid"])
        .prefer(1, labels::INSTANCE_TYPE, Operator::In, &["invalid"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    r.placed("a");
}

#[test]
fn preferences_are_relaxed_heaviest_first_until_one_fits() {
    let pool = any_pool("default")
        .requirement(labels::ZONE, Operator::In, &["us-east-1a", "us-east-1b"])
        .build();
    let p = pod("a")
        .prefer(100, labels::INSTANCE_TYPE, Operator::In, &["us-east-1c"])
        .prefer(50, labels::ZONE, Operator::In, &["us-east-1b"])
        .prefer(1, labels::ZONE, Operator::In, &["us-east-1a"])
        .build();
    let r = Round::new(vec![p], vec![pool]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1b"));
}

#[test]
fn a_preference_conflicting_with_the_requirement_gives_way() {
    let p = pod("a")
        .prefer(1, labels::ZONE, Operator::NotIn, &["us-east-1c"])
        .require(labels::ZONE, Operator::In, &["us-east-1c"])
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert_eq!(r.value("a", labels::ZONE).as_deref(), Some("us-east-1c"));
}

#[test]
fn a_self_contradictory_preference_is_relaxed() {
    let p = pod("a")
        .prefer_all(
            1,
            &[
                (labels::ZONE, Operator::In, &["invalid"]),
                (labels::ZONE, Operator::NotIn, &["invalid"]),
            ],
        )
        .build();
    Round::new(vec![p], vec![any_pool("default").build()]).placed("a");
}

#[test]
fn an_impossible_zone_or_hostname_preference_does_not_stop_sharing_a_node() {
    for key in [labels::ZONE, labels::HOSTNAME] {
        let big = pod("big").cpu("2").label("app", "foo").build();
        let picky = pod("picky")
            .cpu("1")
            .label("app", "baz")
            .prefer(1, key, Operator::In, &["value-1"])
            .build();
        let r = Round::new(vec![big, picky], vec![any_pool("default").build()]);
        assert!(r.same_host("big", "picky"), "{key}: {:#?}", r.plan);
    }
}

// ---- NodePool selection and weights ----

#[test]
fn a_pod_selecting_a_pool_by_name_lands_on_that_pool() {
    let first = pod("first").cpu("100m").build();
    let picky = pod("picky")
        .cpu("100m")
        .node_selector(labels::NODEPOOL, "chosen")
        .build();
    let r = Round::new(
        vec![first, picky],
        vec![any_pool("chosen").build(), any_pool("other").weight(10).build()],
    );
    assert_eq!(r.claim("picky").nodepool, "chosen");
    assert_eq!(r.value("picky", labels::NODEPOOL).as_deref(), Some("chosen"));
    assert_eq!(r.claim("first").nodepool, "other");
}

#[test]
fn a_pod_selecting_a_pool_by_name_alone_lands_on_that_pool() {
    let p = pod("a").node_selector(labels::NODEPOOL, "chosen").build();
    let r = Round::new(
        vec![p],
        vec![any_pool("chosen").build(), any_pool("other").weight(100).build()],
    );
    assert_eq!(r.claim("a").nodepool, "chosen");
}

#[test]
fn a_pod_selecting_a_template_label_lands_on_the_pool_that_sets_it() {
    let p = pod("a").node_selector("foo", "bar").build();
    let r = Round::new(
        vec![p],
        vec![
            any_pool("plain").build(),
            any_pool("labelled").label("foo", "bar").build(),
        ],
    );
    assert_eq!(r.claim("a").nodepool, "labelled");
}

#[test]
fn pods_go_to_the_heaviest_pool_every_time() {
    let ps = pods(3, "p", |b| b.cpu("100m"));
    let r = Round::new(
        ps,
        vec![
            any_pool("a-light").build(),
            any_pool("b-middle").weight(20).build(),
            any_pool("c-heavy").weight(100).build(),
        ],
    );
    for i in 0..3 {
        assert_eq!(r.claim(&format!("p{i}")).nodepool, "c-heavy");
    }
}

#[test]
fn an_untainted_pool_is_preferred_to_one_with_a_prefer_no_schedule_taint() {
    let soft = any_pool("a-soft")
        .taint("foo", Some("bar"), TaintEffect::PreferNoSchedule)
        .build();
    let r = Round::new(vec![pod("a").build()], vec![soft, any_pool("b-plain").build()]);
    assert_eq!(r.claim("a").nodepool, "b-plain");
}

#[test]
fn a_prefer_no_schedule_pool_is_used_when_it_is_the_only_one() {
    let soft = any_pool("soft")
        .taint("foo", Some("bar"), TaintEffect::PreferNoSchedule)
        .build();
    let p = pod("a")
        .prefer(1, labels::ZONE, Operator::In, &["invalid"])
        .prefer(1, labels::INSTANCE_TYPE, Operator::In, &["invalid"])
        .build();
    let r = Round::new(vec![p], vec![soft]);
    let c = r.claim("a");
    assert!(
        c.taints
            .contains(&Taint::new("foo", Some("bar"), TaintEffect::PreferNoSchedule))
    );
}

// ---- Taints and tolerations ----

#[test]
fn new_claims_carry_the_pool_taints() {
    let pool = any_pool("default")
        .taint("test", Some("bar"), TaintEffect::NoSchedule)
        .build();
    let p = pod("a").tolerate_any(Some(TaintEffect::NoSchedule)).build();
    let r = Round::new(vec![p], vec![pool]);
    assert!(
        r.claim("a")
            .taints
            .contains(&Taint::new("test", Some("bar"), TaintEffect::NoSchedule))
    );
}

#[test]
fn only_pods_tolerating_the_pool_taint_by_key_or_value_schedule() {
    let pool = || {
        any_pool("default")
            .taint("test-key", Some("test-value"), TaintEffect::NoSchedule)
            .build()
    };
    let ok = vec![
        pod("exists")
            .tolerate("test-key", None, Some(TaintEffect::NoSchedule))
            .build(),
        pod("equal")
            .tolerate("test-key", Some("test-value"), Some(TaintEffect::NoSchedule))
            .build(),
    ];
    let r = Round::new(ok, vec![pool()]);
    r.assert_all_placed();
    let bad = vec![
        pod("none").build(),
        pod("other-key").tolerate("invalid", None, None).build(),
        pod("empty-value")
            .tolerate("test-key", Some(""), Some(TaintEffect::NoSchedule))
            .build(),
    ];
    let r = Round::new(bad, vec![pool()]);
    for p in ["none", "other-key", "empty-value"] {
        r.assert_unschedulable(p);
    }
}

#[test]
fn a_startup_taint_does_not_keep_pods_off_a_new_node() {
    let pool = any_pool("default")
        .startup_taint("ignore-me", TaintEffect::NoSchedule)
        .build();
    let r = Round::new(vec![pod("a").build()], vec![pool]);
    let c = r.claim("a");
    assert!(c.taints.is_empty());
    assert_eq!(c.startup_taints.len(), 1);
}

#[test]
fn a_pod_toleration_adds_no_taint_to_its_node() {
    let p = pod("a")
        .tolerate("test-key", None, Some(TaintEffect::NoExecute))
        .build();
    let r = Round::new(vec![p], vec![any_pool("default").build()]);
    assert!(r.claim("a").taints.is_empty());
}
