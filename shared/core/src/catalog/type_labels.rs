//! The labels a node of an instance type carries and the requirements the type offers, as
//! Karpenter's `computeRequirements` sets them (aws/karpenter-provider-aws
//! `pkg/providers/instancetype/types.go`), so that NodePools and pods written for Karpenter
//! select the same types.

use std::collections::BTreeMap;

use crate::api::AmiFamily;
use crate::catalog::ec2::InstanceTypeInfo;
use crate::labels::*;
use crate::requirements::{Requirement, Requirements};

/// Keys every type has a requirement on; a type without a value for one gets `DoesNotExist`, so
/// a pod that requires, say, a GPU name is refused by CPU-only types.
const OPTIONAL_KEYS: &[&str] = &[
    OS,
    WINDOWS_BUILD,
    INSTANCE_CATEGORY,
    INSTANCE_FAMILY,
    INSTANCE_GENERATION,
    INSTANCE_SIZE,
    INSTANCE_CAPABILITY_FLEX,
    INSTANCE_CPU_MANUFACTURER,
    INSTANCE_CPU_SUSTAINED_CLOCK_SPEED_MHZ,
    INSTANCE_EBS_BANDWIDTH,
    INSTANCE_NETWORK_BANDWIDTH,
    INSTANCE_LOCAL_NVME,
    INSTANCE_GPU_NAME,
    INSTANCE_GPU_MANUFACTURER,
    INSTANCE_GPU_COUNT,
    INSTANCE_GPU_MEMORY,
    INSTANCE_ACCELERATOR_NAME,
    INSTANCE_ACCELERATOR_MANUFACTURER,
    INSTANCE_ACCELERATOR_COUNT,
];

const WINDOWS_2019_BUILD: &str = "10.0.17763";
const WINDOWS_2022_BUILD: &str = "10.0.20348";

/// The labels of a type, without zone and capacity type (those depend on the offering).
pub(crate) fn type_labels(
    info: &InstanceTypeInfo,
    region: &str,
    arch: &str,
    family: AmiFamily,
    network_bandwidth_mbps: Option<i64>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        labels.insert(key.to_string(), value);
    };
    let name = info.instance_type.as_str();
    set(INSTANCE_TYPE, name.to_string());
    set(ARCH, arch.to_string());
    set(REGION, region.to_string());
    let windows_build = match family {
        AmiFamily::Windows2019 => Some(WINDOWS_2019_BUILD),
        AmiFamily::Windows2022 => Some(WINDOWS_2022_BUILD),
        _ => None,
    };
    match windows_build {
        // Windows nodes run only on amd64; an arm64 type gets no OS and so fits no pod.
        Some(build) if arch == "amd64" => {
            set(OS, "windows".to_string());
            set(WINDOWS_BUILD, build.to_string());
        }
        Some(_) => {}
        None => set(OS, "linux".to_string()),
    }

    if let Some(vcpus) = info.vcpu_info.as_ref().and_then(|v| v.default_vcpus) {
        set(INSTANCE_CPU, vcpus.to_string());
    }
    if let Some(mib) = info.memory_info.as_ref().and_then(|m| m.size_in_mib) {
        set(INSTANCE_MEMORY, mib.to_string());
    }
    set(INSTANCE_HYPERVISOR, info.hypervisor.clone().unwrap_or_default());
    let encryption = info
        .network_info
        .as_ref()
        .and_then(|n| n.encryption_in_transit_supported)
        .unwrap_or(false);
    set(INSTANCE_ENCRYPTION_IN_TRANSIT_SUPPORTED, encryption.to_string());

    if let Some((category, generation)) = category_and_generation(name) {
        set(INSTANCE_CATEGORY, category.to_string());
        set(INSTANCE_GENERATION, generation.to_string());
    }
    let mut parts = name.split('.');
    let family_part = parts.next().unwrap_or(name);
    if let (Some(size), None) = (parts.next(), parts.next()) {
        set(INSTANCE_FAMILY, family_part.to_string());
        set(INSTANCE_SIZE, size.to_string());
    }
    set(
        INSTANCE_CAPABILITY_FLEX,
        family_part.contains("-flex").to_string(),
    );
    if let Some(storage) = &info.instance_storage_info
        && storage.nvme_support.as_deref() != Some("unsupported")
        && let Some(gb) = storage.total_size_in_gb
    {
        set(INSTANCE_LOCAL_NVME, gb.to_string());
    }
    if let Some(mbps) = network_bandwidth_mbps {
        set(INSTANCE_NETWORK_BANDWIDTH, mbps.to_string());
    }
    // Karpenter labels GPUs and accelerators only when a type has a single kind of device.
    if let Some([gpu]) = info.gpu_info.as_ref().map(|g| g.gpus.as_slice()) {
        set(INSTANCE_GPU_NAME, kebab(gpu.name.as_deref()));
        set(INSTANCE_GPU_MANUFACTURER, kebab(gpu.manufacturer.as_deref()));
        set(INSTANCE_GPU_COUNT, gpu.count.unwrap_or(0).to_string());
        let memory = gpu.memory_info.as_ref().and_then(|m| m.size_in_mib);
        set(INSTANCE_GPU_MEMORY, memory.unwrap_or(0).to_string());
    }
    if info.neuron_info.is_none()
        && let Some([accelerator]) = info
            .inference_accelerator_info
            .as_ref()
            .map(|a| a.accelerators.as_slice())
    {
        set(INSTANCE_ACCELERATOR_NAME, kebab(accelerator.name.as_deref()));
        set(
            INSTANCE_ACCELERATOR_MANUFACTURER,
            kebab(accelerator.manufacturer.as_deref()),
        );
        set(
            INSTANCE_ACCELERATOR_COUNT,
            accelerator.count.unwrap_or(0).to_string(),
        );
    }
    if let Some([device]) = info.neuron_info.as_ref().map(|n| n.neuron_devices.as_slice()) {
        set(INSTANCE_ACCELERATOR_NAME, kebab(device.name.as_deref()));
        set(INSTANCE_ACCELERATOR_MANUFACTURER, "aws".to_string());
        set(INSTANCE_ACCELERATOR_COUNT, device.count.unwrap_or(0).to_string());
    }
    if let Some(cpu) = &info.processor_info {
        set(INSTANCE_CPU_MANUFACTURER, kebab(cpu.manufacturer.as_deref()));
        // Whole MHz so that Gt/Lt requirements can compare it.
        let ghz = cpu.sustained_clock_speed_in_ghz.unwrap_or(0.0);
        set(
            INSTANCE_CPU_SUSTAINED_CLOCK_SPEED_MHZ,
            ((ghz * 1000.0).round() as i64).to_string(),
        );
    }
    if let Some(ebs) = &info.ebs_info
        && ebs.ebs_optimized_support.as_deref() == Some("default")
        && let Some(optimized) = &ebs.ebs_optimized_info
    {
        let mbps = optimized.maximum_bandwidth_in_mbps.unwrap_or(0);
        set(INSTANCE_EBS_BANDWIDTH, mbps.to_string());
    }
    labels
}

