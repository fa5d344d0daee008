//! Interruption end to end, over moto and the fake API server: a spot warning for one of our
//! instances, delivered by SQS to the interruption handler.

use k8s_openapi::api::core::v1::{Node, Pod};
use lambda_runtime::{Context, LambdaEvent};
use nodewright_aws::testing::{batch_failures, sqs_batch};
use nodewright_core::interruption::Rebalance;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::ports::ClaimStore;
use nodewright_tests::World;
use serde_json::{Value, json};

const SPOT_WARNING: &str = include_str!("../../shared/core/src/interruption/fixtures/spot-warning.json");
const FIXTURE_INSTANCE: &str = "i-0b662ef9931388ba0";

fn batch(bodies: &[String]) -> Value {
    sqs_batch("nodewright-e2e-interruption", bodies)
}

async fn deliver(w: &World, bodies: &[String]) -> Vec<String> {
    let mut context = Context::default();
    context.request_id = format!("{}-interruption", w.name);
    w.rbac_mark();
    let response = nodewright_provisioner::interruption::function_handler(
        &w.provisioner,
        Rebalance::Record,
        LambdaEvent::new(batch(bodies), context),
    )
    .await
    .expect("handled");
    w.assert_rbac_allows(nodewright_tests::PROVISIONER_GROUP);
    batch_failures(&response)
}

#[tokio::test]
async fn a_spot_warning_drains_the_node_launches_a_replacement_elsewhere_and_closes_the_claim() {
    let w = World::new("e2e-interrupt", 1000).await;
    // A spot pool.
    for mut object in nodewright_tests::getting_started("e2e-interrupt", 1000) {
        if object["kind"] == "NodePool" {
            for r in object["spec"]["template"]["spec"]["requirements"]
                .as_array_mut()
                .expect("requirements")
            {
                if r["key"] == "karpenter.sh/capacity-type" {
                    r["values"] = json!(["spot"]);
                }
            }
            w.kube.insert(&object).expect("pool");
        }
    }
    w.create_pending_pods("web", 2, "1");
    w.run_schedule().await;
    w.kubelet().await;
    w.run_schedule().await;
    w.kube.schedule_pending().expect("scheduler");
    assert_eq!(w.bound_pods(), 2);
    let claim = w.store.list_live().await.expect("claims")[0].clone();
    let instance = claim.instance_id().expect("launched").to_string();
    let offering = claim.instance.clone().expect("instance");
    assert_eq!(
        offering.capacity_type,
        nodewright_core::catalog::CapacityType::Spot
    );
    let node = claim.node_name.clone().expect("registered");

    // The warning, with a malformed message beside it in the same batch.
    let warning = SPOT_WARNING.replace(FIXTURE_INSTANCE, &instance);
    let failures = deliver(&w, &[warning.clone(), "{\"not\": \"an event\"}".into()]).await;
    assert!(failures.is_empty(), "{failures:?}");

    let node_object: Node = w.kube.get(None, &node).expect("node");
    let spec = node_object.spec.clone().unwrap_or_default();
    assert_eq!(spec.unschedulable, Some(true));
    assert!(
        spec.taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "karpenter.sh/disrupted"),
        "tainted"
    );
    assert!(
        w.kube.list::<Pod>(Some("default")).is_empty(),
        "both pods evicted"
    );
    let instances = w.instances().await;
    let replacement = instances
        .iter()
        .find(|i| i.id != instance)
        .expect("a replacement launched in the same invocation");
    assert!(
        (
            replacement.instance_type.as_str(),
            replacement.zone.as_str(),
            replacement.capacity_type
        ) != (
            offering.instance_type.as_str(),
            offering.zone.as_str(),
            offering.capacity_type
        ),
        "not the interrupted offering"
    );

    // The same message again changes nothing.
    assert!(deliver(&w, &[warning]).await.is_empty());
    assert_eq!(
        w.instances().await.len(),
        instances.len(),
        "nothing launched twice"
    );

    // The next pass finds the node drained: instance terminated, Node deleted, claim closed.
    w.run_schedule().await;
    let stored = w.store.get(&claim.id).await.expect("get").expect("kept");
    assert_eq!(stored.state, ClaimState::Terminated);
    assert_eq!(stored.reason.as_deref(), Some("interrupted"));
    assert!(w.kube.get_object("nodes", None, &node).is_none());
    assert!(
        !w.instances()
            .await
            .iter()
            .any(|i| i.id == instance && !i.state.is_gone())
    );
    // Claims and instances agree: every live claim has its instance, every instance a claim.
    let live = w.store.list_live().await.expect("claims");
    let running: Vec<String> = w
        .instances()
        .await
        .into_iter()
        .filter(|i| !i.state.is_gone())
        .map(|i| i.id)
        .collect();
    let claimed: Vec<String> = live
        .iter()
        .filter_map(|c| c.instance_id().map(str::to_string))
        .collect();
    assert_eq!(claimed, running);
}
