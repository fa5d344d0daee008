//! Pods: a Kubernetes pod (or a workload's pod template) as the scheduler sees it.

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use nodewright_core::labels;
use nodewright_core::pod::{Millis, Pod};
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_core::volumes::PodVolumeClaim;

use crate::constraints;
use crate::error::{At, Error, Result};

/// Converts a pod, validating every field the scheduler reads.
///
/// `spec.affinity.nodeAffinity` terms' `matchFields` are ignored: the only field Kubernetes
/// allows there is `metadata.name`, which the DaemonSet controller uses to pin its pods to one
/// node, and such pods are node overhead that the planner never places.
pub fn pod_from_k8s(pod: &k8s::Pod) -> Result<Pod> {
    let meta = &pod.metadata;
    let namespace = namespace_of(meta);
    let name = meta.name.as_deref().unwrap_or_default();
    let object = format!("Pod {namespace}/{name}");
    if name.is_empty() {
        return Err(Error::invalid(&object, "metadata.name", "is required"));
    }
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec", "is required"))?;
    let at = At {
        object: &object,
        prefix: "",
    };
    let mut out = from_spec(at, meta, spec)?;
    out.namespace = namespace.to_string();
    out.name = name.to_string();
    out.uid = meta.uid.clone().unwrap_or_default();
    out.created_at = millis(meta.creation_timestamp.as_ref());
    if let Some(owner) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        out.owner_kind = Some(owner.kind.clone());
        out.owner_name = Some(owner.name.clone());
    }
    out.terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    out.deleting = meta.deletion_timestamp.is_some();
    Ok(out)
}

/// The namespace of a namespaced object, `default` when unset (as kubectl applies it).
pub(crate) fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

pub(crate) fn millis(time: Option<&Time>) -> Millis {
    time.map_or(0, |t| t.0.as_millisecond())
}

const POD_AFFINITY: &str = "spec.affinity.podAffinity";
const POD_ANTI_AFFINITY: &str = "spec.affinity.podAntiAffinity";

/// Everything a pod's labels, annotations and spec say; identity (namespace, name, uid, owner)
/// is the caller's.
pub(crate) fn from_spec(at: At<'_>, meta: &ObjectMeta, spec: &k8s::PodSpec) -> Result<Pod> {
    let labels = meta.labels.clone().unwrap_or_default();
    let do_not_disrupt = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::DO_NOT_DISRUPT))
        .is_some_and(|v| v == "true");
    let deletion_cost = match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::POD_DELETION_COST))
    {
        None => 0,
        Some(v) => v.trim().parse::<i32>().map_err(|_| {
            at.invalid(
                &format!("metadata.annotations[{}]", labels::POD_DELETION_COST),
                format!("{v:?} is not a 32-bit integer"),
            )
        })?,
    };
    let node_selector = constraints::node_selector(spec.node_selector.as_ref());
    let affinity = spec.affinity.as_ref();
    let node_affinity = affinity.and_then(|a| a.node_affinity.as_ref());
    let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
    let pod_anti_affinity = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
    Ok(Pod {
        requests: effective_requests(at, spec)?,
        node_selector,
        required_affinity: constraints::required_node_affinity(at, node_affinity)?,
        preferred_affinity: constraints::preferred_node_affinity(at, node_affinity)?,
        tolerations: constraints::tolerations(at, spec.tolerations.as_deref())?,
        topology_spread: constraints::topology_spread(
            at,
            spec.topology_spread_constraints.as_deref(),
            &labels,
        )?,
        pod_affinity: constraints::required_pod_affinity(
            at,
            POD_AFFINITY,
            pod_affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref()),
            &labels,
            constraints::Missing::Impossible,
        )?,
        pod_anti_affinity: constraints::required_pod_affinity(
            at,
            POD_ANTI_AFFINITY,
            pod_anti_affinity.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref()),
            &labels,
            constraints::Missing::NoEffect,
        )?,
        preferred_pod_affinity: constraints::preferred_pod_affinity(
            at,
            POD_AFFINITY,
            pod_affinity.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref()),
            &labels,
        )?,
        preferred_pod_anti_affinity: constraints::preferred_pod_affinity(
            at,
            POD_ANTI_AFFINITY,
            pod_anti_affinity.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref()),
            &labels,
        )?,
        host_ports: constraints::host_ports(spec),
        volume_claims: volume_claims(spec),
        do_not_disrupt,
        deletion_cost,
        node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
        priority: spec.priority.unwrap_or(0),
        labels,
        ..Pod::default()
    })
}

