//! Test-data builders with sensible defaults: `pod("web").cpu("500m").zone_spread(1)`,
//! `nodepool("default").spot_only()`. Used by unit tests, benchmarks and the simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::{self, Ec2NodeClass, NodePool};
use crate::catalog::allocatable::NodeSettings;
use crate::catalog::embedded;
use crate::labels;
use crate::pod::{
    AffinityTerm, HostPort, InclusionPolicy, LabelSelector, Pod, Taint, TaintEffect, Toleration,
    TolerationOperator, TopologySpread, Weighted, WhenUnsatisfiable,
};
use crate::requirements::{Operator, Requirement, Requirements};
use crate::resources::{ResourceName, Resources};
use crate::scheduler::PoolInput;

/// Builds a [`Pod`] in namespace `default` requesting nothing but its pod slot.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        pod: Pod {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            requests: Resources::new().with(ResourceName::Pods, 1),
            owner_kind: Some("ReplicaSet".into()),
            ..Pod::default()
        },
    }
}

#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Pod,
}

fn quantity_units(resource: ResourceName, value: &str) -> i64 {
    let q = value
        .parse()
        .unwrap_or_else(|e| panic!("builder quantity {value}: {e}"));
    resource
        .units_of(q, value)
        .unwrap_or_else(|e| panic!("builder quantity {value}: {e}"))
}

impl PodBuilder {
    pub fn namespace(mut self, ns: &str) -> Self {
        self.pod.namespace = ns.into();
        self
    }

    pub fn cpu(self, value: &str) -> Self {
        self.request(ResourceName::Cpu, value)
    }

    pub fn memory(self, value: &str) -> Self {
        self.request(ResourceName::Memory, value)
    }

    pub fn gpus(self, count: i64) -> Self {
        self.request(ResourceName::NvidiaGpu, &count.to_string())
    }

    pub fn request(mut self, resource: ResourceName, value: &str) -> Self {
        self.pod.requests.set(resource, quantity_units(resource, value));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.pod.labels.insert(key.into(), value.into());
        self
    }

    pub fn created_at(mut self, millis: i64) -> Self {
        self.pod.created_at = millis;
        self
    }

    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.pod.node_selector.add(key, Requirement::is_in([value]));
        self
    }

    /// Adds a requirement to the (single) required node-affinity term.
    pub fn require(mut self, key: &str, op: Operator, values: &[&str]) -> Self {
        if self.pod.required_affinity.is_empty() {
            self.pod.required_affinity.push(Requirements::new());
        }
        let r = Requirement::new(op, values).unwrap_or_else(|e| panic!("builder requirement: {e}"));
        if let Some(term) = self.pod.required_affinity.last_mut() {
            term.add(key, r);
        }
        self
    }

    /// Adds another OR'ed required node-affinity term.
    pub fn or_require(mut self, key: &str, op: Operator, values: &[&str]) -> Self {
        self.pod.required_affinity.push(Requirements::new());
        self.require(key, op, values)
    }

    pub fn prefer(mut self, weight: i32, key: &str, op: Operator, values: &[&str]) -> Self {
        let mut term = Requirements::new();
        term.add(
            key,
            Requirement::new(op, values).unwrap_or_else(|e| panic!("builder requirement: {e}")),
        );
        self.pod.preferred_affinity.push(Weighted { weight, term });
        self
    }

    pub fn tolerate(mut self, key: &str, value: Option<&str>, effect: Option<TaintEffect>) -> Self {
        self.pod.tolerations.push(Toleration {
            key: Some(key.into()),
            operator: if value.is_some() {
                TolerationOperator::Equal
            } else {
                TolerationOperator::Exists
            },
            value: value.map(str::to_string),
            effect,
        });
        self
    }

    fn spread(
        mut self,
        key: &str,
        max_skew: i32,
        when: WhenUnsatisfiable,
        selector: &[(&str, &str)],
    ) -> Self {
        self.pod.topology_spread.push(TopologySpread {
            max_skew,
            topology_key: key.into(),
            when_unsatisfiable: when,
            selector: LabelSelector::match_labels(selector),
            min_domains: None,
            node_affinity_policy: InclusionPolicy::Honor,
            node_taints_policy: InclusionPolicy::Ignore,
        });
        self
    }

    /// Zone spread over pods with the same `app` label (set with [`Self::label`]).
    pub fn zone_spread(self, max_skew: i32) -> Self {
        let app = self.app();
        self.spread(
            labels::ZONE,
            max_skew,
            WhenUnsatisfiable::DoNotSchedule,
            &[("app", &app)],
        )
    }

    pub fn hostname_spread(self, max_skew: i32) -> Self {
        let app = self.app();
        self.spread(
            labels::HOSTNAME,
            max_skew,
            WhenUnsatisfiable::DoNotSchedule,
            &[("app", &app)],
        )
    }

    pub fn soft_spread(self, key: &str, max_skew: i32) -> Self {
        let app = self.app();
        self.spread(key, max_skew, WhenUnsatisfiable::ScheduleAnyway, &[("app", &app)])
    }

    pub fn spread_with(self, key: &str, max_skew: i32, selector: &[(&str, &str)]) -> Self {
        self.spread(key, max_skew, WhenUnsatisfiable::DoNotSchedule, selector)
    }

    fn app(&self) -> String {
        self.pod.labels.get("app").cloned().unwrap_or_default()
    }

    fn term(selector: &[(&str, &str)], key: &str) -> AffinityTerm {
        AffinityTerm {
            selector: LabelSelector::match_labels(selector),
            namespaces: Vec::new(),
            namespace_selector: None,
            topology_key: key.into(),
        }
    }

    pub fn affinity(mut self, key: &str, selector: &[(&str, &str)]) -> Self {
        self.pod.pod_affinity.push(Self::term(selector, key));
        self
    }

    pub fn anti_affinity(mut self, key: &str, selector: &[(&str, &str)]) -> Self {
        self.pod.pod_anti_affinity.push(Self::term(selector, key));
        self
    }

    pub fn preferred_anti_affinity(mut self, weight: i32, key: &str, selector: &[(&str, &str)]) -> Self {
        self.pod.preferred_pod_anti_affinity.push(Weighted {
            weight,
            term: Self::term(selector, key),
        });
        self
    }

    pub fn host_port(mut self, port: i32) -> Self {
        self.pod.host_ports.push(HostPort {
            port,
            protocol: "TCP".into(),
            host_ip: String::new(),
        });
        self
    }

    pub fn daemonset(mut self) -> Self {
        self.pod.owner_kind = Some("DaemonSet".into());
        self
    }

    pub fn on_node(mut self, node: &str) -> Self {
        self.pod.node_name = Some(node.into());
        self
    }

    pub fn build(self) -> Pod {
        self.pod
    }
}

