//! The one paginated Query loop: a key condition over the cluster's partition, every page.

use aws_sdk_dynamodb::types::AttributeValue;
use nodewright_core::ports::PortResult;
use tracing::debug;

use super::DynamoClaimStore;
use super::item::{Item, names};
use crate::errors;

/// A Query of the table: its key condition, an optional filter, and the placeholders of both.
pub(super) struct Query<'a> {
    /// What the query lists, for errors and logs.
    pub what: &'static str,
    pub key_condition: &'a str,
    pub filter: Option<&'a str>,
    pub names: &'a [(&'a str, &'a str)],
    pub values: Vec<(&'a str, AttributeValue)>,
    /// Strongly consistent, for reads a decision depends on.
    pub consistent: bool,
}

impl DynamoClaimStore {
    /// Every item `query` matches, in key order, over all its pages: a page ends at 1 MB, so
    /// one page would silently drop rows.
    pub(super) async fn query_all(&self, query: Query<'_>) -> PortResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        let mut pages = 0u32;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(query.consistent)
                .key_condition_expression(query.key_condition)
                .set_filter_expression(query.filter.map(str::to_string))
                .set_expression_attribute_names(Some(names(query.names)))
                .set_exclusive_start_key(start.take());
            for (placeholder, value) in &query.values {
                request = request.expression_attribute_values(*placeholder, value.clone());
            }
            let page = request
                .send()
                .await
                .map_err(|e| errors::from_sdk(&format!("dynamodb Query {}", query.what), e))?;
            pages += 1;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        debug!(what = query.what, items = items.len(), pages, "queried");
        Ok(items)
    }
}
