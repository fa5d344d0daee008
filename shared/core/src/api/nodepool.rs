//! `karpenter.sh/v1 NodePool`: its schema, accessors and validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pod::{Millis, Taint};
use crate::quantity::Quantity;
use crate::requirements::{NodeSelectorRequirement, Requirements};
use crate::resources::Resources;

use super::{ConfigError, NODEPOOL_API_VERSION, ObjectMeta, parse_duration};

type Result<T, E = ConfigError> = std::result::Result<T, E>;

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

    /// An error about `field` of this pool.
    fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        let object = if self.name().is_empty() {
            "NodePool".to_string()
        } else {
            format!("NodePool {}", self.name())
        };
        ConfigError::new(object, field, reason)
    }

    /// The pool's requirements plus its template labels as `In` requirements.
    pub fn requirements(&self) -> Result<Requirements> {
        let mut reqs = Requirements::new();
        for (i, r) in self.spec.template.spec.requirements.iter().enumerate() {
            let requirement = r
                .to_requirement()
                .map_err(|e| self.error(format!("spec.template.spec.requirements[{i}]"), e.to_string()))?;
            reqs.add(&r.key, requirement);
        }
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
                .map_err(|e| self.error(format!("spec.limits.{name}"), e.to_string()))?;
        }
        Ok(Some(out))
    }

    /// `expireAfter` in milliseconds; `None` for `Never`. Karpenter's default is 720h.
    pub fn expire_after(&self) -> Result<Option<Millis>> {
        let raw = self.spec.template.spec.expire_after.as_deref().unwrap_or("720h");
        parse_duration(raw).map_err(|e| self.error("spec.template.spec.expireAfter", e))
    }

    pub fn consolidate_after(&self) -> Result<Option<Millis>> {
        parse_duration(&self.spec.disruption.consolidate_after)
            .map_err(|e| self.error("spec.disruption.consolidateAfter", e))
    }

    /// Checks what the CRD's schema and CEL rules check beyond the shape.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != NODEPOOL_API_VERSION {
            return Err(self.error(
                "apiVersion",
                format!("expected {NODEPOOL_API_VERSION}, got {:?}", self.api_version),
            ));
        }
        if self.kind != "NodePool" {
            return Err(self.error("kind", format!("expected NodePool, got {:?}", self.kind)));
        }
        if self.metadata.name.is_empty() {
            return Err(self.error("metadata.name", "is required"));
        }
        self.requirements()?;
        self.limits()?;
        self.expire_after()?;
        self.consolidate_after()?;
        for (i, b) in self.spec.disruption.budgets.iter().enumerate() {
            parse_budget_nodes(&b.nodes)
                .map_err(|e| self.error(format!("spec.disruption.budgets[{i}].nodes"), e))?;
            if b.schedule.is_some() != b.duration.is_some() {
                return Err(self.error(
                    format!("spec.disruption.budgets[{i}]"),
                    "schedule and duration must be set together",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_budget_nodes() {
        assert_eq!(parse_budget_nodes("10%"), Ok(BudgetNodes::Percent(10)));
        assert_eq!(parse_budget_nodes("3"), Ok(BudgetNodes::Count(3)));
        assert!(parse_budget_nodes("lots").is_err());
        assert!(parse_budget_nodes("150%").is_err());
    }
}