/// A NodePool like Karpenter's getting-started one but allowing every category and both
/// capacity types unless narrowed.
pub fn nodepool(name: &str) -> NodePoolBuilder {
    NodePoolBuilder {
        yaml: serde_json::from_value(serde_json::json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
            "spec": {"template": {"spec": {
                "requirements": [],
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}
            }}}
        }))
        .unwrap_or_else(|e| panic!("builder nodepool: {e}")),
    }
}

#[derive(Debug, Clone)]
pub struct NodePoolBuilder {
    yaml: NodePool,
}

impl NodePoolBuilder {
    pub fn requirement(mut self, key: &str, op: Operator, values: &[&str]) -> Self {
        self.yaml
            .spec
            .template
            .spec
            .requirements
            .push(crate::requirements::NodeSelectorRequirement {
                key: key.into(),
                operator: op,
                values: values.iter().map(|v| v.to_string()).collect(),
                min_values: None,
            });
        self
    }

    pub fn min_values(mut self, key: &str, min: u32) -> Self {
        if let Some(r) = self
            .yaml
            .spec
            .template
            .spec
            .requirements
            .iter_mut()
            .find(|r| r.key == key)
        {
            r.min_values = Some(min);
        }
        self
    }

    pub fn spot_only(self) -> Self {
        self.requirement(labels::CAPACITY_TYPE, Operator::In, &["spot"])
    }

    pub fn on_demand_only(self) -> Self {
        self.requirement(labels::CAPACITY_TYPE, Operator::In, &["on-demand"])
    }

    pub fn amd64(self) -> Self {
        self.requirement(labels::ARCH, Operator::In, &["amd64"])
    }

    pub fn taint(mut self, key: &str, value: Option<&str>, effect: TaintEffect) -> Self {
        self.yaml
            .spec
            .template
            .spec
            .taints
            .push(Taint::new(key, value, effect));
        self
    }

    pub fn startup_taint(mut self, key: &str, effect: TaintEffect) -> Self {
        self.yaml
            .spec
            .template
            .spec
            .startup_taints
            .push(Taint::new(key, None, effect));
        self
    }

    pub fn limit(mut self, resource: &str, value: &str) -> Self {
        let q = value
            .parse()
            .unwrap_or_else(|e| panic!("builder limit {value}: {e}"));
        self.yaml.spec.limits.insert(resource.into(), q);
        self
    }

    pub fn weight(mut self, weight: i32) -> Self {
        self.yaml.spec.weight = Some(weight);
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.yaml
            .spec
            .template
            .metadata
            .labels
            .insert(key.into(), value.into());
        self
    }

    pub fn build(self) -> NodePool {
        self.yaml
    }
}