/// The labels as `In` requirements, `DoesNotExist` for the optional keys the type lacks, and
/// zone and capacity type `In` the offered values.
pub(crate) fn type_requirements(
    labels: &BTreeMap<String, String>,
    zones: &[&str],
    capacity_types: &[&str],
) -> Requirements {
    let mut reqs = Requirements::from_labels(labels);
    for key in OPTIONAL_KEYS {
        if !labels.contains_key(*key) {
            reqs.add(key, Requirement::does_not_exist());
        }
    }
    reqs.add(ZONE, Requirement::is_in(zones.iter().copied()));
    reqs.add(CAPACITY_TYPE, Requirement::is_in(capacity_types.iter().copied()));
    reqs
}

/// Category and generation as Karpenter's `(^[a-z]+)(\-[0-9]+tb)?([0-9]+).*\.` reads them:
/// `m5.large` → (`m`, `5`), `u-6tb1.metal` → (`u`, `1`), `c7i-flex.large` → (`c`, `7`).
fn category_and_generation(name: &str) -> Option<(&str, &str)> {
    let digits_from = |i: usize| i + name[i..].bytes().take_while(u8::is_ascii_digit).count();
    let category_end = name.bytes().take_while(u8::is_ascii_lowercase).count();
    if category_end == 0 {
        return None;
    }
    let mut start = category_end;
    if name[start..].starts_with('-') {
        let end = digits_from(start + 1);
        if end > start + 1 && name[end..].starts_with("tb") {
            start = end + 2;
        }
    }
    let end = digits_from(start);
    if end == start || !name[end..].contains('.') {
        return None;
    }
    Some((&name[..category_end], &name[start..end]))
}

fn kebab(s: Option<&str>) -> String {
    s.unwrap_or_default().replace(' ', "-").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_category_and_generation_like_karpenters_pattern() {
        assert_eq!(category_and_generation("m5.large"), Some(("m", "5")));
        assert_eq!(category_and_generation("u-6tb1.metal"), Some(("u", "1")));
        assert_eq!(category_and_generation("c7i-flex.large"), Some(("c", "7")));
        assert_eq!(category_and_generation("p6-b300.48xlarge"), Some(("p", "6")));
        assert_eq!(category_and_generation("inf2.xlarge"), Some(("inf", "2")));
        assert_eq!(category_and_generation("x2iedn.metal"), Some(("x", "2")));
        assert_eq!(category_and_generation("mac.metal"), None);
        assert_eq!(category_and_generation("m5"), None);
    }

    #[test]
    fn lowers_and_kebabs_device_names() {
        assert_eq!(kebab(Some("Radeon Pro V520")), "radeon-pro-v520");
        assert_eq!(kebab(None), "");
    }
}
