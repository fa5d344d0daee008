use super::*;
use crate::api::Budget;
use crate::builders::{kubelet_node, launched_claim, nodepool, pod, pool_input};
use crate::lifecycle::{instance_type_of, registration_labels};
use crate::nodeclaim::ClaimState;
use crate::pdb::{Budget as PdbBudget, IntOrPercent};
use crate::pod::LabelSelector;

const MINUTE: Millis = 60_000;
const T0: Millis = 1_700_000_000_000;
/// Long after every node's start: consolidateAfter (1m by default here) has passed.
const NOW: Millis = T0 + 30 * MINUTE;

fn default_pool() -> PoolInput {
    let mut p = nodepool("default").on_demand_only().build();
    p.spec.disruption.consolidate_after = "1m".into();
    pool_input(p)
}

/// A world of `nodes` initialized m5.large nodes of the default pool; `pods[i]` are the CPU
/// requests of the (ReplicaSet-owned) pods on node i.
struct World {
    input: SweepInput,
}

fn world(pods: &[&[&str]]) -> World {
    world_with(default_pool(), pods)
}

fn world_with(pool: PoolInput, pods: &[&[&str]]) -> World {
    let mut input = SweepInput {
        now: NOW,
        pools: vec![pool],
        ..SweepInput::default()
    };
    for (i, cpus) in pods.iter().enumerate() {
        let mut claim = launched_claim(&format!("default-{i}"), T0);
        claim.state = ClaimState::Initialized;
        claim.initialized_at = Some(T0 + MINUTE);
        claim.disruption.template_hash = Some(crate::api::template_hash(
            &input.pools[0].nodepool,
            &input.pools[0].nodeclass,
        ));
        let name = format!("node-{i}");
        let mut node = kubelet_node(&claim, &name, T0 + MINUTE);
        node.labels.extend(registration_labels(
            &claim,
            instance_type_of(&claim, &input.pools),
        ));
        let node_pods = cpus
            .iter()
            .enumerate()
            .map(|(j, cpu)| {
                owned(
                    pod(&format!("web-{i}-{j}"))
                        .cpu(cpu)
                        .label("app", "web")
                        .on_node(&name)
                        .build(),
                )
            })
            .collect();
        input.nodes.push(ExistingNode {
            node,
            pods: node_pods,
        });
        input.claims.push(claim);
    }
    World { input }
}

fn owned(mut p: Pod) -> Pod {
    p.owner_kind = Some("ReplicaSet".into());
    p.owner_name = Some("web-rs".into());
    p
}

fn reasons(plan: &SweepPlan) -> Vec<(Reason, Vec<String>)> {
    plan.decisions.iter().map(|d| (d.reason, d.nodes())).collect()
}

#[test]
fn an_empty_node_goes_once_its_pods_have_been_gone_for_consolidate_after() {
    let mut w = world(&[&[], &["500m"]]);
    let plan = plan_sweep(&w.input);
    assert_eq!(reasons(&plan)[0], (Reason::Empty, vec!["node-0".to_string()]));

    // Its last pod left a moment ago: not yet.
    w.input.claims[0].disruption.pods_hash = Some(12345);
    let plan = plan_sweep(&w.input);
    assert!(
        plan.decisions.iter().all(|d| d.reason != Reason::Empty),
        "{:?}",
        reasons(&plan)
    );
    assert_eq!(plan.pod_events.len(), 2, "both nodes' pods recorded");
}

#[test]
fn a_pool_that_never_consolidates_keeps_its_empty_nodes() {
    let mut pool = default_pool();
    pool.nodepool.spec.disruption.consolidate_after = "Never".into();
    let w = world_with(pool, &[&[], &[]]);
    assert!(plan_sweep(&w.input).decisions.is_empty());
}

