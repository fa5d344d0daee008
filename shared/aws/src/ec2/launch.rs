//! A launch of a new instance for a claim: its offerings (as the core planned them, none out of
//! capacity) narrowed to those with a subnet and an AMI, grouped by AMI under launch
//! templates, one `CreateFleet`, and what EC2 answered.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use base64::Engine as _;
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::NodeClaim;
use nodewright_core::pod::Millis;
use nodewright_core::ports::{
    CLAIM_TAG, ErrorKind, Instance, InstanceState, LaunchOverride, LaunchRequest, Launched, OfferingKey,
    PortError, PortResult,
};
use tracing::{info, warn};

use super::fleet::{FleetOverride, ImageGroup, TemplateConfig};
use super::fleet_outcome::{self, FleetLaunch, FleetResponse, offering_key};
use super::launch_template::{self, TemplateSpec};
use super::network::Subnet;
use super::resolution::ami_needs;
use super::{Ec2Cloud, core_invalid, instances, network};
use crate::errors::from_sdk;
use crate::userdata::Bootstrap;

impl Ec2Cloud {
    pub(super) async fn launch_new(&self, request: &LaunchRequest) -> PortResult<Launched> {
        let claim = &request.claim;
        let nodeclass = &request.nodeclass;
        let now = self.clock.now();
        let capacity_type = single_capacity_type(&request.overrides)?;
        let candidates = in_claim_zones(request)?;

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
        let image_of = |instance_type: &str| {
            needs_by_type
                .get(instance_type)
                .and_then(|need| amis.get(need))
                .map(|ami| ami.id.clone())
        };
        let groups = group_by_image(&candidates, &best, &image_of);
        if !groups.dropped.is_empty() {
            warn!(
                nodeclaim = %claim.id,
                offerings = %groups.dropped.join(","),
                "offerings without a matching subnet or AMI are not tried"
            );
        }
        if groups.groups.is_empty() {
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

        let profile = self.instance_profile(nodeclass, now).await?;
        let specs = self.template_specs(request, &groups.groups, &profile, &security_groups)?;
        let (output, template_names) = self
            .send_fleet(claim, capacity_type, nodeclass, &specs, &groups.groups, now)
            .await?;

        let zone_of: HashMap<&str, &str> = subnets.iter().map(|s| (s.id.as_str(), s.zone.as_str())).collect();
        let outcome = fleet_outcome::interpret(
            &claim.id,
            capacity_type,
            &candidates,
            &zone_of,
            &FleetResponse::from_sdk(&output),
        );
        if outcome.invalid_instance_profile {
            // Made again (or found) by the next launch, in case it was deleted meanwhile.
            self.profiles.clear();
        }
        log_out_of_capacity(&claim.id, &outcome.out_of_capacity);
        let FleetLaunch {
            instance_id,
            offering: key,
            price,
        } = outcome.launched?;
        let out_of_capacity = outcome.out_of_capacity;
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
        let launch_template = groups
            .groups
            .iter()
            .zip(&template_names)
            .find(|(g, _)| {
                g.overrides
                    .iter()
                    .any(|o| o.offering.instance_type == key.instance_type)
            })
            .map(|(_, name)| name.clone());
        Ok(Launched {
            instance: Instance {
                image_id: image_of(&key.instance_type),
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

    /// One launch template per image group: the claim's user data, profile and security
    /// groups, with the group's AMI.
    fn template_specs(
        &self,
        request: &LaunchRequest,
        groups: &[ImageGroup],
        profile: &str,
        security_groups: &[String],
    ) -> PortResult<Vec<TemplateSpec>> {
        let (claim, nodeclass) = (&request.claim, &request.nodeclass);
        let family = nodeclass.ami_family().map_err(core_invalid)?;
        let user_data = base64::engine::general_purpose::STANDARD
            .encode(Bootstrap::new(&self.config, nodeclass, claim)?.render(family)?);
        let template_tags = self.template_tags(nodeclass, claim);
        groups
            .iter()
            .map(|group| {
                Ok(TemplateSpec {
                    image_id: group.image_id.clone(),
                    user_data: user_data.clone(),
                    instance_profile: profile.to_string(),
                    security_group_ids: security_groups.to_vec(),
                    associate_public_ip_address: nodeclass.spec.associate_public_ip_address,
                    block_devices: launch_template::block_devices(family, nodeclass)?,
                    metadata: launch_template::metadata(nodeclass)?,
                    detailed_monitoring: nodeclass.spec.detailed_monitoring.unwrap_or(false),
                    tags: template_tags.clone(),
                })
            })
            .collect()
    }

    /// Makes sure the templates exist and sends the one `CreateFleet`; returns EC2's answer and
    /// each group's template name. A template deleted behind our back is made again and the
    /// request sent once more; capacity refused for the request as a whole names every
    /// offering in it.
    async fn send_fleet(
        &self,
        claim: &NodeClaim,
        capacity_type: CapacityType,
        nodeclass: &Ec2NodeClass,
        specs: &[TemplateSpec],
        groups: &[ImageGroup<'_>],
        now: Millis,
    ) -> PortResult<(CreateFleetOutput, Vec<String>)> {
        let mut templates = Vec::new();
        for (spec, group) in specs.iter().zip(groups) {
            templates.push(TemplateConfig {
                template: self.ensure_template(spec, now).await?,
                overrides: &group.overrides,
            });
        }
        let fleet = match self
            .create_fleet(claim, capacity_type, &templates, nodeclass)
            .await
        {
            Err(e) if e.kind == ErrorKind::NotFound => {
                warn!(nodeclaim = %claim.id, error = %e, "a launch template is gone; recreating it");
                self.templates.clear();
                for spec in specs {
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
        match fleet {
            Ok(output) => Ok((output, templates.into_iter().map(|t| t.template).collect())),
            Err(mut e) if e.kind == ErrorKind::InsufficientCapacity => {
                let mut tried: Vec<OfferingKey> = groups
                    .iter()
                    .flat_map(|g| g.overrides.iter().map(|o| offering_key(o.offering)))
                    .collect();
                tried.sort();
                tried.dedup();
                log_out_of_capacity(&claim.id, &tried);
                e.unavailable = tried;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the template unless it exists; returns its name.
    pub(super) async fn ensure_template(&self, spec: &TemplateSpec, now: Millis) -> PortResult<String> {
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

    /// Tags for everything launched for the node class: the node class's own, then ours.
    pub(super) fn template_tags(
        &self,
        nodeclass: &Ec2NodeClass,
        claim: &NodeClaim,
    ) -> BTreeMap<String, String> {
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
    pub(super) fn instance_tags(
        &self,
        nodeclass: &Ec2NodeClass,
        claim: &NodeClaim,
    ) -> BTreeMap<String, String> {
        let mut tags = self.template_tags(nodeclass, claim);
        tags.insert(CLAIM_TAG.to_string(), claim.id.clone());
        tags.insert("Name".to_string(), claim.id.clone());
        tags
    }
}

/// Logs the offerings EC2 had no capacity for; the core, which gets them back, marks them.
/// The request's overrides in the claim's zones (all of them when it names none).
fn in_claim_zones(request: &LaunchRequest) -> PortResult<Vec<&LaunchOverride>> {
    let claim = &request.claim;
    let candidates: Vec<&LaunchOverride> = request
        .overrides
        .iter()
        .filter(|o| claim.zones.is_empty() || claim.zones.contains(&o.zone))
        .collect();
    if candidates.is_empty() {
        return Err(PortError::insufficient_capacity(
            format!(
                "claim {}: none of its {} offerings is in the claim's zones",
                claim.id,
                request.overrides.len()
            ),
            Vec::new(),
        ));
    }
    Ok(candidates)
}

/// The offerings grouped by the AMI their type boots, each group one launch template, in price
/// order; and, as `type/zone`, those without a subnet in their zone or an AMI.
struct ImageGroups<'a> {
    groups: Vec<ImageGroup<'a>>,
    dropped: Vec<String>,
}

fn group_by_image<'a>(
    candidates: &[&'a LaunchOverride],
    subnet_in: &'a BTreeMap<String, Subnet>,
    image_of: &dyn Fn(&str) -> Option<String>,
) -> ImageGroups<'a> {
    let mut out = ImageGroups {
        groups: Vec::new(),
        dropped: Vec::new(),
    };
    for offering in candidates {
        let (Some(subnet), Some(image_id)) =
            (subnet_in.get(&offering.zone), image_of(&offering.instance_type))
        else {
            out.dropped
                .push(format!("{}/{}", offering.instance_type, offering.zone));
            continue;
        };
        let placed = FleetOverride { offering, subnet };
        match out.groups.iter_mut().find(|g| g.image_id == image_id) {
            Some(group) => group.overrides.push(placed),
            None => out.groups.push(ImageGroup {
                image_id,
                overrides: vec![placed],
            }),
        }
    }
    out
}

fn log_out_of_capacity(claim_id: &str, offerings: &[OfferingKey]) {
    for key in offerings {
        warn!(
            nodeclaim = %claim_id,
            instance_type = %key.instance_type,
            zone = %key.zone,
            capacity_type = %key.capacity_type,
            "offering out of capacity"
        );
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn offerings_group_by_the_image_their_type_boots_in_price_order_dropping_what_cannot_launch() {
        let at = |instance_type: &str, zone: &str, price: f64| LaunchOverride {
            instance_type: instance_type.into(),
            zone: zone.into(),
            capacity_type: CapacityType::OnDemand,
            price,
        };
        let offerings = [
            at("m6g.large", "us-east-1a", 0.077),
            at("m5.large", "us-east-1b", 0.096),
            at("m5.large", "us-east-1c", 0.096),
            at("x9.large", "us-east-1a", 0.1),
            at("m6g.xlarge", "us-east-1b", 0.154),
        ];
        let candidates: Vec<&LaunchOverride> = offerings.iter().collect();
        let subnet = |zone: &str| Subnet {
            id: format!("subnet-{zone}"),
            zone: zone.into(),
            available_ips: 100,
        };
        let subnets = BTreeMap::from([
            ("us-east-1a".to_string(), subnet("us-east-1a")),
            ("us-east-1b".to_string(), subnet("us-east-1b")),
        ]);
        let image_of = |instance_type: &str| match instance_type {
            "m5.large" => Some("ami-x86".to_string()),
            t if t.starts_with("m6g") => Some("ami-arm".to_string()),
            _ => None,
        };
        let out = group_by_image(&candidates, &subnets, &image_of);
        let groups: Vec<(&str, Vec<(&str, &str)>)> = out
            .groups
            .iter()
            .map(|g| {
                let placed = g
                    .overrides
                    .iter()
                    .map(|o| (o.offering.instance_type.as_str(), o.subnet.id.as_str()))
                    .collect();
                (g.image_id.as_str(), placed)
            })
            .collect();
        assert_eq!(
            groups,
            [
                (
                    "ami-arm",
                    vec![
                        ("m6g.large", "subnet-us-east-1a"),
                        ("m6g.xlarge", "subnet-us-east-1b")
                    ]
                ),
                ("ami-x86", vec![("m5.large", "subnet-us-east-1b")]),
            ]
        );
        assert_eq!(out.dropped, ["m5.large/us-east-1c", "x9.large/us-east-1a"]);
    }
}
