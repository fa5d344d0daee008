//! The audit log: one row per decision that costs or saves money, written once however often
//! it is delivered, and read back by time range for operators.

use nodewright_core::nodeclaim::AuditRecord;
use nodewright_core::pod::Millis;
use nodewright_core::ports::PortResult;
use tracing::{debug, info};

use super::item::{audit_item, audit_sk_prefix, decode_audit, expired, s};
use super::query::Query;
use super::{DynamoClaimStore, PARTITION_KEY, SORT_KEY};
use crate::errors;

impl DynamoClaimStore {
    /// Writes `record` unless its row exists.
    pub(super) async fn write_audit(&self, record: &AuditRecord) -> PortResult<()> {
        let item = audit_item(&self.cluster, record)?;
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

    /// The audit records written from `since` to `until` (epoch millis, both included), oldest
    /// first: one Query on the key range `audit#<since>` … `audit#<until + 1>` (the time leads
    /// the sort key, zero-padded, so key order is time order), every page of it.
    pub async fn audit_records(&self, since: Millis, until: Millis) -> PortResult<Vec<AuditRecord>> {
        if until < since {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let from = audit_sk_prefix(since.max(0));
        // No key is exactly `audit#<until + 1>` (every key goes on with `#`), and it sorts
        // before every row written at `until + 1`.
        let to = audit_sk_prefix(until.saturating_add(1).max(0));
        let items = self
            .query_all(Query {
                what: "audit",
                key_condition: "#cluster = :cluster AND #sk BETWEEN :from AND :to",
                filter: None,
                names: &[("#cluster", PARTITION_KEY), ("#sk", SORT_KEY)],
                values: vec![
                    (":cluster", s(&self.cluster)),
                    (":from", s(&from)),
                    (":to", s(&to)),
                ],
                consistent: false,
            })
            .await?;
        let records = items
            .iter()
            .filter(|i| !expired(i, now))
            .map(decode_audit)
            .collect::<PortResult<Vec<_>>>()?;
        debug!(records = records.len(), since, until, "listed audit records");
        Ok(records)
    }
}
