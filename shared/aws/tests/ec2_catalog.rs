//! The live catalog read from moto's EC2: instance types, zones, spot prices, the embedded
//! on-demand prices standing in for the Pricing API, the caches' lifetimes on a test clock, and
//! the node class's subnets and AMIs narrowing it to what can be launched.
//! moto's spot prices are placeholders, so these tests check our assembly, not the numbers.

use std::collections::BTreeSet;
use std::sync::Arc;

use nodewright_aws::Ec2Cloud;
use nodewright_aws::catalog::{INSTANCE_TYPES_TTL, SPOT_PRICES_TTL};
use nodewright_aws::testing::{FleetError, Moto, aws_config, getting_started_nodeclass, offering};
use nodewright_core::api::{AmiSelectorTerm, SelectorTerm};
use nodewright_core::catalog::CapacityType::{OnDemand, Spot};
use nodewright_core::catalog::Catalog;
use nodewright_core::ports::{Cloud, ErrorKind, LaunchRequest};
use nodewright_core::testing::{VirtualClock, claim};

const CLUSTER: &str = "demo";
const START: i64 = 1_750_000_000_000;

fn cloud(moto: &Moto) -> (Ec2Cloud, Arc<VirtualClock>) {
    let clock = VirtualClock::shared(START);
    (
        Ec2Cloud::new(&moto.sdk_config(), aws_config(CLUSTER), clock.clone()),
        clock,
    )
}

#[tokio::test]
async fn the_catalog_has_ec2s_types_in_their_zones_with_spot_and_embedded_on_demand_prices() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, _) = cloud(&moto);
    let catalog = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    assert_eq!(catalog.region, "us-east-1");
    assert!(catalog.types.len() > 500, "{} types", catalog.types.len());
    let m5 = catalog.get("m5.large").expect("m5.large");
    assert_eq!(m5.capacity.cpu(), 2000);
    assert_eq!(
        m5.labels.get("kubernetes.io/arch").map(String::as_str),
        Some("amd64")
    );
    let on_demand: Vec<_> = m5
        .offerings
        .iter()
        .filter(|o| o.capacity_type == OnDemand)
        .collect();
    assert!(on_demand.len() >= 3, "{:?}", m5.offerings);
    assert!(
        on_demand.iter().all(|o| o.price == 0.096),
        "the embedded us-east-1 price: {on_demand:?}"
    );
    assert!(m5.offerings.iter().any(|o| o.capacity_type == Spot));
    assert!(catalog.zones().contains(&"us-east-1a".to_string()));
    let graviton = catalog.get("m6g.large").expect("m6g.large");
    assert_eq!(
        graviton.labels.get("kubernetes.io/arch").map(String::as_str),
        Some("arm64")
    );
}

#[tokio::test]
async fn kubelet_settings_of_the_nodeclass_change_allocatable() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, _) = cloud(&moto);
    let default = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.kubelet = serde_json::json!({"maxPods": 8}).as_object().cloned();
    let limited = cloud.catalog(&nc).await.expect("catalog");
    let pods = |c: &nodewright_core::catalog::Catalog| c.get("m5.xlarge").expect("m5.xlarge").capacity.pods();
    assert_eq!(pods(&limited), 8);
    assert_ne!(pods(&default), 8);
}

#[tokio::test]
async fn catalog_inputs_are_cached_for_their_time_to_live() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, clock) = cloud(&moto);
    let nc = getting_started_nodeclass(CLUSTER);
    cloud.catalog(&nc).await.expect("first build");

    // Within five minutes the spot prices are not asked again: their failing does not matter.
    moto.fail_next("ec2", "DescribeSpotPriceHistory", "UnauthorizedOperation", 1);
    clock.advance(SPOT_PRICES_TTL - 1);
    cloud.catalog(&nc).await.expect("served from the caches");

    // At five minutes the spot prices are fetched again (and here fail).
    clock.advance(1);
    let err = cloud.catalog(&nc).await.expect_err("spot prices refreshed");
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    cloud.catalog(&nc).await.expect("the failure was not cached");

    // Instance types live six hours.
    moto.fail_next("ec2", "DescribeInstanceTypes", "UnauthorizedOperation", 1);
    clock.advance_to(START + INSTANCE_TYPES_TTL - 1);
    // (spot prices, zones and on-demand prices expire before that and are fetched again)
    cloud.catalog(&nc).await.expect("instance types still cached");
    clock.advance_to(START + INSTANCE_TYPES_TTL);
    let err = cloud.catalog(&nc).await.expect_err("instance types refreshed");
    assert_eq!(err.kind, ErrorKind::Unauthorized);
}

