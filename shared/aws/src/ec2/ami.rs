//! AMIs from an EC2NodeClass's `amiSelectorTerms`.
//!
//! An alias (`al2023@latest`, `al2@v20240807`, `bottlerocket@v1.21.0`) names the EKS-optimized
//! AMIs through AWS's public SSM parameters for the cluster's Kubernetes version, one per
//! architecture and variant (NVIDIA types get the NVIDIA variant). Other terms (id, name, tags,
//! owner) select images with `DescribeImages`; among the matches the newest by creation date
//! wins for each architecture.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use nodewright_core::api::{AmiFamily, AmiSelectorTerm};
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

use crate::errors::from_sdk;

/// A CPU architecture, as EC2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub(crate) fn ec2(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// From Kubernetes' `amd64` / `arm64`.
    pub(crate) fn from_kube(arch: &str) -> Option<Arch> {
        match arch {
            "amd64" => Some(Arch::X86_64),
            "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    fn from_ec2(arch: &str) -> Option<Arch> {
        match arch {
            "x86_64" => Some(Arch::X86_64),
            "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// What an instance type needs from its AMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct AmiNeed {
    pub arch: Arch,
    pub nvidia: bool,
}

/// An image to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ami {
    pub id: String,
    pub name: String,
    /// ISO 8601, as EC2 reports it; compares in time order.
    pub created: String,
}

/// The AMI for each need that has one; needs without an AMI are absent.
pub(crate) async fn resolve(
    ec2: &aws_sdk_ec2::Client,
    ssm: &aws_sdk_ssm::Client,
    terms: &[AmiSelectorTerm],
    kubernetes_version: &str,
    needs: &BTreeSet<AmiNeed>,
) -> PortResult<BTreeMap<AmiNeed, Ami>> {
    if let Some(alias) = terms.iter().find_map(|t| t.alias.as_deref()) {
        return by_alias(ec2, ssm, alias, kubernetes_version, needs).await;
    }
    by_selector(ec2, terms, needs).await
}

async fn by_alias(
    ec2: &aws_sdk_ec2::Client,
    ssm: &aws_sdk_ssm::Client,
    alias: &str,
    kubernetes_version: &str,
    needs: &BTreeSet<AmiNeed>,
) -> PortResult<BTreeMap<AmiNeed, Ami>> {
    let (family, version) = parse_alias(alias)?;
    let mut ids: BTreeMap<AmiNeed, String> = BTreeMap::new();
    for need in needs {
        let Some(name) = alias_parameter(family, kubernetes_version, version, *need) else {
            continue;
        };
        match ssm.get_parameter().name(&name).send().await {
            Ok(out) => {
                if let Some(value) = out.parameter().and_then(|p| p.value()) {
                    ids.insert(*need, value.to_string());
                }
            }
            Err(e) => {
                let err = from_sdk("GetParameter", e);
                // No such release or variant for this Kubernetes version: no AMI for this need.
                if err.kind != ErrorKind::NotFound {
                    return Err(err);
                }
                tracing::debug!(parameter = %name, "no AMI parameter");
            }
        }
    }
    if ids.is_empty() {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!("alias {alias:?} names no AMI for Kubernetes {kubernetes_version}"),
        ));
    }
    let unique: BTreeSet<&String> = ids.values().collect();
    let images = describe(
        ec2,
        vec![
            Filter::builder()
                .name("image-id")
                .set_values(Some(unique.into_iter().cloned().collect()))
                .build(),
        ],
        None,
    )
    .await?;
    Ok(ids
        .into_iter()
        .filter_map(|(need, id)| {
            let (arch, ami) = images.iter().find(|(_, ami)| ami.id == id)?;
            (*arch == need.arch).then(|| (need, ami.clone()))
        })
        .collect())
}

