//! Capacity, overhead and allocatable of an instance type, computed as Karpenter computes them
//! (aws/karpenter-provider-aws `pkg/providers/instancetype/types.go`), so that a node nodewright
//! plans for has the allocatable Karpenter would have predicted and the kubelet will report.
//!
//! The float arithmetic (VM memory overhead, kube-reserved CPU, eviction percentages) is done in
//! `f64` in Karpenter's order, because the rounding of those steps decides whole MiB and
//! millicores.

use std::collections::BTreeMap;
use std::fmt;

use crate::api::{AmiFamily, BlockDeviceMapping, Ec2NodeClass, KubeletOverrides};
use crate::catalog::ec2::InstanceTypeInfo;
use crate::error::{Error, Result};
use crate::quantity::Quantity;
use crate::resources::{ResourceName, Resources};

const MI: i64 = 1 << 20;
const GI: i64 = 1 << 30;

/// Share of memory the hypervisor keeps, Karpenter's `--vm-memory-overhead-percent` default.
const VM_MEMORY_OVERHEAD_PERCENT: f64 = 0.075;
/// Pods per node when the AMI family does not limit pods by ENIs.
const DEFAULT_MAX_PODS: i64 = 110;

const MEMORY_AVAILABLE: &str = "memory.available";
const NODEFS_AVAILABLE: &str = "nodefs.available";

/// An EC2NodeClass's `instanceStorePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceStorePolicy {
    /// Local NVMe disks are striped and hold the kubelet's ephemeral storage.
    Raid0,
}

/// The node class settings that change a type's capacity and overhead.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    pub ami_family: AmiFamily,
    pub kubelet: KubeletOverrides,
    /// Size of the EBS volume the kubelet's ephemeral storage lives on.
    pub root_volume_bytes: i64,
    pub instance_store_policy: Option<InstanceStorePolicy>,
}

impl Default for NodeSettings {
    /// AL2023 with no `blockDeviceMappings` (a 20Gi root volume) and no kubelet overrides: what
    /// Karpenter's instance-type documentation assumes.
    fn default() -> Self {
        NodeSettings {
            ami_family: AmiFamily::AL2023,
            kubelet: KubeletOverrides::default(),
            root_volume_bytes: default_volume_bytes(AmiFamily::AL2023),
            instance_store_policy: None,
        }
    }
}

impl NodeSettings {
    pub fn for_nodeclass(nodeclass: &Ec2NodeClass) -> Result<Self> {
        let ami_family = nodeclass.ami_family()?;
        let instance_store_policy = match nodeclass.spec.instance_store_policy.as_deref() {
            None => None,
            Some("RAID0") => Some(InstanceStorePolicy::Raid0),
            Some(other) => {
                return Err(Error::invalid(
                    "EC2NodeClass",
                    nodeclass.name(),
                    format!("unknown instanceStorePolicy {other:?} (expected RAID0)"),
                ));
            }
        };
        let mappings = &nodeclass.spec.block_device_mappings;
        let size_of = |m: &BlockDeviceMapping| m.ebs.as_ref().and_then(|e| e.volume_size);
        // Karpenter's order: the mapping marked rootVolume, then the family's ephemeral device
        // (for Custom, which has none, the last mapping), then the family's default volume.
        let chosen = mappings
            .iter()
            .find(|m| m.root_volume)
            .and_then(size_of)
            .or_else(|| match ephemeral_device(ami_family) {
                None => mappings.last().and_then(size_of),
                Some(device) => mappings
                    .iter()
                    .find(|m| m.device_name.as_deref() == Some(device))
                    .and_then(size_of),
            });
        let root_volume_bytes = match chosen {
            None => default_volume_bytes(ami_family),
            Some(q) => q.to_units_i64(&q.to_string()).map_err(|e| {
                Error::invalid(
                    "EC2NodeClass",
                    nodeclass.name(),
                    format!("blockDeviceMappings: {e}"),
                )
            })?,
        };
        Ok(NodeSettings {
            ami_family,
            kubelet: nodeclass.kubelet()?,
            root_volume_bytes,
            instance_store_policy,
        })
    }
}

