//! The simulated kubelet registers what was launched; the simulated kube-scheduler binds what
//! fits and marks the rest Unschedulable.

mod support;

use nodewright_core::builders::pod;
use nodewright_core::catalog::embedded;
use nodewright_core::labels;
use nodewright_core::nodeclaim::{ClaimState, LaunchedInstance};
use nodewright_core::pod::{Taint, TaintEffect};
use nodewright_core::ports::{ClaimStore, Cloud, Cluster};
use nodewright_sim::kube_scheduler::Binding;
use nodewright_sim::{Kubelet, PodStatus};
use pollster::block_on;
use support::{START, claim, node, request, world};

#[test]
fn the_kubelet_registers_an_instance_after_the_boot_delay_with_the_promised_labels() {
    let (clock, cloud, cluster, store) = world();
    let mut c = claim("default-a");
    c.taints = vec![Taint::new("dedicated", Some("gpu"), TaintEffect::NoSchedule)];
    c.startup_taints = vec![Taint::new(
        "node.cilium.io/agent-not-ready",
        None,
        TaintEffect::NoExecute,
    )];
    let mut c = block_on(store.create(&c)).expect("created");
    let launched = block_on(cloud.launch(&request(&c, &[("m5.large", "us-east-1b")]))).expect("launched");
    let instance = launched.instance;
    c.state = ClaimState::Launched;
    c.instance = Some(LaunchedInstance {
        instance_id: instance.id.clone(),
        instance_type: instance.instance_type.clone(),
        zone: instance.zone.clone(),
        capacity_type: instance.capacity_type,
        price: launched.price,
    });
    block_on(store.update(&c)).expect("launched");

    let mut kubelet = Kubelet::new(45_000);
    clock.advance(44_999);
    assert!(
        kubelet
            .register_booted(&cloud, &cluster, &store)
            .expect("ok")
            .is_empty()
    );
    clock.advance(1);
    let joined = kubelet.register_booted(&cloud, &cluster, &store).expect("ok");
    assert_eq!(joined.len(), 1);
    assert!(
        kubelet
            .register_booted(&cloud, &cluster, &store)
            .expect("ok")
            .is_empty(),
        "once"
    );

    let name = &joined[0].node;
    assert!(
        name.starts_with("ip-10-0-") && name.ends_with(".ec2.internal"),
        "{name}"
    );
    let node = cluster.node(name).expect("registered");
    let label = |k: &str| node.labels.get(k).map(String::as_str);
    // What the user data, the kubelet and the cloud controller set — and nothing else.
    assert_eq!(
        label("team"),
        Some("a"),
        "the claim's own label, through the user data"
    );
    assert_eq!(label(labels::INSTANCE_TYPE), Some("m5.large"));
    assert_eq!(label(labels::ARCH), Some("amd64"));
    assert_eq!(label(labels::ZONE), Some("us-east-1b"));
    assert_eq!(label(labels::HOSTNAME), Some(name.as_str()));
    for absent in [
        labels::INSTANCE_FAMILY,
        labels::CAPACITY_TYPE,
        labels::NODE_REGISTERED,
        labels::NODE_INITIALIZED,
    ] {
        assert_eq!(label(absent), None, "{absent} is the lifecycle's to set");
    }
    assert_eq!(
        node.provider_id,
        Some(format!("aws:///us-east-1b/{}", instance.id))
    );
    assert_eq!(node.instance_id(), Some(instance.id.as_str()));
    let catalog = embedded::default_catalog().expect("catalog");
    assert_eq!(
        Some(&node.allocatable),
        catalog.get("m5.large").map(|t| &t.allocatable)
    );
    assert_eq!(
        node.taints, c.taints,
        "startup taints are lifted, the claim's taints stay"
    );
    assert_eq!(node.created_at, START + 45_000);

    let stored = block_on(store.get("default-a")).expect("get").expect("exists");
    assert_eq!(
        stored.state,
        ClaimState::Launched,
        "registration is the lifecycle's"
    );
}

#[test]
fn a_terminated_instance_never_registers() {
    let (clock, cloud, cluster, store) = world();
    let launched = block_on(cloud.launch(&request(&claim("default-a"), &[("m5.large", "us-east-1a")])))
        .expect("launched");
    block_on(cloud.terminate(&launched.instance.id)).expect("terminated");
    clock.advance(60_000);
    let mut kubelet = Kubelet::new(45_000);
    assert!(
        kubelet
            .register_booted(&cloud, &cluster, &store)
            .expect("ok")
            .is_empty()
    );
    assert!(cluster.nodes().is_empty());
}

