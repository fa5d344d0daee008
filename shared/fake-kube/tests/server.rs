//! The HTTP surface: routing failures, discovery, the request log and injected faults.

mod common;

use common::{server, status_of};
use futures::StreamExt;
use http::Method;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use kube::core::WatchEvent;
use nodewright_fake_kube::builders::pod;
use nodewright_fake_kube::{RequestMatcher, Verb};
use serde_json::Value;

async fn raw(client: &kube::Client, method: Method, path: &str) -> kube::Result<Value> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(b"{}".to_vec())
        .expect("request builds");
    client.request::<Value>(request).await
}

#[tokio::test]
async fn unknown_resource_paths_are_not_found() {
    let (_server, client) = server().await;
    for path in [
        "/api/v1/widgets",
        "/apis/example.com/v1/things",
        "/api/v1/namespaces/default/nodes/n1",
        "/api/v1/pods/web-0",
        "/api/v1/namespaces/default/pods/web-0/exec-ish",
        "/nothing",
    ] {
        let status = status_of(raw(&client, Method::GET, path).await);
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"), "{path}");
    }
}

#[tokio::test]
async fn wrong_methods_are_method_not_allowed() {
    let (_server, client) = server().await;
    for (method, path) in [
        (Method::POST, "/api/v1/namespaces/default/pods/web-0"),
        (Method::PUT, "/api/v1/namespaces/default/pods"),
        (Method::POST, "/api/v1/pods"),
        (Method::GET, "/api/v1/namespaces/default/pods/web-0/eviction"),
        (Method::DELETE, "/api/v1/nodes/n1/status"),
    ] {
        let status = status_of(raw(&client, method.clone(), path).await);
        assert_eq!(
            (status.code, status.reason.as_str()),
            (405, "MethodNotAllowed"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn watch_is_refused_with_a_clear_message() {
    let (_server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let outcome = match pods.watch(&WatchParams::default(), "0").await {
        Err(error) => error.to_string(),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match stream.next().await {
                Some(Ok(WatchEvent::Error(status))) => status.message,
                other => format!("{other:?}"),
            }
        }
    };
    assert!(outcome.contains("watch is not supported"), "{outcome}");
}

#[tokio::test]
async fn discovery_and_version_answer() {
    let (_server, client) = server().await;
    let version = client.apiserver_version().await.expect("version");
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "34"));
    let groups = raw(&client, Method::GET, "/apis").await.expect("groups");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(
        names.contains(&"karpenter.sh") && names.contains(&"policy"),
        "{names:?}"
    );
    let core = raw(&client, Method::GET, "/api/v1").await.expect("core");
    let resources: Vec<&str> = core["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(resources.contains(&"pods/eviction") && resources.contains(&"nodes"));
}

#[tokio::test]
async fn the_request_log_records_method_path_query_and_status() {
    let (server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    server.clear_requests();
    pods.list(&ListParams::default().labels("app=web").limit(10))
        .await
        .expect("list");
    let _ = pods.get("ghost").await;
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, Method::GET);
    assert_eq!(log[0].path, "/api/v1/namespaces/default/pods");
    assert_eq!(log[0].verb, Some(Verb::List));
    assert_eq!(log[0].param("labelSelector").as_deref(), Some("app=web"));
    assert_eq!(log[0].status, 200);
    assert_eq!((log[1].verb, log[1].status), (Some(Verb::Get), 404));
}

#[tokio::test]
async fn injected_faults_fail_the_next_matching_requests_then_stop() {
    let (server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    server.fail_next(
        RequestMatcher::any()
            .verb(Verb::Create)
            .path_prefix("/api/v1/namespaces/default/pods"),
        503,
        2,
    );

    // A list is not a create, so it passes untouched.
    pods.list(&ListParams::default()).await.expect("list passes");
    for _ in 0..2 {
        let status = status_of(pods.create(&PostParams::default(), &pod("web-0").build()).await);
        assert_eq!((status.code, status.reason.as_str()), (503, "ServiceUnavailable"));
    }
    pods.create(&PostParams::default(), &pod("web-0").build())
        .await
        .expect("the third create goes through");
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 503, 201]);
}

#[tokio::test]
async fn a_dropped_server_stops_answering_pooled_connections() {
    let (server, client) = server().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.list(&ListParams::default())
        .await
        .expect("served while running");
    drop(server);
    // Let the runtime run the cancellation of the server task and its connections.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(pods.list(&ListParams::default()).await.is_err());
}
