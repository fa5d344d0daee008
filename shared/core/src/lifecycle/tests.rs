use std::collections::BTreeSet;

use super::*;
use crate::builders::{kubelet_node, launched_claim, nodepool, pod, pool_input};
use crate::lifecycle::termination::PodName;
use crate::pod::{Taint, TaintEffect};
use crate::requirements::Operator;
use crate::scheduler::{self, Input};

const MINUTE: Millis = 60_000;
const T0: Millis = 1_700_000_000_000;

fn pools() -> Vec<PoolInput> {
    vec![pool_input(
        nodepool("default")
            .on_demand_only()
            .startup_taint("agent.example.com/not-ready", TaintEffect::NoExecute)
            .build(),
    )]
}

fn decide_at(
    claims: &[NodeClaim],
    nodes: &[ExistingNode],
    alive: &[&str],
    pools: &[PoolInput],
    now: Millis,
) -> Vec<LifecycleAction> {
    let alive: BTreeSet<String> = alive.iter().map(|s| s.to_string()).collect();
    let observed = Observed {
        claims,
        nodes,
        alive_instances: &alive,
        pools,
        now,
    };
    decide(&observed, &LifecyclePolicy::default())
}

fn existing(node: Node, pods: Vec<crate::pod::Pod>) -> ExistingNode {
    ExistingNode { node, pods }
}

