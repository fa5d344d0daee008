//! Reading manifest files and directories, and turning them into a scheduling round.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1 as k8s;
use nodewright_core::api::{self, ConfigObject, Ec2NodeClass, NodePool};
use nodewright_core::assemble::{UnusablePool, pair_pools, split_pods};
use nodewright_core::catalog::{NodeSettings, embedded};
use nodewright_core::pod::{Node, Pod};
use nodewright_core::scheduler::{self, Input, Plan, Unschedulable};
use nodewright_core::volumes::Volumes;
use serde_json::Value;

use crate::decode::decode;
use crate::error::{Error, Result};
use crate::{claim_from_k8s, node_from_k8s, pod_from_k8s, storage_class_from_k8s, volume_from_k8s, workload};

/// Everything read from a set of manifests, converted into the core's model.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Pods in the order read: Pod objects, and the pods workloads expand into.
    pub pods: Vec<Pod>,
    /// One template pod per DaemonSet.
    pub daemonsets: Vec<Pod>,
    pub nodes: Vec<Node>,
    /// Labels of the Namespace objects read (pod affinity namespace selectors match them).
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    pub nodepools: Vec<NodePool>,
    pub nodeclasses: Vec<Ec2NodeClass>,
    /// PersistentVolumeClaims, PersistentVolumes and StorageClasses: where pods' volumes let
    /// them run.
    pub volumes: Volumes,
    /// Documents read but not used, each with why.
    pub warnings: Vec<Warning>,
    /// `Kind namespace/name` of every object read, to catch one defined twice.
    seen: BTreeSet<String>,
}

/// A document skipped because the planner has no use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    /// Counts from 1, empty documents not counted.
    pub document: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} document {}: {}",
            self.file.display(),
            self.document,
            self.message
        )
    }
}

