//! Helpers shared by the Karpenter-suite tests: rounds, where pods landed, what labels their
//! nodes will carry, and topology counts over the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use nodewright_core::api::NodePool;
pub use nodewright_core::builders::{NodePoolBuilder, PodBuilder, nodepool, pod, pool_input};
pub use nodewright_core::catalog::{CapacityType, InstanceType};
pub use nodewright_core::labels;
pub use nodewright_core::nodeclaim::NodeClaim;
pub use nodewright_core::pod::{InclusionPolicy, LabelSelector, Pod, Taint, TaintEffect, WhenUnsatisfiable};
pub use nodewright_core::requirements::Operator;
pub use nodewright_core::resources::{ResourceName, Resources};
pub use nodewright_core::scheduler::{ExistingNode, Input, Plan, PlannedClaim, schedule};
use nodewright_core::testing::{claim, node};

/// Karpenter's fake cloud has three zones; pools limited to these three keep its counts.
pub const THREE_ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// The selector most topology tests use, as Karpenter's suite does.
pub const APP: (&str, &str) = ("test", "test");

/// A pool over both architectures and capacity types, like Karpenter's default test pool.
pub fn any_pool(name: &str) -> NodePoolBuilder {
    nodepool(name)
}

/// A pool limited to three zones (Karpenter's fake cloud), both capacity types.
pub fn three_zone_pool(name: &str) -> NodePoolBuilder {
    nodepool(name).requirement(labels::ZONE, Operator::In, &THREE_ZONES)
}

/// `n` pods named `{prefix}{i}`, each built by `f`.
pub fn pods(n: usize, prefix: &str, f: impl Fn(PodBuilder) -> PodBuilder) -> Vec<Pod> {
    (0..n).map(|i| f(pod(&format!("{prefix}{i}"))).build()).collect()
}

/// The catalog every pool input built by `pool_input` shares.
pub fn catalog() -> Arc<Vec<InstanceType>> {
    pool_input(nodepool("catalog").build()).instance_types
}

pub fn instance_type(name: &str) -> InstanceType {
    catalog()
        .iter()
        .find(|t| t.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not in the embedded catalog"))
}

fn full_key(pod: &str) -> String {
    if pod.contains('/') {
        pod.to_string()
    } else {
        format!("default/{pod}")
    }
}

/// Where a pod went.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Host {
    /// A claim of this plan, by index in `new_claims`.
    New(usize),
    Existing(String),
    InFlight(String),
}

/// One scheduling round: its input and the plan.
#[derive(Debug)]
pub struct Round {
    pub input: Input,
    pub plan: Plan,
}

impl Round {
    pub fn new(pending: Vec<Pod>, pools: Vec<NodePool>) -> Round {
        Round::of(Input {
            pending,
            pools: pools.into_iter().map(pool_input).collect(),
            ..Input::default()
        })
    }

    pub fn of(input: Input) -> Round {
        let plan = schedule(&input);
        Round { input, plan }
    }

    pub fn host(&self, pod: &str) -> Option<Host> {
        let key = full_key(pod);
        if let Some(i) = self.plan.new_claims.iter().position(|c| c.pods.contains(&key)) {
            return Some(Host::New(i));
        }
        if let Some(a) = self.plan.existing.iter().find(|a| a.pods.contains(&key)) {
            return Some(Host::Existing(a.host.clone()));
        }
        self.plan
            .in_flight
            .iter()
            .find(|a| a.pods.contains(&key))
            .map(|a| Host::InFlight(a.host.clone()))
    }

    /// Where a pod went; panics with the plan when it went nowhere.
    pub fn placed(&self, pod: &str) -> Host {
        self.host(pod)
            .unwrap_or_else(|| panic!("{pod} was not placed: {:#?}", self.plan))
    }

    pub fn is_unschedulable(&self, pod: &str) -> bool {
        let key = full_key(pod);
        self.plan.unschedulable.iter().any(|u| u.pod == key)
    }

    pub fn assert_unschedulable(&self, pod: &str) {
        assert!(
            self.is_unschedulable(pod) && self.host(pod).is_none(),
            "{pod} should be unschedulable: {:#?}",
            self.plan
        );
    }

    pub fn assert_all_placed(&self) {
        assert!(
            self.plan.unschedulable.is_empty(),
            "{:#?}",
            self.plan.unschedulable
        );
    }

    /// The new claim a pod went to; panics when it went elsewhere or nowhere.
    pub fn claim(&self, pod: &str) -> &PlannedClaim {
        match self.placed(pod) {
            Host::New(i) => &self.plan.new_claims[i],
            other => panic!("{pod} went to {other:?}, not a new claim"),
        }
    }

    pub fn same_host(&self, a: &str, b: &str) -> bool {
        self.placed(a) == self.placed(b)
    }

    fn types_of(&self, nodepool: &str) -> Arc<Vec<InstanceType>> {
        self.input
            .pools
            .iter()
            .find(|p| p.nodepool.name() == nodepool)
            .map(|p| p.instance_types.clone())
            .unwrap_or_else(catalog)
    }

    /// A claim's candidate types, cheapest first.
    pub fn candidates(&self, c: &PlannedClaim) -> Vec<InstanceType> {
        let types = self.types_of(&c.nodepool);
        c.instance_types
            .iter()
            .map(|n| {
                types
                    .iter()
                    .find(|t| &t.name == n)
                    .cloned()
                    .unwrap_or_else(|| panic!("claim type {n} is not in its pool's catalog"))
            })
            .collect()
    }

