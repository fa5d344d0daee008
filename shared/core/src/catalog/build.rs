//! Assembling a region's catalog from EC2's descriptions, offerings and prices.

use std::collections::HashMap;

use crate::catalog::allocatable::{self, NodeSettings};
use crate::catalog::ec2::InstanceTypeInfo;
use crate::catalog::type_labels::{type_labels, type_requirements};
use crate::catalog::{CapacityType, Catalog, InstanceType, Offering, Prices, StaticFacts};
use crate::error::Result;

impl Catalog {
    /// Builds a region's catalog for one node class.
    ///
    /// `zones` lists the zones each type is offered in (`DescribeInstanceTypeOfferings`). A type
    /// gets an on-demand offering in each of them when it supports on-demand and has an
    /// on-demand price, and a spot offering in each zone where it supports spot and has a spot
    /// price, as Karpenter marks offerings without a price unavailable. Types with no Kubernetes
    /// architecture (Mac, 32-bit only) or no offering are left out. A type whose description
    /// lacks what capacity needs (vCPUs, memory, network cards) is an error naming it.
    pub fn build(
        region: &str,
        infos: &[InstanceTypeInfo],
        zones: &HashMap<String, Vec<String>>,
        prices: &Prices,
        facts: &StaticFacts,
        settings: &NodeSettings,
    ) -> Result<Catalog> {
        let mut types = Vec::with_capacity(infos.len());
        for info in infos {
            let name = info.instance_type.as_str();
            let Some(arch) = info.kube_arch() else { continue };
            let offerings = offerings(info, zones.get(name), prices);
            if offerings.is_empty() {
                continue;
            }
            let sizing = allocatable::size(info, facts.vpc_limits.get(name), settings)?;
            let labels = type_labels(
                info,
                region,
                arch,
                settings.ami_family,
                facts.network_bandwidth_mbps.get(name).copied(),
            );
            let mut offered_zones: Vec<&str> = offerings.iter().map(|o| o.zone.as_str()).collect();
            offered_zones.sort_unstable();
            offered_zones.dedup();
            let mut capacity_types: Vec<&str> = offerings.iter().map(|o| o.capacity_type.as_str()).collect();
            capacity_types.sort_unstable();
            capacity_types.dedup();
            let requirements = type_requirements(&labels, &offered_zones, &capacity_types);
            types.push(InstanceType {
                name: name.to_string(),
                labels,
                requirements,
                overhead: sizing.overhead(),
                allocatable: sizing.allocatable(),
                capacity: sizing.capacity,
                offerings,
            });
        }
        types.sort_by(|a, b| a.name.cmp(&b.name));
        types.dedup_by(|a, b| a.name == b.name);
        Ok(Catalog {
            region: region.to_string(),
            types,
        })
    }
}

/// A usable price: finite and positive (a zero would make a type look free).
fn usable(price: Option<&f64>) -> Option<f64> {
    price.copied().filter(|p| p.is_finite() && *p > 0.0)
}

/// Offerings cheapest first; ties broken by capacity type then zone so the order is stable.
fn offerings(info: &InstanceTypeInfo, zones: Option<&Vec<String>>, prices: &Prices) -> Vec<Offering> {
    let name = info.instance_type.as_str();
    let Some(zones) = zones else { return Vec::new() };
    let on_demand = usable(prices.on_demand.get(name)).filter(|_| info.supports_usage_class("on-demand"));
    let spot = prices
        .spot
        .get(name)
        .filter(|_| info.supports_usage_class("spot"));
    let mut out = Vec::with_capacity(zones.len() * 2);
    for zone in zones {
        if let Some(price) = on_demand {
            out.push(Offering {
                zone: zone.clone(),
                capacity_type: CapacityType::OnDemand,
                price,
            });
        }
        if let Some(price) = spot.and_then(|s| usable(s.get(zone))) {
            out.push(Offering {
                zone: zone.clone(),
                capacity_type: CapacityType::Spot,
                price,
            });
        }
    }
    out.sort_by(|a, b| {
        a.price
            .total_cmp(&b.price)
            .then(a.capacity_type.cmp(&b.capacity_type))
            .then_with(|| a.zone.cmp(&b.zone))
    });
    out.dedup_by(|a, b| a.zone == b.zone && a.capacity_type == b.capacity_type);
    out
}
