//! Which EC2NodeClass each converted NodePool refers to, once all objects are read: renaming
//! provider classes that clash, and copying a class for NodePools whose kubelets differ.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::ConvertWarning;
use super::nodeclass::ClassOut;
use super::nodepool::PoolOut;

/// A class made from a Provisioner's inline provider takes the Provisioner's name; if another
/// class has that name, it becomes `<name>-provider`.
pub(super) fn rename_provider_classes(
    pools: &mut [PoolOut],
    classes: &mut [ClassOut],
    warnings: &mut Vec<ConvertWarning>,
) {
    for i in 0..classes.len() {
        let Some(pool) = classes[i].from_provider else {
            continue;
        };
        let name = classes[i].name.clone();
        if !classes.iter().enumerate().any(|(j, c)| j != i && c.name == name) {
            continue;
        }
        let renamed = format!("{name}-provider");
        let class = &mut classes[i];
        for value in [&mut class.value, &mut class.base] {
            if let Some(n) = value.pointer_mut("/metadata/name") {
                *n = json!(renamed);
            }
        }
        class.name = renamed.clone();
        if let Some(pool) = pools.get_mut(pool) {
            pool.point_at(&renamed);
            warnings.push(ConvertWarning {
                object: pool.object.clone(),
                field: "spec.provider".into(),
                message: format!("another EC2NodeClass is named {name}; the provider's is named {renamed}"),
            });
        }
    }
}

/// Kubelet settings move from the NodePool to the EC2NodeClass in v1. NodePools that share a
/// class but not their kubelet get copies of the class, `<class>-<nodepool>`, one per
/// distinct kubelet after the first.
pub(super) fn place_kubelets(
    pools: &mut [PoolOut],
    classes: &mut [ClassOut],
    warnings: &mut Vec<ConvertWarning>,
) {
    // Per class: the kubelet it holds (once decided) and who decided it.
    let mut held: HashMap<String, (Kubelet, String)> = HashMap::new();
    for class in classes.iter() {
        if let Some(k) = &class.kubelet {
            held.insert(
                class.name.clone(),
                (k.clone(), format!("EC2NodeClass {}", class.name)),
            );
        }
    }
    // Per (class, kubelet): the copy made for it.
    let mut copies: Vec<(String, Kubelet, String)> = Vec::new();
    for pool in pools.iter_mut().filter(|p| p.converted) {
        let class_name = pool.class.clone();
        let Some(ci) = classes.iter().position(|c| c.name == class_name) else {
            if let Some(k) = &pool.kubelet {
                warnings.push(ConvertWarning {
                    object: pool.object.clone(),
                    field: pool.kubelet_field.into(),
                    message: format!(
                        "belongs to the EC2NodeClass in v1, but EC2NodeClass {class_name} is not among \
                         the converted documents; add kubelet: {} to it by hand",
                        Value::Object(k.clone())
                    ),
                });
            }
            continue;
        };
        match held.get(&class_name) {
            None => {
                if let Some(k) = &pool.kubelet {
                    set_kubelet(&mut classes[ci].value, k);
                }
                held.insert(
                    class_name,
                    (pool.kubelet.clone(), format!("NodePool {}", pool.name)),
                );
            }
            Some((k, _)) if *k == pool.kubelet => {}
            Some((_, first)) => {
                let existing = copies
                    .iter()
                    .find(|(c, k, _)| *c == class_name && *k == pool.kubelet)
                    .map(|(_, _, name)| name.clone());
                let copy_name = match existing {
                    Some(name) => name,
                    None => {
                        let name = format!("{class_name}-{}", pool.name);
                        let mut copy = classes[ci].base.clone();
                        if let Some(n) = copy.pointer_mut("/metadata/name") {
                            *n = json!(name);
                        }
                        match &pool.kubelet {
                            Some(k) => set_kubelet(&mut copy, k),
                            None => {
                                if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                                    spec.remove("kubelet");
                                }
                            }
                        }
                        classes[ci].copies.push(copy);
                        copies.push((class_name.clone(), pool.kubelet.clone(), name.clone()));
                        name
                    }
                };
                warnings.push(ConvertWarning {
                    object: pool.object.clone(),
                    field: pool.kubelet_field.into(),
                    message: format!(
                        "differs from {first}'s, and both use EC2NodeClass {class_name}; kubelet belongs to \
                         the EC2NodeClass in v1, so this NodePool refers to a copy, EC2NodeClass {copy_name}"
                    ),
                });
                pool.point_at(&copy_name);
            }
        }
    }
}

/// A NodePool's kubelet settings, or none.
type Kubelet = Option<Map<String, Value>>;

