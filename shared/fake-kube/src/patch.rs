//! The three patch formats the fake applies: JSON merge patch (RFC 7386), JSON patch (RFC 6902)
//! and strategic merge patch (with the merge keys of the fields our types carry).
//! Server-side apply is not implemented; it is answered with 415 by the router.

use serde_json::{Map, Value};

use crate::registry::ResourceType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902, applied atomically: on any failed operation the target is left untouched.
pub(crate) fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    let operations = operations
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut working = target.clone();
    for operation in operations {
        let op = operation["op"].as_str().ok_or("operation has no \"op\"")?;
        let path = pointer(operation, "path")?;
        match op {
            "add" => add(&mut working, &path, value_of(operation)?)?,
            "remove" => {
                remove(&mut working, &path)?;
            }
            "replace" => {
                let slot = get_mut(&mut working, &path)?;
                *slot = value_of(operation)?;
            }
            "move" => {
                let from = pointer(operation, "from")?;
                let value = remove(&mut working, &from)?;
                add(&mut working, &path, value)?;
            }
            "copy" => {
                let from = pointer(operation, "from")?;
                let value = get_mut(&mut working, &from)?.clone();
                add(&mut working, &path, value)?;
            }
            "test" => {
                if *get_mut(&mut working, &path)? != value_of(operation)? {
                    return Err(format!("testing value /{} failed", path.join("/")));
                }
            }
            other => return Err(format!("unexpected kind of operation {other:?}")),
        }
    }
    *target = working;
    Ok(())
}

fn value_of(operation: &Value) -> Result<Value, String> {
    operation
        .get("value")
        .cloned()
        .ok_or_else(|| "operation has no \"value\"".to_string())
}

fn pointer(operation: &Value, field: &str) -> Result<Vec<String>, String> {
    let text = operation[field]
        .as_str()
        .ok_or_else(|| format!("operation has no \"{field}\""))?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {text:?} does not start with '/'"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get_mut<'a>(root: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    let mut cursor = root;
    for token in path {
        cursor = match cursor {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: /{}", path.join("/")))?;
    }
    Ok(cursor)
}

fn add(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *root = value;
        return Ok(());
    };
    match get_mut(root, parent)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| format!("add operation index out of bounds: {last}"))?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("doc is missing path: /{}", path.join("/"))),
    }
}

fn remove(root: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path.split_last().ok_or("cannot remove the whole document")?;
    let missing = || format!("doc is missing path: /{}", path.join("/"));
    match get_mut(root, parent)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => Ok(items.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

/// How a strategic merge patch treats a list, from the Go type's `patchStrategy` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the stored one (node `spec.taints` is so).
    Replace,
    /// `patchStrategy:"merge"` with a `patchMergeKey`.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars (`metadata.finalizers`): a set union.
    MergePrimitive,
}

/// The list strategies of the fields of the built-in types this fake serves. Paths are field
/// names from the object root, list indexes left out.
pub(crate) fn list_strategy(resource: &ResourceType, path: &[String]) -> ListStrategy {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        [.., "metadata", "finalizers"] => return ListStrategy::MergePrimitive,
        [.., "metadata", "ownerReferences"] => return ListStrategy::MergeByKey("uid"),
        _ => {}
    }
    let pod_spec: &[&str] = if resource.is_pods() {
        &["spec"]
    } else if resource.is("apps", "daemonsets") || resource.is("apps", "deployments") {
        &["spec", "template", "spec"]
    } else {
        &[]
    };
    if !pod_spec.is_empty()
        && let Some(rest) = path.strip_prefix(pod_spec)
    {
        return pod_spec_strategy(rest);
    }
    match path.as_slice() {
        ["status", "conditions"] => ListStrategy::MergeByKey("type"),
        ["status", "addresses"] if resource.is_nodes() => ListStrategy::MergeByKey("type"),
        ["spec", "podCIDRs"] if resource.is_nodes() => ListStrategy::MergePrimitive,
        ["status", "podIPs" | "hostIPs"] if resource.is_pods() => ListStrategy::MergeByKey("ip"),
        _ => ListStrategy::Replace,
    }
}

