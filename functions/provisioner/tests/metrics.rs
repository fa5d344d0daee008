//! The EMF metric lines the three handlers print, with the events Lambda delivers, over the
//! embedded cloud, cluster and claim store; the handlers write to a buffer in place of stdout.

use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent};
use nodewright_aws::testing::Printed;
use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::catalog::CapacityType;
use nodewright_core::interruption::Rebalance;
use nodewright_core::ports::{ClaimStore, Clock, ErrorKind, PortError};
use nodewright_provisioner::{MetricsOut, Provisioner, function_handler, interruption, sweeper};
use nodewright_sim::{
    CloudOp, Kubelet, OfferingPattern, SeededIds, SimClaimStore, SimCloud, SimCluster, VirtualClock, Workload,
};
use serde_json::{Value, json};

const T0: i64 = 1_795_342_530_000;
const SPOT_WARNING: &str = include_str!("../../../shared/core/src/interruption/fixtures/spot-warning.json");
const FIXTURE_INSTANCE: &str = "i-0b662ef9931388ba0";

type Sim = Provisioner<SimCluster, SimCloud, SimClaimStore>;

struct World {
    p: Sim,
    clock: Arc<VirtualClock>,
    printed: Printed,
}

/// A cluster with `pool` and a workload `web` of `replicas` 1-CPU pods.
fn world(pool: nodewright_core::api::NodePool, replicas: u32) -> World {
    let clock = Arc::new(VirtualClock::new(T0));
    let cluster = SimCluster::new(clock.clone(), 7);
    cluster.apply_nodeclass(nodeclass("default"));
    cluster.apply_nodepool(pool);
    let mut template = pod("web").cpu("1").build();
    template.owner_kind = Some("ReplicaSet".into());
    cluster.apply_workload(Workload {
        namespace: "default".into(),
        name: "web".into(),
        replicas,
        stateful: false,
        template,
    });
    cluster.run_scheduler();
    let mut p = Provisioner::new(
        cluster,
        SimCloud::new(clock.clone(), 7),
        SimClaimStore::new(),
        clock.clone(),
        Box::new(SeededIds::new(7)),
    );
    let printed = Printed::default();
    p.metrics = MetricsOut::to(printed.clone());
    World { p, clock, printed }
}

fn context(request_id: &str) -> Context {
    let mut context = Context::default();
    context.request_id = request_id.to_string();
    context
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("JSON fixture")
}

fn schedule_event() -> Value {
    fixture("eventbridge-scheduled.json")
}

impl World {
    async fn provisioner(&self, event: Value) -> Result<Value, lambda_runtime::Error> {
        function_handler(&self.p, LambdaEvent::new(event, context("provisioner-1"))).await
    }

    async fn schedule(&self) {
        self.provisioner(schedule_event()).await.expect("a pass");
    }

    /// Launches for the pending pods, registers and initializes their nodes, binds the pods.
    async fn running(&self) {
        self.schedule().await;
        self.clock.advance(60_000);
        Kubelet::new(45_000)
            .register_booted(&self.p.cloud, &self.p.cluster, &self.p.store)
            .expect("kubelet");
        self.schedule().await;
        self.p.cluster.run_scheduler();
        self.printed.take();
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// The documents carrying `metric` with these dimension values.
fn with<'a>(docs: &'a [Value], metric: &str, dimensions: &[(&str, &str)]) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d.get(metric).is_some())
        .filter(|d| dimensions.iter().all(|(k, v)| d[*k] == *v))
        .collect()
}

/// The one value of `metric` with these dimensions, checking the directive names them and the
/// unit.
fn value(docs: &[Value], metric: &str, unit: &str, dimensions: &[(&str, &str)]) -> Value {
    let found = with(docs, metric, dimensions);
    assert_eq!(found.len(), 1, "one {metric} {dimensions:?} in {docs:#?}");
    let directive = &found[0]["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "nodewright");
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    assert_eq!(directive["Dimensions"], json!([names]));
    let metrics = directive["Metrics"].as_array().expect("metrics");
    assert!(
        metrics.contains(&json!({"Name": metric, "Unit": unit})),
        "{metric} in {unit}: {directive}"
    );
    found[0][metric].clone()
}

fn assert_emf(docs: &[Value], now: i64) {
    assert!(!docs.is_empty());
    for d in docs {
        assert_eq!(d["_aws"]["Timestamp"], now, "{d}");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "nodewright");
    }
}

