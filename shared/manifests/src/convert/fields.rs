//! Reading loosely typed input fields, each misfit reported as a warning on its object.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ConvertWarning;

/// The object being converted and where its warnings go.
pub(super) struct Ctx<'w> {
    pub(super) object: String,
    pub(super) warnings: &'w mut Vec<ConvertWarning>,
}

impl Ctx<'_> {
    pub(super) fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.warnings.push(ConvertWarning {
            object: self.object.clone(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Fields left in `map` after conversion took what it knows: none has a place in v1.
    pub(super) fn leftovers(&mut self, prefix: &str, map: Map<String, Value>) {
        for key in map.keys() {
            self.warn(&join(prefix, key), "has no equivalent in v1; dropped");
        }
    }
}

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(super) fn flatten<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    match (kind.ends_with("List"), doc.get("items").and_then(Value::as_array)) {
        (true, Some(items)) => items.iter().for_each(|item| flatten(item, out)),
        _ => out.push(doc),
    }
}

pub(super) fn name_of(doc: &Value) -> String {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub(super) fn describe(kind: &str, doc: &Value) -> String {
    let kind = if kind.is_empty() { "document" } else { kind };
    match name_of(doc).as_str() {
        "" => format!("{kind} (unnamed)"),
        name => format!("{kind} {name}"),
    }
}

pub(super) fn object(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<Map<String, Value>> {
    match v? {
        Value::Object(map) => Some(map),
        Value::Null => None,
        _ => {
            ctx.warn(field, "is not an object; dropped");
            None
        }
    }
}

pub(super) fn array(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            ctx.warn(field, "is not a list; dropped");
            Vec::new()
        }
    }
}

pub(super) fn string(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            ctx.warn(field, "is not a string; dropped");
            None
        }
    }
}

/// A map of strings (labels, annotations, tags, selectors); scalar values are written as
/// strings, as Kubernetes would have needed them quoted.
pub(super) fn string_map(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in object(ctx, field, v).unwrap_or_default() {
        if let Some(s) = string(ctx, &join(field, &k), Some(v)) {
            out.insert(k, s);
        }
    }
    out
}

pub(super) fn seconds(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<String> {
    let v = v?;
    match v.as_i64() {
        Some(s) if s >= 0 => Some(go_duration(s)),
        _ => {
            ctx.warn(field, format!("{v} is not a number of seconds; dropped"));
            None
        }
    }
}

/// Whole seconds as the shortest Go duration: `720h`, `90s`, `2m`.
pub(super) fn go_duration(s: i64) -> String {
    match s {
        0 => "0s".to_string(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Name, labels and annotations; the rest of an object's metadata is the server's.
pub(super) fn metadata(ctx: &mut Ctx<'_>, meta: Option<&Value>) -> (Map<String, Value>, String) {
    let mut meta = object(ctx, "metadata", meta.cloned()).unwrap_or_default();
    let name = string(ctx, "metadata.name", meta.remove("name")).unwrap_or_default();
    if name.is_empty() {
        ctx.warn("metadata.name", "is missing; the converted object has no name");
    }
    let labels = string_map(ctx, "metadata.labels", meta.remove("labels"));
    let mut annotations = string_map(ctx, "metadata.annotations", meta.remove("annotations"));
    // The previous version's whole text; it would only mislead `kubectl apply` later.
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if !labels.is_empty() {
        out.insert("labels".into(), json!(labels));
    }
    if !annotations.is_empty() {
        out.insert("annotations".into(), json!(annotations));
    }
    (out, name)
}

pub(super) fn insert_nonempty_map(map: &mut Map<String, Value>, key: &str, value: BTreeMap<String, String>) {
    if !value.is_empty() {
        map.insert(key.into(), json!(value));
    }
}

pub(super) fn insert_nonempty_list(map: &mut Map<String, Value>, key: &str, value: Vec<Value>) {
    if !value.is_empty() {
        map.insert(key.into(), Value::Array(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_become_the_shortest_go_duration() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(30), "30s");
        assert_eq!(go_duration(120), "2m");
        assert_eq!(go_duration(2_592_000), "720h");
        assert_eq!(go_duration(3_690), "3690s");
    }
}
