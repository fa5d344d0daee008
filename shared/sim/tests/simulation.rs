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
            .any(|e| matches!(e.event, Event::Disrupting { .. }))
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

/// Subnets of the getting-started node class (`karpenter.sh/discovery: my-cluster`) in
/// us-east-1a and us-east-1b only; us-east-1c's subnet belongs to another cluster.
const TWO_ZONE_SUBNETS: &str = "cloud:\n  subnets:\n    \
    - {id: subnet-a, zone: us-east-1a, tags: {karpenter.sh/discovery: my-cluster}}\n    \
    - {id: subnet-b, zone: us-east-1b, tags: {karpenter.sh/discovery: my-cluster}}\n    \
    - {id: subnet-c, zone: us-east-1c, tags: {karpenter.sh/discovery: another-cluster}}\n";

/// The getting-started manifest with its alias replaced by a name selector (`team-node-*`)
/// and its pool allowing arm64 as well as amd64.
fn named_images_any_arch(manifest: &str) -> String {
    manifest
        .replace(
            "  amiSelectorTerms:\n    - alias: \"al2023@latest\"",
            "  amiFamily: AL2023\n  amiSelectorTerms:\n    - name: \"team-node-*\"",
        )
        .replace("values: [\"amd64\"]", "values: [\"amd64\", \"arm64\"]")
}

#[test]
fn a_node_class_with_subnets_in_two_zones_launches_and_spreads_only_over_those_two() {
    let yaml = format!(
        "name: test\nobjects: [{{include: pool.yaml}}]\n\
         workloads:\n  - name: web\n    requests: {{cpu: \"1\"}}\n    \
         topologySpread: [{{topologyKey: topology.kubernetes.io/zone}}]\n\
         steps: [{{at: 0s, scale: {{web: 6}}}}]\nend: 5m\n{TWO_ZONE_SUBNETS}"
    );
    let s = Scenario::parse(&yaml, "test.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses");
    let mut sim = Simulation::new(s);
    sim.run_until(5 * 60_000).expect("runs");
    let instances = sim.cloud().instances();
    assert!(!instances.is_empty());
    let zones: std::collections::BTreeSet<&str> =
        instances.iter().map(|i| i.instance.zone.as_str()).collect();
    assert!(
        zones.iter().all(|z| ["us-east-1a", "us-east-1b"].contains(z)),
        "{zones:?}"
    );
    assert_eq!(
        sim.pods_bound(),
        6,
        "the spread is over the two zones the pool can use"
    );
    assert!(sim.cloud().capacity_failures().is_empty());
}

#[test]
fn a_node_class_whose_images_are_all_x86_64_launches_no_arm64_nodes() {
    let body = "cloud:\n  images:\n    \
                - {id: ami-1, name: team-node-x86, architecture: x86_64}\n    \
                - {id: ami-2, name: other-node-arm, architecture: arm64}\n\
                steps: [{at: 0s, scale: {web: 8}}]\nend: 5m\n";
    let mut sim = Simulation::new(scenario(body, named_images_any_arch));
    sim.run_until(5 * 60_000).expect("runs");
    let instances = sim.cloud().instances();
    assert!(!instances.is_empty());
    for i in &instances {
        assert_eq!(
            i.instance_type
                .labels
                .get("kubernetes.io/arch")
                .map(String::as_str),
            Some("amd64"),
            "{}",
            i.instance_type.name
        );
    }
    assert_eq!(sim.pods_bound(), 8);

    // With an image for each architecture the pool's cheaper arm64 types are used.
    let both = "cloud:\n  images:\n    \
                - {id: ami-1, name: team-node-x86, architecture: x86_64}\n    \
                - {id: ami-2, name: team-node-arm, architecture: arm64}\n\
                steps: [{at: 0s, scale: {web: 8}}]\nend: 5m\n";
    let mut sim = Simulation::new(scenario(both, named_images_any_arch));
    sim.run_until(5 * 60_000).expect("runs");
    assert!(
        sim.cloud().instances().iter().any(|i| i
            .instance_type
            .labels
            .get("kubernetes.io/arch")
            .is_some_and(|a| a == "arm64")),
        "the x86-only result above is the images' doing"
    );
}

#[test]
fn a_node_class_the_cloud_cannot_use_is_reported_and_other_pools_still_launch() {
    let broken = "  - apiVersion: karpenter.sh/v1\n    kind: NodePool\n    metadata: {name: broken}\n    spec:\n      \
                  weight: 100\n      template:\n        spec:\n          requirements: []\n          \
                  nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: broken}\n  \
                  - apiVersion: karpenter.k8s.aws/v1\n    kind: EC2NodeClass\n    metadata: {name: broken}\n    spec:\n      \
                  role: KarpenterNodeRole-my-cluster\n      amiFamily: AL2023\n      \
                  amiSelectorTerms: [{ssmParameter: /my/ami}]\n      \
                  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: my-cluster}}]\n      \
                  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: my-cluster}}]\n";
    let yaml = format!(
        "name: test\nobjects:\n{broken}  - include: pool.yaml\n\
         workloads: [{{name: web, requests: {{cpu: \"1\"}}}}]\n\
         cloud:\n  images: [{{id: ami-1, name: team-node-x86, architecture: x86_64}}]\n\
         steps: [{{at: 0s, scale: {{web: 4}}}}]\nend: 3m\n"
    );
    let s = Scenario::parse(&yaml, "test.yaml", &|_| Ok(GETTING_STARTED.to_string())).expect("parses");
    let report = simulate(s).expect("runs");
    let events: Vec<&Event> = report.timeline.iter().map(|e| &e.event).collect();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::InvalidConfig { error } if error.contains("EC2NodeClass broken") && error.contains("ssmParameter")
        )),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::RoundFailed { .. })),
        "{events:?}"
    );
    assert_eq!(report.summary.pods_never_bound, 0);
}
