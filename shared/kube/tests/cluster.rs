//! `KubeCluster` over HTTP against the fake API server, with a real `kube::Client`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nodewright_core::pod::{Taint, TaintEffect};
use nodewright_core::ports::{Cluster, ErrorKind, Eviction, NodePatch, PortResult};
use nodewright_fake_kube::builders::{self, PodBuilder};
use nodewright_fake_kube::{Budget, FakeApiServer, NodeRegistration, RequestMatcher, Verb};
use nodewright_kube::{ConfigSource, KubeCluster, is_pending_unschedulable};
use serde_json::{Value, json};

async fn server() -> (FakeApiServer, KubeCluster) {
    let server = FakeApiServer::start().await.expect("fake API server");
    let cluster = KubeCluster::from_config(server.config()).expect("cluster");
    (server, cluster)
}

/// A pod of app `inflate` requesting a CPU.
fn pod(name: &str) -> PodBuilder {
    builders::pod(name).label("app", "inflate").cpu("1")
}

fn names(pods: &[nodewright_core::pod::Pod]) -> Vec<String> {
    let mut names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    names.sort();
    names
}

fn nodepool(name: &str) -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {
                "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}],
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            }},
            "limits": {"cpu": 1000},
        },
    })
}

fn nodeclass(name: &str) -> Value {
    json!({
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": {
            "role": "KarpenterNodeRole-demo",
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "demo"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "demo"}}],
        },
    })
}

fn taint() -> Taint {
    Taint {
        key: "karpenter.sh/disrupted".into(),
        value: None,
        effect: TaintEffect::NoSchedule,
        time_added: None,
    }
}

#[tokio::test]
async fn pending_pods_are_the_unschedulable_ones_checked_again_on_our_side() {
    let (server, cluster) = server().await;
    server.insert(&pod("not-yet-seen").json()).expect("insert"); // Pending, no PodScheduled condition
    server
        .insert(&pod("waiting").unschedulable().json())
        .expect("insert");
    server
        .insert(
            &pod("daemon")
                .unschedulable()
                .owned_by("DaemonSet", "owner")
                .json(),
        )
        .expect("insert");
    server
        .insert(
            &pod("replica")
                .unschedulable()
                .owned_by("ReplicaSet", "owner")
                .json(),
        )
        .expect("insert");
    let mut terminating = pod("terminating").unschedulable().json();
    terminating["metadata"]["finalizers"] = json!(["example.com/hold"]);
    server.insert(&terminating).expect("insert");
    server
        .delete_object("pods", Some("default"), "terminating")
        .expect("delete sets deletionTimestamp");
    let mut bound = pod("bound").json();
    bound["spec"]["nodeName"] = json!("ip-10-0-1-5.ec2.internal");
    server.insert(&bound).expect("insert");
    // Static pods' mirrors are owned by their Node.
    let mut mirror = pod("mirror").unschedulable().json();
    mirror["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u-2", "controller": true}]);
    server.insert(&mirror).expect("insert");
    // A DaemonSet owner that is not the controller still makes it a DaemonSet's pod.
    let mut daemon_owned = pod("daemon-owned")
        .unschedulable()
        .owned_by("DaemonSet", "owner")
        .json();
    daemon_owned["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    server.insert(&daemon_owned).expect("insert");
    // Preempting lower-priority pods: it will land on the nominated node.
    let mut preempting = pod("preempting").unschedulable().json();
    preempting["status"]["nominatedNodeName"] = json!("n1");
    server.insert(&preempting).expect("insert");
    // Held back by a scheduling gate, not refused by the scheduler.
    let mut gated = pod("gated").json();
    gated["spec"]["schedulingGates"] = json!([{"name": "example.com/wait"}]);
    gated["status"] = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
    server.insert(&gated).expect("insert");

    let pending = cluster.list_pending_pods().await.expect("list");
    assert_eq!(
        names(&pending),
        vec!["replica".to_string(), "waiting".to_string()]
    );
    let list = server
        .requests()
        .into_iter()
        .find(|r| r.verb == Some(Verb::List) && r.path == "/api/v1/pods")
        .expect("a list of pods");
    assert_eq!(
        list.param("fieldSelector").as_deref(),
        Some("spec.nodeName=,status.phase=Pending")
    );
}

