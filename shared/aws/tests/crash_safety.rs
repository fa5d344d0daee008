//! Crash safety of the launch flow, against moto's DynamoDB and EC2.
//!
//! A launch is (1) write the claim `Launching`, (2) launch the instance tagged with the claim
//! id, (3) update the claim to `Launched`. These tests stop a launch after each step, as a
//! Lambda killed mid-round would, then move the clock past the launch grace period and run one
//! reconcile pass with the DynamoDB store: afterwards every instance belongs to a live claim or
//! is terminated, and no claim is left `Launching`.
//!
//! Instances are launched, listed and terminated by the EC2 adapter itself ([`Ec2Cloud`]);
//! only the orphan without a claim tag is started with a bare RunInstances.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use nodewright_aws::Ec2Cloud;
use nodewright_aws::claims::{DynamoClaimStore, create_table};
use nodewright_aws::testing::{Moto, aws_config, getting_started_nodeclass, offering};
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::{ClaimState, NodeClaim};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, Clock, Cloud, Instance, LaunchRequest};
use nodewright_core::reconcile::{
    LAUNCH_NEVER_COMPLETED, ORPHAN_INSTANCE, ReconcileAction, ReconcilePolicy, apply, reconcile,
};
use nodewright_core::testing::{self, ClaimBuilder, VirtualClock};

const MINUTE: Millis = 60_000;

fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// An instance started behind nodewright's back (RunInstances), tagged with the cluster only,
/// as a managed node group's would be.
async fn run_untagged_by_claim(ec2: &aws_sdk_ec2::Client, cluster: &str) -> String {
    let image_id = ec2
        .describe_images()
        .send()
        .await
        .expect("describe images")
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_string))
        .expect("moto has images");
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(Tag::builder().key(cluster_tag(cluster)).value("owned").build());
    ec2.run_instances()
        .image_id(image_id)
        .instance_type(InstanceType::M5Large)
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags.build())
        .send()
        .await
        .expect("run instances")
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .expect("an instance id")
        .to_string()
}

struct World {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    clock: Arc<VirtualClock>,
    store: DynamoClaimStore,
    ec2: aws_sdk_ec2::Client,
    cloud: Ec2Cloud,
}

/// A fresh table and cluster name on the shared moto, with the clock at the wall time
/// (moto stamps instances with the wall time).
async fn world(name: &str) -> World {
    let config = Moto::shared().sdk_config();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    create_table(&dynamodb, name)
        .await
        .expect("create the claims table");
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let clock = VirtualClock::shared(Millis::try_from(wall).expect("fits"));
    let store = DynamoClaimStore::new(dynamodb.clone(), name, name, clock.clone());
    Moto::shared().create_network(name).await;
    let cloud = Ec2Cloud::new(&config, aws_config(name), clock.clone());
    World {
        dynamodb,
        table: name.to_string(),
        clock,
        store,
        ec2: aws_sdk_ec2::Client::new(&config),
        cloud,
    }
}

/// A claim as the provisioner writes it at `now`, before its launch.
fn claim(id: &str, now: Millis) -> NodeClaim {
    testing::claim(id)
        .version(0)
        .created_at(now)
        .without_labels()
        .pods(&[format!("default/{id}-pod")])
        .build()
}

/// The launch flow, stopped after `steps` of its three steps.
async fn launch_until(w: &World, id: &str, steps: u8) -> Option<String> {
    let created = w
        .store
        .create(&claim(id, w.clock.now()))
        .await
        .expect("step 1: write the claim");
    if steps < 2 {
        return None;
    }
    let instance_id = launch_instance(w, &created).await;
    if steps < 3 {
        return Some(instance_id);
    }
    let launched = ClaimBuilder::from(created)
        .launched(&instance_id, w.clock.now())
        .build();
    w.store
        .update(&launched)
        .await
        .expect("step 3: record the instance");
    Some(instance_id)
}

/// Step 2 through the EC2 adapter: CreateFleet with the claim's tag.
async fn launch_instance(w: &World, claim: &NodeClaim) -> String {
    w.cloud
        .launch(&LaunchRequest {
            claim: claim.clone(),
            nodeclass: getting_started_nodeclass(&w.table),
            overrides: vec![offering("m5.large", "us-east-1a", CapacityType::OnDemand, 0.096)],
        })
        .await
        .expect("step 2: launch")
        .instance
        .id
}

/// One reconcile pass, the way the sweeper runs it: under the lease, with fenced writes.
async fn reconcile_pass(w: &World) -> Vec<ReconcileAction> {
    let now = w.clock.now();
    let lease = w
        .store
        .acquire_lease("sweeper", now, MINUTE)
        .await
        .expect("lease");
    let store = w.store.with_fence(&lease);
    let claims = store.list_live().await.expect("list claims");
    let instances = w.cloud.list_instances().await.expect("list instances");
    let actions = reconcile(&claims, &instances, now, &ReconcilePolicy::default());
    let report = apply(actions.clone(), &w.cloud, &store, now).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(report.stale.is_empty(), "{:?}", report.stale);
    store.release_lease(&lease).await.expect("release");
    actions
}

async fn alive_instances(w: &World) -> Vec<Instance> {
    let instances = w.cloud.list_instances().await.expect("list instances");
    instances.into_iter().filter(|i| !i.state.is_gone()).collect()
}

