//! Kubernetes events as the simulator records them: what `kubectl describe` would show for
//! pods and nodes after the provisioner's passes and the sweeps.

use nodewright_core::events::{EventType, Regarding};
use nodewright_sim::{Scenario, Simulation};

const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

fn simulation(body: &str) -> Simulation {
    let yaml = format!("name: events\nobjects: [{{include: pool.yaml}}]\n{body}");
    Simulation::new(
        Scenario::parse(&yaml, "test.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses"),
    )
}

#[test]
fn pods_are_told_which_nodeclaim_they_go_to_and_a_pod_that_fits_nowhere_is_told_why() {
    let mut sim = simulation(
        "end: 5m
workloads:
  - {name: web, replicas: 3, requests: {cpu: 500m}}
  - {name: huge, replicas: 1, requests: {cpu: '1000'}}
",
    );
    sim.run_until(5 * 60_000).expect("runs");
    let events = sim.cluster().events();
    let nominated: Vec<_> = events
        .iter()
        .filter(|(e, _)| e.regarding == Regarding::Pod && e.reason == "Nominated")
        .collect();
    assert_eq!(nominated.len(), 3, "{events:#?}");
    for (e, _) in &nominated {
        assert!(e.name.starts_with("web-"), "{e:?}");
        assert!(
            e.note.starts_with("Pod should schedule on: nodeclaim/default-"),
            "{e:?}"
        );
        assert_eq!(e.event_type, EventType::Normal);
    }
    let failed: Vec<_> = events
        .iter()
        .filter(|(e, _)| e.reason == "FailedScheduling")
        .collect();
    assert_eq!(failed.len(), 1, "{events:#?}");
    let (e, count) = failed[0];
    assert!(e.name.starts_with("huge-"));
    assert_eq!(e.event_type, EventType::Warning);
    assert!(e.note.contains("NodePool default"), "{}", e.note);
    // Every pass says it again: one event, counted, not one per pass.
    assert!(*count > 1, "{count}");
}

#[test]
fn a_node_taken_by_consolidation_is_told_why_and_what_it_saves() {
    let mut sim = simulation(
        "end: 20m
workloads:
  - {name: web, replicas: 10, requests: {cpu: '1'}}
steps:
  - {at: 3m, scale: {web: 1}}
",
    );
    sim.run_until(20 * 60_000).expect("runs");
    let events = sim.cluster().events();
    let disrupting: Vec<_> = events
        .iter()
        .filter(|(e, _)| e.regarding == Regarding::Node && e.reason == "DisruptionTerminating")
        .collect();
    assert!(!disrupting.is_empty(), "{events:#?}");
    assert!(
        disrupting
            .iter()
            .any(|(e, _)| e.note.starts_with("Disrupting Node: Underutilized") && e.note.contains("saving $")),
        "{disrupting:#?}"
    );
}

#[test]
fn the_nodepool_status_counts_its_nodes_and_resources_and_says_it_is_ready() {
    let mut sim = simulation("end: 5m\nworkloads: [{name: web, replicas: 3, requests: {cpu: '1'}}]\n");
    sim.run_until(5 * 60_000).expect("runs");
    let pools = sim.cluster().nodepools();
    let status = pools[0].status.as_ref().expect("a status was written");
    let nodes = sim.cluster().node_count();
    assert!(nodes > 0);
    assert_eq!(status["nodes"], nodes, "{status}");
    assert!(status["resources"]["cpu"].as_str().is_some(), "{status}");
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready");
    assert_eq!(ready["status"], "True");
}
