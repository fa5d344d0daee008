//! Resource vectors: what pods request and what nodes offer, in integer units.
//!
//! CPU is held in millicores, memory and ephemeral storage in bytes, everything else in whole
//! units, as the kube-scheduler compares them. The well-known names live in a fixed array so that
//! fitting a pod is a handful of integer comparisons; a name outside that list is kept by name.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::quantity::{self, Quantity};

/// The resources the scheduler knows by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceName {
    Cpu,
    Memory,
    Pods,
    EphemeralStorage,
    NvidiaGpu,
    AmdGpu,
    AwsNeuron,
    AwsNeuronCore,
    HabanaGaudi,
    Efa,
    PodEni,
}

impl ResourceName {
    pub const ALL: [ResourceName; 11] = [
        ResourceName::Cpu,
        ResourceName::Memory,
        ResourceName::Pods,
        ResourceName::EphemeralStorage,
        ResourceName::NvidiaGpu,
        ResourceName::AmdGpu,
        ResourceName::AwsNeuron,
        ResourceName::AwsNeuronCore,
        ResourceName::HabanaGaudi,
        ResourceName::Efa,
        ResourceName::PodEni,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceName::Cpu => "cpu",
            ResourceName::Memory => "memory",
            ResourceName::Pods => "pods",
            ResourceName::EphemeralStorage => "ephemeral-storage",
            ResourceName::NvidiaGpu => "nvidia.com/gpu",
            ResourceName::AmdGpu => "amd.com/gpu",
            ResourceName::AwsNeuron => "aws.amazon.com/neuron",
            ResourceName::AwsNeuronCore => "aws.amazon.com/neuroncore",
            ResourceName::HabanaGaudi => "habana.ai/gaudi",
            ResourceName::Efa => "vpc.amazonaws.com/efa",
            ResourceName::PodEni => "vpc.amazonaws.com/pod-eni",
        }
    }

    pub fn parse(name: &str) -> Option<ResourceName> {
        ResourceName::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Converts a quantity to this resource's integer unit (millicores for CPU).
    pub fn units_of(self, q: Quantity, original: &str) -> Result<i64> {
        match self {
            ResourceName::Cpu => q.to_milli_i64(original),
            _ => q.to_units_i64(original),
        }
    }

    /// Formats an amount of this resource as a Kubernetes quantity string.
    pub fn format(self, amount: i64) -> String {
        match self {
            ResourceName::Cpu => quantity::format_cpu_milli(amount),
            ResourceName::Memory | ResourceName::EphemeralStorage => quantity::format_bytes(amount),
            _ => amount.to_string(),
        }
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const N: usize = ResourceName::ALL.len();

/// A vector of resource amounts. Arithmetic saturates: amounts come from validated quantities
/// that fit in `i64`, and a saturated sum can only make a fit fail, never succeed wrongly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Resources {
    amounts: [i64; N],
    /// Resources outside [`ResourceName`], by name (rare: custom device plugins).
    other: BTreeMap<String, i64>,
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, name: ResourceName, amount: i64) -> Self {
        self.set(name, amount);
        self
    }

    pub fn get(&self, name: ResourceName) -> i64 {
        self.amounts[name as usize]
    }

    pub fn set(&mut self, name: ResourceName, amount: i64) {
        self.amounts[name as usize] = amount;
    }

    pub fn cpu(&self) -> i64 {
        self.get(ResourceName::Cpu)
    }

    pub fn memory(&self) -> i64 {
        self.get(ResourceName::Memory)
    }

    pub fn pods(&self) -> i64 {
        self.get(ResourceName::Pods)
    }

    pub fn other(&self) -> &BTreeMap<String, i64> {
        &self.other
    }

    pub fn get_by_name(&self, name: &str) -> i64 {
        match ResourceName::parse(name) {
            Some(r) => self.get(r),
            None => self.other.get(name).copied().unwrap_or(0),
        }
    }

    /// Parses a Kubernetes resource list (`{"cpu": "500m", "memory": "1Gi"}`).
    pub fn from_quantities<'a>(list: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut out = Resources::new();
        for (name, value) in list {
            let q: Quantity = value.parse()?;
            if q.is_negative() {
                return Err(Error::quantity(value, "negative"));
            }
            out.add_named(name, q, value)?;
        }
        Ok(out)
    }

    /// Adds a parsed quantity under its Kubernetes resource name.
    pub fn add_named(&mut self, name: &str, q: Quantity, original: &str) -> Result<()> {
        match ResourceName::parse(name) {
            Some(r) => {
                let units = r.units_of(q, original)?;
                self.amounts[r as usize] = self.amounts[r as usize].saturating_add(units);
            }
            None => {
                let units = q.to_units_i64(original)?;
                let slot = self.other.entry(name.to_string()).or_insert(0);
                *slot = slot.saturating_add(units);
            }
        }
        Ok(())
    }

    pub fn add(&mut self, other: &Resources) {
        for i in 0..N {
            self.amounts[i] = self.amounts[i].saturating_add(other.amounts[i]);
        }
        for (k, v) in &other.other {
            let slot = self.other.entry(k.clone()).or_insert(0);
            *slot = slot.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        for i in 0..N {
            self.amounts[i] = self.amounts[i].saturating_sub(other.amounts[i]);
        }
        for (k, v) in &other.other {
            let slot = self.other.entry(k.clone()).or_insert(0);
            *slot = slot.saturating_sub(*v);
        }
    }

    /// Element-wise maximum (used for init containers against the sum of regular containers).
    pub fn max_with(&mut self, other: &Resources) {
        for i in 0..N {
            self.amounts[i] = self.amounts[i].max(other.amounts[i]);
        }
        for (k, v) in &other.other {
            let slot = self.other.entry(k.clone()).or_insert(0);
            *slot = (*slot).max(*v);
        }
    }

    /// Element-wise minimum: what every one of several candidates offers. A resource missing
    /// from either side is absent from the result.
    pub fn min_with(&mut self, other: &Resources) {
        for i in 0..N {
            self.amounts[i] = self.amounts[i].min(other.amounts[i]);
        }
        self.other.retain(|k, v| match other.other.get(k) {
            Some(o) => {
                *v = (*v).min(*o);
                true
            }
            None => false,
        });
    }

    /// True when every amount requested fits in `self` (the free capacity).
    pub fn fits(&self, request: &Resources) -> bool {
        for i in 0..N {
            if request.amounts[i] > self.amounts[i] {
                return false;
            }
        }
        request
            .other
            .iter()
            .all(|(k, v)| *v <= 0 || self.other.get(k).is_some_and(|have| have >= v))
    }

    /// True when `used + extra` fits in `self` (the capacity), without building the sum.
    pub fn fits_sum(&self, used: &Resources, extra: &Resources) -> bool {
        for i in 0..N {
            if used.amounts[i].saturating_add(extra.amounts[i]) > self.amounts[i] {
                return false;
            }
        }
        if extra.other.is_empty() && used.other.is_empty() {
            return true;
        }
        let mut sum = used.clone();
        sum.add(extra);
        self.fits(&sum)
    }

    /// The first resource that does not fit, with what is requested and what is free.
    pub fn first_shortfall(&self, request: &Resources) -> Option<(String, i64, i64)> {
        self.shortfalls(request).next()
    }

    /// Every resource that does not fit, with what is requested and what is free: the known
    /// resources in their fixed order, then the others by name.
    pub fn shortfalls<'a>(&'a self, request: &'a Resources) -> impl Iterator<Item = (String, i64, i64)> + 'a {
        let known = ResourceName::ALL
            .into_iter()
            .filter(|r| request.get(*r) > self.get(*r))
            .map(|r| (r.as_str().to_string(), request.get(r), self.get(r)));
        let other = request.other.iter().filter_map(|(k, v)| {
            let have = self.other.get(k).copied().unwrap_or(0);
            (*v > have).then(|| (k.clone(), *v, have))
        });
        known.chain(other)
    }

    pub fn is_zero(&self) -> bool {
        self.amounts.iter().all(|a| *a == 0) && self.other.values().all(|v| *v == 0)
    }

    /// Non-zero entries as Kubernetes quantity strings, for output.
    pub fn to_quantity_map(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for r in ResourceName::ALL {
            let v = self.get(r);
            if v != 0 {
                out.insert(r.as_str().to_string(), r.format(v));
            }
        }
        for (k, v) in &self.other {
            if *v != 0 {
                out.insert(k.clone(), v.to_string());
            }
        }
        out
    }
}