async fn audit_actions(w: &World) -> Vec<(String, String)> {
    let rows = w
        .dynamodb
        .query()
        .table_name(&w.table)
        .key_condition_expression("#c = :c AND begins_with(#sk, :p)")
        .expression_attribute_names("#c", "cluster")
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_values(":c", AttributeValue::S(w.table.clone()))
        .expression_attribute_values(":p", AttributeValue::S("audit#".to_string()))
        .send()
        .await
        .expect("query audit rows")
        .items
        .unwrap_or_default();
    let text = |row: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        row.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut actions: Vec<(String, String)> = rows
        .iter()
        .map(|r| (text(r, "claim_id"), text(r, "action")))
        .collect();
    actions.sort();
    actions
}

#[tokio::test]
async fn a_launch_killed_after_any_step_is_repaired_by_one_reconcile_pass() {
    let w = world("crash-each-step").await;
    launch_until(&w, "default-after-claim", 1).await;
    let adopted = launch_until(&w, "default-after-launch", 2)
        .await
        .expect("instance");
    let completed = launch_until(&w, "default-completed", 3).await.expect("instance");
    let orphan = launch_instance(&w, &claim("default-never-written", w.clock.now())).await;

    w.clock.advance(3 * MINUTE);
    reconcile_pass(&w).await;

    let claims = w.store.list_live().await.expect("list claims");
    assert!(
        claims.iter().all(|c| c.state != ClaimState::Launching),
        "no claim stays launching: {claims:?}"
    );
    for instance in alive_instances(&w).await {
        assert!(
            claims
                .iter()
                .any(|c| c.instance_id() == Some(instance.id.as_str())),
            "instance {} has no live claim",
            instance.id
        );
    }
    let mut matched: Vec<String> = claims
        .iter()
        .filter_map(|c| c.instance_id().map(str::to_string))
        .collect();
    matched.sort();
    let mut expected = vec![adopted.clone(), completed];
    expected.sort();
    assert_eq!(matched, expected);

    let never = w
        .store
        .get("default-after-claim")
        .await
        .expect("get")
        .expect("row kept");
    assert_eq!(never.state, ClaimState::Terminated);
    assert_eq!(never.reason.as_deref(), Some(LAUNCH_NEVER_COMPLETED));
    let found = w
        .store
        .get("default-after-launch")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(found.state, ClaimState::Launched);
    assert_eq!(found.instance_id(), Some(adopted.as_str()));
    assert!(alive_instances(&w).await.iter().all(|i| i.id != orphan));

    assert_eq!(
        audit_actions(&w).await,
        vec![
            ("default-after-claim".to_string(), "close".to_string()),
            ("default-after-launch".to_string(), "adopt".to_string()),
            ("default-never-written".to_string(), "terminate".to_string()),
        ]
    );

    // Repaired state is stable: the next pass finds nothing to do.
    w.clock.advance(MINUTE);
    assert_eq!(reconcile_pass(&w).await, vec![]);
}

#[tokio::test]
async fn an_old_orphan_instance_is_terminated() {
    let w = world("orphan-old").await;
    let orphan = launch_instance(&w, &claim("default-never-recorded", w.clock.now())).await;
    w.clock.advance(3 * MINUTE);
    let actions = reconcile_pass(&w).await;
    assert!(
        matches!(&actions[..], [ReconcileAction::Terminate { instance, reason, .. }]
        if instance.id == orphan && reason == ORPHAN_INSTANCE),
        "{actions:?}"
    );
    assert!(alive_instances(&w).await.is_empty());
}

#[tokio::test]
async fn an_instance_of_the_cluster_without_a_claim_tag_is_not_ours_to_collect() {
    // Managed node groups tag their instances with the cluster too.
    let w = world("node-group").await;
    let node_group = run_untagged_by_claim(&w.ec2, &w.table).await;
    w.clock.advance(60 * MINUTE);
    assert_eq!(reconcile_pass(&w).await, vec![]);
    let state = w
        .ec2
        .describe_instances()
        .instance_ids(&node_group)
        .send()
        .await
        .expect("describe")
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()));
    assert_eq!(state.as_deref(), Some("running"));
}

#[tokio::test]
async fn a_young_orphan_instance_is_left_alone() {
    let w = world("orphan-young").await;
    let young = launch_instance(&w, &claim("default-in-flight", w.clock.now())).await;
    assert_eq!(reconcile_pass(&w).await, vec![]);
    let alive: Vec<String> = alive_instances(&w).await.into_iter().map(|i| i.id).collect();
    assert_eq!(alive, vec![young]);
}

#[tokio::test]
async fn a_claim_whose_instance_vanished_is_closed() {
    let w = world("instance-vanished").await;
    let instance = launch_until(&w, "default-lost", 3).await.expect("instance");
    w.cloud
        .terminate(&instance)
        .await
        .expect("terminate behind our back");
    w.clock.advance(3 * MINUTE);
    reconcile_pass(&w).await;
    let lost = w.store.get("default-lost").await.expect("get").expect("row kept");
    assert_eq!(lost.state, ClaimState::Terminated);
    assert!(w.store.list_live().await.expect("list").is_empty());
}
