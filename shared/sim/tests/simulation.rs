//! End-to-end: scenarios played on the embedded cloud and cluster through the core's own
//! provisioning round.

use nodewright_sim::{Event, Report, Scenario, Simulation, simulate};

const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

/// A scenario over the getting-started pool, with `pool_edit` applied to its manifest.
fn scenario(body: &str, pool_edit: impl Fn(&str) -> String) -> Scenario {
    let manifest = pool_edit(GETTING_STARTED);
    let yaml = format!(
        "name: test\nobjects: [{{include: pool.yaml}}]\nworkloads: [{{name: web, requests: {{cpu: \"1\"}}}}]\n{body}"
    );
    Scenario::parse(&yaml, "test.yaml", &|_| Ok(manifest.clone())).expect("scenario parses")
}

fn launches(report: &Report) -> Vec<(&str, &str)> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.event {
            Event::Launched {
                instance_type, zone, ..
            } => Some((instance_type.as_str(), zone.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_inflate_demo_binds_every_pod_at_its_peak_and_ends_with_no_nodes() {
    let mut sim = Simulation::new(Scenario::inflate().expect("parses"));
    // Just before the scale-down at 10m, all 20 replicas run.
    sim.run_until(10 * 60_000 - 1_000).expect("runs");
    assert_eq!(sim.pods_bound(), 20);
    assert!(sim.cluster().pods().iter().all(|(p, _)| p.node_name.is_some()));

    let report = simulate(Scenario::inflate().expect("parses")).expect("runs");
    let s = &report.summary;
    assert_eq!(s.peak_pods_bound, 20);
    assert_eq!((s.pods_never_bound, s.pods_pending_at_end), (0, 0));
    assert_eq!(s.nodes_at_end, 0);
    assert!(s.peak_nodes >= 1);
    assert!(s.total_cost > 0.0 && s.node_hours > 0.0);
    assert_eq!(s.duration, "25:00");
    // Every pod waited at most for a node to boot (45 s) plus a round's debounce.
    assert!(s.time_to_bind.max_seconds <= 60.0, "{:?}", s.time_to_bind);
    assert!(matches!(
        report.timeline.first().map(|e| &e.event),
        Some(Event::Scaled { from: 0, to: 10, .. })
    ));
}

#[test]
fn the_same_scenario_gives_the_same_report() {
    let a =
        serde_json::to_string(&simulate(Scenario::inflate().expect("parses")).expect("runs")).expect("json");
    let b =
        serde_json::to_string(&simulate(Scenario::inflate().expect("parses")).expect("runs")).expect("json");
    assert_eq!(a, b);
}

#[test]
fn every_launched_claim_is_closed_once_its_node_is_removed() {
    let sim = {
        let mut sim = Simulation::new(Scenario::inflate().expect("parses"));
        sim.run_until(25 * 60_000).expect("runs");
        sim
    };
    let claims = sim.store().claims();
    assert!(!claims.is_empty());
    assert!(
        claims
            .iter()
            .all(|c| c.state == nodewright_core::nodeclaim::ClaimState::Terminated),
        "{claims:?}"
    );
    assert!(sim.cloud().instances().iter().all(|i| i.terminated_at.is_some()));
    let audit = sim.store().audit_log();
    let launched = audit.iter().filter(|a| a.action == "launch").count();
    let terminated = audit.iter().filter(|a| a.action == "terminate").count();
    assert_eq!((launched, terminated), (claims.len(), claims.len()));
}

#[test]
fn launches_avoid_a_zone_out_of_capacity() {
    let s = scenario(
        "steps:\n  - {at: 0s, outOfCapacity: [{zone: us-east-1a}], scale: {web: 6}}\nend: 5m\n",
        str::to_string,
    );
    let report = simulate(s).expect("runs");
    let zones = launches(&report);
    assert!(!zones.is_empty());
    assert!(zones.iter().all(|(_, z)| *z != "us-east-1a"), "{zones:?}");
    assert_eq!(report.summary.pods_never_bound, 0);
}

#[test]
fn pods_wait_out_an_outage_of_every_offering_and_bind_once_capacity_returns() {
    let s = scenario(
        "steps:\n  - {at: 0s, outOfCapacity: [{}], scale: {web: 3}}\n  - {at: 2m, restoreCapacity: [{}]}\nend: 10m\n",
        str::to_string,
    );
    let report = simulate(s).expect("runs");
    let during: Vec<&Event> = report
        .timeline
        .iter()
        .filter(|e| e.at_ms < 2 * 60_000)
        .map(|e| &e.event)
        .collect();
    assert!(
        !during.iter().any(|e| matches!(e, Event::Launched { .. })),
        "{during:?}"
    );
    assert!(
        during
            .iter()
            .any(|e| matches!(e, Event::NoCapacity { .. } | Event::CannotProvision { .. })),
        "the outage is visible: {during:?}"
    );
    assert_eq!(report.summary.pods_never_bound, 0);
    assert!(
        report.summary.time_to_bind.max_seconds >= 120.0,
        "{:?}",
        report.summary.time_to_bind
    );
}

#[test]
fn a_pool_that_never_consolidates_keeps_its_empty_nodes() {
    let s = scenario(
        "steps:\n  - {at: 0s, scale: {web: 4}}\n  - {at: 2m, scale: {web: 0}}\nend: 10m\n",
        |m| m.replace("consolidateAfter: 1m", "consolidateAfter: Never"),
    );
    let report = simulate(s).expect("runs");
    assert!(report.summary.nodes_at_end >= 1);
    assert!(
        !report
            .timeline
            .iter()
            .any(|e| matches!(e.event, Event::NodeRemoved { .. }))
    );
}

#[test]
fn a_daemonset_takes_room_on_every_node_the_provisioner_launches() {
    let daemonset = "  - apiVersion: apps/v1\n    kind: DaemonSet\n    metadata: {name: agent, namespace: kube-system}\n    \
                     spec:\n      template:\n        spec:\n          containers: [{name: a, resources: {requests: {cpu: 500m}}}]\n          \
                     tolerations: [{operator: Exists}]\n";
    let yaml = format!(
        "name: test\nobjects:\n  - include: pool.yaml\n{daemonset}workloads: [{{name: web, requests: {{cpu: \"1\"}}}}]\n\
         steps: [{{at: 0s, scale: {{web: 8}}}}]\nend: 3m\n"
    );
    let s = Scenario::parse(&yaml, "test.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses");
    let mut sim = Simulation::new(s);
    sim.run_until(3 * 60_000).expect("runs");
    assert_eq!(sim.pods_bound(), 8, "the plan left room for the daemon pods");
    let nodes = sim.cluster().nodes();
    let daemons = sim.cluster().pods().iter().filter(|(p, _)| p.is_daemon()).count();
    assert_eq!(daemons, nodes.len());
}
