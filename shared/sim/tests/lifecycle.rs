//! The node lifecycle as the simulator plays it: the kubelet registers only what the user data
//! gives it, and the core's lifecycle (run by every provisioner pass) does the rest —
//! registration labels, initialization, the registration timeout, Nodes deleted with kubectl,
//! graceful termination within PodDisruptionBudgets.

use nodewright_core::labels;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_sim::{Event, Report, Scenario, Simulation, simulate};

const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

/// A scenario over the getting-started pool (on-demand c/m/r), with `body` appended.
fn scenario(body: &str) -> Scenario {
    let yaml = format!("name: lifecycle\nobjects: [{{include: pool.yaml}}]\n{body}");
    Scenario::parse(&yaml, "test.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("scenario parses")
}

fn count(report: &Report, pick: impl Fn(&Event) -> bool) -> usize {
    report.timeline.iter().filter(|e| pick(&e.event)).count()
}

fn launches(report: &Report) -> usize {
    count(report, |e| matches!(e, Event::Launched { .. }))
}

#[test]
fn pods_requiring_labels_the_kubelet_cannot_set_get_one_node_and_nothing_more_is_launched() {
    let report = simulate(scenario(
        "end: 15m
workloads:
  - name: web
    replicas: 3
    requests: {cpu: 500m}
    nodeAffinity:
      - matchExpressions:
          - {key: karpenter.k8s.aws/instance-category, operator: In, values: [c, m]}
          - {key: karpenter.k8s.aws/instance-generation, operator: Gt, values: ['5']}
",
    ))
    .expect("runs");
    assert_eq!(launches(&report), 1, "{:#?}", report.timeline);
    let s = &report.summary;
    assert_eq!((s.pods_never_bound, s.pods_pending_at_end), (0, 0));
    assert_eq!(s.peak_nodes, 1);
    assert_eq!(count(&report, |e| matches!(e, Event::Registered { .. })), 1);
    assert_eq!(count(&report, |e| matches!(e, Event::Initialized { .. })), 1);
}

#[test]
fn the_registered_node_carries_the_labels_karpenter_sets_and_its_claim_is_initialized() {
    let mut sim = Simulation::new(scenario(
        "end: 5m\nworkloads: [{name: web, replicas: 2, requests: {cpu: 500m}}]\n",
    ));
    sim.run_until(3 * 60_000).expect("runs");
    let nodes = sim.cluster().nodes();
    assert_eq!(nodes.len(), 1);
    let node = &nodes[0];
    for key in [
        labels::INSTANCE_CATEGORY,
        labels::INSTANCE_FAMILY,
        labels::CAPACITY_TYPE,
        labels::NODEPOOL,
        labels::NODE_REGISTERED,
        labels::NODE_INITIALIZED,
    ] {
        assert!(node.labels.contains_key(key), "{key} missing: {:?}", node.labels);
    }
    let claims = sim.store().claims();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].state, ClaimState::Initialized);
    assert_eq!(claims[0].node_name.as_deref(), Some(node.name.as_str()));
}

#[test]
fn a_node_that_never_registers_is_terminated_after_the_timeout_and_its_pods_get_a_new_node() {
    let report = simulate(scenario(
        "end: 25m
workloads: [{name: web, requests: {cpu: '1'}}]
steps:
  - at: 0s
    failRegistration: [{}]
    scale: {web: 2}
  - at: 5m
    restoreRegistration: [{}]
",
    ))
    .expect("runs");
    let timeouts: Vec<_> = report
        .timeline
        .iter()
        .filter(|e| matches!(e.event, Event::RegistrationTimeout { .. }))
        .collect();
    assert_eq!(timeouts.len(), 1, "{:#?}", report.timeline);
    // Launched at 0s; given up after 15 minutes, at the next pass.
    assert!(
        (15 * 60_000..=16 * 60_000 + 1_000).contains(&timeouts[0].at_ms),
        "{}",
        timeouts[0].at
    );
    assert_eq!(launches(&report), 2);
    let s = &report.summary;
    assert_eq!((s.pods_never_bound, s.pods_pending_at_end), (0, 0));
    assert_eq!(s.nodes_at_end, 1);
    // The instance that never joined is billed only until it was terminated.
    assert!(s.node_hours < 0.3 + 10.0 / 60.0, "{s:?}");
}

