//! What the API server does to an object before storing it: defaulting, the resets of a create,
//! admission plugins that matter to scheduling, and the validation rules our callers can trip.
//! Custom resources get only metadata validation (no CRD OpenAPI schema is enforced).

use nodewright_core::quantity::{self, Quantity};
use serde_json::{Value, json};

use crate::error::Cause;
use crate::names;
use crate::object::{child, labels_of, name_of, namespace_of, set_default};
use crate::registry::ResourceType;
use crate::selectors::{label_map, label_selector_object};

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Defaults applied to every write, as API defaulting runs on every decode.
pub(crate) fn apply_defaults(rt: &ResourceType, object: &mut Value) {
    if rt.is_pods() {
        if let Some(spec) = child(object, "spec") {
            default_pod_spec(spec);
        }
    } else if rt.is("apps", "daemonsets") || rt.is("apps", "deployments") {
        if rt.is("apps", "deployments")
            && let Some(spec) = child(object, "spec")
        {
            set_default(spec, "replicas", json!(1));
        }
        if let Some(spec) = child(object, "spec")
            .and_then(|spec| spec.get_mut("template"))
            .and_then(|template| child(template, "spec"))
        {
            default_pod_spec(spec);
        }
    }
}

fn default_pod_spec(spec: &mut serde_json::Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            set_default(container, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(container, "terminationMessagePolicy", json!("File"));
            let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
            let latest =
                image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or_default().contains(':');
            let pull = if latest && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(container, "imagePullPolicy", json!(pull));
            // A resource with a limit and no request is requested at its limit.
            let limits = container
                .get("resources")
                .and_then(|r| r["limits"].as_object())
                .cloned();
            if let Some(limits) = limits
                && let Some(resources) = container.get_mut("resources")
                && let Some(requests) = child(resources, "requests")
            {
                for (name, limit) in limits {
                    set_default(requests, &name, limit);
                }
            }
        }
    }
}

/// The resets and admission of a create: status is the server's, not the client's (except for
/// nodes, whose kubelet creates them with status), and pods get priority and the default
/// not-ready/unreachable tolerations.
pub(crate) fn prepare_for_create(rt: &ResourceType, object: &mut Value, keep_status: bool) {
    apply_defaults(rt, object);
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if rt.status_subresource && !keep_status && !rt.is_nodes() {
        if rt.custom {
            map.remove("status");
        } else {
            map.insert("status".into(), json!({}));
        }
    }
    if rt.is_namespaces()
        && let Some(status) = child(object, "status")
    {
        set_default(status, "phase", json!("Active"));
    }
    if rt.is_pods() {
        admit_pod(object, keep_status);
    }
}

fn admit_pod(pod: &mut Value, keep_status: bool) {
    let qos = qos_class(&pod["spec"]);
    if let Some(spec) = child(pod, "spec") {
        set_default(spec, "priority", json!(0));
        set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(tolerations) = tolerations.as_array_mut() {
            for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
                let tolerated = tolerations.iter().any(|t| {
                    (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                        && (t["effect"] == "NoExecute" || t["effect"].is_null())
                });
                if !tolerated {
                    tolerations.push(json!({
                        "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300
                    }));
                }
            }
        }
    }
    if let Some(status) = child(pod, "status") {
        if !keep_status {
            status.insert("phase".into(), json!("Pending"));
        }
        set_default(status, "phase", json!("Pending"));
        set_default(status, "qosClass", json!(qos));
    }
}