/// The device whose volume holds the kubelet's data, per AMI family; unknown for Custom.
fn ephemeral_device(family: AmiFamily) -> Option<&'static str> {
    match family {
        AmiFamily::AL2023 | AmiFamily::AL2 => Some("/dev/xvda"),
        AmiFamily::Bottlerocket => Some("/dev/xvdb"),
        AmiFamily::Windows2019 | AmiFamily::Windows2022 => Some("/dev/sda1"),
        AmiFamily::Custom => None,
    }
}

fn default_volume_bytes(family: AmiFamily) -> i64 {
    match family {
        AmiFamily::Windows2019 | AmiFamily::Windows2022 => 50 * GI,
        _ => 20 * GI,
    }
}

/// Karpenter's per-family feature flags that change the overhead.
struct FamilyFlags {
    /// kube-reserved memory is sized from the ENI-limited pod count, whatever maxPods says.
    eni_limited_memory_overhead: bool,
    pods_per_core_enabled: bool,
    eni_limited_pod_density: bool,
}

fn flags(family: AmiFamily) -> FamilyFlags {
    match family {
        AmiFamily::AL2023 | AmiFamily::AL2 | AmiFamily::Custom => FamilyFlags {
            eni_limited_memory_overhead: true,
            pods_per_core_enabled: true,
            eni_limited_pod_density: true,
        },
        // Bottlerocket cannot pass podsPerCore through its settings TOML.
        AmiFamily::Bottlerocket => FamilyFlags {
            eni_limited_memory_overhead: false,
            pods_per_core_enabled: false,
            eni_limited_pod_density: true,
        },
        AmiFamily::Windows2019 | AmiFamily::Windows2022 => FamilyFlags {
            eni_limited_memory_overhead: false,
            pods_per_core_enabled: true,
            eni_limited_pod_density: false,
        },
    }
}

/// What a type's trunk ENI allows for security groups per pod (Karpenter's generated VPC limits);
/// EC2 does not return it from `DescribeInstanceTypes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VpcLimits {
    pub trunking_compatible: bool,
    pub branch_interfaces: i64,
}

/// Capacity and the three parts of the overhead of one instance type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sizing {
    pub capacity: Resources,
    pub kube_reserved: Resources,
    pub system_reserved: Resources,
    pub eviction_threshold: Resources,
}

impl Sizing {
    /// kube-reserved + system-reserved + eviction threshold.
    pub fn overhead(&self) -> Resources {
        let mut out = self.kube_reserved.clone();
        out.add(&self.system_reserved);
        out.add(&self.eviction_threshold);
        out
    }

    /// Capacity minus overhead, never below zero.
    pub fn allocatable(&self) -> Resources {
        let overhead = self.overhead();
        let mut out = Resources::new();
        for r in ResourceName::ALL {
            out.set(r, self.capacity.get(r).saturating_sub(overhead.get(r)).max(0));
        }
        out
    }
}

/// Computes capacity and overhead of a type for a node class.
pub fn size(info: &InstanceTypeInfo, vpc: Option<&VpcLimits>, settings: &NodeSettings) -> Result<Sizing> {
    let flags = flags(settings.ami_family);
    let cpu_milli = vcpus(info)? * 1000;
    let memory = memory_capacity(info)?;
    let storage = ephemeral_storage(info, settings);
    let pods = max_pods(info, &flags, &settings.kubelet)?;
    let capacity = Resources::new()
        .with(ResourceName::Cpu, cpu_milli)
        .with(ResourceName::Memory, memory)
        .with(ResourceName::EphemeralStorage, storage)
        .with(ResourceName::Pods, pods)
        .with(ResourceName::PodEni, pod_enis(vpc))
        .with(ResourceName::NvidiaGpu, gpus(info, "NVIDIA"))
        .with(ResourceName::AmdGpu, gpus(info, "AMD"))
        .with(ResourceName::HabanaGaudi, gpus(info, "Habana"))
        .with(ResourceName::AwsNeuron, neuron_devices(info))
        .with(ResourceName::AwsNeuronCore, neuron_cores(info))
        .with(ResourceName::Efa, efas(info));
    let memory_pods = if flags.eni_limited_memory_overhead {
        eni_limited_pods(info)?
    } else {
        pods
    };
    let kubelet = &settings.kubelet;
    Ok(Sizing {
        kube_reserved: kube_reserved(cpu_milli, memory_pods, &kubelet.kube_reserved)
            .map_err(|e| kubelet_error("kubeReserved", e))?,
        system_reserved: reserved_overrides(Resources::new(), &kubelet.system_reserved)
            .map_err(|e| kubelet_error("systemReserved", e))?,
        eviction_threshold: eviction_threshold(memory, storage, &kubelet.eviction_hard)
            .map_err(|e| kubelet_error("evictionHard", e))?,
        capacity,
    })
}

