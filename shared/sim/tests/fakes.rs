//! The fakes enforce the rules of the services they stand in for.

mod support;

use std::collections::BTreeMap;

use nodewright_core::builders::pod;
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::pod::{Taint, TaintEffect};
use nodewright_core::ports::{
    CLAIM_TAG, ClaimStore, Cloud, Cluster, ErrorKind, Eviction, OfferingKey, PortError,
};
use nodewright_sim::{
    Call, CloudOp, CloudWorld, ClusterOp, ImageArch, OfferingPattern, PodStatus, SimClaimStore, SimImage,
    SimSubnet, StoreOp, Workload,
};
use pollster::block_on;
use support::{START, claim, node, request, world};

#[test]
fn a_claim_written_at_a_stale_version_is_a_conflict() {
    let store = SimClaimStore::new();
    let created = block_on(store.create(&claim("default-a"))).expect("created");
    assert_eq!(created.version, 1);
    let mut first = created.clone();
    first.state = ClaimState::Launched;
    let stored = block_on(store.update(&first)).expect("first writer wins");
    assert_eq!(stored.version, 2);
    let mut second = created;
    second.reason = Some("late".into());
    let err = block_on(store.update(&second)).expect_err("stale version");
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(
        block_on(store.get("default-a")).expect("get").map(|c| c.version),
        Some(2)
    );
}

