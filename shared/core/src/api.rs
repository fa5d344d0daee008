//! Karpenter v1's configuration objects, `karpenter.sh/v1 NodePool` and
//! `karpenter.k8s.aws/v1 EC2NodeClass`, deserialized from their own YAML schema so that a
//! Karpenter user's manifests apply unchanged. Unknown fields are errors that name the field,
//! as `kubectl --validate=strict` reports them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pod::{Millis, Taint};
use crate::quantity::Quantity;
use crate::requirements::{self, NodeSelectorRequirement, Requirements};
use crate::resources::Resources;

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

// ---------------------------------------------------------------------------------------------
// NodePool

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: NodePoolSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")
    )]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePoolSpec {
    pub template: NodeClaimTemplate,
    #[serde(default)]
    pub disruption: Disruption,
    /// Resource limits across every node of the pool (`cpu`, `memory`, `nodes`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "BTreeMap<String, serde_json::Value>",
            extend("additionalProperties" = {
                "x-kubernetes-int-or-string": true,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
            })
        )
    )]
    pub limits: BTreeMap<String, Quantity>,
    /// Higher weight pools are tried first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Static capacity (a newer Karpenter field); accepted and not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeClaimTemplate {
    #[serde(default)]
    pub metadata: TemplateMeta,
    pub spec: NodeClaimTemplateSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeClaimTemplateSpec {
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(
            with = "Vec<serde_json::Value>",
            extend("items" = {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                    "minValues": {"type": "integer", "minimum": 0, "maximum": 4294967295_u64}
                }
            })
        )
    )]
    pub requirements: Vec<NodeSelectorRequirement>,
    pub node_class_ref: NodeClassRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub startup_taints: Vec<Taint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(description = "A Go duration (`720h`, `1m30s`) or `Never`; 720h if unset.")
    )]
    pub expire_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(description = "A Go duration (`1h`, `30m`)."))]
    pub termination_grace_period: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeClassRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ConsolidationPolicy {
    #[default]
    WhenEmptyOrUnderutilized,
    WhenEmpty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disruption {
    #[serde(default)]
    pub consolidation_policy: ConsolidationPolicy,
    #[serde(default = "default_consolidate_after")]
    #[cfg_attr(
        feature = "schema",
        schemars(description = "A Go duration (`30s`, `1m`) or `Never`; 0s if unset.")
    )]
    pub consolidate_after: String,
    #[serde(default = "default_budgets")]
    pub budgets: Vec<Budget>,
}

impl Default for Disruption {
    fn default() -> Self {
        Disruption {
            consolidation_policy: ConsolidationPolicy::default(),
            consolidate_after: default_consolidate_after(),
            budgets: default_budgets(),
        }
    }
}

fn default_consolidate_after() -> String {
    "0s".to_string()
}

fn default_budgets() -> Vec<Budget> {
    vec![Budget {
        nodes: "10%".to_string(),
        reasons: Vec::new(),
        schedule: None,
        duration: None,
    }]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    #[serde(default = "default_budget_nodes")]
    #[cfg_attr(
        feature = "schema",
        schemars(description = "A count (`5`) or a percentage (`10%`) of the pool's nodes; 10% if unset.")
    )]
    pub nodes: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(description = "A cron schedule; set with `duration`.")
    )]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(description = "A Go duration (`1h`, `30m`) the budget is active from each `schedule` hit.")
    )]
    pub duration: Option<String>,
}

impl Budget {
    /// A budget of `nodes` (a count or a percentage) for every reason, at all times.
    pub fn nodes(nodes: &str) -> Budget {
        Budget {
            nodes: nodes.to_string(),
            reasons: Vec::new(),
            schedule: None,
            duration: None,
        }
    }
}

fn default_budget_nodes() -> String {
    "10%".to_string()
}

impl NodePool {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn weight(&self) -> i32 {
        self.spec.weight.unwrap_or(0)
    }

    /// The pool's requirements plus its template labels as `In` requirements.
    pub fn requirements(&self) -> Result<Requirements> {
        let mut reqs = requirements::from_selector_requirements(&self.spec.template.spec.requirements)
            .map_err(|e| Error::invalid("NodePool", self.name(), e.to_string()))?;
        reqs.add_all(&Requirements::from_labels(&self.spec.template.metadata.labels));
        Ok(reqs)
    }