/// A kubelet override the node class got wrong; the same for every type, so it names the field.
fn kubelet_error(field: &str, reason: impl fmt::Display) -> Error {
    Error::invalid("kubelet setting", field, reason.to_string())
}

/// A type whose EC2 description lacks what capacity needs.
fn bad(info: &InstanceTypeInfo, reason: impl Into<String>) -> Error {
    Error::invalid("instance type", &info.instance_type, reason)
}

fn vcpus(info: &InstanceTypeInfo) -> Result<i64> {
    info.vcpu_info
        .as_ref()
        .and_then(|v| v.default_vcpus)
        .map(i64::from)
        .ok_or_else(|| bad(info, "VCpuInfo.DefaultVCpus is missing"))
}

/// Memory the node reports: the type's memory, less 64 MiB of CMA on Graviton, less the VM
/// overhead rounded up to whole MiB.
fn memory_capacity(info: &InstanceTypeInfo) -> Result<i64> {
    let mut mib = info
        .memory_info
        .as_ref()
        .and_then(|m| m.size_in_mib)
        .ok_or_else(|| bad(info, "MemoryInfo.SizeInMiB is missing"))?;
    let first_arch = info
        .processor_info
        .as_ref()
        .and_then(|p| p.supported_architectures.first());
    if first_arch.is_some_and(|a| a == "arm64") {
        mib -= 64;
    }
    let bytes = mib * MI;
    let overhead_mib = (bytes as f64 * VM_MEMORY_OVERHEAD_PERCENT / 1024.0 / 1024.0).ceil() as i64;
    Ok(bytes - overhead_mib * MI)
}

/// The VPC CNI's limit: IPs on the default network card's ENIs, less each ENI's primary IP,
/// plus two host-network pods.
fn eni_limited_pods(info: &InstanceTypeInfo) -> Result<i64> {
    let net = info
        .network_info
        .as_ref()
        .ok_or_else(|| bad(info, "NetworkInfo is missing"))?;
    let card = net
        .default_network_card_index
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| net.network_cards.get(i))
        .ok_or_else(|| bad(info, "NetworkInfo has no default network card"))?;
    let enis = i64::from(
        card.maximum_network_interfaces
            .ok_or_else(|| bad(info, "the default network card has no MaximumNetworkInterfaces"))?,
    );
    if enis <= 0 {
        return Ok(0);
    }
    let ips = i64::from(
        net.ipv4_addresses_per_interface
            .ok_or_else(|| bad(info, "NetworkInfo.Ipv4AddressesPerInterface is missing"))?,
    );
    Ok(enis * (ips - 1) + 2)
}

fn max_pods(info: &InstanceTypeInfo, flags: &FamilyFlags, kubelet: &KubeletOverrides) -> Result<i64> {
    let mut count = match kubelet.max_pods {
        Some(n) if n < 0 => return Err(kubelet_error("maxPods", format!("{n} is negative"))),
        Some(n) => n,
        None if flags.eni_limited_pod_density => eni_limited_pods(info)?,
        None => DEFAULT_MAX_PODS,
    };
    if let Some(per_core) = kubelet.pods_per_core
        && per_core > 0
        && flags.pods_per_core_enabled
    {
        count = count.min(per_core.saturating_mul(vcpus(info)?));
    }
    Ok(count)
}

/// kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the next two and 0.25%
/// of the rest, each share truncated to whole millicores.
fn kube_reserved_cpu_milli(cpu_milli: i64) -> i64 {
    const RANGES: [(i64, i64, f64); 4] = [
        (0, 1000, 0.06),
        (1000, 2000, 0.01),
        (2000, 4000, 0.005),
        (4000, 1 << 31, 0.0025),
    ];
    RANGES
        .iter()
        .filter(|(start, _, _)| cpu_milli >= *start)
        .map(|(start, end, percentage)| {
            let r = (cpu_milli.min(*end) - start) as f64;
            (r * percentage) as i64
        })
        .sum()
}

