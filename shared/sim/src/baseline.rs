//! The baseline a simulation report compares against: the same scenario on a fixed node group
//! of one instance type scaled by count, the Cluster Autoscaler setup users migrate from.
//!
//! Each NodePool (those the scenario starts with and those its steps apply) becomes a node group
//! of its own: the same name, template labels, taints, startup taints, node class, limits and
//! weight, and the same requirements on keys that do not describe the instance (zones and
//! custom labels, so that a pod selecting a pool by label, or tolerating its taints, still has
//! somewhere to go), but only the one instance type, on-demand, never expiring, and
//! consolidated as Cluster Autoscaler scales down: `WhenEmptyOrUnderutilized` after `10m` (its
//! `--scale-down-unneeded-time` default), at most 10 nodes at a time (its
//! `--max-scale-down-parallelism` default). With one type and one capacity type, consolidation
//! can only delete nodes, as Cluster Autoscaler does.
//!
//! How this differs from a real Cluster Autoscaler: the node group is launched by nodewright's
//! own pass (CreateFleet with one override) rather than by an Auto Scaling group's desired
//! count, with the simulator's launch and boot latency for both (a real ASG adds its own
//! delay, and CA scans every 10 s); scale-down removes any node whose pods fit elsewhere, where
//! CA also requires the node to be under 50% requested (`--scale-down-utilization-threshold`)
//! and waits 10 minutes after a scale-up (`--scale-down-delay-after-add`); drift replacement
//! runs as for nodewright, which CA has no notion of. Both of CA's extra waits would keep its
//! nodes longer, so the baseline's cost is, if anything, lower than a real CA's.

use std::sync::Arc;

use nodewright_core::api::{ConsolidationPolicy, NodePool};
use nodewright_core::catalog::{CapacityType, embedded};
use nodewright_core::labels;
use nodewright_core::pod::Pod;
use nodewright_core::provisioning;
use nodewright_core::requirements::{NodeSelectorRequirement, Operator};
use nodewright_core::scheduler::{self, Input};

use crate::cloud::SimCloud;
use crate::error::{Error, Result};
use crate::scenario::Scenario;
use nodewright_core::clock::VirtualClock;

/// The type a baseline uses unless every pod needs a larger one.
pub const DEFAULT_BASELINE_TYPE: &str = "m5.xlarge";
/// The family the default type is chosen from when a pod does not fit on [`DEFAULT_BASELINE_TYPE`].
const DEFAULT_BASELINE_FAMILY: &str = "m5";
/// Cluster Autoscaler's `--scale-down-unneeded-time` default.
pub const BASELINE_CONSOLIDATE_AFTER: &str = "10m";
/// Cluster Autoscaler's `--max-scale-down-parallelism` default, as a disruption budget.
const BASELINE_DISRUPTION_BUDGET: &str = "10";

/// A scenario rewritten for the baseline, and what it runs on.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub instance_type: String,
    /// The type's on-demand price in the embedded catalog, USD per hour.
    pub price_per_hour: f64,
    pub scenario: Scenario,
}

/// The baseline for `scenario` on `instance_type`, or on the default type: [`DEFAULT_BASELINE_TYPE`]
/// if every workload's pod fits on it, else the smallest m5 size every pod fits on. An error
/// names the type that is unknown, or the pod that fits on no candidate and why.
pub fn baseline(scenario: &Scenario, instance_type: Option<&str>) -> Result<Baseline> {
    let catalog = embedded::default_catalog().map_err(|e| Error::baseline(e.to_string()))?;
    let candidates: Vec<String> = match instance_type {
        Some(name) => {
            if catalog.get(name).is_none() {
                return Err(Error::baseline(format!(
                    "unknown instance type {name:?}: not in the embedded us-east-1 catalog \
                     (`nodewright catalog` lists them)"
                )));
            }
            vec![name.to_string()]
        }
        None => {
            // The default first, then the family's sizes from the smallest up.
            let mut family: Vec<_> = catalog
                .types
                .iter()
                .filter(|t| {
                    t.labels.get(labels::INSTANCE_FAMILY).map(String::as_str) == Some(DEFAULT_BASELINE_FAMILY)
                })
                .collect();
            family.sort_by_key(|t| (t.capacity.cpu(), t.capacity.memory(), t.name.clone()));
            let default_size = family.iter().find(|t| t.name == DEFAULT_BASELINE_TYPE);
            let larger = family.iter().filter(|t| {
                default_size.is_none_or(|d| {
                    (t.capacity.cpu(), t.capacity.memory()) > (d.capacity.cpu(), d.capacity.memory())
                })
            });
            std::iter::once(DEFAULT_BASELINE_TYPE.to_string())
                .chain(larger.map(|t| t.name.clone()))
                .collect()
        }
    };
    let mut last_misfit = None;
    for name in &candidates {
        let price = catalog
            .get(name)
            .and_then(|t| t.cheapest(CapacityType::OnDemand))
            .map(|o| o.price);
        let Some(price_per_hour) = price else {
            last_misfit = Some(format!("{name} is not sold on-demand"));
            continue;
        };
        let rewritten = rewrite(scenario, name);
        match misfit(&rewritten)? {
            None => {
                return Ok(Baseline {
                    instance_type: name.clone(),
                    price_per_hour,
                    scenario: rewritten,
                });
            }
            Some(why) => last_misfit = Some(format!("on {name}, {why}")),
        }
    }
    let why = last_misfit.unwrap_or_else(|| "no candidate type".to_string());
    Err(Error::baseline(match instance_type {
        Some(_) => format!("{why}; choose another type with --baseline-type"),
        None => format!(
            "no {DEFAULT_BASELINE_FAMILY} size holds every pod ({why}); choose a type with --baseline-type"
        ),
    }))
}