/// The volumes backed by PersistentVolumeClaims: named claims and generic ephemeral volumes.
fn volume_claims(spec: &k8s::PodSpec) -> Vec<PodVolumeClaim> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| {
            if let Some(pvc) = &v.persistent_volume_claim {
                return Some(PodVolumeClaim::Claim(pvc.claim_name.clone()));
            }
            let template = v.ephemeral.as_ref()?.volume_claim_template.as_ref()?;
            Some(PodVolumeClaim::Ephemeral {
                volume: v.name.clone(),
                storage_class: template.spec.storage_class_name.clone(),
            })
        })
        .collect()
}

/// The kube-scheduler's pod request (`resourcehelper.PodRequests`): the sum of the containers
/// and sidecars against the peak of the init phase, pod-level `spec.resources` where set,
/// plus `spec.overhead` and the pod's own `pods` slot.
fn effective_requests(at: At<'_>, spec: &k8s::PodSpec) -> Result<Resources> {
    let mut total = Resources::new();
    for (i, c) in spec.containers.iter().enumerate() {
        total.add(&container_requests(at, &format!("spec.containers[{i}]"), c)?);
    }
    // KEP-753: a sidecar (restartable init container) keeps running beside everything started
    // after it, so it adds to the containers' sum and to every later init container; a regular
    // init container runs to completion beside only the sidecars started before it.
    let mut sidecars = Resources::new();
    let mut init_peak = Resources::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let own = container_requests(at, &format!("spec.initContainers[{i}]"), c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&own);
            sidecars.add(&own);
            init_peak.max_with(&sidecars);
        } else {
            let mut running = own;
            running.add(&sidecars);
            init_peak.max_with(&running);
        }
    }
    total.max_with(&init_peak);
    if let Some(pod_level) = &spec.resources {
        // Pod-level resources (beta and on by default in 1.34) replace the containers' total
        // for the resources they name; Kubernetes supports them for cpu and memory.
        let requests = with_limits_as_requests(at, "spec.resources", pod_level)?;
        for r in [ResourceName::Cpu, ResourceName::Memory] {
            if requests.contains(r) {
                total.set(r, requests.resources.get(r));
            }
        }
    }
    for (name, q) in spec.overhead.iter().flatten() {
        total.add(&parse_one(at, &format!("spec.overhead.{name}"), name, q)?);
    }
    total.set(ResourceName::Pods, total.pods().saturating_add(1));
    Ok(total)
}

fn container_requests(at: At<'_>, field: &str, c: &k8s::Container) -> Result<Resources> {
    match &c.resources {
        None => Ok(Resources::new()),
        Some(r) => Ok(with_limits_as_requests(at, &format!("{field}.resources"), r)?.resources),
    }
}

/// Requests, and which resources they name.
struct Requested {
    resources: Resources,
    names: Vec<String>,
}

impl Requested {
    fn contains(&self, r: ResourceName) -> bool {
        self.names.iter().any(|n| n == r.as_str())
    }
}

/// Requests as the API server stores them: a resource with a limit and no request is
/// defaulted to request its limit. Limits are parsed even when unused, so that a malformed
/// one is reported as Kubernetes would.
fn with_limits_as_requests(at: At<'_>, field: &str, r: &k8s::ResourceRequirements) -> Result<Requested> {
    let mut out = Requested {
        resources: Resources::new(),
        names: Vec::new(),
    };
    let requests = r.requests.as_ref();
    for (name, q) in requests.into_iter().flatten() {
        out.resources
            .add(&parse_one(at, &format!("{field}.requests.{name}"), name, q)?);
        out.names.push(name.clone());
    }
    for (name, q) in r.limits.iter().flatten() {
        let limit = parse_one(at, &format!("{field}.limits.{name}"), name, q)?;
        if !requests.is_some_and(|req| req.contains_key(name)) {
            out.resources.add(&limit);
            out.names.push(name.clone());
        }
    }
    Ok(out)
}

