//! Offerings recently out of capacity, shared by every function of the cluster: one row per
//! offering, marked until a time that only moves later.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{OfferingKey, PortResult, UnavailableMark};

use super::item::{UNAVAILABLE_PREFIX, decode_unavailable, epoch_secs, n, names, s, unavailable_sk};
use super::query::Query;
use super::{DynamoClaimStore, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use crate::errors;

impl DynamoClaimStore {
    /// Marks `key` out of capacity until `until`, unless it already is until later.
    pub(super) async fn mark_offering_unavailable(&self, key: &OfferingKey, until: Millis) -> PortResult<()> {
        let sk = unavailable_sk(key);
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

    /// The offerings marked out of capacity beyond `now`, with until when.
    pub(super) async fn unavailable_offerings(&self, now: Millis) -> PortResult<Vec<UnavailableMark>> {
        let items = self
            .query_all(Query {
                what: "unavailable offerings",
                key_condition: "#cluster = :cluster AND begins_with(#sk, :prefix)",
                filter: Some("#until > :now"),
                names: &[
                    ("#cluster", PARTITION_KEY),
                    ("#sk", SORT_KEY),
                    ("#until", "until"),
                ],
                values: vec![
                    (":cluster", s(&self.cluster)),
                    (":prefix", s(UNAVAILABLE_PREFIX)),
                    (":now", n(now)),
                ],
                consistent: false,
            })
            .await?;
        Ok(items.iter().filter_map(decode_unavailable).collect())
    }
}
