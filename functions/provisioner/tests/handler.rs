//! The provisioner handler called with the events Lambda delivers (an SQS batch from the
//! provision queue, the EventBridge schedule), over the embedded cloud, cluster and claim
//! store. The same handler over EC2, DynamoDB and the Kubernetes API is exercised end to end in
//! the `tests` crate.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use nodewright_aws::testing::batch_failures;
use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::ports::{ClaimStore, ErrorKind, PortError};
use nodewright_provisioner::{Provisioner, function_handler};
use nodewright_sim::{ClusterOp, SeededIds, SimClaimStore, SimCloud, SimCluster, VirtualClock};
use serde_json::Value;

const T0: i64 = 1_795_342_530_000;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("JSON fixture")
}

type Sim = Provisioner<SimCluster, SimCloud, SimClaimStore>;

/// A cluster with the default pool and `pending` unschedulable 1-CPU pods.
fn world(pending: usize) -> Sim {
    let clock = Arc::new(VirtualClock::new(T0));
    let cluster = SimCluster::new(clock.clone(), 7);
    cluster.apply_nodeclass(nodeclass("default"));
    cluster.apply_nodepool(nodepool("default").build());
    for i in 0..pending {
        cluster
            .create_pod(pod(&format!("inflate-{i}")).cpu("1").build())
            .expect("create pod");
    }
    cluster.run_scheduler();
    Provisioner::new(
        cluster,
        SimCloud::new(clock.clone(), 7),
        SimClaimStore::new(),
        clock,
        Box::new(SeededIds::new(7)),
    )
}

async fn invoke(p: &Sim, event: Value) -> Result<Value, lambda_runtime::Error> {
    let mut context = Context::default();
    context.request_id = "8f5e3c2a-1b4d-4e6f-9a8b-7c6d5e4f3a2b".to_string();
    function_handler(p, LambdaEvent::new(event, context)).await
}

#[tokio::test]
async fn a_queue_batch_runs_one_round_that_launches_for_every_pending_pod() {
    let p = world(20);
    let response = invoke(&p, fixture("sqs-provision-batch.json"))
        .await
        .expect("handled");
    assert!(batch_failures(&response).is_empty());
    let claims = p.store.list_live().await.expect("claims");
    assert!(!claims.is_empty());
    let placed: usize = claims.iter().map(|c| c.pods.len()).sum();
    assert_eq!(placed, 20);
    assert_eq!(p.cloud.instances().len(), claims.len());
    // One round for the batch of two messages.
    let listings = p
        .cluster
        .calls()
        .iter()
        .filter(|c| c.op == ClusterOp::ListPendingPods)
        .count();
    assert_eq!(listings, 1);
}

#[tokio::test]
async fn the_same_events_again_launch_nothing_more() {
    let p = world(20);
    invoke(&p, fixture("sqs-provision-batch.json"))
        .await
        .expect("first");
    let instances = p.cloud.instances().len();
    invoke(&p, fixture("sqs-provision-batch.json"))
        .await
        .expect("again");
    invoke(&p, fixture("eventbridge-scheduled.json"))
        .await
        .expect("schedule");
    assert_eq!(p.cloud.instances().len(), instances);
}

#[tokio::test]
async fn an_unreadable_message_does_not_stop_the_round_or_fail_the_others() {
    let p = world(3);
    let mut event = fixture("sqs-provision-batch.json");
    event["Records"][0]["body"] = Value::String("not a provisioning request".into());
    let response = invoke(&p, event).await.expect("handled");
    assert!(batch_failures(&response).is_empty(), "{response}");
    let placed: usize = p
        .store
        .list_live()
        .await
        .expect("claims")
        .iter()
        .map(|c| c.pods.len())
        .sum();
    assert_eq!(placed, 3, "the round ran for every pending pod");
}

#[tokio::test]
async fn a_failed_round_returns_every_message_for_redelivery() {
    let p = world(3);
    p.cluster.fail_next(
        ClusterOp::ListPendingPods,
        PortError::new(ErrorKind::Unavailable, "API server unreachable"),
    );
    let response = invoke(&p, fixture("sqs-provision-batch.json"))
        .await
        .expect("handled");
    assert_eq!(
        batch_failures(&response),
        vec![
            "059f36b4-87a3-44ab-83d2-661975830a7d".to_string(),
            "2e1424d4-f796-459a-8184-9c92662be6da".to_string()
        ]
    );
    assert!(p.cloud.instances().is_empty());
}

#[tokio::test]
async fn the_schedule_backstop_runs_a_round_and_reports_it() {
    let p = world(2);
    let response = invoke(&p, fixture("eventbridge-scheduled.json"))
        .await
        .expect("handled");
    assert_eq!(response["ran"], true);
    let launched = response["launched"].as_u64().expect("a count");
    assert!(launched >= 1);
    assert_eq!(launched as usize, p.cloud.instances().len());
    assert_eq!(response["unschedulable"], 0);
}

#[tokio::test]
async fn a_failed_scheduled_round_is_an_error() {
    let p = world(2);
    p.cluster.fail_next(
        ClusterOp::ListNodepools,
        PortError::new(ErrorKind::Unauthorized, "forbidden"),
    );
    let err = invoke(&p, fixture("eventbridge-scheduled.json"))
        .await
        .expect_err("failed");
    assert!(err.to_string().contains("forbidden"), "{err}");
}

#[tokio::test]
async fn an_event_that_is_neither_a_batch_nor_a_schedule_is_refused_clearly() {
    let p = world(1);
    let err = invoke(&p, serde_json::json!({"hello": "world"}))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("unrecognised event"), "{err}");
    assert!(p.cloud.instances().is_empty());
}

#[tokio::test]
async fn a_round_while_another_holds_the_lease_does_nothing() {
    let p = world(2);
    p.store
        .acquire_lease("someone-else", T0, 600_000)
        .await
        .expect("lease");
    let response = invoke(&p, fixture("eventbridge-scheduled.json"))
        .await
        .expect("handled");
    assert_eq!(response["ran"], false);
    assert!(p.cloud.instances().is_empty());
}
