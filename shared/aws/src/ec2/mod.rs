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
//!    addresses) of its zone, under the launch template of its AMI; offerings that recently
//!    ran out of capacity are skipped. On-demand overrides carry their price rank as priority.
//! 4. `CreateFleet` (instant, one instance, price-capacity-optimized for spot, lowest-price for
//!    on-demand). Overrides EC2 reports out of capacity are marked unavailable for three
//!    minutes and returned; no instance at all is an `InsufficientCapacity` error.
//!
//! # The catalog
//!
//! A node class's catalog is EC2's, narrowed by the same resolution (and caches) as step 2 to
//! what a launch can use: offerings in zones of its subnets, types with an AMI for their
//! architecture and variant, and no offering recently out of capacity.
//!
//! # Instance profile
//!
//! `instanceProfile` is used as given. For `role`, the adapter makes (once per node class and
//! role, cached for an hour) an instance profile of its own holding the role, tagged as
//! Karpenter tags its own, and launches with it; the sweeper deletes it once its node class is
//! gone and no instance uses it ([`instance_profile`]).

mod ami;
mod instance_profile;
mod instances;
mod launch_template;
mod network;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverrides,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, InstanceType, OnDemandOptionsRequest, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification, TargetCapacitySpecificationRequest,
};
use base64::Engine as _;
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::allocatable::NodeSettings;
use nodewright_core::catalog::ec2::InstanceTypeInfo;
use nodewright_core::catalog::{CapacityType, Catalog};
use nodewright_core::nodeclaim::NodeClaim;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    CLAIM_TAG, Clock, Cloud, ErrorKind, Instance, InstanceProfile, InstanceState, LaunchOverride,
    LaunchRequest, LaunchTemplate, Launched, NodeClassResolution, OfferingKey, PortError, PortResult,
};
use nodewright_core::unavailable::UnavailableOfferings;
use tracing::{info, warn};

use crate::cache::{TtlCache, lock};
use crate::catalog::LiveCatalog;
use crate::config::AwsConfig;
use crate::errors::{from_sdk, kind_for};
use crate::userdata::Bootstrap;
use ami::{Ami, AmiNeed, Arch};
use launch_template::TemplateSpec;
use network::Subnet;

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
    unavailable: Mutex<UnavailableOfferings>,
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

