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
        let labels = nodewright_core::labels::kubelet_labels(&claim.labels);
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
