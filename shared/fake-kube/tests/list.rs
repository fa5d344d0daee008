//! Lists: ordering, label and field selectors, pagination with limit/continue.

mod common;

use common::{pod, server, status_of};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use nodewright_fake_kube::FakeApiServer;

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

async fn seed(server: &FakeApiServer) {
    let fixtures = [
        pod("web-1")
            .label("app", "web")
            .label("tier", "front")
            .running()
            .node("n1"),
        pod("web-0").label("app", "web").label("tier", "front"),
        pod("db-0").label("app", "db").running().node("n2"),
        pod("batch-0").label("app", "batch").namespace("jobs"),
        pod("lonely").namespace("jobs"),
    ];
    for fixture in fixtures {
        server.insert(&fixture.build()).expect("insert");
    }
}

#[tokio::test]
async fn lists_are_sorted_by_namespace_then_name() {
    let (server, client) = server().await;
    seed(&server).await;
    let all: Api<Pod> = Api::all(client);
    let listed = all.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        names(&listed.items),
        ["db-0", "web-0", "web-1", "batch-0", "lonely"]
    );
    let version: u64 = listed
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("list resourceVersion");
    assert_eq!(version, server.resource_version());
}

#[tokio::test]
async fn label_selectors_filter_with_every_operator() {
    let (server, client) = server().await;
    seed(&server).await;
    let all: Api<Pod> = Api::all(client);
    let cases = [
        ("app=web", vec!["web-0", "web-1"]),
        ("app==db", vec!["db-0"]),
        ("app!=web", vec!["db-0", "batch-0", "lonely"]),
        ("app in (db, batch)", vec!["db-0", "batch-0"]),
        ("app notin (web)", vec!["db-0", "batch-0", "lonely"]),
        ("tier", vec!["web-0", "web-1"]),
        ("!app", vec!["lonely"]),
        ("app=web,tier=front", vec!["web-0", "web-1"]),
        // Each requirement holds on its own: `app` needs the label beside `app!=web`.
        ("app,app!=web", vec!["db-0", "batch-0"]),
        // `()` is the empty value, which no pod's app label has.
        (
            "app notin ()",
            vec!["db-0", "web-0", "web-1", "batch-0", "lonely"],
        ),
        ("app in ()", vec![]),
    ];
    for (selector, expected) in cases {
        let listed = all
            .list(&ListParams::default().labels(selector))
            .await
            .expect(selector);
        assert_eq!(names(&listed.items), expected, "{selector}");
    }
}

#[tokio::test]
async fn malformed_label_selector_is_a_bad_request() {
    let (_server, client) = server().await;
    let all: Api<Pod> = Api::all(client);
    let status = status_of(all.list(&ListParams::default().labels("app in web")).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
}

#[tokio::test]
async fn field_selectors_select_by_node_name_phase_and_name() {
    let (server, client) = server().await;
    seed(&server).await;
    let all: Api<Pod> = Api::all(client.clone());
    let cases = [
        ("spec.nodeName=", vec!["web-0", "batch-0", "lonely"]),
        ("spec.nodeName=n1", vec!["web-1"]),
        ("spec.nodeName!=", vec!["db-0", "web-1"]),
        ("status.phase=Running", vec!["db-0", "web-1"]),
        (
            "status.phase==Pending,metadata.namespace=jobs",
            vec!["batch-0", "lonely"],
        ),
        ("metadata.name=lonely", vec!["lonely"]),
    ];
    for (selector, expected) in cases {
        let listed = all
            .list(&ListParams::default().fields(selector))
            .await
            .expect(selector);
        assert_eq!(names(&listed.items), expected, "{selector}");
    }
}

#[tokio::test]
async fn unsupported_field_label_is_a_bad_request() {
    let (_server, client) = server().await;
    let all: Api<Pod> = Api::all(client.clone());
    let status = status_of(all.list(&ListParams::default().fields("spec.priority=1")).await);
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "field label not supported: spec.priority");

    // Nodes are cluster-scoped, so they have no metadata.namespace field.
    let nodes: Api<Node> = Api::all(client);
    let status = status_of(
        nodes
            .list(&ListParams::default().fields("metadata.namespace=default"))
            .await,
    );
    assert_eq!(status.code, 400);
}

#[tokio::test]
async fn pagination_walks_every_item_once_with_limit_and_continue() {
    let (server, client) = server().await;
    for i in 0..7 {
        server.insert(&pod(&format!("p-{i}")).build()).expect("insert");
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = 0;
    let mut versions = Vec::new();
    loop {
        let page = pods.list(&params).await.expect("page");
        pages += 1;
        versions.push(page.metadata.resource_version.clone());
        seen.extend(names(&page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                let remaining = page.metadata.remaining_item_count.expect("remaining count");
                assert_eq!(remaining as usize, 7 - seen.len());
                params = params.continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("p-{i}")).collect::<Vec<_>>());
    assert!(
        versions.windows(2).all(|w| w[0] == w[1]),
        "every page reports the first page's version"
    );
}

#[tokio::test]
async fn pagination_with_a_selector_omits_the_remaining_count() {
    let (server, client) = server().await;
    for i in 0..4 {
        server
            .insert(&pod(&format!("p-{i}")).label("app", "web").build())
            .expect("insert");
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let page = pods
        .list(&ListParams::default().labels("app=web").limit(2))
        .await
        .expect("page");
    assert_eq!(page.items.len(), 2);
    assert!(page.metadata.continue_.is_some());
    assert_eq!(page.metadata.remaining_item_count, None);
}

#[tokio::test]
async fn a_garbled_continue_token_is_a_bad_request() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let status = status_of(
        pods.list(&ListParams::default().limit(1).continue_token("garbage"))
            .await,
    );
    assert_eq!(status.code, 400);
}

#[tokio::test]
async fn created_pods_are_listed_through_the_api_too() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("a").build())
        .await
        .expect("create");
    let listed = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(names(&listed.items), ["a"]);
}
