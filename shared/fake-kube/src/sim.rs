//! The kubelet and kube-scheduler for end-to-end tests: nodes register Ready, pending pods get
//! bound where they fit and start, and pods that fit nowhere are marked
//! `PodScheduled=False, reason=Unschedulable` as the real scheduler marks them.
//!
//! The scheduler is the simulator's ([`nodewright_sim::kube_scheduler`], whose documentation
//! says what it checks and what it leaves out), over pods and nodes read as the kube adapter
//! reads them ([`nodewright_manifests`]): taints, node selection, resources, required topology
//! spread and pod (anti-)affinity, and the volumes' zones. Like the real scheduler it prefers
//! the least allocated node; this fake used to take the first that fit by name. No controller
//! provisions volumes: a test stores the volumes its claims are bound to.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node as K8sNode, Pod as K8sPod, Taint};
use nodewright_core::pod::{Node, Pod};
use nodewright_core::volumes::Volumes;
use nodewright_manifests::{
    claim_from_k8s, node_from_k8s, pod_from_k8s, storage_class_from_k8s, volume_from_k8s,
};
use nodewright_sim::kube_scheduler;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::object::{child, is_deleting, name_of, namespace_of, set_condition};
use crate::pods;
use crate::registry::ResourceType;
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
    pub bound: Vec<Bound>,
    /// Pods already bound (by a client's binding) that the kubelet started this round.
    pub started: Vec<PodKey>,
    /// Pods that fit no node, with the scheduler's message.
    pub unschedulable: Vec<Refused>,
}

/// A pod the round bound, and its node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bound {
    pub pod: PodKey,
    pub node: String,
}

/// A pod that fits no node, with the scheduler's message (its `PodScheduled` condition's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub pod: PodKey,
    pub message: String,
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

/// A pod as the kube adapter reads it (the one conversion, in the manifests crate).
fn read_pod(pod: &Value) -> std::result::Result<Pod, String> {
    let typed: K8sPod = serde_json::from_value(pod.clone()).map_err(|e| e.to_string())?;
    pod_from_k8s(&typed).map_err(|e| nodewright_core::error::chain(&e))
}

/// The nodes the scheduler sees; one that cannot be read (no allocatable, which the kubelet
/// always reports) takes no pods.
fn read_nodes(nodes: &[Value]) -> BTreeMap<String, Node> {
    nodes
        .iter()
        .filter_map(|n| {
            let typed: K8sNode = serde_json::from_value(n.clone()).ok()?;
            match node_from_k8s(&typed) {
                Ok(node) => Some((node.name.clone(), node)),
                Err(e) => {
                    tracing::warn!(node = name_of(n), error = %nodewright_core::error::chain(&e), "the scheduler skips a node it cannot read");
                    None
                }
            }
        })
        .collect()
}

/// The claims, volumes and classes stored, for the scheduler's volume binding check. There is
/// no provisioner here: a test stores the volumes its claims are bound to.
fn read_volumes(state: &State) -> Volumes {
    fn read<K: DeserializeOwned, T>(
        state: &State,
        resource: &str,
        convert: impl Fn(&K) -> nodewright_manifests::Result<T>,
    ) -> Vec<T> {
        let Some(rt) = state.resource(resource) else {
            return Vec::new();
        };
        state
            .objects(&rt, None)
            .filter_map(|o| serde_json::from_value::<K>(o.clone()).ok())
            .filter_map(|k| convert(&k).ok())
            .collect()
    }
    Volumes::new(
        read(state, "persistentvolumeclaims", claim_from_k8s),
        read(state, "persistentvolumes", volume_from_k8s),
        read(state, "storageclasses.storage.k8s.io", storage_class_from_k8s),
    )
}

/// One round of kube-scheduler and kubelet (see [`crate::FakeApiServer::schedule_pending`]).
pub(crate) fn schedule_pending(state: &mut State) -> Result<ScheduleReport> {
    let (pods_rt, nodes_rt) = kinds(state)?;
    let node_objects: Vec<Value> = state.objects(&nodes_rt, None).cloned().collect();
    let pod_objects: Vec<Value> = state.objects(&pods_rt, None).cloned().collect();
    let mut report = ScheduleReport::default();

    // The kubelet starts what a client bound.
    for pod in &pod_objects {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if let Some(node) = node_objects
            .iter()
            .find(|n| !node.is_empty() && name_of(n) == node)
            && pod["status"]["phase"] == "Pending"
            && !is_deleting(pod)
        {
            start(state, &pods_rt, pod, node)?;
            report.started.push(PodKey::of(pod));
        }
    }

    let nodes = read_nodes(&node_objects);
    let bound: Vec<Pod> = pod_objects
        .iter()
        .filter(|p| !p["spec"]["nodeName"].as_str().unwrap_or_default().is_empty())
        .filter_map(|p| match read_pod(p) {
            Ok(pod) => Some(pod),
            Err(e) => {
                tracing::warn!(pod = name_of(p), error = %e, "the scheduler does not count a bound pod it cannot read");
                None
            }
        })
        .collect();
    let mut pending = Vec::new();
    let mut unreadable = Vec::new();
    for object in pod_objects.iter().filter(|p| is_pending_unbound(p)) {
        match read_pod(object) {
            Ok(pod) => pending.push(pod),
            Err(e) => unreadable.push((PodKey::of(object), e)),
        }
    }
    let volumes = read_volumes(state);

    for (pod, placement) in kube_scheduler::schedule(&pending, &nodes, &bound, &volumes) {
        let key = PodKey {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        };
        match placement {
            Ok(node_name) => {
                let bound = pods::assign(
                    state,
                    &pods_rt,
                    &key.namespace,
                    &key.name,
                    &node_name,
                    &Value::Null,
                )?;
                if let Some(node) = node_objects.iter().find(|n| name_of(n) == node_name) {
                    start(state, &pods_rt, &bound, node)?;
                }
                report.bound.push(Bound {
                    pod: key,
                    node: node_name,
                });
            }
            Err(message) => {
                mark_unschedulable(state, &pods_rt, &key, &message)?;
                report.unschedulable.push(Refused { pod: key, message });
            }
        }
    }
    // Admission lets in what the conversion may still refuse; such a pod stays pending, saying why.
    for (key, message) in unreadable {
        mark_unschedulable(state, &pods_rt, &key, &message)?;
        report.unschedulable.push(Refused { pod: key, message });
    }
    Ok(report)
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
