//! Karpenter v1's configuration objects, `karpenter.sh/v1 NodePool` and
//! `karpenter.k8s.aws/v1 EC2NodeClass`, deserialized from their own schema so that a
//! Karpenter user's manifests apply unchanged. Objects come in as JSON values (the Kubernetes
//! adapter lists JSON; readers of YAML files turn each document into one), and are parsed and
//! validated in one step, [`parse_config_object`]. Unknown fields are errors that name the
//! field, as `kubectl --validate=strict` reports them.

mod durations;
mod error;
mod nodeclass;
mod nodepool;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use durations::parse_duration;
pub use error::ConfigError;
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

/// Parses a NodePool or an EC2NodeClass from its JSON value, strictly (unknown fields are
/// errors), and validates it: what comes back is fit to plan and launch with.
pub fn parse_config_object(value: &serde_json::Value) -> Result<ConfigObject, ConfigError> {
    let object = error::describe(value);
    match value.get("kind").and_then(serde_json::Value::as_str) {
        Some("NodePool") => {
            let np: NodePool = error::from_value(value, &object)?;
            np.validate()?;
            Ok(ConfigObject::NodePool(Box::new(np)))
        }
        Some("EC2NodeClass") => {
            let nc: Ec2NodeClass = error::from_value(value, &object)?;
            nc.validate()?;
            Ok(ConfigObject::Ec2NodeClass(Box::new(nc)))
        }
        other => Err(ConfigError::new(
            object,
            "kind",
            format!(
                "expected NodePool or EC2NodeClass, got {:?}",
                other.unwrap_or_default()
            ),
        )),
    }
}

/// The hash of what shapes a node in a NodePool's template and its EC2NodeClass (selector terms
/// left out: they are compared by what they resolve to), recorded on a claim at launch; a
/// different hash now is drift.
pub fn template_hash(nodepool: &NodePool, nodeclass: &Ec2NodeClass) -> String {
    let template = &nodepool.spec.template;
    let mut class = nodeclass.spec.clone();
    class.ami_selector_terms.clear();
    class.subnet_selector_terms.clear();
    class.security_group_selector_terms.clear();
    let shape = serde_json::json!({
        "metadata": template.metadata,
        "taints": template.spec.taints,
        "startupTaints": template.spec.startup_taints,
        "nodeClass": class,
    });
    format!("{:016x}", crate::stable_hash::fnv1a(&shape.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The NodePool of Karpenter's getting-started guide, as `infra/examples/default-nodepool.yaml`
    /// writes it (nodewright-manifests reads the file itself).
    pub(crate) fn getting_started_nodepool() -> Value {
        crate::benchmark::getting_started_nodepool_json()
    }

    /// The EC2NodeClass of Karpenter's getting-started guide.
    pub(crate) fn getting_started_nodeclass() -> Value {
        json!({
            "apiVersion": "karpenter.k8s.aws/v1",
            "kind": "EC2NodeClass",
            "metadata": {"name": "default"},
            "spec": {
                "role": "KarpenterNodeRole-my-cluster",
                "amiSelectorTerms": [{"alias": "al2023@latest"}],
                "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "my-cluster"}}],
                "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "my-cluster"}}]
            }
        })
    }

    fn error(value: &Value) -> String {
        parse_config_object(value).expect_err("refused").to_string()
    }

    #[test]
    fn the_template_hash_of_a_pool_stays_what_claims_recorded() {
        // Claims in the store carry this hash from their launch: were the hash to change,
        // every node would drift at once.
        let pool = parse_config_object(&getting_started_nodepool());
        let class = parse_config_object(&getting_started_nodeclass());
        let (Ok(ConfigObject::NodePool(pool)), Ok(ConfigObject::Ec2NodeClass(class))) = (pool, class) else {
            panic!("the getting-started objects parse");
        };
        assert_eq!(template_hash(&pool, &class), "01734de840800797");
    }

    #[test]
    fn parses_karpenters_getting_started_nodepool_and_nodeclass() {
        let Ok(ConfigObject::NodePool(np)) = parse_config_object(&getting_started_nodepool()) else {
            panic!("the NodePool parses");
        };
        let Ok(ConfigObject::Ec2NodeClass(nc)) = parse_config_object(&getting_started_nodeclass()) else {
            panic!("the EC2NodeClass parses");
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
    fn unknown_fields_are_errors_that_name_the_object_and_the_path() {
        let mut np = getting_started_nodepool();
        let spec = &mut np["spec"]["template"]["spec"];
        spec["expireAftr"] = spec["expireAfter"].take();
        let err = error(&np);
        assert!(
            err.starts_with("NodePool default: spec.template.spec.expireAftr: unknown field `expireAftr`"),
            "{err}"
        );
        let mut nc = getting_started_nodeclass();
        nc["spec"]["rolle"] = nc["spec"]["role"].take();
        let err = error(&nc);
        assert!(
            err.starts_with("EC2NodeClass default: spec.rolle: unknown field `rolle`"),
            "{err}"
        );
    }

    #[test]
    fn rejects_invalid_values_naming_the_field_and_the_value() {
        let mut np = getting_started_nodepool();
        np["spec"]["limits"]["cpu"] = json!("lots");
        let err = error(&np);
        assert!(err.starts_with("NodePool default: spec.limits.cpu: "), "{err}");
        assert!(err.contains("lots"), "{err}");

        let mut np = getting_started_nodepool();
        np["spec"]["template"]["spec"]["requirements"][4]["operator"] = json!("Bigger");
        let err = error(&np);
        assert!(
            err.starts_with("NodePool default: spec.template.spec.requirements[4].operator: "),
            "{err}"
        );
        assert!(err.contains("Bigger"), "{err}");

        let mut np = getting_started_nodepool();
        np["spec"]["template"]["spec"]["expireAfter"] = json!("a month");
        assert_eq!(
            error(&np),
            "NodePool default: spec.template.spec.expireAfter: invalid duration \"a month\""
        );

        let mut np = getting_started_nodepool();
        np["spec"]["disruption"]["budgets"] = json!([{"nodes": "10%"}, {"nodes": "150%"}]);
        assert_eq!(
            error(&np),
            "NodePool default: spec.disruption.budgets[1].nodes: \"150%\" is over 100%"
        );
    }

    #[test]
    fn an_object_of_another_kind_or_without_a_name_is_refused_as_such() {
        let mut np = getting_started_nodepool();
        np["kind"] = json!("Provisioner");
        assert_eq!(
            error(&np),
            "Provisioner default: kind: expected NodePool or EC2NodeClass, got \"Provisioner\""
        );
        let mut np = getting_started_nodepool();
        np["metadata"] = json!({});
        assert_eq!(error(&np), "NodePool: metadata.name: is required");
        let mut np = getting_started_nodepool();
        np["apiVersion"] = json!("karpenter.sh/v1beta1");
        assert_eq!(
            error(&np),
            "NodePool default: apiVersion: expected karpenter.sh/v1, got \"karpenter.sh/v1beta1\""
        );
    }
}
