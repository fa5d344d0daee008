//! Which resources the fake serves, and how each behaves: scope, status subresource, whether it is
//! a built-in type (decoded through k8s-openapi) or a custom resource (kept as it came).

use k8s_openapi::api::{apps, core, events, policy, storage};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::{GroupKind, GroupResource};

/// Decodes a built-in object through its typed k8s-openapi struct and back, which rejects wrong
/// field types and drops unknown fields as the real API server does for built-in types.
pub(crate) type Normalize = fn(Value) -> Result<Value, serde_json::Error>;

/// One served resource, as the API server's discovery describes it.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    /// Writes to the main resource ignore `status`, and `/status` writes change only `status`.
    pub status_subresource: bool,
    /// Served from a CRD: no strategic merge patch, `resourceVersion` required on update, list
    /// items keep `apiVersion`/`kind`.
    pub custom: bool,
    /// `metadata.generation` starts at 1 and grows on every change outside metadata and status.
    pub tracks_generation: bool,
    /// Field selectors accepted besides `metadata.name` (and `metadata.namespace` if namespaced).
    pub field_labels: Vec<String>,
    pub(crate) normalize: Option<Normalize>,
}

impl ResourceType {
    /// A custom resource served from a CRD with a status subresource, as Karpenter's CRDs are.
    pub fn custom(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            namespaced,
            status_subresource: true,
            custom: true,
            tracks_generation: true,
            field_labels: Vec::new(),
            normalize: None,
        }
    }

    fn builtin<K: Serialize + DeserializeOwned>(
        group: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        field_labels: &[&str],
    ) -> Self {
        ResourceType {
            custom: false,
            field_labels: field_labels.iter().map(|f| f.to_string()).collect(),
            normalize: Some(normalize_via::<K>),
            ..ResourceType::custom(group, "v1", kind, plural, namespaced)
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name tests use to address this resource: `pods`, `nodepools.karpenter.sh`.
    pub fn key(&self) -> String {
        self.group_resource().to_string()
    }

    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    pub fn group_kind(&self) -> GroupKind {
        GroupKind {
            group: self.group.clone(),
            kind: self.kind.clone(),
        }
    }

    pub(crate) fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }

    pub(crate) fn is_pods(&self) -> bool {
        self.is("", "pods")
    }

    pub(crate) fn is_nodes(&self) -> bool {
        self.is("", "nodes")
    }

    pub(crate) fn is_namespaces(&self) -> bool {
        self.is("", "namespaces")
    }

    pub(crate) fn is_pdbs(&self) -> bool {
        self.is("policy", "poddisruptionbudgets")
    }

    /// Subresources served besides the object itself.
    pub(crate) fn subresources(&self) -> Vec<&'static str> {
        let mut subs = Vec::new();
        if self.status_subresource {
            subs.push("status");
        }
        if self.is_pods() {
            subs.extend(["eviction", "binding"]);
        }
        subs
    }
}

fn normalize_via<K: Serialize + DeserializeOwned>(value: Value) -> Result<Value, serde_json::Error> {
    let typed: K = serde_json::from_value(value)?;
    let mut value = serde_json::to_value(typed)?;
    drop_empty_lists(&mut value);
    Ok(value)
}

/// Go's `omitempty` leaves empty lists out of what the API server stores and returns; the typed
/// round trip would keep them as `[]`.
fn drop_empty_lists(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !matches!(v, Value::Array(items) if items.is_empty()));
            map.values_mut().for_each(drop_empty_lists);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty_lists),
        _ => {}
    }
}

/// The served resources. Starts with the built-ins and Karpenter's CRDs; tests may add more.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    pub fn with_defaults() -> Self {
        let mut namespaces = ResourceType::builtin::<core::v1::Namespace>(
            "",
            "Namespace",
            "namespaces",
            false,
            &["status.phase"],
        );
        namespaces.tracks_generation = false;
        let mut nodes =
            ResourceType::builtin::<core::v1::Node>("", "Node", "nodes", false, &["spec.unschedulable"]);
        nodes.tracks_generation = false;
        let pods = ResourceType::builtin::<core::v1::Pod>(
            "",
            "Pod",
            "pods",
            true,
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
        );
        let mut core_events = ResourceType::builtin::<core::v1::Event>(
            "",
            "Event",
            "events",
            true,
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        );
        core_events.status_subresource = false;
        core_events.tracks_generation = false;
        let mut new_events =
            ResourceType::builtin::<events::v1::Event>("events.k8s.io", "Event", "events", true, &[]);
        new_events.status_subresource = false;
        new_events.tracks_generation = false;

        Registry {
            types: vec![
                namespaces,
                nodes,
                pods,
                core_events,
                new_events,
                ResourceType::builtin::<apps::v1::DaemonSet>("apps", "DaemonSet", "daemonsets", true, &[]),
                ResourceType::builtin::<apps::v1::Deployment>("apps", "Deployment", "deployments", true, &[]),
                ResourceType::builtin::<policy::v1::PodDisruptionBudget>(
                    "policy",
                    "PodDisruptionBudget",
                    "poddisruptionbudgets",
                    true,
                    &[],
                ),
                ResourceType::builtin::<core::v1::PersistentVolumeClaim>(
                    "",
                    "PersistentVolumeClaim",
                    "persistentvolumeclaims",
                    true,
                    &[],
                ),
                ResourceType::builtin::<core::v1::PersistentVolume>(
                    "",
                    "PersistentVolume",
                    "persistentvolumes",
                    false,
                    &[],
                ),
                ResourceType::builtin::<storage::v1::StorageClass>(
                    "storage.k8s.io",
                    "StorageClass",
                    "storageclasses",
                    false,
                    &[],
                ),
                ResourceType::custom("karpenter.sh", "v1", "NodePool", "nodepools", false),
                ResourceType::custom("karpenter.sh", "v1", "NodeClaim", "nodeclaims", false),
                ResourceType::custom("karpenter.k8s.aws", "v1", "EC2NodeClass", "ec2nodeclasses", false),
            ],
        }
    }

    /// Adds a resource, or replaces the one with the same group, version and plural.
    pub fn add(&mut self, resource: ResourceType) {
        self.types.retain(|t| {
            !(t.group == resource.group && t.version == resource.version && t.plural == resource.plural)
        });
        self.types.push(resource);
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// Finds by the name tests use: `pods`, `nodepools.karpenter.sh`.
    pub fn find_key(&self, key: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.key() == key)
    }

    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// Served `(group, version)` pairs, in first-seen order.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for t in &self.types {
            let gv = (t.group.clone(), t.version.clone());
            if !seen.contains(&gv) {
                seen.push(gv);
            }
        }
        seen
    }
}
