//! The cluster's lease: one row with a holder, an expiry and a fencing token that only grows
//! (see [`super`] for why the row never expires).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ErrorKind, Lease, PortError, PortResult};
use tracing::{debug, info, warn};

use super::item::{LEASE_SK, n, names, number, s, string};
use super::{DynamoClaimStore, SORT_KEY};
use crate::errors;

impl DynamoClaimStore {
    /// Takes the lease for `holder` until `now + ttl_ms` if it is free, expired or already
    /// `holder`'s; every success hands out a new token.
    pub(super) async fn acquire_lease_row(
        &self,
        holder: &str,
        now: Millis,
        ttl_ms: Millis,
    ) -> PortResult<Lease> {
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

    /// Frees the lease if `lease` still holds it; one taken over meanwhile is left alone.
    pub(super) async fn release_lease_row(&self, lease: &Lease) -> PortResult<()> {
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
}
