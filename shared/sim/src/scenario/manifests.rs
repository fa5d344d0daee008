//! The parts of a scenario's own workload format that read like Kubernetes: a workload's
//! inline PodDisruptionBudget, resource lists, tolerations. Kubernetes objects themselves
//! (DaemonSets, PodDisruptionBudgets, StorageClasses) are read by `nodewright-manifests`.

use std::collections::BTreeMap;

use nodewright_core::pdb::{Budget, IntOrPercent};
use nodewright_core::pod::{TaintEffect, Toleration, TolerationOperator};
use nodewright_core::quantity::Quantity;
use nodewright_core::resources::Resources;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A workload's inline budget: `minAvailable` or `maxUnavailable`.
#[derive(Debug)]
pub(super) struct PdbSpec {
    pub(super) min_available: Option<serde_json::Value>,
    pub(super) max_unavailable: Option<serde_json::Value>,
}

impl PdbSpec {
    /// `minAvailable` or `maxUnavailable`, exactly one.
    pub(super) fn budget(&self, file: &str, field: &str) -> Result<Budget> {
        let at = |f: &str| format!("{field}.{f}");
        let amount = |v: &serde_json::Value, f: &str| {
            let raw = match v {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
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
