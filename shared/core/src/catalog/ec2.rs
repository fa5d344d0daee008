//! `DescribeInstanceTypes`-shaped data: the fields of EC2's `InstanceTypeInfo` that the catalog
//! reads, named exactly as the EC2 API's JSON names them.
//!
//! Plain data on purpose: the embedded snapshot deserializes into it and the AWS adapter fills it
//! from the SDK's output, so both catalogs go through the same code. Every field EC2 may omit is
//! an `Option` (or an empty list), and fields not listed here are ignored, because EC2 keeps
//! adding them.

use serde::{Deserialize, Serialize};

/// One instance type as `DescribeInstanceTypes` describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceTypeInfo {
    pub instance_type: String,
    #[serde(default)]
    pub bare_metal: Option<bool>,
    /// `nitro`, `xen`, or absent for bare metal.
    #[serde(default)]
    pub hypervisor: Option<String>,
    /// `on-demand`, `spot`, `capacity-block`, …
    #[serde(default)]
    pub supported_usage_classes: Vec<String>,
    /// `supported`, `unsupported`.
    #[serde(default)]
    pub nitro_enclaves_support: Option<String>,
    #[serde(default, rename = "VCpuInfo")]
    pub vcpu_info: Option<VCpuInfo>,
    #[serde(default)]
    pub memory_info: Option<MemoryInfo>,
    #[serde(default)]
    pub processor_info: Option<ProcessorInfo>,
    #[serde(default)]
    pub network_info: Option<NetworkInfo>,
    #[serde(default)]
    pub gpu_info: Option<GpuInfo>,
    #[serde(default)]
    pub neuron_info: Option<NeuronInfo>,
    #[serde(default)]
    pub inference_accelerator_info: Option<InferenceAcceleratorInfo>,
    #[serde(default)]
    pub instance_storage_info: Option<InstanceStorageInfo>,
    #[serde(default)]
    pub ebs_info: Option<EbsInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VCpuInfo {
    #[serde(default, rename = "DefaultVCpus")]
    pub default_vcpus: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    #[serde(default, rename = "SizeInMiB")]
    pub size_in_mib: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessorInfo {
    /// `x86_64`, `arm64`, `i386`, `x86_64_mac`, `arm64_mac`, in EC2's order.
    #[serde(default)]
    pub supported_architectures: Vec<String>,
    /// `Intel`, `AMD`, `AWS`, `Apple`, …
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub sustained_clock_speed_in_ghz: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInfo {
    #[serde(default)]
    pub maximum_network_interfaces: Option<i32>,
    #[serde(default)]
    pub default_network_card_index: Option<i32>,
    #[serde(default)]
    pub network_cards: Vec<NetworkCardInfo>,
    #[serde(default)]
    pub ipv4_addresses_per_interface: Option<i32>,
    #[serde(default)]
    pub efa_info: Option<EfaInfo>,
    #[serde(default)]
    pub encryption_in_transit_supported: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCardInfo {
    #[serde(default)]
    pub network_card_index: Option<i32>,
    #[serde(default)]
    pub maximum_network_interfaces: Option<i32>,
    #[serde(default)]
    pub baseline_bandwidth_in_gbps: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EfaInfo {
    #[serde(default)]
    pub maximum_efa_interfaces: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GpuInfo {
    #[serde(default)]
    pub gpus: Vec<GpuDeviceInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GpuDeviceInfo {
    #[serde(default)]
    pub name: Option<String>,
    /// `NVIDIA`, `AMD`, `Habana`, `Xilinx`, …
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub count: Option<i32>,
    #[serde(default)]
    pub memory_info: Option<DeviceMemoryInfo>,
}

/// Memory of one GPU, Neuron or inference device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceMemoryInfo {
    #[serde(default, rename = "SizeInMiB")]
    pub size_in_mib: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NeuronInfo {
    #[serde(default)]
    pub neuron_devices: Vec<NeuronDeviceInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NeuronDeviceInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub count: Option<i32>,
    #[serde(default)]
    pub core_info: Option<NeuronDeviceCoreInfo>,
    #[serde(default)]
    pub memory_info: Option<DeviceMemoryInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NeuronDeviceCoreInfo {
    #[serde(default)]
    pub count: Option<i32>,
    #[serde(default)]
    pub version: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InferenceAcceleratorInfo {
    #[serde(default)]
    pub accelerators: Vec<InferenceDeviceInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InferenceDeviceInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub count: Option<i32>,
    #[serde(default)]
    pub memory_info: Option<DeviceMemoryInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceStorageInfo {
    #[serde(default, rename = "TotalSizeInGB")]
    pub total_size_in_gb: Option<i64>,
    /// `required`, `supported`, `unsupported`.
    #[serde(default)]
    pub nvme_support: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EbsInfo {
    /// `default`, `supported`, `unsupported`.
    #[serde(default)]
    pub ebs_optimized_support: Option<String>,
    #[serde(default)]
    pub ebs_optimized_info: Option<EbsOptimizedInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EbsOptimizedInfo {
    #[serde(default)]
    pub maximum_bandwidth_in_mbps: Option<i32>,
}

impl InstanceTypeInfo {
    /// The Kubernetes architecture (`amd64`, `arm64`) of the first EC2 architecture that has one,
    /// as Karpenter picks it; `None` for types Kubernetes nodes cannot run on (Mac, 32-bit only).
    pub fn kube_arch(&self) -> Option<&'static str> {
        self.processor_info
            .as_ref()?
            .supported_architectures
            .iter()
            .find_map(|a| match a.as_str() {
                "x86_64" => Some("amd64"),
                "arm64" => Some("arm64"),
                _ => None,
            })
    }

    pub fn supports_usage_class(&self, class: &str) -> bool {
        self.supported_usage_classes.iter().any(|c| c == class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ec2_json_and_ignores_fields_it_does_not_know() {
        let json = r#"{
            "InstanceType": "m5.large",
            "SomethingNew": {"Nested": true},
            "VCpuInfo": {"DefaultVCpus": 2, "ValidCores": [1]},
            "MemoryInfo": {"SizeInMiB": 8192},
            "ProcessorInfo": {"SupportedArchitectures": ["i386", "x86_64"], "Manufacturer": "Intel",
                              "SustainedClockSpeedInGhz": 3.1},
            "NetworkInfo": {"DefaultNetworkCardIndex": 0, "Ipv4AddressesPerInterface": 10,
                            "NetworkCards": [{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": 3,
                                              "BaselineBandwidthInGbps": 0.75}],
                            "EfaInfo": {"MaximumEfaInterfaces": 1}},
            "InstanceStorageInfo": {"TotalSizeInGB": 75, "NvmeSupport": "required"},
            "EbsInfo": {"EbsOptimizedSupport": "default", "EbsOptimizedInfo": {"MaximumBandwidthInMbps": 4750}},
            "SupportedUsageClasses": ["on-demand", "spot"]
        }"#;
        let info: InstanceTypeInfo = serde_json::from_str(json).expect("valid");
        assert_eq!(info.vcpu_info.as_ref().and_then(|v| v.default_vcpus), Some(2));
        assert_eq!(info.memory_info.as_ref().and_then(|m| m.size_in_mib), Some(8192));
        assert_eq!(info.kube_arch(), Some("amd64"));
        assert!(info.supports_usage_class("spot"));
        let net = info.network_info.expect("network");
        assert_eq!(net.network_cards[0].maximum_network_interfaces, Some(3));
        assert_eq!(net.efa_info.and_then(|e| e.maximum_efa_interfaces), Some(1));
        assert_eq!(
            info.instance_storage_info.and_then(|s| s.total_size_in_gb),
            Some(75)
        );
    }

    #[test]
    fn mac_types_have_no_kubernetes_architecture() {
        let info = InstanceTypeInfo {
            processor_info: Some(ProcessorInfo {
                supported_architectures: vec!["arm64_mac".into()],
                ..ProcessorInfo::default()
            }),
            ..InstanceTypeInfo::default()
        };
        assert_eq!(info.kube_arch(), None);
    }
}
