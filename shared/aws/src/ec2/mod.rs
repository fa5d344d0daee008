//! The EC2 cloud: launches through launch templates and instant `CreateFleet`, lists and
//! terminates instances, and serves the live catalog.
//!
//! # A launch
//!
//! 1. If a live instance already carries the claim's tag, that is the claim's instance (the
//!    fleet's client token alone does not survive a launch template change).
//! 2. The node class is resolved: subnets and security groups by their selector terms, AMIs by
//!    alias or selector for each architecture (and NVIDIA variant) EC2's types need. These
//!    lookups are cached for a minute (AMIs five), so a round launching many claims asks once.
//! 3. Each offering becomes one fleet override: its type in the best subnet (most free
//!    addresses) of its zone, under the launch template of its AMI. The offerings come as the
//!    core planned them, those recently out of capacity already left out; the adapter keeps no
//!    such state. On-demand overrides carry their price rank as priority.
//! 4. `CreateFleet` (instant, one instance, price-capacity-optimized for spot, lowest-price for
//!    on-demand). Overrides EC2 reports out of capacity are returned (the core marks them
//!    unavailable); no instance at all is an `InsufficientCapacity` error naming them.
//!
//! # The catalog
//!
//! A node class's catalog is EC2's, narrowed by the same resolution (and caches) as step 2 to
//! what a launch can use: offerings in zones of its subnets and types with an AMI for their
//! architecture and variant. Offerings out of capacity stay in it: the core leaves them out.
//!
//! # Instance profile
//!
//! `instanceProfile` is used as given. For `role`, the adapter makes (once per node class and
//! role, cached for an hour) an instance profile of its own holding the role, tagged as
//! Karpenter tags its own, and launches with it; the sweeper deletes it once its node class is
//! gone and no instance uses it ([`instance_profile`]).
//!
//! # Files
//!
//! [`resolution`] does step 2, [`launch`] steps 1 to 3 and the launch templates, [`fleet`] the
//! `CreateFleet` request and [`fleet_outcome`] what its response means (pure, unit-tested).

mod ami;
mod fleet;
mod fleet_outcome;
mod instance_profile;
mod instances;
mod launch;
mod launch_template;
mod network;
mod resolution;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_config::{Region, SdkConfig};
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::Catalog;
use nodewright_core::catalog::allocatable::NodeSettings;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    Clock, Cloud, ErrorKind, Instance, InstanceProfile, LaunchRequest, LaunchTemplate, Launched,
    NodeClassResolution, PortError, PortResult, ResolvedImage, ResolvedSubnet,
};
use tracing::{info, warn};

use crate::cache::TtlCache;
use crate::catalog::LiveCatalog;
use crate::config::AwsConfig;
use crate::errors::from_sdk;
use ami::{Ami, AmiNeed};
use network::Subnet;
use resolution::{ami_needs, named_instance_profile};

pub use fleet::client_token;

const MINUTE: Millis = 60_000;
const NETWORK_TTL: Millis = MINUTE;
const AMI_TTL: Millis = 5 * MINUTE;
/// Launch templates known to exist are checked again after this long, in case one was deleted.
const TEMPLATE_TTL: Millis = 60 * MINUTE;

/// [`Cloud`] on EC2.
pub struct Ec2Cloud {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    iam: aws_sdk_iam::Client,
    config: AwsConfig,
    clock: Arc<dyn Clock>,
    catalog: LiveCatalog,
    templates: TtlCache<String, ()>,
    /// Instance profiles known to exist holding their role, by `profile|role`.
    profiles: TtlCache<String, ()>,
    subnets: TtlCache<String, Arc<Vec<Subnet>>>,
    security_groups: TtlCache<String, Arc<Vec<String>>>,
    amis: TtlCache<String, Arc<BTreeMap<AmiNeed, Ami>>>,
}

impl std::fmt::Debug for Ec2Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Cloud")
            .field("cluster", &self.config.cluster_name)
            .field("region", &self.config.region)
            .finish()
    }
}