#[test]
fn the_scheduler_binds_what_fits_and_marks_the_rest_unschedulable() {
    let (clock, _, cluster, _) = world();
    cluster.register_node(node("n1", 2_000)).expect("registered");
    // The scheduler's queue goes by creation time: the first pod takes the room.
    cluster
        .create_pod(pod("small").cpu("1").build())
        .expect("created");
    clock.advance(1);
    cluster
        .create_pod(pod("big").cpu("1500m").build())
        .expect("created");
    cluster
        .create_pod(
            pod("arm")
                .cpu("100m")
                .node_selector(labels::ARCH, "arm64")
                .build(),
        )
        .expect("created");
    assert!(
        block_on(cluster.list_pending_pods()).expect("list").is_empty(),
        "pods the scheduler has not tried are not the provisioner's yet"
    );

    let pass = cluster.run_scheduler();
    assert_eq!(pass.bound, vec![binding("default/small", "n1")]);
    assert_eq!(pass.newly_unschedulable.len(), 2);
    let reason = |key: &str| match cluster.pod(key).map(|(_, s)| s) {
        Some(PodStatus::Unschedulable { reason }) => reason,
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(
        reason("default/big"),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
    assert!(reason("default/arm").contains("didn't match Pod's node affinity/selector"));
    let mut pending: Vec<String> = block_on(cluster.list_pending_pods())
        .expect("list")
        .iter()
        .map(|p| p.key())
        .collect();
    pending.sort();
    assert_eq!(pending, ["default/arm", "default/big"]);
    let bound = block_on(cluster.list_bound_pods()).expect("list");
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].node_name.as_deref(), Some("n1"));

    let again = cluster.run_scheduler();
    assert!(
        again.bound.is_empty() && again.newly_unschedulable.is_empty(),
        "nothing changed"
    );
    assert_eq!(again.unschedulable, 2);
}

#[test]
fn the_scheduler_respects_taints_and_cordons() {
    let (_, _, cluster, _) = world();
    let mut tainted = node("tainted", 4_000);
    tainted.taints = vec![Taint::new("dedicated", Some("gpu"), TaintEffect::NoSchedule)];
    cluster.register_node(tainted).expect("registered");
    cluster
        .register_node(node("cordoned", 4_000))
        .expect("registered");
    let taint = Taint::new(labels::DISRUPTED_TAINT, None, TaintEffect::NoSchedule);
    block_on(cluster.cordon("cordoned", &taint)).expect("cordoned");
    cluster
        .create_pod(pod("plain").cpu("1").build())
        .expect("created");
    cluster
        .create_pod(
            pod("tolerant")
                .cpu("1")
                .tolerate("dedicated", Some("gpu"), Some(TaintEffect::NoSchedule))
                .build(),
        )
        .expect("created");
    let pass = cluster.run_scheduler();
    assert_eq!(pass.bound, vec![binding("default/tolerant", "tainted")]);
    match cluster.pod("default/plain").map(|(_, s)| s) {
        Some(PodStatus::Unschedulable { reason }) => {
            assert!(reason.contains("1 node(s) were unschedulable"), "{reason}");
            assert!(
                reason.contains("1 node(s) had untolerated taint {dedicated: gpu}"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_scheduler_honours_hostname_anti_affinity_and_zone_spread() {
    let (_, _, cluster, _) = world();
    cluster.register_node(node("n1", 8_000)).expect("registered");
    cluster.register_node(node("n2", 8_000)).expect("registered");
    for name in ["a", "b", "c"] {
        cluster
            .create_pod(
                pod(name)
                    .cpu("100m")
                    .label("app", "solo")
                    .anti_affinity(labels::HOSTNAME, &[("app", "solo")])
                    .build(),
            )
            .expect("created");
    }
    let pass = cluster.run_scheduler();
    let nodes: std::collections::BTreeSet<&str> = pass.bound.iter().map(|b| b.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "one per node: {:?}", pass.bound);
    assert_eq!(pass.newly_unschedulable, ["default/c"]);

    let (_, _, cluster, _) = world();
    let mut east_b = node("n3", 8_000);
    east_b.labels.insert(labels::ZONE.into(), "us-east-1b".into());
    cluster.register_node(node("n1", 8_000)).expect("registered");
    cluster.register_node(east_b).expect("registered");
    for name in ["a", "b", "c", "d"] {
        cluster
            .create_pod(pod(name).cpu("100m").label("app", "web").zone_spread(1).build())
            .expect("created");
    }
    let pass = cluster.run_scheduler();
    assert_eq!(pass.bound.len(), 4);
    let on_n1 = pass.bound.iter().filter(|b| b.node == "n1").count();
    assert_eq!(on_n1, 2, "two per zone: {:?}", pass.bound);
}

#[test]
fn daemon_pods_land_on_every_matching_node_as_it_registers() {
    let (_, _, cluster, _) = world();
    let daemon = pod("agent").cpu("200m").daemonset().build();
    cluster.apply_daemonset(nodewright_core::ports::DaemonSet {
        namespace: "kube-system".into(),
        name: "agent".into(),
        pod: daemon,
    });
    cluster.register_node(node("n1", 1_000)).expect("registered");
    let bound = block_on(cluster.list_bound_pods()).expect("list");
    assert_eq!(bound.len(), 1);
    assert!(bound[0].is_daemon());
    assert_eq!(bound[0].node_name.as_deref(), Some("n1"));
    // The daemon's 200m leaves 800m: a 1-CPU pod no longer fits.
    cluster.create_pod(pod("web").cpu("1").build()).expect("created");
    let pass = cluster.run_scheduler();
    assert_eq!(pass.newly_unschedulable, ["default/web"]);
}

fn binding(pod: &str, node: &str) -> Binding {
    Binding {
        pod: pod.to_string(),
        node: node.to_string(),
    }
}
