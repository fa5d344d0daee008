//! Offerings as bits: one per (zone, capacity type), so that pricing and narrowing thousands
//! of claims compares integers, not zone names.

use super::pools::*;
use crate::catalog::CapacityType;
use crate::requirements::Requirements;

pub(super) const CT_SPOT: u32 = 0;

pub(super) const CT_ON_DEMAND: u32 = 1;

pub(super) fn ct_index(ct: CapacityType) -> u32 {
    match ct {
        CapacityType::Spot => CT_SPOT,
        CapacityType::OnDemand => CT_ON_DEMAND,
    }
}

pub(super) fn ct_of(index: u32) -> CapacityType {
    if index == CT_SPOT {
        CapacityType::Spot
    } else {
        CapacityType::OnDemand
    }
}

/// One bit per (zone, capacity type) pair.
pub(super) fn offering_bit(zone: u32, ct: u32) -> u64 {
    1u64 << (zone * 2 + ct)
}

pub(super) fn expand(zones: u64, cts: u8) -> u64 {
    let mut out = 0;
    for z in bits(zones) {
        for c in 0..2 {
            if cts & (1 << c) != 0 {
                out |= offering_bit(z, c);
            }
        }
    }
    out
}

pub(super) fn bits(mask: u64) -> impl Iterator<Item = u32> {
    (0..64u32).filter(move |i| mask & (1u64 << i) != 0)
}

pub(super) fn bits_iter(mask: u64) -> impl Iterator<Item = u32> {
    bits(mask)
}

/// Every `minValues` requirement still has enough distinct values among the candidates.
pub(super) fn min_values_hold(pool: &Pool, reqs: &Requirements, types: &[u32]) -> bool {
    reqs.iter().all(|(key, r)| {
        let Some(min) = r.min_values else { return true };
        let mut values: Vec<&str> = types
            .iter()
            .filter_map(|t| pool.types[*t as usize].it.labels.get(key).map(String::as_str))
            .collect();
        values.sort_unstable();
        values.dedup();
        values.len() >= min as usize
    })
}
