//! The instance catalog: every EC2 instance type with its labels, capacity, allocatable and
//! offerings (zone × capacity type × price).
//!
//! Built from `DescribeInstanceTypes`-shaped data ([`ec2::InstanceTypeInfo`]) by
//! [`Catalog::build`], so that the embedded snapshot ([`embedded`]) and the live catalog read
//! from EC2 go through the same code.

pub mod allocatable;
mod build;
pub mod ec2;
pub mod embedded;
mod type_labels;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::requirements::{Requirement, Requirements};
use crate::resources::Resources;

pub use allocatable::{InstanceStorePolicy, NodeSettings, VpcLimits};

/// How an instance is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CapacityType {
    #[serde(rename = "spot")]
    Spot,
    #[serde(rename = "on-demand")]
    OnDemand,
}

impl CapacityType {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::Spot => crate::labels::CAPACITY_TYPE_SPOT,
            CapacityType::OnDemand => crate::labels::CAPACITY_TYPE_ON_DEMAND,
        }
    }

    pub fn parse(s: &str) -> Option<CapacityType> {
        match s {
            "spot" => Some(CapacityType::Spot),
            "on-demand" => Some(CapacityType::OnDemand),
            _ => None,
        }
    }
}

impl fmt::Display for CapacityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place and way to buy an instance type, with its hourly price in USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offering {
    pub zone: String,
    pub capacity_type: CapacityType,
    pub price: f64,
}

/// An instance type as the scheduler uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceType {
    pub name: String,
    /// The labels a node of this type carries, except zone and capacity type which depend on
    /// the offering (`node.kubernetes.io/instance-type`, `kubernetes.io/arch`,
    /// `karpenter.k8s.aws/instance-*`, …).
    pub labels: BTreeMap<String, String>,
    /// `labels` as requirements, plus zone and capacity type `In` the offered values.
    pub requirements: Requirements,
    pub capacity: Resources,
    /// kube-reserved + system-reserved + eviction threshold.
    pub overhead: Resources,
    /// capacity − overhead: what pods can request on a node of this type.
    pub allocatable: Resources,
    /// Sorted by price, cheapest first.
    pub offerings: Vec<Offering>,
}

impl InstanceType {
    pub fn cheapest_offering(&self) -> Option<&Offering> {
        self.offerings.first()
    }

    pub fn vcpus(&self) -> i64 {
        self.capacity.cpu() / 1000
    }

    /// The cheapest offering of a capacity type.
    pub fn cheapest(&self, capacity_type: CapacityType) -> Option<&Offering> {
        self.offerings.iter().find(|o| o.capacity_type == capacity_type)
    }

    /// Whether a node of this type, launched from one of its offerings, would carry labels
    /// that satisfy `selector` (a label selector: zone and capacity type come from the
    /// offering, every other key from [`InstanceType::labels`]).
    pub fn matches_selector(&self, selector: &Requirements) -> bool {
        let mut labels = self.labels.clone();
        self.offerings.iter().any(|o| {
            labels.insert(crate::labels::ZONE.to_string(), o.zone.clone());
            labels.insert(
                crate::labels::CAPACITY_TYPE.to_string(),
                o.capacity_type.as_str().to_string(),
            );
            selector.matches_labels(&labels)
        })
    }
}

/// Hourly prices in USD.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    /// By instance type.
    pub on_demand: HashMap<String, f64>,
    /// By instance type, then zone.
    pub spot: HashMap<String, HashMap<String, f64>>,
}

/// Per-type facts that `DescribeInstanceTypes` does not return and Karpenter ships as generated
/// tables; the live catalog uses the embedded copy ([`embedded::static_facts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaticFacts {
    /// Trunk ENI limits, for `vpc.amazonaws.com/pod-eni`.
    pub vpc_limits: HashMap<String, VpcLimits>,
    /// Network bandwidth in Mbit/s, for `karpenter.k8s.aws/instance-network-bandwidth`.
    pub network_bandwidth_mbps: HashMap<String, i64>,
}

/// The instance types of one region.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub region: String,
    /// Sorted by name.
    pub types: Vec<InstanceType>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&InstanceType> {
        self.types
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.types[i])
    }

    pub fn zones(&self) -> Vec<String> {
        let mut zones: Vec<String> = self
            .types
            .iter()
            .flat_map(|t| t.offerings.iter().map(|o| o.zone.clone()))
            .collect();
        zones.sort();
        zones.dedup();
        zones
    }

    /// Keeps the offerings `keep` accepts (given the type's name), narrows each type's zone and
    /// capacity-type requirements to what is left, as [`Catalog::build`] would have made them,
    /// and drops the types left without offerings.
    pub fn retain_offerings(&mut self, mut keep: impl FnMut(&str, &Offering) -> bool) {
        for t in &mut self.types {
            let before = t.offerings.len();
            t.offerings.retain(|o| keep(&t.name, o));
            if t.offerings.len() == before || t.offerings.is_empty() {
                continue;
            }
            let zones = t.offerings.iter().map(|o| o.zone.as_str());
            t.requirements.add(crate::labels::ZONE, Requirement::is_in(zones));
            let capacity_types = t.offerings.iter().map(|o| o.capacity_type.as_str());
            t.requirements
                .add(crate::labels::CAPACITY_TYPE, Requirement::is_in(capacity_types));
        }
        self.types.retain(|t| !t.offerings.is_empty());
    }
}
