//! Pod affinity and anti-affinity: hostname, zone and arch terms, self-affinity, preferred terms,
//! the symmetric effect of existing pods' anti-affinity, and namespace filtering.

use crate::support::*;

const S2: (&str, &str) = ("security", "s2");

fn pool() -> NodePool {
    three_zone_pool("default").build()
}

fn round(pending: Vec<Pod>, nodes: Vec<ExistingNode>) -> Round {
    Round::of(Input {
        pending,
        nodes,
        pools: vec![pool_input(pool())],
        ..Input::default()
    })
}

/// Ten one-per-host pods so that there are several nodes to choose from.
fn ten_spread_hosts() -> Vec<Pod> {
    pods(10, "spread", |b| {
        b.label(APP.0, APP.1).spread_with(labels::HOSTNAME, 1, &[APP])
    })
}

/// A full node in `zone` holding one pod built by `f`.
fn node_with(name: &str, zone: &str, f: impl Fn(PodBuilder) -> PodBuilder) -> ExistingNode {
    let mut n = existing(name, "m5.xlarge", zone, "3");
    n.node.allocatable.set(ResourceName::Pods, 1);
    n.pods = vec![f(pod(&format!("{name}-pod"))).on_node(name).build()];
    n
}

#[test]
fn a_pod_with_no_affinity_terms_schedules() {
    Round::new(vec![pod("a").build()], vec![pool()]).placed("a");
}

#[test]
fn a_pod_with_hostname_affinity_joins_its_target() {
    let mut ps = ten_spread_hosts();
    ps.push(pod("target").label(S2.0, S2.1).build());
    ps.push(pod("follower").affinity(labels::HOSTNAME, &[S2]).build());
    let r = Round::new(ps, vec![pool()]);
    assert!(r.same_host("target", "follower"), "{:#?}", r.plan);
}

#[test]
fn arch_affinity_shares_the_arch_while_a_hostname_spread_keeps_hosts_apart() {
    let target = pod("target")
        .label(S2.0, S2.1)
        .cpu("1")
        .node_selector(labels::ARCH, "arm64")
        .spread_with(labels::HOSTNAME, 1, &[S2])
        .build();
    let follower = pod("follower")
        .label(S2.0, S2.1)
        .cpu("500m")
        .affinity(labels::ARCH, &[S2])
        .spread_with(labels::HOSTNAME, 1, &[S2])
        .build();
    let r = Round::new(vec![target, follower], vec![pool()]);
    assert_eq!(r.value("follower", labels::ARCH).as_deref(), Some("arm64"));
    assert!(!r.same_host("target", "follower"));
}

#[test]
fn pods_with_self_affinity_on_hostname_share_one_node() {
    let ps = pods(3, "p", |b| b.label(S2.0, S2.1).affinity(labels::HOSTNAME, &[S2]));
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
    assert_eq!(r.plan.new_claims.len(), 1);
}

#[test]
fn self_affine_pods_that_outgrow_the_largest_node_leave_the_rest_unschedulable() {
    // The pool offers only m5.large (about 1.9 allocatable CPUs): five of these pods fit.
    let only_large = three_zone_pool("default")
        .requirement(labels::INSTANCE_TYPE, Operator::In, &["m5.large"])
        .build();
    let ps = pods(10, "p", |b| {
        b.label(S2.0, S2.1).cpu("350m").affinity(labels::HOSTNAME, &[S2])
    });
    let r = Round::new(ps, vec![only_large]);
    assert_eq!(r.plan.new_claims.len(), 1);
    assert_eq!(r.plan.new_claims[0].pods.len(), 5);
    assert_eq!(r.plan.unschedulable.len(), 5);
}

#[test]
fn self_affine_pods_cannot_follow_their_group_into_a_zone_they_exclude() {
    let node = node_with("n1", "us-east-1a", |b| {
        b.label(S2.0, S2.1).affinity(labels::HOSTNAME, &[S2])
    });
    let ps = pods(10, "p", |b| {
        b.label(S2.0, S2.1)
            .require(labels::ZONE, Operator::In, &["us-east-1b", "us-east-1c"])
            .affinity(labels::HOSTNAME, &[S2])
    });
    let r = round(ps, vec![node]);
    for i in 0..10 {
        r.assert_unschedulable(&format!("p{i}"));
    }
}