/// The scenario with every NodePool made a node group of `instance_type`.
fn rewrite(scenario: &Scenario, instance_type: &str) -> Scenario {
    let mut out = scenario.clone();
    for pool in &mut out.nodepools {
        *pool = node_group(pool, instance_type);
    }
    for step in &mut out.steps {
        for pool in &mut step.apply.nodepools {
            *pool = node_group(pool, instance_type);
        }
    }
    out
}

/// Keys whose values come from the instance and how it is bought: the node group's one type
/// decides them. Zone, region and OS stay, as a node group can be confined to them.
fn describes_the_instance(key: &str) -> bool {
    let key = labels::normalize(key);
    labels::is_well_known(key) && ![labels::ZONE, labels::REGION, labels::OS].contains(&key)
}

fn node_group(pool: &NodePool, instance_type: &str) -> NodePool {
    let mut group = pool.clone();
    let spec = &mut group.spec.template.spec;
    spec.requirements.retain(|r| !describes_the_instance(&r.key));
    spec.requirements.push(NodeSelectorRequirement {
        key: labels::INSTANCE_TYPE.to_string(),
        operator: Operator::In,
        values: vec![instance_type.to_string()],
        min_values: None,
    });
    spec.requirements.push(NodeSelectorRequirement {
        key: labels::CAPACITY_TYPE.to_string(),
        operator: Operator::In,
        values: vec![CapacityType::OnDemand.as_str().to_string()],
        min_values: None,
    });
    // Cluster Autoscaler never replaces a node for its age.
    spec.expire_after = Some("Never".to_string());
    let disruption = &mut group.spec.disruption;
    disruption.consolidation_policy = ConsolidationPolicy::WhenEmptyOrUnderutilized;
    disruption.consolidate_after = BASELINE_CONSOLIDATE_AFTER.to_string();
    disruption.budgets = vec![nodewright_core::api::Budget::nodes(BASELINE_DISRUPTION_BUDGET)];
    group
}

/// The first workload whose pod no node group of the rewritten scenario can hold, planned
/// alone on an empty cluster by the core's scheduler (so daemonset overhead, taints, labels
/// and the node class's allocatable all count), with the scheduler's reason.
fn misfit(scenario: &Scenario) -> Result<Option<String>> {
    let cloud = SimCloud::new(Arc::new(VirtualClock::new(0)), 0);
    cloud.set_world(scenario.cloud.clone());
    let mut invalid = Vec::new();
    let pools = pollster::block_on(provisioning::pool_inputs(
        &cloud,
        &scenario.nodepools,
        &scenario.nodeclasses,
        &mut invalid,
    ))
    .map_err(|e| Error::port("the baseline's catalog", e))?;
    let daemonsets: Vec<Pod> = scenario.daemonsets.iter().map(|d| d.pod.clone()).collect();
    for workload in &scenario.workloads {
        let mut pod = workload.template.clone();
        pod.namespace = workload.namespace.clone();
        pod.name = workload.name.clone();
        pod.owner_kind = Some("ReplicaSet".into());
        pod.owner_name = Some(workload.name.clone());
        let input = Input {
            pending: vec![pod],
            daemonsets: daemonsets.clone(),
            pools: pools.clone(),
            ..Input::default()
        };
        let plan = scheduler::schedule(&input);
        if let Some(u) = plan.unschedulable.first() {
            let mut reason = format!("a pod of workload {} does not fit: {}", workload.name, u.reason);
            if !invalid.is_empty() {
                reason.push_str(&format!(" ({})", invalid.join("; ")));
            }
            return Ok(Some(reason));
        }
    }
    Ok(None)
}
