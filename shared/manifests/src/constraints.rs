//! A pod spec's scheduling constraints: node selector and affinity, tolerations, topology
//! spread, pod (anti-)affinity and host ports, validated as the API server would.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use nodewright_core::pod::{
    AffinityTerm, HostPort, InclusionPolicy, LabelSelector, TaintEffect, Toleration, TolerationOperator,
    TopologySpread, Weighted, WhenUnsatisfiable,
};
use nodewright_core::requirements::{Operator, Requirement, Requirements};
use nodewright_core::selector::{validate_label_key, validate_label_value};

use crate::error::{At, Result};

/// What a pod (anti-)affinity term without a `labelSelector` means. Kubernetes reads a missing
/// selector as "matches no pod": required affinity can then never be met, while anti-affinity
/// and preferences have nothing to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Impossible,
    NoEffect,
}

pub(crate) fn node_selector(selector: Option<&BTreeMap<String, String>>) -> Requirements {
    selector.map(Requirements::from_labels).unwrap_or_default()
}

const REQUIRED_NODE_TERMS: &str =
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms";

/// Required node affinity: OR of terms. `matchFields` are ignored (see [`crate::pod_from_k8s`]).
pub(crate) fn required_node_affinity(
    at: At<'_>,
    affinity: Option<&k8s::NodeAffinity>,
) -> Result<Vec<Requirements>> {
    let Some(selector) =
        affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
    else {
        return Ok(Vec::new());
    };
    let mut terms = Vec::new();
    for (i, term) in selector.node_selector_terms.iter().enumerate() {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        let has_fields = term.match_fields.as_ref().is_some_and(|f| !f.is_empty());
        // Kubernetes: an empty term matches no node, so it adds nothing to the OR.
        if expressions.is_empty() && !has_fields {
            continue;
        }
        terms.push(node_term(
            at,
            &format!("{REQUIRED_NODE_TERMS}[{i}]"),
            expressions,
        )?);
    }
    if terms.is_empty() {
        return Err(at.invalid(
            REQUIRED_NODE_TERMS,
            "has no term with a requirement, so it matches no node",
        ));
    }
    Ok(terms)
}

pub(crate) fn preferred_node_affinity(
    at: At<'_>,
    affinity: Option<&k8s::NodeAffinity>,
) -> Result<Vec<Weighted<Requirements>>> {
    let preferred = affinity
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, p) in preferred.iter().enumerate() {
        let field =
            format!("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        out.push(Weighted {
            weight: weight(at, &field, p.weight)?,
            term: node_term(
                at,
                &format!("{field}.preference"),
                p.preference.match_expressions.as_deref().unwrap_or_default(),
            )?,
        });
    }
    Ok(out)
}

fn weight(at: At<'_>, field: &str, weight: i32) -> Result<i32> {
    if (1..=100).contains(&weight) {
        Ok(weight)
    } else {
        Err(at.invalid(&format!("{field}.weight"), format!("{weight} is not in 1..=100")))
    }
}

pub(crate) fn node_term(
    at: At<'_>,
    field: &str,
    expressions: &[k8s::NodeSelectorRequirement],
) -> Result<Requirements> {
    let mut out = Requirements::new();
    for (i, e) in expressions.iter().enumerate() {
        let field = format!("{field}.matchExpressions[{i}]");
        let op = match e.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::Gt,
            "Lt" => Operator::Lt,
            other => {
                return Err(at.invalid(
                    &format!("{field}.operator"),
                    format!(
                        "unknown operator {other:?} (expected In, NotIn, Exists, DoesNotExist, Gt or Lt)"
                    ),
                ));
            }
        };
        let requirement = Requirement::build(op, e.values.clone().unwrap_or_default(), &e.key)
            .map_err(|err| at.value(&field, err))?;
        out.add(&e.key, requirement);
    }
    Ok(out)
}

/// A `metav1.LabelSelector`: `matchLabels` and `matchExpressions` ANDed, keys and values
/// validated as the API server validates them.
pub(crate) fn label_selector(
    at: At<'_>,
    field: &str,
    selector: &meta::LabelSelector,
) -> Result<LabelSelector> {
    let mut out = LabelSelector::default();
    for (k, v) in selector.match_labels.iter().flatten() {
        let field = format!("{field}.matchLabels");
        label_key(at, &field, k)?;
        validate_label_value(v).map_err(|reason| at.invalid(&field, format!("value {v:?}: {reason}")))?;
        out.requirements.add(k, Requirement::is_in([v.clone()]));
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let field = format!("{field}.matchExpressions[{i}]");
        label_key(at, &format!("{field}.key"), &e.key)?;
        for (j, v) in e.values.iter().flatten().enumerate() {
            validate_label_value(v)
                .map_err(|reason| at.invalid(&format!("{field}.values[{j}]"), format!("{v:?}: {reason}")))?;
        }
        let op = match e.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(at.invalid(
                    &format!("{field}.operator"),
                    format!("unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"),
                ));
            }
        };
        out.add_expression(&e.key, op, e.values.clone().unwrap_or_default())
            .map_err(|err| at.value(&field, err))?;
    }
    Ok(out)
}