impl Ec2Cloud {
    /// Builds the clients once (per cold start) from the caller's SDK configuration, with the
    /// region and retry policy of `config`.
    pub fn new(sdk: &SdkConfig, config: AwsConfig, clock: Arc<dyn Clock>) -> Self {
        let retry = config.retry.sdk();
        let timeouts = config.retry.timeouts();
        let region = Region::new(config.region.clone());
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(sdk)
                .region(region.clone())
                .retry_config(retry.clone())
                .timeout_config(timeouts.clone())
                .build(),
        );
        // IAM is global; its endpoint does not depend on the region.
        let iam = aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::config::Builder::from(sdk)
                .region(region.clone())
                .retry_config(retry.clone())
                .timeout_config(timeouts.clone())
                .build(),
        );
        let ssm = aws_sdk_ssm::Client::from_conf(
            aws_sdk_ssm::config::Builder::from(sdk)
                .region(region)
                .retry_config(retry.clone())
                .timeout_config(timeouts.clone())
                .build(),
        );
        // The Pricing API is served from us-east-1 for every region.
        let pricing = aws_sdk_pricing::Client::from_conf(
            aws_sdk_pricing::config::Builder::from(sdk)
                .region(Region::new("us-east-1"))
                .retry_config(retry)
                .timeout_config(timeouts)
                .build(),
        );
        let catalog = LiveCatalog::new(ec2.clone(), pricing, &config.region);
        Ec2Cloud {
            ec2,
            ssm,
            iam,
            config,
            clock,
            catalog,
            templates: TtlCache::new(TEMPLATE_TTL),
            profiles: TtlCache::new(TEMPLATE_TTL),
            subnets: TtlCache::new(NETWORK_TTL),
            security_groups: TtlCache::new(NETWORK_TTL),
            amis: TtlCache::new(AMI_TTL),
        }
    }
}

