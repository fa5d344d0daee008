//! The cluster lease and the audit log in the DynamoDB claim store, against moto.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use nodewright_aws::claims::{AUDIT_RETENTION_SECS, DynamoClaimStore, create_table};
use nodewright_aws::testing::Moto;
use nodewright_core::nodeclaim::AuditRecord;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, ErrorKind};
use nodewright_core::testing::VirtualClock;

const T0: Millis = 1_700_000_000_000;
const TTL: Millis = 60_000;
const CLUSTER: &str = "test-cluster";

async fn store(table: &str) -> (Client, DynamoClaimStore) {
    let client = Client::new(&Moto::shared().sdk_config());
    create_table(&client, table)
        .await
        .expect("create the claims table");
    let clock = VirtualClock::shared(T0);
    let store = DynamoClaimStore::new(client.clone(), table, CLUSTER, clock);
    (client, store)
}

async fn rows_with_prefix(
    client: &Client,
    table: &str,
    prefix: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    client
        .query()
        .table_name(table)
        .key_condition_expression("#c = :c AND begins_with(#sk, :p)")
        .expression_attribute_names("#c", "cluster")
        .expression_attribute_names("#sk", "sk")
        .expression_attribute_values(":c", AttributeValue::S(CLUSTER.to_string()))
        .expression_attribute_values(":p", AttributeValue::S(prefix.to_string()))
        .send()
        .await
        .expect("query")
        .items
        .unwrap_or_default()
}

fn text<'a>(row: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    row.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn number(row: &HashMap<String, AttributeValue>, name: &str) -> Option<f64> {
    row.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_free_lease_is_taken_with_a_first_token() {
    let (_, store) = store("lease-take").await;
    let lease = store.acquire_lease("round-1", T0, TTL).await.expect("acquire");
    assert_eq!(lease.holder, "round-1");
    assert_eq!(lease.token, 1);
    assert_eq!(lease.expires_at, T0 + TTL);
}

#[tokio::test]
async fn a_second_holder_is_refused_while_the_lease_runs() {
    let (_, store) = store("lease-refuse").await;
    store.acquire_lease("round-1", T0, TTL).await.expect("acquire");
    let err = store
        .acquire_lease("round-2", T0 + TTL - 1, TTL)
        .await
        .expect_err("second holder");
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(
        err.message.contains("round-1"),
        "names the holder: {}",
        err.message
    );
}

#[tokio::test]
async fn the_same_holder_renews_with_a_larger_token() {
    let (_, store) = store("lease-renew").await;
    let first = store.acquire_lease("round-1", T0, TTL).await.expect("acquire");
    let renewed = store
        .acquire_lease("round-1", T0 + 10_000, TTL)
        .await
        .expect("renew");
    assert!(renewed.token > first.token);
    assert_eq!(renewed.expires_at, T0 + 10_000 + TTL);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_a_larger_token() {
    let (_, store) = store("lease-takeover").await;
    let first = store.acquire_lease("round-1", T0, TTL).await.expect("acquire");
    let second = store
        .acquire_lease("round-2", T0 + TTL + 1, TTL)
        .await
        .expect("takeover");
    assert_eq!(second.holder, "round-2");
    assert!(second.token > first.token);
}

#[tokio::test]
async fn a_released_lease_is_free_and_its_token_is_never_reused() {
    let (_, store) = store("lease-release").await;
    let first = store.acquire_lease("round-1", T0, TTL).await.expect("acquire");
    store.release_lease(&first).await.expect("release");
    let second = store
        .acquire_lease("round-2", T0 + 1, TTL)
        .await
        .expect("acquire after release");
    assert!(second.token > first.token);
}

#[tokio::test]
async fn releasing_a_lease_already_taken_over_is_harmless() {
    let (_, store) = store("lease-release-late").await;
    let first = store.acquire_lease("round-1", T0, TTL).await.expect("acquire");
    let second = store
        .acquire_lease("round-2", T0 + TTL + 1, TTL)
        .await
        .expect("takeover");
    store
        .release_lease(&first)
        .await
        .expect("late release is not an error");
    let err = store
        .acquire_lease("round-3", T0 + TTL + 2, TTL)
        .await
        .expect_err("round-2 still holds it");
    assert_eq!(err.kind, ErrorKind::Conflict);
    store.release_lease(&second).await.expect("release");
}

#[tokio::test]
async fn a_bad_lease_request_is_invalid() {
    let (_, store) = store("lease-invalid").await;
    let err = store.acquire_lease("round-1", T0, 0).await.expect_err("zero ttl");
    assert_eq!(err.kind, ErrorKind::Invalid);
    let err = store.acquire_lease("", T0, TTL).await.expect_err("no holder");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn an_audit_record_is_written_with_an_expiry() {
    let (client, store) = store("audit-write").await;
    let record = AuditRecord {
        at: 1_700_000_123_456,
        actor: "sweeper".to_string(),
        action: "terminate".to_string(),
        claim_id: "default-abc".to_string(),
        reason: "empty for 30s".to_string(),
        delta_per_hour: -0.096,
    };
    store.audit(&record).await.expect("audit");
    // At-least-once callers write the same record again; that is not an error.
    store.audit(&record).await.expect("audit again");

    let rows = rows_with_prefix(&client, "audit-write", "audit#").await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        text(row, "sk"),
        Some("audit#001700000123456#default-abc#terminate")
    );
    assert_eq!(text(row, "actor"), Some("sweeper"));
    assert_eq!(text(row, "action"), Some("terminate"));
    assert_eq!(text(row, "claim_id"), Some("default-abc"));
    assert_eq!(text(row, "reason"), Some("empty for 30s"));
    assert_eq!(number(row, "delta_per_hour"), Some(-0.096));
    assert_eq!(number(row, "at"), Some(1_700_000_123_456.0));
    assert_eq!(
        number(row, "expires_at"),
        Some((1_700_000_123 + AUDIT_RETENTION_SECS) as f64)
    );
}

#[tokio::test]
async fn audit_rows_sort_by_time() {
    let (client, store) = store("audit-order").await;
    for (at, claim) in [(2_000, "b"), (1_000, "a"), (30_000, "c")] {
        let record = AuditRecord {
            at,
            actor: "provisioner".to_string(),
            action: "launch".to_string(),
            claim_id: claim.to_string(),
            reason: "pending pods".to_string(),
            delta_per_hour: 0.1,
        };
        store.audit(&record).await.expect("audit");
    }
    let claims: Vec<String> = rows_with_prefix(&client, "audit-order", "audit#")
        .await
        .iter()
        .filter_map(|r| text(r, "claim_id").map(str::to_string))
        .collect();
    assert_eq!(claims, vec!["a", "b", "c"]);
}