#[tokio::test]
async fn a_pod_that_cannot_be_read_is_skipped_and_the_rest_still_load() {
    let (server, cluster) = server().await;
    server
        .insert(&pod("good").unschedulable().json())
        .expect("insert");
    let mut bad = pod("bad").unschedulable().json();
    // The server does not validate operators inside affinity terms; the scheduler (and we) must.
    bad["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]
    }}});
    server.insert(&bad).expect("insert");
    let pending = cluster.list_pending_pods().await.expect("list");
    assert_eq!(names(&pending), vec!["good".to_string()]);
}

#[tokio::test]
async fn lists_follow_continue_tokens_across_pages() {
    let (server, cluster) = server().await;
    let cluster = cluster.with_page_size(2);
    for i in 0..5 {
        server
            .insert(&pod(&format!("p{i}")).unschedulable().json())
            .expect("insert");
    }
    let pending = cluster.list_pending_pods().await.expect("list");
    assert_eq!(pending.len(), 5);
    let pages: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.verb == Some(Verb::List) && r.path == "/api/v1/pods")
        .collect();
    assert_eq!(pages.len(), 3, "5 pods in pages of 2");
    assert!(pages.iter().all(|p| p.param("limit").as_deref() == Some("2")));
    assert!(pages[1].param("continue").is_some_and(|c| !c.is_empty()));
}

#[tokio::test]
async fn bound_pods_nodes_and_daemonsets_are_listed() {
    let (server, cluster) = server().await;
    server
        .register_node(
            NodeRegistration::new("ip-10-0-1-5.ec2.internal")
                .label("topology.kubernetes.io/zone", "us-east-1a")
                .allocatable("cpu", "3920m")
                .allocatable("memory", "14Gi")
                .allocatable("pods", "58"),
        )
        .expect("node");
    let mut bound = pod("bound").json();
    bound["spec"]["nodeName"] = json!("ip-10-0-1-5.ec2.internal");
    bound["status"] = json!({"phase": "Running"});
    server.insert(&bound).expect("insert");
    let mut done = pod("done").json();
    done["spec"]["nodeName"] = json!("ip-10-0-1-5.ec2.internal");
    done["status"] = json!({"phase": "Succeeded"});
    server.insert(&done).expect("insert");
    server
        .insert(&json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "aws-node", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "aws-node"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "aws-node"}},
                    "spec": {"containers": [{"name": "aws-node", "image": "cni", "resources": {"requests": {"cpu": "25m"}}}]},
                },
            },
        }))
        .expect("daemonset");

    assert_eq!(
        names(&cluster.list_bound_pods().await.expect("bound")),
        vec!["bound".to_string()]
    );
    let nodes = cluster.list_nodes().await.expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].allocatable.cpu(), 3920);
    let daemonsets = cluster.list_daemonsets().await.expect("daemonsets");
    assert_eq!(daemonsets.len(), 1);
    assert_eq!(daemonsets[0].name, "aws-node");
    assert_eq!(daemonsets[0].pod.requests.cpu(), 25);
}

#[tokio::test]
async fn namespaces_are_listed_with_their_labels() {
    let (server, cluster) = server().await;
    for (name, team) in [("shop", "payments"), ("blog", "content")] {
        server
            .insert(&json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"team": team}},
            }))
            .expect("namespace");
    }
    let labels = cluster.list_namespace_labels().await.expect("namespaces");
    assert_eq!(
        labels.get("shop").and_then(|l| l.get("team")).map(String::as_str),
        Some("payments"),
        "{labels:?}"
    );
    assert_eq!(
        labels.get("blog").and_then(|l| l.get("team")).map(String::as_str),
        Some("content")
    );
}

