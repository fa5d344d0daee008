//! The pod subresources with rules of their own, `binding` and `eviction`, and the part of the
//! disruption controller that keeps PodDisruptionBudget status current.
//!
//! Simplification: the expected pod count of a budget is the number of pods its selector matches
//! (the real controller asks the pods' controllers for their scale when the budget uses
//! `maxUnavailable` or a percentage).

use nodewright_core::pod::LabelSelector;
use serde_json::{Value, json};

use crate::error::{Cause, Error, GroupResource, Result};
use crate::object::{child, condition_is_true, is_deleting, labels_of, name_of, set_condition};
use crate::registry::ResourceType;
use crate::selectors::{label_map, label_selector_object};
use crate::store::State;

const PDB_VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

fn resources(state: &State) -> Result<(ResourceType, ResourceType)> {
    match (
        state.resource("pods"),
        state.resource("poddisruptionbudgets.policy"),
    ) {
        (Some(pods), Some(pdbs)) => Ok((pods, pdbs)),
        _ => Err(Error::PathNotFound),
    }
}

/// A budget's numbers, as the disruption controller computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    expected: i64,
    desired: i64,
    healthy: i64,
    allowed: i64,
}

fn selector_of(pdb: &Value) -> Option<LabelSelector> {
    // A null selector selects nothing in policy/v1; an empty one selects every pod.
    let selector = &pdb["spec"]["selector"];
    if selector.is_null() {
        return None;
    }
    // Validation let only valid selectors in.
    label_selector_object("PodDisruptionBudget", "spec.selector", selector).ok()
}

fn selects(selector: &LabelSelector, pod: &Value) -> bool {
    selector.matches(&label_map(labels_of(pod)))
}

fn is_healthy(pod: &Value) -> bool {
    !is_deleting(pod) && pod["status"]["phase"] == "Running" && condition_is_true(pod, "Ready")
}

fn budget(state: &State, pods: &ResourceType, pdb: &Value) -> Budget {
    let namespace = pdb["metadata"]["namespace"].as_str().unwrap_or_default();
    let matching: Vec<&Value> = match selector_of(pdb) {
        Some(selector) => state
            .objects(pods, Some(namespace))
            .filter(|p| selects(&selector, p))
            .collect(),
        None => Vec::new(),
    };
    let expected = matching.len() as i64;
    let healthy = matching.iter().filter(|p| is_healthy(p)).count() as i64;
    let spec = &pdb["spec"];
    let scaled = |value: &Value| -> i64 {
        match value {
            Value::String(text) => {
                let percent = text.trim_end_matches('%').parse::<i64>().unwrap_or(0);
                (expected * percent + 99) / 100
            }
            other => other.as_i64().unwrap_or(0),
        }
    };
    let desired = if !spec["maxUnavailable"].is_null() {
        (expected - scaled(&spec["maxUnavailable"])).max(0)
    } else if !spec["minAvailable"].is_null() {
        scaled(&spec["minAvailable"])
    } else {
        0
    };
    Budget {
        expected,
        desired,
        healthy,
        allowed: (healthy - desired).max(0),
    }
}

/// The disruption controller's status half, run after every write to a pod or a budget.
pub(crate) fn disruption_controller(state: &mut State, rt: &ResourceType, namespace: &str) {
    if rt.is_pods() || rt.is_pdbs() {
        refresh_disruption_budgets(state, namespace);
    }
}

/// Rewrites the status of every budget in the namespace whose numbers changed.
fn refresh_disruption_budgets(state: &mut State, namespace: &str) {
    let Ok((pods, pdbs)) = resources(state) else {
        return;
    };
    let budgets: Vec<Value> = state.objects(&pdbs, Some(namespace)).cloned().collect();
    let now = state.now();
    for pdb in budgets {
        let b = budget(state, &pods, &pdb);
        let generation = pdb["metadata"]["generation"].clone();
        let mut updated = pdb.clone();
        if let Some(status) = child(&mut updated, "status") {
            status.insert("observedGeneration".into(), generation.clone());
            status.insert("disruptionsAllowed".into(), json!(b.allowed));
            status.insert("currentHealthy".into(), json!(b.healthy));
            status.insert("desiredHealthy".into(), json!(b.desired));
            status.insert("expectedPods".into(), json!(b.expected));
        }
        let (status, reason) = if b.allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        let condition = json!({
            "type": "DisruptionAllowed", "status": status, "reason": reason, "message": "",
            "observedGeneration": generation,
        });
        set_condition(&mut updated, condition, &now);
        if updated != pdb {
            state.commit(&pdbs, updated);
        }
    }
}

