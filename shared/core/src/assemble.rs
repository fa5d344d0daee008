//! The scheduler's input assembled from what was read, one way for every reader: the live
//! round (`provisioning::pool_inputs`, the pass), `nodewright plan` over manifests and the
//! simulator's baseline.
//!
//! [`pair_pools`] pairs each NodePool with the EC2NodeClass its `nodeClassRef` names and says
//! why for each pool it cannot pair; the catalogs are looked up by the caller (the live round
//! asks the cloud, the planner sizes the embedded catalog) for [`Pairing::nodeclasses`] and
//! handed to [`Pairing::into_pool_inputs`]. [`split_pods`] puts pods on their nodes or among
//! the pending.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::api::{Ec2NodeClass, NodePool};
use crate::catalog::InstanceType;
use crate::pod::{Node, Pod};
use crate::scheduler::{ExistingNode, PoolInput};

/// The only node class kind nodewright launches from, as a `nodeClassRef` names it.
pub const NODECLASS_GROUP: &str = "karpenter.k8s.aws";
pub const NODECLASS_KIND: &str = "EC2NodeClass";

/// Why a NodePool cannot be planned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnusablePool {
    /// Its `nodeClassRef` names another group or kind (another provider's node class).
    ForeignNodeClass {
        nodepool: String,
        group: String,
        kind: String,
    },
    /// No EC2NodeClass has the name its `nodeClassRef` gives.
    MissingNodeClass { nodepool: String, nodeclass: String },
}

impl UnusablePool {
    pub fn nodepool(&self) -> &str {
        match self {
            UnusablePool::ForeignNodeClass { nodepool, .. }
            | UnusablePool::MissingNodeClass { nodepool, .. } => nodepool,
        }
    }

    /// Why, without the pool's name.
    pub fn reason(&self) -> String {
        match self {
            UnusablePool::ForeignNodeClass { group, kind, .. } => format!(
                "nodeClassRef refers to {group} {kind}, but only {NODECLASS_GROUP} {NODECLASS_KIND} is supported"
            ),
            UnusablePool::MissingNodeClass { nodeclass, .. } => {
                format!("{NODECLASS_KIND} {nodeclass:?} not found")
            }
        }
    }
}

/// `NodePool name: why`, as `invalid_config` lists it.
impl fmt::Display for UnusablePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodePool {}: {}", self.nodepool(), self.reason())
    }
}

impl std::error::Error for UnusablePool {}

/// The EC2NodeClass `nodepool` launches with, or why it has none.
pub fn node_class_for<'a>(
    nodepool: &NodePool,
    nodeclasses: &'a [Ec2NodeClass],
) -> Result<&'a Ec2NodeClass, UnusablePool> {
    let class_ref = &nodepool.spec.template.spec.node_class_ref;
    if class_ref.group != NODECLASS_GROUP || class_ref.kind != NODECLASS_KIND {
        return Err(UnusablePool::ForeignNodeClass {
            nodepool: nodepool.name().to_string(),
            group: class_ref.group.clone(),
            kind: class_ref.kind.clone(),
        });
    }
    nodeclasses
        .iter()
        .find(|c| c.name() == class_ref.name)
        .ok_or_else(|| UnusablePool::MissingNodeClass {
            nodepool: nodepool.name().to_string(),
            nodeclass: class_ref.name.clone(),
        })
}

/// NodePools paired with their EC2NodeClasses, in the pools' order, and the pools left out.
#[derive(Debug, Clone)]
pub struct Pairing<'a> {
    pub pairs: Vec<(&'a NodePool, &'a Ec2NodeClass)>,
    pub unusable: Vec<UnusablePool>,
}

/// Pairs every pool with its node class (see [`node_class_for`]); a pool that cannot be paired
/// is listed with why, and the others are kept.
pub fn pair_pools<'a>(nodepools: &'a [NodePool], nodeclasses: &'a [Ec2NodeClass]) -> Pairing<'a> {
    let mut pairing = Pairing {
        pairs: Vec::new(),
        unusable: Vec::new(),
    };
    for nodepool in nodepools {
        match node_class_for(nodepool, nodeclasses) {
            Ok(nodeclass) => pairing.pairs.push((nodepool, nodeclass)),
            Err(why) => pairing.unusable.push(why),
        }
    }
    pairing
}

impl Pairing<'_> {
    /// The node classes the pairs use, each once, in the order first used: those a catalog is
    /// needed for.
    pub fn nodeclasses(&self) -> Vec<&Ec2NodeClass> {
        let mut out: Vec<&Ec2NodeClass> = Vec::new();
        for (_, nodeclass) in &self.pairs {
            if !out.iter().any(|c| c.name() == nodeclass.name()) {
                out.push(nodeclass);
            }
        }
        out
    }

    /// The scheduler's pools: each pair with its node class's catalog from `catalogs` (by node
    /// class name). A pair whose node class has none (its catalog could not be built, which the
    /// caller reports) is left out.
    pub fn into_pool_inputs(self, catalogs: &BTreeMap<String, Arc<Vec<InstanceType>>>) -> Vec<PoolInput> {
        self.pairs
            .into_iter()
            .filter_map(|(nodepool, nodeclass)| {
                let instance_types = catalogs.get(nodeclass.name())?.clone();
                Some(PoolInput {
                    nodepool: nodepool.clone(),
                    nodeclass: nodeclass.clone(),
                    instance_types,
                })
            })
            .collect()
    }
}

