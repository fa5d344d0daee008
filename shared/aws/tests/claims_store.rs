//! The DynamoDB claim store against moto: conditional writes, transitions, listing, the
//! instance index, expiry, fencing and error classification.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use nodewright_aws::claims::{DynamoClaimStore, TERMINATED_RETENTION_SECS, create_table};
use nodewright_aws::testing::Moto;
use nodewright_core::nodeclaim::{ClaimState, NodeClaim};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, ErrorKind};
use nodewright_core::testing::{self, ClaimBuilder, VirtualClock};

const T0: Millis = 1_700_000_000_000;
const CLUSTER: &str = "test-cluster";

struct Fixture {
    client: Client,
    table: String,
    clock: Arc<VirtualClock>,
    store: DynamoClaimStore,
}

async fn fixture(moto: &Moto, table: &str) -> Fixture {
    // No SDK retries: a test that injects a failure sees it, not the retry that follows.
    let config = aws_sdk_dynamodb::config::Builder::from(&moto.sdk_config())
        .retry_config(RetryConfig::disabled())
        .build();
    let client = Client::from_conf(config);
    create_table(&client, table)
        .await
        .expect("create the claims table");
    let clock = VirtualClock::shared(T0);
    let store = DynamoClaimStore::new(client.clone(), table, CLUSTER, clock.clone());
    Fixture {
        client,
        table: table.to_string(),
        clock,
        store,
    }
}

/// A claim as the provisioner writes it, before its launch.
fn claim(id: &str) -> NodeClaim {
    testing::claim(id)
        .version(0)
        .created_at(T0)
        .instance_types(&["m5.large", "m5.xlarge"])
        .label("team", "a")
        .pods(&["default/web-0"])
        .build()
}

/// The claim once EC2 launched it as `instance_id`.
fn launched(claim: NodeClaim, instance_id: &str) -> NodeClaim {
    ClaimBuilder::from(claim)
        .launched(instance_id, T0 + 1_000)
        .build()
}

