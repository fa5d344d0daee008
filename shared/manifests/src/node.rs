//! Nodes: an existing node's labels, taints and room.

use k8s_openapi::api::core::v1 as k8s;
use nodewright_core::pod::{Node, Taint};
use nodewright_core::resources::Resources;

use crate::constraints::{taint_effect, unknown_effect};
use crate::error::{Error, Result};
use crate::pod::millis;

/// Converts a node. Allocatable comes from `status.allocatable`, or `status.capacity` when a
/// hand-written node gives only that (a kubelet reserving nothing reports them equal); a node
/// with neither is an error, since pods bound to it would have no room to count against.
pub fn node_from_k8s(node: &k8s::Node) -> Result<Node> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let object = format!("Node {name}");
    if name.is_empty() {
        return Err(Error::invalid(&object, "metadata.name", "is required"));
    }
    let spec = node.spec.as_ref();
    let status = node.status.as_ref();
    let (field, list) = match (
        status.and_then(|s| s.allocatable.as_ref()),
        status.and_then(|s| s.capacity.as_ref()),
    ) {
        (Some(a), _) => ("status.allocatable", a),
        (None, Some(c)) => ("status.capacity", c),
        (None, None) => {
            return Err(Error::invalid(
                &object,
                "status.allocatable",
                "is required: without it the node has no room for pods",
            ));
        }
    };
    let mut allocatable = Resources::new();
    for (resource, q) in list {
        let one = Resources::from_quantities([(resource.as_str(), q.0.as_str())])
            .map_err(|e| Error::value(&object, format!("{field}.{resource}"), e))?;
        allocatable.add(&one);
    }
    let mut taints = Vec::new();
    for (i, t) in spec
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let effect = taint_effect(&t.effect).ok_or_else(|| {
            Error::invalid(
                &object,
                format!("spec.taints[{i}].effect"),
                unknown_effect(&t.effect),
            )
        })?;
        taints.push(Taint {
            key: t.key.clone(),
            value: t.value.clone().filter(|v| !v.is_empty()),
            effect,
            time_added: t.time_added.as_ref().map(|ts| ts.0.to_string()),
        });
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    Ok(Node {
        name: name.to_string(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        taints,
        allocatable,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        provider_id: spec.and_then(|s| s.provider_id.clone()).filter(|p| !p.is_empty()),
        ready,
        created_at: millis(node.metadata.creation_timestamp.as_ref()),
        deleting: node.metadata.deletion_timestamp.is_some(),
        do_not_disrupt: node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(nodewright_core::labels::DO_NOT_DISRUPT))
            .is_some_and(|v| v == "true"),
    })
}

#[cfg(test)]
mod tests {
    use nodewright_core::pod::TaintEffect;
    use nodewright_core::resources::ResourceName;

    use super::*;
    use crate::testing::{chain, k8s};

    #[test]
    fn converts_a_node_as_the_kubelet_reports_it() {
        let node = node_from_k8s(&k8s(include_str!("../fixtures/node.yaml"))).expect("converts");
        assert_eq!(node.name, "ip-10-0-1-10.ec2.internal");
        assert_eq!(node.labels["node.kubernetes.io/instance-type"], "m5.large");
        assert_eq!(node.allocatable.cpu(), 1930);
        assert_eq!(node.allocatable.memory(), 7_068_700 * 1024);
        assert_eq!(node.allocatable.pods(), 29);
        assert_eq!(
            node.allocatable.get(ResourceName::EphemeralStorage),
            18_242_267_924
        );
        assert_eq!(
            node.taints,
            vec![
                Taint::new("dedicated", Some("shop"), TaintEffect::NoSchedule),
                Taint {
                    time_added: Some("2024-05-02T10:59:00Z".into()),
                    ..Taint::new("karpenter.sh/disrupted", None, TaintEffect::NoSchedule)
                },
            ]
        );
        assert!(node.unschedulable && node.ready && node.deleting);
        assert_eq!(node.instance_id(), Some("i-0123456789abcdef0"));
        assert_eq!(node.created_at, 1_714_561_200_000);
    }

    #[test]
    fn a_node_without_allocatable_falls_back_to_capacity_and_without_either_is_an_error() {
        let yaml = "apiVersion: v1\nkind: Node\nmetadata: {name: n}\nstatus: {capacity: {cpu: 4}}\n";
        let node = node_from_k8s(&k8s(yaml)).expect("converts");
        assert_eq!(node.allocatable.cpu(), 4000);
        assert!(!node.ready, "no Ready condition means not ready");
        let err =
            node_from_k8s(&k8s("apiVersion: v1\nkind: Node\nmetadata: {name: n}\n")).expect_err("no room");
        assert!(
            chain(&err).starts_with("Node n: status.allocatable: is required"),
            "{err}"
        );
    }
}
