//! The kubelet and kube-scheduler for end-to-end tests: nodes register Ready, pending pods get
//! bound where they fit and start, and pods that fit nowhere are marked
//! `PodScheduled=False, reason=Unschedulable` as the real scheduler marks them.
//!
//! The scheduler checks, in the real filter order: node unschedulable, NoSchedule/NoExecute
//! taints against tolerations, nodeSelector and required node affinity, then resource requests
//! against allocatable less what bound pods request. It picks the first fitting node by name.
//! Pod (anti-)affinity, topology spread, host ports and volumes are not simulated.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Taint;
use nodewright_core::quantity;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::object::{child, is_deleting, labels_of, name_of, namespace_of, set_condition};
use crate::pods;
use crate::registry::ResourceType;
use crate::selectors::Requirement;
use crate::store::{Origin, State};

/// A node as its kubelet registers it. Built with defaults: `pods: 110` allocatable and the
/// `kubernetes.io/hostname` and `kubernetes.io/os` labels unless set.
#[derive(Debug, Clone)]
pub struct NodeRegistration {
    name: String,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    allocatable: BTreeMap<String, String>,
    provider_id: Option<String>,
}

impl NodeRegistration {
    pub fn new(name: impl Into<String>) -> Self {
        NodeRegistration {
            name: name.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            allocatable: BTreeMap::new(),
            provider_id: None,
        }
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn labels<K: Into<String>, V: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.labels
            .extend(labels.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A taint; an empty `value` is left out, as `kubectl taint node n key:Effect` leaves it.
    pub fn taint(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        effect: impl Into<String>,
    ) -> Self {
        let value: String = value.into();
        self.taints.push(Taint {
            key: key.into(),
            value: (!value.is_empty()).then_some(value),
            effect: effect.into(),
            time_added: None,
        });
        self
    }

    pub fn taints(mut self, taints: impl IntoIterator<Item = Taint>) -> Self {
        self.taints.extend(taints);
        self
    }

    /// An allocatable quantity (`cpu`, `memory`, `pods`, `ephemeral-storage`, extended ones).
    pub fn allocatable(mut self, resource: impl Into<String>, quantity: impl Into<String>) -> Self {
        self.allocatable.insert(resource.into(), quantity.into());
        self
    }

    pub fn provider_id(mut self, provider_id: impl Into<String>) -> Self {
        self.provider_id = Some(provider_id.into());
        self
    }
}

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    fn of(pod: &Value) -> Self {
        PodKey {
            namespace: namespace_of(pod).to_string(),
            name: name_of(pod).to_string(),
        }
    }
}

/// What one `schedule_pending` round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Pods bound by this round, with their node.
    pub bound: Vec<(PodKey, String)>,
    /// Pods already bound (by a client's binding) that the kubelet started this round.
    pub started: Vec<PodKey>,
    /// Pods that fit no node, with the scheduler's message.
    pub unschedulable: Vec<(PodKey, String)>,
}

fn kinds(state: &State) -> Result<(ResourceType, ResourceType)> {
    match (state.resource("pods"), state.resource("nodes")) {
        (Some(pods), Some(nodes)) => Ok((pods, nodes)),
        _ => Err(Error::PathNotFound),
    }
}

pub(crate) fn register_node(state: &mut State, node: NodeRegistration) -> Result<Value> {
    let (_, nodes) = kinds(state)?;
    let mut labels = node.labels.clone();
    labels
        .entry("kubernetes.io/hostname".into())
        .or_insert_with(|| node.name.clone());
    labels
        .entry("kubernetes.io/os".into())
        .or_insert_with(|| "linux".into());
    let arch = labels
        .get("kubernetes.io/arch")
        .cloned()
        .unwrap_or_else(|| "amd64".into());
    let mut allocatable = node.allocatable.clone();
    allocatable.entry("pods".into()).or_insert_with(|| "110".into());
    let serial = state.next_serial();
    let now = state.now();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    let body = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels},
        "spec": {"providerID": node.provider_id, "taints": node.taints},
        "status": {
            "capacity": allocatable,
            "allocatable": allocatable,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip_from(serial, 10)},
                {"type": "Hostname", "address": node.name},
            ],
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "osImage": "Amazon Linux 2023",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": "v1.34.0",
                "kubeProxyVersion": "",
                "bootID": format!("{serial:016x}"),
                "machineID": format!("{serial:032x}"),
                "systemUUID": format!("{serial:032x}"),
            },
        },
    });
    state.create(&nodes, "", body, Origin::Test)
}