/// The getting-started EC2NodeClass (`al2023@latest`, discovery-tag selectors).
pub fn nodeclass(name: &str) -> Ec2NodeClass {
    match api::parse_config_object(&nodeclass_json(name, "al2023@latest")) {
        Ok(api::ConfigObject::Ec2NodeClass(nc)) => *nc,
        other => panic!("builder nodeclass: {other:?}"),
    }
}

/// A pool input over the embedded us-east-1 catalog with default node settings.
pub fn pool_input(nodepool: NodePool) -> PoolInput {
    static TYPES: std::sync::OnceLock<Arc<Vec<crate::catalog::InstanceType>>> = std::sync::OnceLock::new();
    let types = TYPES.get_or_init(|| {
        let catalog =
            embedded::catalog(&NodeSettings::default()).unwrap_or_else(|e| panic!("embedded catalog: {e}"));
        Arc::new(catalog.types)
    });
    PoolInput {
        nodepool,
        nodeclass: nodeclass("default"),
        instance_types: types.clone(),
    }
}

/// Labels for a node in a zone with a given instance type, as the kubelet would set them.
pub fn node_labels(name: &str, instance_type: &str, zone: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(labels::HOSTNAME.to_string(), name.to_string());
    l.insert(labels::INSTANCE_TYPE.to_string(), instance_type.to_string());
    l.insert(labels::ZONE.to_string(), zone.to_string());
    l.insert(labels::ARCH.to_string(), "amd64".to_string());
    l.insert(labels::OS.to_string(), "linux".to_string());
    l
}

/// Builders for the Karpenter-suite tests: finer topology, affinity and request options.
impl PodBuilder {
    /// Requests a resource outside [`ResourceName`] (a custom device plugin's, say).
    pub fn request_named(mut self, resource: &str, value: &str) -> Self {
        let q = value
            .parse()
            .unwrap_or_else(|e| panic!("builder quantity {value}: {e}"));
        self.pod
            .requests
            .add_named(resource, q, value)
            .unwrap_or_else(|e| panic!("builder quantity {value}: {e}"));
        self
    }

    /// A topology spread with any selector and `whenUnsatisfiable`.
    pub fn spread_selector(
        mut self,
        key: &str,
        max_skew: i32,
        when: WhenUnsatisfiable,
        selector: LabelSelector,
    ) -> Self {
        self.pod.topology_spread.push(TopologySpread {
            max_skew,
            topology_key: key.into(),
            when_unsatisfiable: when,
            selector,
            min_domains: None,
            node_affinity_policy: InclusionPolicy::Honor,
            node_taints_policy: InclusionPolicy::Ignore,
        });
        self
    }

    /// A ScheduleAnyway spread over pods matching `selector`.
    pub fn soft_spread_with(self, key: &str, max_skew: i32, selector: &[(&str, &str)]) -> Self {
        self.spread_selector(
            key,
            max_skew,
            WhenUnsatisfiable::ScheduleAnyway,
            LabelSelector::match_labels(selector),
        )
    }

    /// Sets `minDomains` on the last spread added.
    pub fn min_domains(mut self, min: i32) -> Self {
        if let Some(s) = self.pod.topology_spread.last_mut() {
            s.min_domains = Some(min);
        }
        self
    }

    /// Sets `nodeAffinityPolicy` on the last spread added.
    pub fn node_affinity_policy(mut self, policy: InclusionPolicy) -> Self {
        if let Some(s) = self.pod.topology_spread.last_mut() {
            s.node_affinity_policy = policy;
        }
        self
    }

    /// Sets `nodeTaintsPolicy` on the last spread added.
    pub fn node_taints_policy(mut self, policy: InclusionPolicy) -> Self {
        if let Some(s) = self.pod.topology_spread.last_mut() {
            s.node_taints_policy = policy;
        }
        self
    }

    /// A preferred node-affinity term with several requirements ANDed.
    pub fn prefer_all(mut self, weight: i32, reqs: &[(&str, Operator, &[&str])]) -> Self {
        let mut term = Requirements::new();
        for (key, op, values) in reqs {
            term.add(
                key,
                Requirement::new(*op, values).unwrap_or_else(|e| panic!("builder requirement: {e}")),
            );
        }
        self.pod.preferred_affinity.push(Weighted { weight, term });
        self
    }

    pub fn preferred_affinity(mut self, weight: i32, key: &str, selector: &[(&str, &str)]) -> Self {
        self.pod.preferred_pod_affinity.push(Weighted {
            weight,
            term: Self::term(selector, key),
        });
        self
    }

    /// Required pod affinity to pods in the listed namespaces.
    pub fn affinity_in_namespaces(
        mut self,
        key: &str,
        selector: &[(&str, &str)],
        namespaces: &[&str],
    ) -> Self {
        let mut term = Self::term(selector, key);
        term.namespaces = namespaces.iter().map(|n| n.to_string()).collect();
        self.pod.pod_affinity.push(term);
        self
    }

