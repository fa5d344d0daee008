//! The node lifecycle end to end, over moto and the fake API server, whose kubelet registers
//! nodes with only the labels their user data gives: registration, the registration timeout,
//! and `kubectl delete node`.

use k8s_openapi::api::core::v1::{Node, Pod};
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::ports::ClaimStore;
use nodewright_tests::World;
use serde_json::json;

/// Instances of the cluster that are neither terminated nor shutting down.
async fn running(w: &World) -> Vec<String> {
    w.instances()
        .await
        .into_iter()
        .filter(|i| !i.state.is_gone())
        .map(|i| i.id)
        .collect()
}

#[tokio::test]
async fn pods_requiring_labels_the_kubelet_cannot_set_get_one_node_and_nothing_more_over_ten_rounds() {
    let w = World::new("e2e-category", 1000).await;
    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m"]},
        {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"]},
    ]}]}}}});
    w.create_pending_pods_with("web", 3, "500m", affinity);
    w.run_schedule().await;
    let launched = running(&w).await;
    assert_eq!(launched.len(), 1, "one node for three small pods");

    let nodes = w.kubelet().await;
    assert_eq!(nodes.len(), 1);
    let node: Node = w.kube.get(None, &nodes[0]).expect("node");
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert!(
        !labels.contains_key("karpenter.k8s.aws/instance-category"),
        "the kubelet cannot set it: {labels:?}"
    );
    // The kube-scheduler cannot bind them to a node without the label.
    let report = w.kube.schedule_pending().expect("scheduler");
    assert_eq!(report.unschedulable.len(), 3);

    for round in 0..10 {
        w.run_schedule().await;
        w.kube.schedule_pending().expect("scheduler");
        assert_eq!(running(&w).await, launched, "round {round} launched more");
    }
    assert_eq!(w.bound_pods(), 3);
    let node: Node = w.kube.get(None, &nodes[0]).expect("node");
    let labels = node.metadata.labels.unwrap_or_default();
    for key in [
        "karpenter.k8s.aws/instance-category",
        "karpenter.sh/capacity-type",
        "karpenter.sh/registered",
        "karpenter.sh/initialized",
    ] {
        assert!(labels.contains_key(key), "{key} missing: {labels:?}");
    }
    assert_eq!(
        node.metadata.finalizers,
        Some(vec![nodewright_core::labels::TERMINATION_FINALIZER.to_string()])
    );
    let claims = w.store.list_live().await.expect("claims");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].state, ClaimState::Initialized);
}

#[tokio::test]
async fn a_node_that_never_registers_is_terminated_after_the_timeout_and_its_pods_get_a_new_node() {
    let mut w = World::new("e2e-timeout", 1000).await;
    // The timeout is 15 minutes in production; here a moment.
    w.provisioner.pass.lifecycle.registration_ttl_ms = 1_000;
    w.create_pending_pods("web", 2, "1");
    w.run_schedule().await;
    let first = running(&w).await;
    assert_eq!(first.len(), 1);
    let first_claim = w.store.list_live().await.expect("claims")[0].id.clone();

    // The instance never joins (a blocked security group); the timeout passes.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let response = w.run_schedule().await;
    assert_eq!(response["ran"], json!(true));
    let now = running(&w).await;
    assert!(
        !now.contains(&first[0]),
        "the silent instance was terminated: {now:?}"
    );
    assert_eq!(now.len(), 1, "and its pods got a new one");
    let closed = w.store.get(&first_claim).await.expect("get").expect("kept");
    assert_eq!(closed.state, ClaimState::Terminated);
    assert_eq!(closed.reason.as_deref(), Some("registration timeout"));

    w.kubelet().await;
    w.run_schedule().await;
    w.kube.schedule_pending().expect("scheduler");
    assert_eq!(w.bound_pods(), 2);
}

#[tokio::test]
async fn kubectl_delete_node_evicts_its_pods_terminates_the_instance_and_closes_the_claim() {
    let w = World::new("e2e-delete", 1000).await;
    w.create_pending_pods("web", 2, "1");
    w.run_schedule().await;
    let nodes = w.kubelet().await;
    assert_eq!(nodes.len(), 1);
    w.run_schedule().await;
    w.kube.schedule_pending().expect("scheduler");
    assert_eq!(w.bound_pods(), 2);
    let claim = w.store.list_live().await.expect("claims")[0].clone();
    let instance = claim.instance_id().expect("launched").to_string();

    // `kubectl delete node`: the finalizer holds the Node while nodewright drains it.
    let (_, gone) = w.kube.delete_object("nodes", None, &nodes[0]).expect("delete");
    assert!(!gone, "held by the finalizer");
    let first = w.run_schedule().await;
    assert_eq!(first["ran"], json!(true));
    let pods = w.kube.list::<Pod>(Some("default"));
    assert!(pods.is_empty(), "both pods evicted: {}", pods.len());
    let node: Node = w.kube.get(None, &nodes[0]).expect("still there, cordoned");
    assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));

    w.run_schedule().await;
    assert!(
        w.kube.get_object("nodes", None, &nodes[0]).is_none(),
        "node deleted"
    );
    assert!(!running(&w).await.contains(&instance), "instance terminated");
    let closed = w.store.get(&claim.id).await.expect("get").expect("kept");
    assert_eq!(closed.state, ClaimState::Terminated);
    assert_eq!(closed.reason.as_deref(), Some("node deleted"));
}
