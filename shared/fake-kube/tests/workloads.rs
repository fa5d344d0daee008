//! Workload and policy objects through typed APIs: DaemonSets and PodDisruptionBudgets.

mod common;

use common::{server, status_of};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use nodewright_fake_kube::builders::pod;
use serde_json::json;

fn daemonset(selector: &str, template_label: &str) -> DaemonSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": selector}},
            "template": {
                "metadata": {"labels": {"app": template_label}},
                "spec": {"containers": [{"name": "agent", "image": "agent:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
            }
        }
    }))
    .expect("daemonset")
}

#[tokio::test]
async fn daemonsets_are_created_with_defaults_and_listed() {
    let (_server, client) = server().await;
    let daemonsets: Api<DaemonSet> = Api::all(client.clone());
    let in_namespace: Api<DaemonSet> = Api::namespaced(client, "kube-system");
    in_namespace
        .create(&PostParams::default(), &daemonset("agent", "agent"))
        .await
        .expect("create");
    let listed = daemonsets.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    let template = listed.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("template spec");
    assert_eq!(template.scheduler_name.as_deref(), Some("default-scheduler"));
}

#[tokio::test]
async fn a_daemonset_whose_selector_misses_its_template_is_invalid() {
    let (_server, client) = server().await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client, "kube-system");
    let status = status_of(
        daemonsets
            .create(&PostParams::default(), &daemonset("agent", "other"))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("`selector` does not match template `labels`"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn a_budget_created_through_the_api_gets_its_status_from_the_disruption_controller() {
    let (server, client) = server().await;
    for i in 0..2 {
        server
            .insert(
                &pod(&format!("web-{i}"))
                    .label("app", "web")
                    .node("n1")
                    .running()
                    .build(),
            )
            .expect("insert");
    }
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    let budget: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
    }))
    .expect("pdb");
    pdbs.create(&PostParams::default(), &budget)
        .await
        .expect("create");
    let status = pdbs.get("web").await.expect("get").status.expect("status");
    assert_eq!(
        (
            status.expected_pods,
            status.desired_healthy,
            status.current_healthy,
            status.disruptions_allowed
        ),
        (2, 1, 2, 1)
    );
    let allowed = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .expect("condition");
    assert_eq!(allowed.status, "True");
}

#[tokio::test]
async fn a_budget_with_both_min_and_max_is_invalid() {
    let (_server, client) = server().await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    let budget: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .expect("pdb");
    let status = status_of(pdbs.create(&PostParams::default(), &budget).await);
    assert_eq!(status.code, 422);
}