#[tokio::test]
async fn a_pending_pods_volume_pins_it_to_the_zone_of_its_persistent_volume() {
    let (server, cluster) = server().await;
    for object in [
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com",
               "volumeBindingMode": "WaitForFirstConsumer"}),
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1c"]}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data", "namespace": "default"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "volumeName": "pv-1",
                        "resources": {"requests": {"storage": "1Gi"}}}}),
    ] {
        server.insert(&object).expect("insert");
    }
    let mut p = pod("db-0").unschedulable().json();
    p["spec"]["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]);
    server.insert(&p).expect("pod");

    let mut pending = cluster.list_pending_pods().await.expect("pending");
    let waiting = nodewright_core::provisioning::constrain_by_volumes(&cluster, &mut pending)
        .await
        .expect("volumes");
    assert!(waiting.is_empty(), "{waiting:?}");
    let zone = |z: &str| BTreeMap::from([(nodewright_core::labels::ZONE.to_string(), z.to_string())]);
    let [db] = pending.as_slice() else {
        panic!("one pod: {pending:?}");
    };
    assert!(
        db.node_requirement_terms()
            .iter()
            .any(|t| t.matches_labels(&zone("us-east-1c")))
    );
    assert!(
        !db.node_requirement_terms()
            .iter()
            .any(|t| t.matches_labels(&zone("us-east-1a")))
    );
}

#[tokio::test]
async fn an_event_said_twice_is_one_event_with_a_series_of_two() {
    use nodewright_core::events::{EventType, KubeEvent};
    let (server, cluster) = server().await;
    let nominated = KubeEvent::pod(
        "default/web-0",
        EventType::Normal,
        "Nominated",
        "Scheduling",
        "Pod should schedule on: nodeclaim/default-abc12".into(),
    );
    let blocked = KubeEvent::node(
        "ip-10-0-1-5.ec2.internal",
        EventType::Normal,
        "DisruptionBlocked",
        "Draining",
        "Cannot evict pod default/db-0 yet: PodDisruptionBudget db".into(),
    );
    assert_eq!(
        cluster
            .record_events(&[nominated.clone(), blocked])
            .await
            .expect("recorded"),
        2
    );
    assert_eq!(
        cluster
            .record_events(std::slice::from_ref(&nominated))
            .await
            .expect("recorded"),
        1
    );
    let events = server.list_objects("events.events.k8s.io", Some("default"));
    assert_eq!(events.len(), 2, "{events:#?}");
    let pod_event = events
        .iter()
        .find(|e| e["regarding"]["kind"] == "Pod")
        .expect("the pod's event");
    assert_eq!(pod_event["metadata"]["name"], nominated.name());
    assert_eq!(pod_event["reason"], "Nominated");
    assert_eq!(pod_event["type"], "Normal");
    assert_eq!(pod_event["regarding"]["name"], "web-0");
    assert_eq!(pod_event["reportingController"], "nodewright.io/provisioner");
    assert_eq!(pod_event["series"]["count"], 2);
    let node_event = events
        .iter()
        .find(|e| e["regarding"]["kind"] == "Node")
        .expect("the node's event");
    assert_eq!(node_event["regarding"]["name"], "ip-10-0-1-5.ec2.internal");
    assert!(node_event["regarding"].get("namespace").is_none());
}

#[tokio::test]
async fn pool_statuses_are_written_with_the_status_subresource_and_the_pools_still_parse() {
    use nodewright_core::config_status::{ConfigKind, StatusUpdate};
    let (server, cluster) = server().await;
    server.insert(&nodepool("default")).expect("pool");
    server.insert(&nodeclass("default")).expect("class");
    let updates = [
        StatusUpdate {
            kind: ConfigKind::NodePool,
            name: "default".into(),
            status: json!({"nodes": 2, "resources": {"cpu": "4", "nodes": "2"},
                           "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                           "lastTransitionTime": "2026-12-01T18:00:00Z"}]}),
        },
        StatusUpdate {
            kind: ConfigKind::Ec2NodeClass,
            name: "default".into(),
            status: json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                                           "lastTransitionTime": "2026-12-01T18:00:00Z"}]}),
        },
        StatusUpdate {
            kind: ConfigKind::NodePool,
            name: "deleted-meanwhile".into(),
            status: json!({"nodes": 0}),
        },
    ];
    assert_eq!(cluster.update_statuses(&updates).await.expect("written"), 2);
    let pool = server
        .get_object("nodepools.karpenter.sh", None, "default")
        .expect("pool");
    assert_eq!(pool["status"]["resources"]["cpu"], "4");
    assert_eq!(pool["status"]["conditions"][0]["type"], "Ready");
    let (pools, bad) = cluster.list_nodepools().await.expect("pools");
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(
        pools[0].status.as_ref().map(|s| s["nodes"].clone()),
        Some(json!(2))
    );
}

