//! `karpenter.k8s.aws/v1 EC2NodeClass`: its schema, accessors and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::quantity::Quantity;

use super::ObjectMeta;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ec2NodeClass {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: Ec2NodeClassSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")
    )]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// serde reads `associatePublicIpAddress` too (an alias schemars does not list): the CRD keeps it
// rather than pruning it.
#[cfg_attr(
    feature = "schema",
    schemars(transform = |s: &mut schemars::Schema| {
        if let Some(props) = s.get_mut("properties").and_then(|p| p.as_object_mut()) {
            props.insert(
                "associatePublicIpAddress".into(),
                serde_json::json!({
                    "description": "The spelling before Karpenter v1; read as associatePublicIPAddress.",
                    "type": "boolean"
                }),
            );
        }
    })
)]
pub struct Ec2NodeClassSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_family: Option<String>,
    #[serde(default)]
    pub ami_selector_terms: Vec<AmiSelectorTerm>,
    #[serde(default)]
    pub subnet_selector_terms: Vec<SelectorTerm>,
    #[serde(default)]
    pub security_group_selector_terms: Vec<SecurityGroupSelectorTerm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")
    )]
    pub capacity_reservation_selector_terms: Vec<serde_json::Value>,
    /// Karpenter v1 spells it `associatePublicIPAddress`; the other spelling is read too.
    #[serde(
        default,
        rename = "associatePublicIPAddress",
        alias = "associatePublicIpAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub associate_public_ip_address: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Kubelet settings; the CRD preserves unknown fields here, so this stays open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_store_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed_monitoring: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_options: Option<MetadataOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_prefix_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")
    )]
    pub connection_tracking: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")
    )]
    pub cpu_options: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")
    )]
    pub network_interfaces: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")
    )]
    pub placement_group_selector: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AmiSelectorTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm_parameter: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityGroupSelectorTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockDeviceMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs: Option<Ebs>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root_volume: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ebs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_termination: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(default, rename = "kmsKeyID", skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, rename = "snapshotID", skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_initialization_rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "serde_json::Value",
            extend(
                "x-kubernetes-int-or-string" = true,
                "anyOf" = [{"type": "integer"}, {"type": "string"}],
                "pattern" = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
            )
        )
    )]
    pub volume_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetadataOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_endpoint: Option<String>,
    #[serde(default, rename = "httpProtocolIPv6", skip_serializing_if = "Option::is_none")]
    pub http_protocol_ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_put_response_hop_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tokens: Option<String>,
}

/// The AMI family a node class launches, from `amiFamily` or the alias of its first term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AmiFamily {
    AL2023,
    AL2,
    Bottlerocket,
    Windows2019,
    Windows2022,
    Custom,
}

/// Kubelet settings that change a node's allocatable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeletOverrides {
    pub max_pods: Option<i64>,
    pub pods_per_core: Option<i64>,
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    pub eviction_hard: BTreeMap<String, String>,
}

impl Ec2NodeClass {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn ami_family(&self) -> Result<AmiFamily> {
        let alias_family = self
            .spec
            .ami_selector_terms
            .iter()
            .find_map(|t| t.alias.as_deref())
            .map(|alias| alias.split('@').next().unwrap_or(alias).to_ascii_lowercase());
        let raw = match (&self.spec.ami_family, alias_family) {
            (Some(f), _) => f.to_ascii_lowercase(),
            (None, Some(a)) => a,
            (None, None) => {
                return Err(Error::invalid(
                    "EC2NodeClass",
                    self.name(),
                    "amiFamily or an alias is required",
                ));
            }
        };
        Ok(match raw.as_str() {
            "al2023" => AmiFamily::AL2023,
            "al2" => AmiFamily::AL2,
            "bottlerocket" => AmiFamily::Bottlerocket,
            "windows2019" => AmiFamily::Windows2019,
            "windows2022" => AmiFamily::Windows2022,
            "custom" => AmiFamily::Custom,
            other => {
                return Err(Error::invalid(
                    "EC2NodeClass",
                    self.name(),
                    format!("unknown amiFamily {other:?}"),
                ));
            }
        })
    }

