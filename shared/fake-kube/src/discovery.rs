//! `/version`, `/api`, `/apis` and the per-group-version resource lists, enough for tools that
//! discover what the server offers. Watch is left out of the verbs because it is not served.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceType};

/// The Kubernetes minor version served unless a test sets another.
pub(crate) const DEFAULT_MINOR: u32 = 34;

pub(crate) fn version(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "emulationMajor": "1",
        "emulationMinor": minor.to_string(),
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": minor.saturating_sub(1).to_string(),
        "gitVersion": format!("v1.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn group(registry: &Registry, name: &str) -> Option<Value> {
    let versions: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| g == name)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({"name": name, "versions": versions, "preferredVersion": preferred}))
}

pub(crate) fn group_list(registry: &Registry) -> Value {
    let mut names: Vec<String> = Vec::new();
    for (g, _) in registry.group_versions() {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    let groups: Vec<Value> = names.iter().filter_map(|n| group(registry, n)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn api_group(registry: &Registry, name: &str) -> Option<Value> {
    let mut body = group(registry, name)?;
    if let Some(map) = body.as_object_mut() {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(body)
}

pub(crate) fn resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for rt in registry
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        resources.push(entry(
            rt,
            &rt.plural,
            &rt.kind,
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
            ],
        ));
        for sub in rt.subresources() {
            let name = format!("{}/{sub}", rt.plural);
            let mut item = match sub {
                "status" => entry(rt, &name, &rt.kind, &["get", "patch", "update"]),
                "eviction" => entry(rt, &name, "Eviction", &["create"]),
                _ => entry(rt, &name, "Binding", &["create"]),
            };
            if sub == "eviction"
                && let Some(map) = item.as_object_mut()
            {
                map.insert("group".into(), json!("policy"));
                map.insert("version".into(), json!("v1"));
            }
            resources.push(item);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn entry(rt: &ResourceType, name: &str, kind: &str, verbs: &[&str]) -> Value {
    let singular = if name.contains('/') {
        ""
    } else {
        rt.singular.as_str()
    };
    json!({
        "name": name,
        "singularName": singular,
        "namespaced": rt.namespaced,
        "kind": kind,
        "verbs": verbs,
    })
}
