//! DynamoDB NodeClaim store, lease and audit log: [`DynamoClaimStore`] implements the core's
//! [`ClaimStore`].
//!
//! # Table
//!
//! One table per cluster stack. The SAM template creates it in production; [`create_table`]
//! makes the same table for tests and local development. The template must match:
//!
//! ```yaml
//! ClaimsTable:
//!   Type: AWS::DynamoDB::Table
//!   Properties:
//!     BillingMode: PAY_PER_REQUEST
//!     AttributeDefinitions:
//!       - { AttributeName: cluster, AttributeType: S }
//!       - { AttributeName: sk, AttributeType: S }
//!       - { AttributeName: instance_id, AttributeType: S }
//!     KeySchema:
//!       - { AttributeName: cluster, KeyType: HASH }
//!       - { AttributeName: sk, KeyType: RANGE }
//!     GlobalSecondaryIndexes:
//!       - IndexName: by-instance
//!         KeySchema: [{ AttributeName: instance_id, KeyType: HASH }]
//!         Projection: { ProjectionType: ALL }
//!     TimeToLiveSpecification: { AttributeName: expires_at, Enabled: true }
//! ```
//!
//! Rows, all in the partition `cluster = <cluster name>`:
//!
//! | `sk` | attributes |
//! |------|------------|
//! | `claim#<id>` | `version` (N), `state` (S), `claim` (S: the NodeClaim as JSON), `instance_id` (S, only once known: the GSI is sparse), `expires_at` (N, epoch seconds: set when the claim becomes `terminated`, [`TERMINATED_RETENTION_SECS`] later) |
//! | `lease` | `holder` (S, absent once released), `token` (N: the fencing token, only ever grows), `lease_expires_at` (N, epoch millis) |
//! | `unavailable#<type>#<zone>#<capacity type>` | `instance_type`, `zone`, `capacity_type` (S), `until` (N, epoch millis: a later mark wins), `expires_at` (N, an hour after `until`) |
//! | `audit#<at millis, 15 digits>#<claim id>#<action>` | `actor`, `action`, `claim_id`, `reason` (S), `delta_per_hour` (N), `at` (N, millis), `expires_at` (N, [`AUDIT_RETENTION_SECS`] later) |
//!
//! The lease row has no `expires_at`: TTL would delete it, and the token counter with it, and a
//! token must never be handed out twice. Acquiring is one conditional UpdateItem that succeeds
//! when the row is absent, expired or held by the same holder, and always adds one to `token`:
//! a renewal gets a new token too, so a holder fences with the lease it got last. Holder names
//! must be unique per round (the Lambda request id), or two rounds would share the lease.
//!
//! # Consistency
//!
//! Every write is conditional: a claim is created only where none is, updated only at the
//! version it was read at (a lost race is `Conflict`), and only along a legal transition
//! ([`ClaimState::can_become`], else `Invalid`). Table reads are strongly consistent; the
//! `by-instance` index is not, so [`ClaimStore::find_by_instance`] may miss a claim written a
//! moment ago. TTL deletion lags (by up to days; moto never deletes), so rows past `expires_at`
//! are treated as deleted by every read and write, measured by the injected [`Clock`].
//!
//! A store made [`DynamoClaimStore::with_fence`] writes claims in a transaction with a check
//! that the lease row still carries the holder's token, so a holder that lost its lease (a
//! paused Lambda that woke after its lease expired) cannot overwrite its successor's claims.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
};
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::{AuditRecord, ClaimState, NodeClaim};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ClaimStore, Clock, ErrorKind, Lease, OfferingKey, PortError, PortResult};
use tracing::{debug, info, warn};

use crate::errors;

/// The partition key: the cluster name.
pub const PARTITION_KEY: &str = "cluster";
/// The sort key: `claim#<id>`, `lease` or `audit#…`.
pub const SORT_KEY: &str = "sk";
/// The sparse global secondary index on `instance_id`.
pub const INSTANCE_INDEX: &str = "by-instance";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// How long a terminated claim's row is kept: a day, for operators and late events.
pub const TERMINATED_RETENTION_SECS: i64 = 24 * 3600;
/// How long an audit row is kept.
pub const AUDIT_RETENTION_SECS: i64 = 90 * 24 * 3600;

const CLAIM_PREFIX: &str = "claim#";
const UNAVAILABLE_PREFIX: &str = "unavailable#";
const LEASE_SK: &str = "lease";
const AUDIT_PREFIX: &str = "audit#";
const INSTANCE_ID: &str = "instance_id";