/// Reads manifests from files and directories.
///
/// A directory is read recursively, taking `*.yaml`, `*.yml` and `*.json` in path order; a file
/// named directly is read whatever its extension, and a file reached twice is read once. Each
/// file may hold many YAML documents, and a document may be a `kind: List` (or `PodList`, …).
///
/// Pods, Deployments, ReplicaSets, StatefulSets, Jobs, DaemonSets, Nodes, Namespaces,
/// PersistentVolumeClaims, PersistentVolumes, StorageClasses, NodePools and EC2NodeClasses are
/// converted strictly: an unknown field or a bad value is an error naming
/// the file, the document and the field. Any other kind (Services, ConfigMaps, …, which a real
/// app directory holds) is skipped with a [`Warning`], as are pods held back by scheduling gates.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Manifests> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files)?;
    }
    let mut read = BTreeSet::new();
    let mut out = Manifests::default();
    for file in files {
        let canonical = std::fs::canonicalize(&file).map_err(|source| io(&file, source))?;
        if !read.insert(canonical) {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|source| io(&file, source))?;
        out.add_yaml(&text, &file)?;
    }
    Ok(out)
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| io(path, source))?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut found = Vec::new();
    walk(path, &mut found)?;
    found.sort();
    out.extend(found);
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| io(dir, source))?;
    for entry in entries {
        let path = entry.map_err(|source| io(dir, source))?.path();
        let meta = std::fs::metadata(&path).map_err(|source| io(&path, source))?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The kinds converted, with the apiVersion each must have.
const KINDS: &[(&str, &str)] = &[
    ("Pod", "v1"),
    ("Node", "v1"),
    ("Namespace", "v1"),
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"),
    ("Job", "batch/v1"),
    ("PersistentVolumeClaim", "v1"),
    ("PersistentVolume", "v1"),
    ("StorageClass", "storage.k8s.io/v1"),
    ("NodePool", api::NODEPOOL_API_VERSION),
    ("EC2NodeClass", api::EC2NODECLASS_API_VERSION),
];

impl Manifests {
    /// Adds every document of one file's text (YAML or JSON); `file` names it in errors.
    pub fn add_yaml(&mut self, text: &str, file: &Path) -> Result<()> {
        for (i, document) in crate::yaml::documents(text).into_iter().enumerate() {
            let at = |source: Error| Error::Document {
                file: file.to_path_buf(),
                document: i + 1,
                source: Box::new(source),
            };
            let value = document.map_err(|source| at(Error::Yaml { source }))?;
            let mut warnings = Vec::new();
            self.add_value(&value, &mut warnings).map_err(at)?;
            self.warnings.extend(warnings.into_iter().map(|message| Warning {
                file: file.to_path_buf(),
                document: i + 1,
                message,
            }));
        }
        Ok(())
    }

    fn add_value(&mut self, value: &Value, warnings: &mut Vec<String>) -> Result<()> {
        // A null list item holds nothing.
        if value.is_null() {
            return Ok(());
        }
        let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default();
        let (kind, api_version) = (text("kind"), text("apiVersion"));
        if kind.is_empty() {
            return Err(Error::invalid("document", "kind", "is required"));
        }
        if kind == "List" || kind.strip_suffix("List").is_some_and(is_converted) {
            return self.add_list(value, kind, api_version, warnings);
        }
        let object = describe(kind, value);
        let Some((_, expected)) = KINDS.iter().find(|(k, _)| *k == kind) else {
            warnings.push(format!("skipped {object}: the planner does not use kind {kind}"));
            return Ok(());
        };
        if api_version != *expected {
            return Err(Error::invalid(
                &object,
                "apiVersion",
                format!("{api_version:?} is not supported for {kind} (expected {expected})"),
            ));
        }
        match kind {
            "Pod" => {
                let k8s_pod: k8s::Pod = decode(value, &object)?;
                let gated = k8s_pod
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()));
                let pod = pod_from_k8s(&k8s_pod)?;
                if gated && pod.node_name.is_none() {
                    warnings.push(format!(
                        "skipped {object}: scheduling gates keep it from being scheduled"
                    ));
                    return Ok(());
                }
                self.add_pods(vec![pod])
            }
            "Namespace" => {
                let ns: k8s_openapi::api::core::v1::Namespace = decode(value, &object)?;
                self.claim(&object)?;
                let name = ns.metadata.name.unwrap_or_default();
                self.namespace_labels
                    .insert(name, ns.metadata.labels.unwrap_or_default());
                Ok(())
            }
            "PersistentVolumeClaim" => {
                let pvc = claim_from_k8s(&decode(value, &object)?)?;
                self.claim(&object)?;
                self.volumes.add_claim(pvc);
                Ok(())
            }
            "PersistentVolume" => {
                let pv = volume_from_k8s(&decode(value, &object)?)?;
                self.claim(&object)?;
                self.volumes.add_volume(pv);
                Ok(())
            }
            "StorageClass" => {
                let sc = storage_class_from_k8s(&decode(value, &object)?)?;
                self.claim(&object)?;
                self.volumes.add_class(sc);
                Ok(())
            }
            "Node" => {
                let node = node_from_k8s(&decode(value, &object)?)?;
                self.claim(&object)?;
                self.nodes.push(node);
                Ok(())
            }
            "Deployment" => self.add_workload(
                &object,
                workload::pods_from_deployment(&decode::<Deployment>(value, &object)?)?,
            ),
            "ReplicaSet" => self.add_workload(
                &object,
                workload::pods_from_replica_set(&decode::<ReplicaSet>(value, &object)?)?,
            ),
            "StatefulSet" => self.add_workload(
                &object,
                workload::pods_from_stateful_set(&decode::<StatefulSet>(value, &object)?)?,
            ),
            "Job" => self.add_workload(&object, workload::pods_from_job(&decode::<Job>(value, &object)?)?),
            "DaemonSet" => {
                let pod = workload::daemonset_pod(&decode::<DaemonSet>(value, &object)?)?;
                self.claim(&object)?;
                self.daemonsets.push(pod);
                Ok(())
            }
            _ => self.add_config(value, &object),
        }
    }

    /// A `kind: List` holds whole objects; a typed list (`PodList`) may leave out each item's
    /// kind and apiVersion, which then come from the list.
    fn add_list(
        &mut self,
        value: &Value,
        kind: &str,
        api_version: &str,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let items = match value.get("items") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(Error::invalid(kind, "items", "is not a list")),
        };
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        for (index, item) in items.iter().enumerate() {
            let mut item = item.clone();
            if let (Some(k), Value::Object(map)) = (item_kind, &mut item) {
                map.entry("kind").or_insert_with(|| Value::String(k.to_string()));
                map.entry("apiVersion")
                    .or_insert_with(|| Value::String(api_version.to_string()));
            }
            self.add_value(&item, warnings)
                .map_err(|source| Error::ListItem {
                    index,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    fn add_config(&mut self, value: &Value, object: &str) -> Result<()> {
        let parsed = api::parse_config_object(value)?;
        self.claim(object)?;
        match parsed {
            ConfigObject::NodePool(np) => self.nodepools.push(*np),
            ConfigObject::Ec2NodeClass(nc) => self.nodeclasses.push(*nc),
        }
        Ok(())
    }

    fn add_workload(&mut self, object: &str, pods: Vec<Pod>) -> Result<()> {
        self.claim(object)?;
        self.add_pods(pods)
    }

    fn add_pods(&mut self, pods: Vec<Pod>) -> Result<()> {
        for pod in &pods {
            self.claim(&format!("Pod {}", pod.key()))?;
        }
        self.pods.extend(pods);
        Ok(())
    }

    fn claim(&mut self, object: &str) -> Result<()> {
        if self.seen.insert(object.to_string()) {
            Ok(())
        } else {
            Err(Error::Duplicate {
                object: object.to_string(),
            })
        }
    }

    /// The plan for these manifests: [`Self::to_input`] scheduled, with the pods that wait for
    /// a volume listed as unschedulable first.
    pub fn plan(&self) -> Result<Plan> {
        let input = self.to_input()?;
        let mut plan = scheduler::schedule(&input);
        let mut unschedulable = self.volume_waits();
        unschedulable.append(&mut plan.unschedulable);
        plan.unschedulable = unschedulable;
        Ok(plan)
    }

    /// Unbound pods that cannot be planned until a volume is there (see
    /// [`nodewright_core::volumes`]), each with why.
    pub fn volume_waits(&self) -> Vec<Unschedulable> {
        self.pods
            .iter()
            .filter(|p| !p.terminal && p.node_name.is_none() && !p.is_daemon())
            .filter_map(|p| {
                let why = self.volumes.requirements(p).err()?;
                Some(Unschedulable {
                    pod: p.key(),
                    reason: why.0,
                })
            })
            .collect()
    }

    /// The scheduling round these manifests describe, at time 0 with nothing in flight.
    ///
    /// Nodes carry the pods bound to them (`spec.nodeName`); unbound pods are pending, except
    /// DaemonSet and static pods, which the DaemonSets' template pods stand for, and pods
    /// waiting for a volume. Finished pods
    /// hold nothing and are left out. Each NodePool is paired with its EC2NodeClass and the
    /// embedded catalog sized for that class's settings.
    pub fn to_input(&self) -> Result<Input> {
        let split = split_pods(self.nodes.clone(), self.pods.iter().cloned());
        if let Some(pod) = split.on_unknown_nodes.first() {
            return Err(Error::UnknownNode {
                pod: format!("Pod {}", pod.key()),
                node: pod.node_name.clone().unwrap_or_default(),
            });
        }
        let mut pending = split.pending;
        // Pods take their volumes' zones; those waiting for a volume are left out (see
        // `volume_waits`).
        nodewright_core::volumes::constrain_pending(&self.volumes, &mut pending);
        let pairing = pair_pools(&self.nodepools, &self.nodeclasses);
        if let Some(unusable) = pairing.unusable.first() {
            return Err(match unusable {
                UnusablePool::MissingNodeClass { nodepool, nodeclass } => Error::MissingNodeClass {
                    nodepool: nodepool.clone(),
                    nodeclass: nodeclass.clone(),
                },
                UnusablePool::ForeignNodeClass { .. } => Error::UnusablePool(unusable.clone()),
            });
        }
        let mut catalogs = BTreeMap::new();
        for nodeclass in pairing.nodeclasses() {
            let catalog = NodeSettings::for_nodeclass(nodeclass)
                .and_then(|settings| embedded::catalog(&settings))
                .map_err(|source| Error::Catalog {
                    nodeclass: nodeclass.name().to_string(),
                    source,
                })?;
            catalogs.insert(nodeclass.name().to_string(), Arc::new(catalog.types));
        }
        Ok(Input {
            pending,
            nodes: split.nodes,
            in_flight: Vec::new(),
            daemonsets: self.daemonsets.clone(),
            pools: pairing.into_pool_inputs(&catalogs),
            unavailable: Default::default(),
            namespace_labels: self.namespace_labels.clone(),
            now: 0,
        })
    }
}

fn is_converted(kind: &str) -> bool {
    KINDS.iter().any(|(k, _)| *k == kind)
}

/// `Kind namespace/name` for the namespaced kinds converted (namespace defaulting to
/// `default`), `Kind name` for cluster-scoped ones; for kinds the planner skips, the namespace
/// only when the document gives one, since their scope is not known here.
fn describe(kind: &str, value: &Value) -> String {
    let meta = |key: &str| {
        value
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (name, namespace) = (meta("name"), meta("namespace"));
    match kind {
        "Node" | "NodePool" | "EC2NodeClass" | "PersistentVolume" | "StorageClass" => {
            format!("{kind} {name}")
        }
        _ if is_converted(kind) => {
            let namespace = if namespace.is_empty() {
                "default"
            } else {
                namespace
            };
            format!("{kind} {namespace}/{name}")
        }
        _ if namespace.is_empty() => format!("{kind} {name}"),
        _ => format!("{kind} {namespace}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::chain;

    const NODEPOOL: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

    fn read(text: &str) -> Result<Manifests> {
        let mut m = Manifests::default();
        m.add_yaml(text, Path::new("app.yaml"))?;
        Ok(m)
    }

    fn error(text: &str) -> String {
        chain(&read(text).expect_err("rejected"))
    }

    fn keys(pods: &[Pod]) -> Vec<String> {
        pods.iter().map(Pod::key).collect()
    }

    #[test]
    fn pods_are_planned_where_their_volumes_are_and_wait_for_volumes_not_yet_bound() {
        let text = format!("{NODEPOOL}\n---\n{}", include_str!("../fixtures/volumes.yaml"));
        let m = read(&text).expect("reads");
        let plan = m.plan().expect("plans");
        let zones_of = |pod: &str| -> Vec<String> {
            let claim = plan
                .new_claims
                .iter()
                .find(|c| c.pods.iter().any(|p| p == pod))
                .unwrap_or_else(|| panic!("{pod} is planned: {plan:?}"));
            claim.zones.clone()
        };
        // db-0's claim is bound to a volume in us-east-1b.
        assert_eq!(zones_of("shop/db-0"), ["us-east-1b"]);
        // db-1 has no claim yet: its template's class allows 1a and 1b.
        for z in zones_of("shop/db-1") {
            assert!(z == "us-east-1a" || z == "us-east-1b", "{z}");
        }
        // The Immediate class binds first; the pod waits and says why.
        let [waiting] = plan.unschedulable.as_slice() else {
            panic!("one pod waits: {:?}", plan.unschedulable);
        };
        assert_eq!(waiting.pod, "shop/reports");
        assert!(waiting.reason.contains("Immediate"), "{}", waiting.reason);
    }

    #[test]
    fn a_bound_pod_lands_on_its_node_and_unbound_pods_are_pending() {
        let m = read(include_str!("../fixtures/cluster.yaml")).expect("reads");
        let input = m.to_input().expect("input");
        let [node] = input.nodes.as_slice() else {
            panic!("one node, got {:?}", input.nodes);
        };
        assert_eq!(node.node.name, "ip-10-0-1-10.ec2.internal");
        assert_eq!(
            keys(&node.pods),
            ["shop/web-7c9d-abcde", "kube-system/aws-node-x7k2p"]
        );
        assert_eq!(node.pods[0].requests.cpu(), 1000);
        // The finished pod holds nothing, the unbound DaemonSet pod is stood for by its template.
        assert_eq!(keys(&input.pending), ["shop/report"]);
        assert_eq!(keys(&input.daemonsets), ["kube-system/aws-node"]);
        assert_eq!(input.now, 0);
        // Namespaces are read for their labels (pod affinity namespace selectors).
        assert!(
            input.namespace_labels.contains_key("shop"),
            "{:?}",
            input.namespace_labels
        );
        let warnings: Vec<String> = m.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "app.yaml document 2: skipped Service shop/web: the planner does not use kind Service",
                "app.yaml document 4: skipped Pod shop/gated: scheduling gates keep it from being scheduled",
            ]
        );
    }

    #[test]
    fn a_deployment_of_three_expands_to_three_pending_pods() {
        let m = read(include_str!("../fixtures/deployment.yaml")).expect("reads");
        let input = m.to_input().expect("input");
        assert_eq!(keys(&input.pending), ["shop/web-0", "shop/web-1", "shop/web-2"]);
    }

    #[test]
    fn pools_are_paired_with_their_node_class_and_its_catalog_built_once() {
        let second = NODEPOOL
            .split("\n---")
            .next()
            .expect("the NodePool")
            .replace("name: default\nspec:", "name: batch\nspec:");
        let m = read(&format!("{NODEPOOL}\n---\n{second}")).expect("reads");
        let input = m.to_input().expect("input");
        let [a, b] = input.pools.as_slice() else {
            panic!("two pools, got {}", input.pools.len());
        };
        assert_eq!((a.nodepool.name(), b.nodepool.name()), ("default", "batch"));
        assert_eq!(a.nodeclass.name(), "default");
        assert!(a.instance_types.iter().any(|t| t.name == "m5.large"));
        assert!(Arc::ptr_eq(&a.instance_types, &b.instance_types));
    }

    #[test]
    fn an_unknown_field_in_a_nodepool_is_an_error_naming_it() {
        let err = error(&NODEPOOL.replace("expireAfter: 720h", "expireAftr: 720h"));
        assert!(
            err.starts_with(
                "app.yaml document 1: NodePool default: spec.template.spec.expireAftr: unknown field `expireAftr`"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_field_in_a_workload_is_an_error_naming_its_path() {
        let yaml = include_str!("../fixtures/deployment.yaml").replace("resources:", "resourcse:");
        assert_eq!(
            error(&format!("kind: ConfigMap\n---\n{yaml}")),
            "app.yaml document 2: Deployment shop/web: unknown field \"spec.template.spec.containers[0].resourcse\""
        );
    }

    #[test]
    fn a_malformed_quantity_names_the_file_document_pod_and_value() {
        let yaml = include_str!("../fixtures/limits-as-requests.yaml").replace("512Mi", "512MB");
        let err = error(&yaml);
        assert!(
            err.starts_with(
                "app.yaml document 1: Pod default/capped: spec.containers[0].resources.requests.memory: "
            ),
            "{err}"
        );
        assert!(err.contains("\"512MB\""), "{err}");
    }

    #[test]
    fn list_items_are_named_by_index_in_errors() {
        let yaml = include_str!("../fixtures/cluster.yaml").replace("cpu: 1\n", "cpu: one\n");
        let err = error(&yaml);
        assert!(
            err.starts_with("app.yaml document 3: items[1]: Pod shop/web-7c9d-abcde: spec.containers[0]"),
            "{err}"
        );
    }

    #[test]
    fn a_pool_without_its_node_class_is_an_error() {
        let pool = NODEPOOL.split("\n---").next().expect("the NodePool");
        let err = read(pool).expect("reads").to_input().expect_err("no class");
        assert_eq!(
            chain(&err),
            "NodePool default refers to EC2NodeClass \"default\", which no manifest defines"
        );
    }

    #[test]
    fn a_pool_whose_node_class_ref_names_another_kind_is_an_error() {
        let text = NODEPOOL.replace(
            "kind: EC2NodeClass\n        name: default",
            "kind: AKSNodeClass\n        name: default",
        );
        let err = read(&text).expect("reads").to_input().expect_err("foreign class");
        assert_eq!(
            chain(&err),
            "NodePool default: nodeClassRef refers to karpenter.k8s.aws AKSNodeClass, but only \
             karpenter.k8s.aws EC2NodeClass is supported"
        );
    }

    #[test]
    fn a_pod_bound_to_an_undefined_node_is_an_error() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: gone\n  containers: [{name: c}]\n";
        let err = read(yaml).expect("reads").to_input().expect_err("no node");
        assert_eq!(
            chain(&err),
            "Pod default/p is bound to node \"gone\", which no manifest defines"
        );
    }

    #[test]
    fn malformed_documents_are_errors_naming_the_document() {
        let deployment = include_str!("../fixtures/deployment.yaml");
        let cases = [
            (
                format!("{deployment}---\n{deployment}"),
                "app.yaml document 2: Deployment shop/web is defined more than once".to_string(),
            ),
            (
                format!("{deployment}---\nkind: Pod\napiVersion: v1\nmetadata: {{name: web-1, namespace: shop}}\nspec: {{containers: [{{name: c}}]}}\n"),
                "app.yaml document 2: Pod shop/web-1 is defined more than once".into(),
            ),
            (
                deployment.replace("apps/v1", "apps/v1beta1"),
                "app.yaml document 1: Deployment shop/web: apiVersion: \"apps/v1beta1\" is not supported for Deployment (expected apps/v1)".into(),
            ),
            (
                "metadata: {name: x}\n".into(),
                "app.yaml document 1: document: kind: is required".into(),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(error(&yaml), expected);
        }
        let err = error("kind: ConfigMap\n---\nkind: [unclosed\n");
        assert!(err.starts_with("app.yaml document 2: not valid YAML: "), "{err}");
    }

    #[test]
    fn directories_are_read_recursively_in_path_order_and_each_file_once() {
        let dir = std::env::temp_dir().join(format!("nodewright-manifests-{}", std::process::id()));
        let nested = dir.join("b");
        std::fs::create_dir_all(&nested).expect("temp dir");
        let pod = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c}}]}}\n"
            )
        };
        std::fs::write(dir.join("c.yml"), pod("third")).expect("write");
        std::fs::write(nested.join("a.json"), r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"second"},"spec":{"containers":[{"name":"c"}]}}"#).expect("write");
        std::fs::write(dir.join("a.yaml"), pod("first")).expect("write");
        std::fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
        let m = read_manifests(&[dir.clone(), dir.join("a.yaml")]);
        let missing = read_manifests(&[dir.join("absent.yaml")]);
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(
            keys(&m.expect("reads").pods),
            ["default/first", "default/second", "default/third"]
        );
        let err = chain(&missing.expect_err("absent"));
        assert!(
            err.starts_with("cannot read ") && err.contains("absent.yaml"),
            "{err}"
        );
    }
}