    /// The value of `key` the node of a new claim will carry, when every candidate agrees.
    pub fn claim_value(&self, c: &PlannedClaim, key: &str) -> Option<String> {
        if let Some(v) = c.labels.get(key) {
            return Some(v.clone());
        }
        match key {
            labels::ZONE => return (c.zones.len() == 1).then(|| c.zones[0].clone()),
            labels::CAPACITY_TYPE => {
                return (c.capacity_types.len() == 1).then(|| c.capacity_types[0].as_str().to_string());
            }
            _ => {}
        }
        let values: Vec<Option<String>> = self
            .candidates(c)
            .iter()
            .map(|t| t.labels.get(key).cloned())
            .collect();
        let first = values.first().cloned().flatten()?;
        values
            .iter()
            .all(|v| v.as_deref() == Some(first.as_str()))
            .then_some(first)
    }

    /// The value of `key` on the node a pod went to (`None`: unset or not settled yet).
    pub fn value(&self, pod: &str, key: &str) -> Option<String> {
        match self.placed(pod) {
            Host::New(i) if key == labels::HOSTNAME => Some(format!("new-{i}")),
            Host::New(i) => self.claim_value(&self.plan.new_claims[i], key),
            Host::Existing(n) => self.node_value(&n, key),
            Host::InFlight(id) => self.in_flight_value(&id, key),
        }
    }

    fn node_value(&self, node: &str, key: &str) -> Option<String> {
        let n = self.input.nodes.iter().find(|n| n.node.name == node)?;
        if key == labels::HOSTNAME {
            return Some(node.to_string());
        }
        n.node.labels.get(key).cloned()
    }

    fn in_flight_value(&self, id: &str, key: &str) -> Option<String> {
        let c = self.input.in_flight.iter().find(|c| c.id == id)?;
        match (key, &c.instance) {
            (labels::HOSTNAME, _) => Some(id.to_string()),
            (labels::ZONE, Some(i)) => Some(i.zone.clone()),
            (labels::CAPACITY_TYPE, Some(i)) => Some(i.capacity_type.as_str().to_string()),
            (labels::INSTANCE_TYPE, Some(i)) => Some(i.instance_type.clone()),
            (labels::ZONE, None) => (c.zones.len() == 1).then(|| c.zones[0].clone()),
            _ => c.labels.get(key).cloned(),
        }
    }

    /// Pods per domain of `key` among pods in namespace `default` matching `selector`: pods
    /// placed in this round and pods already bound to existing nodes, sorted ascending.
    /// A placed pod whose node has no settled value counts under `"<unsettled>"`.
    pub fn skew(&self, key: &str, selector: &[(&str, &str)]) -> Vec<usize> {
        self.domain_counts(key, selector)
            .into_values()
            .collect::<Vec<_>>()
            .sorted()
    }

    pub fn domain_counts(&self, key: &str, selector: &[(&str, &str)]) -> BTreeMap<String, usize> {
        let sel = LabelSelector::match_labels(selector);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for p in self.input.pending.iter().filter(|p| p.namespace == "default") {
            if !sel.matches(&p.labels) || self.host(&p.key()).is_none() {
                continue;
            }
            let v = self.value(&p.key(), key);
            *counts
                .entry(v.unwrap_or_else(|| "<unsettled>".into()))
                .or_default() += 1;
        }
        for n in &self.input.nodes {
            let v = if key == labels::HOSTNAME {
                Some(n.node.name.clone())
            } else {
                n.node.labels.get(key).cloned()
            };
            let Some(v) = v else { continue };
            for p in n.pods.iter().filter(|p| !p.terminal && p.namespace == "default") {
                if sel.matches(&p.labels) {
                    *counts.entry(v.clone()).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Sum of the requests of the pods planned onto a claim (without daemonset overhead).
    pub fn pod_requests(&self, c: &PlannedClaim) -> Resources {
        let mut total = Resources::new();
        for p in self.input.pending.iter().filter(|p| c.pods.contains(&p.key())) {
            total.add(&p.requests);
        }
        total
    }
}

/// `Vec::sorted` for terse expectations.
pub trait Sorted {
    fn sorted(self) -> Self;
}

impl Sorted for Vec<usize> {
    fn sorted(mut self) -> Self {
        self.sort_unstable();
        self
    }
}

/// An existing node (Ready, schedulable) with some allocatable CPU and plenty else.
pub fn existing(name: &str, instance_type: &str, zone: &str, cpu: &str) -> ExistingNode {
    node(name)
        .instance_type(instance_type)
        .zone(zone)
        .cpu(cpu)
        .memory("64Gi")
        .with_pods(Vec::new())
}

/// A claim of pool `default` that EC2 launched as `instance_type` in `zone` (on demand), its
/// node not yet registered, planned for `pods` (pending pods it reserves).
pub fn launched(id: &str, instance_type: &str, zone: &str, pods: &[&str]) -> NodeClaim {
    let pods: Vec<String> = pods.iter().map(|p| full_key(p)).collect();
    claim(id)
        .without_labels()
        .version(2)
        .instance_types(&[instance_type])
        .zones(&[zone])
        .pods(&pods)
        .launched(&format!("i-{id}"), 0)
        .price(0.2)
        .build()
}

/// The cheapest price among offerings of types for which `fits(type, zone, capacity type)`.
pub fn cheapest_price(
    types: &[InstanceType],
    fits: impl Fn(&InstanceType, &str, CapacityType) -> bool,
) -> f64 {
    types
        .iter()
        .flat_map(|t| {
            t.offerings
                .iter()
                .filter(|o| fits(t, &o.zone, o.capacity_type))
                .map(|o| o.price)
                .collect::<Vec<_>>()
        })
        .min_by(f64::total_cmp)
        .expect("some offering fits")
}

pub fn label<'t>(t: &'t InstanceType, key: &str) -> &'t str {
    t.labels.get(key).map_or("", String::as_str)
}
