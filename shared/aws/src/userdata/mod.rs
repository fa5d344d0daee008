//! User data that joins an instance to the cluster, per AMI family:
//!
//! - AL2023: a nodeadm `NodeConfig` in a MIME multipart document, after the user's own parts;
//! - AL2: a shell script calling `/etc/eks/bootstrap.sh`, after the user's own parts;
//! - Bottlerocket: TOML settings merged into the user's TOML;
//! - Custom: the user's user data, unchanged.
//!
//! The output is plain text; the launch template base64-encodes it.

mod al2;
mod al2023;
mod bottlerocket;
pub mod mime;

use std::collections::BTreeMap;

use nodewright_core::api::{AmiFamily, Ec2NodeClass, KubeletOverrides};
use nodewright_core::nodeclaim::NodeClaim;
use nodewright_core::pod::Taint;
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

use crate::config::AwsConfig;

/// Everything the user data of one node says.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    pub cluster_name: String,
    pub cluster_endpoint: String,
    /// Base64-encoded PEM.
    pub ca_bundle: String,
    pub service_cidr: String,
    pub cluster_dns_ip: String,
    /// Labels the kubelet registers the node with (only those it is allowed to set).
    pub labels: BTreeMap<String, String>,
    /// Taints the kubelet registers the node with: the claim's taints and startup taints.
    pub taints: Vec<Taint>,
    /// The node class's `kubelet` block as written; AL2023 hands it to the kubelet whole.
    pub kubelet_config: serde_json::Map<String, serde_json::Value>,
    /// The parts of `kubelet` that AL2 and Bottlerocket translate into flags and settings.
    pub kubelet: KubeletOverrides,
    /// `instanceStorePolicy: RAID0`: stripe the local NVMe disks for ephemeral storage.
    pub raid0: bool,
    /// The node class's `userData`.
    pub custom: Option<String>,
}

impl Bootstrap {
    pub fn new(config: &AwsConfig, nodeclass: &Ec2NodeClass, claim: &NodeClaim) -> PortResult<Bootstrap> {
        let kubelet = nodeclass
            .kubelet()
            .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()).with_source(e))?;
        let labels = claim
            .labels
            .iter()
            .filter(|(k, _)| kubelet_may_set(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut taints = claim.taints.clone();
        taints.extend(claim.startup_taints.iter().cloned());
        Ok(Bootstrap {
            cluster_name: config.cluster_name.clone(),
            cluster_endpoint: config.cluster_endpoint.clone(),
            ca_bundle: config.cluster_ca_bundle.clone(),
            service_cidr: config.service_cidr.clone(),
            cluster_dns_ip: config.cluster_dns_ip()?,
            labels,
            taints,
            kubelet_config: nodeclass.spec.kubelet.clone().unwrap_or_default(),
            kubelet,
            raid0: nodeclass.spec.instance_store_policy.as_deref() == Some("RAID0"),
            custom: nodeclass.spec.user_data.clone().filter(|u| !u.trim().is_empty()),
        })
    }

    /// The user data for an AMI family, as plain text.
    pub fn render(&self, family: AmiFamily) -> PortResult<String> {
        match family {
            AmiFamily::AL2023 => al2023::render(self),
            AmiFamily::AL2 => al2::render(self),
            AmiFamily::Bottlerocket => bottlerocket::render(self),
            AmiFamily::Custom => Ok(self.custom.clone().unwrap_or_default()),
            AmiFamily::Windows2019 | AmiFamily::Windows2022 => Err(invalid(format!(
                "amiFamily {family:?} is not supported: nodewright launches Linux nodes only"
            ))),
        }
    }

    /// `k=v,k2=v2`, sorted by key.
    fn labels_arg(&self) -> String {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `k=v:Effect,k2:Effect`, in the claim's order.
    fn taints_arg(&self) -> String {
        self.taints
            .iter()
            .map(Taint::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Whether the kubelet may register a node with this label: the NodeRestriction admission
/// plugin rejects a node that sets a `kubernetes.io` or `k8s.io` label outside a short list,
/// and such a node never joins. Those labels are applied to the Node object later instead.
pub fn kubelet_may_set(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    let restricted = |domain: &str| prefix == domain || prefix.ends_with(&format!(".{domain}"));
    if !restricted("kubernetes.io") && !restricted("k8s.io") {
        return true;
    }
    const ALLOWED: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    ALLOWED.contains(&key) || prefix == "kubelet.kubernetes.io" || prefix == "node.kubernetes.io"
}

/// The user's user data as parts, for the families that merge MIME documents: a MIME document
/// gives its parts, anything else becomes one part of `bare_type`.
fn custom_parts(
    custom: Option<&str>,
    bare_type: impl Fn(&str) -> &'static str,
) -> PortResult<Vec<mime::Part>> {
    let Some(custom) = custom else {
        return Ok(Vec::new());
    };
    if mime::is_mime(custom) {
        return mime::parse(custom).map_err(|e| invalid(format!("userData: {e}")));
    }
    Ok(vec![mime::Part::new(bare_type(custom), custom)])
}

fn invalid(message: String) -> PortError {
    PortError::new(ErrorKind::Invalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelet_sets_only_labels_node_restriction_allows() {
        assert!(kubelet_may_set("team"));
        assert!(kubelet_may_set("karpenter.sh/nodepool"));
        assert!(kubelet_may_set("karpenter.k8s.aws/instance-family"));
        assert!(kubelet_may_set("topology.kubernetes.io/zone"));
        assert!(kubelet_may_set("node.kubernetes.io/instance-type"));
        assert!(kubelet_may_set("node.kubernetes.io/anything"));
        assert!(!kubelet_may_set("node-role.kubernetes.io/worker"));
        assert!(!kubelet_may_set("kubernetes.io/role"));
        assert!(!kubelet_may_set("example.k8s.io/x"));
    }
}