fn kube_reserved(cpu_milli: i64, pods: i64, overrides: &BTreeMap<String, String>) -> Result<Resources> {
    let defaults = Resources::new()
        .with(ResourceName::Cpu, kube_reserved_cpu_milli(cpu_milli))
        .with(ResourceName::Memory, (11 * pods + 255) * MI)
        .with(ResourceName::EphemeralStorage, GI);
    reserved_overrides(defaults, overrides)
}

/// Replaces each resource named in `overrides` (kubeReserved, systemReserved) by its value.
fn reserved_overrides(mut base: Resources, overrides: &BTreeMap<String, String>) -> Result<Resources> {
    for (name, value) in overrides {
        let q: Quantity = value.parse()?;
        if q.is_negative() {
            return Err(Error::quantity(value, "negative"));
        }
        match ResourceName::parse(name) {
            Some(r) => base.set(r, r.units_of(q, value)?),
            None => base.add_named(name, q, value)?,
        }
    }
    Ok(base)
}

/// Hard eviction thresholds: 100Mi of memory and 10% of the ephemeral storage unless
/// `evictionHard` sets `memory.available` or `nodefs.available`.
fn eviction_threshold(
    memory: i64,
    storage: i64,
    eviction_hard: &BTreeMap<String, String>,
) -> Result<Resources> {
    let signal = |key: &str, capacity: i64, default: i64| -> Result<i64> {
        match eviction_hard.get(key) {
            None => Ok(default),
            Some(v) => eviction_signal(capacity, v),
        }
    };
    let default_storage = (storage as f64 / 100.0 * 10.0).ceil() as i64;
    Ok(Resources::new()
        .with(ResourceName::Memory, signal(MEMORY_AVAILABLE, memory, 100 * MI)?)
        .with(
            ResourceName::EphemeralStorage,
            signal(NODEFS_AVAILABLE, storage, default_storage)?,
        ))
}

/// A signal's threshold in bytes: a percentage of capacity, rounded up, or a quantity.
fn eviction_signal(capacity: i64, value: &str) -> Result<i64> {
    if value.ends_with('%') {
        let mut percent: f64 = value
            .trim_matches('%')
            .parse()
            .map_err(|_| Error::quantity(value, "not a percentage"))?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(Error::quantity(value, "percentage out of range"));
        }
        // The kubelet reads 100% as "threshold disabled".
        if percent == 100.0 {
            percent = 0.0;
        }
        return Ok((capacity as f64 / 100.0 * percent).ceil() as i64);
    }
    let q: Quantity = value.parse()?;
    if q.is_negative() {
        return Err(Error::quantity(value, "negative"));
    }
    q.to_units_i64(value)
}

fn ephemeral_storage(info: &InstanceTypeInfo, settings: &NodeSettings) -> i64 {
    if settings.instance_store_policy == Some(InstanceStorePolicy::Raid0)
        && let Some(gb) = info
            .instance_storage_info
            .as_ref()
            .and_then(|s| s.total_size_in_gb)
    {
        return gb.saturating_mul(1_000_000_000);
    }
    settings.root_volume_bytes
}

fn pod_enis(vpc: Option<&VpcLimits>) -> i64 {
    match vpc {
        Some(l) if l.trunking_compatible => l.branch_interfaces,
        _ => 0,
    }
}

fn gpus(info: &InstanceTypeInfo, manufacturer: &str) -> i64 {
    info.gpu_info.as_ref().map_or(0, |g| {
        g.gpus
            .iter()
            .filter(|d| d.manufacturer.as_deref() == Some(manufacturer))
            .map(|d| i64::from(d.count.unwrap_or(0)))
            .sum()
    })
}

fn neuron_devices(info: &InstanceTypeInfo) -> i64 {
    info.neuron_info.as_ref().map_or(0, |n| {
        n.neuron_devices
            .iter()
            .map(|d| i64::from(d.count.unwrap_or(0)))
            .sum()
    })
}

