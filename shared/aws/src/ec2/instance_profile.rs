//! Instance profiles for node classes that name a `role`, made and cleaned up by nodewright as
//! Karpenter makes its own: one per node class, named after the cluster, region and node class
//! (`nodewright_<cluster>_<hash>`, never one of Karpenter's `<cluster>_<hash>`), under the path
//! `/nodewright/`, tagged like Karpenter's (`kubernetes.io/cluster/<cluster>=owned`,
//! `karpenter.k8s.aws/ec2nodeclass`, `topology.kubernetes.io/region`) plus nodewright's claim
//! tag key (`nodewright.io/nodeclaim=instance-profile`), holding the role.
//!
//! IAM is eventually consistent: a profile made a moment ago can make EC2 refuse a launch with
//! `InvalidParameterValue: Invalid IAM Instance Profile`; [`crate::errors`] classifies that as
//! retryable, and the next round launches with it.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::labels;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{CLAIM_TAG, ErrorKind, InstanceProfile, PortError, PortResult};
use sha2::{Digest, Sha256};
use tracing::info;

use super::instances::cluster_tag;
use crate::errors::from_sdk;

/// The path of every profile nodewright makes (IAM lists profiles by path prefix).
pub(crate) const PATH: &str = "/nodewright/";
/// Karpenter's region tag on its profiles.
pub(crate) const REGION_TAG: &str = "topology.kubernetes.io/region";
/// The value of nodewright's ownership tag ([`CLAIM_TAG`]) on a profile.
pub(crate) const OWNED_BY: &str = "instance-profile";
/// IAM's limit on an instance profile's name.
const MAX_NAME: usize = 128;

/// The profile nodewright makes for a node class that names a role (none for one that names
/// its `instanceProfile`): `nodewright_<cluster>_<16 hex digits of SHA-256(region/nodeclass)>`.
pub(crate) fn managed_name(cluster: &str, region: &str, nodeclass: &Ec2NodeClass) -> Option<String> {
    if nodeclass.spec.instance_profile.is_some() || nodeclass.spec.role.is_none() {
        return None;
    }
    Some(name_for(cluster, region, nodeclass.name()))
}

pub(crate) fn name_for(cluster: &str, region: &str, nodeclass: &str) -> String {
    let hash = hex::encode(Sha256::digest(format!("{region}/{nodeclass}").as_bytes()));
    format!("{}{}", prefix(cluster), &hash[..16])
}

/// What every profile name of the cluster starts with: `nodewright_<cluster>_`.
fn prefix(cluster: &str) -> String {
    // EKS names are at most 100 characters, which fits; a longer one is cut, not refused.
    let room = MAX_NAME - "nodewright_".len() - 1 - 16;
    let cluster: String = cluster.chars().take(room).collect();
    format!("nodewright_{cluster}_")
}

/// The role's name: `role` may be given as a name, a path and name, or an ARN.
pub(crate) fn role_name(role: &str) -> &str {
    role.rsplit('/').next().unwrap_or(role)
}

/// The tags a profile for `nodeclass` carries.
pub(crate) fn tags(cluster: &str, region: &str, nodeclass: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (cluster_tag(cluster), "owned".to_string()),
        (labels::EC2NODECLASS.to_string(), nodeclass.to_string()),
        (REGION_TAG.to_string(), region.to_string()),
        (CLAIM_TAG.to_string(), OWNED_BY.to_string()),
    ])
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> PortResult<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| PortError::new(ErrorKind::Invalid, format!("tag {k}: {e}")).with_source(e))
        })
        .collect()
}

/// Makes sure the profile exists with its tags and holds `role` (and only it), replacing
/// another role it holds. Idempotent; a profile made concurrently by another invocation is
/// used as found.
pub(crate) async fn ensure(
    iam: &aws_sdk_iam::Client,
    name: &str,
    role: &str,
    want_tags: &BTreeMap<String, String>,
) -> PortResult<()> {
    let (roles, tags, created) = match get(iam, name).await? {
        Some((roles, tags)) => (roles, tags, false),
        None => {
            let created = iam
                .create_instance_profile()
                .instance_profile_name(name)
                .path(PATH)
                .set_tags(Some(sdk_tags(want_tags)?))
                .send()
                .await;
            match created {
                Ok(_) => {
                    info!(instance_profile = %name, "created an instance profile");
                    (Vec::new(), want_tags.clone(), true)
                }
                // Another invocation made it first: use what it made.
                Err(e) => {
                    let err = from_sdk("CreateInstanceProfile", e);
                    if err.kind != ErrorKind::Conflict {
                        return Err(err);
                    }
                    let (roles, tags) = get(iam, name).await?.unwrap_or_default();
                    (roles, tags, false)
                }
            }
        }
    };
    // All of them, not only the missing ones: the policy asks every tag request to carry the
    // cluster and region tags.
    if !created && want_tags.iter().any(|(k, v)| tags.get(k) != Some(v)) {
        iam.tag_instance_profile()
            .instance_profile_name(name)
            .set_tags(Some(sdk_tags(want_tags)?))
            .send()
            .await
            .map_err(|e| from_sdk("TagInstanceProfile", e))?;
    }
    if roles.iter().any(|r| r == role) {
        return Ok(());
    }
    // IAM holds one role per profile: the node class's role changed, so the old one goes.
    for old in &roles {
        remove_role(iam, name, old).await?;
        info!(instance_profile = %name, role = %old, "removed the node class's previous role");
    }
    match iam
        .add_role_to_instance_profile()
        .instance_profile_name(name)
        .role_name(role)
        .send()
        .await
    {
        Ok(_) => {
            info!(instance_profile = %name, role, "added the node class's role");
            Ok(())
        }
        Err(e) => {
            let err = from_sdk("AddRoleToInstanceProfile", e);
            Err(match err.kind {
                // The role is named by the node class: retrying will not make it exist.
                ErrorKind::NotFound => PortError::new(
                    ErrorKind::Invalid,
                    format!(
                        "role {role} of instance profile {name} does not exist: {}",
                        err.message
                    ),
                )
                .with_source(err),
                _ => err,
            })
        }
    }
}

