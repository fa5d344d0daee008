//! The table's rows as DynamoDB items: their sort keys, encoding and decoding, and the small
//! attribute helpers every request uses. Pure; the layout is documented in [`super`].

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::{AuditRecord, ClaimState, NodeClaim};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ErrorKind, OfferingKey, PortError, PortResult, UnavailableMark};

use super::{AUDIT_RETENTION_SECS, PARTITION_KEY, SORT_KEY, TERMINATED_RETENTION_SECS, TTL_ATTRIBUTE};

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const CLAIM_PREFIX: &str = "claim#";
pub(super) const UNAVAILABLE_PREFIX: &str = "unavailable#";
pub(super) const LEASE_SK: &str = "lease";
pub(super) const AUDIT_PREFIX: &str = "audit#";
pub(super) const INSTANCE_ID: &str = "instance_id";

/// The primary key of the row `sk` of `cluster`.
pub(super) fn key(cluster: &str, sk: &str) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_string(), s(cluster)),
        (SORT_KEY.to_string(), s(sk)),
    ])
}

pub(super) fn claim_sk(id: &str) -> String {
    format!("{CLAIM_PREFIX}{id}")
}

/// The claim's row at `now`; a terminated claim's row expires [`TERMINATED_RETENTION_SECS`]
/// later.
pub(super) fn claim_item(cluster: &str, claim: &NodeClaim, now: Millis) -> PortResult<Item> {
    let json = serde_json::to_string(claim).map_err(|e| {
        PortError::new(
            ErrorKind::Invalid,
            format!("claim {} cannot be encoded", claim.id),
        )
        .with_source(e)
    })?;
    let mut item = key(cluster, &claim_sk(&claim.id));
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

pub(super) fn decode_claim(item: &Item) -> PortResult<NodeClaim> {
    let sk = string(item, SORT_KEY).unwrap_or_default();
    let json = string(item, "claim")
        .ok_or_else(|| PortError::new(ErrorKind::Invalid, format!("row {sk} has no claim")))?;
    serde_json::from_str(json).map_err(|e| {
        PortError::new(ErrorKind::Invalid, format!("row {sk} holds a malformed claim")).with_source(e)
    })
}

/// The sort key of an audit row written at `at`: the time first, zero-padded, so that key
/// order is time order.
pub(super) fn audit_sk_prefix(at: Millis) -> String {
    format!("{AUDIT_PREFIX}{at:015}")
}

/// The audit record's row, kept [`AUDIT_RETENTION_SECS`]; `Invalid` before the epoch, where
/// the key would not sort by time.
pub(super) fn audit_item(cluster: &str, record: &AuditRecord) -> PortResult<Item> {
    if record.at < 0 {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!("audit record for {} has a negative time", record.claim_id),
        ));
    }
    let sk = format!(
        "{}#{}#{}",
        audit_sk_prefix(record.at),
        record.claim_id,
        record.action
    );
    let mut item = key(cluster, &sk);
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
    Ok(item)
}

pub(super) fn decode_audit(item: &Item) -> PortResult<AuditRecord> {
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

pub(super) fn unavailable_sk(key: &OfferingKey) -> String {
    format!(
        "{UNAVAILABLE_PREFIX}{}#{}#{}",
        key.instance_type,
        key.zone,
        key.capacity_type.as_str()
    )
}

/// An unavailable offering's row: the offering and until when; `None` if incomplete.
pub(super) fn decode_unavailable(item: &Item) -> Option<UnavailableMark> {
    let key = OfferingKey {
        instance_type: string(item, "instance_type")?.to_string(),
        zone: string(item, "zone")?.to_string(),
        capacity_type: string(item, "capacity_type").and_then(CapacityType::parse)?,
    };
    Some(UnavailableMark {
        offering: key,
        until: number(item, "until")?,
    })
}

/// Whether TTL should already have deleted the row.
pub(super) fn expired(item: &Item, now: Millis) -> bool {
    number(item, TTL_ATTRIBUTE).is_some_and(|t| t <= epoch_secs(now))
}

pub(super) fn epoch_secs(millis: Millis) -> i64 {
    millis.div_euclid(1000)
}

pub(super) fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

pub(super) fn n(value: impl fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(super) fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: Millis) -> AuditRecord {
        AuditRecord {
            at,
            actor: "sweeper".into(),
            action: "consolidate".into(),
            claim_id: "default-abc12".into(),
            reason: "underutilized".into(),
            delta_per_hour: -0.25,
        }
    }

    #[test]
    fn an_audit_record_reads_back_as_written() {
        let item = audit_item("demo", &record(1_700_000_000_123)).expect("encodes");
        assert_eq!(decode_audit(&item).expect("decodes"), record(1_700_000_000_123));
        assert_eq!(string(&item, PARTITION_KEY), Some("demo"));
        assert_eq!(
            number(&item, TTL_ATTRIBUTE),
            Some(1_700_000_000 + AUDIT_RETENTION_SECS)
        );
    }

    #[test]
    fn audit_keys_sort_in_time_order_and_negative_times_are_refused() {
        let sk = |at| {
            audit_item("demo", &record(at))
                .map(|i| string(&i, SORT_KEY).unwrap_or_default().to_string())
                .expect("encodes")
        };
        assert!(sk(999) < sk(1_000));
        assert!(sk(1_000) < sk(1_700_000_000_000));
        assert_eq!(
            audit_item("demo", &record(-1)).expect_err("negative").kind,
            ErrorKind::Invalid
        );
    }

    #[test]
    fn an_audit_row_missing_a_field_is_invalid() {
        let mut item = audit_item("demo", &record(1)).expect("encodes");
        item.remove("reason");
        let err = decode_audit(&item).expect_err("no reason");
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("reason"), "{}", err.message);
    }

    #[test]
    fn a_row_without_a_claim_or_with_a_malformed_one_is_invalid() {
        let mut item = key("demo", &claim_sk("c1"));
        assert_eq!(decode_claim(&item).expect_err("none").kind, ErrorKind::Invalid);
        item.insert("claim".into(), s("{not json"));
        assert_eq!(
            decode_claim(&item).expect_err("malformed").kind,
            ErrorKind::Invalid
        );
    }

    #[test]
    fn an_unavailable_offering_reads_back_from_its_row() {
        let offering = OfferingKey {
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::Spot,
        };
        let mut item = key("demo", &unavailable_sk(&offering));
        item.insert("instance_type".into(), s("m5.large"));
        item.insert("zone".into(), s("us-east-1a"));
        item.insert("capacity_type".into(), s(CapacityType::Spot.as_str()));
        item.insert("until".into(), n(42));
        assert_eq!(
            decode_unavailable(&item),
            Some(UnavailableMark { offering, until: 42 })
        );
        item.remove("zone");
        assert_eq!(decode_unavailable(&item), None);
    }

    #[test]
    fn a_row_is_expired_from_its_ttl_second_on() {
        let mut item = key("demo", "lease");
        assert!(!expired(&item, i64::MAX), "no TTL, never expired");
        item.insert(TTL_ATTRIBUTE.into(), n(100));
        assert!(!expired(&item, 99_999));
        assert!(expired(&item, 100_000));
    }
}
