//! Strict decoding of Kubernetes objects into k8s-openapi types.
//!
//! k8s-openapi ignores fields it does not know, where `kubectl apply` (strict field validation,
//! the default since 1.27) rejects them. Decoding here re-encodes the typed object and reports
//! the first field of the input that did not survive the round trip.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// Keys whose values are quantities (or maps of them). Kubernetes accepts bare numbers there
/// (`cpu: 1`); k8s-openapi's `Quantity` takes only strings, so numbers are turned into strings.
const QUANTITY_KEYS: &[&str] = &[
    "requests",
    "limits",
    "overhead",
    "capacity",
    "allocatable",
    "sizeLimit",
];

pub(crate) fn decode<T: DeserializeOwned + Serialize>(value: &Value, object: &str) -> Result<T> {
    let mut value = value.clone();
    stringify_quantities(&mut value);
    let schema = |source| Error::Schema {
        object: object.to_string(),
        source,
    };
    let typed: T = serde_json::from_value(value.clone()).map_err(schema)?;
    let back = serde_json::to_value(&typed).map_err(schema)?;
    if let Some(field) = first_unknown(&value, &back, "") {
        return Err(Error::UnknownField {
            object: object.to_string(),
            field,
        });
    }
    Ok(typed)
}

fn stringify_quantities(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if QUANTITY_KEYS.contains(&key.as_str()) {
                    match v {
                        Value::Number(n) => *v = Value::String(n.to_string()),
                        Value::Object(list) => {
                            for q in list.values_mut() {
                                if let Value::Number(n) = q {
                                    *q = Value::String(n.to_string());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                stringify_quantities(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(stringify_quantities),
        _ => {}
    }
}

/// The path of the first field in `input` that `typed` lacks. Explicit nulls are skipped:
/// they mean "unset" (`creationTimestamp: null` in `kubectl create --dry-run` output).
fn first_unknown(input: &Value, typed: &Value, path: &str) -> Option<String> {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(key, v)| {
            if v.is_null() {
                return None;
            }
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match b.get(key) {
                None => Some(here),
                Some(t) => first_unknown(v, t, &here),
            }
        }),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, t))| first_unknown(v, t, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;

    #[test]
    fn names_the_path_of_a_misspelt_field() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": 1}}},
                                    {"name": "b", "image": "x", "resorces": {}}]}
        });
        let err = decode::<Pod>(&pod, "Pod default/web").expect_err("unknown field");
        assert_eq!(
            err.to_string(),
            r#"Pod default/web: unknown field "spec.containers[1].resorces""#
        );
    }

    #[test]
    fn accepts_bare_numbers_as_quantities() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": 2, "memory": 1e9}}}]}
        });
        let pod: Pod = decode(&pod, "Pod default/web").expect("decodes");
        let limits = pod
            .spec
            .and_then(|s| s.containers[0].resources.clone())
            .and_then(|r| r.limits);
        let limits = limits.expect("limits");
        assert_eq!(limits["cpu"].0, "2");
        assert_eq!(limits["memory"].0, "1000000000.0");
    }
}
