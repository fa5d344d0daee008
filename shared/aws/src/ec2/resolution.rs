//! What a node class resolves to for a launch and for the catalog: its subnets, security
//! groups, AMIs and instance profile. Every lookup is cached (see the TTLs in the module
//! above), so that a round launching many claims asks EC2, SSM and IAM once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::ec2::InstanceTypeInfo;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{Cloud, ErrorKind, PortError, PortResult};

use super::ami::{self, Ami, AmiNeed, Arch};
use super::network::{self, Subnet};
use super::{Ec2Cloud, instance_profile};

impl Ec2Cloud {
    pub(super) async fn subnets(
        &self,
        nodeclass: &Ec2NodeClass,
        now: Millis,
    ) -> PortResult<Arc<Vec<Subnet>>> {
        let key = cache_key(&nodeclass.spec.subnet_selector_terms)?;
        if let Some(found) = self.subnets.get(&key, now) {
            return Ok(found);
        }
        let found = Arc::new(network::subnets(&self.ec2, &nodeclass.spec.subnet_selector_terms).await?);
        self.subnets.put(key, found.clone(), now);
        Ok(found)
    }

    pub(super) async fn security_groups(
        &self,
        nodeclass: &Ec2NodeClass,
        now: Millis,
    ) -> PortResult<Arc<Vec<String>>> {
        let key = cache_key(&nodeclass.spec.security_group_selector_terms)?;
        if let Some(found) = self.security_groups.get(&key, now) {
            return Ok(found);
        }
        let found = Arc::new(
            network::security_groups(&self.ec2, &nodeclass.spec.security_group_selector_terms).await?,
        );
        self.security_groups.put(key, found.clone(), now);
        Ok(found)
    }

    /// The node class's AMI for every need among EC2's instance types. The catalog and every
    /// launch ask for the same set, so that they share one cache entry and one resolution.
    pub(super) async fn amis_for_types(
        &self,
        nodeclass: &Ec2NodeClass,
        needs_by_type: &HashMap<&str, AmiNeed>,
        now: Millis,
    ) -> PortResult<Arc<BTreeMap<AmiNeed, Ami>>> {
        let needs: BTreeSet<AmiNeed> = needs_by_type.values().copied().collect();
        self.amis(nodeclass, &needs, now).await
    }

    pub(super) async fn amis(
        &self,
        nodeclass: &Ec2NodeClass,
        needs: &BTreeSet<AmiNeed>,
        now: Millis,
    ) -> PortResult<Arc<BTreeMap<AmiNeed, Ami>>> {
        let key = format!(
            "{}|{}|{needs:?}",
            cache_key(&nodeclass.spec.ami_selector_terms)?,
            self.config.kubernetes_version
        );
        if let Some(found) = self.amis.get(&key, now) {
            return Ok(found);
        }
        let found = Arc::new(
            ami::resolve(
                &self.ec2,
                &self.ssm,
                &nodeclass.spec.ami_selector_terms,
                &self.config.kubernetes_version,
                needs,
            )
            .await?,
        );
        self.amis.put(key, found.clone(), now);
        Ok(found)
    }

    /// The instance profile to launch with: `instanceProfile` as given, or the one this adapter
    /// makes for `role`, made sure of once an hour per profile and role.
    pub(super) async fn instance_profile(&self, nodeclass: &Ec2NodeClass, now: Millis) -> PortResult<String> {
        let Some(name) = self.managed_instance_profile(nodeclass) else {
            return named_instance_profile(nodeclass);
        };
        let role = instance_profile::role_name(nodeclass.spec.role.as_deref().unwrap_or_default());
        let key = format!("{name}|{role}");
        if self.profiles.get(&key, now).is_some() {
            return Ok(name);
        }
        let tags = instance_profile::tags(&self.config.cluster_name, &self.config.region, nodeclass.name());
        instance_profile::ensure(&self.iam, &name, role, &tags)
            .await
            .map_err(|e| PortError {
                message: format!("EC2NodeClass {}: {}", nodeclass.name(), e.message),
                ..e
            })?;
        self.profiles.put(key, (), now);
        Ok(name)
    }
}

/// What each of EC2's instance types needs from its AMI; types of an architecture we cannot
/// launch are absent.
pub(super) fn ami_needs(types: &[InstanceTypeInfo]) -> HashMap<&str, AmiNeed> {
    types
        .iter()
        .filter_map(|t| {
            let arch = Arch::from_kube(t.kube_arch()?)?;
            let nvidia = t.gpu_info.as_ref().is_some_and(|g| {
                g.gpus.iter().any(|d| {
                    d.manufacturer
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case("nvidia"))
                })
            });
            Some((t.instance_type.as_str(), AmiNeed { arch, nvidia }))
        })
        .collect()
}

/// The instance profile a node class names itself (`instanceProfile`); for `role` see
/// [`Ec2Cloud::instance_profile`].
pub(super) fn named_instance_profile(nodeclass: &Ec2NodeClass) -> PortResult<String> {
    match &nodeclass.spec.instance_profile {
        Some(profile) => Ok(profile.clone()),
        None => Err(PortError::new(
            ErrorKind::Invalid,
            format!(
                "EC2NodeClass {} sets neither role nor instanceProfile",
                nodeclass.name()
            ),
        )),
    }
}

fn cache_key<T: serde::Serialize>(terms: &T) -> PortResult<String> {
    serde_json::to_string(terms)
        .map_err(|e| PortError::new(ErrorKind::Invalid, format!("selector terms: {e}")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodewright_core::builders::nodeclass;

    #[test]
    fn an_instance_profile_named_by_the_node_class_is_used_as_given() {
        let mut nc = nodeclass("default");
        nc.spec.role = Some("KarpenterNodeRole-demo".into());
        nc.spec.instance_profile = Some("explicit".into());
        assert_eq!(named_instance_profile(&nc).expect("profile"), "explicit");
        nc.spec.instance_profile = None;
        nc.spec.role = None;
        assert_eq!(
            named_instance_profile(&nc).expect_err("neither").kind,
            ErrorKind::Invalid
        );
    }
}