#[test]
fn creating_a_claim_twice_is_a_conflict_and_updating_a_missing_one_is_not_found() {
    let store = SimClaimStore::new();
    block_on(store.create(&claim("default-a"))).expect("created");
    let err = block_on(store.create(&claim("default-a"))).expect_err("exists");
    assert_eq!(err.kind, ErrorKind::Conflict);
    let err = block_on(store.update(&claim("default-b"))).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[test]
fn an_illegal_state_transition_is_refused() {
    let store = SimClaimStore::new();
    let mut c = block_on(store.create(&claim("default-a"))).expect("created");
    c.state = ClaimState::Registered;
    let err = block_on(store.update(&c)).expect_err("launching cannot become registered");
    assert_eq!(err.kind, ErrorKind::Invalid);
    c.state = ClaimState::Terminated;
    let mut c = block_on(store.update(&c)).expect("a failed launch may end terminated");
    c.state = ClaimState::Launched;
    let err = block_on(store.update(&c)).expect_err("terminated is final");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(block_on(store.list_live()).expect("list").is_empty());
}

#[test]
fn a_held_lease_is_a_conflict_until_it_expires_and_tokens_only_grow() {
    let store = SimClaimStore::new();
    let a = block_on(store.acquire_lease("a", 0, 1_000)).expect("free");
    let err = block_on(store.acquire_lease("b", 500, 1_000)).expect_err("held");
    assert_eq!(err.kind, ErrorKind::Conflict);
    let again = block_on(store.acquire_lease("a", 500, 1_000)).expect("the holder renews");
    assert!(again.token > a.token);
    let b = block_on(store.acquire_lease("b", 1_501, 1_000)).expect("expired");
    assert!(b.token > again.token);
    // The old holder's release is late and must not free b's lease.
    block_on(store.release_lease(&again)).expect("a lost lease is not an error");
    let err = block_on(store.acquire_lease("c", 1_600, 1_000)).expect_err("still b's");
    assert_eq!(err.kind, ErrorKind::Conflict);
    block_on(store.release_lease(&b)).expect("released");
    let c = block_on(store.acquire_lease("c", 1_600, 1_000)).expect("free again");
    assert!(c.token > b.token);
}

#[test]
fn an_injected_error_is_returned_once_and_the_call_is_recorded() {
    let store = SimClaimStore::new();
    store.fail_next(StoreOp::Create, PortError::new(ErrorKind::Throttled, "slow down"));
    let err = block_on(store.create(&claim("default-a"))).expect_err("injected");
    assert_eq!(err.kind, ErrorKind::Throttled);
    block_on(store.create(&claim("default-a"))).expect("only once");
    assert_eq!(
        store.calls(),
        vec![
            Call {
                op: StoreOp::Create,
                target: "default-a".into()
            };
            2
        ]
    );
}

#[test]
fn launching_is_idempotent_per_claim_id_and_tags_the_instance_with_its_claim() {
    let (_, cloud, _, _) = world();
    let c = claim("default-a");
    let first = block_on(cloud.launch(&request(&c, &[("m5.large", "us-east-1a")]))).expect("launched");
    let again = block_on(cloud.launch(&request(&c, &[("m5.xlarge", "us-east-1b")]))).expect("same");
    assert_eq!(first.instance, again.instance);
    assert_eq!(first.instance.tags.get(CLAIM_TAG), Some(&"default-a".to_string()));
    assert_eq!(first.instance.claim_id.as_deref(), Some("default-a"));
    assert_eq!(first.instance.launched_at, START);
    assert!(first.instance.id.starts_with("i-0"));
    assert_eq!(block_on(cloud.list_instances()).expect("list").len(), 1);
    // The price is the catalog's, whatever the request guessed.
    assert!(first.price > 0.05 && first.price < 0.2, "{}", first.price);
}

#[test]
fn launching_skips_offerings_out_of_capacity_and_reports_them() {
    let (_, cloud, _, _) = world();
    cloud.set_out_of_capacity(OfferingPattern {
        zone: Some("us-east-1a".into()),
        ..OfferingPattern::default()
    });
    let c = claim("default-a");
    let launched = block_on(cloud.launch(&request(
        &c,
        &[("m5.large", "us-east-1a"), ("m5.large", "us-east-1b")],
    )))
    .expect("second offering");
    assert_eq!(launched.instance.zone, "us-east-1b");
    let skipped = OfferingKey {
        instance_type: "m5.large".into(),
        zone: "us-east-1a".into(),
        capacity_type: CapacityType::OnDemand,
    };
    assert_eq!(launched.unavailable, vec![skipped.clone()]);

    let err = block_on(cloud.launch(&request(&claim("default-b"), &[("m5.large", "us-east-1a")])))
        .expect_err("no capacity");
    assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
    assert_eq!(err.unavailable, vec![skipped]);

    cloud.restore_capacity(&OfferingPattern {
        zone: Some("us-east-1a".into()),
        ..OfferingPattern::default()
    });
    let launched = block_on(cloud.launch(&request(&claim("default-b"), &[("m5.large", "us-east-1a")])))
        .expect("capacity is back");
    assert_eq!(launched.instance.zone, "us-east-1a");
}

#[test]
fn an_offering_the_catalog_lacks_counts_as_unavailable() {
    let (_, cloud, _, _) = world();
    let err = block_on(cloud.launch(&request(&claim("default-a"), &[("m5.huge", "us-east-1a")])))
        .expect_err("no such type");
    assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
    assert_eq!(err.unavailable.len(), 1);
}

#[test]
fn terminating_twice_or_an_unknown_instance_is_ok() {
    let (_, cloud, _, _) = world();
    let launched = block_on(cloud.launch(&request(&claim("default-a"), &[("m5.large", "us-east-1a")])))
        .expect("launched");
    let id = launched.instance.id;
    block_on(cloud.terminate(&id)).expect("terminated");
    block_on(cloud.terminate(&id)).expect("already gone is done");
    block_on(cloud.terminate("i-0000000000000000")).expect("never existed is done too");
    assert!(block_on(cloud.list_instances()).expect("list").is_empty());
    let record = cloud.instance(&id).expect("kept for accounting");
    assert_eq!(
        record.instance.state,
        nodewright_core::ports::InstanceState::Terminated
    );
    assert_eq!(
        cloud
            .calls()
            .iter()
            .filter(|c| c.op == CloudOp::Terminate)
            .count(),
        3
    );
}

#[test]
fn the_catalog_reflects_the_node_class_kubelet_settings() {
    let (_, cloud, _, _) = world();
    let mut nodeclass = nodewright_core::builders::nodeclass("default");
    let default = block_on(cloud.catalog(&nodeclass)).expect("catalog");
    let mut kubelet = serde_json::Map::new();
    kubelet.insert("maxPods".into(), 20.into());
    nodeclass.spec.kubelet = Some(kubelet);
    let limited = block_on(cloud.catalog(&nodeclass)).expect("catalog");
    let pods = |c: &nodewright_core::catalog::Catalog| c.get("m5.4xlarge").map(|t| t.allocatable.pods());
    assert_eq!(pods(&limited), Some(20));
    assert_ne!(pods(&default), Some(20));
}

#[test]
fn eviction_deletes_the_pod_and_its_workload_recreates_it_pending() {
    let (_, _, cluster, _) = world();
    cluster.apply_workload(Workload {
        namespace: "default".into(),
        name: "web".into(),
        replicas: 1,
        stateful: false,
        template: pod("template").cpu("1").build(),
    });
    let (first, status) = cluster.pods().pop().expect("one replica");
    assert_eq!(status, PodStatus::Pending);
    assert_eq!(
        block_on(cluster.evict("default", &first.name)).expect("evicted"),
        Eviction::Evicted
    );
    let pods = cluster.pods();
    assert_eq!(pods.len(), 1);
    assert_ne!(pods[0].0.name, first.name, "a new pod replaces it");
    assert!(pods[0].0.name.starts_with("web-"));
    assert_eq!(
        block_on(cluster.evict("default", &first.name)).expect("gone"),
        Eviction::Gone
    );
}

#[test]
fn deleting_a_node_sends_its_pods_back_to_pending_and_is_ok_when_repeated() {
    let (_, _, cluster, _) = world();
    cluster.register_node(node("n1", 4_000)).expect("registered");
    cluster.apply_workload(Workload {
        namespace: "default".into(),
        name: "web".into(),
        replicas: 2,
        stateful: false,
        template: pod("template").cpu("1").build(),
    });
    let pass = cluster.run_scheduler();
    assert_eq!(pass.bound.len(), 2);
    block_on(cluster.delete_node("n1")).expect("deleted");
    block_on(cluster.delete_node("n1")).expect("already gone is done");
    let pods = cluster.pods();
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter()
            .all(|(p, s)| *s == PodStatus::Pending && p.node_name.is_none())
    );
    assert_eq!(
        cluster
            .pod_history()
            .iter()
            .filter(|r| r.deleted_at.is_some())
            .count(),
        2
    );
}

