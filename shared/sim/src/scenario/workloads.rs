//! Workloads: Deployments and StatefulSets as a scenario declares them, read into the
//! simulator's workloads.

use std::collections::BTreeMap;

use nodewright_core::pod::{
    AffinityTerm, InclusionPolicy, LabelSelector, Pod, TopologySpread, WhenUnsatisfiable,
};
use nodewright_core::quantity::Quantity;
use nodewright_core::requirements::{self, NodeSelectorRequirement, Requirements};
use nodewright_core::resources::ResourceName;
use nodewright_core::volumes::PodVolumeClaim;
use serde::Deserialize;

use crate::cluster::Workload;
use crate::error::{Error, Result};

use super::manifests::{TolerationSpec, default_namespace, resources};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadSpec {
    pub(super) name: String,
    #[serde(default = "default_namespace")]
    pub(super) namespace: String,
    /// Replicas at the start.
    #[serde(default)]
    replicas: u32,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Pod annotations; `karpenter.sh/do-not-disrupt: "true"` holds graceful termination.
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// A PodDisruptionBudget over the workload's pods: `{minAvailable: N|"P%"}` or
    /// `{maxUnavailable: N|"P%"}`.
    #[serde(default)]
    pub(super) pod_disruption_budget: Option<WorkloadPdbSpec>,
    #[serde(default)]
    requests: BTreeMap<String, Quantity>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    /// Required node affinity: OR of terms.
    #[serde(default)]
    node_affinity: Vec<NodeSelectorTerm>,
    #[serde(default)]
    tolerations: Vec<TolerationSpec>,
    /// Spread constraints over the workload's own pods.
    #[serde(default)]
    topology_spread: Vec<SpreadSpec>,
    /// Required anti-affinity to the workload's own pods.
    #[serde(default)]
    pod_anti_affinity: Vec<AntiAffinitySpec>,
    /// A persistent volume per replica from each template, as a StatefulSet's
    /// `volumeClaimTemplates`: the workload becomes a StatefulSet (pods `<name>-<ordinal>`,
    /// each keeping its claims, and so its volumes' zone, when it is recreated).
    #[serde(default)]
    volume_claim_templates: Vec<ClaimTemplateSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimTemplateSpec {
    name: String,
    /// The class; none means the default class.
    #[serde(default)]
    storage_class_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadPdbSpec {
    #[serde(default)]
    pub(super) min_available: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) max_unavailable: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeSelectorTerm {
    #[serde(default)]
    match_expressions: Vec<NodeSelectorRequirement>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
enum WhenUnsatisfiableSpec {
    #[default]
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpreadSpec {
    topology_key: String,
    #[serde(default = "one")]
    max_skew: i32,
    #[serde(default)]
    when_unsatisfiable: WhenUnsatisfiableSpec,
    #[serde(default)]
    min_domains: Option<i32>,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AntiAffinitySpec {
    topology_key: String,
}

impl WorkloadSpec {
    pub(super) fn into_workload(self, file: &str, field: &str) -> Result<Workload> {
        let at = |f: &str| format!("{field}.{f}");
        if self.name.is_empty() || self.name.contains('/') {
            return Err(Error::scenario(
                file,
                at("name"),
                format!("{:?} is not a valid name", self.name),
            ));
        }
        let mut labels = BTreeMap::from([("app".to_string(), self.name.clone())]);
        labels.extend(self.labels);
        let own_pods = LabelSelector {
            requirements: Requirements::from_labels(&labels),
        };
        let mut requests = resources(&self.requests, file, &at("requests"))?;
        requests.set(ResourceName::Pods, 1);
        let required_affinity = self
            .node_affinity
            .iter()
            .enumerate()
            .map(|(i, t)| {
                requirements::from_selector_requirements(&t.match_expressions)
                    .map_err(|e| Error::scenario(file, at(&format!("nodeAffinity[{i}]")), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let tolerations = self
            .tolerations
            .iter()
            .enumerate()
            .map(|(i, t)| t.to_toleration(file, &at(&format!("tolerations[{i}]"))))
            .collect::<Result<Vec<_>>>()?;
        let mut topology_spread = Vec::new();
        for (i, s) in self.topology_spread.into_iter().enumerate() {
            if s.max_skew < 1 {
                return Err(Error::scenario(
                    file,
                    at(&format!("topologySpread[{i}].maxSkew")),
                    "must be at least 1",
                ));
            }
            topology_spread.push(TopologySpread {
                max_skew: s.max_skew,
                topology_key: s.topology_key,
                when_unsatisfiable: match s.when_unsatisfiable {
                    WhenUnsatisfiableSpec::DoNotSchedule => WhenUnsatisfiable::DoNotSchedule,
                    WhenUnsatisfiableSpec::ScheduleAnyway => WhenUnsatisfiable::ScheduleAnyway,
                },
                selector: own_pods.clone(),
                min_domains: s.min_domains,
                node_affinity_policy: InclusionPolicy::Honor,
                node_taints_policy: InclusionPolicy::Ignore,
            });
        }
        let pod_anti_affinity = self
            .pod_anti_affinity
            .into_iter()
            .map(|a| AffinityTerm {
                selector: own_pods.clone(),
                namespaces: Vec::new(),
                namespace_selector: None,
                topology_key: a.topology_key,
            })
            .collect();
        let volume_claims = self
            .volume_claim_templates
            .into_iter()
            .map(|t| PodVolumeClaim::Template {
                template: t.name,
                storage_class: t.storage_class_name,
            })
            .collect::<Vec<_>>();
        let stateful = !volume_claims.is_empty();
        let deletion_cost = match self.annotations.get(nodewright_core::labels::POD_DELETION_COST) {
            None => 0,
            Some(v) => v.trim().parse::<i32>().map_err(|_| {
                Error::scenario(
                    file,
                    at(&format!(
                        "annotations.{}",
                        nodewright_core::labels::POD_DELETION_COST
                    )),
                    format!("{v:?} is not a 32-bit integer"),
                )
            })?,
        };
        let template = Pod {
            namespace: self.namespace.clone(),
            deletion_cost,
            volume_claims,
            labels,
            requests,
            node_selector: Requirements::from_labels(&self.node_selector),
            required_affinity,
            tolerations,
            topology_spread,
            pod_anti_affinity,
            priority: self.priority,
            do_not_disrupt: self
                .annotations
                .get(nodewright_core::labels::DO_NOT_DISRUPT)
                .is_some_and(|v| v == "true"),
            ..Pod::default()
        };
        Ok(Workload {
            namespace: self.namespace,
            name: self.name,
            replicas: self.replicas,
            stateful,
            template,
        })
    }
}