async fn by_selector(
    ec2: &aws_sdk_ec2::Client,
    terms: &[AmiSelectorTerm],
    needs: &BTreeSet<AmiNeed>,
) -> PortResult<BTreeMap<AmiNeed, Ami>> {
    let mut newest: BTreeMap<Arch, Ami> = BTreeMap::new();
    for term in terms {
        let mut filters = Vec::new();
        if let Some(id) = &term.id {
            filters.push(Filter::builder().name("image-id").values(id).build());
        }
        if let Some(name) = &term.name {
            filters.push(Filter::builder().name("name").values(name).build());
        }
        for (k, v) in &term.tags {
            filters.push(if v == "*" {
                Filter::builder().name("tag-key").values(k).build()
            } else {
                Filter::builder().name(format!("tag:{k}")).values(v).build()
            });
        }
        if term.ssm_parameter.is_some() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                "amiSelectorTerms.ssmParameter is not supported yet",
            ));
        }
        if filters.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                "an amiSelectorTerm must set alias, id, name or tags",
            ));
        }
        // As Karpenter does, a name alone could match anyone's public image; without an owner
        // only our own and Amazon's count.
        let owners = match (&term.owner, &term.name, &term.id) {
            (Some(owner), _, _) => Some(vec![owner.clone()]),
            (None, Some(_), None) => Some(vec!["self".to_string(), "amazon".to_string()]),
            _ => None,
        };
        filters.push(Filter::builder().name("state").values("available").build());
        for (arch, ami) in describe(ec2, filters, owners).await? {
            let newer = newest.get(&arch).is_none_or(|cur| ami.created > cur.created);
            if newer {
                newest.insert(arch, ami);
            }
        }
    }
    Ok(needs
        .iter()
        .filter_map(|need| newest.get(&need.arch).map(|ami| (*need, ami.clone())))
        .collect())
}

async fn describe(
    ec2: &aws_sdk_ec2::Client,
    filters: Vec<Filter>,
    owners: Option<Vec<String>>,
) -> PortResult<Vec<(Arch, Ami)>> {
    let mut out = Vec::new();
    let mut pages = ec2
        .describe_images()
        .set_filters(Some(filters))
        .set_owners(owners)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("DescribeImages", e))?;
        for image in page.images() {
            let (Some(id), Some(arch)) = (
                image.image_id(),
                image.architecture().and_then(|a| Arch::from_ec2(a.as_str())),
            ) else {
                continue;
            };
            out.push((
                arch,
                Ami {
                    id: id.to_string(),
                    name: image.name().unwrap_or_default().to_string(),
                    created: image.creation_date().unwrap_or_default().to_string(),
                },
            ));
        }
    }
    Ok(out)
}

/// `al2023@latest` → (AL2023, "latest").
fn parse_alias(alias: &str) -> PortResult<(AmiFamily, &str)> {
    let (family, version) = alias.split_once('@').unwrap_or((alias, "latest"));
    let family = match family.to_ascii_lowercase().as_str() {
        "al2023" => AmiFamily::AL2023,
        "al2" => AmiFamily::AL2,
        "bottlerocket" => AmiFamily::Bottlerocket,
        other => {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!("alias family {other:?} is not supported (al2023, al2, bottlerocket)"),
            ));
        }
    };
    if version.is_empty() {
        return Err(PortError::new(
            ErrorKind::Invalid,
            format!("alias {alias:?} has an empty version"),
        ));
    }
    Ok((family, version))
}