#[test]
fn pods_with_self_affinity_on_zone_share_one_zone() {
    let ps = pods(3, "p", |b| b.label(S2.0, S2.1).affinity(labels::ZONE, &[S2]));
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
    assert_eq!(r.skew(labels::ZONE, &[S2]), vec![3]);
}

#[test]
fn pods_with_self_affinity_on_zone_go_to_the_zone_they_require() {
    let ps = pods(3, "p", |b| {
        b.label(S2.0, S2.1)
            .affinity(labels::ZONE, &[S2])
            .require(labels::ZONE, Operator::In, &["us-east-1c"])
    });
    let r = Round::new(ps, vec![pool()]);
    assert_eq!(r.domain_counts(labels::ZONE, &[S2])["us-east-1c"], 3);
}

#[test]
fn a_self_affine_pod_required_elsewhere_does_not_start_a_second_group() {
    // Differs from Karpenter on purpose: Karpenter lets each pod found its own group, but the
    // kube-scheduler admits a pod without a match in its domain only when no pod in the whole
    // cluster matches the term; once the first is bound, the second would stay pending on a
    // node launched for it. The first is placed; the second waits.
    let one = |name: &str, zone: &str, cpu: &str| {
        pod(name)
            .cpu(cpu)
            .label("security", "s1")
            .affinity(labels::ZONE, &[("security", "s1")])
            .require(labels::ZONE, Operator::In, &[zone])
            .build()
    };
    let r = Round::new(
        vec![one("b", "us-east-1b", "2"), one("c", "us-east-1c", "1")],
        vec![pool()],
    );
    assert_eq!(r.value("b", labels::ZONE).as_deref(), Some("us-east-1b"));
    r.assert_unschedulable("c");
}

#[test]
fn preferred_affinity_to_a_missing_pod_is_relaxed() {
    let mut ps = ten_spread_hosts();
    ps.push(
        pod("hopeful")
            .preferred_affinity(50, labels::HOSTNAME, &[S2])
            .build(),
    );
    Round::new(ps, vec![pool()]).placed("hopeful");
}

#[test]
fn preferred_zone_anti_affinity_is_relaxed_when_every_zone_has_a_match() {
    let mut ps = pods(3, "spread", |b| {
        b.label(APP.0, APP.1).spread_with(labels::ZONE, 1, &[APP])
    });
    ps.extend(pods(10, "shy", |b| {
        b.preferred_anti_affinity(50, labels::ZONE, &[APP])
    }));
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
}

#[test]
fn hostname_anti_affinity_separates_pods_whichever_is_placed_first() {
    for order in [false, true] {
        let target = pod("target").label(S2.0, S2.1).build();
        let shy = pod("shy").anti_affinity(labels::HOSTNAME, &[S2]).build();
        let ps = if order {
            vec![target, shy]
        } else {
            vec![shy, target]
        };
        let r = Round::new(ps, vec![pool()]);
        assert!(!r.same_host("target", "shy"));
    }
}

fn zone_pods() -> Vec<Pod> {
    ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
        .map(|(i, z)| {
            pod(&format!("zone{i}"))
                .label(S2.0, S2.1)
                .cpu("2")
                .node_selector(labels::ZONE, z)
                .build()
        })
        .collect()
}

#[test]
fn zone_anti_affinity_to_pods_in_every_zone_is_unschedulable() {
    let mut ps = zone_pods();
    ps.push(pod("shy").anti_affinity(labels::ZONE, &[S2]).build());
    let r = Round::new(ps, vec![pool()]);
    for i in 0..3 {
        r.placed(&format!("zone{i}"));
    }
    r.assert_unschedulable("shy");
}

#[test]
fn zone_anti_affinity_never_shares_a_zone_with_its_target() {
    // Karpenter cannot know the target's zone and leaves the pod pending; a plan that pins
    // both claims to different zones is as good.
    let target = pod("target").label(S2.0, S2.1).cpu("2").build();
    let shy = pod("shy").anti_affinity(labels::ZONE, &[S2]).build();
    let r = Round::new(vec![target, shy], vec![pool()]);
    r.placed("target");
    if r.host("shy").is_some() {
        let (t, s) = (r.value("target", labels::ZONE), r.value("shy", labels::ZONE));
        assert!(t.is_some() && s.is_some() && t != s, "{:#?}", r.plan);
    } else {
        r.assert_unschedulable("shy");
    }
}