#[test]
fn kubectl_delete_node_drains_the_node_terminates_its_instance_and_moves_its_pods() {
    let report = simulate(scenario(
        "end: 10m
workloads: [{name: web, replicas: 3, requests: {cpu: '1'}}]
steps:
  - at: 3m
    deleteNode: {count: 1}
",
    ))
    .expect("runs");
    let kinds = |pick: fn(&Event) -> bool| count(&report, pick);
    assert_eq!(kinds(|e| matches!(e, Event::DeleteRequested { .. })), 1);
    assert_eq!(kinds(|e| matches!(e, Event::Terminating { .. })), 1);
    assert_eq!(
        kinds(|e| matches!(e, Event::Evicted { .. })),
        3,
        "{:#?}",
        report.timeline
    );
    assert_eq!(kinds(|e| matches!(e, Event::Terminated { .. })), 1);
    assert_eq!(kinds(|e| matches!(e, Event::NodeDeleted { .. })), 1);
    let s = &report.summary;
    assert_eq!(s.pods_evicted, 3);
    assert_eq!(s.pdb_violations, 0);
    assert_eq!((s.pods_pending_at_end, s.nodes_at_end), (0, 1));
    assert_eq!(s.instances_launched, 2);
}

#[test]
fn a_pod_disruption_budget_slows_the_drain_and_is_never_broken() {
    let yaml = "name: pdb
objects:
  - include: pool.yaml
  - apiVersion: policy/v1
    kind: PodDisruptionBudget
    metadata: {name: web}
    spec:
      maxUnavailable: 1
      selector: {matchLabels: {app: web}}
end: 15m
workloads: [{name: web, replicas: 4, requests: {cpu: '1'}}]
steps:
  - at: 3m
    deleteNode: {count: 1}
";
    let scenario =
        Scenario::parse(yaml, "pdb.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("scenario parses");
    let report = simulate(scenario).expect("runs");
    let s = &report.summary;
    assert_eq!(s.pdb_violations, 0);
    // The deleted node held three of the four replicas; one leaves at a time, each further
    // eviction waiting until the last evicted pod runs again.
    assert_eq!(s.pods_evicted, 3, "{:#?}", report.timeline);
    assert!(
        count(
            &report,
            |e| matches!(e, Event::EvictionBlocked { by, .. } if by == "PodDisruptionBudget")
        ) >= 2,
        "{:#?}",
        report.timeline
    );
    assert_eq!(count(&report, |e| matches!(e, Event::Terminated { .. })), 1);
    // Capacity for all three was launched when the drain began, in one node.
    assert_eq!(s.instances_launched, 3, "{:#?}", report.timeline);
    assert_eq!((s.pods_pending_at_end, s.nodes_at_end), (0, 2));
}

#[test]
fn a_do_not_disrupt_pod_holds_the_drain_until_the_pools_grace_period_ends() {
    let pool = GETTING_STARTED.replace(
        "    spec:\n      requirements:",
        "    spec:\n      terminationGracePeriod: 5m\n      requirements:",
    );
    assert_ne!(pool, GETTING_STARTED, "the pool manifest changed shape");
    let yaml = "name: grace
objects: [{include: pool.yaml}]
end: 15m
workloads: [{name: web, replicas: 1, requests: {cpu: '1'}, annotations: {karpenter.sh/do-not-disrupt: 'true'}}]
steps:
  - at: 3m
    deleteNode: {count: 1}
";
    let scenario = Scenario::parse(yaml, "grace.yaml", &|_| Ok(pool.clone())).expect("scenario parses");
    let report = simulate(scenario).expect("runs");
    let terminated: Vec<_> = report
        .timeline
        .iter()
        .filter(|e| matches!(e.event, Event::Terminated { .. }))
        .collect();
    assert_eq!(terminated.len(), 1, "{:#?}", report.timeline);
    // Deleted at 3m; the pod never moves on its own, so the node goes at 3m + 5m.
    assert!(terminated[0].at_ms >= 8 * 60_000, "{}", terminated[0].at);
    assert!(
        count(
            &report,
            |e| matches!(e, Event::EvictionBlocked { by, .. } if by.contains("do-not-disrupt"))
        ) >= 1
    );
    assert_eq!(report.summary.pods_evicted, 0);
}

#[test]
fn a_changed_nodepool_makes_its_nodes_drift_and_they_are_replaced_one_at_a_time() {
    let changed = GETTING_STARTED.replacen(
        "  template:\n    spec:",
        "  template:\n    metadata:\n      labels: {team: payments}\n    spec:",
        1,
    );
    assert_ne!(changed, GETTING_STARTED, "the pool manifest changed shape");
    let pool_only = changed
        .split("\n---")
        .next()
        .expect("the NodePool document")
        .to_string();
    let yaml = format!(
        "name: drift
objects: [{{include: pool.yaml}}]
end: 20m
workloads:
  - name: web
    replicas: 4
    requests: {{cpu: '1'}}
    podAntiAffinity: [{{topologyKey: kubernetes.io/hostname}}]
    podDisruptionBudget: {{maxUnavailable: 1}}
steps:
  - at: 3m
    apply:
{}
",
        pool_only
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .enumerate()
            .map(|(i, l)| if i == 0 {
                format!("      - {l}")
            } else {
                format!("        {l}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    );
    let scenario =
        Scenario::parse(&yaml, "drift.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses");
    let report = simulate(scenario).expect("runs");
    let drifted: Vec<_> = report
        .timeline
        .iter()
        .filter(|e| matches!(&e.event, Event::Disrupting { reason, .. } if reason == "drifted"))
        .collect();
    assert_eq!(drifted.len(), 4, "{:#?}", report.timeline);
    // One at a time: the budget (10% of 4, rounded up) allows one node disrupting at once.
    assert!(drifted.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
    let s = &report.summary;
    assert_eq!(s.pdb_violations, 0);
    assert_eq!(s.disruptions.get("drifted"), Some(&4));
    assert_eq!((s.pods_pending_at_end, s.nodes_at_end), (0, 4));
}

#[test]
fn pods_of_an_interrupted_spot_node_run_again_within_two_minutes_of_the_warning() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/spot-interruption.yaml");
    let report = simulate(Scenario::from_file(&path).expect("parses")).expect("runs");
    let warning = report
        .timeline
        .iter()
        .find(|e| matches!(&e.event, Event::Interrupted { interruption, .. } if interruption == "spot"))
        .expect("a warning")
        .at_ms;
    let reclaimed = report
        .timeline
        .iter()
        .find(|e| matches!(&e.event, Event::Interrupted { interruption, .. } if interruption == "reclaimed"))
        .expect("the instance taken")
        .at_ms;
    assert_eq!(reclaimed - warning, 120_000);
    // Every pod bound after the warning was bound within 120 s of it, and none waits at the end.
    let last_bind = report
        .timeline
        .iter()
        .filter(|e| e.at_ms >= warning && matches!(e.event, Event::PodsBound { .. }))
        .map(|e| e.at_ms)
        .max()
        .expect("pods bound again");
    assert!(
        last_bind - warning <= 120_000,
        "last bound {}s after the warning",
        (last_bind - warning) / 1000
    );
    let s = &report.summary;
    assert_eq!((s.pods_never_bound, s.pods_pending_at_end), (0, 0));
    assert_eq!(s.pdb_violations, 0);
    assert!(s.pods_disrupted_seconds > 0.0);
    assert!(
        report
            .timeline
            .iter()
            .any(|e| matches!(&e.event, Event::Terminated { reason, .. } if reason == "interrupted"))
    );
}
