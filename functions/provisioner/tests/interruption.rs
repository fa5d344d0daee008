//! The interruption handler with SQS batches as Lambda delivers them, over the embedded cloud,
//! cluster and claim store.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use nodewright_aws::testing::{batch_failures, sqs_batch};
use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::interruption::Rebalance;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::ports::{ClaimStore, ErrorKind, PortError};
use nodewright_provisioner::{Provisioner, interruption};
use nodewright_sim::{Kubelet, SeededIds, SimClaimStore, SimCloud, SimCluster, StoreOp, VirtualClock};
use serde_json::{Value, json};

const T0: i64 = 1_795_342_530_000;
const SPOT_WARNING: &str = include_str!("../../../shared/core/src/interruption/fixtures/spot-warning.json");
const FIXTURE_INSTANCE: &str = "i-0b662ef9931388ba0";

type Sim = Provisioner<SimCluster, SimCloud, SimClaimStore>;

/// A spot pool with three bound pods on one registered, initialized node.
async fn world() -> (Sim, Arc<VirtualClock>, String) {
    let clock = Arc::new(VirtualClock::new(T0));
    let cluster = SimCluster::new(clock.clone(), 7);
    cluster.apply_nodeclass(nodeclass("default"));
    cluster.apply_nodepool(nodepool("default").spot_only().build());
    for i in 0..3 {
        let mut p = pod(&format!("web-{i}")).cpu("500m").build();
        p.owner_kind = Some("ReplicaSet".into());
        cluster.create_pod(p).expect("pod");
    }
    cluster.run_scheduler();
    let p = Provisioner::new(
        cluster,
        SimCloud::new(clock.clone(), 7),
        SimClaimStore::new(),
        clock.clone(),
        Box::new(SeededIds::new(7)),
    );
    let schedule = json!({"version": "0", "id": "s", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-12-01T12:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let run = |event: Value| {
        let mut context = Context::default();
        context.request_id = "r".into();
        nodewright_provisioner::function_handler(&p, LambdaEvent::new(event, context))
    };
    run(schedule.clone()).await.expect("launch");
    clock.advance(60_000);
    Kubelet::new(45_000)
        .register_booted(&p.cloud, &p.cluster, &p.store)
        .expect("kubelet");
    run(schedule).await.expect("register");
    p.cluster.run_scheduler();
    let claims = p.store.list_live().await.expect("claims");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].state, ClaimState::Initialized);
    let instance = claims[0].instance_id().expect("launched").to_string();
    (p, clock, instance)
}

fn batch(bodies: &[String]) -> Value {
    sqs_batch("nodewright-demo-interruption", bodies)
}

async fn deliver(p: &Sim, event: Value) -> Vec<String> {
    deliver_by(p, event, 0).await
}

/// Delivers with the invocation's deadline (epoch millis; 0: none).
async fn deliver_by(p: &Sim, event: Value, deadline: u64) -> Vec<String> {
    let mut context = Context::default();
    context.request_id = "interruption-1".into();
    context.deadline = deadline;
    let response = interruption::function_handler(p, Rebalance::Record, LambdaEvent::new(event, context))
        .await
        .expect("handled");
    batch_failures(&response)
}

#[tokio::test]
async fn a_spot_warning_drains_the_node_and_launches_its_replacement_elsewhere_at_once() {
    let (p, _clock, instance) = world().await;
    let warning = SPOT_WARNING.replace(FIXTURE_INSTANCE, &instance);
    let failures = deliver(&p, batch(&[warning.clone(), "not json".into()])).await;
    assert!(failures.is_empty(), "{failures:?}");

    let claims = p.store.claims();
    let old = claims
        .iter()
        .find(|c| c.instance_id() == Some(instance.as_str()))
        .expect("the claim");
    assert_eq!(old.state, ClaimState::Terminating);
    assert_eq!(old.reason.as_deref(), Some("interrupted"));
    let node = old.node_name.clone().expect("registered");
    assert!(
        p.cluster.node(&node).is_some_and(|n| n.unschedulable),
        "tainted and cordoned"
    );
    // A replacement, launched in the same invocation, not in the interrupted offering.
    let launched = p.cloud.instances();
    assert_eq!(launched.len(), 2, "one replacement");
    let old_instance = &old.instance.as_ref().expect("instance");
    let new = launched
        .iter()
        .find(|i| i.instance.id != instance)
        .expect("replacement");
    assert!(
        (new.instance.instance_type.as_str(), new.instance.zone.as_str())
            != (old_instance.instance_type.as_str(), old_instance.zone.as_str()),
        "the interrupted offering is avoided"
    );
    let unavailable = p.store.list_unavailable(T0 + 60_000).await.expect("shared marks");
    assert_eq!(unavailable.len(), 1);

    // The same message again changes nothing.
    let failures = deliver(&p, batch(&[warning])).await;
    assert!(failures.is_empty());
    assert_eq!(p.cloud.instances().len(), 2);
}

#[tokio::test]
async fn a_failed_write_retries_only_its_own_message() {
    let (p, _clock, instance) = world().await;
    let warning = SPOT_WARNING.replace(FIXTURE_INSTANCE, &instance);
    let other = SPOT_WARNING.replace(FIXTURE_INSTANCE, "i-0123456789abcdef0");
    p.store.fail_next(
        StoreOp::MarkUnavailable,
        PortError::new(
            ErrorKind::Throttled,
            "injected: ProvisionedThroughputExceededException",
        ),
    );
    let failures = deliver(&p, batch(&[other, warning.clone()])).await;
    assert_eq!(
        failures,
        vec!["m-1".to_string()],
        "only the message whose action failed"
    );
    let claims = p.store.list_live().await.expect("claims");
    assert_eq!(claims[0].state, ClaimState::Initialized, "nothing half done");
    // Redelivered, it goes through.
    assert!(deliver(&p, batch(&[warning])).await.is_empty());
    let claims = p.store.claims();
    assert!(claims.iter().any(|c| c.state == ClaimState::Terminating));
}

#[tokio::test]
async fn an_invocation_near_its_deadline_drains_but_leaves_the_launch_to_the_next_pass() {
    let (p, clock, instance) = world().await;
    let warning = SPOT_WARNING.replace(FIXTURE_INSTANCE, &instance);
    // 30 s left: inside the margin in which no launch starts.
    let deadline =
        u64::try_from(nodewright_core::ports::Clock::now(clock.as_ref()) + 30_000).expect("positive");
    assert!(deliver_by(&p, batch(&[warning]), deadline).await.is_empty());
    assert_eq!(
        p.cloud.instances().len(),
        1,
        "no launch this close to the deadline"
    );
    let claims = p.store.claims();
    assert!(
        claims.iter().any(|c| c.state == ClaimState::Terminating),
        "the drain began"
    );
}
