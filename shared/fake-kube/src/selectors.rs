//! Selectors on list, watch and deletecollection, and `metav1.LabelSelector` objects.
//!
//! Label selectors are the core's: the query syntax through
//! [`nodewright_core::selector::parse_label_selector`] (the grammar of Kubernetes'
//! `labels.Parse`), selector objects through the manifests crate's conversion, and matching by
//! [`Requirements::matches_labels`]. Field selectors are the API server's own and live here.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use nodewright_core::pod::LabelSelector;
use nodewright_core::requirements::Requirements;
use nodewright_core::selector::parse_label_selector;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::registry::ResourceType;

/// `?labelSelector=`: a malformed selector is a 400, as `labels.Parse` failing is.
pub(crate) fn parse_label_query(text: &str) -> Result<Requirements, Error> {
    parse_label_selector(text).map_err(|e| Error::BadRequest(format!("unable to parse requirement: {e}")))
}

/// A `metav1.LabelSelector` object of `object` at `field`, as the API server validates it.
pub(crate) fn label_selector_object(
    object: &str,
    field: &str,
    selector: &Value,
) -> Result<LabelSelector, String> {
    let typed: meta::LabelSelector = serde_json::from_value(selector.clone())
        .map_err(|e| format!("{object}: {field}: not a label selector: {e}"))?;
    nodewright_manifests::label_selector_from_k8s(object, field, &typed)
        .map_err(|e| nodewright_core::error::chain(&e))
}

/// An object's labels as the core matches them; values that are not strings (which
/// validation rejects) read as empty.
pub(crate) fn label_map(labels: &Map<String, Value>) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// A conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Boolean fields that the API server formats as `"false"` when unset.
const BOOLEAN_FIELDS: &[&str] = &["spec.unschedulable", "spec.hostNetwork"];

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut terms = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.is_empty() {
                continue;
            }
            let parsed = ["!=", "==", "="].iter().find_map(|op| {
                find_unescaped(&term, op).map(|at| {
                    (
                        unescape(&term[..at]),
                        *op == "!=",
                        unescape(&term[at + op.len()..]),
                    )
                })
            });
            match parsed {
                Some((field, negated, value)) => terms.push((field.trim().to_string(), negated, value)),
                None => {
                    return Err(Error::BadRequest(format!(
                        "invalid selector: '{text}'; can't understand '{term}'"
                    )));
                }
            }
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Rejects fields the resource does not index, as the real server does.
    pub fn check_supported(&self, resource: &ResourceType) -> Result<(), Error> {
        for (field, _, _) in &self.terms {
            let supported = field == "metadata.name"
                || (resource.namespaced && field == "metadata.namespace")
                || resource.field_labels.iter().any(|f| f == field);
            if !supported {
                return Err(Error::BadRequest(format!("field label not supported: {field}")));
            }
        }
        Ok(())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, negated, want)| {
            let have = field_value(object, field);
            (have == *want) != *negated
        })
    }
}

fn field_value(object: &Value, field: &str) -> String {
    let mut cursor = object;
    for part in field.split('.') {
        cursor = &cursor[part];
    }
    match cursor {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null if BOOLEAN_FIELDS.contains(&field) => "false".to_string(),
        _ => String::new(),
    }
}

fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn find_unescaped(term: &str, op: &str) -> Option<usize> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if term[i..].starts_with(op) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(value: Value) -> BTreeMap<String, String> {
        label_map(value.as_object().unwrap_or(&Map::new()))
    }

    #[test]
    fn label_queries_select_with_every_operator() {
        let selector = parse_label_query(
            "app=web, tier==front,env!=prod,zone in (a, b),arch notin (arm64),team,!legacy,cores>2",
        )
        .expect("valid selector");
        let pod = labels(json!({"app": "web", "tier": "front", "zone": "b", "team": "x", "cores": "4"}));
        assert!(selector.matches_labels(&pod));
        let legacy = labels(
            json!({"app": "web", "tier": "front", "zone": "b", "team": "x", "cores": "4", "legacy": "1"}),
        );
        assert!(!selector.matches_labels(&legacy));
    }

    #[test]
    fn malformed_label_queries_are_bad_requests() {
        for text in ["a in b", "=b", "a b", "bad key=x", "a=b,", "a=-b", "!a=b"] {
            let err = parse_label_query(text).expect_err(text);
            assert_eq!(err.code(), 400, "{text}");
        }
        // `labels.Parse` reads `()` as the empty value, so the API server accepts it.
        assert!(parse_label_query("a in ()").is_ok());
    }

    #[test]
    fn label_selector_objects_use_match_labels_and_expressions() {
        let selector = label_selector_object(
            "PodDisruptionBudget default/web",
            "spec.selector",
            &json!({
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]
            }),
        )
        .expect("valid");
        assert!(selector.matches(&labels(json!({"app": "web", "zone": "a"}))));
        assert!(!selector.matches(&labels(json!({"app": "web", "zone": "b"}))));
        let everything = label_selector_object("x", "spec.selector", &json!({})).expect("valid");
        assert!(everything.requirements.is_empty());
    }

    #[test]
    fn invalid_label_selector_objects_name_the_field() {
        for (selector, field) in [
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]}),
                "operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "matchExpressions[0]",
            ),
            (json!({"matchLabels": {"bad key": "x"}}), "matchLabels"),
        ] {
            let err = label_selector_object("Deployment default/web", "spec.selector", &selector)
                .expect_err("invalid");
            assert!(err.contains("spec.selector.") && err.contains(field), "{err}");
        }
    }

    #[test]
    fn field_selector_on_empty_node_name_selects_unbound_pods() {
        let selector = FieldSelector::parse("spec.nodeName=,status.phase!=Failed").expect("valid");
        assert!(selector.matches(&json!({"spec": {}, "status": {"phase": "Pending"}})));
        assert!(!selector.matches(&json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}})));
    }

    #[test]
    fn field_selector_without_an_operator_is_a_bad_request() {
        assert_eq!(
            FieldSelector::parse("spec.nodeName").expect_err("no op").code(),
            400
        );
    }

    #[test]
    fn unset_boolean_fields_compare_as_false() {
        let selector = FieldSelector::parse("spec.unschedulable=false").expect("valid");
        assert!(selector.matches(&json!({"spec": {}})));
        assert!(!selector.matches(&json!({"spec": {"unschedulable": true}})));
    }
}
