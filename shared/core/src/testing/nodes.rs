//! Nodes with defaults: Ready and schedulable, an `m5.large` in `us-east-1a` with the labels
//! the kubelet sets, 2 CPUs, 8 GiB and 110 pod slots allocatable.

use crate::builders::node_labels;
use crate::labels;
use crate::pod::{Node, Pod};
use crate::resources::{ResourceName, Resources};
use crate::scheduler::ExistingNode;

pub fn node(name: &str) -> NodeBuilder {
    NodeBuilder {
        node: Node {
            name: name.into(),
            labels: node_labels(name, "m5.large", "us-east-1a"),
            allocatable: Resources::new()
                .with(ResourceName::Cpu, 2_000)
                .with(ResourceName::Memory, 8 << 30)
                .with(ResourceName::Pods, 110),
            ready: true,
            ..Node::default()
        },
    }
}

#[derive(Debug, Clone)]
pub struct NodeBuilder {
    node: Node,
}

impl NodeBuilder {
    pub fn instance_type(self, instance_type: &str) -> Self {
        self.label(labels::INSTANCE_TYPE, instance_type)
    }

    pub fn zone(self, zone: &str) -> Self {
        self.label(labels::ZONE, zone)
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.node.labels.insert(key.into(), value.into());
        self
    }

    /// Allocatable CPU as a quantity (`"4"`, `"3500m"`).
    pub fn cpu(self, quantity: &str) -> Self {
        self.allocatable(ResourceName::Cpu, quantity)
    }

    /// Allocatable memory as a quantity (`"16Gi"`).
    pub fn memory(self, quantity: &str) -> Self {
        self.allocatable(ResourceName::Memory, quantity)
    }

    fn allocatable(mut self, resource: ResourceName, quantity: &str) -> Self {
        let parsed = Resources::from_quantities([(resource.as_str(), quantity)])
            .unwrap_or_else(|e| panic!("node {}: {quantity}: {e}", self.node.name));
        self.node.allocatable.set(resource, parsed.get(resource));
        self
    }

    /// Cordoned.
    pub fn unschedulable(mut self) -> Self {
        self.node.unschedulable = true;
        self
    }

    pub fn build(self) -> Node {
        self.node
    }

    /// The node as the scheduler sees it, with `pods` bound to it.
    pub fn with_pods(self, pods: Vec<Pod>) -> ExistingNode {
        ExistingNode {
            node: self.node,
            pods,
        }
    }
}