/// The kubelet's Ready condition, with the not-ready NoSchedule taint the node lifecycle
/// controller adds to a node that is not Ready.
pub(crate) fn set_node_ready(state: &mut State, name: &str, ready: bool) -> Result<Value> {
    let (_, nodes) = kinds(state)?;
    let now = state.now();
    state.write(&nodes, "", name, |node| {
        let (status, reason, message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            ("False", "KubeletNotReady", "container runtime is down")
        };
        set_condition(
            node,
            json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now}),
            &now,
        );
        let Some(spec) = child(node, "spec") else {
            return;
        };
        let taints = spec.entry("taints").or_insert_with(|| json!([]));
        if let Some(taints) = taints.as_array_mut() {
            taints.retain(|t| t["key"] != "node.kubernetes.io/not-ready");
            if !ready {
                taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": now}));
            }
            if taints.is_empty() {
                spec.remove("taints");
            }
        }
    })
}

/// Requested amounts per resource, in nano-units (`pods` counts the pod itself).
type Amounts = HashMap<String, i128>;

fn nanos(value: &Value) -> i128 {
    value
        .as_str()
        .and_then(|s| quantity::parse(s).ok())
        .map_or(0, |q| q.nanos())
}

fn pod_requests(pod: &Value) -> Amounts {
    let spec = &pod["spec"];
    let mut total = Amounts::new();
    for container in spec["containers"].as_array().into_iter().flatten() {
        for (resource, amount) in container["resources"]["requests"]
            .as_object()
            .into_iter()
            .flatten()
        {
            *total.entry(resource.clone()).or_default() += nanos(amount);
        }
    }
    // Init containers run one at a time before the others: the pod needs the largest of them.
    for container in spec["initContainers"].as_array().into_iter().flatten() {
        for (resource, amount) in container["resources"]["requests"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let slot = total.entry(resource.clone()).or_default();
            *slot = (*slot).max(nanos(amount));
        }
    }
    for (resource, amount) in spec["overhead"].as_object().into_iter().flatten() {
        *total.entry(resource.clone()).or_default() += nanos(amount);
    }
    *total.entry("pods".into()).or_default() += 1_000_000_000;
    total
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            let effect_ok = t["effect"]
                .as_str()
                .is_none_or(|e| e.is_empty() || taint["effect"] == e);
            let key = t["key"].as_str().unwrap_or_default();
            let key_ok = key.is_empty() || taint["key"] == key;
            let value_ok = match t["operator"].as_str().unwrap_or("Equal") {
                "Exists" => true,
                _ => t["value"].as_str().unwrap_or_default() == taint["value"].as_str().unwrap_or_default(),
            };
            effect_ok && key_ok && value_ok
        })
}

