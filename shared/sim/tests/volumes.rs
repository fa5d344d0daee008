//! Pods with persistent volumes in the simulator: volumes are made where their pods first land
//! (or at once, for an Immediate class), and a pod made again goes back to its volume's zone.

use nodewright_core::labels;
use nodewright_sim::{Event, Scenario, Simulation};

const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

fn scenario(body: &str) -> Scenario {
    let yaml = format!("name: volumes\nobjects:\n  - {{include: pool.yaml}}\n{body}");
    Scenario::parse(&yaml, "test.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("scenario parses")
}

const GP3: &str = "  - apiVersion: storage.k8s.io/v1
    kind: StorageClass
    metadata: {name: gp3, annotations: {storageclass.kubernetes.io/is-default-class: 'true'}}
    provisioner: ebs.csi.aws.com
    volumeBindingMode: WaitForFirstConsumer
";

/// Every pod of `workload` is bound, on a node in the zone of its `data` volume.
fn assert_in_volume_zones(sim: &Simulation, workload: &str, replicas: usize) {
    let pods: Vec<_> = sim
        .cluster()
        .pods()
        .into_iter()
        .filter(|(p, _)| p.owner_name.as_deref() == Some(workload))
        .collect();
    assert_eq!(pods.len(), replicas);
    for (pod, _) in pods {
        let node = pod
            .node_name
            .as_deref()
            .unwrap_or_else(|| panic!("{} is bound", pod.name));
        let node = sim.cluster().node(node).expect("node exists");
        let (_, zone) = sim
            .cluster()
            .claim_volume(&pod.namespace, &format!("data-{}", pod.name))
            .unwrap_or_else(|| panic!("{} has a volume", pod.name));
        assert_eq!(node.labels.get(labels::ZONE), Some(&zone), "{}", pod.name);
    }
}

#[test]
fn stateful_pods_whose_nodes_are_deleted_come_back_in_the_zones_of_their_volumes() {
    let mut sim = Simulation::new(scenario(&format!(
        "{GP3}end: 30m
workloads:
  - name: db
    replicas: 3
    requests: {{cpu: '1'}}
    topologySpread: [{{topologyKey: topology.kubernetes.io/zone}}]
    volumeClaimTemplates: [{{name: data, storageClassName: gp3}}]
steps:
  - at: 5m
    deleteNode: {{count: 3}}
"
    )));
    sim.run_until(5 * 60_000 - 1).expect("runs");
    assert_in_volume_zones(&sim, "db", 3);
    let zones_before: Vec<_> = (0..3)
        .map(|i| sim.cluster().claim_volume("default", &format!("data-db-{i}")))
        .collect();
    sim.run_until(30 * 60_000).expect("runs");
    assert_in_volume_zones(&sim, "db", 3);
    let zones_after: Vec<_> = (0..3)
        .map(|i| sim.cluster().claim_volume("default", &format!("data-db-{i}")))
        .collect();
    assert_eq!(zones_before, zones_after, "volumes stay where they were made");
    let report = sim.report();
    assert_eq!(report.summary.pods_pending_at_end, 0, "{:#?}", report.timeline);
    // One node per pod, each in its volume's zone: none launched where the pod cannot go.
    let relaunched = report
        .timeline
        .iter()
        .filter(|e| e.at_ms >= 5 * 60_000 && matches!(e.event, Event::Launched { .. }))
        .count();
    assert_eq!(relaunched, 3, "{:#?}", report.timeline);
    assert_eq!(report.summary.nodes_at_end, 3);
}

#[test]
fn a_pod_whose_immediate_class_bound_its_claim_is_planned_in_that_zone() {
    let mut sim = Simulation::new(scenario(
        "  - apiVersion: storage.k8s.io/v1
    kind: StorageClass
    metadata: {name: io2}
    provisioner: ebs.csi.aws.com
    allowedTopologies:
      - matchLabelExpressions: [{key: topology.kubernetes.io/zone, values: [us-east-1c]}]
end: 10m
workloads:
  - name: db
    replicas: 1
    requests: {cpu: '1'}
    volumeClaimTemplates: [{name: data, storageClassName: io2}]
",
    ));
    sim.run_until(10 * 60_000).expect("runs");
    assert_in_volume_zones(&sim, "db", 1);
    let (_, zone) = sim.cluster().claim_volume("default", "data-db-0").expect("bound");
    assert_eq!(zone, "us-east-1c");
}

#[test]
fn a_pod_whose_claim_has_no_class_to_make_its_volume_waits_and_nothing_is_launched_for_it() {
    let report = nodewright_sim::simulate(scenario(
        "end: 10m
workloads:
  - name: db
    replicas: 1
    requests: {cpu: '1'}
    volumeClaimTemplates: [{name: data}]
",
    ))
    .expect("runs");
    let launched = report
        .timeline
        .iter()
        .filter(|e| matches!(e.event, Event::Launched { .. }))
        .count();
    assert_eq!(launched, 0, "{:#?}", report.timeline);
    assert_eq!(report.summary.pods_pending_at_end, 1);
}

#[test]
fn consolidation_replaces_a_stateful_pods_node_only_in_its_volumes_zone() {
    // The class makes volumes only in us-east-1c, which is not the zone a replacement would
    // be cheapest in, so only the volume keeps the replacement there.
    let mut sim = Simulation::new(scenario(&format!(
        "{GP3}    allowedTopologies:
      - matchLabelExpressions: [{{key: topology.kubernetes.io/zone, values: [us-east-1c]}}]
end: 60m
workloads:
  - name: db
    replicas: 1
    requests: {{cpu: '1'}}
    volumeClaimTemplates: [{{name: data}}]
  - name: web
    replicas: 12
    requests: {{cpu: '1'}}
steps:
  - at: 5m
    scale: {{web: 0}}
"
    )));
    sim.run_until(60 * 60_000).expect("runs");
    assert_in_volume_zones(&sim, "db", 1);
    let report = sim.report();
    let disruptions: Vec<_> = report
        .timeline
        .iter()
        .filter(|e| matches!(e.event, Event::Disrupting { .. }))
        .collect();
    assert!(
        !disruptions.is_empty(),
        "the emptied node is consolidated: {:#?}",
        report.timeline
    );
    // Each node that joins after the scale-down is a replacement the sweep planned: none is
    // launched in a zone the pod's volume cannot reach and then needs another.
    let relaunched = report
        .timeline
        .iter()
        .filter(|e| e.at_ms >= 5 * 60_000 && matches!(e.event, Event::NodeRegistered { .. }))
        .count();
    let replacements = disruptions
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                Event::Disrupting {
                    replacement: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(relaunched, replacements, "{:#?}", report.timeline);
    assert_eq!(report.summary.pods_pending_at_end, 0);
}