/// POST `pods/{name}/eviction`: deletes the pod unless its one disruption budget forbids it.
pub(crate) fn evict(state: &mut State, namespace: &str, name: &str, body: &Value) -> Result<Value> {
    let (pods, pdbs) = resources(state)?;
    if let Some(kind) = body["kind"].as_str()
        && kind != "Eviction"
    {
        return Err(Error::BadRequest(format!("expected an Eviction, got {kind}")));
    }
    let requested = name_of(body);
    if !requested.is_empty() && requested != name {
        return Err(Error::BadRequest(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    let pod = state.get(&pods, namespace, name)?;
    let options = body["deleteOptions"].clone();
    let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
    // Pods that are not running (or already going) cannot disrupt anything.
    let ignores_budgets = matches!(phase, "Pending" | "Succeeded" | "Failed") || is_deleting(&pod);
    if !ignores_budgets {
        let covering: Vec<Value> = state
            .objects(&pdbs, Some(namespace))
            .filter(|pdb| selector_of(pdb).is_some_and(|s| selects(&s, &pod)))
            .cloned()
            .collect();
        match covering.as_slice() {
            [] => {}
            [pdb] => check_budget(state, &pods, pdb, &pod)?,
            _ => {
                return Err(Error::Internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
                ));
            }
        }
    }
    state.delete(&pods, namespace, name, &options)?;
    Ok(success())
}

fn check_budget(state: &State, pods: &ResourceType, pdb: &Value, pod: &Value) -> Result<()> {
    let b = budget(state, pods, pdb);
    if !condition_is_true(pod, "Ready") {
        // An unready pod does not count as healthy, so evicting it costs the budget nothing
        // when the budget is met (IfHealthyBudget) or always (AlwaysAllow).
        let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        if always || (b.healthy >= b.desired && b.desired > 0) {
            return Ok(());
        }
    }
    if b.allowed == 0 {
        return Err(Error::TooManyRequests {
            message: PDB_VIOLATION.into(),
            causes: vec![Cause {
                reason: "DisruptionBudget".into(),
                field: String::new(),
                message: format!(
                    "The disruption budget {} needs {} healthy pods and has {} currently",
                    name_of(pdb),
                    b.desired,
                    b.healthy
                ),
            }],
        });
    }
    Ok(())
}

/// POST `pods/{name}/binding`: assigns an unbound pod to a node, as the scheduler does.
pub(crate) fn bind(state: &mut State, namespace: &str, name: &str, body: &Value) -> Result<Value> {
    let (pods, _) = resources(state)?;
    let requested = name_of(body);
    if !requested.is_empty() && requested != name {
        return Err(Error::BadRequest(
            "name in URL does not match name in Binding object".into(),
        ));
    }
    let target = &body["target"];
    let node = target["name"].as_str().unwrap_or_default().to_string();
    let mut causes = Vec::new();
    if !matches!(target["kind"].as_str(), None | Some("") | Some("Node")) {
        causes.push(Cause::invalid(
            "target.kind",
            &target["kind"],
            "must be empty or 'Node'",
        ));
    }
    if node.is_empty() {
        causes.push(Cause::required("target.name", ""));
    }
    if !causes.is_empty() {
        let kind = crate::error::GroupKind {
            group: String::new(),
            kind: "Binding".into(),
        };
        return Err(Error::invalid(kind, name, causes));
    }
    let pod = state.get(&pods, namespace, name)?;
    let binding = GroupResource {
        group: String::new(),
        resource: "pods/binding".into(),
    };
    if is_deleting(&pod) {
        return Err(Error::conflict(
            binding,
            name,
            format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(Error::conflict(
            binding,
            name,
            format!("pod {name} is already assigned to node \"{current}\""),
        ));
    }
    assign(
        state,
        &pods,
        namespace,
        name,
        &node,
        &body["metadata"]["annotations"],
    )?;
    Ok(success())
}

/// Sets `spec.nodeName` and PodScheduled=True, as a successful binding does.
pub(crate) fn assign(
    state: &mut State,
    pods: &ResourceType,
    namespace: &str,
    name: &str,
    node: &str,
    annotations: &Value,
) -> Result<Value> {
    let now = state.now();
    state.write(pods, namespace, name, |pod| {
        if let Some(spec) = child(pod, "spec") {
            spec.insert("nodeName".into(), json!(node));
        }
        if let Some(extra) = annotations.as_object()
            && let Some(meta) = pod.get_mut("metadata")
            && let Some(existing) = child(meta, "annotations")
        {
            existing.extend(extra.clone());
        }
        set_condition(pod, json!({"type": "PodScheduled", "status": "True"}), &now);
    })
}
