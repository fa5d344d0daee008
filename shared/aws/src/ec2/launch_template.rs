//! Launch templates, named by a hash of their content (`nodewright/<cluster>/<sha256 prefix>`):
//! the same node class, AMI and user data always map to the same template, which is created
//! once and reused, and a change makes a new one instead of mutating one that running
//! launches may be using.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateInstanceMetadataProtocolIpv6, LaunchTemplateInstanceNetworkInterfaceSpecificationRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplatesMonitoringRequest, RequestLaunchTemplateData,
    ResourceType, Tag, VolumeType,
};
use nodewright_core::api::{AmiFamily, Ec2NodeClass};
use nodewright_core::ports::{ErrorKind, PortError, PortResult};
use serde::Serialize;
use sha2::{Digest, Sha256};

const GIB: i128 = 1 << 30;

/// Everything a launch template holds. Serialized, it is also what the name hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TemplateSpec {
    pub image_id: String,
    /// Base64, as EC2 takes it.
    pub user_data: String,
    pub instance_profile: String,
    /// Sorted.
    pub security_group_ids: Vec<String>,
    pub associate_public_ip_address: Option<bool>,
    pub block_devices: Vec<BlockDevice>,
    pub metadata: Metadata,
    pub detailed_monitoring: bool,
    /// For the instances and volumes launched from it.
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BlockDevice {
    pub device_name: String,
    pub volume_size_gib: Option<i32>,
    pub volume_type: Option<String>,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub delete_on_termination: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Metadata {
    pub http_endpoint: String,
    pub http_tokens: String,
    pub http_put_response_hop_limit: i32,
    pub http_protocol_ipv6: String,
}

impl TemplateSpec {
    /// `nodewright/<cluster>/<16 hex digits of the content's SHA-256>`.
    pub(crate) fn name(&self, cluster: &str) -> PortResult<String> {
        let bytes = serde_json::to_vec(self).map_err(|e| {
            PortError::new(
                ErrorKind::Invalid,
                format!("cannot hash the launch template: {e}"),
            )
            .with_source(e)
        })?;
        Ok(format!(
            "nodewright/{cluster}/{}",
            &hex::encode(Sha256::digest(&bytes))[..16]
        ))
    }

    pub(crate) fn request_data(&self) -> RequestLaunchTemplateData {
        let tags: Vec<Tag> = self
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let tag_spec = |resource: ResourceType| {
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(resource)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let mut data = RequestLaunchTemplateData::builder()
            .image_id(&self.image_id)
            .user_data(&self.user_data)
            .iam_instance_profile(
                LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                    .name(&self.instance_profile)
                    .build(),
            )
            .set_block_device_mappings(Some(
                self.block_devices.iter().map(BlockDevice::request).collect(),
            ))
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::from(
                        self.metadata.http_endpoint.as_str(),
                    ))
                    .http_tokens(LaunchTemplateHttpTokensState::from(
                        self.metadata.http_tokens.as_str(),
                    ))
                    .http_put_response_hop_limit(self.metadata.http_put_response_hop_limit)
                    .http_protocol_ipv6(LaunchTemplateInstanceMetadataProtocolIpv6::from(
                        self.metadata.http_protocol_ipv6.as_str(),
                    ))
                    .build(),
            )
            .monitoring(
                LaunchTemplatesMonitoringRequest::builder()
                    .enabled(self.detailed_monitoring)
                    .build(),
            )
            .tag_specifications(tag_spec(ResourceType::Instance))
            .tag_specifications(tag_spec(ResourceType::Volume));
        data = match self.associate_public_ip_address {
            // A public address can only be asked for on an explicit primary interface, which
            // then carries the security groups.
            Some(public) => data.network_interfaces(
                LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                    .device_index(0)
                    .associate_public_ip_address(public)
                    .set_groups(Some(self.security_group_ids.clone()))
                    .build(),
            ),
            None => data.set_security_group_ids(Some(self.security_group_ids.clone())),
        };
        data.build()
    }
}

impl BlockDevice {
    fn request(&self) -> LaunchTemplateBlockDeviceMappingRequest {
        LaunchTemplateBlockDeviceMappingRequest::builder()
            .device_name(&self.device_name)
            .ebs(
                LaunchTemplateEbsBlockDeviceRequest::builder()
                    .set_volume_size(self.volume_size_gib)
                    .set_volume_type(self.volume_type.as_deref().map(VolumeType::from))
                    .set_iops(self.iops)
                    .set_throughput(self.throughput)
                    .set_encrypted(self.encrypted)
                    .set_kms_key_id(self.kms_key_id.clone())
                    .set_snapshot_id(self.snapshot_id.clone())
                    .set_delete_on_termination(self.delete_on_termination)
                    .build(),
            )
            .build()
    }

    fn gp3(device_name: &str, gib: i32) -> BlockDevice {
        BlockDevice {
            device_name: device_name.to_string(),
            volume_size_gib: Some(gib),
            volume_type: Some("gp3".to_string()),
            iops: None,
            throughput: None,
            encrypted: Some(true),
            kms_key_id: None,
            snapshot_id: None,
            delete_on_termination: Some(true),
        }
    }
}