/// A `metav1.LabelSelector` of `object` at `field` (a PodDisruptionBudget's or a workload's
/// `spec.selector`), validated as the API server validates it; errors name the object and
/// the field.
pub fn label_selector_from_k8s(
    object: &str,
    field: &str,
    selector: &meta::LabelSelector,
) -> Result<LabelSelector> {
    label_selector(At { object, prefix: "" }, field, selector)
}

fn label_key(at: At<'_>, field: &str, key: &str) -> Result<()> {
    validate_label_key(key).map_err(|reason| at.invalid(field, format!("key {key:?}: {reason}")))
}

pub(crate) fn tolerations(at: At<'_>, tolerations: Option<&[k8s::Toleration]>) -> Result<Vec<Toleration>> {
    let mut out = Vec::new();
    for (i, t) in tolerations.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.tolerations[{i}]");
        let key = t.key.clone().filter(|k| !k.is_empty());
        let value = t.value.clone().filter(|v| !v.is_empty());
        let operator = match t.operator.as_deref() {
            None | Some("") | Some("Equal") => TolerationOperator::Equal,
            Some("Exists") => TolerationOperator::Exists,
            Some(other) => {
                return Err(at.invalid(
                    &format!("{field}.operator"),
                    format!("unknown operator {other:?} (expected Equal or Exists)"),
                ));
            }
        };
        if operator == TolerationOperator::Exists && value.is_some() {
            return Err(at.invalid(&format!("{field}.value"), "must be empty when operator is Exists"));
        }
        if operator == TolerationOperator::Equal && key.is_none() {
            return Err(at.invalid(&format!("{field}.operator"), "must be Exists when key is empty"));
        }
        let effect = match t.effect.as_deref() {
            None | Some("") => None,
            Some(e) => Some(
                taint_effect(e).ok_or_else(|| at.invalid(&format!("{field}.effect"), unknown_effect(e)))?,
            ),
        };
        out.push(Toleration {
            key,
            operator,
            value,
            effect,
        });
    }
    Ok(out)
}

pub(crate) fn taint_effect(effect: &str) -> Option<TaintEffect> {
    match effect {
        "NoSchedule" => Some(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(TaintEffect::NoExecute),
        _ => None,
    }
}

pub(crate) fn unknown_effect(effect: &str) -> String {
    format!("unknown effect {effect:?} (expected NoSchedule, PreferNoSchedule or NoExecute)")
}

pub(crate) fn topology_spread(
    at: At<'_>,
    constraints: Option<&[k8s::TopologySpreadConstraint]>,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<TopologySpread>> {
    let mut out = Vec::new();
    for (i, c) in constraints.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.topologySpreadConstraints[{i}]");
        let f = |name: &str| format!("{field}.{name}");
        if c.max_skew < 1 {
            return Err(at.invalid(&f("maxSkew"), format!("{} is not at least 1", c.max_skew)));
        }
        if c.topology_key.is_empty() {
            return Err(at.invalid(&f("topologyKey"), "is required"));
        }
        let when_unsatisfiable = match c.when_unsatisfiable.as_str() {
            "DoNotSchedule" => WhenUnsatisfiable::DoNotSchedule,
            "ScheduleAnyway" => WhenUnsatisfiable::ScheduleAnyway,
            other => {
                return Err(at.invalid(
                    &f("whenUnsatisfiable"),
                    format!("unknown value {other:?} (expected DoNotSchedule or ScheduleAnyway)"),
                ));
            }
        };
        if let Some(min) = c.min_domains {
            if min < 1 {
                return Err(at.invalid(&f("minDomains"), format!("{min} is not at least 1")));
            }
            if when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
                return Err(at.invalid(
                    &f("minDomains"),
                    "may only be set with whenUnsatisfiable: DoNotSchedule",
                ));
            }
        }
        let node_affinity_policy = policy(at, &f("nodeAffinityPolicy"), c.node_affinity_policy.as_deref())?
            .unwrap_or(InclusionPolicy::Honor);
        let node_taints_policy = policy(at, &f("nodeTaintsPolicy"), c.node_taints_policy.as_deref())?
            .unwrap_or(InclusionPolicy::Ignore);
        // Without a labelSelector a constraint counts no pods, so it can never be violated.
        let Some(selector) = &c.label_selector else {
            continue;
        };
        let mut selector = label_selector(at, &f("labelSelector"), selector)?;
        add_label_keys(
            at,
            &f("matchLabelKeys"),
            &mut selector,
            c.match_label_keys.as_deref(),
            labels,
            Operator::In,
        )?;
        out.push(TopologySpread {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            when_unsatisfiable,
            selector,
            min_domains: c.min_domains,
            node_affinity_policy,
            node_taints_policy,
        });
    }
    Ok(out)
}

