//! Reading one interruption message: the EventBridge envelope, then the detail of its kind.
//! Every field the decision needs must be there with its type; fields EventBridge or EC2 may
//! add later are ignored.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::{Kind, Notice};

/// Why a message cannot be used. Such a message is logged and acknowledged, never retried.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not an EventBridge event: {0}")]
    Envelope(String),
    #[error("{detail_type} from {origin}: {reason}")]
    Detail {
        detail_type: String,
        origin: String,
        reason: String,
    },
    #[error("unknown event {detail_type:?} from {origin:?}")]
    Unknown { detail_type: String, origin: String },
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[allow(dead_code)]
    version: String,
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    #[allow(dead_code)]
    account: String,
    #[allow(dead_code)]
    time: String,
    #[allow(dead_code)]
    region: String,
    #[serde(default)]
    #[allow(dead_code)]
    resources: Vec<String>,
    detail: Value,
}

#[derive(Debug, Deserialize)]
struct InstanceDetail {
    #[serde(rename = "instance-id")]
    instance_id: String,
}

#[derive(Debug, Deserialize)]
struct StateDetail {
    #[serde(rename = "instance-id")]
    instance_id: String,
    state: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthDetail {
    service: String,
    event_type_category: String,
    #[serde(default)]
    affected_entities: Vec<AffectedEntity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AffectedEntity {
    entity_value: String,
}

/// Reads a message body. `Ok(None)`: a known event that asks for nothing (an instance
/// starting, a health event of another service or category).
pub fn parse(body: &str) -> Result<Option<Notice>, ParseError> {
    let mut envelope: Envelope =
        serde_json::from_str(body).map_err(|e| ParseError::Envelope(e.to_string()))?;
    let detail_type = std::mem::take(&mut envelope.detail_type);
    let source = std::mem::take(&mut envelope.source);
    let id = std::mem::take(&mut envelope.id);
    let bad = |reason: String| ParseError::Detail {
        detail_type: detail_type.clone(),
        origin: source.clone(),
        reason,
    };
    // Moved out once, in whichever arm reads it.
    let detail = envelope.detail;
    let notice = |kind: Kind, instance_ids: Vec<String>| {
        Some(Notice {
            id: id.clone(),
            kind,
            instance_ids,
        })
    };
    match (source.as_str(), detail_type.as_str()) {
        ("aws.ec2", "EC2 Spot Instance Interruption Warning") => {
            let d: InstanceDetail = serde_json::from_value(detail).map_err(|e| bad(e.to_string()))?;
            checked_id(&d.instance_id).map_err(bad)?;
            Ok(notice(Kind::SpotInterruption, vec![d.instance_id]))
        }
        ("aws.ec2", "EC2 Instance Rebalance Recommendation") => {
            let d: InstanceDetail = serde_json::from_value(detail).map_err(|e| bad(e.to_string()))?;
            checked_id(&d.instance_id).map_err(bad)?;
            Ok(notice(Kind::Rebalance, vec![d.instance_id]))
        }
        ("aws.ec2", "EC2 Instance State-change Notification") => {
            let d: StateDetail = serde_json::from_value(detail).map_err(|e| bad(e.to_string()))?;
            checked_id(&d.instance_id).map_err(bad)?;
            let kind = match d.state.as_str() {
                "stopping" => Kind::Stopping,
                "stopped" => Kind::Stopped,
                "shutting-down" => Kind::ShuttingDown,
                "terminated" => Kind::Terminated,
                "pending" | "running" => return Ok(None),
                other => return Err(bad(format!("unknown instance state {other:?}"))),
            };
            Ok(notice(kind, vec![d.instance_id]))
        }
        ("aws.health", "AWS Health Event") => {
            let d: HealthDetail = serde_json::from_value(detail).map_err(|e| bad(e.to_string()))?;
            if d.service != "EC2" || d.event_type_category != "scheduledChange" {
                return Ok(None);
            }
            let ids: Vec<String> = d
                .affected_entities
                .into_iter()
                .map(|e| e.entity_value)
                .filter(|v| v.starts_with("i-"))
                .collect();
            if ids.is_empty() {
                return Err(bad("a scheduled change that names no instance".into()));
            }
            Ok(notice(Kind::ScheduledChange, ids))
        }
        _ => Err(ParseError::Unknown {
            detail_type: detail_type.clone(),
            origin: source.clone(),
        }),
    }
}

fn checked_id(id: &str) -> Result<(), String> {
    if id.starts_with("i-") && id.len() > 2 && id[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!("{id:?} is not an instance id"))
    }
}