#[tokio::test]
async fn a_bad_nodepool_is_reported_by_name_while_the_good_ones_load() {
    let (server, cluster) = server().await;
    server.insert(&nodepool("default")).expect("insert");
    let mut bad = nodepool("typo");
    bad["spec"]["template"]["spec"]["requirments"] = json!([]);
    server.insert(&bad).expect("insert");
    server.insert(&nodeclass("default")).expect("insert");

    let (pools, errors) = cluster.list_nodepools().await.expect("nodepools");
    assert_eq!(
        pools.iter().map(|p| p.name()).collect::<Vec<_>>(),
        vec!["default"]
    );
    assert_eq!(errors.len(), 1);
    // The core's message, which names the object and the field, as it is.
    assert!(
        errors[0].starts_with("NodePool typo: spec.template.spec.requirments: unknown field"),
        "{errors:?}"
    );
    let (classes, errors) = cluster.list_nodeclasses().await.expect("nodeclasses");
    assert_eq!(classes.len(), 1);
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn cordoning_taints_once_and_retries_a_lost_race() {
    let (server, cluster) = server().await;
    server.register_node(NodeRegistration::new("n1")).expect("node");
    // Another writer updates the node between our read and our write, once.
    server.fail_next(RequestMatcher::any().verb(Verb::Update), 409, 1);
    server.clear_requests();
    cluster.cordon("n1", &taint()).await.expect("cordon");
    let node_calls = |verb: Verb| {
        server
            .requests()
            .into_iter()
            .filter(|r| r.verb == Some(verb) && r.path == "/api/v1/nodes/n1")
            .map(|r| r.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        node_calls(Verb::Update),
        vec![409, 200],
        "the lost write is made again"
    );
    assert_eq!(node_calls(Verb::Get).len(), 2, "on a fresh read");
    server.clear_requests();
    cluster.cordon("n1", &taint()).await.expect("again");
    assert!(
        node_calls(Verb::Update).is_empty(),
        "a cordoned node is not written again"
    );
    let node: k8s_openapi::api::core::v1::Node = server.get(None, "n1").expect("node");
    let spec = node.spec.expect("spec");
    assert_eq!(spec.unschedulable, Some(true));
    let ours: Vec<_> = spec
        .taints
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key == "karpenter.sh/disrupted")
        .collect();
    assert_eq!(ours.len(), 1);
    let err = cluster.cordon("gone", &taint()).await.expect_err("no such node");
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn an_eviction_a_budget_forbids_is_blocked_at_once_and_a_missing_pod_is_gone() {
    let server = FakeApiServer::start().await.expect("fake API server");
    // The fake's own config switches kube's retries off; switch them back on, as a real
    // kubeconfig or EKS config has them, to show that evictions do not go through them.
    let mut config = server.config();
    config.default_retry = true;
    let cluster = KubeCluster::from_config(config).expect("cluster");
    server.register_node(NodeRegistration::new("n1")).expect("node");
    let mut running = pod("web-0").json();
    running["spec"]["nodeName"] = json!("n1");
    server.insert(&running).expect("insert");
    server.schedule_pending().expect("start the pod");
    server
        .set_pdb(
            "default",
            "web",
            [("app", "inflate")],
            Budget::MinAvailable(IntOrString::Int(1)),
        )
        .expect("pdb");
    server.clear_requests();

    let blocked = tokio::time::timeout(Duration::from_secs(5), cluster.evict("default", "web-0"))
        .await
        .expect("a blocked eviction answers at once, without kube's backoff");
    assert_eq!(blocked.expect("evict"), Eviction::Blocked);
    let evictions = server
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::POST && r.path.ends_with("/eviction"))
        .count();
    assert_eq!(evictions, 1, "a 429 from a budget is not retried");
    assert_eq!(
        cluster.evict("default", "nobody").await.expect("evict"),
        Eviction::Gone
    );

    server
        .delete_object("poddisruptionbudgets.policy", Some("default"), "web")
        .expect("drop pdb");
    assert_eq!(
        cluster.evict("default", "web-0").await.expect("evict"),
        Eviction::Evicted
    );
}

#[tokio::test]
async fn deleting_a_node_twice_is_fine() {
    let (server, cluster) = server().await;
    server.register_node(NodeRegistration::new("n1")).expect("node");
    cluster.delete_node("n1").await.expect("delete");
    cluster.delete_node("n1").await.expect("already gone");
    assert!(server.get_object("nodes", None, "n1").is_none());
}

#[tokio::test]
async fn patching_a_node_merges_labels_adds_missing_taints_and_holds_it_with_the_finalizer() {
    let (server, cluster) = server().await;
    server
        .register_node(NodeRegistration::new("n1").label("keep", "me").taint(
            "agent.example.com/not-ready",
            "",
            "NoExecute",
        ))
        .expect("node");
    let patch = NodePatch {
        labels: BTreeMap::from([("karpenter.sh/nodepool".to_string(), "default".to_string())]),
        taints: vec![taint()],
        finalizer: true,
    };
    cluster.patch_node("n1", &patch).await.expect("patch");
    cluster.patch_node("n1", &patch).await.expect("idempotent");
    let node: k8s_openapi::api::core::v1::Node = server.get(None, "n1").expect("node");
    let got = node.metadata.labels.clone().expect("labels");
    assert_eq!(got.get("keep").map(String::as_str), Some("me"));
    assert_eq!(
        got.get("karpenter.sh/nodepool").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        node.metadata.finalizers,
        Some(vec![nodewright_core::labels::TERMINATION_FINALIZER.to_string()])
    );
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    let keys: Vec<&str> = taints.iter().map(|t| t.key.as_str()).collect();
    // The startup taint is its agent's to remove; a patch never takes it away.
    assert_eq!(keys, ["agent.example.com/not-ready", "karpenter.sh/disrupted"]);
}

#[tokio::test]
async fn a_user_deleting_a_held_node_marks_it_deleting_until_nodewright_deletes_it() {
    let (server, cluster) = server().await;
    server.register_node(NodeRegistration::new("n1")).expect("node");
    let hold = NodePatch {
        finalizer: true,
        ..NodePatch::default()
    };
    cluster.patch_node("n1", &hold).await.expect("hold");
    // `kubectl delete node n1`.
    server.delete_object("nodes", None, "n1").expect("delete");
    let nodes = cluster.list_nodes().await.expect("list");
    assert_eq!(nodes.len(), 1, "held by the finalizer");
    assert!(nodes[0].deleting);

    cluster.delete_node("n1").await.expect("release and delete");
    assert!(server.get_object("nodes", None, "n1").is_none());
    cluster.delete_node("n1").await.expect("already gone");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let (server, cluster) = server().await;
    drop(server);
    let err = cluster.list_nodes().await.expect_err("nobody there");
    assert_eq!(err.kind, ErrorKind::Unavailable);
}

#[test]
fn pods_a_careless_server_lets_through_are_not_pending() {
    // What a server (or a proxy) that ignored the field selector would return.
    let mut bound = pod("bound").unschedulable().json();
    bound["spec"]["nodeName"] = json!("n1");
    let mut running = pod("running").unschedulable().json();
    running["status"]["phase"] = json!("Running");
    let mut scheduled = pod("scheduled").json();
    scheduled["status"] = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}]});
    for p in [bound, running, scheduled] {
        let name = p["metadata"]["name"].clone();
        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(p).expect("a pod");
        assert!(!is_pending_unschedulable(&p), "{name}");
    }
    let waiting = pod("waiting").unschedulable().build();
    assert!(is_pending_unschedulable(&waiting));
}