impl Cloud for Ec2Cloud {
    async fn launch(&self, request: &LaunchRequest) -> PortResult<Launched> {
        let claim = &request.claim;
        if request.overrides.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!("claim {}: nothing to launch, no offerings", claim.id),
            ));
        }
        if let Some(instance) =
            instances::live_for_claim(&self.ec2, &self.config.cluster_name, &claim.id).await?
        {
            info!(
                nodeclaim = %claim.id,
                instance_id = %instance.id,
                "the claim already has an instance; not launching another"
            );
            let price = request
                .overrides
                .iter()
                .find(|o| o.instance_type == instance.instance_type && o.zone == instance.zone)
                .map_or(0.0, |o| o.price);
            return Ok(Launched {
                instance,
                price,
                launch_template: None,
                unavailable: Vec::new(),
            });
        }
        self.launch_new(request).await
    }

    async fn terminate(&self, instance_id: &str) -> PortResult<()> {
        instances::terminate(&self.ec2, instance_id).await?;
        info!(instance_id, "terminated the instance");
        Ok(())
    }

    async fn list_instances(&self) -> PortResult<Vec<Instance>> {
        instances::not_terminated(&self.ec2, &self.config.cluster_name).await
    }

    async fn resolve_nodeclass(&self, nodeclass: &Ec2NodeClass) -> PortResult<Option<NodeClassResolution>> {
        // The same cached lookups a launch makes: no extra EC2 calls within their TTLs.
        let now = self.clock.now();
        let subnets = self.subnets(nodeclass, now).await?;
        let security_groups = self.security_groups(nodeclass, now).await?;
        let types = self.catalog.instance_types(now).await?;
        let amis = self.amis_for_types(nodeclass, &ami_needs(&types), now).await?;
        let mut images: Vec<ResolvedImage> = amis
            .values()
            .map(|a| ResolvedImage {
                id: a.id.clone(),
                name: a.name.clone(),
            })
            .collect();
        images.sort();
        images.dedup();
        Ok(Some(NodeClassResolution {
            subnets: subnets
                .iter()
                .map(|s| ResolvedSubnet {
                    id: s.id.clone(),
                    zone: s.zone.clone(),
                })
                .collect(),
            security_groups: security_groups.to_vec(),
            amis: images,
            instance_profile: self
                .managed_instance_profile(nodeclass)
                .or_else(|| named_instance_profile(nodeclass).ok()),
        }))
    }

    async fn list_launch_templates(&self) -> PortResult<Vec<LaunchTemplate>> {
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name(format!(
                "tag:{}",
                instances::cluster_tag(&self.config.cluster_name)
            ))
            .values("owned")
            .build();
        let mut out = Vec::new();
        let mut pages = self
            .ec2
            .describe_launch_templates()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("DescribeLaunchTemplates", e))?;
            for t in page.launch_templates() {
                let (Some(id), Some(name)) = (t.launch_template_id(), t.launch_template_name()) else {
                    continue;
                };
                // Without a creation time a template counts as new, so it is kept.
                let created_at = t
                    .create_time()
                    .and_then(|c| c.to_millis().ok())
                    .unwrap_or(i64::MAX);
                out.push(LaunchTemplate {
                    id: id.to_string(),
                    name: name.to_string(),
                    created_at,
                });
            }
        }
        Ok(out)
    }

    async fn delete_launch_template(&self, id: &str) -> PortResult<()> {
        match self
            .ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
        {
            Ok(_) => {
                // This process may have it cached as existing; the next launch makes it again.
                self.templates.clear();
                info!(launch_template_id = %id, "deleted a launch template no running instance came from");
                Ok(())
            }
            Err(e) => {
                let err = from_sdk("DeleteLaunchTemplate", e);
                if err.kind == ErrorKind::NotFound {
                    return Ok(());
                }
                Err(err)
            }
        }
    }

    fn managed_instance_profile(&self, nodeclass: &Ec2NodeClass) -> Option<String> {
        instance_profile::managed_name(&self.config.cluster_name, &self.config.region, nodeclass)
    }

    async fn list_instance_profiles(&self) -> PortResult<Vec<InstanceProfile>> {
        instance_profile::list(&self.iam, &self.config.cluster_name).await
    }

    async fn delete_instance_profile(&self, name: &str) -> PortResult<()> {
        instance_profile::delete(&self.iam, name).await?;
        // This process may have it cached as existing; the next launch makes it again.
        self.profiles.clear();
        Ok(())
    }

    async fn images(&self, nodeclass: &Ec2NodeClass) -> PortResult<BTreeSet<String>> {
        let now = self.clock.now();
        let types = self.catalog.instance_types(now).await?;
        let amis = self.amis_for_types(nodeclass, &ami_needs(&types), now).await?;
        Ok(amis.values().map(|a| a.id.clone()).collect())
    }

    async fn catalog(&self, nodeclass: &Ec2NodeClass) -> PortResult<Catalog> {
        let settings = NodeSettings::for_nodeclass(nodeclass).map_err(core_invalid)?;
        let now = self.clock.now();
        let built = self.catalog.catalog(&settings, now).await?;

        // Only what a launch could use: the same lookups and caches as `launch_new`, so that
        // planning never picks a zone without a subnet or a type without an AMI.
        let subnets = self.subnets(nodeclass, now).await?;
        let zones: BTreeSet<&str> = subnets.iter().map(|s| s.zone.as_str()).collect();
        let types = self.catalog.instance_types(now).await?;
        let needs_by_type = ami_needs(&types);
        let amis = self.amis_for_types(nodeclass, &needs_by_type, now).await?;
        if zones.is_empty() || amis.is_empty() {
            warn!(
                nodeclass = %nodeclass.name(),
                subnets = subnets.len(),
                amis = amis.len(),
                "the EC2NodeClass selects no subnet or no AMI; nothing can be launched for it"
            );
        }

        let mut catalog = (*built).clone();
        catalog.types.retain(|t| {
            needs_by_type
                .get(t.name.as_str())
                .is_some_and(|need| amis.contains_key(need))
        });
        catalog.retain_offerings(|_, o| zones.contains(o.zone.as_str()));
        Ok(catalog)
    }
}

fn core_invalid(e: impl Into<nodewright_core::Error>) -> PortError {
    let e = e.into();
    PortError::new(ErrorKind::Invalid, e.to_string()).with_source(e)
}
