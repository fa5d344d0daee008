//! The manifests a scenario applies: NodePools, EC2NodeClasses, DaemonSets,
//! PodDisruptionBudgets and StorageClasses, inline or included from files.

use nodewright_core::api::{self, ConfigObject, Ec2NodeClass, NodePool};
use nodewright_core::pdb::PodDisruptionBudget;
use nodewright_core::ports::DaemonSet;
use nodewright_core::volumes::StorageClass;
use nodewright_manifests::yaml;
use serde_json::Value;

use crate::error::{Error, Result};

/// Manifests: NodePools, EC2NodeClasses, DaemonSets, PodDisruptionBudgets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Objects {
    pub nodepools: Vec<NodePool>,
    pub nodeclasses: Vec<Ec2NodeClass>,
    pub daemonsets: Vec<DaemonSet>,
    pub pdbs: Vec<PodDisruptionBudget>,
    pub storage_classes: Vec<StorageClass>,
}

impl Objects {
    /// `Kind name` of each object, for the timeline.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .nodepools
            .iter()
            .map(|p| format!("NodePool {}", p.name()))
            .collect();
        out.extend(
            self.nodeclasses
                .iter()
                .map(|c| format!("EC2NodeClass {}", c.name())),
        );
        out.extend(
            self.daemonsets
                .iter()
                .map(|d| format!("DaemonSet {}/{}", d.namespace, d.name)),
        );
        out.extend(
            self.pdbs
                .iter()
                .map(|b| format!("PodDisruptionBudget {}/{}", b.namespace, b.name)),
        );
        out.extend(
            self.storage_classes
                .iter()
                .map(|c| format!("StorageClass {}", c.name)),
        );
        out
    }

    pub(super) fn is_empty(&self) -> bool {
        self.nodepools.is_empty()
            && self.nodeclasses.is_empty()
            && self.daemonsets.is_empty()
            && self.pdbs.is_empty()
            && self.storage_classes.is_empty()
    }
}

impl Objects {
    /// One entry of `objects`: `{include: path}` or an inline manifest.
    pub(super) fn add_entry(
        &mut self,
        entry: &Value,
        file: &str,
        field: &str,
        include: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<()> {
        let Some(map) = entry.as_object() else {
            return Err(Error::scenario(
                file,
                field,
                "expected a manifest or {include: path}",
            ));
        };
        let Some(path) = map.get("include") else {
            return self.add_document(entry, file, field);
        };
        let Some(path) = path.as_str().filter(|_| map.len() == 1) else {
            return Err(Error::scenario(
                file,
                field,
                "include takes a path and nothing beside it",
            ));
        };
        let text = include(path).map_err(|source| Error::Include {
            file: file.to_string(),
            path: path.to_string(),
            source,
        })?;
        for (i, document) in yaml::documents(&text).into_iter().enumerate() {
            let field = format!("{field} ({path}, document {})", i + 1);
            let document = document.map_err(|source| Error::ScenarioSyntax {
                file: format!("{file}: {field}"),
                source,
            })?;
            self.add_document(&document, file, &field)?;
        }
        Ok(())
    }

    fn add_document(&mut self, value: &Value, file: &str, field: &str) -> Result<()> {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "NodePool" | "EC2NodeClass" => {
                match api::parse_config_object(value).map_err(|source| Error::Config {
                    file: format!("{file}: {field}"),
                    source,
                })? {
                    ConfigObject::NodePool(p) => self.nodepools.push(*p),
                    ConfigObject::Ec2NodeClass(c) => self.nodeclasses.push(*c),
                }
            }
            // Kubernetes objects are read as `nodewright plan` and the functions read them.
            "DaemonSet" => {
                let manifest: k8s_openapi::api::apps::v1::DaemonSet =
                    kube_object(value, "apps/v1", file, field)?;
                let pod = nodewright_manifests::workload::daemonset_pod(&manifest)
                    .map_err(|e| Error::scenario(file, field, e.to_string()))?;
                self.daemonsets.push(DaemonSet {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    pod,
                });
            }
            "PodDisruptionBudget" => {
                let manifest: k8s_openapi::api::policy::v1::PodDisruptionBudget =
                    kube_object(value, "policy/v1", file, field)?;
                let pdb = nodewright_manifests::pdb_from_k8s(&manifest)
                    .map_err(|e| Error::scenario(file, field, e.to_string()))?;
                self.pdbs.push(pdb);
            }
            "StorageClass" => {
                let manifest: k8s_openapi::api::storage::v1::StorageClass =
                    kube_object(value, "storage.k8s.io/v1", file, field)?;
                let class = nodewright_manifests::storage_class_from_k8s(&manifest)
                    .map_err(|e| Error::scenario(file, field, e.to_string()))?;
                self.storage_classes.push(class);
            }
            other => {
                return Err(Error::scenario(
                    file,
                    format!("{field}.kind"),
                    format!(
                        "{other:?} is not supported (NodePool, EC2NodeClass, DaemonSet, \
                         PodDisruptionBudget or StorageClass)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A Kubernetes object of `api_version`, as k8s-openapi reads it.
fn kube_object<T: serde::de::DeserializeOwned>(
    value: &Value,
    api_version: &str,
    file: &str,
    field: &str,
) -> Result<T> {
    if value.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return Err(Error::scenario(
            file,
            format!("{field}.apiVersion"),
            format!("expected {api_version}"),
        ));
    }
    T::deserialize(value).map_err(|e| Error::scenario(file, field, e.to_string()))
}