#[tokio::test]
async fn an_expired_continue_token_starts_the_listing_over() {
    let (server, cluster) = server().await;
    let cluster = cluster.with_page_size(2);
    for i in 0..5 {
        server
            .insert(&pod(&format!("p{i}")).unschedulable().json())
            .expect("insert");
    }
    server.fail_next(RequestMatcher::any().verb(Verb::List), 410, 1);
    let pending = cluster.list_pending_pods().await.expect("list");
    assert_eq!(pending.len(), 5, "the whole list, not a partial one");
    let statuses: Vec<u16> = server
        .requests()
        .into_iter()
        .filter(|r| r.verb == Some(Verb::List))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![410, 200, 200, 200]);

    server.fail_next(RequestMatcher::any().verb(Verb::List), 410, 10);
    let err = cluster.list_nodes().await.expect_err("gives up");
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn lists_ride_out_a_transient_503_with_kubes_retries() {
    let server = FakeApiServer::start().await.expect("fake API server");
    let mut config = server.config();
    config.default_retry = true;
    let cluster = KubeCluster::from_config(config).expect("cluster");
    server.register_node(NodeRegistration::new("n1")).expect("node");
    server.fail_next(RequestMatcher::any().verb(Verb::List), 503, 1);
    assert_eq!(cluster.list_nodes().await.expect("nodes").len(), 1);
}

