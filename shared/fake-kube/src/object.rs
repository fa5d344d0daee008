//! Small accessors over objects kept as JSON, so the rest of the crate reads as Kubernetes.

use std::sync::LazyLock;
use std::time::SystemTime;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

pub(crate) fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub(crate) fn resource_version_of(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap_or_default()
}

pub(crate) fn labels_of(object: &Value) -> &Map<String, Value> {
    object["metadata"]["labels"].as_object().unwrap_or(&EMPTY)
}

pub(crate) fn is_deleting(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

pub(crate) fn finalizers_of(object: &Value) -> Vec<Value> {
    object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The map at `key` inside `value`, created when absent or null; `None` when something else is
/// there (the caller then leaves the malformed object to validation).
pub(crate) fn child<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let map = value.as_object_mut()?;
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

pub(crate) fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    let slot = map.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = value;
    }
}

/// A condition of `status.conditions` by type.
pub(crate) fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

pub(crate) fn condition_is_true(object: &Value, kind: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"] == "True")
}

/// A `metav1.Time` as the API server writes it: RFC 3339 in UTC, whole seconds.
pub(crate) fn format_time(time: SystemTime) -> String {
    Timestamp::try_from(time)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Sets a condition by type, keeping its `lastTransitionTime` when the status did not change.
pub(crate) fn set_condition(object: &mut Value, condition: Value, now: &str) {
    let Value::Object(mut condition) = condition else {
        return;
    };
    let Some(status) = child(object, "status") else {
        return;
    };
    let list = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    let kind = condition.get("type").cloned().unwrap_or_default();
    let existing = list.iter_mut().find(|c| c["type"] == kind);
    let transition = match &existing {
        Some(old) if old.get("status") == condition.get("status") => old["lastTransitionTime"].clone(),
        _ => Value::String(now.to_string()),
    };
    condition.insert("lastTransitionTime".into(), transition);
    match existing {
        Some(old) => *old = Value::Object(condition),
        None => list.push(Value::Object(condition)),
    }
}