fn matches_node_selection(pod: &Value, node: &Value) -> bool {
    let labels = labels_of(node);
    let selector_ok = pod["spec"]["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    // Terms are ORed, the expressions of a term ANDed; a term with nothing in it matches nothing.
    let affinity_ok = terms.as_array().is_none_or(|terms| {
        terms.iter().any(|term| {
            let expressions = term["matchExpressions"].as_array().cloned().unwrap_or_default();
            let fields = term["matchFields"].as_array().cloned().unwrap_or_default();
            let mut node_fields = Map::new();
            node_fields.insert("metadata.name".into(), json!(name_of(node)));
            (!expressions.is_empty() || !fields.is_empty())
                && expressions
                    .iter()
                    .all(|e| Requirement::from_node_selector(e).is_ok_and(|r| r.matches(labels)))
                && fields
                    .iter()
                    .all(|e| Requirement::from_node_selector(e).is_ok_and(|r| r.matches(&node_fields)))
        })
    });
    selector_ok && affinity_ok
}

/// Why the pod does not fit the node, in the scheduler's words; empty when it fits.
fn misfits(pod: &Value, requests: &Amounts, node: &Value, free: &Amounts) -> Vec<String> {
    if node["spec"]["unschedulable"] == true
        && !tolerates(
            pod,
            &json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}),
        )
    {
        return vec!["node(s) were unschedulable".into()];
    }
    for taint in node["spec"]["taints"].as_array().into_iter().flatten() {
        let blocking = matches!(taint["effect"].as_str(), Some("NoSchedule" | "NoExecute"));
        if blocking && !tolerates(pod, taint) {
            return vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            )];
        }
    }
    if !matches_node_selection(pod, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let mut reasons = Vec::new();
    let mut names: Vec<&String> = requests.keys().collect();
    names.sort();
    for resource in names {
        let want = requests[resource];
        if want <= 0 {
            continue;
        }
        if free.get(resource).copied().unwrap_or(0) < want {
            reasons.push(if resource == "pods" {
                "Too many pods".to_string()
            } else {
                format!("Insufficient {resource}")
            });
        }
    }
    reasons
}

fn is_terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// The pods the kube-scheduler tries: unbound, Pending and not being deleted (the shared rule,
/// [`nodewright_core::pending::unbound_and_pending`]), for the default scheduler, not gated.
fn is_pending_unbound(pod: &Value) -> bool {
    let state = nodewright_core::pending::PodState {
        node_name: pod["spec"]["nodeName"].as_str(),
        phase: pod["status"]["phase"].as_str(),
        deleting: is_deleting(pod),
        ..Default::default()
    };
    nodewright_core::pending::unbound_and_pending(&state).is_ok()
        && pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|s| s == "default-scheduler")
        && pod["spec"]["schedulingGates"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

pub(crate) fn schedule_pending(state: &mut State) -> Result<ScheduleReport> {
    let (pods_rt, nodes_rt) = kinds(state)?;
    let nodes: Vec<Value> = state.objects(&nodes_rt, None).cloned().collect();
    let node_named = |name: &str| nodes.iter().find(|n| name_of(n) == name);
    let pods: Vec<Value> = state.objects(&pods_rt, None).cloned().collect();
    let mut report = ScheduleReport::default();

    // What each node has left: allocatable less what its non-terminal pods request.
    let mut free: HashMap<String, Amounts> = nodes
        .iter()
        .map(|n| {
            let allocatable = n["status"]["allocatable"].as_object().into_iter().flatten();
            let amounts = allocatable.map(|(r, q)| (r.clone(), nanos(q))).collect();
            (name_of(n).to_string(), amounts)
        })
        .collect();
    for pod in pods.iter().filter(|p| !is_terminal(p)) {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if node.is_empty() {
            continue;
        }
        take(free.entry(node.to_string()).or_default(), &pod_requests(pod));
        if let Some(node) = node_named(node)
            && pod["status"]["phase"] == "Pending"
            && !is_deleting(pod)
        {
            start(state, &pods_rt, pod, node)?;
            report.started.push(PodKey::of(pod));
        }
    }

    let mut pending: Vec<&Value> = pods.iter().filter(|p| is_pending_unbound(p)).collect();
    pending.sort_by_key(|p| {
        (
            std::cmp::Reverse(p["spec"]["priority"].as_i64().unwrap_or(0)),
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            PodKey::of(p),
        )
    });
    let nothing = Amounts::new();
    for pod in pending {
        let requests = pod_requests(pod);
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let chosen = nodes.iter().find(|node| {
            let left = free.get(name_of(node)).unwrap_or(&nothing);
            let problems = misfits(pod, &requests, node, left);
            for reason in &problems {
                *reasons.entry(reason.clone()).or_default() += 1;
            }
            problems.is_empty()
        });
        let key = PodKey::of(pod);
        match chosen {
            Some(node) => {
                let node_name = name_of(node).to_string();
                take(free.entry(node_name.clone()).or_default(), &requests);
                let bound = pods::assign(
                    state,
                    &pods_rt,
                    &key.namespace,
                    &key.name,
                    &node_name,
                    &Value::Null,
                )?;
                start(state, &pods_rt, &bound, node)?;
                report.bound.push((key, node_name));
            }
            None => {
                let message = unschedulable_message(nodes.len(), &reasons);
                mark_unschedulable(state, &pods_rt, &key, &message)?;
                report.unschedulable.push((key, message));
            }
        }
    }
    Ok(report)
}

fn take(free: &mut Amounts, requests: &Amounts) {
    for (resource, amount) in requests {
        *free.entry(resource.clone()).or_default() -= amount;
    }
}

/// The scheduler's FitError text: counts per reason, sorted as strings.
fn unschedulable_message(nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{nodes} nodes are available: {}.", parts.join(", "))
}

fn mark_unschedulable(state: &mut State, pods: &ResourceType, key: &PodKey, message: &str) -> Result<()> {
    let now = state.now();
    state.write(pods, &key.namespace, &key.name, |pod| {
        let same = crate::object::condition(pod, "PodScheduled").is_some_and(|c| {
            c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == message
        });
        if !same {
            set_condition(
                pod,
                json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}),
                &now,
            );
        }
    })?;
    Ok(())
}