#[tokio::test]
async fn a_queue_batch_prints_pending_pods_launches_the_fleet_cost_and_the_pass_duration() {
    let w = world(nodepool("default").build(), 20);
    w.provisioner(fixture("sqs-provision-batch.json"))
        .await
        .expect("handled");
    let docs = w.printed.take();
    assert_emf(&docs, w.now());
    assert_eq!(value(&docs, "PendingPods", "Count", &[]), 20);

    let claims = w.p.store.list_live().await.expect("claims");
    let launched: u64 = with(&docs, "NodesLaunched", &[])
        .iter()
        .map(|d| {
            assert_eq!(d["NodePool"], "default");
            d["NodesLaunched"].as_u64().expect("a count")
        })
        .sum();
    assert_eq!(launched as usize, claims.len());
    for capacity in [CapacityType::OnDemand, CapacityType::Spot] {
        let n = claims
            .iter()
            .filter(|c| c.instance.as_ref().is_some_and(|i| i.capacity_type == capacity))
            .count();
        if n > 0 {
            let dims = [("NodePool", "default"), ("CapacityType", capacity.as_str())];
            assert_eq!(value(&docs, "NodesLaunched", "Count", &dims), n);
        }
    }

    let fleet: f64 = claims
        .iter()
        .filter_map(|c| c.instance.as_ref())
        .map(|i| i.price)
        .sum();
    let printed = value(&docs, "FleetCostPerHour", "None", &[])
        .as_f64()
        .expect("a number");
    assert!(fleet > 0.0);
    assert!((printed - fleet).abs() < 1e-6, "{printed} vs {fleet}");
    assert!(value(&docs, "PassDuration", "Milliseconds", &[]).is_u64());
    assert!(with(&docs, "LaunchErrors", &[]).is_empty());
    assert!(with(&docs, "NodesTerminated", &[]).is_empty());
}

#[tokio::test]
async fn the_fleet_cost_is_a_gauge_a_quiet_pass_prints_again() {
    let w = world(nodepool("default").build(), 4);
    w.running().await;
    let live: f64 =
        w.p.store
            .list_live()
            .await
            .expect("claims")
            .iter()
            .filter_map(|c| c.instance.as_ref())
            .map(|i| i.price)
            .sum();
    w.schedule().await;
    let docs = w.printed.take();
    assert_eq!(value(&docs, "PendingPods", "Count", &[]), 0);
    let printed = value(&docs, "FleetCostPerHour", "None", &[])
        .as_f64()
        .expect("a number");
    assert!((printed - live).abs() < 1e-6, "{printed} vs {live}");
    assert!(with(&docs, "NodesLaunched", &[]).is_empty());
}

#[tokio::test]
async fn a_launch_ec2_throttles_is_a_throttled_launch_error() {
    let w = world(nodepool("default").build(), 1);
    w.p.cloud.fail_next(
        CloudOp::Launch,
        PortError::new(ErrorKind::Throttled, "injected: RequestLimitExceeded"),
    );
    w.schedule().await;
    let docs = w.printed.take();
    assert_eq!(
        value(&docs, "LaunchErrors", "Count", &[("ErrorKind", "throttled")]),
        1
    );
    assert!(with(&docs, "NodesLaunched", &[]).is_empty());
}

#[tokio::test]
async fn launches_ec2_has_no_capacity_for_are_insufficient_capacity_errors() {
    let w = world(nodepool("default").on_demand_only().build(), 1);
    w.p.cloud.set_out_of_capacity(OfferingPattern {
        capacity_type: Some(CapacityType::OnDemand),
        ..OfferingPattern::default()
    });
    w.schedule().await;
    let docs = w.printed.take();
    let failures = w.p.cloud.capacity_failures().len();
    assert!(failures >= 1);
    assert_eq!(
        value(
            &docs,
            "LaunchErrors",
            "Count",
            &[("ErrorKind", "insufficient capacity")]
        ),
        failures
    );
}

