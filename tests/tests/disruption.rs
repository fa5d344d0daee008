//! Disruption end to end, over moto and the fake API server: a scale-down leaves nodes
//! underused; the real sweeper handler chooses them, the provisioner's passes evict their pods
//! through the Eviction API, terminate the instances and close the claims.

use lambda_runtime::{Context, LambdaEvent};
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::ports::ClaimStore;
use nodewright_tests::{World, getting_started};
use serde_json::json;

async fn run_sweeper(w: &World) -> serde_json::Value {
    let event = json!({
        "version": "0",
        "id": "sweep-1",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2026-12-01T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/nodewright-sweep"],
        "detail": {},
    });
    let mut context = Context::default();
    context.request_id = format!("{}-sweep", w.name);
    w.rbac_mark();
    let response =
        nodewright_provisioner::sweeper::function_handler(&w.provisioner, LambdaEvent::new(event, context))
            .await
            .expect("sweeper handled");
    w.assert_rbac_allows(nodewright_tests::SWEEPER_GROUP);
    response
}

#[tokio::test]
async fn a_node_left_underused_when_a_job_ends_is_replaced_by_a_cheaper_one_through_the_sweeper() {
    let w = World::new("e2e-consolidate", 1000).await;
    // Consolidate at once and as many nodes as it takes.
    for mut object in getting_started("e2e-consolidate", 1000) {
        if object["kind"] == "NodePool" {
            object["spec"]["disruption"]["consolidateAfter"] = json!("0s");
            object["spec"]["disruption"]["budgets"] = json!([{"nodes": "100%"}]);
            w.kube.insert(&object).expect("pool");
        }
    }
    // A 6-CPU batch pod and two small web pods share one node.
    w.create_pending_pods("batch", 1, "6");
    w.create_pending_pods("web", 2, "500m");
    w.run_schedule().await;
    w.kubelet().await;
    w.run_schedule().await;
    w.kube.schedule_pending().expect("scheduler");
    assert_eq!(w.bound_pods(), 3);
    let before = w.store.list_live().await.expect("claims");
    let cost_before: f64 = before
        .iter()
        .filter_map(|c| c.instance.as_ref())
        .map(|i| i.price)
        .sum();

    // The batch job ends: the web pods are left on a node sized for seven CPUs.
    w.kube
        .delete_object("pods", Some("default"), "batch-0")
        .expect("delete pod");
    let response = run_sweeper(&w).await;
    assert_eq!(response["ran"], json!(true), "{response}");
    // `kubectl describe node` shows why the node goes.
    let events = w.kube.list_objects("events.events.k8s.io", Some("default"));
    assert!(
        events.iter().any(|e| e["reason"] == "DisruptionTerminating"
            && e["regarding"]["kind"] == "Node"
            && e["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("Disrupting Node: Underutilized"))),
        "{events:#?}"
    );
    assert_eq!(response["decisions"], json!(1), "{response}");
    assert!(
        response["savings_per_hour"].as_f64().unwrap_or(0.0) > 0.0,
        "{response}"
    );

    // The provisioner's passes carry the decision out: the replacement joins and initializes,
    // then the old node is drained through the Eviction API and goes.
    for _ in 0..4 {
        w.kubelet().await;
        w.run_schedule().await;
        w.kube.schedule_pending().expect("scheduler");
    }
    let evictions = w
        .kube
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction") && r.status == 201)
        .count();
    assert_eq!(evictions, 2, "both web pods moved through the Eviction API");
    let mut closed = 0;
    for c in &before {
        let now = w.store.get(&c.id).await.expect("get").expect("kept");
        if now.state == ClaimState::Terminated {
            closed += 1;
            assert_eq!(now.reason.as_deref(), Some("underutilized"));
            let instance = now.instance_id().expect("launched");
            assert!(
                !w.instances()
                    .await
                    .iter()
                    .any(|i| i.id == instance && !i.state.is_gone()),
                "instance {instance} still running"
            );
        }
    }
    assert_eq!(closed, before.len(), "the underused node is gone");
    let live = w.store.list_live().await.expect("claims");
    let cost_after: f64 = live
        .iter()
        .filter(|c| c.state == ClaimState::Initialized)
        .filter_map(|c| c.instance.as_ref())
        .map(|i| i.price)
        .sum();
    assert!(
        cost_after > 0.0 && cost_after < cost_before,
        "{cost_after} vs {cost_before}"
    );
}