#[test]
fn arch_anti_affinity_puts_the_pod_on_the_other_arch() {
    let target = pod("target")
        .label(S2.0, S2.1)
        .cpu("1")
        .node_selector(labels::ARCH, "arm64")
        .build();
    let shy = pod("shy").cpu("500m").anti_affinity(labels::ARCH, &[S2]).build();
    let r = Round::new(vec![target, shy], vec![pool()]);
    assert_eq!(r.value("shy", labels::ARCH).as_deref(), Some("amd64"));
}

fn anti_zone_pods(required: bool) -> Vec<Pod> {
    ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
        .map(|(i, z)| {
            let b = pod(&format!("zone{i}")).cpu("2").node_selector(labels::ZONE, z);
            if required {
                b.anti_affinity(labels::ZONE, &[S2]).build()
            } else {
                b.preferred_anti_affinity(10, labels::ZONE, &[S2]).build()
            }
        })
        .collect()
}

#[test]
fn others_preferred_zone_anti_affinity_does_not_block_a_pod() {
    let mut ps = anti_zone_pods(false);
    ps.push(pod("target").label(S2.0, S2.1).build());
    Round::new(ps, vec![pool()]).assert_all_placed();
}

#[test]
fn others_required_zone_anti_affinity_in_every_zone_blocks_a_pod() {
    let mut ps = anti_zone_pods(true);
    ps.push(pod("target").label(S2.0, S2.1).build());
    let r = Round::new(ps, vec![pool()]);
    for i in 0..3 {
        r.placed(&format!("zone{i}"));
    }
    r.assert_unschedulable("target");
}

#[test]
fn a_pod_avoided_by_an_existing_pod_goes_to_another_zone() {
    let node = node_with("n1", "us-east-1b", |b| b.anti_affinity(labels::ZONE, &[S2]));
    let r = round(vec![pod("target").label(S2.0, S2.1).build()], vec![node]);
    let zone = r.value("target", labels::ZONE);
    assert!(
        zone.is_some() && zone.as_deref() != Some("us-east-1b"),
        "{:#?}",
        r.plan
    );
}

fn zone_nodes(required: bool) -> Vec<ExistingNode> {
    ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
        .map(|(i, z)| {
            node_with(&format!("n{i}"), z, |b| {
                if required {
                    b.anti_affinity(labels::ZONE, &[S2])
                } else {
                    b.preferred_anti_affinity(10, labels::ZONE, &[S2])
                }
            })
        })
        .collect()
}

#[test]
fn existing_pods_required_zone_anti_affinity_in_every_zone_blocks_a_pod() {
    let r = round(vec![pod("target").label(S2.0, S2.1).build()], zone_nodes(true));
    r.assert_unschedulable("target");
}

#[test]
fn existing_pods_preferred_zone_anti_affinity_does_not_block_a_pod() {
    let r = round(vec![pod("target").label(S2.0, S2.1).build()], zone_nodes(false));
    r.placed("target");
}

#[test]
fn a_preferred_affinity_conflicting_with_a_hostname_spread_gives_way() {
    let mut ps = pods(3, "p", |b| {
        b.label(APP.0, APP.1)
            .spread_with(labels::HOSTNAME, 1, &[APP])
            .preferred_affinity(50, labels::HOSTNAME, &[S2])
    });
    ps.push(pod("target").label(S2.0, S2.1).build());
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
    assert_eq!(r.skew(labels::HOSTNAME, &[APP]), vec![1, 1, 1]);
}

#[test]
fn mutually_zone_anti_affine_pods_each_take_a_zone_and_no_more() {
    // Karpenter settles one pod per round; placing several at once in distinct pinned zones is
    // equally correct.
    let shy = |prefix: &str| {
        pods(3, prefix, |b| {
            b.label(S2.0, S2.1).anti_affinity(labels::ZONE, &[S2])
        })
    };
    let r = Round::new(shy("p"), vec![pool()]);
    let counts = r.domain_counts(labels::ZONE, &[S2]);
    assert!(
        !counts.is_empty() && counts.values().all(|n| *n == 1),
        "{counts:?}"
    );
    assert!(!counts.contains_key("<unsettled>"));
    let nodes: Vec<ExistingNode> = ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
        .map(|(i, z)| {
            node_with(&format!("n{i}"), z, |b| {
                b.label(S2.0, S2.1).anti_affinity(labels::ZONE, &[S2])
            })
        })
        .collect();
    let r = round(shy("q"), nodes);
    for i in 0..3 {
        r.assert_unschedulable(&format!("q{i}"));
    }
}