/// The kubelet starting a bound pod: Running, every container up, Ready.
fn start(state: &mut State, pods: &ResourceType, pod: &Value, node: &Value) -> Result<()> {
    let now = state.now();
    let serial = state.next_serial();
    let pod_ip = ip_from(serial, 100);
    let host_ip = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or_default()
        .to_string();
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": c["name"], "image": c["image"], "imageID": "",
                "containerID": format!("containerd://{serial:016x}{i:048x}"),
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            })
        })
        .collect();
    state.write(pods, namespace_of(pod), name_of(pod), |pod| {
        if let Some(status) = child(pod, "status") {
            status.insert("phase".into(), json!("Running"));
            status.insert("startTime".into(), json!(now));
            status.insert("hostIP".into(), json!(host_ip));
            status.insert("hostIPs".into(), json!([{"ip": host_ip}]));
            status.insert("podIP".into(), json!(pod_ip));
            status.insert("podIPs".into(), json!([{"ip": pod_ip}]));
            status.insert("containerStatuses".into(), json!(containers));
        }
        for kind in [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ] {
            set_condition(pod, json!({"type": kind, "status": "True"}), &now);
        }
    })?;
    Ok(())
}

/// Pod garbage collection: pods bound to nodes that no longer exist are deleted.
pub(crate) fn gc_orphaned_pods(state: &mut State) -> Result<Vec<PodKey>> {
    let (pods_rt, nodes_rt) = kinds(state)?;
    let orphans: Vec<PodKey> = state
        .objects(&pods_rt, None)
        .filter(|p| {
            let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
            !node.is_empty() && state.lookup(&nodes_rt, "", node).is_none()
        })
        .map(PodKey::of)
        .collect();
    for key in &orphans {
        state.delete(&pods_rt, &key.namespace, &key.name, &Value::Null)?;
    }
    Ok(orphans)
}

/// A private address derived from a serial, unique enough for a test cluster.
fn ip_from(serial: u64, first: u8) -> String {
    let b = serial.to_be_bytes();
    format!("{first}.{}.{}.{}", b[5], b[6], b[7].max(1))
}
