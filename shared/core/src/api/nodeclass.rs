//! `karpenter.k8s.aws/v1 EC2NodeClass`: its schema, accessors and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;

use super::{ConfigError, EC2NODECLASS_API_VERSION, ObjectMeta};

type Result<T, E = ConfigError> = std::result::Result<T, E>;

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

    /// An error about `field` of this node class.
    fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        let object = if self.name().is_empty() {
            "EC2NodeClass".to_string()
        } else {
            format!("EC2NodeClass {}", self.name())
        };
        ConfigError::new(object, field, reason)
    }

    pub fn ami_family(&self) -> Result<AmiFamily> {
        let alias_family = self
            .spec
            .ami_selector_terms
            .iter()
            .find_map(|t| t.alias.as_deref())
            .map(|alias| alias.split('@').next().unwrap_or(alias).to_ascii_lowercase());
        let (field, raw) = match (&self.spec.ami_family, alias_family) {
            (Some(f), _) => ("spec.amiFamily", f.to_ascii_lowercase()),
            (None, Some(a)) => ("spec.amiSelectorTerms", a),
            (None, None) => {
                return Err(self.error("spec.amiFamily", "amiFamily or an alias is required"));
            }
        };
        Ok(match raw.as_str() {
            "al2023" => AmiFamily::AL2023,
            "al2" => AmiFamily::AL2,
            "bottlerocket" => AmiFamily::Bottlerocket,
            "windows2019" => AmiFamily::Windows2019,
            "windows2022" => AmiFamily::Windows2022,
            "custom" => AmiFamily::Custom,
            other => return Err(self.error(field, format!("unknown amiFamily {other:?}"))),
        })
    }

    pub fn kubelet(&self) -> Result<KubeletOverrides> {
        let mut out = KubeletOverrides::default();
        let Some(k) = &self.spec.kubelet else {
            return Ok(out);
        };
        let bad = |field: &str| self.error(format!("spec.kubelet.{field}"), "is malformed");
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

    /// Checks what the CRD's schema and CEL rules check beyond the shape, and refuses what
    /// nodewright cannot launch.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != EC2NODECLASS_API_VERSION {
            return Err(self.error(
                "apiVersion",
                format!("expected {EC2NODECLASS_API_VERSION}, got {:?}", self.api_version),
            ));
        }
        if self.kind != "EC2NodeClass" {
            return Err(self.error("kind", format!("expected EC2NodeClass, got {:?}", self.kind)));
        }
        if self.metadata.name.is_empty() {
            return Err(self.error("metadata.name", "is required"));
        }
        let spec = &self.spec;
        for (field, empty) in [
            ("spec.amiSelectorTerms", spec.ami_selector_terms.is_empty()),
            ("spec.subnetSelectorTerms", spec.subnet_selector_terms.is_empty()),
            (
                "spec.securityGroupSelectorTerms",
                spec.security_group_selector_terms.is_empty(),
            ),
        ] {
            if empty {
                return Err(self.error(field, "is required"));
            }
        }
        if spec.role.is_some() == spec.instance_profile.is_some() {
            return Err(self.error("spec", "exactly one of role or instanceProfile is required"));
        }
        let family = self.ami_family()?;
        if matches!(family, AmiFamily::Windows2019 | AmiFamily::Windows2022) {
            let field = if spec.ami_family.is_some() {
                "spec.amiFamily"
            } else {
                "spec.amiSelectorTerms"
            };
            return Err(self.error(
                field,
                "Windows AMI families are not supported: nodewright launches Linux nodes only",
            ));
        }
        let terms = &spec.ami_selector_terms;
        if terms.iter().any(|t| t.alias.is_some()) && terms.len() > 1 {
            return Err(self.error(
                "spec.amiSelectorTerms",
                "an alias cannot be combined with other terms",
            ));
        }
        let unsupported = self.unsupported_fields();
        if !unsupported.is_empty() {
            return Err(self.error(
                "spec",
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
    use serde_json::{Value, json};

    use super::super::tests::getting_started_nodeclass;
    use super::super::{ConfigObject, parse_config_object};
    use super::*;

    /// The getting-started node class with `extra` set in its spec.
    fn nodeclass_with(extra: Value) -> Result<ConfigObject> {
        let mut nc = getting_started_nodeclass();
        if let (Some(spec), Value::Object(extra)) = (nc["spec"].as_object_mut(), extra) {
            spec.extend(extra);
        }
        parse_config_object(&nc)
    }

    #[test]
    fn a_node_class_that_could_never_launch_as_asked_is_refused_up_front() {
        assert!(nodeclass_with(json!({})).is_ok());
        for (extra, expected) in [
            (
                json!({"placementGroupSelector": {"name": "pg"}}),
                "EC2NodeClass default: spec: placementGroupSelector not supported by nodewright yet",
            ),
            (
                json!({"capacityReservationSelectorTerms": [{"id": "cr-1"}]}),
                "EC2NodeClass default: spec: capacityReservationSelectorTerms not supported",
            ),
            (json!({"cpuOptions": {"coreCount": 2}}), "cpuOptions"),
            (
                json!({"amiFamily": "Windows2022"}),
                "EC2NodeClass default: spec.amiFamily: Windows AMI families are not supported",
            ),
            (
                json!({"amiSelectorTerms": [{"alias": "al2023@latest"}, {"id": "ami-1"}]}),
                "EC2NodeClass default: spec.amiSelectorTerms: an alias cannot be combined",
            ),
            (
                json!({"instanceProfile": "p"}),
                "EC2NodeClass default: spec: exactly one of role or instanceProfile is required",
            ),
            (
                json!({"kubelet": {"maxPods": "many"}}),
                "EC2NodeClass default: spec.kubelet.maxPods: is malformed",
            ),
        ] {
            let err = nodeclass_with(extra.clone()).expect_err("refused").to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
    }

    #[test]
    fn a_node_class_asking_for_public_addresses_is_read_with_karpenters_spelling() {
        for key in ["associatePublicIPAddress", "associatePublicIpAddress"] {
            let Ok(ConfigObject::Ec2NodeClass(nc)) = nodeclass_with(json!({key: false})) else {
                panic!("{key} is accepted");
            };
            assert_eq!(nc.spec.associate_public_ip_address, Some(false), "{key}");
        }
    }
}