#[tokio::test]
async fn a_node_that_never_joins_is_terminated_by_registration_timeout() {
    let w = world(nodepool("default").build(), 2);
    w.schedule().await;
    let launched = w.p.cloud.instances().len();
    w.printed.take();
    w.clock.advance(16 * 60_000);
    w.schedule().await;
    let docs = w.printed.take();
    assert_emf(&docs, w.now());
    assert_eq!(
        value(
            &docs,
            "NodesTerminated",
            "Count",
            &[("Reason", "registration timeout")]
        ),
        launched
    );
}

#[tokio::test]
async fn a_pass_that_finds_the_lease_held_prints_nothing() {
    let w = world(nodepool("default").build(), 2);
    w.p.store
        .acquire_lease("someone-else", T0, 600_000)
        .await
        .expect("lease");
    w.schedule().await;
    assert_eq!(w.printed.take(), Vec::<Value>::new());
}

#[tokio::test]
async fn a_failed_pass_still_prints_its_duration() {
    let w = world(nodepool("default").build(), 2);
    w.p.cluster.fail_next(
        nodewright_sim::ClusterOp::ListNodepools,
        PortError::new(ErrorKind::Unauthorized, "forbidden"),
    );
    w.provisioner(schedule_event()).await.expect_err("failed");
    let docs = w.printed.take();
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert!(value(&docs, "PassDuration", "Milliseconds", &[]).is_u64());
}

#[tokio::test]
async fn a_sweep_prints_its_duration_and_the_nodes_it_empties_are_later_terminated_as_empty() {
    let w = world(nodepool("default").build(), 3);
    w.running().await;
    let nodes = w.p.store.list_live().await.expect("claims").len();
    w.p.cluster.scale("web", 0).expect("scaled");
    w.clock.advance(60_000);

    sweeper::function_handler(&w.p, LambdaEvent::new(schedule_event(), context("sweeper-1")))
        .await
        .expect("swept");
    let docs = w.printed.take();
    assert_emf(&docs, w.now());
    assert!(value(&docs, "SweepDuration", "Milliseconds", &[]).is_u64());
    assert!(
        with(&docs, "NodesLaunched", &[]).is_empty(),
        "no replacement for an empty node"
    );

    let mut terminated = 0;
    for _ in 0..3 {
        w.clock.advance(10_000);
        w.schedule().await;
        let docs = w.printed.take();
        terminated += with(&docs, "NodesTerminated", &[("Reason", "empty")])
            .iter()
            .map(|d| d["NodesTerminated"].as_u64().expect("a count"))
            .sum::<u64>();
    }
    assert!(terminated >= 1, "the empty node is terminated as empty");
    assert!(terminated as usize <= nodes);
}

#[tokio::test]
async fn an_interruption_batch_prints_its_messages_by_kind_and_the_pass_it_ran() {
    let w = world(nodepool("default").spot_only().build(), 2);
    w.running().await;
    let claims = w.p.store.list_live().await.expect("claims");
    let instance = claims[0].instance_id().expect("launched").to_string();
    let warning = SPOT_WARNING.replace(FIXTURE_INSTANCE, &instance);
    let batch =
        nodewright_aws::testing::sqs_batch("nodewright-demo-interruption", &[warning.as_str(), "not json"]);
    interruption::function_handler(
        &w.p,
        Rebalance::Record,
        LambdaEvent::new(batch, context("interruption-1")),
    )
    .await
    .expect("handled");
    let docs = w.printed.take();
    assert_emf(&docs, w.now());
    assert_eq!(
        value(&docs, "InterruptionMessages", "Count", &[("Kind", "spot")]),
        1
    );
    assert_eq!(
        value(&docs, "InterruptionMessages", "Count", &[("Kind", "unreadable")]),
        1
    );
    // The pass it ran at once launched the replacement.
    assert_eq!(value(&docs, "PendingPods", "Count", &[]), 0);
    let replacements: u64 = with(&docs, "NodesLaunched", &[("CapacityType", "spot")])
        .iter()
        .map(|d| d["NodesLaunched"].as_u64().expect("a count"))
        .sum();
    assert_eq!(replacements, 1);
}