#[test]
fn cordoning_or_patching_a_missing_node_is_not_found() {
    let (_, _, cluster, _) = world();
    let taint = Taint::new("karpenter.sh/disrupted", None, TaintEffect::NoSchedule);
    let err = block_on(cluster.cordon("nope", &taint)).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::NotFound);
    let err = block_on(cluster.patch_node("nope", &Default::default())).expect_err("missing");
    assert_eq!(err.kind, ErrorKind::NotFound);

    cluster.register_node(node("n1", 2_000)).expect("registered");
    block_on(cluster.cordon("n1", &taint)).expect("cordoned");
    block_on(cluster.cordon("n1", &taint)).expect("idempotent");
    let n = cluster.node("n1").expect("exists");
    assert!(n.unschedulable);
    assert_eq!(n.taints, vec![taint]);
    assert_eq!(
        cluster
            .calls()
            .iter()
            .filter(|c| c.op == ClusterOp::Cordon)
            .count(),
        3
    );
}

#[test]
fn invalid_nodepools_are_listed_as_errors_beside_the_valid_ones() {
    let (_, _, cluster, _) = world();
    cluster.apply_nodepool(nodewright_core::builders::nodepool("good").build());
    let mut bad = nodewright_core::builders::nodepool("bad").build();
    bad.spec.disruption.consolidate_after = "soon".into();
    cluster.apply_nodepool(bad);
    let (pools, errors) = block_on(cluster.list_nodepools()).expect("list");
    assert_eq!(pools.iter().map(|p| p.name()).collect::<Vec<_>>(), ["good"]);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("bad") && errors[0].contains("soon"),
        "{errors:?}"
    );
}