#[test]
fn an_underused_node_whose_pods_fit_on_another_is_deleted() {
    let w = world(&[&["250m"], &["500m"], &["1", "500m"]]);
    let plan = plan_sweep(&w.input);
    let decision = plan
        .decisions
        .iter()
        .find(|d| d.reason == Reason::Underutilized)
        .expect("a consolidation");
    assert!(decision.replacements.is_empty(), "{decision:?}");
    assert!(decision.savings_per_hour > 0.0);
    // Whatever goes, the pods it held fit on what stays.
    assert!(!decision.nodes().contains(&"node-2".to_string()) || decision.nodes().len() < 3);
}

#[test]
fn a_pool_that_consolidates_only_when_empty_keeps_an_underused_node() {
    let mut pool = default_pool();
    pool.nodepool.spec.disruption.consolidation_policy = crate::api::ConsolidationPolicy::WhenEmpty;
    let w = world_with(pool, &[&["250m"], &["500m"]]);
    assert!(plan_sweep(&w.input).decisions.is_empty());
}

#[test]
fn a_lone_underused_node_is_replaced_by_a_cheaper_one() {
    let w = world(&[&["250m"]]);
    let plan = plan_sweep(&w.input);
    let [decision] = plan.decisions.as_slice() else {
        panic!("{:?}", reasons(&plan));
    };
    assert_eq!(decision.reason, Reason::Underutilized);
    let [replacement] = decision.replacements.as_slice() else {
        panic!("{decision:?}");
    };
    assert!(replacement.chosen.price < 0.096, "{replacement:?}");
    assert!((decision.savings_per_hour - (0.096 - replacement.chosen.price)).abs() < 1e-9);
    // Whichever type EC2 picks is cheaper than the node it replaces.
    let pool = &w.input.pools[0];
    for name in &replacement.instance_types {
        let t = pool
            .instance_types
            .iter()
            .find(|t| &t.name == name)
            .expect("type");
        let cheapest = t
            .offerings
            .iter()
            .filter(|o| o.capacity_type == replacement.chosen.capacity_type)
            .map(|o| o.price)
            .fold(f64::INFINITY, f64::min);
        assert!(cheapest < 0.096, "{name} at {cheapest}");
    }
    // The launch sends those types and no other.
    let overrides = replacement.launch_overrides();
    let sent: std::collections::BTreeSet<&str> = overrides.iter().map(|o| o.instance_type.as_str()).collect();
    let kept: std::collections::BTreeSet<&str> =
        replacement.instance_types.iter().map(String::as_str).collect();
    assert_eq!(sent, kept);
    // Each at its own catalog price: the overrides kept point at the types kept.
    assert_eq!(overrides.len(), replacement.overrides.len());
    for o in &overrides {
        let offered = pool
            .instance_types
            .iter()
            .find(|t| t.name == o.instance_type)
            .and_then(|t| {
                t.offerings
                    .iter()
                    .find(|f| f.zone == o.zone && f.capacity_type == o.capacity_type)
            })
            .expect("an offering of the catalog");
        assert_eq!(offered.price, o.price, "{o:?}");
    }
}

#[test]
fn do_not_disrupt_on_a_pod_or_on_the_node_keeps_the_node() {
    let mut w = world(&[&["250m"], &["500m"]]);
    w.input.nodes[0].pods[0].do_not_disrupt = true;
    w.input.nodes[1].node.do_not_disrupt = true;
    let plan = plan_sweep(&w.input);
    assert!(plan.decisions.is_empty(), "{:?}", reasons(&plan));
    let blocked: Vec<_> = candidates(&w.input)
        .into_iter()
        .filter_map(|c| c.blocked_by)
        .collect();
    assert_eq!(blocked.len(), 2, "{blocked:?}");
}