const ALL_STATES: [ClaimState; 7] = [
    ClaimState::Launching,
    ClaimState::Launched,
    ClaimState::Registered,
    ClaimState::Initialized,
    ClaimState::Disrupting,
    ClaimState::Terminating,
    ClaimState::Terminated,
];

type Item = HashMap<String, AttributeValue>;

/// The NodeClaim store for one cluster in one DynamoDB table.
#[derive(Clone)]
pub struct DynamoClaimStore {
    client: Client,
    table: String,
    cluster: String,
    clock: Arc<dyn Clock>,
    /// The fencing token every claim write is checked against, if any.
    fence: Option<u64>,
}

impl fmt::Debug for DynamoClaimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoClaimStore")
            .field("table", &self.table)
            .field("cluster", &self.cluster)
            .field("fence", &self.fence)
            .finish()
    }
}

/// What a conditional write came to.
enum Written {
    Yes,
    /// The row's own condition failed.
    Refused,
    /// The lease row no longer carries our fencing token.
    Fenced,
}

/// A condition expression with its placeholders.
struct Condition {
    expression: String,
    names: HashMap<String, String>,
    values: Item,
}

impl DynamoClaimStore {
    /// A store for `cluster`'s rows in `table`. `clock` decides which rows have expired and
    /// when new ones expire.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        cluster: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        DynamoClaimStore {
            client,
            table: table.into(),
            cluster: cluster.into(),
            clock,
            fence: None,
        }
    }

    /// The same store, with every claim create and update made conditional on the lease row
    /// still carrying `lease.token`; a write after the lease passed on fails with `Conflict`.
    pub fn with_fence(&self, lease: &Lease) -> Self {
        DynamoClaimStore {
            fence: Some(lease.token),
            ..self.clone()
        }
    }

    fn key(&self, sk: &str) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_string(), s(&self.cluster)),
            (SORT_KEY.to_string(), s(sk)),
        ])
    }

    fn claim_item(&self, claim: &NodeClaim, now: Millis) -> PortResult<Item> {
        let json = serde_json::to_string(claim).map_err(|e| {
            PortError::new(
                ErrorKind::Invalid,
                format!("claim {} cannot be encoded", claim.id),
            )
            .with_source(e)
        })?;
        let mut item = self.key(&claim_sk(&claim.id));
        item.insert("version".into(), n(claim.version));
        item.insert("state".into(), s(claim.state.as_str()));
        item.insert("claim".into(), AttributeValue::S(json));
        if let Some(instance_id) = claim.instance_id() {
            item.insert(INSTANCE_ID.into(), s(instance_id));
        }
        if claim.state == ClaimState::Terminated {
            item.insert(
                TTL_ATTRIBUTE.into(),
                n(epoch_secs(now) + TERMINATED_RETENTION_SECS),
            );
        }
        Ok(item)
    }

    /// Puts `item` if `condition` holds (and, when fenced, the lease token is unchanged).
    async fn put(&self, item: Item, condition: Condition) -> PortResult<Written> {
        let Some(token) = self.fence else {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition.expression)
                .set_expression_attribute_names(Some(condition.names))
                .set_expression_attribute_values(Some(condition.values))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Written::Yes),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(Written::Refused)
                }
                Err(e) => Err(errors::from_sdk("dynamodb PutItem", e)),
            };
        };
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(LEASE_SK)))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", n(token))
            .build()
            .map_err(build_error)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition.expression)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(Some(condition.values))
            .build()
            .map_err(build_error)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Yes),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    // One reason per item, in order: the lease check, then the claim.
                    let codes: Vec<&str> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None"))
                        .collect();
                    match codes.as_slice() {
                        ["ConditionalCheckFailed", ..] => Ok(Written::Fenced),
                        [_, "ConditionalCheckFailed", ..] => Ok(Written::Refused),
                        _ => {
                            let code = codes.iter().find(|c| **c != "None").copied().unwrap_or_default();
                            Err(PortError::new(
                                errors::kind_for_code(code).unwrap_or(ErrorKind::Unavailable),
                                format!("dynamodb TransactWriteItems cancelled: {code}"),
                            )
                            .with_source(e))
                        }
                    }
                }
                _ => Err(errors::from_sdk("dynamodb TransactWriteItems", e)),
            },
        }
    }

    /// The claim row, unless absent or expired at `now`.
    async fn read(&self, id: &str, now: Millis) -> PortResult<Option<NodeClaim>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&claim_sk(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| errors::from_sdk("dynamodb GetItem", e))?;
        match output.item() {
            Some(item) if !expired(item, now) => decode_claim(item).map(Some),
            _ => Ok(None),
        }
    }

    /// Why an update's condition failed: the row is gone, moved on, or cannot make the move.
    async fn refused_update(&self, claim: &NodeClaim, now: Millis) -> PortError {
        match self.read(&claim.id, now).await {
            Err(e) => e,
            Ok(None) => PortError::new(ErrorKind::NotFound, format!("claim {} does not exist", claim.id)),
            Ok(Some(current)) if current.version != claim.version => PortError::new(
                ErrorKind::Conflict,
                format!(
                    "claim {} is at version {}, not {}",
                    claim.id, current.version, claim.version
                ),
            ),
            Ok(Some(current)) => PortError::new(
                ErrorKind::Invalid,
                format!(
                    "claim {} cannot go from {} to {}",
                    claim.id, current.state, claim.state
                ),
            ),
        }
    }
}

