//! The instant `CreateFleet` request of a launch: one instance, one launch template config per
//! AMI, the claim's tags on everything it makes, and a client token derived from the claim.

use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
    FleetLaunchTemplateSpecificationRequest, FleetOnDemandAllocationStrategy, FleetType, InstanceType,
    OnDemandOptionsRequest, ResourceType, SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::CapacityType;
use nodewright_core::nodeclaim::NodeClaim;
use nodewright_core::ports::{LaunchOverride, PortResult};

use super::Ec2Cloud;
use super::network::Subnet;
use crate::errors::from_sdk;

/// One CreateFleet override, before it becomes an SDK request: an offering, in the subnet
/// chosen for its zone.
pub(super) struct FleetOverride<'a> {
    pub offering: &'a LaunchOverride,
    pub subnet: &'a Subnet,
}

/// The overrides that boot one AMI, and so launch through one launch template.
pub(super) struct ImageGroup<'a> {
    pub image_id: String,
    pub overrides: Vec<FleetOverride<'a>>,
}

/// One launch template config of the request: the template and the overrides it launches.
pub(super) struct TemplateConfig<'g, 'a> {
    pub template: String,
    pub overrides: &'g [FleetOverride<'a>],
}

impl Ec2Cloud {
    /// Sends one instant `CreateFleet` for one instance of the claim, with one launch template
    /// config per AMI group, its overrides in price order.
    pub(super) async fn create_fleet(
        &self,
        claim: &NodeClaim,
        capacity_type: CapacityType,
        templates: &[TemplateConfig<'_, '_>],
        nodeclass: &Ec2NodeClass,
    ) -> PortResult<CreateFleetOutput> {
        let mut rank = 0.0;
        let configs = templates
            .iter()
            .map(|config| {
                let overrides = config
                    .overrides
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
                            .launch_template_name(&config.template)
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
}