/// Cores of the first Neuron device kind times its device count, as Karpenter counts them.
fn neuron_cores(info: &InstanceTypeInfo) -> i64 {
    let Some(device) = info.neuron_info.as_ref().and_then(|n| n.neuron_devices.first()) else {
        return 0;
    };
    let cores = device.core_info.as_ref().and_then(|c| c.count).unwrap_or(0);
    i64::from(device.count.unwrap_or(0)) * i64::from(cores)
}

fn efas(info: &InstanceTypeInfo) -> i64 {
    info.network_info
        .as_ref()
        .and_then(|n| n.efa_info.as_ref())
        .and_then(|e| e.maximum_efa_interfaces)
        .map_or(0, i64::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalog::ec2::{MemoryInfo, NetworkCardInfo, NetworkInfo, ProcessorInfo, VCpuInfo};

    /// A type built from the figures that matter here.
    fn info(vcpus: i32, mib: i64, arch: &str, enis: i32, ips: i32) -> InstanceTypeInfo {
        InstanceTypeInfo {
            instance_type: "test.type".into(),
            vcpu_info: Some(VCpuInfo {
                default_vcpus: Some(vcpus),
            }),
            memory_info: Some(MemoryInfo {
                size_in_mib: Some(mib),
            }),
            processor_info: Some(ProcessorInfo {
                supported_architectures: vec![arch.into()],
                ..ProcessorInfo::default()
            }),
            network_info: Some(NetworkInfo {
                default_network_card_index: Some(0),
                ipv4_addresses_per_interface: Some(ips),
                network_cards: vec![NetworkCardInfo {
                    network_card_index: Some(0),
                    maximum_network_interfaces: Some(enis),
                    ..NetworkCardInfo::default()
                }],
                ..NetworkInfo::default()
            }),
            ..InstanceTypeInfo::default()
        }
    }

    fn m5_large() -> InstanceTypeInfo {
        info(2, 8192, "x86_64", 3, 10)
    }

    fn with_kubelet(f: impl FnOnce(&mut KubeletOverrides)) -> NodeSettings {
        let mut s = NodeSettings::default();
        f(&mut s.kubelet);
        s
    }

    #[test]
    fn kube_reserved_cpu_takes_a_shrinking_share_of_each_range() {
        assert_eq!(kube_reserved_cpu_milli(1000), 60);
        assert_eq!(kube_reserved_cpu_milli(2000), 70);
        assert_eq!(kube_reserved_cpu_milli(4000), 80);
        assert_eq!(kube_reserved_cpu_milli(8000), 90);
        assert_eq!(kube_reserved_cpu_milli(96_000), 310);
        assert_eq!(kube_reserved_cpu_milli(3000), 75);
        assert_eq!(kube_reserved_cpu_milli(500), 30);
    }

    #[test]
    fn graviton_types_lose_64_mib_before_the_vm_overhead() {
        let x86 = memory_capacity(&info(1, 2048, "x86_64", 2, 4)).expect("valid");
        let arm = memory_capacity(&info(1, 2048, "arm64", 2, 4)).expect("valid");
        // 2048 MiB less ceil(7.5%) = 2048 - 154; 1984 MiB less ceil(148.8) = 1984 - 149.
        assert_eq!(x86, 1894 * MI);
        assert_eq!(arm, 1835 * MI);
    }

    #[test]
    fn a1_medium_matches_karpenters_allocatable() {
        let sizing = size(&info(1, 2048, "arm64", 2, 4), None, &NodeSettings::default()).expect("valid");
        let a = sizing.allocatable();
        assert_eq!(a.cpu(), 940);
        assert_eq!(a.memory(), 1392 * MI);
        assert_eq!(a.pods(), 8);
        assert_eq!(a.get(ResourceName::EphemeralStorage), 17 * GI);
    }

    #[test]
    fn max_pods_override_replaces_the_eni_limit_but_not_the_memory_reservation() {
        let s = with_kubelet(|k| k.max_pods = Some(110));
        let sizing = size(&m5_large(), None, &s).expect("valid");
        assert_eq!(sizing.capacity.pods(), 110);
        // AL2023 sizes kube-reserved memory from the ENI-limited 29 pods regardless.
        assert_eq!(sizing.kube_reserved.memory(), (11 * 29 + 255) * MI);
    }

    #[test]
    fn bottlerocket_sizes_kube_reserved_memory_from_max_pods() {
        let mut s = with_kubelet(|k| k.max_pods = Some(110));
        s.ami_family = AmiFamily::Bottlerocket;
        let sizing = size(&m5_large(), None, &s).expect("valid");
        assert_eq!(sizing.kube_reserved.memory(), (11 * 110 + 255) * MI);
    }

    #[test]
    fn pods_per_core_caps_pods_except_on_bottlerocket() {
        let s = with_kubelet(|k| k.pods_per_core = Some(4));
        assert_eq!(size(&m5_large(), None, &s).expect("valid").capacity.pods(), 8);
        let mut s = s;
        s.ami_family = AmiFamily::Bottlerocket;
        assert_eq!(size(&m5_large(), None, &s).expect("valid").capacity.pods(), 29);
    }

    #[test]
    fn windows_is_not_eni_limited() {
        let s = NodeSettings {
            ami_family: AmiFamily::Windows2022,
            ..NodeSettings::default()
        };
        assert_eq!(size(&m5_large(), None, &s).expect("valid").capacity.pods(), 110);
    }

    #[test]
    fn eviction_hard_percentages_are_taken_of_capacity_and_rounded_up() {
        let s = with_kubelet(|k| {
            k.eviction_hard.insert(MEMORY_AVAILABLE.into(), "5%".into());
            k.eviction_hard.insert(NODEFS_AVAILABLE.into(), "15%".into());
        });
        let sizing = size(&m5_large(), None, &s).expect("valid");
        let memory = sizing.capacity.memory();
        let expected = (memory as f64 / 100.0 * 5.0).ceil() as i64;
        assert_eq!(sizing.eviction_threshold.memory(), expected);
        assert_eq!(
            sizing.eviction_threshold.get(ResourceName::EphemeralStorage),
            3_221_225_472
        );
    }

    #[test]
    fn eviction_hard_of_100_percent_disables_the_threshold() {
        let s = with_kubelet(|k| {
            k.eviction_hard.insert(MEMORY_AVAILABLE.into(), "100%".into());
        });
        let sizing = size(&m5_large(), None, &s).expect("valid");
        assert_eq!(sizing.eviction_threshold.memory(), 0);
    }

    #[test]
    fn reserved_overrides_replace_only_the_keys_they_name() {
        let s = with_kubelet(|k| {
            k.kube_reserved.insert("cpu".into(), "250m".into());
            k.system_reserved.insert("memory".into(), "1Gi".into());
        });
        let sizing = size(&m5_large(), None, &s).expect("valid");
        assert_eq!(sizing.kube_reserved.cpu(), 250);
        assert_eq!(sizing.kube_reserved.memory(), (11 * 29 + 255) * MI);
        assert_eq!(sizing.system_reserved.memory(), GI);
        assert_eq!(sizing.overhead().memory(), (11 * 29 + 255 + 100) * MI + GI);
    }

    #[test]
    fn malformed_overrides_name_the_field_and_the_value() {
        let s = with_kubelet(|k| {
            k.kube_reserved.insert("memory".into(), "lots".into());
        });
        let err = size(&m5_large(), None, &s).expect_err("malformed").to_string();
        assert!(err.contains("kubeReserved") && err.contains("lots"), "{err}");
        let s = with_kubelet(|k| {
            k.eviction_hard.insert(MEMORY_AVAILABLE.into(), "x%".into());
        });
        assert!(size(&m5_large(), None, &s).is_err());
    }

    #[test]
    fn allocatable_never_goes_below_zero() {
        let s = with_kubelet(|k| {
            k.system_reserved.insert("cpu".into(), "64".into());
        });
        assert_eq!(size(&m5_large(), None, &s).expect("valid").allocatable().cpu(), 0);
    }

    #[test]
    fn raid0_puts_ephemeral_storage_on_the_instance_store() {
        let mut i = m5_large();
        i.instance_storage_info = Some(crate::catalog::ec2::InstanceStorageInfo {
            total_size_in_gb: Some(75),
            nvme_support: Some("required".into()),
        });
        let s = NodeSettings {
            instance_store_policy: Some(InstanceStorePolicy::Raid0),
            ..NodeSettings::default()
        };
        let sizing = size(&i, None, &s).expect("valid");
        assert_eq!(
            sizing.capacity.get(ResourceName::EphemeralStorage),
            75_000_000_000
        );
        // Without local disks the root volume still holds it.
        assert_eq!(
            size(&m5_large(), None, &s)
                .expect("valid")
                .capacity
                .get(ResourceName::EphemeralStorage),
            20 * GI
        );
    }

    #[test]
    fn pod_enis_come_only_from_trunking_compatible_types() {
        let trunk = VpcLimits {
            trunking_compatible: true,
            branch_interfaces: 9,
        };
        let no_trunk = VpcLimits {
            trunking_compatible: false,
            ..trunk
        };
        let d = NodeSettings::default();
        assert_eq!(
            size(&m5_large(), Some(&trunk), &d)
                .expect("valid")
                .capacity
                .get(ResourceName::PodEni),
            9
        );
        assert_eq!(
            size(&m5_large(), Some(&no_trunk), &d)
                .expect("valid")
                .capacity
                .get(ResourceName::PodEni),
            0
        );
    }

    #[test]
    fn missing_ec2_fields_are_errors_naming_the_type() {
        let mut i = m5_large();
        i.network_info = None;
        let err = size(&i, None, &NodeSettings::default()).expect_err("no network info");
        assert!(err.to_string().contains("test.type"), "{err}");
    }

    fn nodeclass(spec: serde_json::Value) -> Ec2NodeClass {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "nc"},
            "spec": spec
        }))
        .expect("valid node class")
    }

    #[test]
    fn node_settings_read_the_root_volume_from_block_device_mappings() {
        let nc = nodeclass(json!({"amiFamily": "AL2023", "blockDeviceMappings": [
            {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": "200Gi"}},
            {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi"}}
        ]}));
        assert_eq!(
            NodeSettings::for_nodeclass(&nc).expect("valid").root_volume_bytes,
            100 * GI
        );
        let nc = nodeclass(json!({"amiFamily": "AL2023", "blockDeviceMappings": [
            {"deviceName": "/dev/xvdz", "rootVolume": true, "ebs": {"volumeSize": "50Gi"}}
        ]}));
        assert_eq!(
            NodeSettings::for_nodeclass(&nc).expect("valid").root_volume_bytes,
            50 * GI
        );
        let nc = nodeclass(json!({"amiSelectorTerms": [{"alias": "bottlerocket@latest"}]}));
        let s = NodeSettings::for_nodeclass(&nc).expect("valid");
        assert_eq!(s.ami_family, AmiFamily::Bottlerocket);
        assert_eq!(s.root_volume_bytes, 20 * GI);
        let nc = nodeclass(json!({"amiFamily": "Custom", "blockDeviceMappings": [
            {"deviceName": "/dev/sdb", "ebs": {"volumeSize": "30Gi"}},
            {"deviceName": "/dev/sdc", "ebs": {"volumeSize": "40Gi"}}
        ]}));
        assert_eq!(
            NodeSettings::for_nodeclass(&nc).expect("valid").root_volume_bytes,
            40 * GI
        );
        let nc = nodeclass(json!({"amiFamily": "Windows2022"}));
        assert_eq!(
            NodeSettings::for_nodeclass(&nc).expect("valid").root_volume_bytes,
            50 * GI
        );
    }

    #[test]
    fn node_settings_carry_kubelet_overrides_and_instance_store_policy() {
        let nc = nodeclass(json!({
            "amiFamily": "AL2023", "instanceStorePolicy": "RAID0",
            "kubelet": {"maxPods": 20, "evictionHard": {"memory.available": "5%"}}
        }));
        let s = NodeSettings::for_nodeclass(&nc).expect("valid");
        assert_eq!(s.kubelet.max_pods, Some(20));
        assert_eq!(s.instance_store_policy, Some(InstanceStorePolicy::Raid0));
        let nc = nodeclass(json!({"amiFamily": "AL2023", "instanceStorePolicy": "RAID5"}));
        assert!(NodeSettings::for_nodeclass(&nc).is_err());
    }
}