    /// Limits as a resource vector; `None` for resources without a limit.
    pub fn limits(&self) -> Result<Option<Resources>> {
        if self.spec.limits.is_empty() {
            return Ok(None);
        }
        let mut out = Resources::new();
        for (name, q) in &self.spec.limits {
            out.add_named(name, *q, &q.to_string())
                .map_err(|e| Error::invalid("NodePool", self.name(), format!("limits.{name}: {e}")))?;
        }
        Ok(Some(out))
    }

    /// `expireAfter` in milliseconds; `None` for `Never`. Karpenter's default is 720h.
    pub fn expire_after(&self) -> Result<Option<Millis>> {
        let raw = self.spec.template.spec.expire_after.as_deref().unwrap_or("720h");
        parse_duration(raw).map_err(|e| Error::invalid("NodePool", self.name(), format!("expireAfter: {e}")))
    }

    pub fn consolidate_after(&self) -> Result<Option<Millis>> {
        parse_duration(&self.spec.disruption.consolidate_after)
            .map_err(|e| Error::invalid("NodePool", self.name(), format!("consolidateAfter: {e}")))
    }

    /// Checks what the CRD's schema and CEL rules check beyond the shape.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != NODEPOOL_API_VERSION || self.kind != "NodePool" {
            return Err(Error::invalid(
                "NodePool",
                self.name(),
                format!(
                    "expected {NODEPOOL_API_VERSION} NodePool, got {} {}",
                    self.api_version, self.kind
                ),
            ));
        }
        if self.metadata.name.is_empty() {
            return Err(Error::invalid("NodePool", "", "metadata.name is required"));
        }
        self.requirements()?;
        self.limits()?;
        self.expire_after()?;
        self.consolidate_after()?;
        for b in &self.spec.disruption.budgets {
            parse_budget_nodes(&b.nodes)
                .map_err(|e| Error::invalid("NodePool", self.name(), format!("budgets.nodes: {e}")))?;
            if b.schedule.is_some() != b.duration.is_some() {
                return Err(Error::invalid(
                    "NodePool",
                    self.name(),
                    "a budget's schedule and duration must be set together",
                ));
            }
        }
        Ok(())
    }
}

/// A budget's `nodes`: an absolute count or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetNodes {
    Count(u32),
    Percent(u32),
}

pub fn parse_budget_nodes(s: &str) -> std::result::Result<BudgetNodes, String> {
    if let Some(p) = s.strip_suffix('%') {
        let n: u32 = p.parse().map_err(|_| format!("{s:?} is not a percentage"))?;
        if n > 100 {
            return Err(format!("{s:?} is over 100%"));
        }
        return Ok(BudgetNodes::Percent(n));
    }
    s.parse()
        .map(BudgetNodes::Count)
        .map_err(|_| format!("{s:?} is neither a count nor a percentage"))
}

/// Parses a Go duration (`720h`, `1m30s`, `500ms`) or `Never` (returned as `None`).
pub fn parse_duration(s: &str) -> std::result::Result<Option<Millis>, String> {
    if s == "Never" {
        return Ok(None);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "" if n == 0.0 && s == "0" => 0.0,
            unit => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 / 2.0 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Some(total.round() as Millis))
}

// ---------------------------------------------------------------------------------------------
// EC2NodeClass

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
    pub const GETTING_STARTED: &str = include_str!("../../../infra/examples/default-nodepool.yaml");

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

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Some(90_000)));
        assert_eq!(parse_duration("500ms"), Ok(Some(500)));
        assert_eq!(parse_duration("Never"), Ok(None));
        assert_eq!(parse_duration("0s"), Ok(Some(0)));
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn parses_budget_nodes() {
        assert_eq!(parse_budget_nodes("10%"), Ok(BudgetNodes::Percent(10)));
        assert_eq!(parse_budget_nodes("3"), Ok(BudgetNodes::Count(3)));
        assert!(parse_budget_nodes("lots").is_err());
        assert!(parse_budget_nodes("150%").is_err());
    }
}