#[test]
fn a_round_reports_each_launch_that_found_no_capacity_with_its_offerings() {
    use nodewright_core::pass::{PassConfig, run_pass};
    use nodewright_core::unavailable::UnavailableOfferings;
    use nodewright_core::wiring::Ports;
    let (clock, cloud, cluster, store) = world();
    cluster.apply_nodepool(
        nodewright_core::builders::nodepool("default")
            .on_demand_only()
            .requirement(
                nodewright_core::labels::INSTANCE_TYPE,
                nodewright_core::requirements::Operator::In,
                &["m5.large"],
            )
            .build(),
    );
    cluster.apply_nodeclass(nodewright_core::builders::nodeclass("default"));
    cluster.create_pod(pod("web").cpu("1").build()).expect("new pod");
    // No nodes: the scheduler marks it Unschedulable, which is what the provisioner lists.
    cluster.run_scheduler();
    cloud.set_out_of_capacity(OfferingPattern::default());
    let unavailable = std::sync::Mutex::new(UnavailableOfferings::new());
    let ids = nodewright_sim::SeededIds::new(1);
    let ports = Ports {
        cluster: &cluster,
        cloud: &cloud,
        store: &store,
        clock: clock.as_ref(),
        ids: &ids,
        unavailable: &unavailable,
    };
    let report = block_on(run_pass(&ports, &PassConfig::default()))
        .expect("pass")
        .round;
    assert!(report.launched.is_empty());
    // One launch; every m5.large offering it tried is named, so the next plan skips them.
    assert_eq!(report.out_of_capacity.len(), 1, "{report:#?}");
    let failed = &report.out_of_capacity[0];
    assert_eq!((failed.nodepool.as_str(), failed.pods), ("default", 1));
    assert!(!failed.offerings.is_empty());
    assert!(failed.offerings.iter().all(|o| o.instance_type == "m5.large"));
}

#[test]
fn a_node_class_catalog_holds_only_the_zones_of_its_subnets_and_the_arches_of_its_images() {
    let (_, cloud, _, _) = world();
    let nodeclass = nodewright_core::builders::nodeclass("default");
    let everything = block_on(cloud.catalog(&nodeclass)).expect("catalog");
    assert!(
        everything.zones().len() > 2,
        "the default world: a subnet in every zone"
    );

    let subnet = |id: &str, zone: &str, cluster: &str| SimSubnet {
        id: id.into(),
        zone: zone.into(),
        tags: BTreeMap::from([("karpenter.sh/discovery".to_string(), cluster.to_string())]),
    };
    cloud.set_world(CloudWorld {
        subnets: Some(vec![
            subnet("subnet-a", "us-east-1a", "test"),
            subnet("subnet-b", "us-east-1b", "test"),
            subnet("subnet-c", "us-east-1c", "elsewhere"),
        ]),
        images: Some(vec![SimImage {
            id: "ami-1".into(),
            name: "team-node-x86".into(),
            architecture: ImageArch::X86_64,
            owner: None,
            tags: BTreeMap::new(),
        }]),
    });
    let two_zones = block_on(cloud.catalog(&nodeclass)).expect("catalog");
    assert_eq!(two_zones.zones(), ["us-east-1a", "us-east-1b"]);
    assert!(
        two_zones.get("m6g.large").is_some(),
        "an alias has an image for every architecture"
    );

    let mut x86_only = nodeclass.clone();
    x86_only.spec.ami_family = Some("AL2023".into());
    x86_only.spec.ami_selector_terms = vec![nodewright_core::api::AmiSelectorTerm {
        name: Some("team-node-*".into()),
        ..Default::default()
    }];
    let catalog = block_on(cloud.catalog(&x86_only)).expect("catalog");
    assert!(catalog.get("m5.large").is_some());
    assert!(catalog.get("m6g.large").is_none(), "m6g.large is arm64");
    assert!(
        catalog
            .types
            .iter()
            .all(|t| t.labels.get("kubernetes.io/arch").is_some_and(|a| a == "amd64"))
    );

    // A launch in a zone without a subnet is refused like one without capacity.
    let err = block_on(cloud.launch(&request(&claim("default-c"), &[("m5.large", "us-east-1c")])))
        .expect_err("no subnet in us-east-1c");
    assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
    block_on(cloud.launch(&request(&claim("default-a"), &[("m5.large", "us-east-1a")]))).expect("launch");
}