fn pod_spec_strategy(rest: &[&str]) -> ListStrategy {
    match rest {
        ["containers" | "initContainers" | "ephemeralContainers"] => ListStrategy::MergeByKey("name"),
        [_, "ports"] => ListStrategy::MergeByKey("containerPort"),
        [_, "env"] => ListStrategy::MergeByKey("name"),
        [_, "volumeMounts"] => ListStrategy::MergeByKey("mountPath"),
        [_, "volumeDevices"] => ListStrategy::MergeByKey("devicePath"),
        ["volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"] => {
            ListStrategy::MergeByKey("name")
        }
        ["hostAliases"] => ListStrategy::MergeByKey("ip"),
        ["topologySpreadConstraints"] => ListStrategy::MergeByKey("topologyKey"),
        _ => ListStrategy::Replace,
    }
}

/// Applies a strategic merge patch. Supports the `$patch` (merge, replace, delete),
/// `$retainKeys` and `$deleteFromPrimitiveList/` directives; `$setElementOrder/` is ignored.
pub(crate) fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
) -> Result<(), String> {
    let patch = patch
        .as_object()
        .ok_or("a strategic merge patch must be a JSON object")?;
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target
        && !merge_map(map, patch, &mut Vec::new(), strategy)?
    {
        map.clear();
    }
    Ok(())
}

/// Merges `patch` into `original`; returns false when the patch says to delete the map.
fn merge_map(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
) -> Result<bool, String> {
    match patch.get("$patch").map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("delete")) => return Ok(false),
        Some(Some("replace")) => {
            let mut fresh = Map::new();
            let rest: Map<String, Value> = patch
                .iter()
                .filter(|(k, _)| *k != "$patch")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            merge_map(&mut fresh, &rest, path, strategy)?;
            *original = fresh;
            return Ok(true);
        }
        Some(other) => return Err(format!("unknown patch type: {other:?}")),
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Null => {
                original.remove(key);
            }
            Value::Object(child_patch) => {
                let mut child = match original.remove(key) {
                    Some(Value::Object(existing)) => existing,
                    _ => Map::new(),
                };
                if merge_map(&mut child, child_patch, path, strategy)? {
                    original.insert(key.clone(), Value::Object(child));
                }
            }
            Value::Array(items) => {
                let existing = match original.remove(key) {
                    Some(Value::Array(existing)) => existing,
                    _ => Vec::new(),
                };
                let merged = match strategy(path) {
                    ListStrategy::Replace => clean_items(items, path, strategy)?,
                    ListStrategy::MergePrimitive => {
                        let mut merged = existing;
                        for item in items {
                            if !merged.contains(item) {
                                merged.push(item.clone());
                            }
                        }
                        merged
                    }
                    ListStrategy::MergeByKey(merge_key) => {
                        merge_keyed(existing, items, merge_key, path, strategy)?
                    }
                };
                original.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                original.insert(key.clone(), scalar.clone());
            }
        }
        path.pop();
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/")
            && let Some(Value::Array(items)) = original.get_mut(field)
        {
            let doomed = value.as_array().cloned().unwrap_or_default();
            items.retain(|item| !doomed.contains(item));
        }
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        original.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Ok(true)
}

/// Items of a replaced list, with directives and `null`s inside them processed away.
fn clean_items(
    items: &[Value],
    path: &mut Vec<String>,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
) -> Result<Vec<Value>, String> {
    let mut cleaned = Vec::new();
    for item in items {
        match item {
            Value::Object(patch) => {
                let mut fresh = Map::new();
                if merge_map(&mut fresh, patch, path, strategy)? {
                    cleaned.push(Value::Object(fresh));
                }
            }
            other => cleaned.push(other.clone()),
        }
    }
    Ok(cleaned)
}

