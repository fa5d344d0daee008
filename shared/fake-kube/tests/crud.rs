//! Create, get, replace and delete through a real kube::Client, and the failures the real API
//! server gives for each.

mod common;

use common::{server, status_of};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use nodewright_fake_kube::builders::pod;
use serde_json::json;

#[tokio::test]
async fn created_pod_gets_uid_resource_version_and_pending_status() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = pods
        .create(&PostParams::default(), &pod("web-0").running().build())
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.resource_version.is_some());
    assert!(meta.creation_timestamp.is_some());
    // Status belongs to the server on create, whatever the client sent.
    let status = created.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let fetched = pods.get("web-0").await.expect("get");
    assert_eq!(fetched.metadata.uid, meta.uid);
}

#[tokio::test]
async fn getting_a_missing_pod_is_not_found() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = status_of(pods.get("nope").await);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "pods \"nope\" not found");
    assert_eq!(pods.get_opt("nope").await.expect("get_opt"), None);
}

#[tokio::test]
async fn creating_an_existing_name_is_already_exists() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("first create");
    let status = status_of(pods.create(&PostParams::default(), &pod("web-0").build()).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(status.message, "pods \"web-0\" already exists");
}

#[tokio::test]
async fn stale_resource_version_update_is_rejected_with_409() {
    let (_server, client) = server().await;
    let nodes: Api<Node> = Api::all(client);
    let mut node = Node::default();
    node.metadata.name = Some("n1".into());
    let created = nodes.create(&PostParams::default(), &node).await.expect("create");

    let mut first = created.clone();
    first.metadata.labels = Some([("a".to_string(), "1".to_string())].into());
    let updated = nodes
        .replace("n1", &PostParams::default(), &first)
        .await
        .expect("first replace");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );

    let mut stale = created;
    stale.metadata.labels = Some([("b".to_string(), "2".to_string())].into());
    let status = status_of(nodes.replace("n1", &PostParams::default(), &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on nodes \"n1\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn stale_resource_version_in_a_patch_is_rejected_with_409() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");
    let patch = json!({"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}});
    let status = status_of(
        pods.patch("web-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn replace_that_changes_nothing_keeps_the_resource_version() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = pods
        .create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");
    let replaced = pods
        .replace("web-0", &PostParams::default(), &created)
        .await
        .expect("replace");
    assert_eq!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn pod_without_containers_is_invalid_with_422() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut bad = pod("web-0").build();
    if let Some(spec) = bad.spec.as_mut() {
        spec.containers.clear();
    }
    let status = status_of(pods.create(&PostParams::default(), &bad).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "Pod \"web-0\" is invalid: spec.containers: Required value"
    );
    let details = status.details.expect("details");
    assert_eq!(details.causes[0].field, "spec.containers");
}

#[tokio::test]
async fn names_that_are_not_dns_subdomains_are_invalid() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = status_of(pods.create(&PostParams::default(), &pod("Web_0").build()).await);
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("metadata.name: Invalid value: \"Web_0\""),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_not_found() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    let status = status_of(
        pods.create(&PostParams::default(), &pod("web-0").namespace("team-a").build())
            .await,
    );
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "namespaces \"team-a\" not found");

    let namespaces: Api<Namespace> = Api::all(client);
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some("team-a".into());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    pods.create(&PostParams::default(), &pod("web-0").namespace("team-a").build())
        .await
        .expect("create after the namespace exists");
}

#[tokio::test]
async fn generate_name_gets_a_random_suffix() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut template = pod("x").build();
    template.metadata.name = None;
    template.metadata.generate_name = Some("worker-".into());
    let a = pods.create(&PostParams::default(), &template).await.expect("a");
    let b = pods.create(&PostParams::default(), &template).await.expect("b");
    let (a, b) = (a.metadata.name.expect("name"), b.metadata.name.expect("name"));
    assert!(a.starts_with("worker-") && a.len() == "worker-".len() + 5, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn delete_removes_at_once_and_a_second_delete_is_not_found() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");
    pods.delete("web-0", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(pods.get_opt("web-0").await.expect("get"), None);
    let status = status_of(pods.delete("web-0", &DeleteParams::default()).await);
    assert_eq!(status.code, 404);
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let (_server, client) = server().await;
    let nodes: Api<Node> = Api::all(client);
    let mut node = Node::default();
    node.metadata.name = Some("n1".into());
    node.metadata.finalizers = Some(vec!["karpenter.sh/termination".into()]);
    nodes.create(&PostParams::default(), &node).await.expect("create");

    let deleted = nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("delete");
    let held = deleted
        .left()
        .expect("the object comes back while finalizers hold it");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(nodes.get("n1").await.is_ok());

    let patch = json!({"metadata": {"finalizers": null}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("remove finalizers");
    assert_eq!(nodes.get_opt("n1").await.expect("get"), None);
}

#[tokio::test]
async fn no_new_finalizers_can_be_added_to_a_deleting_object() {
    let (_server, client) = server().await;
    let nodes: Api<Node> = Api::all(client);
    let mut node = Node::default();
    node.metadata.name = Some("n1".into());
    node.metadata.finalizers = Some(vec!["example.com/a".into()]);
    nodes.create(&PostParams::default(), &node).await.expect("create");
    nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("delete");
    let patch = json!({"metadata": {"finalizers": ["example.com/a", "example.com/b"]}});
    let status = status_of(
        nodes
            .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn delete_with_a_stale_precondition_is_a_conflict() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    let status = status_of(pods.delete("web-0", &params).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn main_resource_writes_ignore_status_and_status_writes_ignore_spec() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");

    let patch = json!({"metadata": {"labels": {"a": "1"}}, "status": {"phase": "Running"}});
    let patched = pods
        .patch("web-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    assert_eq!(patched.status.and_then(|s| s.phase).as_deref(), Some("Pending"));

    let patch = json!({"metadata": {"labels": {"b": "2"}}, "status": {"phase": "Running"}});
    let patched = pods
        .patch_status("web-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch status");
    assert_eq!(patched.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    let labels = patched.metadata.labels.unwrap_or_default();
    assert!(labels.contains_key("a") && !labels.contains_key("b"));
}

#[tokio::test]
async fn a_pod_update_cannot_set_node_name_outside_binding() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("create");
    let patch = json!({"spec": {"nodeName": "n1"}});
    let status = status_of(
        pods.patch("web-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec: Forbidden: pod updates may not change fields")
    );
}

fn nodepools() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
        "nodepools",
    )
}

#[tokio::test]
async fn custom_resources_round_trip_through_dynamic_objects() {
    let (server, client) = server().await;
    let api: Api<DynamicObject> = Api::all_with(client, &nodepools());
    let mut object = DynamicObject::new("default", &nodepools());
    object.data = json!({
        "spec": {"template": {"spec": {"requirements": [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
        ]}}},
        "status": {"conditions": []}
    });
    let created = api.create(&PostParams::default(), &object).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    assert_eq!(
        created.data["spec"]["template"]["spec"]["requirements"][0]["values"][0],
        "spot"
    );

    let listed = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].types.as_ref().map(|t| t.kind.as_str()),
        Some("NodePool")
    );

    let patch = json!({"spec": {"limits": {"cpu": "1000"}}});
    let patched = api
        .patch("default", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("merge patch");
    assert_eq!(patched.metadata.generation, Some(2));

    let status = status_of(
        api.patch("default", &PatchParams::default(), &Patch::Strategic(&patch))
            .await,
    );
    assert_eq!(status.code, 415, "custom resources take no strategic merge patch");

    let stored = server
        .get_object("nodepools.karpenter.sh", None, "default")
        .expect("stored");
    assert_eq!(stored["spec"]["limits"]["cpu"], "1000");
}

#[tokio::test]
async fn custom_resource_replace_without_resource_version_is_invalid() {
    let (_server, client) = server().await;
    let classes = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.k8s.aws", "v1", "EC2NodeClass"),
        "ec2nodeclasses",
    );
    let api: Api<DynamicObject> = Api::all_with(client, &classes);
    let mut object = DynamicObject::new("default", &classes);
    object.data = json!({"spec": {"role": "KarpenterNodeRole"}});
    let mut created = api.create(&PostParams::default(), &object).await.expect("create");
    created.metadata.resource_version = None;
    let status = status_of(api.replace("default", &PostParams::default(), &created).await);
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn node_claims_are_served_cluster_scoped() {
    let (_server, client) = server().await;
    let claims = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
        "nodeclaims",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &claims);
    let mut claim = DynamicObject::new("default-abcde", &claims);
    claim.data = json!({"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}}});
    api.create(&PostParams::default(), &claim).await.expect("create");
    let namespaced: Api<DynamicObject> = Api::namespaced_with(client, "default", &claims);
    let status = status_of(namespaced.get("default-abcde").await);
    assert_eq!(
        status.code, 404,
        "a cluster-scoped resource has no namespaced path"
    );
}

#[tokio::test]
async fn dry_run_creates_nothing() {
    let (server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let created = pods
        .create(&params, &pod("web-0").build())
        .await
        .expect("dry run");
    assert_eq!(created.metadata.name.as_deref(), Some("web-0"));
    assert!(server.get::<Pod>(Some("default"), "web-0").is_none());
}

#[tokio::test]
async fn inserted_fixtures_keep_their_status_and_age_and_create_their_namespace() {
    let (server, client) = server().await;
    let mut fixture = pod("old-web").namespace("team-b").running().node("n1").build();
    let created_at = "2024-01-02T03:04:05Z";
    fixture.metadata.creation_timestamp = Some(serde_json::from_value(json!(created_at)).expect("time"));
    server.insert(&fixture).expect("insert");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-b");
    let stored = pods.get("old-web").await.expect("get");
    assert_eq!(stored.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    let age = serde_json::to_value(stored.metadata.creation_timestamp).expect("json");
    assert_eq!(age, json!(created_at));
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(namespaces.get("team-b").await.is_ok());
}
