//! The claim rows behind the [`ClaimStore`] port: conditional, optionally fenced writes along
//! the claim state machine, strongly consistent reads, and the port's other parts delegated to
//! [`super::lease`], [`super::unavailable`] and [`super::audit`].

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};
use nodewright_core::nodeclaim::{AuditRecord, ClaimState, NodeClaim};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    ClaimStore, ErrorKind, Lease, OfferingKey, PortError, PortResult, UnavailableMark,
};
use tracing::{debug, info};

use super::item::{
    CLAIM_PREFIX, INSTANCE_ID, Item, LEASE_SK, claim_item, claim_sk, decode_claim, epoch_secs, expired, n,
    names, s,
};
use super::query::Query;
use super::{DynamoClaimStore, INSTANCE_INDEX, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, build_error};
use crate::errors;

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
    /// Every claim row not yet expired, terminated ones included (kept
    /// [`TERMINATED_RETENTION_SECS`](super::TERMINATED_RETENTION_SECS)): which node a claim
    /// became, after it is gone.
    pub async fn all_claims(&self) -> PortResult<Vec<NodeClaim>> {
        let now = self.clock.now();
        let items = self
            .query_all(Query {
                what: "claims",
                key_condition: "#cluster = :cluster AND begins_with(#sk, :prefix)",
                filter: None,
                names: &[("#cluster", PARTITION_KEY), ("#sk", SORT_KEY)],
                values: vec![(":cluster", s(&self.cluster)), (":prefix", s(CLAIM_PREFIX))],
                consistent: true,
            })
            .await?;
        items
            .iter()
            .filter(|i| !expired(i, now))
            .map(decode_claim)
            .collect()
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
        let item = claim_item(&self.cluster, &stored, now)?;
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
        let item = claim_item(&self.cluster, &stored, now)?;
        // The legal predecessors go into the condition, so that an illegal move is refused by
        // the same write that checks the version, without a read first.
        let mut values = HashMap::from([
            (":expected".to_string(), n(claim.version)),
            (":now".to_string(), n(epoch_secs(now))),
        ]);
        let mut from = Vec::new();
        for (i, state) in ClaimState::ALL
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
        let items = self
            .query_all(Query {
                what: "live claims",
                key_condition: "#cluster = :cluster AND begins_with(#sk, :prefix)",
                filter: Some("#state <> :terminated"),
                names: &[
                    ("#cluster", PARTITION_KEY),
                    ("#sk", SORT_KEY),
                    ("#state", "state"),
                ],
                values: vec![
                    (":cluster", s(&self.cluster)),
                    (":prefix", s(CLAIM_PREFIX)),
                    (":terminated", s(ClaimState::Terminated.as_str())),
                ],
                consistent: true,
            })
            .await?;
        // A row that does not decode stops the listing rather than being skipped: a claim
        // missing from this list would make its instance look orphaned.
        let claims = items
            .iter()
            .filter(|i| !expired(i, now))
            .map(decode_claim)
            .collect::<PortResult<Vec<_>>>()?;
        debug!(claims = claims.len(), "listed live claims");
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
        self.acquire_lease_row(holder, now, ttl_ms).await
    }

    async fn release_lease(&self, lease: &Lease) -> PortResult<()> {
        self.release_lease_row(lease).await
    }

    async fn mark_unavailable(&self, key: &OfferingKey, until: Millis) -> PortResult<()> {
        self.mark_offering_unavailable(key, until).await
    }

    async fn list_unavailable(&self, now: Millis) -> PortResult<Vec<UnavailableMark>> {
        self.unavailable_offerings(now).await
    }

    async fn audit(&self, record: &AuditRecord) -> PortResult<()> {
        self.write_audit(record).await
    }
}

fn fenced(id: &str) -> PortError {
    PortError::new(
        ErrorKind::Conflict,
        format!("claim {id} not written: the lease has passed to a newer holder"),
    )
}
