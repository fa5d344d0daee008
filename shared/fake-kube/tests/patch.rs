//! Patches in each format the fake accepts, on the node fields a provisioner touches.

mod common;

use common::{server, status_of};
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Api, Patch, PatchParams};
use nodewright_fake_kube::{FakeApiServer, NodeRegistration};
use serde_json::json;

fn node_with_taint(server: &FakeApiServer) -> Api<Node> {
    server
        .register_node(
            NodeRegistration::new("n1")
                .label("karpenter.sh/nodepool", "default")
                .taint("karpenter.sh/unregistered", "", "NoExecute")
                .allocatable("cpu", "4"),
        )
        .expect("register");
    Api::all(server.client().expect("client"))
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

#[tokio::test]
async fn merge_patch_of_node_labels_merges_and_null_removes() {
    let (server, _client) = server().await;
    let nodes = node_with_taint(&server);
    let patch =
        json!({"metadata": {"labels": {"karpenter.sh/initialized": "true", "karpenter.sh/nodepool": null}}});
    let node = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let labels = node.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("karpenter.sh/initialized").map(String::as_str),
        Some("true")
    );
    assert!(!labels.contains_key("karpenter.sh/nodepool"));
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("n1")
    );
}

#[tokio::test]
async fn merge_patch_replaces_the_taint_list_and_cordons() {
    let (server, _client) = server().await;
    let nodes = node_with_taint(&server);
    let patch = json!({"spec": {
        "unschedulable": true,
        "taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]
    }});
    let node = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    assert_eq!(taint_keys(&node), ["karpenter.sh/disrupted:NoSchedule"]);
    assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));
}

#[tokio::test]
async fn strategic_merge_patch_also_replaces_node_taints_as_the_real_server_does() {
    // Node.spec.taints has no patchStrategy, so a strategic merge patch replaces the list:
    // callers that add one taint must send the whole list.
    let (server, _client) = server().await;
    let nodes = node_with_taint(&server);
    let patch = json!({"spec": {"taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]},
                       "metadata": {"labels": {"extra": "1"}}});
    let node = nodes
        .patch("n1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch");
    assert_eq!(taint_keys(&node), ["karpenter.sh/disrupted:NoSchedule"]);
    let labels = node.metadata.labels.unwrap_or_default();
    assert!(labels.contains_key("extra") && labels.contains_key("karpenter.sh/nodepool"));
}

#[tokio::test]
async fn strategic_merge_patch_merges_node_conditions_by_type() {
    let (server, _client) = server().await;
    let nodes = node_with_taint(&server);
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}});
    let node = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch");
    let conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
    assert_eq!(conditions.len(), 4, "other conditions stay");
    let ready = conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
}

/// kube's `Patch::Json` needs its `jsonpatch` feature; a raw request sends the same bytes.
async fn json_patch(client: &kube::Client, node: &str, ops: &serde_json::Value) -> kube::Result<Node> {
    let request = http::Request::patch(format!("/api/v1/nodes/{node}"))
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(ops.to_string().into_bytes())
        .expect("request builds");
    client.request::<Node>(request).await
}

#[tokio::test]
async fn json_patch_removes_a_taint_guarded_by_a_test() {
    let (server, client) = server().await;
    node_with_taint(&server);
    let ops = json!([
        {"op": "test", "path": "/spec/taints/0/key", "value": "karpenter.sh/unregistered"},
        {"op": "remove", "path": "/spec/taints/0"}
    ]);
    let node = json_patch(&client, "n1", &ops).await.expect("patch");
    assert!(taint_keys(&node).is_empty());

    let status = status_of(json_patch(&client, "n1", &ops).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn server_side_apply_is_unsupported_media_type() {
    let (server, _client) = server().await;
    let nodes = node_with_taint(&server);
    let patch = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"a": "b"}}});
    let status = status_of(
        nodes
            .patch("n1", &PatchParams::apply("nodewright"), &Patch::Apply(&patch))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
}

#[tokio::test]
async fn a_taint_with_an_unknown_effect_is_invalid() {
    let (server, _client) = server().await;
    let nodes = node_with_taint(&server);
    let patch = json!({"spec": {"taints": [Taint { key: "a".into(), effect: "Sometimes".into(), ..Taint::default() }]}});
    let status = status_of(
        nodes
            .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("spec.taints[0].effect: Unsupported value"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn patching_a_missing_node_is_not_found() {
    let (_server, client) = server().await;
    let nodes: Api<Node> = Api::all(client);
    let patch = json!({"metadata": {"labels": {"a": "b"}}});
    let status = status_of(
        nodes
            .patch("ghost", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(status.code, 404);
}
