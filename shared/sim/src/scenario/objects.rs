//! The manifests a scenario applies: NodePools, EC2NodeClasses, DaemonSets,
//! PodDisruptionBudgets and StorageClasses, inline or included from files.

use nodewright_core::api::{self, ConfigObject, Ec2NodeClass, NodePool};
use nodewright_core::pdb::PodDisruptionBudget;
use nodewright_core::ports::DaemonSet;
use nodewright_core::volumes::StorageClass;

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
        entry: &serde_yaml::Value,
        file: &str,
        field: &str,
        include: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<()> {
        let Some(map) = entry.as_mapping() else {
            return Err(Error::scenario(
                file,
                field,
                "expected a manifest or {include: path}",
            ));
        };
        let Some(path) = map.get("include") else {
            let text = serde_yaml::to_string(entry).map_err(|source| Error::ScenarioSyntax {
                file: file.to_string(),
                source,
            })?;
            return self.add_document(&text, file, field);
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
        for (i, doc) in documents(&text).iter().enumerate() {
            self.add_document(doc, file, &format!("{field} ({path}, document {})", i + 1))?;
        }
        Ok(())
    }

    fn add_document(&mut self, text: &str, file: &str, field: &str) -> Result<()> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| Error::ScenarioSyntax {
                file: format!("{file}: {field}"),
                source,
            })?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let config = |source| Error::Config {
            file: format!("{file}: {field}"),
            source,
        };
        match kind {
            "NodePool" | "EC2NodeClass" => match api::parse_config_object(text, kind).map_err(config)? {
                ConfigObject::NodePool(p) => self.nodepools.push(*p),
                ConfigObject::Ec2NodeClass(c) => self.nodeclasses.push(*c),
            },
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

/// The documents of a multi-document YAML file, without the empty ones.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|d| {
        d.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    docs
}

/// A Kubernetes object of `api_version`, as k8s-openapi reads it.
fn kube_object<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    api_version: &str,
    file: &str,
    field: &str,
) -> Result<T> {
    if value.get("apiVersion").and_then(|v| v.as_str()) != Some(api_version) {
        return Err(Error::scenario(
            file,
            format!("{field}.apiVersion"),
            format!("expected {api_version}"),
        ));
    }
    serde_yaml::from_value(value).map_err(|source| Error::ScenarioSyntax {
        file: format!("{file}: {field}"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_yaml_and_drops_empty_documents() {
        let docs = documents("# header\n---\na: 1\n---\n# only a comment\n--- \nb: 2\n");
        assert_eq!(docs, vec!["a: 1\n".to_string(), "b: 2\n".to_string()]);
    }
}