/// Pods sorted by where they are.
#[derive(Debug, Clone, Default)]
pub struct PodSplit {
    /// Every node, in the order given, with the pods bound to it in the order given.
    pub nodes: Vec<ExistingNode>,
    /// Unbound pods that wait for capacity.
    pub pending: Vec<Pod>,
    /// Pods bound to a node not among the nodes.
    pub on_unknown_nodes: Vec<Pod>,
}

/// Puts each pod on the node it is bound to, or among the pending. Finished pods hold nothing
/// and are left out, as are unbound DaemonSet pods: the DaemonSets' template pods stand for
/// them on every node.
pub fn split_pods(nodes: Vec<Node>, pods: impl IntoIterator<Item = Pod>) -> PodSplit {
    let index: BTreeMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut split = PodSplit {
        nodes: nodes
            .into_iter()
            .map(|node| ExistingNode {
                node,
                pods: Vec::new(),
            })
            .collect(),
        ..PodSplit::default()
    };
    for pod in pods.into_iter().filter(|p| !p.terminal) {
        match pod.node_name.as_ref().map(|n| index.get(n)) {
            Some(Some(&i)) => split.nodes[i].pods.push(pod),
            Some(None) => split.on_unknown_nodes.push(pod),
            None if pod.is_daemon() => {}
            None => split.pending.push(pod),
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{nodeclass, nodepool, pod};

    fn pool_with_ref(name: &str, group: &str, kind: &str, class: &str) -> NodePool {
        let mut pool = nodepool(name).build();
        let class_ref = &mut pool.spec.template.spec.node_class_ref;
        class_ref.group = group.into();
        class_ref.kind = kind.into();
        class_ref.name = class.into();
        pool
    }

    #[test]
    fn pools_are_paired_with_their_node_class_and_the_others_reported_with_why() {
        let pools = [
            pool_with_ref("a", NODECLASS_GROUP, NODECLASS_KIND, "default"),
            pool_with_ref("foreign", "karpenter.azure.com", "AKSNodeClass", "default"),
            pool_with_ref("lost", NODECLASS_GROUP, NODECLASS_KIND, "gone"),
            pool_with_ref("b", NODECLASS_GROUP, NODECLASS_KIND, "default"),
        ];
        let classes = [nodeclass("default"), nodeclass("spare")];
        let pairing = pair_pools(&pools, &classes);
        let paired: Vec<(&str, &str)> = pairing.pairs.iter().map(|(p, c)| (p.name(), c.name())).collect();
        assert_eq!(paired, [("a", "default"), ("b", "default")]);
        let reasons: Vec<String> = pairing.unusable.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "NodePool foreign: nodeClassRef refers to karpenter.azure.com AKSNodeClass, but only \
                 karpenter.k8s.aws EC2NodeClass is supported",
                "NodePool lost: EC2NodeClass \"gone\" not found",
            ]
        );
        let needed: Vec<&str> = pairing.nodeclasses().iter().map(|c| c.name()).collect();
        assert_eq!(needed, ["default"]);
    }

    #[test]
    fn pools_whose_node_class_has_no_catalog_are_left_out() {
        let pools = [nodepool("a").build(), nodepool("b").build()];
        let classes = [nodeclass("default")];
        assert!(
            pair_pools(&pools, &classes)
                .into_pool_inputs(&BTreeMap::new())
                .is_empty()
        );
        let types = Arc::new(Vec::new());
        let catalogs = BTreeMap::from([("default".to_string(), types.clone())]);
        let inputs = pair_pools(&pools, &classes).into_pool_inputs(&catalogs);
        assert_eq!(inputs.len(), 2);
        assert!(inputs.iter().all(|p| Arc::ptr_eq(&p.instance_types, &types)));
    }

    #[test]
    fn pods_go_to_their_nodes_or_pending_and_finished_and_daemon_pods_are_left_out() {
        let node = |name: &str| Node {
            name: name.into(),
            ..Node::default()
        };
        let nodes = vec![node("n1"), node("n2")];
        let pods = vec![
            pod("on-n2").on_node("n2").build(),
            pod("waiting").build(),
            pod("done").on_node("n1").terminal().build(),
            pod("agent").daemonset().build(),
            pod("stray").on_node("n9").build(),
            pod("also-on-n2").on_node("n2").build(),
        ];
        let split = split_pods(nodes, pods);
        let on: Vec<(&str, Vec<&str>)> = split
            .nodes
            .iter()
            .map(|n| {
                (
                    n.node.name.as_str(),
                    n.pods.iter().map(|p| p.name.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(on, [("n1", vec![]), ("n2", vec!["on-n2", "also-on-n2"])]);
        let names = |pods: &[Pod]| pods.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&split.pending), ["waiting"]);
        assert_eq!(names(&split.on_unknown_nodes), ["stray"]);
    }
}
