//! Pods and nodes as the scheduler sees them: effective requests and every constraint a pod
//! can express, already parsed and validated.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::requirements::{Operator, Requirement, Requirements};
use crate::resources::Resources;

/// Milliseconds since the Unix epoch. The core never reads a clock; callers pass time in.
pub type Millis = i64;

/// A taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

impl Taint {
    pub fn new(key: &str, value: Option<&str>, effect: TaintEffect) -> Self {
        Taint {
            key: key.to_string(),
            value: value.map(str::to_string),
            effect,
            time_added: None,
        }
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}:{:?}", self.key, v, self.effect),
            None => write!(f, "{}:{:?}", self.key, self.effect),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TolerationOperator {
    Exists,
    Equal,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Toleration {
    pub key: Option<String>,
    pub operator: TolerationOperator,
    pub value: Option<String>,
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Kubernetes' `ToleratesTaint`: an empty key with Exists tolerates everything; an empty
    /// effect matches every effect.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if let Some(key) = &self.key
            && key != &taint.key
        {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => {
                self.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
        }
    }
}

/// Whether the tolerations admit every scheduling-relevant taint (NoSchedule and NoExecute;
/// PreferNoSchedule only steers, it does not forbid). Returns the first taint not tolerated.
pub fn untolerated<'a>(tolerations: &[Toleration], taints: &'a [Taint]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

/// A label selector (`matchLabels` and `matchExpressions`), as requirements on pod labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelSelector {
    pub requirements: Requirements,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.matches_labels(labels)
    }

    pub fn match_labels(labels: &[(&str, &str)]) -> Self {
        let mut requirements = Requirements::new();
        for (k, v) in labels {
            requirements.add(k, Requirement::is_in([*v]));
        }
        LabelSelector { requirements }
    }

