//! A scenario's steps: what happens at one moment, and how a step is read.

use std::collections::{BTreeMap, BTreeSet};

use nodewright_core::pod::Millis;
use serde::Deserialize;

use crate::cloud::OfferingPattern;
use crate::error::{Error, Result};

use super::{Objects, duration};

/// Things that happen at one moment of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// From the start of the simulation.
    pub at_ms: Millis,
    /// Workload name → replicas.
    pub scale: BTreeMap<String, u32>,
    /// Offerings that run out of capacity from now on.
    pub out_of_capacity: Vec<OfferingPattern>,
    /// Outages (declared with the same pattern) that end now.
    pub restore_capacity: Vec<OfferingPattern>,
    /// Instances launched from now on that match never register (a blocked security group,
    /// broken user data).
    pub fail_registration: Vec<OfferingPattern>,
    /// Registration failures (declared with the same pattern) that end now.
    pub restore_registration: Vec<OfferingPattern>,
    /// `kubectl delete node`, by name or the oldest `count` nodes.
    pub delete_node: Option<DeleteNode>,
    /// Manifests applied now (a changed NodePool or EC2NodeClass makes its nodes drift).
    pub apply: Objects,
    /// EC2 interrupts matching instances now.
    pub interrupt: Option<Interrupt>,
    /// EKS publishes a new release of its optimized AMIs: node classes selecting `@latest`
    /// aliases resolve to it, and their nodes drift.
    pub release_ami: bool,
}

/// An interruption: EC2 sends `kind`'s event for up to `count` running instances matching the
/// pattern (oldest first), and takes spot ones (`kind: spot`) away two minutes later.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interrupt {
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub capacity_type: Option<nodewright_core::catalog::CapacityType>,
    #[serde(default = "one_instance")]
    pub count: usize,
    pub kind: InterruptKind,
}

fn one_instance() -> usize {
    1
}

/// `spot` (a spot interruption warning), `rebalance`, `scheduled` (an AWS Health scheduled
/// change) or `stop` (the instance is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterruptKind {
    Spot,
    Rebalance,
    Scheduled,
    Stop,
}

/// Which nodes a `deleteNode` step deletes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteNode {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub count: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StepSpec {
    at: String,
    #[serde(default)]
    scale: BTreeMap<String, u32>,
    #[serde(default)]
    out_of_capacity: Vec<OfferingPattern>,
    #[serde(default)]
    restore_capacity: Vec<OfferingPattern>,
    #[serde(default)]
    fail_registration: Vec<OfferingPattern>,
    #[serde(default)]
    restore_registration: Vec<OfferingPattern>,
    #[serde(default)]
    delete_node: Option<DeleteNode>,
    #[serde(default)]
    apply: Vec<serde_json::Value>,
    #[serde(default)]
    interrupt: Option<Interrupt>,
    #[serde(default)]
    release_ami: bool,
}

impl StepSpec {
    /// Checks a step against the scenario's end and workloads, and reads the manifests it applies.
    pub(super) fn into_step(
        self,
        file: &str,
        field: &str,
        end: &str,
        end_ms: Millis,
        workloads: &BTreeSet<String>,
        include: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Step> {
        let at_ms = duration(file, &format!("{field}.at"), &self.at)?;
        if at_ms > end_ms {
            return Err(Error::scenario(
                file,
                format!("{field}.at"),
                format!("{} is after end ({end})", self.at),
            ));
        }
        if let Some(unknown) = self.scale.keys().find(|n| !workloads.contains(*n)) {
            return Err(Error::scenario(
                file,
                format!("{field}.scale.{unknown}"),
                "no workload of that name",
            ));
        }
        if let Some(d) = &self.delete_node
            && d.node.is_some() == d.count.is_some()
        {
            return Err(Error::scenario(
                file,
                format!("{field}.deleteNode"),
                "give either node (a name) or count (oldest first)",
            ));
        }
        let mut applied = Objects::default();
        for (j, object) in self.apply.iter().enumerate() {
            applied.add_entry(object, file, &format!("{field}.apply[{j}]"), include)?;
        }
        if self.scale.is_empty()
            && applied.is_empty()
            && self.out_of_capacity.is_empty()
            && self.restore_capacity.is_empty()
            && self.fail_registration.is_empty()
            && self.restore_registration.is_empty()
            && self.delete_node.is_none()
            && self.interrupt.is_none()
            && !self.release_ami
        {
            return Err(Error::scenario(
                file,
                field,
                "does nothing: give scale, apply, outOfCapacity, restoreCapacity, \
                 failRegistration, restoreRegistration, deleteNode, interrupt or releaseAmi",
            ));
        }
        Ok(Step {
            at_ms,
            scale: self.scale,
            out_of_capacity: self.out_of_capacity,
            restore_capacity: self.restore_capacity,
            fail_registration: self.fail_registration,
            restore_registration: self.restore_registration,
            delete_node: self.delete_node,
            apply: applied,
            interrupt: self.interrupt,
            release_ami: self.release_ami,
        })
    }
}