fn parse_one(at: At<'_>, field: &str, name: &str, q: &Quantity) -> Result<Resources> {
    Resources::from_quantities([(name, q.0.as_str())]).map_err(|e| at.value(field, e))
}

#[cfg(test)]
mod tests {
    use nodewright_core::pod::{
        AffinityTerm, HostPort, InclusionPolicy, LabelSelector, TaintEffect, Toleration, TolerationOperator,
        TopologySpread, Weighted, WhenUnsatisfiable,
    };
    use nodewright_core::requirements::{Operator, Requirement, Requirements};

    use super::*;
    use crate::testing::{chain, k8s};

    const MI: i64 = 1 << 20;

    fn pod(yaml: &str) -> Pod {
        pod_from_k8s(&k8s(yaml)).expect("converts")
    }

    fn error(yaml: &str) -> String {
        chain(&pod_from_k8s(&k8s(yaml)).expect_err("rejected"))
    }

    fn requirements(reqs: &[(&str, Operator, &[&str])]) -> Requirements {
        let mut out = Requirements::new();
        for (key, op, values) in reqs {
            out.add(key, Requirement::new(*op, values).expect("valid"));
        }
        out
    }

    fn selector(reqs: &[(&str, Operator, &[&str])]) -> LabelSelector {
        LabelSelector {
            requirements: requirements(reqs),
        }
    }