fn set_kubelet(class: &mut Value, kubelet: &Map<String, Value>) {
    if let Some(spec) = class.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("kubelet".into(), Value::Object(kubelet.clone()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ROLE_PLACEHOLDER;
    use super::super::testing::*;

    const PROVISIONER_INLINE: &str = include_str!("../../fixtures/convert/v1alpha5-inline-provider.yaml");
    const V1BETA1: &str = include_str!("../../fixtures/convert/v1beta1-kubelet.yaml");

    #[test]
    fn a_provisioner_with_an_inline_provider_gets_an_ec2_node_class_of_its_own_name() {
        let c = convert_yaml(PROVISIONER_INLINE);
        assert_accepted(&c);
        let pool = find(&c, "NodePool", "batch");
        assert_eq!(pool["spec"]["template"]["spec"]["nodeClassRef"]["name"], "batch");
        // No ttlSecondsUntilExpired: v1alpha5 never expired nodes.
        assert_eq!(pool["spec"]["template"]["spec"]["expireAfter"], "Never");
        let class = find(&c, "EC2NodeClass", "batch");
        let spec = &class["spec"];
        assert_eq!(
            spec["amiSelectorTerms"],
            json!([{"alias": "bottlerocket@latest"}])
        );
        // Comma-separated tag values are alternatives: one term each.
        assert_eq!(
            spec["subnetSelectorTerms"],
            json!([
                {"tags": {"Name": "private-a"}},
                {"tags": {"Name": "private-b"}},
            ])
        );
        assert_eq!(
            spec["securityGroupSelectorTerms"],
            json!([{"tags": {"karpenter.sh/discovery": "*"}}])
        );
        // Neither role nor instance profile: a placeholder role, reported.
        assert_eq!(spec["role"], ROLE_PLACEHOLDER);
        // Metadata options left to the default keep v1alpha1's hop limit.
        assert_eq!(spec["metadataOptions"]["httpPutResponseHopLimit"], 2);
        let w = warnings(&c);
        assert!(
            w.iter()
                .any(|w| w.starts_with("Provisioner batch: spec.provider.instanceProfile:")),
            "{w:#?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("Provisioner batch: spec.provider.launchTemplate:")),
            "{w:#?}"
        );
    }

    #[test]
    fn a_v1beta1_nodepool_with_kubelet_moves_the_kubelet_to_its_ec2_node_class() {
        let c = convert_yaml(V1BETA1);
        assert_accepted(&c);
        let general = find(&c, "NodePool", "general");
        let spec = &general["spec"];
        assert_eq!(
            spec["disruption"]["consolidationPolicy"],
            "WhenEmptyOrUnderutilized"
        );
        assert_eq!(spec["disruption"]["consolidateAfter"], "0s");
        assert_eq!(spec["disruption"]["budgets"], json!([{"nodes": "20%"}]));
        assert_eq!(spec["template"]["spec"]["expireAfter"], "336h");
        assert!(spec["template"]["spec"].get("kubelet").is_none());
        assert_eq!(
            spec["template"]["spec"]["requirements"][0]["minValues"], 2,
            "minValues is kept"
        );
        let class = find(&c, "EC2NodeClass", "default");
        assert_eq!(class["spec"]["kubelet"]["maxPods"], 58);
        assert_eq!(
            class["spec"]["amiSelectorTerms"],
            json!([{"alias": "al2023@latest"}])
        );
        assert_eq!(class["spec"]["role"], "KarpenterNodeRole-my-cluster");

        // A second pool with other kubelet settings on the same class gets a copy of it.
        let gpu = find(&c, "NodePool", "gpu");
        assert_eq!(
            gpu["spec"]["template"]["spec"]["nodeClassRef"]["name"],
            "default-gpu"
        );
        let copy = find(&c, "EC2NodeClass", "default-gpu");
        assert_eq!(copy["spec"]["kubelet"]["maxPods"], 20);
        assert_eq!(
            copy["spec"]["subnetSelectorTerms"],
            class["spec"]["subnetSelectorTerms"]
        );
        assert!(
            warnings(&c).iter().any(
                |w| w.starts_with("NodePool gpu: spec.template.spec.kubelet: differs")
                    && w.contains("default-gpu")
            ),
            "{:#?}",
            c.warnings
        );
        // An AMI family with explicit terms keeps both.
        let custom = find(&c, "EC2NodeClass", "pinned");
        assert_eq!(custom["spec"]["amiFamily"], "AL2");
        assert_eq!(
            custom["spec"]["amiSelectorTerms"],
            json!([{"id": "ami-0123456789abcdef0"}])
        );
    }
}