    pub fn add_expression(
        &mut self,
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> crate::Result<()> {
        self.requirements
            .add(key, Requirement::build(operator, values, key)?);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InclusionPolicy {
    Honor,
    Ignore,
}

/// A topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopologySpread {
    pub max_skew: i32,
    pub topology_key: String,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub selector: LabelSelector,
    pub min_domains: Option<i32>,
    /// Whether nodes that fail the pod's node affinity are counted (default Honor).
    pub node_affinity_policy: InclusionPolicy,
    /// Whether nodes with untolerated taints are counted (default Ignore).
    pub node_taints_policy: InclusionPolicy,
}

/// A pod (anti-)affinity term: pods matching `selector` in `namespaces` within one
/// `topology_key` domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AffinityTerm {
    pub selector: LabelSelector,
    /// Namespaces the selector applies to; empty means the pod's own namespace.
    pub namespaces: Vec<String>,
    /// A namespace selector; `Some` with no requirements matches every namespace.
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Whether `other` (in namespace `other_ns`) is selected by this term of a pod in `own_ns`,
    /// without namespace labels: a non-empty namespace selector selects no namespace.
    pub fn selects(&self, own_ns: &str, other_ns: &str, other_labels: &BTreeMap<String, String>) -> bool {
        self.selects_in(own_ns, other_ns, other_labels, &BTreeMap::new())
    }

    /// Whether `other` (in namespace `other_ns`) is selected by this term of a pod in `own_ns`,
    /// namespaces known by their labels: the union of the listed namespaces and those the
    /// namespace selector selects (an empty selector selects all); with neither, the pod's own.
    pub fn selects_in(
        &self,
        own_ns: &str,
        other_ns: &str,
        other_labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> bool {
        self.selects_namespace(own_ns, other_ns, namespace_labels) && self.selector.matches(other_labels)
    }

    /// Whether the term covers namespace `ns` (see [`Self::selects_in`]).
    pub fn selects_namespace(
        &self,
        own_ns: &str,
        ns: &str,
        namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> bool {
        if self.namespaces.iter().any(|n| n == ns) {
            return true;
        }
        match &self.namespace_selector {
            Some(sel) if sel.requirements.is_empty() => true,
            Some(sel) => namespace_labels.get(ns).is_some_and(|l| sel.matches(l)),
            None => self.namespaces.is_empty() && own_ns == ns,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Weighted<T> {
    pub weight: i32,
    pub term: T,
}

/// A host port a container binds (`hostPort` with protocol and host IP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub port: i32,
    pub protocol: String,
    pub host_ip: String,
}

impl HostPort {
    /// Two host ports conflict when port and protocol match and either binds every address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (any(&self.host_ip) || any(&other.host_ip) || self.host_ip == other.host_ip)
    }
}

/// A pod, with its scheduling constraints parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub created_at: Millis,
    pub labels: BTreeMap<String, String>,
    /// Effective requests: max(each init container, sum of containers) plus pod overhead, and
    /// one `pods` slot.
    pub requests: Resources,
    /// nodeSelector, as `In` requirements.
    pub node_selector: Requirements,
    /// Required node affinity: OR of terms, each an AND of requirements. Empty means none.
    pub required_affinity: Vec<Requirements>,
    pub preferred_affinity: Vec<Weighted<Requirements>>,
    pub tolerations: Vec<Toleration>,
    pub topology_spread: Vec<TopologySpread>,
    pub pod_affinity: Vec<AffinityTerm>,
    pub pod_anti_affinity: Vec<AffinityTerm>,
    pub preferred_pod_affinity: Vec<Weighted<AffinityTerm>>,
    pub preferred_pod_anti_affinity: Vec<Weighted<AffinityTerm>>,
    pub host_ports: Vec<HostPort>,
    /// Volumes backed by PersistentVolumeClaims (see [`crate::volumes`]).
    pub volume_claims: Vec<crate::volumes::PodVolumeClaim>,
    /// Kind of the controlling owner (`ReplicaSet`, `DaemonSet`, `Node`, …).
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    /// `karpenter.sh/do-not-disrupt: "true"`.
    pub do_not_disrupt: bool,
    pub node_name: Option<String>,
    pub priority: i32,
    /// `controller.kubernetes.io/pod-deletion-cost`: pods that cost less are evicted first.
    pub deletion_cost: i32,
    /// Whether the pod has finished (Succeeded or Failed) and no longer holds resources.
    pub terminal: bool,
    /// Being deleted (a deletionTimestamp is set): it still runs, and holds its node, until
    /// its containers have stopped.
    pub deleting: bool,
}

impl Pod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// DaemonSet pods are node overhead, and static (Node-owned) pods are not ours to place
    /// ([`crate::pending::is_node_overhead_owner`]).
    pub fn is_daemon(&self) -> bool {
        self.owner_kind
            .as_deref()
            .is_some_and(|kind| crate::pending::is_node_overhead_owner(kind, None))
    }

    /// Whether every NoSchedule/NoExecute taint is tolerated.
    pub fn tolerates(&self, taints: &[Taint]) -> bool {
        untolerated(&self.tolerations, taints).is_none()
    }

    /// The node-affinity terms the scheduler must honour: the nodeSelector ANDed into each
    /// required term (or alone when there are no terms), deprecated label keys under their
    /// current names.
    pub fn node_requirement_terms(&self) -> Vec<Requirements> {
        if self.required_affinity.is_empty() {
            return vec![self.node_selector.normalized()];
        }
        self.required_affinity
            .iter()
            .map(|term| term.intersection(&self.node_selector).normalized())
            .collect()
    }

    /// Whether a node with these labels satisfies the nodeSelector and required affinity.
    pub fn matches_node_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector.matches_labels(labels)
            && (self.required_affinity.is_empty()
                || self.required_affinity.iter().any(|t| t.matches_labels(labels)))
    }
}

/// An existing node: what it offers and what is already bound to it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    pub unschedulable: bool,
    /// `aws:///us-east-1a/i-0123…` once the kubelet reports it.
    pub provider_id: Option<String>,
    pub ready: bool,
    pub created_at: Millis,
    /// Marked for deletion (a deletionTimestamp is set).
    pub deleting: bool,
    /// Annotated `karpenter.sh/do-not-disrupt: "true"`: no voluntary disruption.
    pub do_not_disrupt: bool,
}

impl Node {
    /// The EC2 instance id from the provider id, if any.
    pub fn instance_id(&self) -> Option<&str> {
        let id = self.provider_id.as_deref()?.rsplit('/').next()?;
        id.starts_with("i-").then_some(id)
    }
}
