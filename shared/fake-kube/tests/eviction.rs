//! The eviction subresource against PodDisruptionBudgets, and the binding subresource.

mod common;

use common::{server, status_of};
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, EvictParams, PostParams};
use nodewright_fake_kube::builders::pod;
use nodewright_fake_kube::{Budget, FakeApiServer};

fn web_pods(server: &FakeApiServer, count: usize) {
    for i in 0..count {
        let fixture = pod(&format!("web-{i}")).label("app", "web").node("n1").running();
        server.insert(&fixture.build()).expect("insert");
    }
}

#[tokio::test]
async fn eviction_without_a_budget_deletes_the_pod() {
    let (server, client) = server().await;
    web_pods(&server, 1);
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = pods.evict("web-0", &EvictParams::default()).await.expect("evict");
    assert_eq!(status.code, 201);
    assert!(server.get::<Pod>(Some("default"), "web-0").is_none());
}

#[tokio::test]
async fn eviction_is_refused_with_429_once_the_budget_is_spent() {
    let (server, client) = server().await;
    web_pods(&server, 3);
    let pdb = server
        .set_pdb(
            "default",
            "web",
            [("app", "web")],
            Budget::MinAvailable(IntOrString::Int(2)),
        )
        .expect("pdb");
    let status = pdb.status.expect("the disruption controller fills status");
    assert_eq!(
        (
            status.current_healthy,
            status.desired_healthy,
            status.disruptions_allowed
        ),
        (3, 2, 1)
    );

    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.evict("web-0", &EvictParams::default())
        .await
        .expect("the first eviction fits the budget");

    let refused = status_of(pods.evict("web-1", &EvictParams::default()).await);
    assert_eq!((refused.code, refused.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        refused.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let details = refused.details.expect("details");
    assert_eq!(details.causes[0].reason, "DisruptionBudget");
    assert_eq!(
        details.causes[0].message,
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert!(server.get::<Pod>(Some("default"), "web-1").is_some());
}

#[tokio::test]
async fn percentage_max_unavailable_rounds_up() {
    let (server, client) = server().await;
    web_pods(&server, 4);
    // 25% of 4 is one pod unavailable at a time.
    server
        .set_pdb(
            "default",
            "web",
            [("app", "web")],
            Budget::MaxUnavailable(IntOrString::String("25%".into())),
        )
        .expect("pdb");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.evict("web-0", &EvictParams::default()).await.expect("first");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    let status = pdbs.get("web").await.expect("pdb").status.expect("status");
    assert_eq!(status.expected_pods, 3);
    // Three pods left: 25% of 3 rounds up to one allowed, but only if all three are healthy.
    assert_eq!(status.disruptions_allowed, 1);
    pods.evict("web-1", &EvictParams::default())
        .await
        .expect("second");
}

#[tokio::test]
async fn pending_pods_are_evicted_regardless_of_the_budget() {
    let (server, client) = server().await;
    web_pods(&server, 1);
    server
        .insert(&pod("web-pending").label("app", "web").build())
        .expect("insert");
    server
        .set_pdb(
            "default",
            "web",
            [("app", "web")],
            Budget::MinAvailable(IntOrString::Int(1)),
        )
        .expect("pdb");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.evict("web-pending", &EvictParams::default())
        .await
        .expect("pending pods do not count");
    let refused = status_of(pods.evict("web-0", &EvictParams::default()).await);
    assert_eq!(refused.code, 429);
}

#[tokio::test]
async fn evicting_a_missing_pod_is_not_found() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = status_of(pods.evict("ghost", &EvictParams::default()).await);
    assert_eq!(status.code, 404);
}

#[tokio::test]
async fn a_pod_under_two_budgets_cannot_be_evicted() {
    let (server, client) = server().await;
    web_pods(&server, 2);
    for name in ["a", "b"] {
        server
            .set_pdb(
                "default",
                name,
                [("app", "web")],
                Budget::MinAvailable(IntOrString::Int(0)),
            )
            .expect("pdb");
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = status_of(pods.evict("web-0", &EvictParams::default()).await);
    assert_eq!(status.code, 500);
}

fn binding(pod: &str, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: Some(pod.into()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..ObjectReference::default()
        },
    }
}

#[tokio::test]
async fn binding_sets_node_name_once_and_then_conflicts() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");
    let body = binding("web-0", "n1");
    pods.create_subresource::<_, kube::core::Status>("binding", "web-0", &PostParams::default(), &body)
        .await
        .expect("bind");
    let bound = pods.get("web-0").await.expect("get");
    assert_eq!(bound.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    let scheduled = bound
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .expect("PodScheduled");
    assert_eq!(scheduled.status, "True");

    let status = status_of(
        pods.create_subresource::<_, kube::core::Status>("binding", "web-0", &PostParams::default(), &body)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on pods/binding \"web-0\": pod web-0 is already assigned to node \"n1\""
    );
}