    /// A one-container pod with `spec` lines added under `spec:` (indented by four).
    fn pod_with(spec: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers:\n  - name: app\n    image: app:1\n{spec}"
        )
    }

    #[test]
    fn requests_are_the_larger_of_the_init_phase_and_the_containers_plus_overhead() {
        let p = pod(include_str!("../fixtures/init-containers.yaml"));
        assert_eq!(p.requests.cpu(), 2000 + 250, "the 2-cpu init container dominates");
        assert_eq!(
            p.requests.memory(),
            (768 + 512 + 120) * MI,
            "the containers' sum dominates"
        );
        assert_eq!(p.requests.pods(), 1);
    }

    #[test]
    fn sidecars_add_to_the_containers_and_to_init_containers_started_after_them() {
        let p = pod(include_str!("../fixtures/sidecars.yaml"));
        assert_eq!(
            p.requests.cpu(),
            2800 + 500,
            "the later init container runs beside the sidecar"
        );
        assert_eq!(
            p.requests.memory(),
            1024 * MI + 64 * MI,
            "the sidecar runs beside the app"
        );
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let p = pod(include_str!("../fixtures/limits-as-requests.yaml"));
        assert_eq!(p.requests.cpu(), 1000);
        assert_eq!(
            p.requests.memory(),
            512 * MI,
            "an explicit request wins over the limit"
        );
        assert_eq!(p.requests.get(ResourceName::NvidiaGpu), 1);
    }

    #[test]
    fn pod_level_resources_replace_the_containers_total_for_cpu_and_memory() {
        let p = pod(&pod_with(
            "    resources: {requests: {cpu: 1, memory: 1Gi, ephemeral-storage: 1Gi}}\n  resources:\n    limits: {cpu: 4}\n",
        ));
        assert_eq!(p.requests.cpu(), 4000);
        assert_eq!(p.requests.memory(), 1024 * MI);
        assert_eq!(p.requests.get(ResourceName::EphemeralStorage), 1024 * MI);
    }

    #[test]
    fn a_malformed_quantity_names_the_pod_the_field_and_the_value() {
        let err = error(&pod_with("    resources: {requests: {memory: 1GB}}\n"));
        assert!(
            err.starts_with("Pod default/web: spec.containers[0].resources.requests.memory: "),
            "{err}"
        );
        assert!(err.contains("\"1GB\""), "{err}");
        let err = error(&pod_with("  overhead: {cpu: lots}\n"));
        assert!(
            err.contains("spec.overhead.cpu") && err.contains("\"lots\""),
            "{err}"
        );
    }

    #[test]
    fn node_selector_and_node_affinity_become_requirements() {
        let p = pod(include_str!("../fixtures/affinity.yaml"));
        assert_eq!(
            p.node_selector,
            requirements(&[(labels::ARCH, Operator::In, &["arm64"])])
        );
        assert_eq!(
            p.required_affinity,
            vec![
                requirements(&[
                    (labels::INSTANCE_GENERATION, Operator::Gt, &["5"]),
                    (labels::CAPACITY_TYPE, Operator::In, &["spot"]),
                ]),
                // matchFields are ignored; the expressions beside them stay.
                requirements(&[(labels::INSTANCE_FAMILY, Operator::In, &["m7g", "c7g"])]),
            ]
        );
        assert_eq!(
            p.preferred_affinity,
            vec![
                Weighted {
                    weight: 80,
                    term: requirements(&[(labels::ZONE, Operator::In, &["us-east-1a"])]),
                },
                Weighted {
                    weight: 20,
                    term: requirements(&[(labels::INSTANCE_SIZE, Operator::NotIn, &["metal"])]),
                },
            ]
        );
    }

    #[test]
    fn pod_affinity_and_anti_affinity_keep_selectors_namespaces_and_topology() {
        let p = pod(include_str!("../fixtures/affinity.yaml"));
        assert_eq!(
            p.pod_affinity,
            vec![AffinityTerm {
                selector: selector(&[
                    ("app", Operator::In, &["cache"]),
                    ("tenant", Operator::In, &["blue"])
                ]),
                namespaces: vec![],
                namespace_selector: None,
                topology_key: labels::ZONE.into(),
            }]
        );
        assert_eq!(
            p.preferred_pod_affinity,
            vec![Weighted {
                weight: 50,
                term: AffinityTerm {
                    selector: selector(&[("app", Operator::In, &["db"])]),
                    namespaces: vec!["data".into()],
                    namespace_selector: None,
                    topology_key: labels::HOSTNAME.into(),
                },
            }]
        );
        assert_eq!(
            p.pod_anti_affinity,
            vec![AffinityTerm {
                selector: selector(&[
                    ("app", Operator::Exists, &[]),
                    ("tenant", Operator::NotIn, &["blue"])
                ]),
                namespaces: vec![],
                namespace_selector: Some(LabelSelector::default()),
                topology_key: labels::HOSTNAME.into(),
            }],
            "the term without a labelSelector matches no pod and is dropped"
        );
        assert_eq!(
            p.preferred_pod_anti_affinity,
            vec![Weighted {
                weight: 10,
                term: AffinityTerm {
                    selector: selector(&[("app", Operator::In, &["web"])]),
                    namespaces: vec![],
                    namespace_selector: Some(selector(&[("team", Operator::In, &["shop"])])),
                    topology_key: labels::ZONE.into(),
                },
            }]
        );
    }

    #[test]
    fn required_pod_affinity_without_a_selector_is_an_error() {
        let err = error(&pod_with(
            "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - topologyKey: kubernetes.io/hostname\n",
        ));
        assert!(
            err.contains(
                "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector"
            ),
            "{err}"
        );
    }

    #[test]
    fn tolerations_default_to_equal_and_to_every_effect() {
        let p = pod(include_str!("../fixtures/affinity.yaml"));
        assert_eq!(
            p.tolerations,
            vec![
                Toleration {
                    key: Some("dedicated".into()),
                    operator: TolerationOperator::Equal,
                    value: Some("shop".into()),
                    effect: Some(TaintEffect::NoSchedule),
                },
                Toleration {
                    key: Some("gpu".into()),
                    operator: TolerationOperator::Exists,
                    value: None,
                    effect: None,
                },
                Toleration {
                    key: None,
                    operator: TolerationOperator::Exists,
                    value: None,
                    effect: Some(TaintEffect::NoExecute),
                },
            ]
        );
    }

    #[test]
    fn spread_match_label_keys_select_the_pods_own_values() {
        let p = pod(include_str!("../fixtures/spread.yaml"));
        assert_eq!(
            p.topology_spread,
            vec![
                TopologySpread {
                    max_skew: 1,
                    topology_key: labels::ZONE.into(),
                    when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
                    // A key the pod does not carry is skipped.
                    selector: selector(&[
                        ("app", Operator::In, &["web"]),
                        ("pod-template-hash", Operator::In, &["5d8f"]),
                    ]),
                    min_domains: Some(3),
                    node_affinity_policy: InclusionPolicy::Ignore,
                    node_taints_policy: InclusionPolicy::Honor,
                },
                TopologySpread {
                    max_skew: 2,
                    topology_key: labels::HOSTNAME.into(),
                    when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
                    selector: selector(&[("app", Operator::In, &["web", "api"])]),
                    min_domains: None,
                    node_affinity_policy: InclusionPolicy::Honor,
                    node_taints_policy: InclusionPolicy::Ignore,
                },
            ],
            "the constraint without a labelSelector counts no pods and is dropped"
        );
    }

    #[test]
    fn host_ports_default_to_tcp_on_every_address() {
        let p = pod(include_str!("../fixtures/host-ports.yaml"));
        assert_eq!(
            p.host_ports,
            vec![
                HostPort {
                    port: 80,
                    protocol: "TCP".into(),
                    host_ip: String::new(),
                },
                HostPort {
                    port: 5353,
                    protocol: "UDP".into(),
                    host_ip: "10.0.1.10".into(),
                },
            ],
            "ports without hostPort and init containers' ports bind nothing"
        );
    }

    #[test]
    fn host_network_binds_every_container_port() {
        let p = pod(&pod_with(
            "    ports: [{containerPort: 8080}]\n  hostNetwork: true\n",
        ));
        assert_eq!(
            p.host_ports.iter().map(|h| h.port).collect::<Vec<_>>(),
            vec![8080]
        );
    }

    #[test]
    fn reads_identity_owner_priority_disruption_and_phase() {
        let p = pod(include_str!("../fixtures/host-ports.yaml"));
        assert_eq!(p.key(), "edge/ingress");
        assert_eq!(p.uid, "0b5c3c1e-uid");
        assert_eq!(p.created_at, 1_714_564_800_000);
        assert_eq!(p.owner_kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(p.owner_name.as_deref(), Some("ingress-7c9d"));
        assert!(p.do_not_disrupt);
        assert_eq!(p.node_name.as_deref(), Some("ip-10-0-1-10.ec2.internal"));
        assert_eq!(p.priority, 1000);
        assert!(p.terminal);
        let plain = pod(&pod_with(""));
        assert_eq!(plain.namespace, "default");
        assert!(!plain.terminal && !plain.do_not_disrupt && plain.owner_kind.is_none());
    }

    #[test]
    fn invalid_constraints_name_the_field() {
        let cases = [
            (
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: a, operator: Bigger, values: ['1']}]\n",
                "nodeSelectorTerms[0].matchExpressions[0].operator: unknown operator \"Bigger\"",
            ),
            (
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: a, operator: Gt, values: [big]}]\n",
                "nodeSelectorTerms[0].matchExpressions[0]: invalid requirement on \"a\"",
            ),
            (
                "  tolerations: [{key: a, operator: Exists, value: b}]\n",
                "spec.tolerations[0].value",
            ),
            (
                "  tolerations: [{value: b}]\n",
                "spec.tolerations[0].operator: must be Exists",
            ),
            (
                "  tolerations: [{key: a, effect: Sometimes}]\n",
                "spec.tolerations[0].effect",
            ),
            (
                "  topologySpreadConstraints: [{maxSkew: 0, topologyKey: a, whenUnsatisfiable: DoNotSchedule}]\n",
                "spec.topologySpreadConstraints[0].maxSkew",
            ),
            (
                "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: a, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}]\n",
                "spec.topologySpreadConstraints[0].minDomains",
            ),
            (
                "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: a, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {'bad key': x}}}]\n",
                "spec.topologySpreadConstraints[0].labelSelector.matchLabels: key \"bad key\"",
            ),
            (
                "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: a, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchExpressions: [{key: app, operator: In, values: ['-x']}]}}]\n",
                "spec.topologySpreadConstraints[0].labelSelector.matchExpressions[0].values[0]: \"-x\"",
            ),
        ];
        for (spec, expected) in cases {
            let err = error(&pod_with(spec));
            assert!(err.starts_with("Pod default/web: "), "{err}");
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }
}
