//! The simulated kubelet and kube-scheduler.

mod common;

use common::server;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use nodewright_fake_kube::builders::pod;
use nodewright_fake_kube::{Bound, FakeApiServer, NodeRegistration, PodKey, Refused};
use serde_json::json;

fn key(name: &str) -> PodKey {
    PodKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

fn small_node(name: &str) -> NodeRegistration {
    NodeRegistration::new(name)
        .allocatable("cpu", "2")
        .allocatable("memory", "4Gi")
        .provider_id(format!("aws:///us-east-1a/i-{name}"))
}

fn condition(pod: &Pod, kind: &str) -> Option<(String, Option<String>, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Cordons a node as `kubectl cordon` does, through the API.
async fn cordon(client: kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client);
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
}

fn stored(server: &FakeApiServer, name: &str) -> Pod {
    server.get::<Pod>(Some("default"), name).expect("pod exists")
}

#[tokio::test]
async fn registered_node_is_ready_with_its_labels_taints_and_allocatable() {
    let (server, client) = server().await;
    server
        .register_node(small_node("n1").label("karpenter.sh/nodepool", "default").taint(
            "dedicated",
            "gpu",
            "NoSchedule",
        ))
        .expect("register");
    let nodes: Api<Node> = Api::all(client);
    let node = nodes.get("n1").await.expect("get");
    let status = node.status.expect("status");
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");
    assert_eq!(status.allocatable.unwrap_or_default()["cpu"].0, "2");
    let spec = node.spec.expect("spec");
    assert_eq!(spec.provider_id.as_deref(), Some("aws:///us-east-1a/i-n1"));
    assert_eq!(spec.taints.unwrap_or_default()[0].value.as_deref(), Some("gpu"));
    assert_eq!(
        node.metadata.labels.unwrap_or_default()["kubernetes.io/hostname"],
        "n1"
    );
}

#[tokio::test]
async fn scheduler_binds_a_pending_pod_and_the_kubelet_runs_it() {
    let (server, client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.create(&PostParams::default(), &pod("web-0").cpu("500m").build())
        .await
        .expect("create");

    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound, vec![bound("web-0", "n1")]);

    let running = pods.get("web-0").await.expect("get");
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("n1")
    );
    let status = running.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some());
    assert_eq!(condition(&running, "Ready").map(|c| c.0), Some("True".into()));
    assert_eq!(
        condition(&running, "PodScheduled").map(|c| c.0),
        Some("True".into())
    );
}

#[tokio::test]
async fn pods_that_fit_nowhere_are_marked_unschedulable() {
    let (server, client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    server.insert(&pod("big").cpu("3").build()).expect("insert");

    let report = server.schedule_pending().expect("schedule");
    assert!(report.bound.is_empty());
    let message = "0/1 nodes are available: 1 Insufficient cpu.";
    assert_eq!(report.unschedulable, vec![refused("big", message)]);
    let (status, reason, text) = condition(&stored(&server, "big"), "PodScheduled").expect("condition");
    assert_eq!(
        (status.as_str(), reason.as_deref(), text.as_deref()),
        ("False", Some("Unschedulable"), Some(message))
    );

    // What a provisioner lists: pending, unbound pods.
    let pods: Api<Pod> = Api::all(client);
    let pending = pods
        .list(&ListParams::default().fields("spec.nodeName=,status.phase=Pending"))
        .await
        .expect("list");
    assert_eq!(pending.items.len(), 1);
}

#[tokio::test]
async fn a_second_round_with_the_same_outcome_writes_nothing() {
    let (server, _client) = server().await;
    server.insert(&pod("big").cpu("3").build()).expect("insert");
    server.schedule_pending().expect("first round");
    let version = server.resource_version();
    server.schedule_pending().expect("second round");
    assert_eq!(server.resource_version(), version);
    let (_, _, message) = condition(&stored(&server, "big"), "PodScheduled").expect("condition");
    assert_eq!(message.as_deref(), Some("no nodes available to schedule pods"));
}

#[tokio::test]
async fn requests_add_up_against_allocatable_across_pods() {
    let (server, _client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    for name in ["a", "b", "c"] {
        server.insert(&pod(name).cpu("900m").build()).expect("insert");
    }
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound.len(), 2);
    assert_eq!(report.unschedulable.len(), 1);
    assert_eq!(report.unschedulable[0].pod, key("c"));

    server.register_node(small_node("n2")).expect("register");
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound, vec![bound("c", "n2")]);
}

#[tokio::test]
async fn taints_keep_out_pods_without_a_matching_toleration() {
    let (server, _client) = server().await;
    server
        .register_node(small_node("gpu").taint("nvidia.com/gpu", "", "NoSchedule"))
        .expect("register");
    server.insert(&pod("plain").build()).expect("insert");
    server
        .insert(&pod("tolerant").tolerate("nvidia.com/gpu", "NoSchedule").build())
        .expect("insert");
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound, vec![bound("tolerant", "gpu")]);
    assert_eq!(
        report.unschedulable,
        vec![refused(
            "plain",
            "0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: }."
        )]
    );
}