/// The pod's QoS class from its (defaulted) requests and limits.
fn qos_class(spec: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().cloned().unwrap_or_default());
    let mut any = false;
    let mut guaranteed = true;
    for container in containers {
        for resource in ["cpu", "memory"] {
            let request = container["resources"]["requests"][resource].as_str();
            let limit = container["resources"]["limits"][resource].as_str();
            any |= request.is_some() || limit.is_some();
            let equal = match (request.map(quantity::parse), limit.map(quantity::parse)) {
                (Some(Ok(r)), Some(Ok(l))) => r == l,
                (None, Some(Ok(_))) => true,
                _ => false,
            };
            guaranteed &= equal;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Quantities are decoded before validation, so a malformed one is a 400, not a 422.
pub(crate) fn check_quantities(rt: &ResourceType, object: &Value) -> Result<(), String> {
    let mut maps: Vec<&Value> = Vec::new();
    if rt.is_nodes() {
        maps.extend([&object["status"]["capacity"], &object["status"]["allocatable"]]);
    }
    let pod_spec = if rt.is_pods() {
        Some(&object["spec"])
    } else if !rt.custom {
        Some(&object["spec"]["template"]["spec"])
    } else {
        None
    };
    if let Some(spec) = pod_spec {
        maps.push(&spec["overhead"]);
        for list in ["containers", "initContainers"] {
            for container in spec[list].as_array().into_iter().flatten() {
                maps.extend([
                    &container["resources"]["requests"],
                    &container["resources"]["limits"],
                ]);
            }
        }
    }
    for map in maps.iter().filter_map(|m| m.as_object()) {
        for value in map.values() {
            let text = value.as_str().unwrap_or_default();
            if quantity::parse(text).is_err() {
                return Err(QUANTITY_MSG.to_string());
            }
        }
    }
    Ok(())
}

/// Field errors of an object about to be stored; `old` is the stored object on update.
pub(crate) fn validate(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = validate_metadata(rt, object, old);
    if rt.is_pods() {
        validate_pod_spec(&object["spec"], "spec", &mut causes);
        if let Some(old) = old {
            validate_pod_update(old, object, &mut causes);
        }
    } else if rt.is_nodes() {
        validate_node(object, old, &mut causes);
    } else if rt.is_pdbs() {
        validate_pdb(object, &mut causes);
    } else if rt.is("apps", "daemonsets") || rt.is("apps", "deployments") {
        validate_workload(object, old, &mut causes);
    }
    causes
}

fn validate_metadata(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let name_errors = if rt.is_namespaces() {
        names::dns_label_errors(name)
    } else {
        names::dns_subdomain_errors(name)
    };
    if let Some(e) = name_errors.first() {
        causes.push(Cause::invalid("metadata.name", &json!(name), e));
    }
    for (key, value) in labels_of(object) {
        let value = value.as_str().unwrap_or_default();
        if let Some(e) = names::qualified_name_errors(key).first() {
            causes.push(Cause::invalid("metadata.labels", &json!(key), e));
        }
        if let Some(e) = names::label_value_errors(value).first() {
            causes.push(Cause::invalid("metadata.labels", &json!(value), e));
        }
    }
    let mut annotation_bytes = 0;
    for (key, value) in meta["annotations"].as_object().into_iter().flatten() {
        annotation_bytes += key.len() + value.as_str().map_or(0, str::len);
        if let Some(e) = names::qualified_name_errors(key).first() {
            causes.push(Cause::invalid("metadata.annotations", &json!(key), e));
        }
    }
    if annotation_bytes > 256 * 1024 {
        causes.push(Cause::invalid(
            "metadata.annotations",
            &json!(""),
            "Too long: must have at most 262144 bytes",
        ));
    }
    for (i, finalizer) in meta["finalizers"].as_array().into_iter().flatten().enumerate() {
        let text = finalizer.as_str().unwrap_or_default();
        if let Some(e) = names::qualified_name_errors(text).first() {
            causes.push(Cause::invalid(format!("metadata.finalizers[{i}]"), finalizer, e));
        }
    }
    if let Some(old) = old {
        let old_meta = &old["metadata"];
        if meta["uid"] != old_meta["uid"] {
            causes.push(Cause::invalid("metadata.uid", &meta["uid"], "field is immutable"));
        }
        if !old_meta["deletionTimestamp"].is_null() {
            let before = old_meta["finalizers"].as_array().cloned().unwrap_or_default();
            let added: Vec<&Value> = meta["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                causes.push(Cause::forbidden(
                    "metadata.finalizers",
                    &format!("no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
                ));
            }
        }
    }
    causes
}

fn validate_pod_spec(spec: &Value, at: &str, causes: &mut Vec<Cause>) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push(Cause::required(format!("{at}.containers"), ""));
    }
    let mut seen: Vec<String> = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let field = format!("{at}.{list}[{i}]");
            let name = container["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                causes.push(Cause::required(format!("{field}.name"), ""));
            } else if let Some(e) = names::dns_label_errors(name).first() {
                causes.push(Cause::invalid(format!("{field}.name"), &json!(name), e));
            } else if seen.iter().any(|s| s == name) {
                causes.push(Cause::duplicate(format!("{field}.name"), &json!(name)));
            }
            seen.push(name.to_string());
            if container["image"].as_str().unwrap_or_default().is_empty() {
                causes.push(Cause::required(format!("{field}.image"), ""));
            }
            validate_resources(&container["resources"], &format!("{field}.resources"), causes);
        }
    }
    for (i, toleration) in spec["tolerations"].as_array().into_iter().flatten().enumerate() {
        let field = format!("{at}.tolerations[{i}]");
        let operator = toleration["operator"].as_str().unwrap_or("Equal");
        let key = toleration["key"].as_str().unwrap_or_default();
        match operator {
            "Exists" if !toleration["value"].as_str().unwrap_or_default().is_empty() => {
                causes.push(Cause::invalid(
                    format!("{field}.operator"),
                    &json!(operator),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
            "Equal" if key.is_empty() => causes.push(Cause::invalid(
                format!("{field}.operator"),
                &json!(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            )),
            "Exists" | "Equal" => {}
            other => causes.push(Cause::not_supported(
                format!("{field}.operator"),
                &json!(other),
                &["Equal", "Exists"],
            )),
        }
        if let Some(effect) = toleration["effect"].as_str()
            && !effect.is_empty()
            && !TAINT_EFFECTS.contains(&effect)
        {
            causes.push(Cause::not_supported(
                format!("{field}.effect"),
                &json!(effect),
                TAINT_EFFECTS,
            ));
        }
    }
}

fn validate_resources(resources: &Value, at: &str, causes: &mut Vec<Cause>) {
    let parse = |v: &Value| v.as_str().and_then(|s| quantity::parse(s).ok());
    for kind in ["requests", "limits"] {
        for (name, value) in resources[kind].as_object().into_iter().flatten() {
            if parse(value).is_some_and(Quantity::is_negative) {
                causes.push(Cause::invalid(
                    format!("{at}.{kind}[{name}]"),
                    value,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, request) in resources["requests"].as_object().into_iter().flatten() {
        let limit = &resources["limits"][name.as_str()];
        if let (Some(r), Some(l)) = (parse(request), parse(limit))
            && r > l
        {
            causes.push(Cause::invalid(
                format!("{at}.requests"),
                request,
                &format!(
                    "must be less than or equal to {name} limit of {}",
                    limit.as_str().unwrap_or_default()
                ),
            ));
        }
    }
}

/// A pod's spec is immutable but for a few fields (`ValidatePodUpdate`); binding is the only
/// way to set `spec.nodeName`.
fn validate_pod_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let mut allowed = old["spec"].clone();
    let new_spec = &new["spec"];
    for list in ["containers", "initContainers"] {
        let new_list = new_spec[list].as_array();
        if let (Some(old_list), Some(new_list)) =
            (allowed.get_mut(list).and_then(Value::as_array_mut), new_list)
            && old_list.len() == new_list.len()
        {
            for (old_c, new_c) in old_list.iter_mut().zip(new_list) {
                if let Some(old_c) = old_c.as_object_mut() {
                    old_c.insert("image".into(), new_c["image"].clone());
                }
            }
        }
    }
    let old_tolerations = old["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    let new_tolerations = new_spec["tolerations"].as_array().cloned().unwrap_or_default();
    let old_gates = old["spec"]["schedulingGates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let new_gates = new_spec["schedulingGates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(allowed) = allowed.as_object_mut() {
        for field in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
            match new_spec.get(field) {
                Some(v) => allowed.insert(field.into(), v.clone()),
                None => allowed.remove(field),
            };
        }
        let mut take = |field: &str, ok: bool| {
            if ok {
                match new_spec.get(field) {
                    Some(v) => allowed.insert(field.into(), v.clone()),
                    None => allowed.remove(field),
                };
            }
        };
        take(
            "tolerations",
            old_tolerations.iter().all(|t| new_tolerations.contains(t)),
        );
        take("schedulingGates", new_gates.iter().all(|g| old_gates.contains(g)));
    }
    if allowed != *new_spec {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

fn validate_node(node: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, taint) in node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("spec.taints[{i}]");
        let key = taint["key"].as_str().unwrap_or_default();
        let effect = taint["effect"].as_str().unwrap_or_default();
        if key.is_empty() {
            causes.push(Cause::required(format!("{field}.key"), ""));
        } else if let Some(e) = names::qualified_name_errors(key).first() {
            causes.push(Cause::invalid(format!("{field}.key"), &json!(key), e));
        }
        if effect.is_empty() {
            causes.push(Cause::required(format!("{field}.effect"), ""));
        } else if !TAINT_EFFECTS.contains(&effect) {
            causes.push(Cause::not_supported(
                format!("{field}.effect"),
                &json!(effect),
                TAINT_EFFECTS,
            ));
        }
        let pair = (key.to_string(), effect.to_string());
        if seen.contains(&pair) {
            causes.push(Cause::duplicate(field, &json!(format!("{key}:{effect}"))));
        }
        seen.push(pair);
    }
    if let Some(old) = old {
        let before = old["spec"]["providerID"].as_str().unwrap_or_default();
        let after = node["spec"]["providerID"].as_str().unwrap_or_default();
        if !before.is_empty() && before != after {
            causes.push(Cause::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
}

fn validate_pdb(pdb: &Value, causes: &mut Vec<Cause>) {
    let spec = &pdb["spec"];
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        causes.push(Cause::invalid(
            "spec",
            &json!(""),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        let value = &spec[field];
        let problem = match value {
            Value::Null => None,
            Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => {
                Some("must be greater than or equal to 0".to_string())
            }
            Value::Number(_) => None,
            Value::String(s) => match s.strip_suffix('%').map(str::parse::<u32>) {
                Some(Ok(p)) if p > 100 => Some("must not be greater than 100%".to_string()),
                Some(Ok(_)) => None,
                _ => Some("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')".to_string()),
            },
            _ => Some("must be an integer or percentage".to_string()),
        };
        if let Some(problem) = problem {
            causes.push(Cause::invalid(format!("spec.{field}"), value, &problem));
        }
    }
    if !spec["selector"].is_null()
        && let Err(e) = label_selector_object(&described(pdb), "spec.selector", &spec["selector"])
    {
        causes.push(Cause::invalid("spec.selector", &spec["selector"], &e));
    }
    if let Some(policy) = spec["unhealthyPodEvictionPolicy"].as_str()
        && !["IfHealthyBudget", "AlwaysAllow"].contains(&policy)
    {
        causes.push(Cause::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            &json!(policy),
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
}

/// `Kind namespace/name`, for messages that name the object.
fn described(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    format!("{kind} {}/{}", namespace_of(object), name_of(object))
}

fn validate_workload(object: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let selector = &object["spec"]["selector"];
    if selector.is_null() {
        causes.push(Cause::required("spec.selector", ""));
    } else {
        match label_selector_object(&described(object), "spec.selector", selector) {
            Err(e) => causes.push(Cause::invalid("spec.selector", selector, &e)),
            Ok(parsed) if parsed.requirements.is_empty() => causes.push(Cause::invalid(
                "spec.selector",
                selector,
                "empty selector is invalid for deployment",
            )),
            Ok(parsed) => {
                let template = &object["spec"]["template"];
                if !parsed.matches(&label_map(labels_of(template))) {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &template["metadata"]["labels"],
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    validate_pod_spec(&object["spec"]["template"]["spec"], "spec.template.spec", causes);
    if let Some(old) = old
        && old["spec"]["selector"] != *selector
    {
        causes.push(Cause::invalid("spec.selector", selector, "field is immutable"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn pods() -> ResourceType {
        Registry::with_defaults().find_key("pods").expect("pods").clone()
    }

    #[test]
    fn pods_are_created_pending_with_defaults_and_default_tolerations() {
        let mut pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}
        });
        prepare_for_create(&pods(), &mut pod, false);
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "Guaranteed");
        assert_eq!(pod["spec"]["containers"][0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn a_pod_without_containers_is_invalid() {
        let causes = validate(&pods(), &json!({"metadata": {"name": "p"}, "spec": {}}), None);
        assert_eq!(causes, vec![Cause::required("spec.containers", "")]);
    }

    #[test]
    fn a_pod_update_may_not_set_node_name() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!("n1");
        let causes = validate(&pods(), &new, Some(&old));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        new["spec"].as_object_mut().map(|spec| spec.remove("nodeName"));
        new["spec"]["containers"][0]["image"] = json!("b");
        assert!(validate(&pods(), &new, Some(&old)).is_empty());
    }

    #[test]
    fn request_above_limit_and_bad_quantity_are_rejected() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "a", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}
        ]}});
        assert_eq!(validate(&pods(), &pod, None).len(), 1);
        let bad = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "lots"}}}]}});
        assert!(check_quantities(&pods(), &bad).is_err());
    }
}
