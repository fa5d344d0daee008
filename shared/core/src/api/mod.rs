//! Karpenter v1's configuration objects, `karpenter.sh/v1 NodePool` and
//! `karpenter.k8s.aws/v1 EC2NodeClass`, deserialized from their own YAML schema so that a
//! Karpenter user's manifests apply unchanged. Unknown fields are errors that name the field,
//! as `kubectl --validate=strict` reports them.

mod durations;
mod nodeclass;
mod nodepool;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use durations::parse_duration;
pub use nodeclass::{
    AmiFamily, AmiSelectorTerm, BlockDeviceMapping, Ebs, Ec2NodeClass, Ec2NodeClassSpec, KubeletOverrides,
    MetadataOptions, SecurityGroupSelectorTerm, SelectorTerm,
};
pub use nodepool::{
    Budget, BudgetNodes, ConsolidationPolicy, Disruption, NodeClaimTemplate, NodeClaimTemplateSpec,
    NodeClassRef, NodePool, NodePoolSpec, TemplateMeta, parse_budget_nodes,
};

pub const NODEPOOL_API_VERSION: &str = "karpenter.sh/v1";
pub const EC2NODECLASS_API_VERSION: &str = "karpenter.k8s.aws/v1";

/// Object metadata: the fields a manifest may carry. Server-populated fields are accepted
/// so that objects read back from a cluster parse too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")
    )]
    pub owner_references: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")
    )]
    pub managed_fields: Vec<serde_json::Value>,
}
/// One parsed configuration object.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigObject {
    NodePool(Box<NodePool>),
    Ec2NodeClass(Box<Ec2NodeClass>),
}

/// Parses one YAML document holding a NodePool or an EC2NodeClass, strictly.
pub fn parse_config_object(yaml: &str, what: &str) -> Result<ConfigObject> {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|source| Error::Yaml {
        what: what.to_string(),
        source,
    })?;
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    match kind {
        "NodePool" => {
            let np: NodePool = serde_yaml::from_value(value).map_err(|source| Error::Yaml {
                what: what.to_string(),
                source,
            })?;
            np.validate()?;
            Ok(ConfigObject::NodePool(Box::new(np)))
        }
        "EC2NodeClass" => {
            let nc: Ec2NodeClass = serde_yaml::from_value(value).map_err(|source| Error::Yaml {
                what: what.to_string(),
                source,
            })?;
            nc.validate()?;
            Ok(ConfigObject::Ec2NodeClass(Box::new(nc)))
        }
        other => Err(Error::invalid(
            "object",
            what,
            format!("expected NodePool or EC2NodeClass, got kind {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NodePool and EC2NodeClass from Karpenter's getting-started guide.
    pub const GETTING_STARTED: &str = include_str!("../../../../infra/examples/default-nodepool.yaml");

    fn documents(yaml: &str) -> Vec<ConfigObject> {
        yaml.split("\n---")
            .filter(|d| !d.trim().is_empty())
            .map(|d| parse_config_object(d, "getting-started").expect("parses"))
            .collect()
    }

    #[test]
    fn parses_karpenters_getting_started_nodepool_and_nodeclass() {
        let docs = documents(GETTING_STARTED);
        let [ConfigObject::NodePool(np), ConfigObject::Ec2NodeClass(nc)] = docs.as_slice() else {
            panic!("expected a NodePool then an EC2NodeClass, got {docs:?}");
        };
        assert_eq!(np.name(), "default");
        assert_eq!(np.expire_after().expect("valid"), Some(720 * 3600 * 1000));
        assert_eq!(np.consolidate_after().expect("valid"), Some(60_000));
        assert_eq!(
            np.spec.disruption.consolidation_policy,
            ConsolidationPolicy::WhenEmptyOrUnderutilized
        );
        let limits = np.limits().expect("valid").expect("has limits");
        assert_eq!(limits.cpu(), 1_000_000);
        let reqs = np.requirements().expect("valid");
        assert!(
            reqs.get(crate::labels::INSTANCE_CATEGORY)
                .expect("category")
                .has("m")
        );
        assert!(
            reqs.get(crate::labels::INSTANCE_GENERATION)
                .expect("generation")
                .has("3")
        );
        assert_eq!(nc.ami_family().expect("alias"), AmiFamily::AL2023);
        assert_eq!(np.spec.template.spec.node_class_ref.name, nc.name());
    }

    #[test]
    fn unknown_fields_are_errors_that_name_the_field() {
        let yaml = GETTING_STARTED.replace("expireAfter: 720h", "expireAftr: 720h");
        let err =
            parse_config_object(yaml.split("\n---").next().expect("doc"), "np").expect_err("unknown field");
        assert!(err.to_string().contains("expireAftr"), "{err}");
        let yaml = GETTING_STARTED.replace("role:", "rolle:");
        let nc = yaml.split("\n---").nth(1).expect("doc");
        let err = parse_config_object(nc, "nc").expect_err("unknown field");
        assert!(err.to_string().contains("rolle"), "{err}");
    }

    #[test]
    fn rejects_invalid_values_with_a_clear_message() {
        let yaml = GETTING_STARTED.replace("cpu: 1000", "cpu: lots");
        let err = parse_config_object(yaml.split("\n---").next().expect("doc"), "np").expect_err("bad limit");
        assert!(err.to_string().contains("lots"), "{err}");
        let yaml = GETTING_STARTED.replace("operator: Gt", "operator: Bigger");
        let err = parse_config_object(yaml.split("\n---").next().expect("doc"), "np").expect_err("bad op");
        assert!(err.to_string().contains("Bigger"), "{err}");
    }
}