#[test]
fn a_joined_node_gets_every_label_its_kubelet_could_not_set_and_the_finalizer() {
    let claim = launched_claim("default-a", T0);
    let node = kubelet_node(&claim, "ip-10-0-1-4", T0 + MINUTE);
    assert!(!node.labels.contains_key(labels::INSTANCE_CATEGORY));
    let actions = decide_at(
        std::slice::from_ref(&claim),
        &[existing(node, vec![])],
        &["i-default-a"],
        &pools(),
        T0 + MINUTE,
    );
    let [
        LifecycleAction::Register {
            patch, initialized, ..
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:#?}");
    };
    assert!(patch.finalizer);
    assert!(*initialized, "Ready without startup taints");
    for (key, value) in [
        (labels::INSTANCE_CATEGORY, "m"),
        (labels::INSTANCE_GENERATION, "5"),
        (labels::CAPACITY_TYPE, "on-demand"),
        (labels::NODEPOOL, "default"),
        (labels::ZONE, "us-east-1a"),
        (labels::NODE_REGISTERED, "true"),
        (CLAIM_LABEL, "default-a"),
    ] {
        assert_eq!(patch.labels.get(key).map(String::as_str), Some(value), "{key}");
    }
}

#[test]
fn a_node_with_its_startup_taint_is_registered_but_initialized_only_once_the_taint_is_gone() {
    let mut claim = launched_claim("default-a", T0);
    claim.startup_taints = vec![Taint::new(
        "agent.example.com/not-ready",
        None,
        TaintEffect::NoExecute,
    )];
    let node = kubelet_node(&claim, "n", T0 + MINUTE);
    let actions = decide_at(
        std::slice::from_ref(&claim),
        &[existing(node.clone(), vec![])],
        &["i-default-a"],
        &pools(),
        T0 + MINUTE,
    );
    let Some(LifecycleAction::Register {
        initialized, patch, ..
    }) = actions.first()
    else {
        panic!("{actions:#?}");
    };
    assert!(!initialized);

    // Registered, labelled; the agent lifts its taint.
    claim.state = ClaimState::Registered;
    let mut node = node;
    node.labels.extend(patch.labels.clone());
    let tainted = decide_at(
        std::slice::from_ref(&claim),
        &[existing(node.clone(), vec![])],
        &["i-default-a"],
        &pools(),
        T0 + 2 * MINUTE,
    );
    assert!(tainted.is_empty(), "{tainted:#?}");
    node.taints.clear();
    let ready = decide_at(
        std::slice::from_ref(&claim),
        &[existing(node, vec![])],
        &["i-default-a"],
        &pools(),
        T0 + 2 * MINUTE,
    );
    assert!(
        matches!(ready.as_slice(), [LifecycleAction::Initialize { .. }]),
        "{ready:#?}"
    );
}

#[test]
fn a_claim_whose_node_never_joins_times_out_after_fifteen_minutes_and_not_before() {
    let claim = launched_claim("default-a", T0);
    let claims = std::slice::from_ref(&claim);
    assert!(decide_at(claims, &[], &["i-default-a"], &pools(), T0 + 15 * MINUTE).is_empty());
    let late = decide_at(claims, &[], &["i-default-a"], &pools(), T0 + 15 * MINUTE + 1);
    assert!(
        matches!(late.as_slice(), [LifecycleAction::RegistrationTimeout { .. }]),
        "{late:#?}"
    );
}

#[test]
fn a_deleted_node_is_tainted_and_drained_of_everything_but_daemons_and_do_not_disrupt_pods() {
    let mut claim = launched_claim("default-a", T0);
    claim.state = ClaimState::Initialized;
    let mut node = kubelet_node(&claim, "n", T0);
    node.deleting = true;
    let pods = vec![
        pod("web-1").on_node("n").build(),
        pod("agent").on_node("n").daemonset().build(),
        {
            let mut p = pod("batch").on_node("n").build();
            p.do_not_disrupt = true;
            p
        },
        pod("stays")
            .on_node("n")
            .tolerate(labels::DISRUPTED_TAINT, None, Some(TaintEffect::NoSchedule))
            .build(),
    ];
    let actions = decide_at(
        std::slice::from_ref(&claim),
        &[existing(node, pods)],
        &["i-default-a"],
        &pools(),
        T0 + MINUTE,
    );
    let [LifecycleAction::Drain { claim, begin, step }] = actions.as_slice() else {
        panic!("{actions:#?}");
    };
    assert!(begin);
    assert_eq!(claim.state, ClaimState::Terminating);
    assert_eq!(claim.reason.as_deref(), Some(NODE_DELETED));
    assert!(step.taint && !step.finish);
    assert_eq!(
        step.evict,
        vec![PodName {
            namespace: "default".into(),
            name: "web-1".into()
        }]
    );
    assert_eq!(step.waiting.len(), 1);
    assert_eq!(step.waiting[0].pod, "default/batch");
}

#[test]
fn draining_finishes_when_the_pods_are_gone_or_the_pools_grace_period_has_passed() {
    let pool = pool_input({
        let mut p = nodepool("default").build();
        p.spec.template.spec.termination_grace_period = Some("10m".into());
        p
    });
    let pools = vec![pool];
    let claim = launched_claim("default-a", T0);
    let claim = start_termination(&claim, "test", termination_grace(&pools[0].nodepool), T0);
    assert_eq!(
        claim.termination.as_ref().and_then(|t| t.deadline),
        Some(T0 + 10 * MINUTE)
    );
    let mut node = kubelet_node(&claim, "n", T0);
    node.unschedulable = true;
    node.taints.push(termination::disrupted_taint());
    let mut blocked = pod("batch").on_node("n").build();
    blocked.do_not_disrupt = true;
    let nodes = [existing(node.clone(), vec![blocked])];
    let claims = std::slice::from_ref(&claim);
    let waiting = decide_at(claims, &nodes, &["i-default-a"], &pools, T0 + 9 * MINUTE);
    let [LifecycleAction::Drain { step, .. }] = waiting.as_slice() else {
        panic!("{waiting:#?}");
    };
    assert!(!step.taint && !step.finish && step.evict.is_empty());

    let late = decide_at(claims, &nodes, &["i-default-a"], &pools, T0 + 10 * MINUTE);
    let [LifecycleAction::Drain { step, .. }] = late.as_slice() else {
        panic!("{late:#?}");
    };
    assert!(step.finish);

    let drained = decide_at(
        claims,
        &[existing(node, vec![])],
        &["i-default-a"],
        &pools,
        T0 + MINUTE,
    );
    let [LifecycleAction::Drain { step, .. }] = drained.as_slice() else {
        panic!("{drained:#?}");
    };
    assert!(step.finish);
}

#[test]
fn a_node_of_ours_whose_instance_is_gone_is_deleted_and_a_node_of_another_provisioner_is_not() {
    let claim = launched_claim("default-a", T0);
    let mut ours = kubelet_node(&claim, "ours", T0);
    ours.labels.insert(CLAIM_LABEL.into(), "default-a".into());
    let mut theirs = kubelet_node(&launched_claim("other", T0), "theirs", T0);
    theirs.labels.insert(labels::NODEPOOL.into(), "default".into());
    let actions = decide_at(
        &[],
        &[existing(ours, vec![]), existing(theirs, vec![])],
        &[],
        &pools(),
        T0 + 10 * MINUTE,
    );
    assert_eq!(
        actions,
        vec![LifecycleAction::DeleteNode {
            node: "ours".into(),
            reason: "instance gone".into()
        }]
    );
}

#[test]
fn pods_that_need_instance_type_labels_plan_onto_a_joined_node_before_its_labels_are_patched() {
    let pools = vec![pool_input(nodepool("default").on_demand_only().build())];
    let mut claim = launched_claim("default-a", T0);
    claim.pods = vec!["default/web".into()];
    let mut node = kubelet_node(&claim, "n", T0 + MINUTE);
    // Not ready yet: the kubelet's not-ready taint is still on.
    node.ready = false;
    node.taints.push(Taint::new(
        "node.kubernetes.io/not-ready",
        None,
        TaintEffect::NoSchedule,
    ));
    let web = pod("web")
        .cpu("500m")
        .require(labels::INSTANCE_CATEGORY, Operator::In, &["c", "m"])
        .require(labels::INSTANCE_GENERATION, Operator::Gt, &["4"])
        .build();
    let mut nodes = vec![existing(node, vec![])];
    planning_view(&mut nodes, std::slice::from_ref(&claim), &pools);
    let input = Input {
        pending: vec![web],
        nodes,
        pools,
        now: T0 + MINUTE,
        ..Input::default()
    };
    let plan = scheduler::schedule(&input);
    assert!(plan.new_claims.is_empty(), "{:#?}", plan.new_claims);
    assert_eq!(plan.existing.len(), 1, "{plan:#?}");
}

#[test]
fn a_pod_already_being_deleted_is_not_evicted_again_and_holds_the_drain_until_it_is_gone() {
    let claim = start_termination(&launched_claim("default-a", T0), "test", None, T0);
    let mut node = kubelet_node(&claim, "n", T0);
    node.unschedulable = true;
    node.taints.push(termination::disrupted_taint());
    let mut going = pod("web-0").on_node("n").build();
    going.deleting = true;
    let nodes = [existing(node, vec![going, pod("web-1").on_node("n").build()])];
    let actions = decide_at(
        std::slice::from_ref(&claim),
        &nodes,
        &["i-default-a"],
        &pools(),
        T0 + MINUTE,
    );
    let [LifecycleAction::Drain { step, .. }] = actions.as_slice() else {
        panic!("{actions:#?}");
    };
    assert_eq!(
        step.evict,
        vec![PodName {
            namespace: "default".into(),
            name: "web-1".into()
        }]
    );
    assert!(!step.finish, "web-0 still runs");
}