impl serde::Serialize for Resources {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_quantity_map().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Resources {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Resources::from_quantities(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_resource_list_into_scheduler_units() {
        let r = Resources::from_quantities([("cpu", "1500m"), ("memory", "2Gi"), ("example.com/foo", "3")])
            .expect("valid");
        assert_eq!(r.cpu(), 1500);
        assert_eq!(r.memory(), 2 << 30);
        assert_eq!(r.get_by_name("example.com/foo"), 3);
    }

    #[test]
    fn rejects_negative_and_malformed_requests() {
        assert!(Resources::from_quantities([("cpu", "-1")]).is_err());
        let err = Resources::from_quantities([("memory", "1GB")]).expect_err("bad suffix");
        assert!(err.to_string().contains("\"1GB\""));
    }

    #[test]
    fn fits_compares_every_resource_including_unknown_ones() {
        let free = Resources::new()
            .with(ResourceName::Cpu, 1000)
            .with(ResourceName::Memory, 100);
        assert!(free.fits(&Resources::new().with(ResourceName::Cpu, 1000)));
        assert!(!free.fits(&Resources::new().with(ResourceName::Cpu, 1001)));
        let gpu = Resources::new().with(ResourceName::NvidiaGpu, 1);
        assert!(!free.fits(&gpu));
        assert_eq!(free.first_shortfall(&gpu), Some(("nvidia.com/gpu".into(), 1, 0)));
        let custom = Resources::from_quantities([("example.com/foo", "1")]).expect("valid");
        assert!(!free.fits(&custom));
        let mut both = gpu.clone().with(ResourceName::Cpu, 2000);
        both.add(&custom);
        let short: Vec<String> = free.shortfalls(&both).map(|(name, _, _)| name).collect();
        assert_eq!(short, ["cpu", "nvidia.com/gpu", "example.com/foo"]);
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let mut a = Resources::new().with(ResourceName::Memory, i64::MAX);
        a.add(&Resources::new().with(ResourceName::Memory, 5));
        assert_eq!(a.memory(), i64::MAX);
    }
}