/// Operators' reads, outside the [`ClaimStore`] port: the audit log and every claim row.
impl DynamoClaimStore {
    /// The audit records written from `since` to `until` (epoch millis, both included), oldest
    /// first: one Query on the key range `audit#<since>` … `audit#<until + 1>` (the time leads
    /// the sort key, zero-padded, so key order is time order), every page of it.
    pub async fn audit_records(&self, since: Millis, until: Millis) -> PortResult<Vec<AuditRecord>> {
        let now = self.clock.now();
        let from = format!("{AUDIT_PREFIX}{:015}", since.max(0));
        // No key is exactly `audit#<until + 1>` (every key goes on with `#`), and it sorts
        // before every row written at `until + 1`.
        let to = format!("{AUDIT_PREFIX}{:015}", until.saturating_add(1).max(0));
        let mut out = Vec::new();
        if until < since {
            return Ok(out);
        }
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#cluster = :cluster AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#cluster", PARTITION_KEY)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":cluster", s(&self.cluster))
                .expression_attribute_values(":from", s(&from))
                .expression_attribute_values(":to", s(&to))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| errors::from_sdk("dynamodb Query audit", e))?;
            for item in page.items().iter().filter(|i| !expired(i, now)) {
                out.push(decode_audit(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        debug!(records = out.len(), since, until, "listed audit records");
        Ok(out)
    }

    /// Every claim row not yet expired, terminated ones included (kept
    /// [`TERMINATED_RETENTION_SECS`]): which node a claim became, after it is gone.
    pub async fn all_claims(&self) -> PortResult<Vec<NodeClaim>> {
        let now = self.clock.now();
        let mut claims = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#cluster = :cluster AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#cluster", PARTITION_KEY)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":cluster", s(&self.cluster))
                .expression_attribute_values(":prefix", s(CLAIM_PREFIX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| errors::from_sdk("dynamodb Query", e))?;
            for item in page.items().iter().filter(|i| !expired(i, now)) {
                claims.push(decode_claim(item)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(claims)
    }
}

impl ClaimStore for DynamoClaimStore {
    fn fenced(&self, lease: &Lease) -> Self {
        self.with_fence(lease)
    }

    async fn create(&self, claim: &NodeClaim) -> PortResult<NodeClaim> {
        let now = self.clock.now();
        let mut stored = claim.clone();
        stored.version = 1;
        let item = self.claim_item(&stored, now)?;
        let condition = Condition {
            expression: "attribute_not_exists(#sk) OR #expires_at <= :now".into(),
            names: names(&[("#sk", SORT_KEY), ("#expires_at", TTL_ATTRIBUTE)]),
            values: HashMap::from([(":now".into(), n(epoch_secs(now)))]),
        };
        match self.put(item, condition).await? {
            Written::Yes => {
                info!(nodeclaim = %claim.id, state = %claim.state, "claim created");
                Ok(stored)
            }
            Written::Refused => Err(PortError::new(
                ErrorKind::Conflict,
                format!("claim {} already exists", claim.id),
            )),
            Written::Fenced => Err(fenced(&claim.id)),
        }
    }

    async fn update(&self, claim: &NodeClaim) -> PortResult<NodeClaim> {
        let now = self.clock.now();
        let mut stored = claim.clone();
        stored.version = claim.version.checked_add(1).ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                format!("claim {} version overflows", claim.id),
            )
        })?;
        let item = self.claim_item(&stored, now)?;
        // The legal predecessors go into the condition, so that an illegal move is refused by
        // the same write that checks the version, without a read first.
        let mut values = HashMap::from([
            (":expected".to_string(), n(claim.version)),
            (":now".to_string(), n(epoch_secs(now))),
        ]);
        let mut from = Vec::new();
        for (i, state) in ALL_STATES
            .iter()
            .filter(|s| s.can_become(claim.state))
            .enumerate()
        {
            let placeholder = format!(":from{i}");
            values.insert(placeholder.clone(), s(state.as_str()));
            from.push(placeholder);
        }
        let condition = Condition {
            expression: format!(
                "#version = :expected AND #state IN ({}) AND \
                 (attribute_not_exists(#expires_at) OR #expires_at > :now)",
                from.join(", ")
            ),
            names: names(&[
                ("#version", "version"),
                ("#state", "state"),
                ("#expires_at", TTL_ATTRIBUTE),
            ]),
            values,
        };
        match self.put(item, condition).await? {
            Written::Yes => {
                info!(
                    nodeclaim = %claim.id,
                    state = %claim.state,
                    version = stored.version,
                    "claim updated"
                );
                Ok(stored)
            }
            Written::Refused => {
                let error = self.refused_update(claim, now).await;
                debug!(nodeclaim = %claim.id, error = %error, "claim update refused");
                Err(error)
            }
            Written::Fenced => Err(fenced(&claim.id)),
        }
    }

    async fn get(&self, id: &str) -> PortResult<Option<NodeClaim>> {
        self.read(id, self.clock.now()).await
    }

    async fn list_live(&self) -> PortResult<Vec<NodeClaim>> {
        let now = self.clock.now();
        let mut claims = Vec::new();
        let mut start: Option<Item> = None;
        let mut pages = 0u32;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#cluster = :cluster AND begins_with(#sk, :prefix)")
                .filter_expression("#state <> :terminated")
                .set_expression_attribute_names(Some(names(&[
                    ("#cluster", PARTITION_KEY),
                    ("#sk", SORT_KEY),
                    ("#state", "state"),
                ])))
                .expression_attribute_values(":cluster", s(&self.cluster))
                .expression_attribute_values(":prefix", s(CLAIM_PREFIX))
                .expression_attribute_values(":terminated", s(ClaimState::Terminated.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| errors::from_sdk("dynamodb Query", e))?;
            pages += 1;
            for item in page.items() {
                if !expired(item, now) {
                    // A row that does not decode stops the listing rather than being skipped:
                    // a claim missing from this list would make its instance look orphaned.
                    claims.push(decode_claim(item)?);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        debug!(claims = claims.len(), pages, "listed live claims");
        Ok(claims)
    }

    async fn find_by_instance(&self, instance_id: &str) -> PortResult<Option<NodeClaim>> {
        let now = self.clock.now();
        // One instance id names one claim, so the answer fits in the first page.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INSTANCE_INDEX)
            .key_condition_expression("#instance_id = :instance_id")
            .filter_expression("#cluster = :cluster")
            .expression_attribute_names("#instance_id", INSTANCE_ID)
            .expression_attribute_names("#cluster", PARTITION_KEY)
            .expression_attribute_values(":instance_id", s(instance_id))
            .expression_attribute_values(":cluster", s(&self.cluster))
            .send()
            .await
            .map_err(|e| errors::from_sdk("dynamodb Query by-instance", e))?;
        let mut found = Vec::new();
        for item in output.items().iter().filter(|i| !expired(i, now)) {
            found.push(decode_claim(item)?);
        }
        // Should an id ever be recorded twice, the live claim is the one that matters.
        found.sort_by_key(|c| !c.state.is_live());
        Ok(found.into_iter().next())
    }

    async fn acquire_lease(&self, holder: &str, now: Millis, ttl_ms: Millis) -> PortResult<Lease> {
        let expires_at = match now.checked_add(ttl_ms) {
            Some(t) if ttl_ms > 0 && !holder.is_empty() => t,
            _ => {
                return Err(PortError::new(
                    ErrorKind::Invalid,
                    format!("bad lease request: holder {holder:?}, ttl {ttl_ms} ms"),
                ));
            }
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(LEASE_SK)))
            .update_expression("SET #holder = :holder, #lease_expires_at = :expires ADD #token :one")
            .condition_expression(
                "attribute_not_exists(#sk) OR #lease_expires_at < :now OR #holder = :holder",
            )
            .set_expression_attribute_names(Some(names(&[
                ("#sk", SORT_KEY),
                ("#holder", "holder"),
                ("#lease_expires_at", "lease_expires_at"),
                ("#token", "token"),
            ])))
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":expires", n(expires_at))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let token = output
                    .attributes()
                    .and_then(|a| number(a, "token"))
                    .and_then(|t| u64::try_from(t).ok())
                    .ok_or_else(|| PortError::new(ErrorKind::Unavailable, "lease write returned no token"))?;
                info!(holder, token, expires_at, "lease acquired");
                Ok(Lease {
                    holder: holder.to_string(),
                    token,
                    expires_at,
                })
            }
            Err(e) => {
                if let Some(UpdateItemError::ConditionalCheckFailedException(taken)) = e.as_service_error() {
                    let current = taken.item();
                    let other = current
                        .and_then(|i| string(i, "holder"))
                        .unwrap_or("another holder");
                    let until = current
                        .and_then(|i| number(i, "lease_expires_at"))
                        .unwrap_or_default();
                    debug!(holder, held_by = other, until, "lease is taken");
                    return Err(PortError::new(
                        ErrorKind::Conflict,
                        format!("lease held by {other} until {until}"),
                    ));
                }
                Err(errors::from_sdk("dynamodb UpdateItem lease", e))
            }
        }
    }

    async fn release_lease(&self, lease: &Lease) -> PortResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(LEASE_SK)))
            // Keep the row (and its token counter); only make it free.
            .update_expression("SET #lease_expires_at = :released REMOVE #holder")
            .condition_expression("#holder = :holder AND #token = :token")
            .set_expression_attribute_names(Some(names(&[
                ("#holder", "holder"),
                ("#lease_expires_at", "lease_expires_at"),
                ("#token", "token"),
            ])))
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":token", n(lease.token))
            .expression_attribute_values(":released", n(0))
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(holder = %lease.holder, token = lease.token, "lease released");
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                warn!(holder = %lease.holder, token = lease.token, "lease was already taken over");
                Ok(())
            }
            Err(e) => Err(errors::from_sdk("dynamodb UpdateItem lease", e)),
        }
    }

    async fn mark_unavailable(&self, key: &OfferingKey, until: Millis) -> PortResult<()> {
        let sk = format!(
            "{UNAVAILABLE_PREFIX}{}#{}#{}",
            key.instance_type,
            key.zone,
            key.capacity_type.as_str()
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&sk)))
            .update_expression("SET #until = :until, #type = :type, #zone = :zone, #ct = :ct, #ttl = :ttl")
            // A later mark wins: an earlier one never shortens it.
            .condition_expression("attribute_not_exists(#until) OR #until < :until")
            .set_expression_attribute_names(Some(names(&[
                ("#until", "until"),
                ("#type", "instance_type"),
                ("#zone", "zone"),
                ("#ct", "capacity_type"),
                ("#ttl", TTL_ATTRIBUTE),
            ])))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":type", s(&key.instance_type))
            .expression_attribute_values(":zone", s(&key.zone))
            .expression_attribute_values(":ct", s(key.capacity_type.as_str()))
            .expression_attribute_values(":ttl", n(epoch_secs(until) + 3600))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(errors::from_sdk("dynamodb UpdateItem unavailable offering", e)),
        }
    }

    async fn list_unavailable(&self, now: Millis) -> PortResult<Vec<(OfferingKey, Millis)>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#cluster = :cluster AND begins_with(#sk, :prefix)")
                .filter_expression("#until > :now")
                .set_expression_attribute_names(Some(names(&[
                    ("#cluster", PARTITION_KEY),
                    ("#sk", SORT_KEY),
                    ("#until", "until"),
                ])))
                .expression_attribute_values(":cluster", s(&self.cluster))
                .expression_attribute_values(":prefix", s(UNAVAILABLE_PREFIX))
                .expression_attribute_values(":now", n(now))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| errors::from_sdk("dynamodb Query unavailable offerings", e))?;
            for item in page.items() {
                let capacity = string(item, "capacity_type").and_then(CapacityType::parse);
                if let (Some(t), Some(z), Some(c), Some(until)) = (
                    string(item, "instance_type"),
                    string(item, "zone"),
                    capacity,
                    number(item, "until"),
                ) {
                    let key = OfferingKey {
                        instance_type: t.to_string(),
                        zone: z.to_string(),
                        capacity_type: c,
                    };
                    out.push((key, until));
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn audit(&self, record: &AuditRecord) -> PortResult<()> {
        if record.at < 0 {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!("audit record for {} has a negative time", record.claim_id),
            ));
        }
        let sk = format!(
            "{AUDIT_PREFIX}{:015}#{}#{}",
            record.at, record.claim_id, record.action
        );
        let mut item = self.key(&sk);
        item.insert("actor".into(), s(&record.actor));
        item.insert("action".into(), s(&record.action));
        item.insert("claim_id".into(), s(&record.claim_id));
        item.insert("reason".into(), s(&record.reason));
        item.insert(
            "delta_per_hour".into(),
            AttributeValue::N(record.delta_per_hour.to_string()),
        );
        item.insert("at".into(), n(record.at));
        item.insert(
            TTL_ATTRIBUTE.into(),
            n(epoch_secs(record.at) + AUDIT_RETENTION_SECS),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#sk)")
            .expression_attribute_names("#sk", SORT_KEY)
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(
                    nodeclaim = %record.claim_id,
                    actor = %record.actor,
                    action = %record.action,
                    reason = %record.reason,
                    delta_per_hour = record.delta_per_hour,
                    "audit"
                );
                Ok(())
            }
            // The same record delivered twice (at-least-once callers): it is already written.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                debug!(nodeclaim = %record.claim_id, action = %record.action, "audit record already written");
                Ok(())
            }
            Err(e) => Err(errors::from_sdk("dynamodb PutItem audit", e)),
        }
    }
}