async fn raw_row(f: &Fixture, sk: &str) -> HashMap<String, AttributeValue> {
    f.client
        .get_item()
        .table_name(&f.table)
        .key("cluster", AttributeValue::S(CLUSTER.to_string()))
        .key("sk", AttributeValue::S(sk.to_string()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the row exists")
}

#[tokio::test]
async fn creates_a_claim_at_version_one_and_reads_it_back() {
    let f = fixture(Moto::shared(), "create-and-get").await;
    let created = f.store.create(&claim("default-a")).await.expect("create");
    assert_eq!(created.version, 1);
    let read = f.store.get("default-a").await.expect("get");
    assert_eq!(read, Some(created));
    let row = raw_row(&f, "claim#default-a").await;
    assert_eq!(
        row.get("state").and_then(|v| v.as_s().ok()).map(String::as_str),
        Some("launching")
    );
    assert!(
        !row.contains_key("instance_id"),
        "no instance yet, so not in the sparse index"
    );
    assert!(!row.contains_key("expires_at"), "a live claim never expires");
}

#[tokio::test]
async fn get_returns_none_for_an_unknown_claim() {
    let f = fixture(Moto::shared(), "get-unknown").await;
    assert_eq!(f.store.get("nope").await.expect("get"), None);
}

#[tokio::test]
async fn creating_a_claim_twice_is_a_conflict() {
    let f = fixture(Moto::shared(), "create-twice").await;
    f.store.create(&claim("default-a")).await.expect("first create");
    let err = f
        .store
        .create(&claim("default-a"))
        .await
        .expect_err("second create");
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[tokio::test]
async fn an_update_stores_the_next_version() {
    let f = fixture(Moto::shared(), "update-moves-version").await;
    let created = f.store.create(&claim("default-a")).await.expect("create");
    let updated = f
        .store
        .update(&launched(created, "i-0123"))
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(
        f.store.get("default-a").await.expect("get"),
        Some(updated.clone())
    );
    let row = raw_row(&f, "claim#default-a").await;
    assert_eq!(
        row.get("version").and_then(|v| v.as_n().ok()).map(String::as_str),
        Some("2")
    );
    assert_eq!(
        row.get("instance_id")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some("i-0123")
    );
}

#[tokio::test]
async fn an_update_from_a_stale_version_is_a_conflict() {
    let f = fixture(Moto::shared(), "update-stale").await;
    let created = f.store.create(&claim("default-a")).await.expect("create");
    f.store
        .update(&launched(created.clone(), "i-0123"))
        .await
        .expect("first update");
    let err = f
        .store
        .update(&launched(created, "i-0456"))
        .await
        .expect_err("update from version 1 again");
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[tokio::test]
async fn an_update_of_a_missing_claim_is_not_found() {
    let f = fixture(Moto::shared(), "update-missing").await;
    let mut ghost = claim("default-ghost");
    ghost.version = 1;
    let err = f.store.update(&ghost).await.expect_err("update");
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn an_illegal_transition_is_refused_without_writing() {
    let f = fixture(Moto::shared(), "illegal-transition").await;
    let created = f.store.create(&claim("default-a")).await.expect("create");
    let updated = f
        .store
        .update(&launched(created, "i-0123"))
        .await
        .expect("update");
    let mut back = updated.clone();
    back.state = ClaimState::Launching;
    let err = f
        .store
        .update(&back)
        .await
        .expect_err("launched back to launching");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(f.store.get("default-a").await.expect("get"), Some(updated));
}

#[tokio::test]
async fn list_live_pages_through_more_than_a_megabyte_of_claims() {
    let f = fixture(Moto::shared(), "list-pages").await;
    // ~8 KB per row, so 150 rows span two 1 MB query pages.
    let pods: Vec<String> = (0..150)
        .map(|i| format!("some-namespace/some-deployment-7f9c8d6b5-{i:05}"))
        .collect();
    for i in 0..150 {
        let mut c = claim(&format!("default-{i:03}"));
        c.pods = pods.clone();
        f.store.create(&c).await.expect("create");
    }
    // A terminated claim in the middle of the partition must not be listed.
    let mut gone = f.store.get("default-075").await.expect("get").expect("exists");
    gone.state = ClaimState::Terminated;
    f.store.update(&gone).await.expect("terminate");

    let first_page = f
        .client
        .query()
        .table_name(&f.table)
        .key_condition_expression("#c = :c")
        .expression_attribute_names("#c", "cluster")
        .expression_attribute_values(":c", AttributeValue::S(CLUSTER.to_string()))
        .send()
        .await
        .expect("query");
    assert!(
        first_page.last_evaluated_key.is_some(),
        "the data must not fit one page, or pagination goes untested"
    );

    let mut ids: Vec<String> = f
        .store
        .list_live()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    let expected: Vec<String> = (0..150)
        .filter(|i| *i != 75)
        .map(|i| format!("default-{i:03}"))
        .collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn list_live_sees_only_its_own_cluster() {
    let f = fixture(Moto::shared(), "list-own-cluster").await;
    let other = DynamoClaimStore::new(f.client.clone(), &f.table, "other-cluster", f.clock.clone());
    other
        .create(&claim("default-theirs"))
        .await
        .expect("create theirs");
    f.store.create(&claim("default-ours")).await.expect("create ours");
    let ids: Vec<String> = f
        .store
        .list_live()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["default-ours".to_string()]);
}

#[tokio::test]
async fn find_by_instance_uses_the_instance_index() {
    let f = fixture(Moto::shared(), "find-by-instance").await;
    let a = f.store.create(&claim("default-a")).await.expect("create a");
    let b = f.store.create(&claim("default-b")).await.expect("create b");
    f.store.update(&launched(a, "i-aaaa")).await.expect("launch a");
    let b = f.store.update(&launched(b, "i-bbbb")).await.expect("launch b");
    assert_eq!(f.store.find_by_instance("i-bbbb").await.expect("find"), Some(b));
    assert_eq!(f.store.find_by_instance("i-none").await.expect("find"), None);
}

#[tokio::test]
async fn a_terminated_claim_gets_an_expiry_and_drops_out_of_list_live() {
    let f = fixture(Moto::shared(), "terminated-expiry").await;
    let created = f.store.create(&claim("default-a")).await.expect("create");
    let mut done = launched(created, "i-aaaa");
    done = f.store.update(&done).await.expect("launch");
    done.state = ClaimState::Terminated;
    let done = f.store.update(&done).await.expect("terminate");

    let row = raw_row(&f, "claim#default-a").await;
    let expires_at: i64 = row
        .get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .expect("expires_at is set");
    assert_eq!(expires_at, T0 / 1000 + TERMINATED_RETENTION_SECS);
    assert!(f.store.list_live().await.expect("list").is_empty());
    assert_eq!(f.store.get("default-a").await.expect("get"), Some(done.clone()));
    assert_eq!(
        f.store.find_by_instance("i-aaaa").await.expect("find"),
        Some(done)
    );

    // moto never deletes by TTL: past the expiry the row must read as gone anyway.
    f.clock.advance((TERMINATED_RETENTION_SECS + 1) * 1000);
    assert_eq!(f.store.get("default-a").await.expect("get"), None);
    assert_eq!(f.store.find_by_instance("i-aaaa").await.expect("find"), None);
}

#[tokio::test]
async fn a_fenced_write_succeeds_while_the_lease_is_held() {
    let f = fixture(Moto::shared(), "fence-held").await;
    let lease = f.store.acquire_lease("round-1", T0, 60_000).await.expect("lease");
    let fenced = f.store.with_fence(&lease);
    let created = fenced.create(&claim("default-a")).await.expect("fenced create");
    let updated = fenced
        .update(&launched(created, "i-aaaa"))
        .await
        .expect("fenced update");
    assert_eq!(updated.version, 2);
}

#[tokio::test]
async fn a_fenced_write_fails_once_the_lease_passed_to_another_holder() {
    let f = fixture(Moto::shared(), "fence-lost").await;
    let old = f.store.acquire_lease("round-1", T0, 60_000).await.expect("lease");
    f.store
        .acquire_lease("round-2", T0 + 61_000, 60_000)
        .await
        .expect("takeover after expiry");
    let err = f
        .store
        .with_fence(&old)
        .create(&claim("default-a"))
        .await
        .expect_err("a write under the old token");
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(f.store.get("default-a").await.expect("get"), None);
}

#[tokio::test]
async fn a_fenced_update_still_tells_a_stale_version_from_a_missing_claim() {
    let f = fixture(Moto::shared(), "fence-classifies").await;
    let lease = f.store.acquire_lease("round-1", T0, 60_000).await.expect("lease");
    let fenced = f.store.with_fence(&lease);
    let created = fenced.create(&claim("default-a")).await.expect("create");
    fenced
        .update(&launched(created.clone(), "i-aaaa"))
        .await
        .expect("update");
    let stale = fenced
        .update(&launched(created, "i-bbbb"))
        .await
        .expect_err("stale");
    assert_eq!(stale.kind, ErrorKind::Conflict);
    let mut ghost = claim("default-ghost");
    ghost.version = 1;
    let missing = fenced.update(&ghost).await.expect_err("missing");
    assert_eq!(missing.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn provisioned_throughput_exceeded_is_throttled() {
    // Injected failures apply to the whole server, so this test owns its moto.
    let moto = Moto::start();
    let f = fixture(&moto, "throttled").await;
    moto.fail_next("dynamodb", "PutItem", "ProvisionedThroughputExceededException", 1);
    let err = f
        .store
        .create(&claim("default-a"))
        .await
        .expect_err("throttled create");
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert!(err.kind.is_retryable());
    moto.fail_next("dynamodb", "Query", "ProvisionedThroughputExceededException", 1);
    let err = f.store.list_live().await.expect_err("throttled list");
    assert_eq!(err.kind, ErrorKind::Throttled);
    let lease = f.store.acquire_lease("round-1", T0, 60_000).await.expect("lease");
    moto.fail_next(
        "dynamodb",
        "TransactWriteItems",
        "ProvisionedThroughputExceededException",
        1,
    );
    let err = f
        .store
        .with_fence(&lease)
        .create(&claim("default-a"))
        .await
        .expect_err("throttled fenced create");
    assert_eq!(err.kind, ErrorKind::Throttled);
}

#[tokio::test]
async fn audit_records_come_back_in_time_order_within_the_range_and_only_this_clusters() {
    use nodewright_core::nodeclaim::AuditRecord;
    let f = fixture(Moto::shared(), "audit-range").await;
    let record = |at: Millis, claim: &str, action: &str| AuditRecord {
        at,
        actor: "provisioner".into(),
        action: action.into(),
        claim_id: claim.into(),
        reason: format!("{action} {claim}"),
        delta_per_hour: if action == "launch" { 0.096 } else { -0.096 },
    };
    for r in [
        record(T0 + 3_000, "default-b", "launch"),
        record(T0 + 1_000, "default-a", "launch"),
        record(T0 + 5_000, "default-a", "disrupt"),
        record(T0 + 9_000, "default-c", "launch"),
    ] {
        f.store.audit(&r).await.expect("audit");
    }
    // Rows of other kinds and another cluster's audit rows share the table.
    f.store.create(&claim("default-a")).await.expect("claim row");
    let other = DynamoClaimStore::new(f.client.clone(), &f.table, "other-cluster", f.clock.clone());
    other
        .audit(&record(T0 + 4_000, "other-a", "launch"))
        .await
        .expect("other cluster's audit");

    let all = f.store.audit_records(0, T0 + 10_000).await.expect("all");
    let keys: Vec<(Millis, &str, &str)> = all
        .iter()
        .map(|r| (r.at, r.claim_id.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (T0 + 1_000, "default-a", "launch"),
            (T0 + 3_000, "default-b", "launch"),
            (T0 + 5_000, "default-a", "disrupt"),
            (T0 + 9_000, "default-c", "launch"),
        ]
    );
    assert_eq!(all[2].delta_per_hour, -0.096);
    assert_eq!(all[2].reason, "disrupt default-a");
    // Both ends included.
    let window = f
        .store
        .audit_records(T0 + 3_000, T0 + 5_000)
        .await
        .expect("window");
    assert_eq!(window.len(), 2, "{window:?}");
    assert!(
        f.store
            .audit_records(T0 + 6_000, T0 + 8_999)
            .await
            .expect("gap")
            .is_empty()
    );
    assert!(
        f.store
            .audit_records(T0 + 5_000, T0)
            .await
            .expect("backwards")
            .is_empty()
    );
}

#[tokio::test]
async fn all_claims_includes_terminated_claims_until_they_expire() {
    let f = fixture(Moto::shared(), "all-claims").await;
    f.store.create(&claim("default-a")).await.expect("create");
    let gone = f.store.create(&claim("default-b")).await.expect("create");
    let mut gone = gone;
    gone.state = ClaimState::Terminated;
    f.store.update(&gone).await.expect("terminate");
    let ids = |claims: Vec<NodeClaim>| {
        let mut ids: Vec<String> = claims.into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(f.store.list_live().await.expect("live")), ["default-a"]);
    assert_eq!(
        ids(f.store.all_claims().await.expect("all")),
        ["default-a", "default-b"]
    );
    f.clock.advance((TERMINATED_RETENTION_SECS + 1) * 1000);
    assert_eq!(ids(f.store.all_claims().await.expect("all")), ["default-a"]);
}