/// The node class's block device mappings, or the family's defaults: a 20 GiB encrypted gp3
/// root volume at `/dev/xvda`; for Bottlerocket a 4 GiB OS volume at `/dev/xvda` and a
/// 20 GiB data volume at `/dev/xvdb`; for Custom whatever the AMI has.
pub(crate) fn block_devices(family: AmiFamily, nodeclass: &Ec2NodeClass) -> PortResult<Vec<BlockDevice>> {
    let mappings = &nodeclass.spec.block_device_mappings;
    if mappings.is_empty() {
        return Ok(match family {
            AmiFamily::Bottlerocket => vec![
                BlockDevice::gp3("/dev/xvda", 4),
                BlockDevice::gp3("/dev/xvdb", 20),
            ],
            AmiFamily::Custom => Vec::new(),
            _ => vec![BlockDevice::gp3("/dev/xvda", 20)],
        });
    }
    let invalid = |message: String| PortError::new(ErrorKind::Invalid, message);
    mappings
        .iter()
        .map(|m| {
            let device_name = m
                .device_name
                .clone()
                .ok_or_else(|| invalid("blockDeviceMappings[].deviceName is required".to_string()))?;
            let ebs = m.ebs.clone().unwrap_or_default();
            let volume_size_gib =
                ebs.volume_size
                    .map(|q| {
                        let gib = (q.units_ceil() + GIB - 1).div_euclid(GIB);
                        i32::try_from(gib).ok().filter(|g| *g > 0).ok_or_else(|| {
                            invalid(format!("volumeSize {q} of {device_name} is out of range"))
                        })
                    })
                    .transpose()?;
            let small = |what: &str, v: Option<i64>| -> PortResult<Option<i32>> {
                v.map(|n| {
                    i32::try_from(n)
                        .map_err(|_| invalid(format!("{what} {n} of {device_name} is out of range")))
                })
                .transpose()
            };
            Ok(BlockDevice {
                volume_size_gib,
                volume_type: ebs.volume_type,
                iops: small("iops", ebs.iops)?,
                throughput: small("throughput", ebs.throughput)?,
                encrypted: ebs.encrypted,
                kms_key_id: ebs.kms_key_id,
                snapshot_id: ebs.snapshot_id,
                delete_on_termination: ebs.delete_on_termination,
                device_name,
            })
        })
        .collect()
}

/// The node class's metadata options over the defaults: IMDS on, IMDSv2 required, a hop limit
/// of 1 (pods cannot reach the node's credentials through IMDS), IPv6 endpoint off.
pub(crate) fn metadata(nodeclass: &Ec2NodeClass) -> PortResult<Metadata> {
    let m = nodeclass.spec.metadata_options.clone().unwrap_or_default();
    let hop_limit = m.http_put_response_hop_limit.unwrap_or(1);
    let hop_limit = i32::try_from(hop_limit)
        .ok()
        .filter(|h| (1..=64).contains(h))
        .ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                format!("metadataOptions.httpPutResponseHopLimit {hop_limit} is not within 1..=64"),
            )
        })?;
    Ok(Metadata {
        http_endpoint: m.http_endpoint.unwrap_or_else(|| "enabled".to_string()),
        http_tokens: m.http_tokens.unwrap_or_else(|| "required".to_string()),
        http_put_response_hop_limit: hop_limit,
        http_protocol_ipv6: m.http_protocol_ipv6.unwrap_or_else(|| "disabled".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodewright_core::api::{BlockDeviceMapping, Ebs};
    use nodewright_core::builders::nodeclass;
    use nodewright_core::quantity::parse;

    fn spec() -> TemplateSpec {
        TemplateSpec {
            image_id: "ami-1".into(),
            user_data: "dXNlcmRhdGE=".into(),
            instance_profile: "profile".into(),
            security_group_ids: vec!["sg-1".into()],
            associate_public_ip_address: None,
            block_devices: vec![BlockDevice::gp3("/dev/xvda", 20)],
            metadata: metadata(&nodeclass("default")).expect("defaults"),
            detailed_monitoring: false,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn the_name_is_a_hash_of_the_content() {
        let a = spec();
        let mut b = spec();
        assert_eq!(a.name("c").expect("name"), b.name("c").expect("name"));
        assert!(a.name("c").expect("name").starts_with("nodewright/c/"));
        assert_eq!(a.name("c").expect("name").len(), "nodewright/c/".len() + 16);
        b.image_id = "ami-2".into();
        assert_ne!(a.name("c").expect("name"), b.name("c").expect("name"));
    }

    #[test]
    fn metadata_defaults_require_imdsv2_with_one_hop() {
        let m = metadata(&nodeclass("default")).expect("defaults");
        assert_eq!(m.http_tokens, "required");
        assert_eq!(m.http_put_response_hop_limit, 1);
        assert_eq!(m.http_endpoint, "enabled");
    }

    #[test]
    fn default_volumes_depend_on_the_family() {
        let nc = nodeclass("default");
        let al2023 = block_devices(AmiFamily::AL2023, &nc).expect("defaults");
        assert_eq!(al2023, vec![BlockDevice::gp3("/dev/xvda", 20)]);
        let br = block_devices(AmiFamily::Bottlerocket, &nc).expect("defaults");
        assert_eq!(br[0].device_name, "/dev/xvda");
        assert_eq!(br[0].volume_size_gib, Some(4));
        assert_eq!(br[1].device_name, "/dev/xvdb");
        assert_eq!(br[1].volume_size_gib, Some(20));
    }

    #[test]
    fn configured_volume_sizes_round_up_to_whole_gibibytes() {
        let mut nc = nodeclass("default");
        nc.spec.block_device_mappings = vec![BlockDeviceMapping {
            device_name: Some("/dev/xvda".into()),
            ebs: Some(Ebs {
                volume_size: Some(parse("100G").expect("quantity")),
                volume_type: Some("gp3".into()),
                ..Ebs::default()
            }),
            root_volume: true,
        }];
        let devices = block_devices(AmiFamily::AL2023, &nc).expect("valid");
        assert_eq!(devices[0].volume_size_gib, Some(94)); // 100e9 bytes is 93.13 GiB
    }
}