#[tokio::test]
async fn offerings_out_of_capacity_stay_in_the_catalog_for_the_core_to_leave_out() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, clock) = cloud(&moto);
    let nc = getting_started_nodeclass(CLUSTER);
    let offered = |c: &nodewright_core::catalog::Catalog| {
        c.get("m5.large")
            .expect("m5.large")
            .offerings
            .iter()
            .any(|o| o.zone == "us-east-1a" && o.capacity_type == Spot)
    };
    assert!(offered(&cloud.catalog(&nc).await.expect("catalog")));

    moto.fleet_errors(&[FleetError::ice("m5.large")], Some(1));
    let launched = cloud
        .launch(&LaunchRequest {
            claim: claim("default-ice").any_zone().build(),
            nodeclass: nc.clone(),
            overrides: vec![
                offering("m5.large", "us-east-1a", Spot, 0.03),
                offering("c5.large", "us-east-1a", Spot, 0.04),
            ],
        })
        .await
        .expect("launch");
    assert_eq!(launched.instance.instance_type, "c5.large");
    assert_eq!(launched.unavailable.len(), 1, "{:?}", launched.unavailable);

    // The failed offering is reported, and the catalog (what a launch could use) keeps it.
    clock.advance(1);
    assert!(offered(&cloud.catalog(&nc).await.expect("catalog")));
}

/// The kube arch label of every type in the catalog.
fn arches(catalog: &Catalog) -> BTreeSet<&str> {
    catalog
        .types
        .iter()
        .filter_map(|t| t.labels.get("kubernetes.io/arch").map(String::as_str))
        .collect()
}

#[tokio::test]
async fn a_nodeclass_whose_selected_subnets_lie_in_two_zones_gets_offerings_in_those_two_zones_only() {
    let moto = Moto::start();
    let network = moto.create_network(CLUSTER).await;
    let (cloud, _) = cloud(&moto);
    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.subnet_selector_terms = ["us-east-1a", "us-east-1c"]
        .iter()
        .map(|zone| SelectorTerm {
            id: Some(network.subnet_in(zone).expect("a subnet").id.clone()),
            ..Default::default()
        })
        .collect();
    let catalog = cloud.catalog(&nc).await.expect("catalog");
    assert_eq!(catalog.zones(), ["us-east-1a", "us-east-1c"]);
    let m5 = catalog.get("m5.large").expect("m5.large");
    let zone_requirement = m5
        .requirements
        .get("topology.kubernetes.io/zone")
        .expect("a zone requirement");
    assert!(zone_requirement.has("us-east-1a") && zone_requirement.has("us-east-1c"));
    assert!(
        !zone_requirement.has("us-east-1b") && !zone_requirement.has("us-east-1d"),
        "the requirement follows the offerings: {zone_requirement:?}"
    );

    // The getting-started selector (one subnet in each of three zones) sees three zones, not
    // every zone EC2 offers the types in.
    let all = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    assert_eq!(all.zones(), ["us-east-1a", "us-east-1b", "us-east-1c"]);
}

#[tokio::test]
async fn a_nodeclass_whose_ami_selection_has_only_x86_64_gets_no_arm64_types() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, _) = cloud(&moto);
    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.ami_family = Some("AL2023".into());
    nc.spec.ami_selector_terms = vec![AmiSelectorTerm {
        name: Some("amazon-eks-node-al2023-x86_64-*-1.32-*".into()),
        owner: Some("602401143452".into()),
        ..Default::default()
    }];
    let catalog = cloud.catalog(&nc).await.expect("catalog");
    assert!(catalog.get("m5.large").is_some());
    assert!(catalog.get("m6g.large").is_none(), "m6g.large is arm64");
    assert_eq!(arches(&catalog), BTreeSet::from(["amd64"]));

    // The alias resolves both architectures.
    let both = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    assert_eq!(arches(&both), BTreeSet::from(["amd64", "arm64"]));
}

#[tokio::test]
async fn an_alias_whose_arm64_parameters_do_not_exist_gets_no_arm64_types() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let ssm = aws_sdk_ssm::Client::new(&moto.sdk_config());
    for variant in ["standard", "nvidia"] {
        ssm.delete_parameter()
            .name(format!(
                "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/arm64/{variant}/recommended/image_id"
            ))
            .send()
            .await
            .expect("delete the parameter");
    }
    let (cloud, _) = cloud(&moto);
    let catalog = cloud
        .catalog(&getting_started_nodeclass(CLUSTER))
        .await
        .expect("catalog");
    assert!(catalog.get("m5.large").is_some());
    assert_eq!(arches(&catalog), BTreeSet::from(["amd64"]));
}

#[tokio::test]
async fn a_transient_failure_resolving_subnets_or_amis_fails_the_catalog() {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let (cloud, clock) = cloud(&moto);
    let nc = getting_started_nodeclass(CLUSTER);
    // More failures than the SDK retries.
    moto.fail_next("ec2", "DescribeSubnets", "RequestLimitExceeded", 10);
    let err = cloud.catalog(&nc).await.expect_err("subnets unresolved");
    assert_eq!(err.kind, ErrorKind::Throttled);
    moto.reset();

    moto.fail_next_with_status("ssm", "GetParameter", "InternalServerError", 10, 500);
    let err = cloud.catalog(&nc).await.expect_err("AMIs unresolved");
    assert!(err.kind.is_retryable(), "{err}");
    moto.reset();

    // Nothing failed was cached: the next round gets the catalog.
    clock.advance(1);
    let catalog = cloud.catalog(&nc).await.expect("catalog");
    assert_eq!(catalog.zones().len(), 3);
}