/// One fleet override, before it becomes an SDK request.
struct Planned<'a> {
    offering: &'a LaunchOverride,
    subnet: &'a Subnet,
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
            unavailable: Mutex::new(UnavailableOfferings::new()),
            templates: TtlCache::new(TEMPLATE_TTL),
            profiles: TtlCache::new(TEMPLATE_TTL),
            subnets: TtlCache::new(NETWORK_TTL),
            security_groups: TtlCache::new(NETWORK_TTL),
            amis: TtlCache::new(AMI_TTL),
        }
    }

    async fn launch_new(&self, request: &LaunchRequest) -> PortResult<Launched> {
        let claim = &request.claim;
        let nodeclass = &request.nodeclass;
        let now = self.clock.now();
        let family = nodeclass.ami_family().map_err(core_invalid)?;

        let capacity_type = single_capacity_type(&request.overrides)?;
        let allowed: Vec<&LaunchOverride> = request
            .overrides
            .iter()
            .filter(|o| claim.zones.is_empty() || claim.zones.contains(&o.zone))
            .collect();
        let (skipped, candidates): (Vec<&LaunchOverride>, Vec<&LaunchOverride>) = {
            let unavailable = lock(&self.unavailable);
            allowed
                .into_iter()
                .partition(|o| unavailable.is_unavailable(&offering_key(o), now))
        };
        if candidates.is_empty() {
            return Err(PortError::insufficient_capacity(
                format!(
                    "claim {}: every offering ({}) is out of capacity or outside the claim's zones",
                    claim.id,
                    request.overrides.len()
                ),
                skipped.into_iter().map(offering_key).collect(),
            ));
        }

        let subnets = self.subnets(nodeclass, now).await?;
        let best = network::best_per_zone(&subnets);
        let security_groups = self.security_groups(nodeclass, now).await?;
        if security_groups.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!(
                    "EC2NodeClass {}: no security group matches its selector terms",
                    nodeclass.name()
                ),
            ));
        }
        let types = self.catalog.instance_types(now).await?;
        let needs_by_type = ami_needs(&types);
        let amis = self.amis_for_types(nodeclass, &needs_by_type, now).await?;

        // Group the offerings by AMI, each group one launch template, keeping price order.
        let mut groups: Vec<(String, Vec<Planned>)> = Vec::new();
        let mut dropped = Vec::new();
        for offering in &candidates {
            let ami = needs_by_type
                .get(offering.instance_type.as_str())
                .and_then(|need| amis.get(need));
            let (Some(subnet), Some(ami)) = (best.get(&offering.zone), ami) else {
                dropped.push(format!("{}/{}", offering.instance_type, offering.zone));
                continue;
            };
            let planned = Planned { offering, subnet };
            match groups.iter_mut().find(|(id, _)| *id == ami.id) {
                Some((_, group)) => group.push(planned),
                None => groups.push((ami.id.clone(), vec![planned])),
            }
        }
        if !dropped.is_empty() {
            warn!(
                nodeclaim = %claim.id,
                offerings = %dropped.join(","),
                "offerings without a matching subnet or AMI are not tried"
            );
        }
        if groups.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                format!(
                    "claim {}: no offering has both a subnet (EC2NodeClass {} selects {} in zones {:?}) and an AMI",
                    claim.id,
                    nodeclass.name(),
                    subnets.len(),
                    best.keys().collect::<Vec<_>>()
                ),
            ));
        }

        let user_data = base64::engine::general_purpose::STANDARD
            .encode(Bootstrap::new(&self.config, nodeclass, claim)?.render(family)?);
        let template_tags = self.template_tags(nodeclass, claim);
        let profile = self.instance_profile(nodeclass, now).await?;
        let specs = groups
            .iter()
            .map(|(image_id, _)| {
                Ok(TemplateSpec {
                    image_id: image_id.clone(),
                    user_data: user_data.clone(),
                    instance_profile: profile.clone(),
                    security_group_ids: security_groups.to_vec(),
                    associate_public_ip_address: nodeclass.spec.associate_public_ip_address,
                    block_devices: launch_template::block_devices(family, nodeclass)?,
                    metadata: launch_template::metadata(nodeclass)?,
                    detailed_monitoring: nodeclass.spec.detailed_monitoring.unwrap_or(false),
                    tags: template_tags.clone(),
                })
            })
            .collect::<PortResult<Vec<_>>>()?;
        let mut templates = Vec::new();
        for (spec, (_, group)) in specs.iter().zip(&groups) {
            templates.push((self.ensure_template(spec, now).await?, group));
        }

        let zone_of: HashMap<&str, &str> = subnets.iter().map(|s| (s.id.as_str(), s.zone.as_str())).collect();
        let fleet = match self
            .create_fleet(claim, capacity_type, &templates, nodeclass)
            .await
        {
            // A template deleted behind our back: forget what we knew, make it again, retry once.
            Err(e) if e.kind == ErrorKind::NotFound => {
                warn!(nodeclaim = %claim.id, error = %e, "a launch template is gone; recreating it");
                self.templates.clear();
                for spec in &specs {
                    self.ensure_template(spec, now).await?;
                }
                self.create_fleet(claim, capacity_type, &templates, nodeclass)
                    .await
            }
            other => other,
        };
        // A profile deleted behind our back (or not yet visible to EC2) is made again next time.
        if fleet
            .as_ref()
            .is_err_and(|e| e.message.contains(crate::errors::INVALID_INSTANCE_PROFILE))
        {
            self.profiles.clear();
        }
        let output = match fleet {
            Ok(output) => output,
            // Capacity refused for the request as a whole: every offering in it was refused.
            Err(mut e) if e.kind == ErrorKind::InsufficientCapacity => {
                let mut tried: Vec<OfferingKey> = groups
                    .iter()
                    .flat_map(|(_, group)| group.iter().map(|p| offering_key(p.offering)))
                    .collect();
                tried.sort();
                tried.dedup();
                self.mark_unavailable(&claim.id, &tried, now);
                e.unavailable = tried;
                return Err(e);
            }
            Err(e) => return Err(e),
        };

        let key_of = |o: Option<&FleetLaunchTemplateOverrides>| -> Option<OfferingKey> {
            let o = o?;
            let zone = o
                .availability_zone()
                .or_else(|| o.subnet_id().and_then(|s| zone_of.get(s).copied()))?;
            Some(OfferingKey {
                instance_type: o.instance_type()?.as_str().to_string(),
                zone: zone.to_string(),
                capacity_type,
            })
        };

        let mut out_of_capacity = Vec::new();
        let mut failures = Vec::new();
        for e in output.errors() {
            let code = e.error_code().unwrap_or("Unknown");
            let kind = kind_for(code, e.error_message());
            if e.error_message()
                .is_some_and(|m| m.contains(crate::errors::INVALID_INSTANCE_PROFILE))
            {
                // Made again (or found) by the next launch, in case it was deleted meanwhile.
                self.profiles.clear();
            }
            let key = key_of(e.launch_template_and_overrides().and_then(|l| l.overrides()));
            match (kind, key) {
                (Some(ErrorKind::InsufficientCapacity), Some(key)) => out_of_capacity.push(key),
                (kind, _) => failures.push((
                    kind.unwrap_or(ErrorKind::Unavailable),
                    format!("{code}: {}", e.error_message().unwrap_or_default()),
                )),
            }
        }
        out_of_capacity.sort();
        out_of_capacity.dedup();
        self.mark_unavailable(&claim.id, &out_of_capacity, now);

        let launched = output.instances().iter().find_map(|i| {
            let id = i.instance_ids().first()?;
            let overrides = i.launch_template_and_overrides().and_then(|l| l.overrides());
            let key = key_of(overrides).or_else(|| {
                // Without the override, the cheapest offering of the reported type stands in.
                let t = i.instance_type()?.as_str();
                candidates
                    .iter()
                    .find(|o| o.instance_type == t)
                    .map(|o| offering_key(o))
            })?;
            Some((id.clone(), key))
        });
        let Some((instance_id, key)) = launched else {
            if failures.is_empty() {
                let unavailable = if out_of_capacity.is_empty() {
                    candidates.iter().map(|o| offering_key(o)).collect()
                } else {
                    out_of_capacity
                };
                return Err(PortError::insufficient_capacity(
                    format!("claim {}: no offering had capacity", claim.id),
                    unavailable,
                ));
            }
            let (kind, _) = failures[0];
            let mut err = PortError::new(
                kind,
                format!(
                    "CreateFleet for claim {} launched nothing: {}",
                    claim.id,
                    failures
                        .iter()
                        .map(|(_, m)| m.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
            err.unavailable = out_of_capacity;
            return Err(err);
        };

        let price = candidates
            .iter()
            .find(|o| o.instance_type == key.instance_type && o.zone == key.zone)
            .map_or(0.0, |o| o.price);
        info!(
            nodeclaim = %claim.id,
            instance_id = %instance_id,
            instance_type = %key.instance_type,
            zone = %key.zone,
            capacity_type = %capacity_type,
            price,
            skipped_out_of_capacity = out_of_capacity.len(),
            "launched an instance for the claim"
        );
        let launch_template = templates
            .iter()
            .find(|(_, group)| {
                group
                    .iter()
                    .any(|p| p.offering.instance_type == key.instance_type)
            })
            .map(|(name, _)| name.clone());
        let image_id = needs_by_type
            .get(key.instance_type.as_str())
            .and_then(|need| amis.get(need))
            .map(|ami| ami.id.clone());
        Ok(Launched {
            instance: Instance {
                image_id,
                id: instance_id,
                instance_type: key.instance_type,
                zone: key.zone,
                capacity_type,
                state: InstanceState::Pending,
                launched_at: now,
                tags: self.instance_tags(nodeclass, claim),
                claim_id: Some(claim.id.clone()),
                private_dns_name: None,
                instance_profile: Some(profile),
            },
            price,
            launch_template,
            unavailable: out_of_capacity,
        })
    }

    /// Remembers offerings EC2 had no capacity for, so that launches skip them for a while.
    fn mark_unavailable(&self, claim_id: &str, offerings: &[OfferingKey], now: Millis) {
        let mut unavailable = lock(&self.unavailable);
        for key in offerings {
            warn!(
                nodeclaim = %claim_id,
                instance_type = %key.instance_type,
                zone = %key.zone,
                capacity_type = %key.capacity_type,
                "offering out of capacity; skipping it for three minutes"
            );
            unavailable.mark(key.clone(), now);
        }
    }

    async fn create_fleet(
        &self,
        claim: &NodeClaim,
        capacity_type: CapacityType,
        templates: &[(String, &Vec<Planned<'_>>)],
        nodeclass: &Ec2NodeClass,
    ) -> PortResult<aws_sdk_ec2::operation::create_fleet::CreateFleetOutput> {
        let mut rank = 0.0;
        let configs = templates
            .iter()
            .map(|(name, group)| {
                let overrides = group
                    .iter()
                    .map(|p| {
                        let o = FleetLaunchTemplateOverridesRequest::builder()
                            .instance_type(InstanceType::from(p.offering.instance_type.as_str()))
                            .subnet_id(&p.subnet.id);
                        rank += 1.0;
                        match capacity_type {
                            // lowest-price ignores it; kept so the order is visible in the request.
                            CapacityType::OnDemand => o.priority(rank - 1.0).build(),
                            CapacityType::Spot => o.build(),
                        }
                    })
                    .collect();
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder()
                            .launch_template_name(name)
                            .version("$Latest")
                            .build(),
                    )
                    .set_overrides(Some(overrides))
                    .build()
            })
            .collect();
        let tags: Vec<Tag> = self
            .instance_tags(nodeclass, claim)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let tag_spec = |resource: ResourceType| {
            TagSpecification::builder()
                .resource_type(resource)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let mut request = self
            .ec2
            .create_fleet()
            .r#type(FleetType::Instant)
            .client_token(client_token(&self.config.cluster_name, &claim.id))
            .target_capacity_specification(
                TargetCapacitySpecificationRequest::builder()
                    .total_target_capacity(1)
                    .default_target_capacity_type(DefaultTargetCapacityType::from(capacity_type.as_str()))
                    .build(),
            )
            .set_launch_template_configs(Some(configs))
            .tag_specifications(tag_spec(ResourceType::Instance))
            .tag_specifications(tag_spec(ResourceType::Volume))
            .tag_specifications(tag_spec(ResourceType::Fleet));
        request = match capacity_type {
            CapacityType::Spot => request.spot_options(
                SpotOptionsRequest::builder()
                    .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                    .build(),
            ),
            CapacityType::OnDemand => request.on_demand_options(
                OnDemandOptionsRequest::builder()
                    .allocation_strategy(FleetOnDemandAllocationStrategy::LowestPrice)
                    .build(),
            ),
        };
        request.send().await.map_err(|e| from_sdk("CreateFleet", e))
    }

    /// Creates the template unless it exists; returns its name.
    async fn ensure_template(&self, spec: &TemplateSpec, now: Millis) -> PortResult<String> {
        let name = spec.name(&self.config.cluster_name)?;
        if self.templates.get(&name, now).is_some() {
            return Ok(name);
        }
        let exists = match self
            .ec2
            .describe_launch_templates()
            .launch_template_names(&name)
            .send()
            .await
        {
            Ok(out) => !out.launch_templates().is_empty(),
            Err(e) => {
                let err = from_sdk("DescribeLaunchTemplates", e);
                if err.kind != ErrorKind::NotFound {
                    return Err(err);
                }
                false
            }
        };
        if !exists {
            let tags = [
                (
                    crate::ec2::instances::cluster_tag(&self.config.cluster_name),
                    "owned".to_string(),
                ),
                (
                    "eks:eks-cluster-name".to_string(),
                    self.config.cluster_name.clone(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
            let created = self
                .ec2
                .create_launch_template()
                .launch_template_name(&name)
                .launch_template_data(spec.request_data())
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::LaunchTemplate)
                        .set_tags(Some(tags))
                        .build(),
                )
                .send()
                .await;
            match created {
                Ok(_) => {
                    info!(launch_template = %name, image_id = %spec.image_id, "created a launch template")
                }
                Err(e) => {
                    let err = from_sdk("CreateLaunchTemplate", e);
                    // Another launch made the same template first: it has the same content.
                    if err.kind != ErrorKind::Conflict {
                        return Err(err);
                    }
                }
            }
        }
        self.templates.put(name.clone(), (), now);
        Ok(name)
    }

    async fn subnets(&self, nodeclass: &Ec2NodeClass, now: Millis) -> PortResult<Arc<Vec<Subnet>>> {
        let key = cache_key(&nodeclass.spec.subnet_selector_terms)?;
        if let Some(found) = self.subnets.get(&key, now) {
            return Ok(found);
        }
        let found = Arc::new(network::subnets(&self.ec2, &nodeclass.spec.subnet_selector_terms).await?);
        self.subnets.put(key, found.clone(), now);
        Ok(found)
    }

    async fn security_groups(&self, nodeclass: &Ec2NodeClass, now: Millis) -> PortResult<Arc<Vec<String>>> {
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
    async fn amis_for_types(
        &self,
        nodeclass: &Ec2NodeClass,
        needs_by_type: &HashMap<&str, AmiNeed>,
        now: Millis,
    ) -> PortResult<Arc<BTreeMap<AmiNeed, Ami>>> {
        let needs: BTreeSet<AmiNeed> = needs_by_type.values().copied().collect();
        self.amis(nodeclass, &needs, now).await
    }

    async fn amis(
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
    async fn instance_profile(&self, nodeclass: &Ec2NodeClass, now: Millis) -> PortResult<String> {
        let Some(name) = self.managed_instance_profile(nodeclass) else {
            return instance_profile(nodeclass);
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

    /// Tags for everything launched for the node class: the node class's own, then ours.
    fn template_tags(&self, nodeclass: &Ec2NodeClass, claim: &NodeClaim) -> BTreeMap<String, String> {
        let cluster = &self.config.cluster_name;
        let mut tags = nodeclass.spec.tags.clone();
        tags.insert(instances::cluster_tag(cluster), "owned".to_string());
        tags.insert("eks:eks-cluster-name".to_string(), cluster.clone());
        tags.insert(
            nodewright_core::labels::NODEPOOL.to_string(),
            claim.nodepool.clone(),
        );
        tags.insert(
            nodewright_core::labels::EC2NODECLASS.to_string(),
            nodeclass.name().to_string(),
        );
        tags
    }

    /// The template's tags plus the claim's: [`CLAIM_TAG`] and `Name`.
    fn instance_tags(&self, nodeclass: &Ec2NodeClass, claim: &NodeClaim) -> BTreeMap<String, String> {
        let mut tags = self.template_tags(nodeclass, claim);
        tags.insert(CLAIM_TAG.to_string(), claim.id.clone());
        tags.insert("Name".to_string(), claim.id.clone());
        tags
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
        let mut images: Vec<(String, String)> =
            amis.values().map(|a| (a.id.clone(), a.name.clone())).collect();
        images.sort();
        images.dedup();
        Ok(Some(NodeClassResolution {
            subnets: subnets.iter().map(|s| (s.id.clone(), s.zone.clone())).collect(),
            security_groups: security_groups.to_vec(),
            amis: images,
            instance_profile: self
                .managed_instance_profile(nodeclass)
                .or_else(|| instance_profile(nodeclass).ok()),
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
        let mut unavailable = lock(&self.unavailable);
        let any_unavailable = !unavailable.current(now).is_empty();
        catalog.retain_offerings(|name, o| {
            zones.contains(o.zone.as_str())
                && !(any_unavailable
                    && unavailable.is_unavailable(
                        &OfferingKey {
                            instance_type: name.to_string(),
                            zone: o.zone.clone(),
                            capacity_type: o.capacity_type,
                        },
                        now,
                    ))
        });
        Ok(catalog)
    }
}

/// What each of EC2's instance types needs from its AMI; types of an architecture we cannot
/// launch are absent.
fn ami_needs(types: &[InstanceTypeInfo]) -> HashMap<&str, AmiNeed> {
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

fn offering_key(o: &LaunchOverride) -> OfferingKey {
    OfferingKey {
        instance_type: o.instance_type.clone(),
        zone: o.zone.clone(),
        capacity_type: o.capacity_type,
    }
}

/// The capacity type all overrides share (the port's contract), or `Invalid`.
fn single_capacity_type(overrides: &[LaunchOverride]) -> PortResult<CapacityType> {
    let first = overrides
        .first()
        .map(|o| o.capacity_type)
        .ok_or_else(|| PortError::new(ErrorKind::Invalid, "no offerings to launch"))?;
    if overrides.iter().any(|o| o.capacity_type != first) {
        return Err(PortError::new(
            ErrorKind::Invalid,
            "a launch's offerings must all be of one capacity type",
        ));
    }
    Ok(first)
}

/// The instance profile a node class names itself (`instanceProfile`); for `role` see
/// [`Ec2Cloud::instance_profile`].
fn instance_profile(nodeclass: &Ec2NodeClass) -> PortResult<String> {
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

fn core_invalid(e: nodewright_core::Error) -> PortError {
    PortError::new(ErrorKind::Invalid, e.to_string()).with_source(e)
}

/// The CreateFleet idempotency token of a claim: a hash of cluster and claim id, so that the
/// same claim never buys two instances and two claims never share a token, however long their
/// names (EC2 takes at most 64 ASCII characters; a truncated name could collide).
pub fn client_token(cluster: &str, claim_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{cluster}\n{claim_id}").as_bytes());
    format!("nodewright-{}", &hex::encode(digest)[..48])
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodewright_core::builders::nodeclass;

    #[test]
    fn claims_of_long_pool_names_never_share_a_client_token() {
        let pool = "a-nodepool-with-a-name-long-enough-to-fill-the-whole-token-by-itself";
        let a = client_token("demo", &format!("{pool}-7f3k2"));
        let b = client_token("demo", &format!("{pool}-9x1qa"));
        assert_ne!(a, b);
        assert!(a.len() <= 64 && a.is_ascii(), "{a}");
        assert_eq!(
            a,
            client_token("demo", &format!("{pool}-7f3k2")),
            "stable per claim"
        );
        assert_ne!(a, client_token("other", &format!("{pool}-7f3k2")), "per cluster");
    }

    fn offering(instance_type: &str, capacity_type: CapacityType) -> LaunchOverride {
        LaunchOverride {
            instance_type: instance_type.into(),
            zone: "us-east-1a".into(),
            capacity_type,
            price: 0.1,
        }
    }

    #[test]
    fn a_launch_mixing_capacity_types_is_invalid() {
        let mixed = [
            offering("m5.large", CapacityType::Spot),
            offering("m5.large", CapacityType::OnDemand),
        ];
        assert_eq!(
            single_capacity_type(&mixed).expect_err("mixed").kind,
            ErrorKind::Invalid
        );
        assert_eq!(
            single_capacity_type(&mixed[..1]).expect("one"),
            CapacityType::Spot
        );
    }

    #[test]
    fn an_instance_profile_named_by_the_node_class_is_used_as_given() {
        let mut nc = nodeclass("default");
        nc.spec.role = Some("KarpenterNodeRole-demo".into());
        nc.spec.instance_profile = Some("explicit".into());
        assert_eq!(instance_profile(&nc).expect("profile"), "explicit");
        nc.spec.instance_profile = None;
        nc.spec.role = None;
        assert_eq!(
            instance_profile(&nc).expect_err("neither").kind,
            ErrorKind::Invalid
        );
    }
}
