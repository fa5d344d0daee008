//! The `status` of NodePools and EC2NodeClasses, as `kubectl describe nodepool` shows
//! Karpenter's: the resources of the pool's nodes against its limits, how many nodes, and
//! conditions that say whether the pool can launch and, if not, why.
//!
//! Computed from plain data each pass; a condition keeps its `lastTransitionTime` while its
//! status stays the same (read from the status the object already has), so the time says when
//! it last changed, not when it was last written.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{Ec2NodeClass, NodePool};
use crate::catalog::InstanceType;
use crate::nodeclaim::{ClaimState, NodeClaim};
use crate::pod::Millis;
use crate::ports::NodeClassResolution;
use crate::resources::Resources;

/// Which configuration object a status is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    NodePool,
    Ec2NodeClass,
}

/// A status to write with the status subresource.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub kind: ConfigKind,
    pub name: String,
    pub status: Value,
}

/// One condition of a status.
struct Condition<'a> {
    kind: &'a str,
    ok: bool,
    reason: &'a str,
    /// Empty when `ok`.
    message: String,
}

impl<'a> Condition<'a> {
    /// Condition `kind`: true with reason `ok` when there is no `issue`; false with reason
    /// `not` and the issue as its message otherwise.
    fn of(kind: &'a str, issue: Option<&String>, ok: &'a str, not: &'a str) -> Condition<'a> {
        Condition {
            kind,
            ok: issue.is_none(),
            reason: if issue.is_none() { ok } else { not },
            message: issue.cloned().unwrap_or_default(),
        }
    }
}

/// The status of every NodePool and EC2NodeClass whose status this changes (a pass that
/// changes nothing writes nothing). `problems` are the round's
/// `invalid_config` messages (`NodePool x: …`, `EC2NodeClass y: …`); `types` the catalog of
/// each node class that could be built.
/// `resolved` is what each node class's selectors resolve to, where known.
pub fn statuses(
    nodepools: &[NodePool],
    nodeclasses: &[Ec2NodeClass],
    types: &BTreeMap<String, std::sync::Arc<Vec<InstanceType>>>,
    resolved: &BTreeMap<String, NodeClassResolution>,
    claims: &[NodeClaim],
    problems: &[String],
    now: Millis,
) -> Vec<StatusUpdate> {
    let problem = |kind: &str, name: &str| {
        let prefix = format!("{kind} {name}: ");
        problems
            .iter()
            .find_map(|p| p.strip_prefix(&prefix).map(str::to_string))
    };
    let mut out = Vec::new();
    for class in nodeclasses {
        let issue = problem("EC2NodeClass", class.name());
        let conditions = [Condition::of("Ready", issue.as_ref(), "Ready", "NotReady")];
        let mut status = json!({
            "conditions": conditions_json(&conditions, class.status.as_ref(), class.metadata.generation, now),
        });
        // What the selectors resolve to, as Karpenter's EC2NodeClass status lists it.
        if let Some(r) = resolved.get(class.name()) {
            status["subnets"] = r
                .subnets
                .iter()
                .map(|s| json!({"id": s.id, "zone": s.zone}))
                .collect();
            status["securityGroups"] = r.security_groups.iter().map(|id| json!({"id": id})).collect();
            status["amis"] = r
                .amis
                .iter()
                .map(|a| json!({"id": a.id, "name": a.name}))
                .collect();
            if let Some(profile) = &r.instance_profile {
                status["instanceProfile"] = json!(profile);
            }
        }
        if class.status.as_ref() != Some(&status) {
            out.push(StatusUpdate {
                kind: ConfigKind::Ec2NodeClass,
                name: class.name().to_string(),
                status,
            });
        }
    }
    for pool in nodepools {
        let class_name = &pool.spec.template.spec.node_class_ref.name;
        let own = problem("NodePool", pool.name());
        // The round pairs pools with node classes by the same rule (`assemble`).
        let unusable = crate::assemble::node_class_for(pool, nodeclasses).err();
        let class_issue = match &unusable {
            Some(why) => Some(why.reason()),
            None => problem("EC2NodeClass", class_name),
        };
        // The round lists an unusable pool under the pool's name; that is the node class's
        // condition, not the pool's validation.
        let validation = own
            .as_ref()
            .filter(|p| unusable.as_ref().is_none_or(|why| **p != why.reason()));
        let ready_issue = validation.cloned().or_else(|| class_issue.clone());
        let conditions = [
            Condition::of(
                "ValidationSucceeded",
                validation,
                "ValidationSucceeded",
                "ValidationFailed",
            ),
            Condition::of(
                "NodeClassReady",
                class_issue.as_ref(),
                "NodeClassReady",
                "NodeClassNotReady",
            ),
            Condition::of("Ready", ready_issue.as_ref(), "Ready", "NotReady"),
        ];
        let catalog = types.get(class_name.as_str());
        let mut resources = Resources::new();
        let mut nodes = 0usize;
        for c in claims
            .iter()
            .filter(|c| c.nodepool == pool.name() && c.state != ClaimState::Terminated)
        {
            let Some(instance) = &c.instance else { continue };
            nodes += 1;
            if let Some(t) = catalog.and_then(|ts| ts.iter().find(|t| t.name == instance.instance_type)) {
                resources.add(&t.capacity);
            }
        }
        let mut listed = resources.to_quantity_map();
        listed.insert("nodes".into(), nodes.to_string());
        let status = json!({
            "resources": listed,
            "nodes": nodes,
            "conditions": conditions_json(&conditions, pool.status.as_ref(), pool.metadata.generation, now),
        });
        if pool.status.as_ref() != Some(&status) {
            out.push(StatusUpdate {
                kind: ConfigKind::NodePool,
                name: pool.name().to_string(),
                status,
            });
        }
    }
    out
}

/// Conditions as Kubernetes writes them, each keeping the time it last changed.
fn conditions_json(
    conditions: &[Condition<'_>],
    previous: Option<&Value>,
    generation: Option<i64>,
    now: Millis,
) -> Value {
    let before = |kind: &str| {
        previous?
            .get("conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .cloned()
    };
    Value::Array(
        conditions
            .iter()
            .map(|c| {
                let status = if c.ok { "True" } else { "False" };
                let since = before(c.kind)
                    .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
                    .and_then(|c| c.get("lastTransitionTime").cloned())
                    .unwrap_or_else(|| Value::String(rfc3339(now)));
                let mut out = json!({
                    "type": c.kind,
                    "status": status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastTransitionTime": since,
                });
                if let Some(g) = generation {
                    out["observedGeneration"] = json!(g);
                }
                out
            })
            .collect(),
    )
}

/// Milliseconds since the epoch as `2026-12-01T18:00:00Z` (whole seconds, as Kubernetes
/// writes condition times).
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{launched_claim, nodeclass, nodepool, pool_input};
    use crate::ports::{ResolvedImage, ResolvedSubnet};

    #[test]
    fn times_are_written_as_kubernetes_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_148_000_000), "2026-12-01T18:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn a_pool_reports_its_nodes_resources_and_ready_and_a_broken_class_says_why() {
        let pool = nodepool("default").build();
        let types: BTreeMap<_, _> = [("default".to_string(), pool_input(pool.clone()).instance_types)].into();
        let claims = [launched_claim("default-1", 0), launched_claim("default-2", 0)];
        let resolved: BTreeMap<_, _> = [(
            "default".to_string(),
            NodeClassResolution {
                subnets: vec![ResolvedSubnet {
                    id: "subnet-a".into(),
                    zone: "us-east-1a".into(),
                }],
                security_groups: vec!["sg-1".into()],
                amis: vec![ResolvedImage {
                    id: "ami-1".into(),
                    name: "al2023".into(),
                }],
                instance_profile: Some("nodewright-node-demo".into()),
            },
        )]
        .into();
        let ok = statuses(
            std::slice::from_ref(&pool),
            &[nodeclass("default")],
            &types,
            &resolved,
            &claims,
            &[],
            1_000,
        );
        let np = ok
            .iter()
            .find(|s| s.kind == ConfigKind::NodePool)
            .expect("the pool");
        assert_eq!(np.status["nodes"], 2);
        // Two m5.large: 2 × 2 vCPU.
        assert_eq!(np.status["resources"]["cpu"], "4");
        assert_eq!(np.status["resources"]["nodes"], "2");
        let class = ok
            .iter()
            .find(|s| s.kind == ConfigKind::Ec2NodeClass)
            .expect("the class");
        assert_eq!(class.status["subnets"][0]["zone"], "us-east-1a");
        assert_eq!(class.status["securityGroups"][0]["id"], "sg-1");
        assert_eq!(class.status["amis"][0]["id"], "ami-1");
        assert_eq!(class.status["instanceProfile"], "nodewright-node-demo");
        let ready = &np.status["conditions"][2];
        assert_eq!(
            (ready["type"].as_str(), ready["status"].as_str()),
            (Some("Ready"), Some("True"))
        );

        // The class breaks: the pool is not ready and says why; the time is when it changed.
        let mut pool_then = pool.clone();
        pool_then.status = Some(np.status.clone());
        let problems = ["EC2NodeClass default: no subnet matches its selector terms".to_string()];
        let broken = statuses(
            &[pool_then.clone()],
            &[nodeclass("default")],
            &types,
            &BTreeMap::new(),
            &claims,
            &problems,
            60_000,
        );
        let np = broken
            .iter()
            .find(|s| s.kind == ConfigKind::NodePool)
            .expect("the pool");
        let conditions = np.status["conditions"].as_array().expect("conditions");
        let ready = conditions.iter().find(|c| c["type"] == "Ready").expect("Ready");
        assert_eq!(ready["status"], "False");
        assert!(
            ready["message"].as_str().is_some_and(|m| m.contains("no subnet")),
            "{ready}"
        );
        assert_eq!(ready["lastTransitionTime"], rfc3339(60_000));
        let valid = conditions
            .iter()
            .find(|c| c["type"] == "ValidationSucceeded")
            .expect("validation");
        assert_eq!(valid["status"], "True");
        assert_eq!(valid["lastTransitionTime"], rfc3339(1_000), "unchanged, so kept");
        let class = broken
            .iter()
            .find(|s| s.kind == ConfigKind::Ec2NodeClass)
            .expect("the class");
        assert_eq!(class.status["conditions"][0]["status"], "False");

        // The next pass, nothing having changed, writes nothing.
        let mut pool_now = pool_then.clone();
        pool_now.status = Some(np.status.clone());
        let mut class_now = nodeclass("default");
        class_now.status = Some(class.status.clone());
        let again = statuses(
            &[pool_now],
            &[class_now],
            &types,
            &BTreeMap::new(),
            &claims,
            &problems,
            120_000,
        );
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn a_pool_whose_node_class_ref_names_another_kind_is_valid_but_its_node_class_not_ready() {
        let mut pool = nodepool("default").build();
        pool.spec.template.spec.node_class_ref.kind = "AKSNodeClass".into();
        // What the round lists for it.
        let problems = [crate::assemble::node_class_for(&pool, &[])
            .expect_err("foreign")
            .to_string()];
        let out = statuses(
            &[pool],
            &[nodeclass("default")],
            &BTreeMap::new(),
            &BTreeMap::new(),
            &[],
            &problems,
            0,
        );
        let np = out
            .iter()
            .find(|s| s.kind == ConfigKind::NodePool)
            .expect("the pool");
        let conditions = np.status["conditions"].as_array().expect("conditions");
        let condition = |kind: &str| conditions.iter().find(|c| c["type"] == kind).expect("condition");
        assert_eq!(condition("ValidationSucceeded")["status"], "True");
        let class = condition("NodeClassReady");
        assert_eq!(class["status"], "False");
        assert!(
            class["message"]
                .as_str()
                .is_some_and(|m| m.contains("AKSNodeClass")),
            "{class}"
        );
        assert_eq!(condition("Ready")["status"], "False");
    }
}