    /// Required pod affinity to pods in every namespace (an empty namespace selector).
    pub fn affinity_in_all_namespaces(mut self, key: &str, selector: &[(&str, &str)]) -> Self {
        let mut term = Self::term(selector, key);
        term.namespace_selector = Some(LabelSelector::default());
        self.pod.pod_affinity.push(term);
        self
    }

    /// Tolerates every taint with `effect` (or every taint at all), whatever its key.
    pub fn tolerate_any(mut self, effect: Option<TaintEffect>) -> Self {
        self.pod.tolerations.push(Toleration {
            key: None,
            operator: TolerationOperator::Exists,
            value: None,
            effect,
        });
        self
    }

    /// The pod has finished (Succeeded or Failed).
    pub fn terminal(mut self) -> Self {
        self.pod.terminal = true;
        self
    }
}

/// A Windows Server 2022 EC2NodeClass, as Karpenter's schema accepts it. nodewright's own
/// validation refuses Windows classes (it launches Linux nodes only), so this one is read
/// without it: the scheduler's handling of the OS label is tested on its own.
pub fn windows_nodeclass(name: &str) -> Ec2NodeClass {
    serde_json::from_value(nodeclass_json(name, "windows2022@latest"))
        .unwrap_or_else(|e| panic!("builder nodeclass: {e}"))
}

/// A node class with the getting-started selectors and the AMI `alias`.
fn nodeclass_json(name: &str, alias: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": name},
        "spec": {
            "role": "KarpenterNodeRole-test",
            "amiSelectorTerms": [{"alias": alias}],
            "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "test"}}],
            "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "test"}}]
        }
    })
}

/// A pool input over the embedded us-east-1 catalog with the node settings of `nodeclass`.
pub fn pool_input_with(nodepool: NodePool, nodeclass: Ec2NodeClass) -> PoolInput {
    let settings =
        NodeSettings::for_nodeclass(&nodeclass).unwrap_or_else(|e| panic!("builder node settings: {e}"));
    let catalog = embedded::catalog(&settings).unwrap_or_else(|e| panic!("embedded catalog: {e}"));
    PoolInput {
        nodepool,
        nodeclass,
        instance_types: Arc::new(catalog.types),
    }
}

/// A claim of pool `default` launched as an on-demand `m5.large` in `us-east-1a` (instance
/// `i-<id>`) at `launched_at`, carrying the labels and taints the plan gives it.
pub fn launched_claim(id: &str, launched_at: crate::pod::Millis) -> crate::nodeclaim::NodeClaim {
    use crate::catalog::CapacityType;
    use crate::nodeclaim::{ClaimState, LaunchedInstance, NodeClaim};
    NodeClaim {
        id: id.into(),
        nodepool: "default".into(),
        nodeclass: "default".into(),
        state: ClaimState::Launched,
        version: 1,
        instance_types: vec!["m5.large".into()],
        zones: vec!["us-east-1a".into()],
        capacity_types: vec![CapacityType::OnDemand],
        labels: BTreeMap::from([(labels::NODEPOOL.to_string(), "default".to_string())]),
        taints: Vec::new(),
        startup_taints: Vec::new(),
        requests: crate::resources::Resources::new(),
        pods: Vec::new(),
        instance: Some(LaunchedInstance {
            instance_id: format!("i-{id}"),
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::OnDemand,
            price: 0.096,
        }),
        node_name: None,
        created_at: launched_at,
        launched_at: Some(launched_at),
        registered_at: None,
        initialized_at: None,
        reason: None,
        termination: None,
        disruption: Default::default(),
    }
}

/// The Node the real kubelet registers for a launched claim: only the labels its user data and
/// the cloud controller give it, Ready, with the claim's taints and startup taints.
pub fn kubelet_node(
    claim: &crate::nodeclaim::NodeClaim,
    name: &str,
    created_at: crate::pod::Millis,
) -> crate::pod::Node {
    let instance = claim.instance.as_ref();
    let zone = instance.map_or("us-east-1a", |i| i.zone.as_str());
    let instance_type = instance.map_or("m5.large", |i| i.instance_type.as_str());
    let mut kubelet = labels::kubelet_labels(&claim.labels);
    kubelet.extend(node_labels(name, instance_type, zone));
    let mut taints = claim.taints.clone();
    taints.extend(claim.startup_taints.iter().cloned());
    crate::pod::Node {
        name: name.into(),
        labels: kubelet,
        taints,
        allocatable: Resources::new()
            .with(ResourceName::Cpu, 1_930)
            .with(ResourceName::Memory, 7 << 30)
            .with(ResourceName::Pods, 29),
        unschedulable: false,
        provider_id: instance.map(|i| format!("aws:///{zone}/{}", i.instance_id)),
        ready: true,
        created_at,
        deleting: false,
        do_not_disrupt: false,
    }
}