fn policy(at: At<'_>, field: &str, value: Option<&str>) -> Result<Option<InclusionPolicy>> {
    match value {
        None => Ok(None),
        Some("Honor") => Ok(Some(InclusionPolicy::Honor)),
        Some("Ignore") => Ok(Some(InclusionPolicy::Ignore)),
        Some(other) => Err(at.invalid(
            field,
            format!("unknown policy {other:?} (expected Honor or Ignore)"),
        )),
    }
}

/// `matchLabelKeys` (`key In [the pod's value]`) or `mismatchLabelKeys` (`NotIn`); keys the pod
/// does not carry are skipped, as the API server does when it merges them into the selector.
fn add_label_keys(
    at: At<'_>,
    field: &str,
    selector: &mut LabelSelector,
    keys: Option<&[String]>,
    labels: &BTreeMap<String, String>,
    operator: Operator,
) -> Result<()> {
    for key in keys.unwrap_or_default() {
        if let Some(value) = labels.get(key) {
            selector
                .add_expression(key, operator, vec![value.clone()])
                .map_err(|err| at.value(field, err))?;
        }
    }
    Ok(())
}

fn affinity_term(
    at: At<'_>,
    field: &str,
    term: &k8s::PodAffinityTerm,
    labels: &BTreeMap<String, String>,
    missing: Missing,
) -> Result<Option<AffinityTerm>> {
    if term.topology_key.is_empty() {
        return Err(at.invalid(&format!("{field}.topologyKey"), "is required"));
    }
    let Some(selector) = &term.label_selector else {
        return match missing {
            Missing::Impossible => Err(at.invalid(
                &format!("{field}.labelSelector"),
                "is missing, so the term matches no pod and the pod can never schedule",
            )),
            Missing::NoEffect => Ok(None),
        };
    };
    let mut selector = label_selector(at, &format!("{field}.labelSelector"), selector)?;
    add_label_keys(
        at,
        &format!("{field}.matchLabelKeys"),
        &mut selector,
        term.match_label_keys.as_deref(),
        labels,
        Operator::In,
    )?;
    add_label_keys(
        at,
        &format!("{field}.mismatchLabelKeys"),
        &mut selector,
        term.mismatch_label_keys.as_deref(),
        labels,
        Operator::NotIn,
    )?;
    let namespace_selector = term
        .namespace_selector
        .as_ref()
        .map(|s| label_selector(at, &format!("{field}.namespaceSelector"), s))
        .transpose()?;
    Ok(Some(AffinityTerm {
        selector,
        namespaces: term.namespaces.clone().unwrap_or_default(),
        namespace_selector,
        topology_key: term.topology_key.clone(),
    }))
}

/// Required terms of `spec.affinity.podAffinity` or `podAntiAffinity` (at `parent`).
pub(crate) fn required_pod_affinity(
    at: At<'_>,
    parent: &str,
    terms: Option<&[k8s::PodAffinityTerm]>,
    labels: &BTreeMap<String, String>,
    missing: Missing,
) -> Result<Vec<AffinityTerm>> {
    let mut out = Vec::new();
    for (i, t) in terms.unwrap_or_default().iter().enumerate() {
        let field = format!("{parent}.requiredDuringSchedulingIgnoredDuringExecution[{i}]");
        out.extend(affinity_term(at, &field, t, labels, missing)?);
    }
    Ok(out)
}

pub(crate) fn preferred_pod_affinity(
    at: At<'_>,
    parent: &str,
    terms: Option<&[k8s::WeightedPodAffinityTerm]>,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Weighted<AffinityTerm>>> {
    let mut out = Vec::new();
    for (i, t) in terms.unwrap_or_default().iter().enumerate() {
        let field = format!("{parent}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
        let weight = weight(at, &field, t.weight)?;
        let term = affinity_term(
            at,
            &format!("{field}.podAffinityTerm"),
            &t.pod_affinity_term,
            labels,
            Missing::NoEffect,
        )?;
        out.extend(term.map(|term| Weighted { weight, term }));
    }
    Ok(out)
}

/// Host ports the containers bind. With `hostNetwork` the API server defaults each port's
/// `hostPort` to its `containerPort`, so those count too. Init containers are not counted, as
/// the kube-scheduler's NodePorts plugin does not count them.
pub(crate) fn host_ports(spec: &k8s::PodSpec) -> Vec<HostPort> {
    let host_network = spec.host_network == Some(true);
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = match p.host_port {
                Some(port) if port > 0 => port,
                _ if host_network => p.container_port,
                _ => return None,
            };
            Some(HostPort {
                port,
                protocol: p
                    .protocol
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "TCP".into()),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}
