//! The checker's own label matching: node requirements, node affinity, and what a pool offers.

use std::collections::BTreeMap;

use nodewright_core::catalog::{CapacityType, InstanceType};
use nodewright_core::labels;
use nodewright_core::ports::OfferingKey;
use nodewright_core::scheduler::Input;

use crate::specs::{NodeReq, PodSpec, PoolSpec, TEAM_KEY};

pub type Labels = BTreeMap<String, String>;

pub fn label_int(l: &Labels, key: &str) -> Option<i64> {
    l.get(key).and_then(|v| v.parse().ok())
}

pub fn req_holds(r: &NodeReq, l: &Labels) -> bool {
    let get = |k: &str| l.get(k).map(String::as_str);
    match r {
        NodeReq::ZoneIn(zones) => get(labels::ZONE).is_some_and(|z| zones.contains(&z)),
        NodeReq::CategoryNotIn(c) => get(labels::INSTANCE_CATEGORY) != Some(c),
        NodeReq::CpuGt(n) => label_int(l, labels::INSTANCE_CPU).is_some_and(|v| v > *n),
        NodeReq::CpuLt(n) => label_int(l, labels::INSTANCE_CPU).is_some_and(|v| v < *n),
        NodeReq::GenerationGt(n) => label_int(l, labels::INSTANCE_GENERATION).is_some_and(|v| v > *n),
        NodeReq::NvmeExists => l.contains_key(labels::INSTANCE_LOCAL_NVME),
        NodeReq::NoGpu => !l.contains_key(labels::INSTANCE_GPU_COUNT),
        NodeReq::CapacityTypeIn(c) => get(labels::CAPACITY_TYPE) == Some(c),
        NodeReq::TeamIn(t) => get(TEAM_KEY) == Some(t),
        NodeReq::TeamNotExists => !l.contains_key(TEAM_KEY),
        NodeReq::PoolIn(n) => get(labels::NODEPOOL) == Some(&format!("pool{n}")),
        NodeReq::PoolNotIn(n) => get(labels::NODEPOOL) != Some(&format!("pool{n}")),
    }
}

pub fn term_holds(s: &PodSpec, term: &[NodeReq], l: &Labels) -> bool {
    s.arch
        .is_none_or(|a| l.get(labels::ARCH).map(String::as_str) == Some(a))
        && term.iter().all(|r| req_holds(r, l))
}

/// nodeSelector and required node affinity (an OR of terms).
pub fn affinity_holds(s: &PodSpec, l: &Labels) -> bool {
    if s.terms.is_empty() {
        term_holds(s, &[], l)
    } else {
        s.terms.iter().any(|t| term_holds(s, t, l))
    }
}

/// The terms a pod may have been placed under (all of them when it has none).
pub fn terms_of(s: &PodSpec) -> Vec<Vec<NodeReq>> {
    if s.terms.is_empty() {
        vec![Vec::new()]
    } else {
        s.terms.clone()
    }
}

pub fn pool_allows(p: &PoolSpec, t: &InstanceType, zone: &str, ct: CapacityType) -> bool {
    let ct_ok = match ct {
        CapacityType::Spot => p.spot,
        CapacityType::OnDemand => p.on_demand,
    };
    ct_ok
        && p.zones.as_ref().is_none_or(|z| z.contains(&zone))
        && p.subnet_zones.as_ref().is_none_or(|z| z.contains(&zone))
        && t.labels
            .get(labels::INSTANCE_CATEGORY)
            .is_some_and(|c| p.categories.contains(&c.as_str()))
}

pub fn is_unavailable(input: &Input, t: &str, zone: &str, ct: CapacityType) -> bool {
    let key = OfferingKey {
        instance_type: t.to_string(),
        zone: zone.to_string(),
        capacity_type: ct,
    };
    input.unavailable.is_unavailable(&key, input.now)
}
