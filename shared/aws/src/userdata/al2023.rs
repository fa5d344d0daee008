//! AL2023: nodeadm reads every `application/node.eks.aws` part of a MIME document and merges
//! them in order, so ours goes last and wins on what it sets; the user's parts (NodeConfigs or
//! scripts) come first.

use serde::Serialize;

use super::{Bootstrap, custom_parts, invalid, mime};
use nodewright_core::ports::PortResult;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeConfig<'a> {
    api_version: &'static str,
    kind: &'static str,
    spec: Spec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    cluster: Cluster<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<Instance>,
    kubelet: Kubelet<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cluster<'a> {
    name: &'a str,
    api_server_endpoint: &'a str,
    /// nodeadm reads this field as bytes, so YAML carries it base64-encoded: the bundle as EKS
    /// hands it out.
    certificate_authority: &'a str,
    cidr: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    local_storage: LocalStorage,
}

#[derive(Serialize)]
struct LocalStorage {
    strategy: &'static str,
}

#[derive(Serialize)]
struct Kubelet<'a> {
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    config: &'a serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
}

pub(super) fn render(b: &Bootstrap) -> PortResult<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(&b.ca_bundle)
        .map_err(|_| invalid("the cluster CA bundle is not base64".to_string()))?;
    let mut flags = Vec::new();
    if !b.labels.is_empty() {
        flags.push(format!("--node-labels={}", b.labels_arg()));
    }
    if !b.taints.is_empty() {
        flags.push(format!("--register-with-taints={}", b.taints_arg()));
    }
    let config = NodeConfig {
        api_version: "node.eks.aws/v1alpha1",
        kind: "NodeConfig",
        spec: Spec {
            cluster: Cluster {
                name: &b.cluster_name,
                api_server_endpoint: &b.cluster_endpoint,
                certificate_authority: &b.ca_bundle,
                cidr: &b.service_cidr,
            },
            instance: b.raid0.then_some(Instance {
                local_storage: LocalStorage { strategy: "RAID0" },
            }),
            kubelet: Kubelet {
                config: &b.kubelet_config,
                flags,
            },
        },
    };
    // Nothing folded: the CA bundle stays one base64 token. Strings YAML 1.1 would read as
    // something else are quoted, as nodeadm's Go YAML reader needs.
    let options = serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX };
    let yaml = serde_saphyr::to_string_with_options(&config, options)
        .map_err(|e| invalid(format!("cannot write the NodeConfig: {e}")))?;

    let mut parts = custom_parts(b.custom.as_deref(), |custom| {
        if is_yaml_mapping(custom) {
            mime::NODE_CONFIG
        } else {
            mime::SHELL_SCRIPT
        }
    })?;
    parts.push(mime::Part::new(mime::NODE_CONFIG, &yaml));
    Ok(mime::serialize(&parts))
}

/// A bare NodeConfig is YAML holding a mapping; a shell script is at best a YAML scalar.
fn is_yaml_mapping(s: &str) -> bool {
    serde_saphyr::from_str::<serde_json::Value>(s).is_ok_and(|v| v.is_object())
}