fn merge_keyed(
    mut existing: Vec<Value>,
    items: &[Value],
    merge_key: &str,
    path: &mut Vec<String>,
    strategy: &dyn Fn(&[String]) -> ListStrategy,
) -> Result<Vec<Value>, String> {
    let directive = |item: &Value| item.get("$patch").and_then(Value::as_str).map(str::to_string);
    if items
        .iter()
        .any(|item| directive(item).as_deref() == Some("replace"))
    {
        let rest: Vec<Value> = items
            .iter()
            .filter(|item| directive(item).as_deref() != Some("replace"))
            .cloned()
            .collect();
        return clean_items(&rest, path, strategy);
    }
    for item in items {
        let Some(key_value) = item.get(merge_key).filter(|_| item.is_object()) else {
            existing.push(item.clone());
            continue;
        };
        let position = existing.iter().position(|e| e.get(merge_key) == Some(key_value));
        if directive(item).as_deref() == Some("delete") {
            existing.retain(|e| e.get(merge_key) != Some(key_value));
            continue;
        }
        let Value::Object(item_patch) = item else {
            continue;
        };
        match position {
            Some(i) => {
                if let Value::Object(target) = &mut existing[i]
                    && !merge_map(target, item_patch, path, strategy)?
                {
                    existing.remove(i);
                }
            }
            None => {
                let mut fresh = Map::new();
                if merge_map(&mut fresh, item_patch, path, strategy)? {
                    existing.push(Value::Object(fresh));
                }
            }
        }
    }
    Ok(existing)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    fn smp(resource: &str, target: Value, patch: Value) -> Value {
        let registry = Registry::with_defaults();
        let rt = registry.find_key(resource).expect("known resource").clone();
        let mut target = target;
        strategic_merge(&mut target, &patch, &|path| list_strategy(&rt, path)).expect("patch applies");
        target
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut target = json!({"list": [1, 2]});
        merge_patch(&mut target, &json!({"list": [3]}));
        assert_eq!(target, json!({"list": [3]}));
    }

    #[test]
    fn json_patch_applies_all_operations_or_none() {
        let mut target = json!({"metadata": {"finalizers": ["a", "b"]}});
        json_patch(
            &mut target,
            &json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
                {"op": "add", "path": "/metadata/labels", "value": {}},
                {"op": "add", "path": "/metadata/labels/x~1y", "value": "1"},
            ]),
        )
        .expect("applies");
        assert_eq!(
            target,
            json!({"metadata": {"finalizers": ["b"], "labels": {"x/y": "1"}}})
        );
        let before = target.clone();
        let failed = json_patch(
            &mut target,
            &json!([
                {"op": "remove", "path": "/metadata/finalizers/0"},
                {"op": "test", "path": "/metadata/finalizers/0", "value": "b"},
            ]),
        );
        assert!(failed.is_err());
        assert_eq!(target, before);
    }

    #[test]
    fn strategic_merge_merges_labels_and_replaces_node_taints() {
        let node = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}
        });
        let patched = smp(
            "nodes",
            node,
            json!({
                "metadata": {"labels": {"b": null, "c": "3"}},
                "spec": {"taints": [{"key": "y", "effect": "NoExecute"}], "unschedulable": true}
            }),
        );
        assert_eq!(patched["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(
            patched["spec"]["taints"],
            json!([{"key": "y", "effect": "NoExecute"}])
        );
        assert_eq!(patched["spec"]["unschedulable"], true);
    }

    #[test]
    fn strategic_merge_merges_conditions_by_type_and_finalizers_as_a_set() {
        let pod = json!({
            "metadata": {"finalizers": ["a"]},
            "status": {"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"},
                {"type": "Ready", "status": "False"}
            ]}
        });
        let patched = smp(
            "pods",
            pod,
            json!({
                "metadata": {"finalizers": ["b", "a"], "$deleteFromPrimitiveList/finalizers": ["a"]},
                "status": {"conditions": [{"type": "PodScheduled", "status": "True", "reason": null}]}
            }),
        );
        assert_eq!(patched["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            patched["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}])
        );
    }

    #[test]
    fn strategic_merge_honours_delete_and_replace_directives() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patched = smp(
            "pods",
            pod.clone(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(
            patched["spec"]["containers"],
            json!([{"name": "b", "image": "y"}])
        );
        let patched = smp(
            "pods",
            pod,
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "z"}]}}),
        );
        assert_eq!(
            patched["spec"]["containers"],
            json!([{"name": "c", "image": "z"}])
        );
    }
}
