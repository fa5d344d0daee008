//! Disruption sweeps as the simulator plays them.

use nodewright_core::builders::pool_input;
use nodewright_core::scheduler::{Input, schedule};
use nodewright_sim::{Event, PodStatus, Scenario, Simulation};

const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

#[test]
fn a_shrunk_workload_ends_on_nodes_within_thirty_percent_of_the_lower_bound_for_what_is_left() {
    let yaml = "name: shrink
objects: [{include: pool.yaml}]
workloads:
  - {name: web, requests: {cpu: 500m, memory: 512Mi}}
  - {name: api, requests: {cpu: '1', memory: 2Gi}}
  - {name: cache, requests: {cpu: 250m, memory: 2Gi}}
steps:
  - {at: 0s, scale: {web: 4, api: 4, cache: 2}}
  - {at: 2m, scale: {web: 8, api: 8, cache: 4}}
  - {at: 4m, scale: {web: 12, api: 12, cache: 6}}
  - {at: 6m, scale: {web: 16, api: 16, cache: 8}}
  - {at: 8m, scale: {web: 20, api: 20, cache: 10}}
  - {at: 12m, scale: {web: 5, api: 5, cache: 2}}
end: 30m
";
    let scenario =
        Scenario::parse(yaml, "shrink.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses");
    let pool = scenario.nodepools[0].clone();
    let mut sim = Simulation::new(scenario);
    sim.run_until(11 * 60_000).expect("runs");
    assert!(
        sim.cluster().node_count() >= 5,
        "the growth spread over several nodes"
    );
    let report = sim.run().expect("runs");
    assert!(
        report
            .timeline
            .iter()
            .any(|e| matches!(&e.event, Event::Disrupting { reason, .. } if reason == "underutilized"))
    );
    // The lower bound for the 12 pods left, from the scheduler's own LP bound over the pool.
    let left: Vec<_> = {
        let mut sim = Simulation::new(
            Scenario::parse(yaml, "shrink.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses"),
        );
        sim.run_until(30 * 60_000).expect("runs");
        sim.cluster()
            .pods()
            .into_iter()
            .filter(|(p, s)| *s == PodStatus::Bound && !p.is_daemon())
            .map(|(mut p, _)| {
                p.node_name = None;
                p
            })
            .collect()
    };
    assert_eq!(left.len(), 12);
    let fresh = schedule(&Input {
        pending: left,
        pools: vec![pool_input(pool)],
        ..Input::default()
    });
    let bound = fresh.lower_bound_per_hour;
    let cost = report.summary.cost_per_hour_at_end;
    // Measured: $0.3953/h, 1.267× the LP bound ($0.3121/h) and 1.035× what the scheduler
    // plans for the same pods from scratch ($0.3821/h): consolidation gets close to the
    // scheduler, and the rest of the gap is the scheduler's own packing. The target is 1.15×;
    // this guards against regressions until it is met.
    assert!(
        cost <= 1.30 * bound,
        "${cost}/h against a lower bound of ${bound}/h ({:.3}×), a fresh plan ${}/h",
        cost / bound,
        fresh.cost_per_hour
    );
}

#[test]
fn a_new_eks_ami_release_drifts_every_node_and_replaces_them_one_at_a_time() {
    let yaml = "name: ami-release
objects: [{include: pool.yaml}]
workloads:
  - name: web
    replicas: 3
    requests: {cpu: '1'}
    podAntiAffinity: [{topologyKey: kubernetes.io/hostname}]
steps:
  - {at: 5m, releaseAmi: true}
end: 45m
";
    let scenario = Scenario::parse(yaml, "ami.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses");
    let mut sim = Simulation::new(scenario);
    sim.run_until(5 * 60_000 - 1).expect("runs");
    let before: Vec<Option<String>> = sim
        .store()
        .claims()
        .into_iter()
        .filter(|c| c.state == nodewright_core::nodeclaim::ClaimState::Initialized)
        .map(|c| c.disruption.image_id)
        .collect();
    assert_eq!(before.len(), 3);
    assert!(
        before.iter().all(|i| i.as_deref() == Some("ami-al2023-amd64-r1")),
        "{before:?}"
    );
    sim.run_until(45 * 60_000).expect("runs");
    let report = sim.report();
    let drifts: Vec<_> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.event {
            Event::Disrupting { reason, nodes, .. } if reason == "drifted" => Some(nodes.len()),
            _ => None,
        })
        .collect();
    // The default budget (10% of 3 nodes, rounded up) takes one node at a time.
    assert_eq!(drifts, vec![1, 1, 1], "{:#?}", report.timeline);
    assert!(
        report
            .timeline
            .iter()
            .any(|e| matches!(e.event, Event::AmiReleased { release: 2 }))
    );
    let after: Vec<Option<String>> = sim
        .store()
        .claims()
        .into_iter()
        .filter(|c| c.state == nodewright_core::nodeclaim::ClaimState::Initialized)
        .map(|c| c.disruption.image_id)
        .collect();
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|i| i.as_deref() == Some("ami-al2023-amd64-r2")),
        "{after:?}"
    );
    assert_eq!(report.summary.pdb_violations, 0);
    assert_eq!(report.summary.pods_pending_at_end, 0);
}