/// The public SSM parameter holding the image id for a need, or `None` if the family has no
/// such variant (AL2 has no arm64 GPU image).
fn alias_parameter(family: AmiFamily, k8s: &str, version: &str, need: AmiNeed) -> Option<String> {
    let latest = version == "latest";
    let arch = need.arch.ec2();
    match family {
        AmiFamily::AL2023 => {
            let variant = if need.nvidia { "nvidia" } else { "standard" };
            let release = if latest {
                "recommended".to_string()
            } else {
                format!("amazon-eks-node-al2023-{arch}-{variant}-{k8s}-{version}")
            };
            Some(format!(
                "/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/{variant}/{release}/image_id"
            ))
        }
        AmiFamily::AL2 => {
            let (path, stem) = match (need.arch, need.nvidia) {
                (Arch::X86_64, false) => ("amazon-linux-2", "amazon-eks-node"),
                (Arch::Arm64, false) => ("amazon-linux-2-arm64", "amazon-eks-arm64-node"),
                (Arch::X86_64, true) => ("amazon-linux-2-gpu", "amazon-eks-gpu-node"),
                (Arch::Arm64, true) => return None,
            };
            let release = if latest {
                "recommended".to_string()
            } else {
                format!("{stem}-{k8s}-{version}")
            };
            Some(format!(
                "/aws/service/eks/optimized-ami/{k8s}/{path}/{release}/image_id"
            ))
        }
        AmiFamily::Bottlerocket => {
            let flavour = if need.nvidia {
                format!("aws-k8s-{k8s}-nvidia")
            } else {
                format!("aws-k8s-{k8s}")
            };
            let release = version.trim_start_matches('v');
            Some(format!(
                "/aws/service/bottlerocket/{flavour}/{arch}/{release}/image_id"
            ))
        }
        AmiFamily::Windows2019 | AmiFamily::Windows2022 | AmiFamily::Custom => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD: AmiNeed = AmiNeed {
        arch: Arch::X86_64,
        nvidia: false,
    };
    const ARM: AmiNeed = AmiNeed {
        arch: Arch::Arm64,
        nvidia: false,
    };
    const GPU: AmiNeed = AmiNeed {
        arch: Arch::X86_64,
        nvidia: true,
    };

    #[test]
    fn al2023_aliases_name_the_recommended_or_a_dated_release() {
        assert_eq!(
            alias_parameter(AmiFamily::AL2023, "1.32", "latest", ARM).as_deref(),
            Some("/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/arm64/standard/recommended/image_id")
        );
        assert_eq!(
            alias_parameter(AmiFamily::AL2023, "1.32", "v20240807", GPU).as_deref(),
            Some(
                "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/nvidia/amazon-eks-node-al2023-x86_64-nvidia-1.32-v20240807/image_id"
            )
        );
    }

    #[test]
    fn al2_aliases_pick_the_arm64_and_gpu_paths() {
        assert_eq!(
            alias_parameter(AmiFamily::AL2, "1.30", "latest", AMD).as_deref(),
            Some("/aws/service/eks/optimized-ami/1.30/amazon-linux-2/recommended/image_id")
        );
        assert_eq!(
            alias_parameter(AmiFamily::AL2, "1.30", "v20240807", ARM).as_deref(),
            Some(
                "/aws/service/eks/optimized-ami/1.30/amazon-linux-2-arm64/amazon-eks-arm64-node-1.30-v20240807/image_id"
            )
        );
        assert_eq!(
            alias_parameter(AmiFamily::AL2, "1.30", "latest", GPU).as_deref(),
            Some("/aws/service/eks/optimized-ami/1.30/amazon-linux-2-gpu/recommended/image_id")
        );
        let arm_gpu = AmiNeed {
            arch: Arch::Arm64,
            nvidia: true,
        };
        assert_eq!(alias_parameter(AmiFamily::AL2, "1.30", "latest", arm_gpu), None);
    }

    #[test]
    fn bottlerocket_aliases_drop_the_v_of_the_version() {
        assert_eq!(
            alias_parameter(AmiFamily::Bottlerocket, "1.31", "v1.21.0", ARM).as_deref(),
            Some("/aws/service/bottlerocket/aws-k8s-1.31/arm64/1.21.0/image_id")
        );
        assert_eq!(
            alias_parameter(AmiFamily::Bottlerocket, "1.31", "latest", GPU).as_deref(),
            Some("/aws/service/bottlerocket/aws-k8s-1.31-nvidia/x86_64/latest/image_id")
        );
    }

    #[test]
    fn unknown_alias_families_are_invalid() {
        assert_eq!(
            parse_alias("windows2022@latest").expect_err("unsupported").kind,
            ErrorKind::Invalid
        );
        assert_eq!(
            parse_alias("AL2023@latest").expect("case-insensitive").0,
            AmiFamily::AL2023
        );
        assert_eq!(parse_alias("al2").expect("defaults to latest").1, "latest");
    }
}