#[tokio::test]
async fn a_busy_server_is_throttled_and_a_forbidden_one_unauthorized() {
    let (server, cluster) = server().await;
    server.fail_next(RequestMatcher::any().verb(Verb::List), 429, 1);
    assert_eq!(
        cluster.list_nodes().await.expect_err("429").kind,
        ErrorKind::Throttled
    );
    server.fail_next(RequestMatcher::any().verb(Verb::List), 403, 1);
    assert_eq!(
        cluster.list_nodes().await.expect_err("403").kind,
        ErrorKind::Unauthorized
    );
    server.register_node(NodeRegistration::new("n1")).expect("node");
    server.fail_next(RequestMatcher::any().verb(Verb::Delete), 500, 1);
    assert_eq!(
        cluster.delete_node("n1").await.expect_err("500").kind,
        ErrorKind::Unavailable
    );
}

/// Hands out the fake server's configuration and counts how often it was asked.
struct CountingSource {
    config: kube::Config,
    valid_for: Duration,
    asked: AtomicUsize,
}

impl ConfigSource for CountingSource {
    fn config(&self) -> Pin<Box<dyn Future<Output = PortResult<kube::Config>> + Send + '_>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(Ok(self.config.clone())))
    }

    fn valid_for(&self) -> Option<Duration> {
        Some(self.valid_for)
    }
}

#[tokio::test]
async fn a_configuration_is_renewed_once_it_is_older_than_its_source_allows() {
    let server = FakeApiServer::start().await.expect("fake API server");
    let fresh = Arc::new(CountingSource {
        config: server.config(),
        valid_for: Duration::from_secs(600),
        asked: AtomicUsize::new(0),
    });
    let cluster = KubeCluster::from_source(fresh.clone()).await.expect("cluster");
    for _ in 0..3 {
        cluster.list_nodes().await.expect("nodes");
    }
    assert_eq!(fresh.asked.load(Ordering::SeqCst), 1, "still fresh: no new token");

    let expiring = Arc::new(CountingSource {
        config: server.config(),
        valid_for: Duration::ZERO,
        asked: AtomicUsize::new(0),
    });
    let cluster = KubeCluster::from_source(expiring.clone()).await.expect("cluster");
    for _ in 0..3 {
        cluster.list_nodes().await.expect("nodes");
    }
    assert_eq!(
        expiring.asked.load(Ordering::SeqCst),
        4,
        "a new token for every call"
    );
}
