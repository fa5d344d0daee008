//! The real bootstrap binaries — `provisioner`, `sweeper`, `interruption`, as `cargo lambda
//! build` packages them — started as Lambda starts them, through the runtime API emulator, with
//! the environment the stack gives them, against moto and the fake API server. Each reaches the
//! outcome the in-process handlers reach in the end-to-end tests: what this adds is the entry
//! points themselves (configuration from the environment, clients built at cold start, the
//! runtime loop, events decoded from the wire).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use nodewright_aws::runtime_api::{Answer, Bootstrap, RuntimeApi};
use nodewright_core::ports::ClaimStore;
use nodewright_tests::World;
use serde_json::{Value, json};

const INVOCATION: Duration = Duration::from_secs(120);
const COLD_START: Duration = Duration::from_secs(60);
const SPOT_WARNING: &str = include_str!("../../../shared/core/src/interruption/fixtures/spot-warning.json");
const FIXTURE_INSTANCE: &str = "i-0b662ef9931388ba0";

async fn start(api: &RuntimeApi, bin: &str, w: &World) -> Bootstrap {
    let mut bootstrap = api.spawn(
        Path::new(bin),
        &format!("nodewright-{}", w.name),
        &w.provisioner_environment(),
    );
    let init = api.cold_start(&mut bootstrap, COLD_START).await;
    assert!(init.is_ok(), "{bin}: the cold start failed: {init:?}");
    bootstrap
}

fn response(answer: Answer) -> Value {
    match answer {
        Answer::Response(value) => value,
        Answer::Error(error) => panic!("the function failed: {error}"),
    }
}

async fn instance_types(w: &World) -> Vec<String> {
    let mut types: Vec<String> = w.instances().await.into_iter().map(|i| i.instance_type).collect();
    types.sort();
    types
}

#[tokio::test]
async fn the_provisioner_bootstrap_runs_scheduled_and_queued_rounds_as_the_handler_does() {
    // The in-process handler on one cluster, the binary on another with the same pods.
    let reference = World::new("boot-reference", 1000).await;
    reference.create_pending_pods("inflate", 5, "1");
    let expected = reference.run_schedule().await;
    assert!(expected["launched"].as_u64().is_some_and(|n| n > 0), "{expected}");

    let w = World::new("boot-provisioner", 1000).await;
    w.create_pending_pods("inflate", 5, "1");
    let api = RuntimeApi::start().await;
    let _bootstrap = start(&api, env!("CARGO_BIN_EXE_provisioner"), &w).await;

    let report = response(api.invoke(&w.schedule_event(), INVOCATION).await);
    assert_eq!(report, expected, "the schedule event's report");
    assert_eq!(instance_types(&w).await, instance_types(&reference).await);

    // The webhook's messages, as the queue's event source mapping delivers them.
    w.kubelet().await;
    w.create_pending_pods("more", 3, "2");
    let statuses = w.deliver_admission_reviews().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let batch = w.take_sqs_event().await;
    assert!(!batch["Records"].as_array().expect("records").is_empty());
    let before = w.instances().await.len();
    let answer = response(api.invoke(&batch, INVOCATION).await);
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert!(
        w.instances().await.len() > before,
        "the queued round launched for the new pods"
    );
    let live = w.store.list_live().await.expect("claims");
    assert_eq!(
        live.len(),
        w.instances().await.len(),
        "every instance has its claim"
    );
}

#[tokio::test]
async fn the_sweeper_and_interruption_bootstraps_answer_their_events() {
    let w = World::new("boot-sweep", 1000).await;
    w.create_pending_pods("web", 2, "1");
    w.run_schedule().await;
    w.kubelet().await;
    w.run_schedule().await;
    w.kube.schedule_pending().expect("scheduler");
    let claim = w.store.list_live().await.expect("claims")[0].clone();
    let instance = claim.instance_id().expect("launched").to_string();
    let node = claim.node_name.clone().expect("registered");

    let api = RuntimeApi::start().await;
    let _sweeper = start(&api, env!("CARGO_BIN_EXE_sweeper"), &w).await;
    let expected = nodewright_provisioner::sweeper::function_handler(
        &w.provisioner,
        lambda_runtime::LambdaEvent::new(w.schedule_event(), lambda_runtime::Context::default()),
    )
    .await
    .expect("the in-process sweep");
    let report = response(api.invoke(&w.schedule_event(), INVOCATION).await);
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&report), keys(&expected), "{report} against {expected}");
    drop(_sweeper);

    let api = RuntimeApi::start().await;
    let _interruption = start(&api, env!("CARGO_BIN_EXE_interruption"), &w).await;
    let batch = nodewright_aws::testing::sqs_batch(
        "nodewright-boot-sweep-interruption",
        &[
            SPOT_WARNING.replace(FIXTURE_INSTANCE, &instance),
            "{\"not\": \"an event\"}".to_string(),
        ],
    );
    let answer = response(api.invoke(&batch, INVOCATION).await);
    assert_eq!(
        answer,
        json!({"batchItemFailures": []}),
        "a bad message is dropped, not retried"
    );
    let cordoned: Node = w.kube.get(None, &node).expect("node");
    assert_eq!(
        cordoned.spec.and_then(|s| s.unschedulable),
        Some(true),
        "the warned node is cordoned"
    );
}

#[tokio::test]
async fn a_cold_start_without_its_configuration_reports_an_init_error() {
    let w = World::new("boot-misconfigured", 10).await;
    let api = RuntimeApi::start().await;
    let env: Vec<(String, String)> = w
        .provisioner_environment()
        .into_iter()
        .filter(|(k, _)| k != nodewright_provisioner::config::CLAIMS_TABLE)
        .collect();
    let mut bootstrap = api.spawn(
        Path::new(env!("CARGO_BIN_EXE_provisioner")),
        "nodewright-misconfigured",
        &env,
    );
    let error = api
        .cold_start(&mut bootstrap, COLD_START)
        .await
        .expect_err("no table, no start");
    assert!(error.to_string().contains("NODEWRIGHT_CLAIMS_TABLE"), "{error}");
}
