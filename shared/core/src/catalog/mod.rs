//! The instance catalog: every EC2 instance type with its labels, capacity, allocatable and
//! offerings (zone × capacity type × price).
//!
//! Built from `DescribeInstanceTypes`-shaped data ([`ec2::InstanceTypeInfo`]) so that the
//! embedded snapshot and the live catalog read from EC2 go through the same code.

pub mod allocatable;
pub mod ec2;
pub mod embedded;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::requirements::Requirements;
use crate::resources::Resources;

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
}