#[tokio::test]
async fn node_selector_and_required_affinity_pick_the_node() {
    let (server, _client) = server().await;
    server
        .register_node(
            small_node("arm")
                .label("kubernetes.io/arch", "arm64")
                .label("cores", "8"),
        )
        .expect("register");
    server
        .register_node(
            small_node("x86")
                .label("kubernetes.io/arch", "amd64")
                .label("cores", "2"),
        )
        .expect("register");
    server
        .insert(
            &pod("selector")
                .node_selector("kubernetes.io/arch", "amd64")
                .build(),
        )
        .expect("insert");
    let mut affinity = pod("affinity").build();
    let spec = serde_json::json!({
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [
                {"key": "cores", "operator": "Gt", "values": ["4"]},
                {"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["amd64"]},
                {"key": "spot", "operator": "DoesNotExist"}
            ]}
        ]}}
    });
    if let Some(pod_spec) = affinity.spec.as_mut() {
        pod_spec.affinity = Some(serde_json::from_value(spec).expect("affinity"));
    }
    server.insert(&affinity).expect("insert");
    server
        .insert(
            &pod("nowhere")
                .node_selector("kubernetes.io/arch", "s390x")
                .build(),
        )
        .expect("insert");

    let mut report = server.schedule_pending().expect("schedule");
    report.bound.sort();
    assert_eq!(
        report.bound,
        vec![bound("affinity", "arm"), bound("selector", "x86")]
    );
    assert_eq!(
        report.unschedulable[0].message,
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    );
}

#[tokio::test]
async fn cordoned_nodes_take_no_new_pods() {
    let (server, client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    cordon(client, "n1").await;
    server.insert(&pod("web-0").build()).expect("insert");
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(
        report.unschedulable[0].message,
        "0/1 nodes are available: 1 node(s) were unschedulable."
    );
}

#[tokio::test]
async fn a_not_ready_node_is_tainted_and_skipped() {
    let (server, _client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    server.set_node_ready("n1", false).expect("not ready");
    // Pods get a NoExecute toleration for not-ready by default, but not a NoSchedule one.
    server.insert(&pod("web-0").build()).expect("insert");
    let report = server.schedule_pending().expect("schedule");
    assert!(report.bound.is_empty());
    server.set_node_ready("n1", true).expect("ready");
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound.len(), 1);
}

#[tokio::test]
async fn the_kubelet_starts_pods_a_client_bound() {
    let (server, _client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    server.insert(&pod("ds-pod").node("n1").build()).expect("insert");
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.started, vec![key("ds-pod")]);
    assert_eq!(
        stored(&server, "ds-pod").status.and_then(|s| s.phase).as_deref(),
        Some("Running")
    );
}

#[tokio::test]
async fn pods_on_deleted_nodes_are_garbage_collected() {
    let (server, _client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    server.insert(&pod("web-0").build()).expect("insert");
    server.schedule_pending().expect("schedule");
    server.delete_object("nodes", None, "n1").expect("delete node");
    assert_eq!(server.gc_orphaned_pods().expect("gc"), vec![key("web-0")]);
    assert!(server.get::<Pod>(Some("default"), "web-0").is_none());
}

#[tokio::test]
async fn a_cordoned_node_takes_pods_that_tolerate_its_taint() {
    let (server, client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    cordon(client, "n1").await;
    server
        .insert(
            &pod("tolerant")
                .tolerate("node.kubernetes.io/unschedulable", "NoSchedule")
                .build(),
        )
        .expect("insert");
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound, vec![bound("tolerant", "n1")]);
}

#[tokio::test]
async fn pods_go_to_the_least_allocated_node_as_the_real_scheduler_prefers() {
    let (server, _client) = server().await;
    for name in ["n1", "n2"] {
        server.register_node(small_node(name)).expect("register");
    }
    for name in ["a", "b"] {
        server
            .insert(&pod(name).cpu("500m").memory("1Gi").build())
            .expect("insert");
    }
    let report = server.schedule_pending().expect("schedule");
    // The tie on empty nodes goes to the first by name; the second pod then finds n2 emptier.
    assert_eq!(report.bound, vec![bound("a", "n1"), bound("b", "n2")]);
}

#[tokio::test]
async fn required_pod_anti_affinity_keeps_replicas_apart() {
    let (server, _client) = server().await;
    server.register_node(small_node("n1")).expect("register");
    for name in ["web-0", "web-1"] {
        let mut replica = pod(name).label("app", "web").build();
        let affinity = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
        if let Some(spec) = replica.spec.as_mut() {
            spec.affinity = Some(serde_json::from_value(affinity).expect("affinity"));
        }
        server.insert(&replica).expect("insert");
    }
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound, vec![bound("web-0", "n1")]);
    assert_eq!(
        report.unschedulable,
        vec![refused(
            "web-1",
            "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."
        )]
    );
}

#[tokio::test]
async fn a_pod_goes_to_the_zone_of_its_bound_volume_and_waits_for_a_missing_claim() {
    let (server, _client) = server().await;
    for (name, zone) in [("a1", "us-east-1a"), ("c1", "us-east-1c")] {
        server
            .register_node(small_node(name).label("topology.kubernetes.io/zone", zone))
            .expect("register");
    }
    for object in [
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1c"]}]}]}}}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": "data", "namespace": "default"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "pv-1",
                        "resources": {"requests": {"storage": "1Gi"}}}}),
    ] {
        server.insert(&object).expect("insert");
    }
    for (name, claim) in [("db-0", "data"), ("db-1", "missing")] {
        let mut db = pod(name).build();
        if let Some(spec) = db.spec.as_mut() {
            spec.volumes = Some(vec![
                serde_json::from_value(
                    json!({"name": "data", "persistentVolumeClaim": {"claimName": claim}}),
                )
                .expect("volume"),
            ]);
        }
        server.insert(&db).expect("insert");
    }
    let report = server.schedule_pending().expect("schedule");
    assert_eq!(report.bound, vec![bound("db-0", "c1")]);
    assert_eq!(
        report.unschedulable,
        vec![refused(
            "db-1",
            "0/2 nodes are available: PersistentVolumeClaim default/missing does not exist."
        )]
    );
}

fn bound(pod: &str, node: &str) -> Bound {
    Bound {
        pod: key(pod),
        node: node.to_string(),
    }
}

fn refused(pod: &str, message: &str) -> Refused {
    Refused {
        pod: key(pod),
        message: message.to_string(),
    }
}