/// The profile's roles and tags, or `None` if it does not exist.
async fn get(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> PortResult<Option<(Vec<String>, BTreeMap<String, String>)>> {
    match iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.instance_profile().map(|p| {
            let roles = p.roles().iter().map(|r| r.role_name().to_string()).collect();
            let tags = p
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            (roles, tags)
        })),
        Err(e) => {
            let err = from_sdk("GetInstanceProfile", e);
            if err.kind == ErrorKind::NotFound {
                return Ok(None);
            }
            Err(err)
        }
    }
}

async fn remove_role(iam: &aws_sdk_iam::Client, name: &str, role: &str) -> PortResult<()> {
    match iam
        .remove_role_from_instance_profile()
        .instance_profile_name(name)
        .role_name(role)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let err = from_sdk("RemoveRoleFromInstanceProfile", e);
            if err.kind == ErrorKind::NotFound {
                return Ok(());
            }
            Err(err)
        }
    }
}

/// The profiles under [`PATH`] tagged as this cluster's and nodewright's. ListInstanceProfiles
/// does not return tags, so each is read (a cluster has one per node class).
pub(crate) async fn list(iam: &aws_sdk_iam::Client, cluster: &str) -> PortResult<Vec<InstanceProfile>> {
    let mut names = Vec::new();
    let ours = prefix(cluster);
    let mut pages = iam
        .list_instance_profiles()
        .path_prefix(PATH)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("ListInstanceProfiles", e))?;
        for p in page.instance_profiles() {
            // Without a creation time a profile counts as new, so it is kept.
            let created_at = p.create_date().to_millis().unwrap_or(Millis::MAX);
            // The name alone tells ours from others' under the same path; tags then say whose.
            if p.path() == PATH && p.instance_profile_name().starts_with(&ours) {
                names.push((p.instance_profile_name().to_string(), created_at));
            }
        }
    }
    let cluster_key = cluster_tag(cluster);
    let mut out = Vec::new();
    for (name, created_at) in names {
        let Some((roles, tags)) = get(iam, &name).await? else {
            continue;
        };
        let ours = tags.get(&cluster_key).map(String::as_str) == Some("owned")
            && tags.get(CLAIM_TAG).map(String::as_str) == Some(OWNED_BY);
        if !ours {
            continue;
        }
        out.push(InstanceProfile {
            nodeclass: tags.get(labels::EC2NODECLASS).cloned(),
            name,
            roles,
            created_at,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes the profile's roles, then deletes it; one already gone counts as done.
pub(crate) async fn delete(iam: &aws_sdk_iam::Client, name: &str) -> PortResult<()> {
    let Some((roles, _)) = get(iam, name).await? else {
        return Ok(());
    };
    for role in &roles {
        remove_role(iam, name, role).await?;
    }
    match iam
        .delete_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
    {
        Ok(_) => {
            info!(instance_profile = %name, "deleted an instance profile nothing uses");
            Ok(())
        }
        Err(e) => {
            let err = from_sdk("DeleteInstanceProfile", e);
            if err.kind == ErrorKind::NotFound {
                return Ok(());
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodewright_core::builders::nodeclass;

    #[test]
    fn names_are_per_cluster_region_and_class_within_iams_limit_and_never_karpenters() {
        let a = name_for("demo", "us-east-1", "default");
        assert!(a.starts_with("nodewright_demo_"), "{a}");
        assert_eq!(a.len(), "nodewright_demo_".len() + 16);
        assert_eq!(a, name_for("demo", "us-east-1", "default"), "stable");
        assert_ne!(a, name_for("demo", "us-west-2", "default"));
        assert_ne!(a, name_for("demo", "us-east-1", "gpu"));
        let long = name_for(&"c".repeat(200), "us-east-1", "default");
        assert_eq!(long.len(), MAX_NAME);
        assert!(
            long.starts_with(&prefix(&"c".repeat(200))),
            "listed as the cluster's"
        );
    }

    #[test]
    fn only_a_role_gets_a_managed_profile() {
        let mut nc = nodeclass("default");
        nc.spec.role = Some("arn:aws:iam::123456789012:role/nodes/NodeRole".into());
        nc.spec.instance_profile = None;
        assert!(managed_name("demo", "us-east-1", &nc).is_some());
        assert_eq!(role_name(nc.spec.role.as_deref().unwrap_or_default()), "NodeRole");
        nc.spec.instance_profile = Some("explicit".into());
        assert_eq!(managed_name("demo", "us-east-1", &nc), None);
    }
}