/// Creates the claims table as the SAM template does (see the module docs), with TTL on.
pub async fn create_table(client: &Client, name: &str) -> PortResult<()> {
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(INSTANCE_INDEX)
        .key_schema(key(INSTANCE_ID, KeyType::Hash)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_error)?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PARTITION_KEY)?)
        .attribute_definitions(attribute(SORT_KEY)?)
        .attribute_definitions(attribute(INSTANCE_ID)?)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(|e| errors::from_sdk("dynamodb CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| errors::from_sdk("dynamodb UpdateTimeToLive", e))?;
    info!(table = name, "claims table created");
    Ok(())
}

fn claim_sk(id: &str) -> String {
    format!("{CLAIM_PREFIX}{id}")
}

fn decode_claim(item: &Item) -> PortResult<NodeClaim> {
    let sk = string(item, SORT_KEY).unwrap_or_default();
    let json = string(item, "claim")
        .ok_or_else(|| PortError::new(ErrorKind::Invalid, format!("row {sk} has no claim")))?;
    serde_json::from_str(json).map_err(|e| {
        PortError::new(ErrorKind::Invalid, format!("row {sk} holds a malformed claim")).with_source(e)
    })
}

fn decode_audit(item: &Item) -> PortResult<AuditRecord> {
    let sk = string(item, SORT_KEY).unwrap_or_default();
    let field = |name: &str| {
        string(item, name)
            .map(str::to_string)
            .ok_or_else(|| PortError::new(ErrorKind::Invalid, format!("audit row {sk} has no {name}")))
    };
    let delta_per_hour = item
        .get("delta_per_hour")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                format!("audit row {sk} has no delta_per_hour"),
            )
        })?;
    Ok(AuditRecord {
        at: number(item, "at")
            .ok_or_else(|| PortError::new(ErrorKind::Invalid, format!("audit row {sk} has no at")))?,
        actor: field("actor")?,
        action: field("action")?,
        claim_id: field("claim_id")?,
        reason: field("reason")?,
        delta_per_hour,
    })
}

/// Whether TTL should already have deleted the row.
fn expired(item: &Item, now: Millis) -> bool {
    number(item, TTL_ATTRIBUTE).is_some_and(|t| t <= epoch_secs(now))
}

fn fenced(id: &str) -> PortError {
    PortError::new(
        ErrorKind::Conflict,
        format!("claim {id} not written: the lease has passed to a newer holder"),
    )
}

fn build_error(e: BuildError) -> PortError {
    PortError::new(ErrorKind::Invalid, "malformed DynamoDB request").with_source(e)
}

fn epoch_secs(millis: Millis) -> i64 {
    millis.div_euclid(1000)
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