    pub fn kubelet(&self) -> Result<KubeletOverrides> {
        let mut out = KubeletOverrides::default();
        let Some(k) = &self.spec.kubelet else {
            return Ok(out);
        };
        let bad = |field: &str| {
            Error::invalid(
                "EC2NodeClass",
                self.name(),
                format!("kubelet.{field} is malformed"),
            )
        };
        let map = |field: &str| -> Result<BTreeMap<String, String>> {
            match k.get(field) {
                None => Ok(BTreeMap::new()),
                Some(v) => serde_json::from_value(v.clone()).map_err(|_| bad(field)),
            }
        };
        out.max_pods = match k.get("maxPods") {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| bad("maxPods"))?),
        };
        out.pods_per_core = match k.get("podsPerCore") {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| bad("podsPerCore"))?),
        };
        out.kube_reserved = map("kubeReserved")?;
        out.system_reserved = map("systemReserved")?;
        out.eviction_hard = map("evictionHard")?;
        Ok(out)
    }

    pub fn validate(&self) -> Result<()> {
        if self.spec.ami_selector_terms.is_empty() {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                "amiSelectorTerms is required",
            ));
        }
        if self.spec.subnet_selector_terms.is_empty() {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                "subnetSelectorTerms is required",
            ));
        }
        if self.spec.security_group_selector_terms.is_empty() {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                "securityGroupSelectorTerms is required",
            ));
        }
        if self.spec.role.is_some() == self.spec.instance_profile.is_some() {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                "exactly one of role or instanceProfile is required",
            ));
        }
        let family = self.ami_family()?;
        if matches!(family, AmiFamily::Windows2019 | AmiFamily::Windows2022) {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                "Windows AMI families are not supported: nodewright launches Linux nodes only",
            ));
        }
        let terms = &self.spec.ami_selector_terms;
        if terms.iter().any(|t| t.alias.is_some()) && terms.len() > 1 {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                "amiSelectorTerms: an alias cannot be combined with other terms",
            ));
        }
        let unsupported = self.unsupported_fields();
        if !unsupported.is_empty() {
            return Err(Error::invalid(
                "EC2NodeClass",
                self.name(),
                format!(
                    "{} not supported by nodewright yet: remove {} or serve these pools from \
                     another EC2NodeClass",
                    unsupported.join(", "),
                    if unsupported.len() == 1 { "it" } else { "them" }
                ),
            ));
        }
        self.kubelet()?;
        Ok(())
    }

    /// Fields of Karpenter's schema that nodewright does not act on yet. Launching without
    /// them would give nodes other than the ones asked for (on demand instead of reserved, no
    /// placement group, other CPU options), so a node class that sets one is refused, not
    /// half-honoured.
    pub fn unsupported_fields(&self) -> Vec<&'static str> {
        let spec = &self.spec;
        let mut out = Vec::new();
        if !spec.capacity_reservation_selector_terms.is_empty() {
            out.push("capacityReservationSelectorTerms");
        }
        if spec.context.is_some() {
            out.push("context");
        }
        if spec.ip_prefix_count.is_some() {
            out.push("ipPrefixCount");
        }
        if spec.connection_tracking.is_some() {
            out.push("connectionTracking");
        }
        if spec.cpu_options.is_some() {
            out.push("cpuOptions");
        }
        if !spec.network_interfaces.is_empty() {
            out.push("networkInterfaces");
        }
        if spec.placement_group_selector.is_some() {
            out.push("placementGroupSelector");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigObject, parse_config_object};
    use super::*;

    fn nodeclass_with(extra: &str) -> Result<ConfigObject> {
        let yaml = format!(
            "apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {{name: x}}\nspec:\n  role: R\n  \
             amiSelectorTerms: [{{alias: al2023@latest}}]\n  subnetSelectorTerms: [{{tags: {{a: b}}}}]\n  \
             securityGroupSelectorTerms: [{{tags: {{a: b}}}}]\n{extra}"
        );
        parse_config_object(&yaml, "test")
    }

    #[test]
    fn a_node_class_that_could_never_launch_as_asked_is_refused_up_front() {
        assert!(nodeclass_with("").is_ok());
        for (extra, expected) in [
            ("  placementGroupSelector: {name: pg}\n", "placementGroupSelector"),
            (
                "  capacityReservationSelectorTerms: [{id: cr-1}]\n",
                "capacityReservationSelectorTerms",
            ),
            ("  cpuOptions: {coreCount: 2}\n", "cpuOptions"),
            ("  amiFamily: Windows2022\n", "Linux nodes only"),
        ] {
            let err = nodeclass_with(extra).expect_err(extra).to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
        let mixed = "apiVersion: karpenter.k8s.aws/v1\nkind: EC2NodeClass\nmetadata: {name: x}\nspec:\n  role: R\n  \
             amiSelectorTerms: [{alias: al2023@latest}, {id: ami-1}]\n  subnetSelectorTerms: [{tags: {a: b}}]\n  \
             securityGroupSelectorTerms: [{tags: {a: b}}]\n";
        let err = parse_config_object(mixed, "test")
            .expect_err("alias with others")
            .to_string();
        assert!(err.contains("alias cannot be combined"), "{err}");
    }

    #[test]
    fn a_node_class_asking_for_public_addresses_is_read_with_karpenters_spelling() {
        for key in ["associatePublicIPAddress", "associatePublicIpAddress"] {
            let Ok(ConfigObject::Ec2NodeClass(nc)) = nodeclass_with(&format!("  {key}: false\n")) else {
                panic!("{key} is accepted");
            };
            assert_eq!(nc.spec.associate_public_ip_address, Some(false), "{key}");
        }
    }
}