#[test]
fn affinity_to_a_pod_that_does_not_exist_is_unschedulable() {
    let r = Round::new(pods(10, "p", |b| b.affinity(labels::ZONE, &[S2])), vec![pool()]);
    for i in 0..10 {
        r.assert_unschedulable(&format!("p{i}"));
    }
}

#[test]
fn zone_affinity_to_an_unplaced_target_is_met_in_the_targets_zone_or_waits() {
    // Karpenter waits for the target's node to settle a zone; pinning the target's claim to a
    // zone and following it there is equally correct.
    let mut ps = pods(10, "p", |b| b.affinity(labels::ZONE, &[S2]));
    ps.push(pod("target").label(S2.0, S2.1).build());
    let r = Round::new(ps, vec![pool()]);
    r.placed("target");
    let target_zone = r.value("target", labels::ZONE);
    for i in 0..10 {
        let p = format!("p{i}");
        if r.host(&p).is_some() {
            assert!(target_zone.is_some() && r.value(&p, labels::ZONE) == target_zone);
        } else {
            r.assert_unschedulable(&p);
        }
    }
}

#[test]
fn zone_affinity_to_a_placed_target_follows_it_into_its_zone() {
    let node = node_with("n1", "us-east-1b", |b| b.label(S2.0, S2.1));
    let r = round(pods(10, "p", |b| b.affinity(labels::ZONE, &[S2])), vec![node]);
    r.assert_all_placed();
    assert_eq!(r.skew(labels::ZONE, &[S2]), vec![1]);
    assert_eq!(r.domain_counts(labels::ZONE, &[]).get("us-east-1b"), Some(&11));
}

#[test]
fn zone_affinity_to_a_zone_constrained_target_follows_it() {
    let mut ps = pods(10, "p", |b| b.affinity(labels::ZONE, &[S2]));
    ps.push(
        pod("target")
            .label(S2.0, S2.1)
            .require(labels::ZONE, Operator::In, &["us-east-1a"])
            .build(),
    );
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
    assert_eq!(r.domain_counts(labels::ZONE, &[]).get("us-east-1a"), Some(&11));
}

#[test]
fn a_chain_of_hostname_affinities_lands_on_one_node() {
    let db = [("type", "db"), ("spread", "spread")];
    let web = [("type", "web"), ("spread", "spread")];
    let cache = [("type", "cache"), ("spread", "spread")];
    let with = |name: &str, own: &[(&str, &str)]| own.iter().fold(pod(name), |b, (k, v)| b.label(k, v));
    let ps = vec![
        with("ui", &[("type", "ui"), ("spread", "spread")])
            .affinity(labels::HOSTNAME, &cache)
            .build(),
        with("cache", &cache).affinity(labels::HOSTNAME, &web).build(),
        with("web", &web).affinity(labels::HOSTNAME, &db).build(),
        with("db", &db).build(),
    ];
    let r = Round::new(ps, vec![pool()]);
    r.assert_all_placed();
    assert!(r.same_host("db", "web") && r.same_host("web", "cache") && r.same_host("cache", "ui"));
}

#[test]
fn affinity_to_pods_of_another_namespace_needs_that_namespace_named() {
    let target = || pod("target").namespace("other").label(S2.0, S2.1).build();
    let mut ps = ten_spread_hosts();
    ps.push(target());
    ps.push(pod("own-ns").affinity(labels::HOSTNAME, &[S2]).build());
    let r = Round::new(ps, vec![pool()]);
    r.placed("other/target");
    r.assert_unschedulable("own-ns");

    let mut ps = ten_spread_hosts();
    ps.push(target());
    ps.push(
        pod("listed")
            .affinity_in_namespaces(labels::HOSTNAME, &[S2], &["other"])
            .build(),
    );
    let r = Round::new(ps, vec![pool()]);
    assert!(r.same_host("other/target", "listed"));
}

#[test]
fn an_empty_namespace_selector_matches_pods_in_every_namespace() {
    let mut ps = ten_spread_hosts();
    ps.push(pod("target").namespace("other").label(S2.0, S2.1).build());
    ps.push(
        pod("anywhere")
            .affinity_in_all_namespaces(labels::HOSTNAME, &[S2])
            .build(),
    );
    let r = Round::new(ps, vec![pool()]);
    assert!(r.same_host("other/target", "anywhere"));
}
