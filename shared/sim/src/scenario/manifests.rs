//! The Kubernetes manifests a scenario may carry besides Karpenter's: PodDisruptionBudgets,
//! StorageClasses and DaemonSets, each read into the core's model.

use std::collections::BTreeMap;

use nodewright_core::api::ObjectMeta;
use nodewright_core::pdb::{Budget, IntOrPercent, PodDisruptionBudget};
use nodewright_core::pod::{LabelSelector, TaintEffect, Toleration, TolerationOperator};
use nodewright_core::quantity::Quantity;
use nodewright_core::requirements::{self, NodeSelectorRequirement, Requirements};
use nodewright_core::resources::Resources;
use nodewright_core::volumes::{StorageClass, VolumeBindingMode};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A `policy/v1 PodDisruptionBudget`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PdbManifest {
    api_version: String,
    metadata: ObjectMeta,
    spec: PdbSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PdbSpec {
    #[serde(default)]
    pub(super) min_available: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(super) max_unavailable: Option<serde_yaml::Value>,
    #[serde(default)]
    pub(super) selector: Option<PdbSelector>,
    /// Accepted unread: the simulator evicts only healthy (bound) pods through budgets.
    #[serde(default, rename = "unhealthyPodEvictionPolicy")]
    pub(super) _unhealthy_pod_eviction_policy: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PdbSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<NodeSelectorRequirement>,
}

impl PdbSpec {
    /// `minAvailable` or `maxUnavailable`, exactly one.
    pub(super) fn budget(&self, file: &str, field: &str) -> Result<Budget> {
        let at = |f: &str| format!("{field}.{f}");
        let amount = |v: &serde_yaml::Value, f: &str| {
            let raw = match v {
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::String(s) => s.clone(),
                _ => String::new(),
            };
            IntOrPercent::parse(&raw).map_err(|e| Error::scenario(file, at(f), e))
        };
        match (&self.min_available, &self.max_unavailable) {
            (Some(v), None) => Ok(Budget::MinAvailable(amount(v, "minAvailable")?)),
            (None, Some(v)) => Ok(Budget::MaxUnavailable(amount(v, "maxUnavailable")?)),
            _ => Err(Error::scenario(
                file,
                field,
                "give exactly one of minAvailable and maxUnavailable",
            )),
        }
    }
}

impl PdbManifest {
    pub(super) fn into_pdb(self, file: &str, field: &str) -> Result<PodDisruptionBudget> {
        let at = |f: &str| format!("{field}.{f}");
        if self.api_version != "policy/v1" {
            return Err(Error::scenario(
                file,
                at("apiVersion"),
                format!("{:?}: expected policy/v1", self.api_version),
            ));
        }
        let budget = self.spec.budget(file, &at("spec"))?;
        let selector = self.spec.selector.unwrap_or_default();
        let mut requirements = requirements::from_selector_requirements(&selector.match_expressions)
            .map_err(|e| Error::scenario(file, at("spec.selector.matchExpressions"), e.to_string()))?;
        for (k, v) in &selector.match_labels {
            requirements.add(k, requirements::Requirement::is_in([v.as_str()]));
        }
        Ok(PodDisruptionBudget {
            namespace: self.metadata.namespace.unwrap_or_else(default_namespace),
            name: self.metadata.name,
            selector: Some(LabelSelector { requirements }),
            budget,
        })
    }
}

/// A `storage.k8s.io/v1 StorageClass`: what decides where its volumes are made.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StorageClassManifest {
    api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: ObjectMeta,
    #[serde(rename = "provisioner")]
    _provisioner: String,
    #[serde(default)]
    volume_binding_mode: Option<String>,
    #[serde(default)]
    allowed_topologies: Vec<TopologyTermSpec>,
    /// Accepted unread: they do not change where a volume can be used.
    #[serde(default, rename = "parameters")]
    _parameters: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "reclaimPolicy")]
    _reclaim_policy: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "allowVolumeExpansion")]
    _allow_volume_expansion: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "mountOptions")]
    _mount_options: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopologyTermSpec {
    #[serde(default)]
    match_label_expressions: Vec<TopologyRequirementSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyRequirementSpec {
    key: String,
    values: Vec<String>,
}

impl StorageClassManifest {
    pub(super) fn into_class(self, file: &str, field: &str) -> Result<StorageClass> {
        let at = |f: &str| format!("{field}.{f}");
        if self.api_version != "storage.k8s.io/v1" {
            return Err(Error::scenario(
                file,
                at("apiVersion"),
                format!("{:?}: expected storage.k8s.io/v1", self.api_version),
            ));
        }
        let binding_mode = match self.volume_binding_mode.as_deref() {
            None | Some("Immediate") => VolumeBindingMode::Immediate,
            Some("WaitForFirstConsumer") => VolumeBindingMode::WaitForFirstConsumer,
            Some(other) => {
                return Err(Error::scenario(
                    file,
                    at("volumeBindingMode"),
                    format!("{other:?}: expected Immediate or WaitForFirstConsumer"),
                ));
            }
        };
        let allowed_topologies = self
            .allowed_topologies
            .iter()
            .map(|t| {
                let mut r = Requirements::new();
                for e in &t.match_label_expressions {
                    r.add(&e.key, requirements::Requirement::is_in(e.values.iter().cloned()));
                }
                r
            })
            .filter(|r| !r.is_empty())
            .collect();
        Ok(StorageClass {
            default: self
                .metadata
                .annotations
                .get("storageclass.kubernetes.io/is-default-class")
                .is_some_and(|v| v == "true"),
            name: self.metadata.name,
            binding_mode,
            allowed_topologies,
        })
    }
}

/// A resource list in scheduler units; negative or unrepresentable amounts are errors.
pub(super) fn resources(list: &BTreeMap<String, Quantity>, file: &str, field: &str) -> Result<Resources> {
    let mut out = Resources::new();
    for (name, q) in list {
        let text = q.to_string();
        if q.is_negative() {
            return Err(Error::scenario(
                file,
                format!("{field}.{name}"),
                format!("{text} is negative"),
            ));
        }
        out.add_named(name, *q, &text)
            .map_err(|e| Error::scenario(file, format!("{field}.{name}"), e.to_string()))?;
    }
    Ok(out)
}

pub(super) fn default_namespace() -> String {
    "default".into()
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum TolerationOperatorSpec {
    Exists,
    Equal,
}

/// A pod toleration as Kubernetes writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TolerationSpec {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    operator: Option<TolerationOperatorSpec>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    effect: Option<TaintEffect>,
    /// Only delays eviction from NoExecute taints, which the simulation never applies.
    #[serde(default, rename = "tolerationSeconds")]
    _toleration_seconds: Option<i64>,
}

impl TolerationSpec {
    pub(super) fn to_toleration(&self, file: &str, field: &str) -> Result<Toleration> {
        let operator = match self.operator.unwrap_or(TolerationOperatorSpec::Equal) {
            TolerationOperatorSpec::Exists => {
                if self.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    return Err(Error::scenario(
                        file,
                        format!("{field}.value"),
                        "must be empty with operator Exists",
                    ));
                }
                TolerationOperator::Exists
            }
            TolerationOperatorSpec::Equal => {
                if self.key.as_deref().is_none_or(str::is_empty) {
                    return Err(Error::scenario(
                        file,
                        format!("{field}.key"),
                        "is required with operator Equal",
                    ));
                }
                TolerationOperator::Equal
            }
        };
        Ok(Toleration {
            key: self.key.clone().filter(|k| !k.is_empty()),
            operator,
            value: self.value.clone(),
            effect: self.effect,
        })
    }
}