#[test]
fn a_pod_without_a_controller_is_not_disrupted_voluntarily() {
    let mut w = world(&[&["250m"], &["500m"]]);
    w.input.nodes[0].pods[0].owner_kind = None;
    let plan = plan_sweep(&w.input);
    assert!(
        plan.decisions
            .iter()
            .all(|d| !d.nodes().contains(&"node-0".to_string())),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn a_pod_disruption_budget_that_allows_no_disruption_protects_its_pods_nodes() {
    let mut w = world(&[&["250m"], &["500m"]]);
    w.input.pdbs.push(crate::pdb::PodDisruptionBudget {
        namespace: "default".into(),
        name: "web".into(),
        selector: Some(LabelSelector::match_labels(&[("app", "web")])),
        budget: PdbBudget::MinAvailable(IntOrPercent::Int(2)),
    });
    assert!(plan_sweep(&w.input).decisions.is_empty());
    // One more replica elsewhere makes one disruption allowed.
    w.input.nodes[1].pods.push(owned(
        pod("web-extra")
            .cpu("100m")
            .label("app", "web")
            .on_node("node-1")
            .build(),
    ));
    assert!(!plan_sweep(&w.input).decisions.is_empty());
}

#[test]
fn the_nodepool_budget_limits_how_many_empty_nodes_go_at_once() {
    let mut pool = default_pool();
    pool.nodepool.spec.disruption.budgets = vec![Budget::nodes("2")];
    let w = world_with(pool, &[&[], &[], &[], &[], &["500m"]]);
    let plan = plan_sweep(&w.input);
    let empty = plan
        .decisions
        .iter()
        .find(|d| d.reason == Reason::Empty)
        .expect("emptiness");
    assert_eq!(empty.candidates.len(), 2);
    assert_eq!(
        plan.decisions.len(),
        1,
        "the budget is spent: {:?}",
        reasons(&plan)
    );

    // Nodes already disrupting count against it.
    let mut w = w;
    w.input.claims[4].state = ClaimState::Terminating;
    let plan = plan_sweep(&w.input);
    assert_eq!(plan.decisions[0].candidates.len(), 1);
}

#[test]
fn a_node_of_a_changed_template_has_drifted_and_is_replaced_within_the_budget() {
    let mut w = world(&[&["1"], &["1"]]);
    w.input.pools[0]
        .nodepool
        .spec
        .template
        .metadata
        .labels
        .insert("team".into(), "payments".into());
    let plan = plan_sweep(&w.input);
    let drifted: Vec<_> = plan
        .decisions
        .iter()
        .filter(|d| d.reason == Reason::Drifted)
        .collect();
    assert_eq!(drifted.len(), 1, "one per sweep: {:?}", reasons(&plan));
    assert_eq!(drifted[0].candidates.len(), 1);
}

#[test]
fn a_node_that_no_longer_satisfies_its_pools_requirements_has_drifted() {
    let w = world(&[&["1"]]);
    let mut pool = w.input.pools[0].clone();
    pool.nodepool
        .spec
        .template
        .spec
        .requirements
        .push(crate::requirements::NodeSelectorRequirement {
            key: crate::labels::INSTANCE_FAMILY.into(),
            operator: crate::requirements::Operator::In,
            values: vec!["c7i".into()],
            min_values: None,
        });
    let why = drift::drifted(
        &w.input.claims[0],
        &w.input.nodes[0].node,
        &pool,
        &Default::default(),
    )
    .expect("drifted");
    assert!(why.contains("requirements"), "{why}");
    assert_eq!(
        drift::drifted(
            &w.input.claims[0],
            &w.input.nodes[0].node,
            &w.input.pools[0],
            &Default::default()
        ),
        None
    );
}

#[test]
fn a_node_whose_ami_its_node_class_no_longer_selects_has_drifted() {
    let mut w = world(&[&["1"], &["1"]]);
    for c in &mut w.input.claims {
        c.disruption.image_id = Some("ami-al2023-amd64-r1".into());
    }
    let class = w.input.pools[0].nodeclass.name().to_string();
    // The selector still resolves to the image the nodes run: nothing drifts.
    w.input.images.insert(
        class.clone(),
        [
            "ami-al2023-amd64-r1".to_string(),
            "ami-al2023-arm64-r1".to_string(),
        ]
        .into(),
    );
    assert!(
        reasons(&plan_sweep(&w.input))
            .iter()
            .all(|(r, _)| *r != Reason::Drifted)
    );
    // A new release: the nodes drift, one per sweep within the budget.
    w.input.images.insert(
        class,
        [
            "ami-al2023-amd64-r2".to_string(),
            "ami-al2023-arm64-r2".to_string(),
        ]
        .into(),
    );
    let why = drift::drifted(
        &w.input.claims[0],
        &w.input.nodes[0].node,
        &w.input.pools[0],
        &w.input.images[w.input.pools[0].nodeclass.name()],
    )
    .expect("drifted");
    assert!(why.contains("ami-al2023-amd64-r1"), "{why}");
    let plan = plan_sweep(&w.input);
    let drifted: Vec<_> = plan
        .decisions
        .iter()
        .filter(|d| d.reason == Reason::Drifted)
        .collect();
    assert_eq!(drifted.len(), 1, "{:?}", reasons(&plan));
}

#[test]
fn a_node_whose_ami_is_not_known_never_drifts_by_its_ami() {
    let mut w = world(&[&["1"]]);
    let class = w.input.pools[0].nodeclass.name().to_string();
    w.input.images.insert(class, ["ami-new".to_string()].into());
    assert!(
        reasons(&plan_sweep(&w.input))
            .iter()
            .all(|(r, _)| *r != Reason::Drifted)
    );
}

#[test]
fn among_equal_nodes_the_one_whose_pods_cost_least_to_delete_goes_first() {
    let mut w = world(&[&["1"], &["1"], &["1"]]);
    // node-0's pod is expensive to delete, node-2's is cheap.
    w.input.nodes[0].pods[0].deletion_cost = 1_000_000_000;
    w.input.nodes[2].pods[0].deletion_cost = -1_000_000_000;
    let order: Vec<String> = super::candidates::candidates(&w.input)
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(order.first().map(String::as_str), Some("node-2"), "{order:?}");
    assert_eq!(order.last().map(String::as_str), Some("node-0"), "{order:?}");
}

#[test]
fn a_node_past_expire_after_is_expired_whatever_the_budget() {
    let mut pool = default_pool();
    pool.nodepool.spec.template.spec.expire_after = Some("10m".into());
    pool.nodepool.spec.disruption.budgets = vec![Budget::nodes("0")];
    let mut w = world_with(pool, &[&["1"], &["1"]]);
    w.input.nodes[0].pods[0].do_not_disrupt = true;
    let plan = plan_sweep(&w.input);
    assert_eq!(
        reasons(&plan),
        vec![(Reason::Expired, vec!["node-0".to_string(), "node-1".to_string()])]
    );
}

#[test]
fn several_underused_nodes_consolidate_in_one_decision_when_the_budget_allows() {
    // The default budget (10% of 4 nodes: 1) allows one at a time.
    let w = world(&[&["300m"], &["300m"], &["300m"], &["300m"]]);
    let plan = plan_sweep(&w.input);
    assert!(
        plan.decisions.iter().all(|d| d.candidates.len() == 1),
        "{:?}",
        reasons(&plan)
    );

    let mut pool = default_pool();
    pool.nodepool.spec.disruption.budgets = vec![Budget::nodes("100%")];
    let w = world_with(pool, &[&["300m"], &["300m"], &["300m"], &["300m"]]);
    let plan = plan_sweep(&w.input);
    let decision = plan
        .decisions
        .iter()
        .find(|d| d.reason == Reason::Underutilized)
        .expect("a consolidation");
    assert!(decision.candidates.len() >= 2, "{:?}", reasons(&plan));
    let before: f64 = 4.0 * 0.096;
    let replaced: f64 = decision.replacements.iter().map(|r| r.chosen.price).sum();
    let after = before - decision.candidates.len() as f64 * 0.096 + replaced;
    assert!(after < before);
}
